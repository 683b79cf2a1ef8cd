//! Focal temperature scaling (Komisarenko & Kull, ECAI 2024): the probabilities a focal-loss
//! model's outputs map to under the loss's own properness correction, with a temperature.
//!
//! As the reference (`slavikkom/focal_temperature_scaling`, `temperature_scaling.py`) computes
//! it: q = softmax(z / T) clamped to [1e−12, 1 − 1e−12]; the focal loss's derivative
//! d_k = (1 − q_k)^γ (γ log q_k / (1 − q_k) − 1 / q_k); p_k = (1/d_k) / Σ_j (1/d_j), a row with a
//! non-finite value replaced by 1 − 1e−5 on its largest logit and 1e−5/(K − 1) elsewhere, and p
//! clamped to [1e−12, 1] (so rows may sum to 1 only up to that clamp, as the reference's do). T is
//! the best of the reference's grid T = 0.05, 0.10, … (accumulated in floating point, 100 values)
//! by the mean NLL of p, starting from the unscaled link (T = 1): a grid value must be strictly
//! better, as the reference's loop requires.

use super::{Calibrator, Predictions};
use crate::error::{Error, Result};
use crate::scores::ScoreKind;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The focal link of softmax(z / T).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FocalTemperature {
    pub classes: usize,
    pub temperature: f64,
    pub gamma: f64,
}

/// γ of `focal-ts` without a value: the reference's default.
pub const DEFAULT_GAMMA: f64 = 2.0;

impl FocalTemperature {
    pub fn fit(x: &Predictions, labels: &[usize], gamma: f64) -> Result<Self> {
        if x.kind() != ScoreKind::Logits {
            return Err(Error::Parameter("focal temperature scaling needs logits, not probabilities".into()));
        }
        let k = x.k();
        let nll = |t: f64| -> f64 {
            let total: f64 = x
                .values()
                .par_chunks(k)
                .zip(labels.par_iter())
                .map_init(
                    || vec![0.0; k],
                    |p, (row, &y)| {
                        link(row, t, gamma, p);
                        -p[y].ln()
                    },
                )
                .sum();
            total / labels.len() as f64
        };
        let (mut best_t, mut best) = (1.0, nll(1.0));
        let mut t = 0.05;
        for _ in 0..100 {
            let v = nll(t);
            if best > v && !v.is_nan() {
                (best_t, best) = (t, v);
            }
            t += 0.05;
        }
        Ok(Self { classes: k, temperature: best_t, gamma })
    }

    pub(super) fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::Parameter(format!("temperature {} is not a positive number", self.temperature)));
        }
        if !(self.gamma.is_finite() && self.gamma >= 0.0) {
            return Err(Error::Parameter(format!("focal γ {} must be a number ≥ 0", self.gamma)));
        }
        Ok(())
    }
}

/// The reference's `multi_focal_link(z / t, γ)` then its clamp, into `p`.
fn link(z: &[f64], t: f64, gamma: f64, p: &mut [f64]) {
    let k = z.len();
    let scaled = |i: usize| z[i] / t;
    let max = (0..k).map(scaled).fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = (0..k).map(|i| (scaled(i) - max).exp()).sum();
    for (i, out) in p.iter_mut().enumerate() {
        let q = ((scaled(i) - max).exp() / sum).clamp(1e-12, 1.0 - 1e-12);
        let d = (1.0 - q).powf(gamma) * (gamma * q.ln() / (1.0 - q) - 1.0 / q);
        *out = 1.0 / d;
    }
    let total: f64 = p.iter().sum();
    p.iter_mut().for_each(|v| *v /= total);
    if p.iter().any(|v| !v.is_finite()) {
        // The first largest logit, as torch.argmax.
        let top = (0..k).fold(0, |b, i| if z[i] > z[b] { i } else { b });
        p.fill(1e-5 / (k - 1).max(1) as f64);
        p[top] = 1.0 - 1e-5;
    }
    p.iter_mut().for_each(|v| *v = v.clamp(1e-12, 1.0));
}

impl Calibrator for FocalTemperature {
    fn classes(&self) -> usize {
        self.classes
    }
    fn transform(&self, x: &Predictions) -> Result<Vec<f64>> {
        super::check_width(x, self.classes)?;
        let mut out = vec![0.0; x.values().len()];
        out.par_chunks_mut(self.classes)
            .zip(x.values().par_chunks(self.classes))
            .for_each(|(p, z)| link(z, self.temperature, self.gamma, p));
        Ok(out)
    }
}
