//! netcal's rule for using a calibrator of one probability on K classes.
//!
//! A binary map turns a probability p of the positive class into a calibrated one. netcal 1.4.0
//! (`AbstractCalibration`) applies such maps to K classes as follows, and so do we:
//! - K = 2: one map, fitted on p(class 1) against "label == 1"; the output row is [1 − q, q].
//! - K > 2: one map per class c, fitted on p(c) against "label == c"; a class absent from the
//!   labels gets no map and its column stays 0; each row of mapped values is divided by its sum.
//! - Every output is clipped to [0, 1].
//!
//! One difference, so that every row sums to 1: netcal divides a row whose mapped values are all
//! 0 by 0 (NaN; ENIR divides by max(sum, ε) and returns a row of zeros); we return the uniform
//! row. ENIR's ε floor also means netcal returns rows summing to less than 1 when the sum is in
//! (0, 2⁻⁵²); we divide by the sum.

use super::{Calibrator, Predictions};
use crate::error::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A calibrator of one probability.
pub trait BinaryMap: Sized + Send + Sync {
    /// The method's hyper-parameters (`()` for none).
    type Params: Sync;
    /// Fits on probabilities `p` of the positive class and whether each row is positive.
    fn fit(p: &[f64], positive: &[bool], params: &Self::Params) -> Result<Self>;
    /// The calibrated probability of `p` (not yet clipped to [0, 1]).
    fn map(&self, p: f64) -> f64;
    /// Checks loaded parameters: finite values, consistent shapes.
    fn validate(&self) -> Result<()>;
}

/// Binary maps applied to K classes by netcal's rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneVsAll<B> {
    pub classes: usize,
    /// For K = 2 one map, on p(class 1); else one per class, `null` for a class absent from the
    /// fitting labels.
    pub maps: Vec<Option<B>>,
}

