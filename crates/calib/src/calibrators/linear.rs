//! Vector, matrix and Dirichlet scaling: an affine map of the scores followed by a softmax,
//! fitted by minimising the mean negative log-likelihood (NLL) of the fitting labels.
//!
//! - **Vector scaling** (Guo et al., "On calibration of modern neural networks", ICML 2017):
//!   q = softmax(a ⊙ x + b), a per-class scale a and bias b.
//! - **Matrix scaling** (Guo et al. 2017): q = softmax(W x + b) with a K×K matrix W. With ODIR
//!   (Kull et al., "Beyond temperature scaling", NeurIPS 2019) the loss adds
//!   λ·Σ_{i≠j} w_ij² / (K(K−1)) + μ·Σ_j b_j² / K.
//! - **Dirichlet calibration** (Kull et al. 2019, reference code `dirichletcal`): matrix scaling
//!   of the log-probabilities, q = softmax(W ln p + b), with the same ODIR penalty (λ, μ).
//!
//! The features x: vector and matrix scaling act on the logits, or on ln p when given
//! probabilities; Dirichlet calibration on log-probabilities (the log-softmax of logits). A
//! probability is clipped below at the smallest normal f64, 2.2e-308, before its logarithm, as
//! dirichletcal's `clip_for_log` does (`np.finfo(float64).tiny`), so p = 0 gives ln p = −708.4;
//! the log-softmax of logits is clamped at the same value, so Dirichlet calibration treats logits
//! and their softmax alike.
//!
//! Where we differ from the references, and why:
//! - dirichletcal fixes the last row of W and b at 0 (`ref_row`) and applies ODIR to the weights
//!   after that subtraction; we fit the free K×K matrix and penalise it as the paper writes the
//!   penalty. Without a penalty both parametrisations give the same map; with one, the paper's
//!   form treats every class alike.
//! - dirichletcal minimises with Newton's method for K ≤ 36 and L-BFGS-B (factr = 1) above, Guo
//!   et al. with a fixed number of gradient steps. We use L-BFGS ([`super::optimize`]) down to a
//!   largest gradient entry of 1e-10, on features divided by their root mean square so that the
//!   stopping rule and the iterations do not depend on the scale of the scores, and a fit that
//!   does not converge is an error.
//! - Without a penalty the loss does not change when one vector is added to every row of W or
//!   one constant to every b_j (each row of outputs shifts by a constant); we return the
//!   representative whose columns of W, and b, sum to 0 (the smallest), so the fitted parameters
//!   are unique. The same holds for b alone when μ = 0 and for W alone when λ = 0.
//! - The loss has no finite minimiser when unpenalised parameters alone classify every fitting
//!   row correctly (separable rows: the loss keeps falling as those weights grow), or when a class
//!   has no fitting row and its bias is unpenalised (or its feature has one sign and its diagonal
//!   weight is unpenalised): its probability can be pushed to 0 without end. Both are errors, not
//!   a map with huge weights. Matrix and Dirichlet scaling also refuse fewer rows than classes.

use super::optimize::{self, Lbfgs};
use super::{check_params, Calibrator, Predictions};
use crate::error::{Error, Result};
use crate::scores::ScoreKind;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// q = softmax(scale ⊙ x + bias), x the logits (ln p for probabilities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vector {
    pub classes: usize,
    pub scale: Vec<f64>,
    pub bias: Vec<f64>,
}

/// q = softmax(W x + b), x the logits (ln p for probabilities); `weights` is W row-major (row i
/// gives output class i).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub classes: usize,
    pub weights: Vec<f64>,
    pub bias: Vec<f64>,
}

/// q = softmax(W ln p + b); `weights` is W row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dirichlet {
    pub classes: usize,
    pub weights: Vec<f64>,
    pub bias: Vec<f64>,
}

impl Vector {
    pub fn fit(x: &Predictions, labels: &[usize]) -> Result<Self> {
        let (scale, bias) = fit("vector scaling", x, labels, Shape::Vector, Input::Scores, None)?;
        Ok(Self { classes: x.k(), scale, bias })
    }
    pub(super) fn validate(&self) -> Result<()> {
        check_classes(self.classes)?;
        check_params("vector scale", &self.scale, self.classes)?;
        check_params("vector bias", &self.bias, self.classes)
    }
}

