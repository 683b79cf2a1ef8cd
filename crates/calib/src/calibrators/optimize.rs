//! Minimisers for the calibrators' convex fits: L-BFGS for the maps with many parameters (vector,
//! matrix and Dirichlet scaling past a few hundred parameters) and a damped Newton method for the
//! smaller ones (Platt scaling, beta calibration, and the linear maps of few classes), plus the
//! small positive-definite solve both rely on.
//!
//! L-BFGS is the limited-memory quasi-Newton method of Nocedal & Wright, *Numerical
//! Optimization* (2nd ed.), algorithm 7.5, with their strong-Wolfe line search (algorithms 3.5
//! and 3.6, cubic interpolation). Two departures, both for reaching an optimum to the last digits
//! rather than to a loose tolerance: the sufficient-decrease test allows a rise of four ulps of
//! the objective (so near the optimum, where decreases fall below rounding, the curvature test,
//! computed from exact gradients, still decides), and a line search that fails once is retried
//! along the steepest descent with the memory cleared. Newton's method stops on the Newton
//! decrement gᵀH⁻¹g, which is invariant to any linear change of the parameters, so the stopping
//! rule does not depend on the scale of the scores.

use crate::error::{Error, Result};
use std::collections::VecDeque;

/// How a minimisation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The stopping test was met.
    Converged,
    /// The iteration limit was reached first.
    MaxIterations,
    /// No step along the search direction lowered the objective.
    LineSearch,
    /// The objective or its gradient was not finite at the start.
    NotFinite,
}

/// The last point of a minimisation and why it stopped.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub x: Vec<f64>,
    pub f: f64,
    pub iterations: usize,
    pub stop: Stop,
    /// The final stopping measure: the largest gradient entry (L-BFGS) or the squared Newton
    /// decrement (Newton).
    pub measure: f64,
}

impl Outcome {
    /// The outcome if it converged, else an [`Error::Parameter`] that says `what` did not.
    pub fn converged(self, what: &str) -> Result<Self> {
        let why = match self.stop {
            Stop::Converged => return Ok(self),
            Stop::MaxIterations => "the iteration limit was reached",
            Stop::LineSearch => "no step lowered the loss",
            Stop::NotFinite => "the loss is not finite at the starting point",
        };
        Err(Error::Parameter(format!(
            "{what}: the fit did not converge ({why} after {} iterations, stopping measure {:e})",
            self.iterations, self.measure
        )))
    }
}

/// Settings of [`lbfgs`].
#[derive(Debug, Clone, Copy)]
pub struct Lbfgs {
    /// Correction pairs kept.
    pub memory: usize,
    pub max_iter: usize,
    /// Converged when every gradient entry is at most this in magnitude.
    pub gtol: f64,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Self { memory: 20, max_iter: 20_000, gtol: 1e-10 }
    }
}

/// A failed line search still counts as converged when the gradient is within this factor of
/// `gtol`: the objective is then flat to rounding along every direction L-BFGS can find.
const PRECISION_LIMIT: f64 = 100.0;

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// Minimises `f`, which returns the objective at `x` and writes its gradient into the second
/// argument, from `x0`.
pub fn lbfgs(mut f: impl FnMut(&[f64], &mut [f64]) -> f64, x0: Vec<f64>, opts: &Lbfgs) -> Outcome {
    let n = x0.len();
    let mut x = x0;
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    let done = |x, f, iterations, stop, measure| Outcome { x, f, iterations, stop, measure };
    if !fx.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return done(x, fx, 0, Stop::NotFinite, f64::NAN);
    }
    let mut pairs: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::new();
    let (mut xn, mut gn, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for iter in 0..opts.max_iter {
        let gmax = max_abs(&g);
        if gmax <= opts.gtol {
            return done(x, fx, iter, Stop::Converged, gmax);
        }
        direction(&g, &pairs, &mut d);
        let mut slope = dot(&d, &g);
        if slope.is_nan() || slope >= 0.0 {
            pairs.clear();
            d.iter_mut().zip(&g).for_each(|(d, g)| *d = -g);
            slope = -dot(&g, &g);
        }
        let step = if pairs.is_empty() { (1.0 / dot(&g, &g).sqrt()).min(1.0) } else { 1.0 };
        match line_search(&mut f, &x, fx, &d, slope, step, &mut xn, &mut gn) {
            Some(fnew) => {
                let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
                let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
                let sy = dot(&s, &y);
                if sy > f64::EPSILON * dot(&y, &y) {
                    if pairs.len() == opts.memory {
                        pairs.pop_front();
                    }
                    pairs.push_back((s, y, 1.0 / sy));
                }
                std::mem::swap(&mut x, &mut xn);
                std::mem::swap(&mut g, &mut gn);
                fx = fnew;
            }
            None if !pairs.is_empty() => pairs.clear(),
            None => {
                let stop = if gmax <= PRECISION_LIMIT * opts.gtol { Stop::Converged } else { Stop::LineSearch };
                return done(x, fx, iter, stop, gmax);
            }
        }
    }
    let gmax = max_abs(&g);
    done(x, fx, opts.max_iter, Stop::MaxIterations, gmax)
}

