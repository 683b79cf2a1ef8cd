//! Validated model outputs: an `[n, k]` matrix of logits or probabilities plus integer labels.
//!
//! Every metric, temperature fit, bootstrap and OOD score in the crate starts from a [`Scores`],
//! so the checks (shape, finiteness, label range, probability range) are done here once.

use crate::error::{Error, Result};
use num_traits::Float;
use rayon::prelude::*;

/// What the numbers in a [`Scores`] matrix mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreKind {
    /// Unnormalised log-probabilities; softmax is applied (after dividing by a temperature).
    Logits,
    /// Probabilities used as they are (no softmax, no temperature).
    Probs,
}

/// The floating-point types the core computes in. `f64` gives the paper's definitions exactly;
/// `f32` reproduces what the official float32 PyTorch pipeline computes, rounding included.
pub trait Real: Float + Send + Sync + std::fmt::Debug + std::iter::Sum + 'static {
    /// Converts a finite `f64`, rounding to nearest.
    fn of(x: f64) -> Self;
    fn f64(self) -> f64;
    /// Bin edges as float32 `torch.linspace(0, 1, m + 1)` gives them (for `f32`) or the correctly
    /// rounded `j / m` (for `f64`).
    fn unit_edges(m: usize) -> Vec<Self>;
    /// Float32 values in this precision (moved, or widened exactly).
    fn from_f32_vec(v: Vec<f32>) -> Vec<Self>;
    /// Float64 values in this precision (moved, or rounded to nearest).
    fn from_f64_vec(v: Vec<f64>) -> Vec<Self>;
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn from_f32_vec(v: Vec<f32>) -> Vec<Self> {
        v.par_iter().map(|&x| x as f64).collect()
    }
    fn from_f64_vec(v: Vec<f64>) -> Vec<Self> {
        v
    }
    fn f64(self) -> f64 {
        self
    }
    fn unit_edges(m: usize) -> Vec<Self> {
        (0..=m).map(|j| j as f64 / m as f64).collect()
    }
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn from_f32_vec(v: Vec<f32>) -> Vec<Self> {
        v
    }
    fn from_f64_vec(v: Vec<f64>) -> Vec<Self> {
        v.par_iter().map(|&x| x as f32).collect()
    }
    fn f64(self) -> f64 {
        self as f64
    }
    /// ATen's CPU `linspace` kernel: the step is computed in float32 and the grid is filled from
    /// both ends (`start + step * i` in the first half, `end - step * (steps - 1 - i)` after), with
    /// the multiply-add fused (rounded once), so some edges differ from float32(j/m) by one ulp,
    /// which moves samples between bins. The products are exact in f64, so one f64 → f32 rounding
    /// reproduces the fused operation.
    fn unit_edges(m: usize) -> Vec<Self> {
        let steps = m + 1;
        let step = (1.0f32 / m as f32) as f64;
        let half = steps / 2;
        (0..steps)
            .map(|i| if i < half { (step * i as f64) as f32 } else { (1.0 - step * (steps - 1 - i) as f64) as f32 })
            .collect()
    }
}

/// A validated `[n, k]` score matrix (row-major) and its labels.
#[derive(Debug, Clone)]
pub struct Scores<F> {
    values: Vec<F>,
    labels: Vec<usize>,
    n: usize,
    k: usize,
    kind: ScoreKind,
}

impl<F: Real> Scores<F> {
    /// Checks the shape, that every value is finite (and in [0, 1] for probabilities) and that
    /// every label is in `0..k`.
    pub fn new(values: Vec<F>, k: usize, labels: &[i64], kind: ScoreKind) -> Result<Self> {
        if k == 0 {
            return Err(Error::Shape("the score matrix has 0 classes".into()));
        }
        if values.len() % k != 0 {
            return Err(Error::Shape(format!("{} values do not form rows of {k} classes", values.len())));
        }
        let n = values.len() / k;
        if n == 0 {
            return Err(Error::Empty("the score matrix has no rows".into()));
        }
        if labels.len() != n {
            return Err(Error::Shape(format!("{n} score rows but {} labels", labels.len())));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::NotFinite { row: i / k, col: i % k, value: values[i].f64() });
        }
        if kind == ScoreKind::Probs {
            if let Some(i) = values.iter().position(|&v| v < F::zero() || v > F::one()) {
                return Err(Error::NotProbability { row: i / k, col: i % k, value: values[i].f64() });
            }
        }
        let labels = labels
            .iter()
            .enumerate()
            .map(|(index, &label)| {
                usize::try_from(label).ok().filter(|&l| l < k).ok_or(Error::LabelOutOfRange {
                    index,
                    label,
                    classes: k,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { values, labels, n, k, kind })
    }

    pub fn n(&self) -> usize {
        self.n
    }
    pub fn k(&self) -> usize {
        self.k
    }
    pub fn kind(&self) -> ScoreKind {
        self.kind
    }
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }
    pub fn values(&self) -> &[F] {
        &self.values
    }
    pub fn row(&self, i: usize) -> &[F] {
        &self.values[i * self.k..(i + 1) * self.k]
    }

    /// The same predictions restricted to (or resampled at) the given rows.
    pub fn select(&self, rows: &[usize]) -> Self {
        let mut values = Vec::with_capacity(rows.len() * self.k);
        for &r in rows {
            values.extend_from_slice(self.row(r));
        }
        Self {
            values,
            labels: rows.iter().map(|&r| self.labels[r]).collect(),
            n: rows.len(),
            k: self.k,
            kind: self.kind,
        }
    }
}

/// Probabilities of one row after dividing logits by `temperature`, written into `out`.
/// Returns `ln(sum exp(z/T - max))`, so that `log p_j = z_j/T - max - lse` for logits.
///
/// This follows ATen's CPU softmax (subtract the max, exponentiate, multiply by the reciprocal of
/// the sum) so that float32 results match PyTorch's to the last bit in the cases that matter.
#[inline]
pub(crate) fn softmax_row<F: Real>(row: &[F], kind: ScoreKind, temperature: Option<F>, out: &mut [F]) -> RowShift<F> {
    match kind {
        ScoreKind::Probs => {
            out.copy_from_slice(row);
            RowShift { max: F::zero(), log_sum: F::zero() }
        }
        ScoreKind::Logits => {
            match temperature {
                Some(t) => out.iter_mut().zip(row).for_each(|(o, &z)| *o = z / t),
                None => out.copy_from_slice(row),
            }
            let max = out.iter().copied().fold(F::neg_infinity(), F::max);
            let mut sum = F::zero();
            for o in out.iter_mut() {
                *o = (*o - max).exp();
                sum = sum + *o;
            }
            let inv = F::one() / sum;
            out.iter_mut().for_each(|o| *o = *o * inv);
            RowShift { max, log_sum: sum.ln() }
        }
    }
}

/// What [`softmax_row`] subtracted: `log p_j = z_j / T - max - log_sum`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowShift<F> {
    pub max: F,
    pub log_sum: F,
}

/// Confidence and prediction of a probability row: the maximum and the FIRST index attaining it,
/// as `torch.max(dim=1)` returns on ties.
#[inline]
pub(crate) fn argmax<F: Real>(p: &[F]) -> (F, usize) {
    let mut best = (p[0], 0);
    for (j, &v) in p.iter().enumerate().skip(1) {
        if v > best.0 {
            best = (v, j);
        }
    }
    best
}