impl Calibrator for Vector {
    fn classes(&self) -> usize {
        self.classes
    }
    fn transform(&self, x: &Predictions) -> Result<Vec<f64>> {
        super::check_width(x, self.classes)?;
        Ok(apply(Shape::Vector, x, Input::Scores, &self.scale, &self.bias))
    }
}

impl Matrix {
    pub fn fit(x: &Predictions, labels: &[usize], odir: Option<(f64, f64)>) -> Result<Self> {
        let name = if odir.is_some() { "matrix scaling (ODIR)" } else { "matrix scaling" };
        let (weights, bias) = fit(name, x, labels, Shape::Full, Input::Scores, odir)?;
        Ok(Self { classes: x.k(), weights, bias })
    }
    pub(super) fn validate(&self) -> Result<()> {
        check_classes(self.classes)?;
        check_params("matrix weights", &self.weights, self.classes * self.classes)?;
        check_params("matrix bias", &self.bias, self.classes)
    }
}

impl Calibrator for Matrix {
    fn classes(&self) -> usize {
        self.classes
    }
    fn transform(&self, x: &Predictions) -> Result<Vec<f64>> {
        super::check_width(x, self.classes)?;
        Ok(apply(Shape::Full, x, Input::Scores, &self.weights, &self.bias))
    }
}

impl Dirichlet {
    pub fn fit(x: &Predictions, labels: &[usize], lambda: f64, mu: f64) -> Result<Self> {
        let odir = Some((lambda, mu));
        let (weights, bias) = fit("Dirichlet calibration", x, labels, Shape::Full, Input::LogProbs, odir)?;
        Ok(Self { classes: x.k(), weights, bias })
    }
    pub(super) fn validate(&self) -> Result<()> {
        check_classes(self.classes)?;
        check_params("Dirichlet weights", &self.weights, self.classes * self.classes)?;
        check_params("Dirichlet bias", &self.bias, self.classes)
    }
}

impl Calibrator for Dirichlet {
    fn classes(&self) -> usize {
        self.classes
    }
    fn transform(&self, x: &Predictions) -> Result<Vec<f64>> {
        super::check_width(x, self.classes)?;
        Ok(apply(Shape::Full, x, Input::LogProbs, &self.weights, &self.bias))
    }
}

fn check_classes(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::Shape("a calibrator for 0 classes".into()));
    }
    Ok(())
}

/// How the outputs depend on the features: a scale per class, or a full matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Vector,
    Full,
}

impl Shape {
    /// The number of weights (a, or W) before the K biases.
    fn weights(self, k: usize) -> usize {
        match self {
            Self::Vector => k,
            Self::Full => k * k,
        }
    }
}

/// What the map acts on: the scores (logits, or ln p of probabilities), or log-probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Input {
    Scores,
    LogProbs,
}

/// The features of rows `x`, row-major `[n, k]` (see the module documentation).
fn features(x: &Predictions, input: Input) -> Vec<f64> {
    let floor = f64::MIN_POSITIVE.ln();
    match (x.kind(), input) {
        (ScoreKind::Logits, Input::Scores) => x.values().to_vec(),
        (ScoreKind::Logits, Input::LogProbs) => x.log_probs().into_iter().map(|v| v.max(floor)).collect(),
        (ScoreKind::Probs, _) => x.values().iter().map(|p| p.max(f64::MIN_POSITIVE).ln()).collect(),
    }
}

/// Rows per parallel task.
const CHUNK: usize = 256;
/// Output classes per parallel task of the gradient.
const BLOCK: usize = 32;

/// Writes the output logits of rows `x` (`[rows, k]`) under θ = [weights | bias] into `u`.
fn logits(shape: Shape, k: usize, theta: &[f64], x: &[f64], u: &mut [f64]) {
    let (w, b) = theta.split_at(shape.weights(k));
    let rows = x.len() / k;
    match shape {
        Shape::Vector => {
            for (u, x) in u.chunks_mut(k).zip(x.chunks(k)) {
                for j in 0..k {
                    u[j] = w[j] * x[j] + b[j];
                }
            }
        }
        Shape::Full => {
            // SAFETY: x is [rows, k] (strides k, 1); Wᵀ is read from the row-major k×k W with
            // strides (1, k); u is [rows, k] (strides k, 1) and does not overlap either.
            unsafe {
                matrixmultiply::dgemm(
                    rows,
                    k,
                    k,
                    1.0,
                    x.as_ptr(),
                    k as isize,
                    1,
                    w.as_ptr(),
                    1,
                    k as isize,
                    0.0,
                    u.as_mut_ptr(),
                    k as isize,
                    1,
                );
            }
            u.chunks_mut(k).for_each(|u| u.iter_mut().zip(b).for_each(|(u, b)| *u += b));
        }
    }
}