/// The L-BFGS direction −H·g by the two-loop recursion (Nocedal & Wright, algorithm 7.4).
fn direction(g: &[f64], pairs: &VecDeque<(Vec<f64>, Vec<f64>, f64)>, d: &mut [f64]) {
    d.copy_from_slice(g);
    let mut alphas = Vec::with_capacity(pairs.len());
    for (s, y, rho) in pairs.iter().rev() {
        let a = rho * dot(s, d);
        d.iter_mut().zip(y).for_each(|(d, y)| *d -= a * y);
        alphas.push(a);
    }
    if let Some((s, y, _)) = pairs.back() {
        let gamma = dot(s, y) / dot(y, y);
        d.iter_mut().for_each(|d| *d *= gamma);
    }
    for ((s, y, rho), a) in pairs.iter().zip(alphas.iter().rev()) {
        let b = rho * dot(y, d);
        d.iter_mut().zip(s).for_each(|(d, s)| *d += (a - b) * s);
    }
    d.iter_mut().for_each(|d| *d = -*d);
}

/// A trial step: its length, the objective there and the slope along the direction.
#[derive(Clone, Copy)]
struct Trial {
    a: f64,
    f: f64,
    slope: f64,
}

/// A step length along `d` meeting the strong Wolfe conditions; on success `xn`, `gn` hold the
/// new point and its gradient and the new objective is returned.
#[allow(clippy::too_many_arguments)]
fn line_search(
    f: &mut impl FnMut(&[f64], &mut [f64]) -> f64,
    x: &[f64],
    f0: f64,
    d: &[f64],
    slope0: f64,
    first: f64,
    xn: &mut [f64],
    gn: &mut [f64],
) -> Option<f64> {
    const C1: f64 = 1e-4;
    const C2: f64 = 0.9;
    const TRIALS: usize = 60;
    let rounding = 4.0 * f64::EPSILON * f0.abs();
    let mut eval = |a: f64, xn: &mut [f64], gn: &mut [f64]| {
        xn.iter_mut().zip(x.iter().zip(d)).for_each(|(xn, (x, d))| *xn = x + a * d);
        let fa = f(xn, gn);
        Trial { a, f: fa, slope: dot(gn, d) }
    };
    let mut lo = Trial { a: 0.0, f: f0, slope: slope0 };
    let mut hi: Option<Trial> = None;
    let mut a = first;
    for _ in 0..TRIALS {
        let t = eval(a, xn, gn);
        let finite = t.f.is_finite() && t.slope.is_finite();
        if !finite || t.f > f0 + C1 * t.a * slope0 + rounding || t.f > lo.f + rounding {
            hi = Some(t);
        } else if t.slope.abs() <= -C2 * slope0 {
            return Some(t.f);
        } else {
            if let Some(h) = hi {
                if t.slope * (h.a - t.a) >= 0.0 {
                    hi = Some(lo);
                }
            } else if t.slope >= 0.0 {
                hi = Some(lo);
            }
            lo = t;
        }
        a = match hi {
            None => 4.0 * lo.a,
            Some(h) => {
                let (l, u) = (lo.a.min(h.a), lo.a.max(h.a));
                if u - l <= 1e-15 * u {
                    break;
                }
                let c = if h.f.is_finite() && h.slope.is_finite() { cubic(lo, h) } else { None };
                c.filter(|c| *c >= l + 0.1 * (u - l) && *c <= u - 0.1 * (u - l)).unwrap_or(0.5 * (l + u))
            }
        };
    }
    // The best point found lowers the objective but misses the curvature test: take it anyway.
    if lo.a > 0.0 && lo.f < f0 {
        return Some(eval(lo.a, xn, gn).f);
    }
    None
}

