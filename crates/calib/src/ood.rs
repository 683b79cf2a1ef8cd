//! Out-of-distribution detection by softmax scores, measured as AUROC.

use crate::error::{Error, Result};
use crate::scores::{Real, Scores};
use crate::softmax::Row;
use rayon::prelude::*;

/// Per-sample scores of one set: predictive entropy (nats) and confidence (max probability).
#[derive(Debug, Clone, PartialEq)]
pub struct SoftmaxScores {
    pub entropy: Vec<f64>,
    pub confidence: Vec<f64>,
}

/// Entropy and confidence of every row after dividing logits by `temperature`.
/// Entropy is −Σ p log p with log p from the log-softmax (underflowed classes add 0).
pub fn softmax_scores<F: Real>(s: &Scores<F>, temperature: Option<f64>) -> Result<SoftmaxScores> {
    crate::metrics::Options { temperature, ..Default::default() }.validate()?;
    s.check_temperature(temperature)?;
    let t = crate::metrics::temperature_of::<F>(s.kind(), temperature);
    let (entropy, confidence) = (0..s.n())
        .into_par_iter()
        .map_init(
            || Row::new(s.k()),
            |row, i| {
                let st = row.compute(s.row(i), s.kind(), t);
                (row.entropy(&st, s.kind()).f64(), st.conf.f64())
            },
        )
        .unzip();
    Ok(SoftmaxScores { entropy, confidence })
}

/// AUROC of `positive` scores against `negative` ones: P(s⁺ > s⁻) + ½·P(s⁺ = s⁻), which is the
/// area under sklearn's trapezoidal ROC curve. Computed from mid-ranks in O(n log n).
pub fn auroc(positive: &[f64], negative: &[f64]) -> Result<f64> {
    if positive.is_empty() || negative.is_empty() {
        return Err(Error::Empty("AUROC needs at least one positive and one negative sample".into()));
    }
    if positive.iter().chain(negative).any(|s| !s.is_finite()) {
        return Err(Error::Parameter("AUROC scores must be finite".into()));
    }
    let mut all: Vec<(f64, bool)> =
        positive.iter().map(|&s| (s, true)).chain(negative.iter().map(|&s| (s, false))).collect();
    all.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let mid_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mid_rank * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (np, nn) = (positive.len() as f64, negative.len() as f64);
    Ok((rank_sum - np * (np + 1.0) / 2.0) / (np * nn))
}

/// The ROC curve of `positive` scores against `negative` ones, as sklearn's `roc_curve` draws
/// it: (false-positive rate, true-positive rate) from (0, 0) to (1, 1), one point per distinct
/// threshold taken from the highest score down (tied scores move both rates at once), so the
/// trapezoidal area under it is [`auroc`].
pub fn roc_curve(positive: &[f64], negative: &[f64]) -> Result<Vec<(f64, f64)>> {
    auroc(positive, negative)?;
    let mut all: Vec<(f64, bool)> =
        positive.iter().map(|&v| (v, true)).chain(negative.iter().map(|&v| (v, false))).collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (np, nn) = (positive.len() as f64, negative.len() as f64);
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut curve = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < all.len() {
        let v = all[i].0;
        while i < all.len() && all[i].0 == v {
            if all[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        curve.push((fp as f64 / nn, tp as f64 / np));
    }
    Ok(curve)
}

/// AUROC of both detectors for one in-distribution and one OOD set.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct OodAuroc {
    /// Entropy as the score, OOD the positive class.
    pub auroc_entropy: f64,
    /// Max probability as the score, in-distribution the positive class.
    pub auroc_confidence: f64,
}

pub fn ood_auroc<F: Real>(inside: &Scores<F>, outside: &Scores<F>, temperature: Option<f64>) -> Result<OodAuroc> {
    check_classes(inside, outside)?;
    let (a, b) = (softmax_scores(inside, temperature)?, softmax_scores(outside, temperature)?);
    from_scores(&a, &b)
}

/// `Ok` when the in-distribution and OOD scores cover the same classes (a model's two outputs).
pub fn check_classes<F: Real>(inside: &Scores<F>, outside: &Scores<F>) -> Result<()> {
    match inside.k() == outside.k() {
        true => Ok(()),
        false => Err(Error::Shape(format!(
            "in-distribution scores have {} classes but OOD scores have {}",
            inside.k(),
            outside.k()
        ))),
    }
}

/// Both AUROCs from precomputed scores (used by the bootstrap, which resamples them).
pub fn from_scores(inside: &SoftmaxScores, outside: &SoftmaxScores) -> Result<OodAuroc> {
    Ok(OodAuroc {
        auroc_entropy: auroc(&outside.entropy, &inside.entropy)?,
        auroc_confidence: auroc(&inside.confidence, &outside.confidence)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_by_hand_and_rejects_nan() {
        // Positives 0.9, 0.5; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.5=0.5, 0.5>0.1) → 3.5/4.
        assert_eq!(auroc(&[0.9, 0.5], &[0.5, 0.1]).unwrap(), 0.875);
        assert!(auroc(&[f64::NAN], &[0.1]).is_err());
        assert!(auroc(&[], &[0.1]).is_err());
    }

    /// The worked example above as a curve: thresholds 0.9, 0.5 (one positive and one negative
    /// tied), 0.1; its trapezoidal area is the AUROC.
    #[test]
    fn roc_curve_by_hand() {
        let c = roc_curve(&[0.9, 0.5], &[0.5, 0.1]).unwrap();
        assert_eq!(c, [(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        let area: f64 = c.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
        assert_eq!(area, auroc(&[0.9, 0.5], &[0.5, 0.1]).unwrap());
        assert!(roc_curve(&[f64::NAN], &[0.1]).is_err());
    }
}
