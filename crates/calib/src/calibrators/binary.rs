//! Platt scaling and beta calibration: logistic regressions on one or two features of a binary
//! (K = 2) score, fitted by minimising the mean negative log-likelihood (NLL) of the labels.
//!
//! - **Platt scaling** (Platt, "Probabilistic outputs for support vector machines", 1999):
//!   p₁ = σ(a·d + b) with d = z₁ − z₀ the logit difference, or d = ln p − ln(1 − p) for
//!   probabilities (p the probability of class 1).
//! - **Beta calibration** (Kull, Silva Filho & Flach, "Beta calibration: a well-founded and
//!   easily implemented improvement on logistic calibration for binary classifiers", AISTATS 2017;
//!   reference code `betacal`): p₁ = σ(a·ln p − b·ln(1 − p) + c) with a, b ≥ 0, so that the map is
//!   monotone.
//!
//! Both are fitted by Newton's method ([`super::optimize::newton`]), which is invariant to the
//! scale of the scores; the rows' sums are taken in parallel chunks in a fixed order.
//!
//! Where we differ from the references, and why:
//! - Platt fits smoothed targets ((N₊ + 1)/(N₊ + 2) and 1/(N₋ + 2)) to guard against
//!   overfitting; we fit the plain labels, like `sklearn`'s sigmoid calibration, so that the fit is
//!   the maximum-likelihood logistic map.
//! - `betacal` fits an (almost) unpenalised logistic regression (`C = 99999999999`) and, when a
//!   coefficient comes out negative, refits with that feature dropped. That is not always the
//!   constrained optimum (dropping a can make b negative, or the negative coefficient may not be
//!   the one that is 0 at the optimum). We solve the constrained problem exactly: the optimum is
//!   the unconstrained optimum over one face (a, b free or fixed at 0) that is feasible; we fit all
//!   four faces, keep the feasible one of lowest loss, and check its optimality conditions (the
//!   loss may not fall as a coefficient fixed at 0 grows).
//! - Probabilities are clipped to [ε, 1 − ε], ε = 2⁻⁵² (`betacal`'s `np.finfo(float64).eps`),
//!   before their logarithms. For logits, ln p₁ = −softplus(−d) and ln(1 − p₁) = −softplus(d) are
//!   computed from d exactly, without clipping.
//! - No finite optimum exists when the fitted map classifies every row correctly (separable rows:
//!   the loss keeps falling as the coefficients grow) or when all labels are equal; both are
//!   errors.

use super::optimize::{self, Outcome};
use super::{check_params, Calibrator, Predictions};
use crate::error::{Error, Result};
use crate::scores::ScoreKind;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// p₁ = σ(a·d + b), d the logit difference (logit of p₁ for probabilities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

/// p₁ = σ(a·ln p₁ − b·ln(1 − p₁) + c), a, b ≥ 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Beta {
    pub a: f64,
    pub b: f64,
    pub c: f64,
}

/// Probabilities are clipped to [EPS, 1 − EPS] before their logarithms.
const EPS: f64 = f64::EPSILON;
/// Rows per parallel task.
const CHUNK: usize = 4096;
/// Newton iterations allowed.
const MAX_ITER: usize = 100;

impl Platt {
    pub fn fit(x: &Predictions, labels: &[usize]) -> Result<Self> {
        let y = binary_labels("Platt scaling", x, labels)?;
        let phi: Vec<f64> = log_parts(x).iter().flat_map(|&(l1, l0)| [l1 - l0, 1.0]).collect();
        let theta = fit_logistic("Platt scaling", &phi, 2, &y)?.x;
        Ok(Self { a: theta[0], b: theta[1] })
    }
    pub(super) fn validate(&self) -> Result<()> {
        check_params("Platt parameters", &[self.a, self.b], 2)
    }
}

impl Calibrator for Platt {
    fn classes(&self) -> usize {
        2
    }
    fn transform(&self, x: &Predictions) -> Result<Vec<f64>> {
        super::check_width(x, 2)?;
        Ok(log_parts(x).iter().flat_map(|&(l1, l0)| binary_row(self.a * (l1 - l0) + self.b)).collect())
    }
}