/// The minimiser of the cubic interpolating the values and slopes at two trial steps.
fn cubic(p: Trial, q: Trial) -> Option<f64> {
    let d1 = p.slope + q.slope - 3.0 * (p.f - q.f) / (p.a - q.a);
    let disc = d1 * d1 - p.slope * q.slope;
    if disc < 0.0 {
        return None;
    }
    let d2 = (q.a - p.a).signum() * disc.sqrt();
    let a = q.a - (q.a - p.a) * (q.slope + d2 - d1) / (q.slope - p.slope + 2.0 * d2);
    a.is_finite().then_some(a)
}

/// Newton's method stops when the squared Newton decrement gᵀH⁻¹g (twice the predicted
/// decrease) is at most this, or at most one ulp of the objective (a decrease no evaluation can
/// resolve: nearly flat directions of the fits on probabilities otherwise converge only
/// linearly there); the objectives are means of per-row losses of order 1.
const NEWTON_TOL: f64 = 1e-20;
/// A failed backtracking still counts as converged below this decrement (the step's decrease is
/// then below the objective's rounding).
const NEWTON_PRECISION: f64 = 1e-12;

/// Minimises a smooth convex `f` of a few parameters by Newton's method with backtracking.
/// `f(x, None)` returns the objective; `f(x, Some((g, h)))` also writes the gradient and the
/// row-major Hessian.
pub fn newton(
    mut f: impl FnMut(&[f64], Option<(&mut [f64], &mut [f64])>) -> f64,
    x0: Vec<f64>,
    max_iter: usize,
) -> Outcome {
    let n = x0.len();
    let mut x = x0;
    let (mut g, mut h) = (vec![0.0; n], vec![0.0; n * n]);
    let mut xt = vec![0.0; n];
    let mut decrement = f64::NAN;
    for iter in 0..max_iter {
        let fx = f(&x, Some((&mut g, &mut h)));
        let done = |x, stop, measure| Outcome { x, f: fx, iterations: iter, stop, measure };
        if !fx.is_finite() || g.iter().chain(&h).any(|v| !v.is_finite()) {
            return done(x, Stop::NotFinite, f64::NAN);
        }
        let minus_g: Vec<f64> = g.iter().map(|v| -v).collect();
        let d = solve_ridged(&h, &minus_g);
        decrement = -dot(&g, &d);
        if decrement <= NEWTON_TOL.max(f64::EPSILON * fx.abs()) {
            return done(x, Stop::Converged, decrement);
        }
        let rounding = 4.0 * f64::EPSILON * fx.abs();
        let mut a = 1.0;
        let accepted = (0..60).any(|_| {
            xt.iter_mut().zip(x.iter().zip(&d)).for_each(|(t, (x, d))| *t = x + a * d);
            let ft = f(&xt, None);
            let ok = ft.is_finite() && ft <= fx - 1e-4 * a * decrement + rounding;
            a *= 0.5;
            ok
        });
        if !accepted {
            let stop = if decrement <= NEWTON_PRECISION { Stop::Converged } else { Stop::LineSearch };
            return done(x, stop, decrement);
        }
        std::mem::swap(&mut x, &mut xt);
    }
    let fx = f(&x, None);
    Outcome { x, f: fx, iterations: max_iter, stop: Stop::MaxIterations, measure: decrement }
}

/// Solves H·d = b for a positive semi-definite H, adding a growing ridge when H is singular to
/// the working precision (then d is the regularised solution, still a descent direction).
fn solve_ridged(h: &[f64], b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let scale = (0..n).fold(0.0f64, |m, i| m.max(h[i * n + i].abs())).max(f64::MIN_POSITIVE);
    let mut ridged = h.to_vec();
    for ridge in [0.0, 1e-12, 1e-9, 1e-6, 1e-3, 1.0] {
        (0..n).for_each(|i| ridged[i * n + i] = h[i * n + i] + ridge * scale);
        if let Some(d) = solve_spd(&ridged, b) {
            return d;
        }
    }
    b.iter().map(|v| v / scale).collect()
}

