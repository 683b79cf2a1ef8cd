//! Temperature scaling as a [`Calibrator`]: softmax(z / T) with T chosen by [`crate::temperature`].

use super::{Calibrator, FitOptions, Predictions};
use crate::error::{Error, Result};
use crate::scores::{ScoreKind, Scores};
use crate::temperature::{self, Method};
use serde::{Deserialize, Serialize};

/// softmax(z / T) on logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureScaling {
    pub classes: usize,
    pub temperature: f64,
}

impl TemperatureScaling {
    pub fn fit(x: &Predictions, labels: &[usize], method: Method, opts: &FitOptions) -> Result<Self> {
        if x.kind() != ScoreKind::Logits {
            return Err(Error::Parameter("temperature scaling needs logits, not probabilities".into()));
        }
        let labels: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
        let val = Scores::<f64>::new(x.values().to_vec(), x.k(), &labels, ScoreKind::Logits)?;
        let t = temperature::choose(&val, method, opts.bins, opts.mode)?;
        Ok(Self { classes: x.k(), temperature: t })
    }

    pub(super) fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::Parameter(format!("temperature {} is not a positive number", self.temperature)));
        }
        Ok(())
    }
}

impl Calibrator for TemperatureScaling {
    fn classes(&self) -> usize {
        self.classes
    }
    fn transform(&self, x: &Predictions) -> Result<Vec<f64>> {
        super::check_width(x, self.classes)?;
        let mut out: Vec<f64> = x.values().iter().map(|v| v / self.temperature).collect();
        out.chunks_mut(self.classes).for_each(super::softmax_in_place);
        Ok(out)
    }
}