/// Calibrated probabilities of `x` under the map (`weights`, `bias`) in the original features.
fn apply(shape: Shape, x: &Predictions, input: Input, weights: &[f64], bias: &[f64]) -> Vec<f64> {
    let k = x.k();
    let f = features(x, input);
    let theta: Vec<f64> = weights.iter().chain(bias).copied().collect();
    let mut out = vec![0.0; f.len()];
    out.par_chunks_mut(CHUNK * k).zip(f.par_chunks(CHUNK * k)).for_each(|(u, x)| {
        logits(shape, k, &theta, x, u);
        u.chunks_mut(k).for_each(super::softmax_in_place);
    });
    out
}

/// The fitting problem on features divided by their root mean square `s`: θ̃ = [s·weights |
/// bias], and the penalty Σ cᵢ θ̃ᵢ² (ODIR rewritten for θ̃).
struct Problem<'a> {
    shape: Shape,
    k: usize,
    /// Features / s, `[n, k]`.
    x: Vec<f64>,
    s: f64,
    labels: &'a [usize],
    penalty: Vec<f64>,
}

impl<'a> Problem<'a> {
    fn new(x: &Predictions, labels: &'a [usize], shape: Shape, input: Input, odir: Option<(f64, f64)>) -> Self {
        let k = x.k();
        let mut x = features(x, input);
        let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt();
        let s = if rms > 0.0 && rms.is_finite() { rms } else { 1.0 };
        x.iter_mut().for_each(|v| *v /= s);
        let nw = shape.weights(k);
        let mut penalty = vec![0.0; nw + k];
        if let Some((lambda, mu)) = odir {
            if shape == Shape::Full && k > 1 {
                let off = lambda / (k * (k - 1)) as f64 / (s * s);
                (0..k * k).filter(|i| i / k != i % k).for_each(|i| penalty[i] = off);
            }
            penalty[nw..].iter_mut().for_each(|c| *c = mu / k as f64);
        }
        Self { shape, k, x, s, labels, penalty }
    }

    fn n(&self) -> usize {
        self.labels.len()
    }

    /// Mean NLL plus penalty at θ̃; writes the gradient into `grad`.
    fn loss(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let (k, n) = (self.k, self.n());
        // Residuals softmax − one-hot, [n, k].
        let mut r = vec![0.0; n * k];
        let parts: Vec<f64> = r
            .par_chunks_mut(CHUNK * k)
            .zip(self.x.par_chunks(CHUNK * k))
            .zip(self.labels.par_chunks(CHUNK))
            .map(|((r, x), y)| {
                logits(self.shape, k, theta, x, r);
                let mut nll = 0.0;
                for (row, &l) in r.chunks_mut(k).zip(y) {
                    let max = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                    let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                    nll += lse - row[l];
                    row.iter_mut().for_each(|v| *v = (*v - lse).exp());
                    row[l] -= 1.0;
                }
                nll
            })
            .collect();
        let inv_n = 1.0 / n as f64;
        let mut value = parts.iter().sum::<f64>() * inv_n;
        let nw = self.shape.weights(k);
        let (gw, gb) = grad.split_at_mut(nw);
        match self.shape {
            Shape::Vector => {
                gw.par_chunks_mut(BLOCK).zip(gb.par_chunks_mut(BLOCK)).enumerate().for_each(|(blk, (ga, gb))| {
                    let j0 = blk * BLOCK;
                    ga.fill(0.0);
                    gb.fill(0.0);
                    for (r, x) in r.chunks(k).zip(self.x.chunks(k)) {
                        for (j, (ga, gb)) in ga.iter_mut().zip(gb.iter_mut()).enumerate() {
                            *ga += r[j0 + j] * x[j0 + j];
                            *gb += r[j0 + j];
                        }
                    }
                });
            }
            Shape::Full => {
                gw.par_chunks_mut(BLOCK * k).zip(gb.par_chunks_mut(BLOCK)).enumerate().for_each(|(blk, (gw, gb))| {
                    let i0 = blk * BLOCK;
                    let rows = gb.len();
                    // SAFETY: rows i0..i0+rows of Rᵀ are read from the [n, k] residuals with
                    // strides (1, k); x is [n, k] (strides k, 1); gw is this block's [rows, k]
                    // slice of the gradient (strides k, 1), disjoint from both inputs.
                    unsafe {
                        matrixmultiply::dgemm(
                            rows,
                            n,
                            k,
                            1.0,
                            r.as_ptr().add(i0),
                            1,
                            k as isize,
                            self.x.as_ptr(),
                            k as isize,
                            1,
                            0.0,
                            gw.as_mut_ptr(),
                            k as isize,
                            1,
                        );
                    }
                    gb.fill(0.0);
                    for r in r.chunks(k) {
                        gb.iter_mut().zip(&r[i0..i0 + rows]).for_each(|(g, r)| *g += r);
                    }
                });
            }
        }
        for ((g, &t), &c) in grad.iter_mut().zip(theta).zip(&self.penalty) {
            *g = *g * inv_n + 2.0 * c * t;
            value += c * t * t;
        }
        value
    }