impl<B: BinaryMap> OneVsAll<B> {
    /// Fits on validation rows (turned into probabilities) and their labels.
    pub fn fit(x: &Predictions, labels: &[usize], params: &B::Params) -> Result<Self> {
        let (k, p) = (x.k(), x.probs());
        let columns: Vec<usize> = if k == 2 { vec![1] } else { (0..k).collect() };
        let maps = columns
            .par_iter()
            .map(|&c| {
                let positive: Vec<bool> = labels.iter().map(|&l| l == c).collect();
                if k > 2 && !positive.contains(&true) {
                    return Ok(None);
                }
                let column: Vec<f64> = p.chunks(k).map(|r| r[c]).collect();
                B::fit(&column, &positive, params).map(Some).map_err(|e| {
                    if k > 2 {
                        Error::Parameter(format!("class {c}: {e}"))
                    } else {
                        e
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { classes: k, maps })
    }

    pub fn validate(&self) -> Result<()> {
        let expected = if self.classes == 2 { 1 } else { self.classes };
        if self.classes < 2 || self.maps.len() != expected {
            return Err(Error::Shape(format!(
                "{} maps for {} classes (expected {expected})",
                self.maps.len(),
                self.classes
            )));
        }
        if self.classes == 2 && self.maps[0].is_none() {
            return Err(Error::Parameter("a binary calibrator needs its map".into()));
        }
        self.maps.iter().flatten().try_for_each(B::validate)
    }
}

impl<B: BinaryMap> Calibrator for OneVsAll<B> {
    fn classes(&self) -> usize {
        self.classes
    }
    fn transform(&self, x: &Predictions) -> Result<Vec<f64>> {
        super::check_width(x, self.classes)?;
        let k = self.classes;
        let mut p = x.probs();
        let map = |m: &Option<B>, v: f64| m.as_ref().map_or(0.0, |m| m.map(v).clamp(0.0, 1.0));
        p.par_chunks_mut(k).for_each(|r| {
            if k == 2 {
                let q = map(&self.maps[0], r[1]);
                r[0] = 1.0 - q;
                r[1] = q;
                return;
            }
            r.iter_mut().zip(&self.maps).for_each(|(v, m)| *v = map(m, *v));
            let s: f64 = r.iter().sum();
            if s > 0.0 {
                r.iter_mut().for_each(|v| *v = (*v / s).min(1.0));
            } else {
                r.iter_mut().for_each(|v| *v = 1.0 / k as f64);
            }
        });
        Ok(p)
    }
}

/// The model averaging BBQ and ENIR share: netcal's BIC scores (`_calc_model_scores`) and its
/// elbow rule (`_elbow`) for which models to keep.
pub(crate) mod bic {
    /// netcal's log-likelihood of a binary estimate: −Σ torch `binary_cross_entropy` in float32
    /// (each log clamped at −100). The terms are computed in f32 exactly as torch does; their
    /// sum is taken in f64 (torch's float32 sum order depends on the CPU's vector width and
    /// thread count, so it cannot be matched bit for bit).
    pub fn log_likelihood(estimate: impl Iterator<Item = f64>, positive: &[bool]) -> f64 {
        let mut loss = 0.0f64;
        for (e, &y) in estimate.zip(positive) {
            let x = e.clamp(0.0, 1.0) as f32;
            let term = if y { -(x.ln().max(-100.0)) } else { -((-x).ln_1p().max(-100.0)) };
            loss += f64::from(term);
        }
        -f64::from(loss as f32)
    }

    /// The BIC of a model with `dof` parameters and log-likelihood `ll` on `n` rows.
    pub fn bic(ll: f64, dof: usize, n: usize) -> f64 {
        -2.0 * ll + dof as f64 * (n as f64).ln()
    }

    /// netcal's `_elbow` (α = 0.001): the relative likelihoods exp((min − score)/2), sorted
    /// descending; keep the leading run of equal values, then every next model while the drop to
    /// it, divided by the variance of all relative likelihoods, exceeds α. Returns the kept
    /// models' indices and their weights, normalised to sum to 1.
    pub fn elbow(scores: &[f64]) -> Vec<(usize, f64)> {
        const ALPHA: f64 = 0.001;
        let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
        let rel: Vec<f64> = scores.iter().map(|s| ((min - s) / 2.0).exp()).collect();
        let n = rel.len();
        let mean = rel.iter().sum::<f64>() / n as f64;
        let variance = rel.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / n as f64;
        // numpy's argsort (ascending) reversed; ties keep their reversed index order.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| rel[a].total_cmp(&rel[b]).then(a.cmp(&b)));
        order.reverse();
        let mut k = 0;
        while k + 1 < n && rel[order[k]] == rel[order[k + 1]] {
            k += 1;
        }
        while k + 1 < n && (rel[order[k]] - rel[order[k + 1]]) / variance > ALPHA {
            k += 1;
        }
        let kept = &order[..=k];
        let total: f64 = kept.iter().map(|&i| rel[i]).sum();
        kept.iter().map(|&i| (i, rel[i] / total)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::histogram::Histogram;
    use super::super::Predictions;
    use super::*;
    use crate::ScoreKind;

    #[test]
    fn a_class_absent_from_the_labels_gets_probability_zero() {
        let rows = [0.7, 0.2, 0.1, 0.2, 0.7, 0.1, 0.6, 0.3, 0.1, 0.3, 0.6, 0.1];
        let x = Predictions::new(&rows[..], 3, ScoreKind::Probs).unwrap();
        let c = OneVsAll::<Histogram>::fit(&x, &[0, 1, 0, 1], &2).unwrap();
        assert!(c.maps[2].is_none());
        let q = c.transform(&x).unwrap();
        assert!(q.chunks(3).all(|r| r[2] == 0.0 && (r.iter().sum::<f64>() - 1.0).abs() < 1e-15));
    }

    #[test]
    fn a_row_mapped_to_all_zeros_is_uniform() {
        // Every class's positives sit above 0.5, so probabilities below map to 0.
        let rows = [0.8, 0.1, 0.1, 0.1, 0.8, 0.1, 0.1, 0.1, 0.8];
        let x = Predictions::new(&rows[..], 3, ScoreKind::Probs).unwrap();
        let c = OneVsAll::<Histogram>::fit(&x, &[0, 1, 2], &2).unwrap();
        let low = Predictions::new(&[0.4, 0.3, 0.3][..], 3, ScoreKind::Probs).unwrap();
        assert_eq!(c.transform(&low).unwrap(), vec![1.0 / 3.0; 3]);
    }

    #[test]
    fn two_classes_map_the_second_probability() {
        let rows = [0.9, 0.1, 0.2, 0.8, 0.6, 0.4, 0.3, 0.7];
        let x = Predictions::new(&rows[..], 2, ScoreKind::Probs).unwrap();
        let c = OneVsAll::<Histogram>::fit(&x, &[0, 1, 1, 0], &2).unwrap();
        assert_eq!(c.maps.len(), 1);
        assert_eq!(c.transform(&x).unwrap(), vec![0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
    }
}
