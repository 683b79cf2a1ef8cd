//! Validated model outputs: an `[n, k]` matrix of logits or probabilities plus integer labels.
//!
//! Every metric, temperature fit, bootstrap and OOD score in the crate starts from a [`Scores`],
//! so the checks (shape, finiteness, label range, probability range) are done here once.

use crate::error::{Error, Result};
use crate::values::{Buffer, Slice, Values};
use num_traits::Float;
use rayon::prelude::*;
use std::marker::PhantomData;
use std::ops::Range;

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
    /// e^x for x ≤ 0, vectorisable (branch-free, within two ulps of libm).
    fn exp_nonpos(self) -> Self;
    /// Values of this type as storage.
    fn into_values(v: Vec<Self>) -> Values;
    /// Copies stored values into this precision: widening is exact, narrowing rounds to nearest.
    fn load(src: Slice, dst: &mut [Self]);
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn exp_nonpos(self) -> Self {
        crate::fastmath::exp_nonpos_f64(self)
    }
    fn into_values(v: Vec<Self>) -> Values {
        Values::f64(Buffer::Owned(v))
    }
    #[inline(always)]
    fn load(src: Slice, dst: &mut [Self]) {
        match src {
            Slice::F32(s) => dst.iter_mut().zip(s).for_each(|(d, &v)| *d = v as f64),
            Slice::F64(s) => dst.copy_from_slice(s),
        }
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
    #[inline(always)]
    fn exp_nonpos(self) -> Self {
        crate::fastmath::exp_nonpos_f32(self)
    }
    fn into_values(v: Vec<Self>) -> Values {
        Values::f32(Buffer::Owned(v))
    }
    #[inline(always)]
    fn load(src: Slice, dst: &mut [Self]) {
        match src {
            Slice::F32(s) => dst.copy_from_slice(s),
            Slice::F64(s) => dst.iter_mut().zip(s).for_each(|(d, &v)| *d = v as f32),
        }
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

/// How far a row of probabilities may sum from 1 (float32 softmax outputs of thousands of
/// classes are within 1e-5).
const ROW_SUM_TOLERANCE: f64 = 1e-3;

/// Scores whose shape and labels are checked but whose values are not scanned yet (see
/// [`Scores::unscanned`]).
#[derive(Debug)]
pub struct Unscanned<F>(Scores<F>);

impl<F: Real> Unscanned<F> {
    /// Checks that every value is finite (in [0, 1] for probabilities, within `F`'s range for
    /// logits); the error names the first bad value in row-major order.
    pub fn scan(self) -> Result<Scores<F>> {
        let mut s = self.0;
        let (bad, max_abs) = scan(s.values.slice(), s.kind == ScoreKind::Probs, F::max_value().f64());
        if let Some(i) = bad {
            let (row, col, value) = (i / s.k, i % s.k, s.values.slice().get(i));
            return Err(match (s.kind, value.is_finite()) {
                (_, false) => Error::NotFinite { row, col, value },
                (ScoreKind::Probs, true) => Error::NotProbability { row, col, value },
                (ScoreKind::Logits, true) => Error::Parameter(format!(
                    "row {row}, column {col}: value {value} overflows the float32 computation (use f64 precision)"
                )),
            });
        }
        if s.kind == ScoreKind::Probs {
            let values = s.values.slice();
            for row in 0..s.n {
                let sum: f64 = (row * s.k..(row + 1) * s.k).map(|i| values.get(i)).sum();
                if (sum - 1.0).abs() > ROW_SUM_TOLERANCE {
                    return Err(Error::RowSum { row, sum });
                }
            }
        }
        s.max_abs = max_abs;
        Ok(s)
    }

    /// The scores, for a pass that checks every value itself before trusting its results.
    pub(crate) fn unchecked(&self) -> &Scores<F> {
        &self.0
    }
}

/// A validated `[n, k]` score matrix (row-major) and its labels, computed on in precision `F`
/// whatever the stored precision.
#[derive(Debug, Clone)]
pub struct Scores<F> {
    values: Values,
    labels: Vec<usize>,
    n: usize,
    k: usize,
    kind: ScoreKind,
    /// Largest |value|: with a temperature it tells whether z/T stays finite in `F`.
    max_abs: f64,
    precision: PhantomData<F>,
}

impl<F: Real> Scores<F> {
    /// Checks the shape, that every value is finite (and in [0, 1] for probabilities) and that
    /// every label is in `0..k`.
    pub fn new(values: Vec<F>, k: usize, labels: &[i64], kind: ScoreKind) -> Result<Self> {
        Self::from_values(F::into_values(values), k, labels, kind)
    }

    /// [`Scores::new`] for values in any stored precision (e.g. mapped from a `.npy` file).
    pub fn from_values(values: Values, k: usize, labels: &[i64], kind: ScoreKind) -> Result<Self> {
        Self::unscanned(values, k, labels, kind)?.scan()
    }

    /// Checks the shape and the labels but not yet the values, for a computation that reads every
    /// value anyway and checks them in the same pass ([`crate::metrics::basic_unscanned`]): one
    /// pass over a large file instead of two.
    pub fn unscanned(values: Values, k: usize, labels: &[i64], kind: ScoreKind) -> Result<Unscanned<F>> {
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
        Ok(Unscanned(Self { values, labels, n, k, kind, max_abs: f64::NAN, precision: PhantomData }))
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

    /// Checks that logits divided by `temperature` stay finite in `F` (a tiny T on large logits
    /// would overflow the softmax).
    pub fn check_temperature(&self, temperature: Option<f64>) -> Result<()> {
        if let (ScoreKind::Logits, Some(t)) = (self.kind, temperature) {
            if !(F::of(self.max_abs) / F::of(t)).is_finite() {
                return Err(Error::Parameter(format!("temperature {t} makes logits up to {} overflow", self.max_abs)));
            }
        }
        Ok(())
    }
    /// Row `i`, in its stored precision.
    pub fn row(&self, i: usize) -> Slice<'_> {
        self.values.slice().sub(i * self.k..(i + 1) * self.k)
    }
    /// Rows `r`, contiguous, in their stored precision.
    pub fn rows(&self, r: Range<usize>) -> Slice<'_> {
        self.values.slice().sub(r.start * self.k..r.end * self.k)
    }

    /// The same predictions restricted to (or resampled at) the given rows.
    pub fn select(&self, rows: &[usize]) -> Self {
        let k = self.k;
        let values = match self.values.slice() {
            Slice::F32(s) => {
                Values::f32(Buffer::Owned(rows.iter().flat_map(|&r| &s[r * k..(r + 1) * k]).copied().collect()))
            }
            Slice::F64(s) => {
                Values::f64(Buffer::Owned(rows.iter().flat_map(|&r| &s[r * k..(r + 1) * k]).copied().collect()))
            }
        };
        Self {
            values,
            labels: rows.iter().map(|&r| self.labels[r]).collect(),
            n: rows.len(),
            k,
            kind: self.kind,
            max_abs: self.max_abs,
            precision: PhantomData,
        }
    }
}

/// One parallel pass over the values: the index of the first value that is not finite, does
/// not fit the computation's precision (`limit`: a float64 1e300 is not a float32), or is not a
/// probability; and the largest |value|. Blocks are checked branch-free (vectorised) and searched
/// only when they fail.
fn scan(s: Slice, probs: bool, limit: f64) -> (Option<usize>, f64) {
    fn first(a: Option<usize>, b: Option<usize>) -> Option<usize> {
        match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }
    const BLOCK: usize = 1 << 16;
    fn go<T: Real>(s: &[T], probs: bool, limit: f64) -> (Option<usize>, f64) {
        let limit = T::of(limit.min(T::max_value().f64()));
        let ok = |v: T| if probs { v >= T::zero() && v <= T::one() } else { v.abs() <= limit };
        s.par_chunks(BLOCK)
            .enumerate()
            .map(|(c, b)| {
                let (all_ok, max) =
                    b.iter().fold((true, T::zero()), |(o, m), &v| (o & ok(v), if v.abs() > m { v.abs() } else { m }));
                let bad = if all_ok { None } else { b.iter().position(|&v| !ok(v)).map(|i| c * BLOCK + i) };
                (bad, max.f64())
            })
            .reduce(|| (None, 0.0), |a, b| (first(a.0, b.0), a.1.max(b.1)))
    }
    match s {
        Slice::F32(v) => go(v, probs, limit),
        Slice::F64(v) => go(v, probs, limit),
    }
}