    /// The Hessian of [`Problem::loss`] at θ̃, row-major `[P, P]` for the P = weights + K
    /// parameters: (1/n) Σ_rows (diag p − p pᵀ) ⊗ (the row's features and 1, outer), plus the
    /// penalty's 2c on the diagonal.
    fn hessian(&self, theta: &[f64], h: &mut [f64]) {
        let (k, n) = (self.k, self.n());
        let nw = self.shape.weights(k);
        let np = nw + k;
        // The full map's parameter index of output i's coefficient on feature a (a = k: the bias).
        let index = |i: usize, a: usize| if a == k { nw + i } else { i * k + a };
        let parts: Vec<Vec<f64>> = self
            .x
            .par_chunks(CHUNK * k)
            .map(|x| {
                let mut acc = vec![0.0; np * np];
                let mut u = vec![0.0; x.len()];
                logits(self.shape, k, theta, x, &mut u);
                let mut z = vec![1.0; k + 1];
                for (p, x) in u.chunks_mut(k).zip(x.chunks(k)) {
                    super::softmax_in_place(p);
                    z[..k].copy_from_slice(x);
                    for i in 0..k {
                        for i2 in 0..k {
                            let a_ii = if i == i2 { p[i] - p[i] * p[i2] } else { -p[i] * p[i2] };
                            match self.shape {
                                Shape::Full => {
                                    for a in 0..=k {
                                        let row = index(i, a) * np;
                                        let za = a_ii * z[a];
                                        for a2 in 0..=k {
                                            acc[row + index(i2, a2)] += za * z[a2];
                                        }
                                    }
                                }
                                Shape::Vector => {
                                    let (f, f2) = ([x[i], 1.0], [x[i2], 1.0]);
                                    for (a, fa) in [i, nw + i].into_iter().zip(f) {
                                        for (a2, fa2) in [i2, nw + i2].into_iter().zip(f2) {
                                            acc[a * np + a2] += a_ii * fa * fa2;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                acc
            })
            .collect();
        let inv_n = 1.0 / n as f64;
        h.fill(0.0);
        for part in &parts {
            h.iter_mut().zip(part).for_each(|(h, v)| *h += v * inv_n);
        }
        (0..np).for_each(|i| h[i * np + i] += 2.0 * self.penalty[i]);
    }

    /// Whether the unpenalised parameters of θ̃ alone classify every row correctly (strictly):
    /// then growing them lowers the loss without end.
    fn separates(&self, theta: &[f64]) -> bool {
        let k = self.k;
        let free: Vec<f64> = theta.iter().zip(&self.penalty).map(|(&t, &c)| if c == 0.0 { t } else { 0.0 }).collect();
        self.x.par_chunks(CHUNK * k).zip(self.labels.par_chunks(CHUNK)).all(|(x, y)| {
            let mut u = vec![0.0; x.len()];
            logits(self.shape, k, &free, x, &mut u);
            u.chunks(k).zip(y).all(|(u, &l)| u.iter().enumerate().all(|(j, &v)| j == l || v < u[l]))
        })
    }

    /// A class without fitting rows whose probability some unpenalised parameter can push to 0.
    fn unbounded_class(&self) -> Option<usize> {
        let k = self.k;
        let mut seen = vec![false; k];
        self.labels.iter().for_each(|&l| seen[l] = true);
        let nw = self.shape.weights(k);
        let diag = |j: usize| if self.shape == Shape::Full { j * k + j } else { j };
        (0..k).filter(|&j| !seen[j]).find(|&j| {
            let one_sign = |pos: bool| self.x.chunks(k).all(|x| if pos { x[j] > 0.0 } else { x[j] < 0.0 });
            self.penalty[nw + j] == 0.0 || (self.penalty[diag(j)] == 0.0 && (one_sign(true) || one_sign(false)))
        })
    }
}

/// Fits with up to this many parameters (matrix scaling up to K = 15, vector scaling up to
/// K = 128) use Newton's method: unpenalised matrix scaling on real predictions is so
/// ill-conditioned that L-BFGS needs tens of thousands of iterations to reach its optimum, while
/// Newton reaches it in a few dozen, each a Hessian of K²(K+1)² terms per row and a P×P
/// Cholesky solve. Larger fits use L-BFGS.
const NEWTON_MAX_PARAMETERS: usize = 256;
/// Newton iterations before a fit is reported as not converged; a separable fit (no finite
/// optimum) runs into this limit and is then named as such.
const NEWTON_MAX_ITER: usize = 200;

/// Fits the map; returns (weights, bias) in the original features.
fn fit(
    name: &str,
    x: &Predictions,
    labels: &[usize],
    shape: Shape,
    input: Input,
    odir: Option<(f64, f64)>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    super::check_fit(x, labels)?;
    let (n, k) = (x.n(), x.k());
    if shape == Shape::Full && n < k {
        return Err(Error::Parameter(format!(
            "{name} needs at least as many fitting rows as classes: {n} rows for {k} classes"
        )));
    }
    let p = Problem::new(x, labels, shape, input, odir);
    if let Some(j) = p.unbounded_class() {
        return Err(Error::Parameter(format!(
            "{name} has no finite optimum: class {j} has no fitting rows, so the loss keeps falling as its \
             probability is pushed to 0; fit on rows that include every class"
        )));
    }
    let nw = shape.weights(k);
    let mut theta0 = vec![0.0; nw + k];
    (0..k).for_each(|j| theta0[if shape == Shape::Full { j * k + j } else { j }] = p.s);
    let newton = theta0.len() <= NEWTON_MAX_PARAMETERS;
    let out = if newton {
        let mut scratch = vec![0.0; theta0.len()];
        optimize::newton(
            |t, d| match d {
                Some((g, h)) => {
                    p.hessian(t, h);
                    p.loss(t, g)
                }
                None => p.loss(t, &mut scratch),
            },
            theta0,
            NEWTON_MAX_ITER,
        )
    } else {
        optimize::lbfgs(|t, g| p.loss(t, g), theta0, &Lbfgs::default())
    };
    if p.separates(&out.x) {
        let part = if p.penalty.iter().all(|&c| c == 0.0) { "" } else { "its unpenalised parameters alone " };
        return Err(Error::Parameter(format!(
            "{name} has no finite optimum: the {n} fitting rows are separable (the map {part}classifies every \
             one correctly, and the loss keeps falling as its weights grow); use more validation rows{}",
            if shape == Shape::Full && odir.is_none() { " or matrix-odir / dirichlet" } else { "" }
        )));
    }
    // Newton converges quadratically near a finite optimum: its iteration limit is reached only
    // on a path to infinity (L-BFGS's could also be slow progress, reported as such below).
    if newton && out.stop == optimize::Stop::MaxIterations {
        let largest = out.x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        return Err(Error::Parameter(format!(
            "{name} has no finite optimum: after {} iterations the loss is still falling and the weights have grown \
             to {largest:.3e}, the sign of rows that the map (quasi-)separates; use more validation rows{}",
            out.iterations,
            if p.penalty.iter().all(|&c| c == 0.0) { " or matrix-odir / dirichlet" } else { "" }
        )));
    }
    let mut theta = out.converged(name)?.x;
    let (w, b) = theta.split_at_mut(nw);
    if shape == Shape::Full && p.penalty[..nw].iter().all(|&c| c == 0.0) {
        for j in 0..k {
            let mean = (0..k).map(|i| w[i * k + j]).sum::<f64>() / k as f64;
            (0..k).for_each(|i| w[i * k + j] -= mean);
        }
    }
    if p.penalty[nw..].iter().all(|&c| c == 0.0) {
        let mean = b.iter().sum::<f64>() / k as f64;
        b.iter_mut().for_each(|v| *v -= mean);
    }
    Ok((w.iter().map(|v| v / p.s).collect(), b.to_vec()))
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{Fitted, Method, Saved};
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Seeded miscalibrated logits `[n, k]` (every class present, not separable) and labels.
    pub(in crate::calibrators) fn synthetic(n: usize, k: usize, seed: u64) -> (Vec<f64>, Vec<usize>) {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut normal = move || {
            let (u, v): (f64, f64) = (r.random(), r.random());
            (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let labels: Vec<usize> = (0..n).map(|i| (i * 7919 + seed as usize) % k).collect();
        let mut z = Vec::with_capacity(n * k);
        for &y in &labels {
            for j in 0..k {
                let signal = if j == y { 2.0 + 0.3 * j as f64 } else { 0.2 * j as f64 };
                z.push((1.0 + 0.1 * j as f64) * (signal + 1.2 * normal()) + 0.5);
            }
        }
        (z, labels)
    }

    fn logits(v: &[f64], k: usize) -> Predictions<'static> {
        Predictions::new(v.to_vec(), k, ScoreKind::Logits).unwrap()
    }

    fn scaled(v: &[f64], c: f64) -> Vec<f64> {
        v.iter().map(|x| x * c).collect()
    }

    fn max_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
    }

    fn fit_method(name: &str, x: &Predictions, labels: &[usize]) -> Result<Fitted> {
        name.parse::<Method>().unwrap().fit(x, labels, &Default::default())
    }

    #[test]
    fn vector_and_matrix_scaling_are_invariant_to_the_scale_of_the_logits() {
        let (z, y) = synthetic(800, 4, 1);
        let (held, _) = synthetic(50, 4, 2);
        for method in ["vector", "matrix"] {
            let reference = fit_method(method, &logits(&z, 4), &y).unwrap().transform(&logits(&held, 4)).unwrap();
            for c in [100.0, 0.01] {
                let f = fit_method(method, &logits(&scaled(&z, c), 4), &y).unwrap();
                let q = f.transform(&logits(&scaled(&held, c), 4)).unwrap();
                assert!(max_diff(&q, &reference) < 1e-7, "{method} ×{c}: {:e}", max_diff(&q, &reference));
            }
        }
    }

    #[test]
    fn penalised_fits_reach_a_stationary_point_at_any_logit_scale() {
        let (z, y) = synthetic(600, 5, 3);
        for c in [100.0, 1.0, 0.01] {
            let x = logits(&scaled(&z, c), 5);
            for (input, odir) in [(Input::Scores, (0.01, 0.01)), (Input::LogProbs, (1e-3, 1e-3))] {
                let (w, b) = fit("test", &x, &y, Shape::Full, input, Some(odir)).unwrap();
                let p = Problem::new(&x, &y, Shape::Full, input, Some(odir));
                let theta: Vec<f64> = w.iter().map(|v| v * p.s).chain(b).collect();
                let mut g = vec![0.0; theta.len()];
                p.loss(&theta, &mut g);
                let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                assert!(gmax < 1e-8, "×{c} {input:?}: largest gradient entry {gmax:e}");
            }
        }
    }

    #[test]
    fn dirichlet_maps_logits_and_their_softmax_alike() {
        let (z, y) = synthetic(500, 3, 4);
        let x = logits(&z, 3);
        let p = Predictions::new(x.probs(), 3, ScoreKind::Probs).unwrap();
        let a = Dirichlet::fit(&x, &y, 1e-3, 1e-3).unwrap();
        let b = Dirichlet::fit(&p, &y, 1e-3, 1e-3).unwrap();
        assert!(max_diff(&a.transform(&x).unwrap(), &b.transform(&p).unwrap()) < 1e-7);
    }

    #[test]
    fn rows_sum_to_one() {
        let (z, y) = synthetic(300, 4, 5);
        let x = logits(&z, 4);
        let mut probs = x.probs();
        probs[0] = 1.0;
        probs[1..4].fill(0.0);
        let p = Predictions::new(probs, 4, ScoreKind::Probs).unwrap();
        for method in ["vector", "matrix", "matrix-odir:0.1,0.1", "dirichlet"] {
            for input in [&x, &p] {
                let q = fit_method(method, input, &y).unwrap().transform(input).unwrap();
                for (i, row) in q.chunks(4).enumerate() {
                    let s: f64 = row.iter().sum();
                    assert!((s - 1.0).abs() < 1e-12 && row.iter().all(|v| (0.0..=1.0).contains(v)), "{method} row {i}");
                }
            }
        }
    }

    #[test]
    fn unpenalised_parameters_are_the_centred_representative() {
        let (z, y) = synthetic(400, 3, 6);
        let m = Matrix::fit(&logits(&z, 3), &y, None).unwrap();
        for j in 0..3 {
            assert!((0..3).map(|i| m.weights[i * 3 + j]).sum::<f64>().abs() < 1e-12);
        }
        assert!(m.bias.iter().sum::<f64>().abs() < 1e-12);
        let v = Vector::fit(&logits(&z, 3), &y).unwrap();
        assert!(v.bias.iter().sum::<f64>().abs() < 1e-12);
    }

    #[test]
    fn fewer_rows_than_classes_are_refused() {
        let (z, y) = synthetic(4, 5, 7);
        for method in ["matrix", "matrix-odir:1,1", "dirichlet"] {
            let e = fit_method(method, &logits(&z, 5), &y).unwrap_err().to_string();
            assert!(e.contains("4 rows for 5 classes"), "{method}: {e}");
        }
    }

    #[test]
    fn separable_rows_have_no_finite_optimum() {
        // Every row's largest logit is its label: already separable by the identity map.
        let (mut z, y) = synthetic(200, 3, 8);
        for (row, &l) in z.chunks_mut(3).zip(&y) {
            row[l] += 20.0;
        }
        for method in ["vector", "matrix", "dirichlet"] {
            let e = fit_method(method, &logits(&z, 3), &y).unwrap_err().to_string();
            assert!(e.contains("separable"), "{method}: {e}");
        }
        // With both ODIR penalties the off-diagonal weights and biases stay bounded, but the
        // unpenalised diagonal alone still separates the rows.
        let e = fit_method("matrix-odir:1,1", &logits(&z, 3), &y).unwrap_err().to_string();
        assert!(e.contains("unpenalised"), "{e}");
    }

    #[test]
    fn a_class_without_rows_is_refused_when_its_probability_is_unbounded() {
        let (z, mut y) = synthetic(300, 3, 9);
        y.iter_mut().filter(|l| **l == 2).for_each(|l| *l = 0);
        for method in ["vector", "matrix", "dirichlet"] {
            let e = fit_method(method, &logits(&z, 3), &y).unwrap_err().to_string();
            assert!(e.contains("class 2 has no fitting rows"), "{method}: {e}");
        }
    }

    #[test]
    fn json_round_trip() {
        let (z, y) = synthetic(300, 3, 10);
        let (held, _) = synthetic(20, 3, 11);
        for method in ["vector", "matrix", "matrix-odir:0.5,0.1", "dirichlet:0.01,0.02"] {
            let f = fit_method(method, &logits(&z, 3), &y).unwrap();
            let back = Saved::from_json(&Saved::new(method, ScoreKind::Logits, f.clone()).to_json()).unwrap();
            assert_eq!(back.fitted, f, "{method}");
            assert_eq!(back.transform(&logits(&held, 3)).unwrap(), f.transform(&logits(&held, 3)).unwrap());
        }
    }

    #[test]
    fn validate_rejects_bad_parameters() {
        let good = Matrix { classes: 2, weights: vec![1.0, 0.0, 0.0, 1.0], bias: vec![0.0, 0.0] };
        assert!(good.validate().is_ok());
        assert!(Matrix { weights: vec![1.0; 3], ..good.clone() }.validate().is_err());
        assert!(Matrix { bias: vec![f64::NAN, 0.0], ..good.clone() }.validate().is_err());
        assert!(Vector { classes: 2, scale: vec![1.0, f64::INFINITY], bias: vec![0.0; 2] }.validate().is_err());
        assert!(Dirichlet { classes: 0, weights: vec![], bias: vec![] }.validate().is_err());
    }
}
