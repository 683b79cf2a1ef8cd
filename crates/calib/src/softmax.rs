//! The per-row softmax kernel every metric pass shares, written so that the compiler vectorises it
//! (lane-wise max and sums, the branch-free exponential of [`crate::fastmath`]), and run with
//! AVX-512 or AVX2 when the CPU has them (see [`dispatch`]).

use crate::scores::{Real, ScoreKind};
use crate::values::Slice;

const LANES: usize = 8;

/// Sum in 8 interleaved lanes (element i goes to lane i mod 8) combined pairwise: a fixed
/// order, so results do not depend on the instruction set, and one that stays in vector registers.
#[inline(always)]
fn lanes<F: Real>(v: &[F], init: F, op: impl Fn(F, F) -> F) -> [F; LANES] {
    let mut acc = [init; LANES];
    let mut blocks = v.chunks_exact(LANES);
    for b in &mut blocks {
        for i in 0..LANES {
            acc[i] = op(acc[i], b[i]);
        }
    }
    for (a, &x) in acc.iter_mut().zip(blocks.remainder()) {
        *a = op(*a, x);
    }
    acc
}

#[inline(always)]
fn lane_sum<F: Real>(v: &[F]) -> F {
    let a = lanes(v, F::zero(), |a, b| a + b);
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

/// Σ a_i b_i in the lane order of [`lane_sum`].
#[inline(always)]
fn lane_dot<F: Real>(a: &[F], b: &[F]) -> F {
    let mut acc = [F::zero(); LANES];
    let (mut xa, mut xb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (u, v) in (&mut xa).zip(&mut xb) {
        for i in 0..LANES {
            acc[i] = acc[i] + u[i] * v[i];
        }
    }
    for ((s, &u), &v) in acc.iter_mut().zip(xa.remainder()).zip(xb.remainder()) {
        *s = *s + u * v;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

#[inline(always)]
fn lane_max<F: Real>(v: &[F]) -> F {
    lanes(v, F::neg_infinity(), |a, b| if b > a { b } else { a }).iter().fold(F::neg_infinity(), |m, &x| {
        if x > m {
            x
        } else {
            m
        }
    })
}

/// The first index whose value passes `hit`: blocks of 16 are tested without branches (which
/// vectorises) and only the block holding a hit is searched element by element.
#[inline(always)]
fn first_where<F: Real>(v: &[F], hit: impl Fn(F) -> bool) -> Option<usize> {
    const BLOCK: usize = 16;
    let mut blocks = v.chunks_exact(BLOCK);
    for (c, b) in (&mut blocks).enumerate() {
        if b.iter().fold(false, |any, &x| any | hit(x)) {
            return b.iter().position(|&x| hit(x)).map(|i| c * BLOCK + i);
        }
    }
    let rest = blocks.remainder();
    rest.iter().position(|&x| hit(x)).map(|i| v.len() - rest.len() + i)
}

/// What one row yields besides its probabilities.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowStats<F> {
    /// ln Σ_j exp(z_j/T − max): log p_j = shifted_j − log_sum.
    pub log_sum: F,
    /// max_j p_j.
    pub conf: F,
    /// The FIRST index attaining `conf`, as `torch.max(dim=1)` returns on ties.
    pub pred: usize,
}

/// Scratch space for one row: the shifted logits z/T − max and the probabilities.
pub(crate) struct Row<F> {
    pub shifted: Vec<F>,
    pub p: Vec<F>,
    /// The max of z/T subtracted last (logits).
    pub max: F,
}

impl<F: Real> Row<F> {
    pub fn new(k: usize) -> Self {
        Self { shifted: vec![F::zero(); k], p: vec![F::zero(); k], max: F::zero() }
    }

    /// The probabilities of a part `z` of a row whose [`Row::compute`] found the max `max` and
    /// the confidence `conf` (= 1/Σ for logits), into `out`: the same operations element by
    /// element, so the same values, without the rest of the row.
    #[inline(always)]
    pub fn part(z: Slice, kind: ScoreKind, t: Option<F>, max: F, conf: F, out: &mut [F]) {
        F::load(z, out);
        if kind == ScoreKind::Probs {
            return;
        }
        for v in out.iter_mut() {
            let s = match t {
                Some(t) => *v / t,
                None => *v,
            };
            *v = (s - max).exp_nonpos() * conf;
        }
    }

    /// Softmax of `z / t` (or `z` itself for probabilities) in precision `F`, whatever `z`'s,
    /// in ATen's CPU order of operations: subtract the max, exponentiate, multiply by the
    /// reciprocal of the sum.
    #[inline(always)]
    pub fn compute(&mut self, z: Slice, kind: ScoreKind, t: Option<F>) -> RowStats<F> {
        let log_sum = match kind {
            ScoreKind::Probs => {
                F::load(z, &mut self.p);
                F::zero()
            }
            ScoreKind::Logits => {
                let sum = self.exponentials(z, t);
                let inv = F::one() / sum;
                self.p.iter_mut().for_each(|p| *p = *p * inv);
                sum.ln()
            }
        };
        let conf = lane_max(&self.p);
        let pred = self.p.iter().position(|&v| v == conf).expect("the max is an element");
        RowStats { log_sum, conf, pred }
    }

    /// The confidence and prediction only, without writing the probabilities (what ECE needs):
    /// the maximum probability is exp(0)·(1/Σ) = 1/Σ exactly, and the prediction is the first
    /// class whose probability e_j·(1/Σ) rounds to it, as [`Row::compute`] would find.
    /// Leaves `p` holding the unnormalised exponentials.
    #[inline(always)]
    pub fn compute_conf(&mut self, z: Slice, kind: ScoreKind, t: Option<F>) -> RowStats<F> {
        if kind == ScoreKind::Probs {
            return self.compute(z, kind, t);
        }
        let sum = self.exponentials(z, t);
        let inv = F::one() / sum;
        let pred = first_where(&self.p, |e| e * inv == inv).expect("exp(0) = 1 is an element");
        RowStats { log_sum: sum.ln(), conf: inv, pred }
    }

    /// [`Row::compute_conf`] for logits without a temperature, on values not checked yet: None
    /// when the row holds a non-finite value (NaN and +∞ make the sum NaN, −∞ shows as the
    /// smallest shifted value; so does a float64 value beyond float32's range in f32).
    #[inline(always)]
    pub fn compute_conf_checked(&mut self, z: Slice) -> Option<RowStats<F>> {
        let sum = self.exponentials(z, None);
        let lowest = lanes(&self.shifted, F::zero(), |a, b| if b < a { b } else { a });
        if !sum.is_finite() || lowest.iter().any(|&v| v == F::neg_infinity()) {
            return None;
        }
        let inv = F::one() / sum;
        let pred = first_where(&self.p, |e| e * inv == inv).expect("exp(0) = 1 is an element");
        Some(RowStats { log_sum: sum.ln(), conf: inv, pred })
    }

    /// Fills `shifted` with z/t − max and `p` with exp(shifted); returns Σ exp.
    #[inline(always)]
    fn exponentials(&mut self, z: Slice, t: Option<F>) -> F {
        F::load(z, &mut self.shifted);
        if let Some(t) = t {
            self.shifted.iter_mut().for_each(|s| *s = *s / t);
        }
        let max = lane_max(&self.shifted);
        self.max = max;
        self.shifted.iter_mut().for_each(|s| *s = *s - max);
        self.p.iter_mut().zip(&self.shifted).for_each(|(p, &s)| *p = s.exp_nonpos());
        lane_sum(&self.p)
    }

    /// −log p_y (logits only).
    #[inline(always)]
    pub fn nll(&self, s: &RowStats<F>, y: usize) -> F {
        s.log_sum - self.shifted[y]
    }

    /// −log p_y of the row [`Row::compute`] filled: from the log-sum for logits, and for
    /// probabilities `−ln max(p_y, ε)` with ε the precision's machine epsilon (scikit-learn's
    /// `log_loss` clip), so that a label given probability 0 costs a finite amount.
    #[inline(always)]
    pub fn nll_of(&self, s: &RowStats<F>, y: usize, kind: ScoreKind) -> F {
        match kind {
            ScoreKind::Logits => self.nll(s, y),
            ScoreKind::Probs => -self.p[y].max(F::epsilon()).ln(),
        }
    }

    /// The Brier score `Σ_k (p_k − 1[k = y])²` of the row [`Row::compute`] filled.
    #[inline(always)]
    pub fn brier(&self, y: usize) -> F {
        let squares = self.p.iter().fold(F::zero(), |a, &v| a + v * v);
        squares - (F::one() + F::one()) * self.p[y] + F::one()
    }

    /// Predictive entropy −Σ p log p in nats; classes with p = 0 add nothing.
    #[inline(always)]
    pub fn entropy(&self, s: &RowStats<F>, kind: ScoreKind) -> F {
        match kind {
            ScoreKind::Logits => s.log_sum - lane_dot(&self.p, &self.shifted),
            ScoreKind::Probs => {
                -self.p.iter().filter(|&&v| v > F::zero()).map(|&v| v * v.ln()).fold(F::zero(), |a, b| a + b)
            }
        }
    }
}

/// A piece of work over a block of rows. `run` must be `#[inline(always)]`: [`dispatch`] then
/// compiles it, and the row kernel inlined into it, again for AVX2 and AVX-512.
pub(crate) trait Kernel {
    type Out;
    fn run(self) -> Self::Out;
}

/// Runs `k` compiled for AVX-512F or AVX2 when the CPU has them, else for the baseline
/// instruction set. The kernels use no FMA, so every path gives bit-identical results.
pub(crate) fn dispatch<K: Kernel>(k: K) -> K::Out {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512<K: Kernel>(k: K) -> K::Out {
            k.run()
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<K: Kernel>(k: K) -> K::Out {
            k.run()
        }
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { avx512(k) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { avx2(k) };
        }
    }
    k.run()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scores::Scores;

    /// Softmax statistics of every row, as one kernel.
    struct AllRows<'a, F>(&'a Scores<F>);

    impl<F: Real> Kernel for AllRows<'_, F> {
        type Out = Vec<(F, F, usize, F)>;
        #[inline(always)]
        fn run(self) -> Self::Out {
            let mut row = Row::new(self.0.k());
            (0..self.0.n())
                .map(|i| {
                    let light = row.compute_conf(self.0.row(i), self.0.kind(), Some(F::of(1.7)));
                    let st = row.compute(self.0.row(i), self.0.kind(), Some(F::of(1.7)));
                    assert_eq!((light.log_sum, light.conf, light.pred), (st.log_sum, st.conf, st.pred));
                    (st.log_sum, st.conf, st.pred, row.entropy(&st, self.0.kind()))
                })
                .collect()
        }
    }

    fn scores<F: Real>() -> Scores<F> {
        let (n, k) = (500, 37);
        let v: Vec<F> = (0..n * k).map(|i| F::of(((i * 7919) % 1013) as f64 / 37.0 - 13.0)).collect();
        let labels: Vec<i64> = (0..n as i64).map(|i| i % k as i64).collect();
        Scores::new(v, k, &labels, ScoreKind::Logits).unwrap()
    }

    #[test]
    fn simd_and_baseline_paths_agree_bit_for_bit() {
        let (a, b) = (scores::<f64>(), scores::<f32>());
        assert_eq!(dispatch(AllRows(&a)), AllRows(&a).run());
        assert_eq!(dispatch(AllRows(&b)), AllRows(&b).run());
    }

    #[test]
    fn lane_sums_match_plain_sums_closely() {
        let v: Vec<f64> = (0..1003).map(|i| (i as f64).sin()).collect();
        let plain: f64 = v.iter().sum();
        assert!((lane_sum(&v) - plain).abs() < 1e-12);
        assert!((lane_dot(&v, &v) - v.iter().map(|x| x * x).sum::<f64>()).abs() < 1e-11);
        assert_eq!(lane_max(&v), v.iter().cloned().fold(f64::MIN, f64::max));
    }
}
