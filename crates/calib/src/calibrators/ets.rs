//! Ensemble temperature scaling (ETS; Zhang, Kailkhura & Han, "Mix-n-Match: ensemble and
//! compositional methods for uncertainty calibration in deep learning", ICML 2020; reference code
//! `zhang64-llnl/Mix-n-Match-Calibration`, `ets_calibrate`):
//!
//!   q = w₁·softmax(z / T) + w₂·softmax(z) + w₃·(1/K),   w ≥ 0, w₁ + w₂ + w₃ = 1,
//!
//! T the temperature minimising the validation NLL, and w minimising the mean squared error
//! (1/(NK))·Σ_n Σ_j (q_nj − y_nj)² to the one-hot labels. Logits only.
//!
//! Where we differ from the reference, and why:
//! - The reference fits T by the mean squared error (its comment offers cross-entropy instead),
//!   with L-BFGS-B on [0.05, 5]. We take T from the NLL fit of [`crate::temperature::fit_nll`]
//!   (the toolkit's `nll` temperature), computed on the logits divided by their root mean square
//!   deviation from each row's mean and multiplied back, so that scaling the logits scales T
//!   alike: `fit_nll`'s bracket T ∈ [0.02, 100] then bounds T relative to the logits' spread, not
//!   in absolute terms.
//! - The reference minimises over w with SLSQP (tolerance 1e-12). The objective is a convex
//!   quadratic in three variables on the simplex, so we solve it exactly: the optimum is the
//!   stationary point of the objective on one face of the simplex (vertex, edge or the whole
//!   triangle) that lies inside that face; we solve each face's equality-constrained problem in
//!   closed form and keep the feasible one of lowest objective. A face whose reduced quadratic is
//!   singular (e.g. T = 1, where the first two members coincide) is skipped: its minimum is also
//!   attained on a smaller face.

use super::optimize::solve_spd;
use super::{Calibrator, Predictions};
use crate::error::{Error, Result};
use crate::scores::{ScoreKind, Scores};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// w₁·softmax(z / T) + w₂·softmax(z) + w₃/K on logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ets {
    pub classes: usize,
    pub temperature: f64,
    /// (w₁, w₂, w₃): of the tempered softmax, the plain softmax and the uniform distribution.
    pub weights: [f64; 3],
}

/// Rows per parallel task.
const CHUNK: usize = 1024;

impl Ets {
    pub fn fit(x: &Predictions, labels: &[usize]) -> Result<Self> {
        super::check_fit(x, labels)?;
        if x.kind() != ScoreKind::Logits {
            return Err(Error::Parameter("ensemble temperature scaling needs logits, not probabilities".into()));
        }
        let k = x.k();
        let spread = spread(x);
        let normalised: Vec<f64> = x.values().iter().map(|v| v / spread).collect();
        let y: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
        let temperature =
            spread * crate::temperature::fit_nll(&Scores::<f64>::new(normalised, k, &y, ScoreKind::Logits)?)?;
        let (q, c) = normal_equations(x, labels, temperature);
        Ok(Self { classes: k, temperature, weights: simplex_qp(&q, &c) })
    }

    pub(super) fn validate(&self) -> Result<()> {
        if self.classes == 0 {
            return Err(Error::Shape("a calibrator for 0 classes".into()));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::Parameter(format!("temperature {} is not a positive number", self.temperature)));
        }
        let w = self.weights;
        if w.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || (w.iter().sum::<f64>() - 1.0).abs() > 1e-9 {
            return Err(Error::Parameter(format!("ETS weights {w:?} are not non-negative numbers summing to 1")));
        }
        Ok(())
    }
}

/// Writes the members softmax(z / T) and softmax(z) of one row of logits into `a` and `b` (the
/// third member is the constant 1/K).
fn members(z: &[f64], t: f64, a: &mut [f64], b: &mut [f64]) {
    a.iter_mut().zip(z).for_each(|(a, z)| *a = z / t);
    super::softmax_in_place(a);
    b.copy_from_slice(z);
    super::softmax_in_place(b);
}

/// The root mean square deviation of the logits from their row means (1 if it is 0).
fn spread(x: &Predictions) -> f64 {
    let k = x.k() as f64;
    let ss: f64 = (0..x.n())
        .map(|i| {
            let r = x.row(i);
            let m = r.iter().sum::<f64>() / k;
            r.iter().map(|v| (v - m) * (v - m)).sum::<f64>()
        })
        .sum();
    let s = (ss / x.values().len() as f64).sqrt();
    if s > 0.0 && s.is_finite() {
        s
    } else {
        1.0
    }
}