/// Solves A·x = b for a symmetric positive-definite row-major A by Cholesky factorisation;
/// `None` when a pivot is not positive relative to the diagonal (A singular or indefinite).
pub fn solve_spd(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let max_diag = (0..n).fold(0.0f64, |m, i| m.max(a[i * n + i].abs()));
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s = a[i * n + j] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
            if i == j {
                if s.is_nan() || s <= 1e-14 * max_diag {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| l[i * n + k] * y[k]).sum::<f64>()) / l[i * n + i];
    }
    for i in (0..n).rev() {
        y[i] = (y[i] - (i + 1..n).map(|k| l[k * n + i] * y[k]).sum::<f64>()) / l[i * n + i];
    }
    Some(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ill-conditioned quadratic ½ Σ cᵢ (xᵢ − i)² with curvatures 1e-2 … 1e2 (scipy's
    /// L-BFGS-B with the same memory needs 560 iterations to the same tolerance).
    fn quadratic(x: &[f64], g: &mut [f64]) -> f64 {
        let n = x.len();
        let c = |i: usize| 10f64.powf(-2.0 + 4.0 * i as f64 / (n - 1) as f64);
        (0..n)
            .map(|i| {
                g[i] = c(i) * (x[i] - i as f64);
                0.5 * c(i) * (x[i] - i as f64).powi(2)
            })
            .sum()
    }

    #[test]
    fn lbfgs_reaches_the_minimum_of_an_ill_conditioned_quadratic() {
        let out = lbfgs(quadratic, vec![0.0; 30], &Lbfgs::default());
        assert_eq!(out.stop, Stop::Converged, "{out:?}");
        for (i, x) in out.x.iter().enumerate() {
            assert!((x - i as f64).abs() < 1e-5, "x[{i}] = {x}");
        }
    }

    #[test]
    fn lbfgs_minimises_the_rosenbrock_function() {
        let rosen = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let out = lbfgs(rosen, vec![-1.2, 1.0], &Lbfgs::default());
        assert_eq!(out.stop, Stop::Converged);
        assert!((out.x[0] - 1.0).abs() < 1e-8 && (out.x[1] - 1.0).abs() < 1e-8, "{:?}", out.x);
    }

    #[test]
    fn lbfgs_reports_an_unbounded_objective_as_not_converged() {
        // e^{-x} has no minimiser; its gradient never reaches a tolerance of 1e-300.
        let opts = Lbfgs { gtol: 1e-300, max_iter: 200, ..Lbfgs::default() };
        let out = lbfgs(
            |x, g| {
                g[0] = -(-x[0]).exp();
                (-x[0]).exp()
            },
            vec![0.0],
            &opts,
        );
        assert_ne!(out.stop, Stop::Converged);
        assert!(out.converged("test").is_err());
    }

    #[test]
    fn newton_converges_on_a_logistic_loss_at_any_scale() {
        for scale in [1e-2, 1.0, 1e2] {
            // Mean logistic loss of θ·x on a fixed non-separable set.
            let data: Vec<(f64, bool)> =
                (0..40).map(|i| (scale * (i as f64 / 4.0 - 5.0), (i * 7 + 3) % 5 < (i / 8))).collect();
            let f = |t: &[f64], d: Option<(&mut [f64], &mut [f64])>| {
                let (mut v, mut g, mut h) = (0.0, [0.0; 2], [0.0; 4]);
                for &(x, y) in &data {
                    let z = t[0] * x + t[1];
                    v += z.max(0.0) + (-z.abs()).exp().ln_1p() - if y { z } else { 0.0 };
                    let p = 1.0 / (1.0 + (-z).exp());
                    let r = p - f64::from(u8::from(y));
                    let phi = [x, 1.0];
                    for i in 0..2 {
                        g[i] += r * phi[i];
                        for j in 0..2 {
                            h[i * 2 + j] += p * (1.0 - p) * phi[i] * phi[j];
                        }
                    }
                }
                if let Some((dg, dh)) = d {
                    dg.copy_from_slice(&g);
                    dh.copy_from_slice(&h);
                }
                v
            };
            let out = newton(f, vec![0.0, 0.0], 100);
            assert_eq!(out.stop, Stop::Converged, "scale {scale}");
            assert!(out.iterations < 30, "scale {scale}: {} iterations", out.iterations);
        }
    }

    #[test]
    fn solve_spd_refuses_a_singular_matrix() {
        assert!(solve_spd(&[1.0, 1.0, 1.0, 1.0], &[1.0, 2.0]).is_none());
        let x = solve_spd(&[4.0, 2.0, 2.0, 3.0], &[2.0, 1.0]).unwrap();
        assert!((x[0] - 0.5).abs() < 1e-15 && x[1].abs() < 1e-15);
    }
}