impl Beta {
    pub fn fit(x: &Predictions, labels: &[usize]) -> Result<Self> {
        const WHAT: &str = "beta calibration";
        let y = binary_labels(WHAT, x, labels)?;
        let parts = log_parts(x);
        let full: Vec<f64> = parts.iter().flat_map(|&(l1, l0)| [l1, -l0, 1.0]).collect();
        // Faces of {a ≥ 0, b ≥ 0}: which of a, b are free (the intercept always is).
        let mut best: Option<([f64; 3], f64)> = None;
        let mut failure = None;
        for free in [[true, true], [true, false], [false, true], [false, false]] {
            let cols: Vec<usize> = (0..2).filter(|&i| free[i]).chain([2]).collect();
            let phi: Vec<f64> = full.chunks(3).flat_map(|r| cols.iter().map(|&i| r[i])).collect();
            match fit_logistic(WHAT, &phi, cols.len(), &y) {
                Ok(out) => {
                    let mut theta = [0.0; 3];
                    cols.iter().zip(&out.x).for_each(|(&i, &t)| theta[i] = t);
                    if theta[..2].iter().all(|&t| t >= 0.0) && best.is_none_or(|(_, f)| out.f < f) {
                        best = Some((theta, out.f));
                    }
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        let Some((theta, _)) = best else {
            return Err(failure.expect("the intercept-only face converges when both labels occur"));
        };
        // Optimality: at a coefficient fixed at 0 the loss may not fall as it grows.
        let (mut g, mut h) = ([0.0; 3], [0.0; 9]);
        logistic(&full, 3, &y, &theta, Some((&mut g, &mut h)));
        for i in 0..2 {
            let curvature = h[i * 3 + i].max(f64::MIN_POSITIVE).sqrt();
            if theta[i] == 0.0 && g[i] < -1e-6 * curvature {
                return Err(failure.unwrap_or_else(|| {
                    Error::Parameter(format!("{WHAT}: the fit did not reach the constrained optimum"))
                }));
            }
        }
        Ok(Self { a: theta[0], b: theta[1], c: theta[2] })
    }
    pub(super) fn validate(&self) -> Result<()> {
        check_params("beta parameters", &[self.a, self.b, self.c], 3)?;
        if self.a < 0.0 || self.b < 0.0 {
            return Err(Error::Parameter(format!("beta a = {}, b = {} must be non-negative", self.a, self.b)));
        }
        Ok(())
    }
}

impl Calibrator for Beta {
    fn classes(&self) -> usize {
        2
    }
    fn transform(&self, x: &Predictions) -> Result<Vec<f64>> {
        super::check_width(x, 2)?;
        Ok(log_parts(x).iter().flat_map(|&(l1, l0)| binary_row(self.a * l1 - self.b * l0 + self.c)).collect())
    }
}

/// The row [1 − σ(t), σ(t)].
fn binary_row(t: f64) -> [f64; 2] {
    let e = (-t.abs()).exp();
    let (big, small) = (1.0 / (1.0 + e), e / (1.0 + e));
    if t >= 0.0 {
        [small, big]
    } else {
        [big, small]
    }
}

/// Checks K = 2 and that both labels occur; the labels as "is class 1".
fn binary_labels(what: &str, x: &Predictions, labels: &[usize]) -> Result<Vec<bool>> {
    super::check_fit(x, labels)?;
    if x.k() != 2 {
        return Err(Error::Parameter(format!("{what} is binary only (K = 2), the scores have {} classes", x.k())));
    }
    let y: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
    if y.iter().all(|&v| v) || y.iter().all(|&v| !v) {
        return Err(Error::Parameter(format!(
            "{what} has no finite optimum: every fitting label is {}; it needs rows of both classes",
            labels[0]
        )));
    }
    Ok(y)
}

/// (ln p₁, ln(1 − p₁)) of each row: from d = z₁ − z₀ for logits, from p₁ clipped to
/// [ε, 1 − ε] for probabilities.
fn log_parts(x: &Predictions) -> Vec<(f64, f64)> {
    let softplus = |t: f64| t.max(0.0) + (-t.abs()).exp().ln_1p();
    (0..x.n())
        .map(|i| {
            let r = x.row(i);
            match x.kind() {
                ScoreKind::Logits => {
                    let d = r[1] - r[0];
                    (-softplus(-d), -softplus(d))
                }
                ScoreKind::Probs => {
                    let p = r[1].clamp(EPS, 1.0 - EPS);
                    (p.ln(), (-p).ln_1p())
                }
            }
        })
        .collect()
}

/// The mean logistic loss of t = θ·φ (φ row-major `[n, m]`, m ≤ 3) against labels `y`; with
/// `derivs`, also its gradient and Hessian.
fn logistic(phi: &[f64], m: usize, y: &[bool], theta: &[f64], derivs: Option<(&mut [f64], &mut [f64])>) -> f64 {
    let parts: Vec<(f64, [f64; 3], [f64; 9])> = phi
        .par_chunks(CHUNK * m)
        .zip(y.par_chunks(CHUNK))
        .map(|(phi, y)| {
            let (mut f, mut g, mut h) = (0.0, [0.0; 3], [0.0; 9]);
            for (r, &yi) in phi.chunks(m).zip(y) {
                let t: f64 = r.iter().zip(theta).map(|(a, b)| a * b).sum();
                let e = (-t.abs()).exp();
                f += t.max(0.0) + e.ln_1p() - if yi { t } else { 0.0 };
                let p = if t >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
                let (res, w) = (p - f64::from(u8::from(yi)), e / ((1.0 + e) * (1.0 + e)));
                for i in 0..m {
                    g[i] += res * r[i];
                    for j in 0..m {
                        h[i * m + j] += w * r[i] * r[j];
                    }
                }
            }
            (f, g, h)
        })
        .collect();
    let inv_n = 1.0 / y.len() as f64;
    if let Some((dg, dh)) = derivs {
        dg.fill(0.0);
        dh.fill(0.0);
        for (_, g, h) in &parts {
            dg.iter_mut().zip(g).for_each(|(d, v)| *d += v * inv_n);
            dh.iter_mut().zip(h).for_each(|(d, v)| *d += v * inv_n);
        }
    }
    parts.iter().map(|p| p.0).sum::<f64>() * inv_n
}

/// Fits θ of the logistic regression on φ from 0; an error if the rows are separable by the
/// fitted map or the fit does not converge.
fn fit_logistic(what: &str, phi: &[f64], m: usize, y: &[bool]) -> Result<Outcome> {
    let out = optimize::newton(|t, d| logistic(phi, m, y, t, d), vec![0.0; m], MAX_ITER);
    let separated = phi.chunks(m).zip(y).all(|(r, &yi)| {
        let t: f64 = r.iter().zip(&out.x).map(|(a, b)| a * b).sum();
        if yi {
            t > 0.0
        } else {
            t < 0.0
        }
    });
    if separated {
        return Err(Error::Parameter(format!(
            "{what} has no finite optimum: the {} fitting rows are separable (the map classifies every one \
             correctly, and the loss keeps falling as its coefficients grow)",
            y.len()
        )));
    }
    out.converged(what)
}

#[cfg(test)]
mod tests {
    use super::super::{Fitted, Method, Saved};
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Probabilities p₁ uniform on (0.001, 0.999) and labels drawn from
    /// σ(a·ln p − b·ln(1 − p) + c).
    fn draw(n: usize, (a, b, c): (f64, f64, f64), seed: u64) -> (Vec<f64>, Vec<usize>) {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (mut rows, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let p: f64 = 0.001 + 0.998 * r.random::<f64>();
            let t = a * p.ln() - b * (1.0 - p).ln() + c;
            labels.push(usize::from(r.random::<f64>() < 1.0 / (1.0 + (-t).exp())));
            rows.extend([1.0 - p, p]);
        }
        (rows, labels)
    }

    fn probs(v: &[f64]) -> Predictions<'static> {
        Predictions::new(v.to_vec(), 2, ScoreKind::Probs).unwrap()
    }

    /// Logits [0, d] with d the logit of each probability row.
    fn to_logits(v: &[f64]) -> Vec<f64> {
        v.chunks(2).flat_map(|r| [0.0, (r[1] / r[0]).ln()]).collect()
    }

    fn nll(q: &[f64], labels: &[usize]) -> f64 {
        -q.chunks(2).zip(labels).map(|(r, &l)| r[l].ln()).sum::<f64>() / labels.len() as f64
    }

    #[test]
    fn beta_constraint_a_nonnegative_is_active() {
        // Labels from a decreasing-then-increasing map (a < 0): the unconstrained fit has a < 0.
        let (rows, y) = draw(3000, (-0.6, 1.5, 0.3), 31);
        let beta = Beta::fit(&probs(&rows), &y).unwrap();
        assert_eq!(beta.a, 0.0);
        assert!(beta.b > 0.0);
        // The constrained optimum: moving a into the feasible region, or b or c either way,
        // raises the loss.
        let loss = |bt: &Beta| nll(&bt.transform(&probs(&rows)).unwrap(), &y);
        let best = loss(&beta);
        for (da, db, dc) in [(1e-4, 0.0, 0.0), (0.0, 1e-4, 0.0), (0.0, -1e-4, 0.0), (0.0, 0.0, 1e-4), (0.0, 0.0, -1e-4)]
        {
            let moved = Beta { a: beta.a + da, b: beta.b + db, c: beta.c + dc };
            assert!(loss(&moved) > best, "({da}, {db}, {dc})");
        }
    }

    #[test]
    fn beta_interior_optimum_is_the_unconstrained_fit() {
        let (rows, y) = draw(3000, (0.8, 1.6, -0.2), 32);
        let beta = Beta::fit(&probs(&rows), &y).unwrap();
        assert!(beta.a > 0.0 && beta.b > 0.0);
        let phi: Vec<f64> = log_parts(&probs(&rows)).iter().flat_map(|&(l1, l0)| [l1, -l0, 1.0]).collect();
        let yb: Vec<bool> = y.iter().map(|&l| l == 1).collect();
        let (mut g, mut h) = ([0.0; 3], [0.0; 9]);
        logistic(&phi, 3, &yb, &[beta.a, beta.b, beta.c], Some((&mut g, &mut h)));
        assert!(g.iter().all(|v| v.abs() < 1e-10), "{g:?}");
    }

    #[test]
    fn platt_scaling_is_invariant_to_the_scale_of_the_logits() {
        let (rows, y) = draw(2000, (1.0, 1.0, 0.0), 33);
        let z = to_logits(&rows);
        let at = |c: f64| {
            let zc: Vec<f64> = z.iter().map(|v| v * c).collect();
            let x = Predictions::new(zc, 2, ScoreKind::Logits).unwrap();
            Platt::fit(&x, &y).unwrap().transform(&x).unwrap()
        };
        let q = at(1.0);
        for c in [100.0, 0.01] {
            assert!(at(c).iter().zip(&q).all(|(a, b)| (a - b).abs() < 1e-10), "×{c}");
        }
    }

    #[test]
    fn platt_on_logits_equals_platt_on_their_probabilities() {
        let (rows, y) = draw(1000, (1.5, 0.7, 0.1), 34);
        let x = Predictions::new(to_logits(&rows), 2, ScoreKind::Logits).unwrap();
        let (a, b) = (Platt::fit(&x, &y).unwrap(), Platt::fit(&probs(&rows), &y).unwrap());
        assert!((a.a - b.a).abs() < 1e-9 && (a.b - b.b).abs() < 1e-9, "{a:?} {b:?}");
    }

    #[test]
    fn separable_rows_have_no_finite_optimum() {
        let rows: Vec<f64> = (0..100).flat_map(|i| [1.0 - i as f64 / 100.0, i as f64 / 100.0]).collect();
        let y: Vec<usize> = (0..100).map(|i| usize::from(i >= 50)).collect();
        for method in ["platt", "beta"] {
            let m: Method = method.parse().unwrap();
            let e = m.fit(&probs(&rows), &y, &Default::default()).unwrap_err().to_string();
            assert!(e.contains("separable"), "{method}: {e}");
        }
    }

    #[test]
    fn one_label_and_more_classes_are_refused() {
        let (rows, _) = draw(10, (1.0, 1.0, 0.0), 35);
        assert!(Platt::fit(&probs(&rows), &[0; 10]).unwrap_err().to_string().contains("every fitting label is 0"));
        assert!(Beta::fit(&probs(&rows), &[1; 10]).unwrap_err().to_string().contains("every fitting label is 1"));
        let three = Predictions::new(vec![0.2, 0.3, 0.5], 3, ScoreKind::Probs).unwrap();
        assert!(Platt::fit(&three, &[0]).unwrap_err().to_string().contains("K = 2"));
    }

    #[test]
    fn rows_sum_to_one() {
        let (mut rows, y) = draw(500, (1.0, 2.0, 0.0), 36);
        rows[..4].copy_from_slice(&[1.0, 0.0, 0.0, 1.0]);
        let x = probs(&rows);
        for q in [Platt::fit(&x, &y).unwrap().transform(&x).unwrap(), Beta::fit(&x, &y).unwrap().transform(&x).unwrap()]
        {
            assert!(q.chunks(2).all(|r| (r[0] + r[1] - 1.0).abs() < 1e-15 && r.iter().all(|v| v.is_finite())));
        }
    }

    #[test]
    fn json_round_trip() {
        let (rows, y) = draw(500, (0.5, 1.5, 0.2), 37);
        for f in
            [Fitted::Platt(Platt::fit(&probs(&rows), &y).unwrap()), Fitted::Beta(Beta::fit(&probs(&rows), &y).unwrap())]
        {
            let back = Saved::from_json(&Saved::new("x", ScoreKind::Probs, f.clone()).to_json()).unwrap();
            assert_eq!(back.fitted, f);
        }
        assert!(Beta { a: -1.0, b: 0.0, c: 0.0 }.validate().is_err());
        assert!(Platt { a: f64::NAN, b: 0.0 }.validate().is_err());
    }
}