/// The quadratic of the weights: MSE(w) = wᵀQw − 2cᵀw + 1/K, with Q = PᵀP / (NK) and
/// c = PᵀY / (NK) over the three members P.
fn normal_equations(x: &Predictions, labels: &[usize], t: f64) -> ([f64; 9], [f64; 3]) {
    let k = x.k();
    let parts: Vec<([f64; 9], [f64; 3])> = x
        .values()
        .par_chunks(CHUNK * k)
        .zip(labels.par_chunks(CHUNK))
        .map(|(z, y)| {
            let (mut q, mut c) = ([0.0; 9], [0.0; 3]);
            let (mut a, mut b) = (vec![0.0; k], vec![0.0; k]);
            let u = 1.0 / k as f64;
            for (z, &l) in z.chunks(k).zip(y) {
                members(z, t, &mut a, &mut b);
                for j in 0..k {
                    let p = [a[j], b[j], u];
                    for m in 0..3 {
                        for n in 0..3 {
                            q[m * 3 + n] += p[m] * p[n];
                        }
                    }
                }
                c[0] += a[l];
                c[1] += b[l];
                c[2] += u;
            }
            (q, c)
        })
        .collect();
    let scale = 1.0 / (x.n() * k) as f64;
    let (mut q, mut c) = ([0.0; 9], [0.0; 3]);
    for (pq, pc) in parts {
        q.iter_mut().zip(pq).for_each(|(q, p)| *q += p * scale);
        c.iter_mut().zip(pc).for_each(|(c, p)| *c += p * scale);
    }
    (q, c)
}

/// wᵀQw − 2cᵀw (the MSE less its constant 1/K).
fn quadratic(q: &[f64; 9], c: &[f64; 3], w: &[f64; 3]) -> f64 {
    (0..3).map(|m| w[m] * ((0..3).map(|n| q[m * 3 + n] * w[n]).sum::<f64>() - 2.0 * c[m])).sum()
}

/// The exact minimiser of wᵀQw − 2cᵀw on the simplex {w ≥ 0, Σw = 1}, Q positive semi-definite.
fn simplex_qp(q: &[f64; 9], c: &[f64; 3]) -> [f64; 3] {
    let mut best = ([1.0, 0.0, 0.0], f64::INFINITY);
    // Each face: its members; w = e_last + Σ_{i ≠ last} v_i (e_i − e_last).
    for face in 1u8..8 {
        let members: Vec<usize> = (0..3).filter(|m| face & (1 << m) != 0).collect();
        let (&last, free) = members.split_last().expect("a face has a member");
        let m = free.len();
        // Reduced system: Zᵀ Q Z v = Zᵀ (c − Q e_last).
        let qz = |i: usize, j: usize| q[i * 3 + j] - q[i * 3 + last] - q[last * 3 + j] + q[last * 3 + last];
        let a: Vec<f64> = (0..m * m).map(|ij| qz(free[ij / m], free[ij % m])).collect();
        let rhs: Vec<f64> = free.iter().map(|&i| (c[i] - q[i * 3 + last]) - (c[last] - q[last * 3 + last])).collect();
        let Some(v) = (if m == 0 { Some(vec![]) } else { solve_spd(&a, &rhs) }) else { continue };
        let mut w = [0.0; 3];
        w[last] = 1.0 - v.iter().sum::<f64>();
        free.iter().zip(&v).for_each(|(&i, &vi)| w[i] = vi);
        if w.iter().any(|&x| x < 0.0) {
            continue;
        }
        let value = quadratic(q, c, &w);
        if value < best.1 {
            best = (w, value);
        }
    }
    best.0
}

impl Calibrator for Ets {
    fn classes(&self) -> usize {
        self.classes
    }
    fn transform(&self, x: &Predictions) -> Result<Vec<f64>> {
        super::check_width(x, self.classes)?;
        if x.kind() != ScoreKind::Logits {
            return Err(Error::Parameter("ensemble temperature scaling needs logits, not probabilities".into()));
        }
        let k = self.classes;
        let [w1, w2, w3] = self.weights;
        let mut out = vec![0.0; x.values().len()];
        out.par_chunks_mut(CHUNK * k).zip(x.values().par_chunks(CHUNK * k)).for_each(|(o, z)| {
            let mut b = vec![0.0; k];
            for (o, z) in o.chunks_mut(k).zip(z.chunks(k)) {
                members(z, self.temperature, o, &mut b);
                o.iter_mut().zip(&b).for_each(|(o, b)| *o = w1 * *o + w2 * b + w3 / k as f64);
            }
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::linear::tests::synthetic;
    use super::super::{Fitted, Saved};
    use super::*;

    fn logits(v: &[f64], k: usize) -> Predictions<'static> {
        Predictions::new(v.to_vec(), k, ScoreKind::Logits).unwrap()
    }

    fn mse(q: &[f64], labels: &[usize], k: usize) -> f64 {
        let s: f64 = q
            .chunks(k)
            .zip(labels)
            .map(|(r, &l)| r.iter().enumerate().map(|(j, p)| (p - f64::from(u8::from(j == l))).powi(2)).sum::<f64>())
            .sum();
        s / q.len() as f64
    }

    #[test]
    fn weights_are_the_exact_simplex_optimum() {
        let (z, y) = synthetic(600, 4, 21);
        let e = Ets::fit(&logits(&z, 4), &y).unwrap();
        let with = |w: [f64; 3]| mse(&Ets { weights: w, ..e.clone() }.transform(&logits(&z, 4)).unwrap(), &y, 4);
        let best = with(e.weights);
        // No point of a fine grid on the simplex does better.
        for i in 0..=100 {
            for j in 0..=100 - i {
                let w = [i as f64 / 100.0, j as f64 / 100.0, (100 - i - j) as f64 / 100.0];
                assert!(with(w) >= best - 1e-15, "{w:?} beats {:?}", e.weights);
            }
        }
    }

    #[test]
    fn simplex_qp_handles_vertices_edges_and_a_singular_face() {
        // Q = I, c = target: the minimiser is the projection of the target onto the simplex.
        let eye = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let close = |a: [f64; 3], b: [f64; 3]| a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert!(close(simplex_qp(&eye, &[0.2, 0.3, 0.5]), [0.2, 0.3, 0.5]));
        assert!(close(simplex_qp(&eye, &[0.9, 0.6, -1.0]), [0.65, 0.35, 0.0]));
        assert!(close(simplex_qp(&eye, &[3.0, 0.0, 0.0]), [1.0, 0.0, 0.0]));
        // Two identical members (T = 1): Q singular on their edge; any split is optimal.
        let q = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let w = simplex_qp(&q, &[2.0, 2.0, 0.0]);
        assert!((w[0] + w[1] - 1.0).abs() < 1e-12 && w[2] == 0.0, "{w:?}");
    }

    #[test]
    fn the_temperature_scales_with_the_logits() {
        // T scales with the logits exactly; the map itself does not (its second member is the
        // untempered softmax), so the weights are refitted at each scale, exactly (see above).
        let (z, y) = synthetic(500, 5, 22);
        let base = Ets::fit(&logits(&z, 5), &y).unwrap();
        for c in [100.0, 0.01] {
            let zc: Vec<f64> = z.iter().map(|x| x * c).collect();
            let e = Ets::fit(&logits(&zc, 5), &y).unwrap();
            assert!((e.temperature / (c * base.temperature) - 1.0).abs() < 1e-9, "×{c}: {e:?} {base:?}");
            assert!((e.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12 && e.weights.iter().all(|w| *w >= 0.0));
        }
    }

    #[test]
    fn rows_sum_to_one() {
        let (z, y) = synthetic(300, 3, 24);
        let q = Ets::fit(&logits(&z, 3), &y).unwrap().transform(&logits(&z, 3)).unwrap();
        assert!(q.chunks(3).all(|r| (r.iter().sum::<f64>() - 1.0).abs() < 1e-12));
    }

    #[test]
    fn probabilities_are_refused() {
        let p = Predictions::new(vec![0.5, 0.5, 0.2, 0.8], 2, ScoreKind::Probs).unwrap();
        assert!(Ets::fit(&p, &[0, 1]).unwrap_err().to_string().contains("needs logits"));
    }

    #[test]
    fn json_round_trip() {
        let (z, y) = synthetic(300, 3, 25);
        let f = Fitted::Ets(Ets::fit(&logits(&z, 3), &y).unwrap());
        let back = Saved::from_json(&Saved::new("ets", ScoreKind::Logits, f.clone()).to_json()).unwrap();
        assert_eq!(back.fitted, f);
        let bad = Ets { classes: 3, temperature: 1.0, weights: [0.5, 0.6, 0.0] };
        assert!(bad.validate().is_err());
        assert!(Ets { temperature: -1.0, ..bad.clone() }.validate().is_err());
    }
}
