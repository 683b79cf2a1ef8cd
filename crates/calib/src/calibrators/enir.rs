//! ENIR, the ensemble of near-isotonic regressions (Naeini & Cooper 2016), as netcal 1.4.0's
//! `ENIR()` (BIC score, quick initialisation) computes it.
//!
//! The modified pool-adjacent-violators path (mPAVA, Tibshirani et al. 2011) starts from one group
//! per run of equal labels in the p-sorted rows (the group's value is its label) and raises the
//! penalty λ on decreases: each group moves at slope (dᵢ − dᵢ₊₁)/nᵢ, dᵢ = 1 where the value before
//! it is higher, until two neighbours collide; they merge and the step repeats. The path stops
//! when no pair collides or the next collision comes before the current λ. Every model of the
//! path but the first (the perfect fit) is scored by its BIC (degrees of freedom = its groups),
//! and the elbow rule picks the models to average, as in BBQ.
//!
//! netcal's arithmetic, which we follow because it decides the output:
//! - A step updates the values and the merged groups' upper bounds in place on the arrays the
//!   previous model shares, so each model is applied with the values of the next step's λ and
//!   its merged groups' upper bounds extended by one group.
//! - Merging a chain of three or more groups at once adds only the next group's row count to
//!   each (the counts are merged pairwise in place, in ascending order), and leaves the interval
//!   between the first group's new upper bound and the next kept group mapping to 0.
//! - Group i maps (loᵢ, hiᵢ], or [loᵢ, hiᵢ] when loᵢ = 0; later groups override earlier ones.
//!
//! Where we differ: netcal sorts with NumPy's unstable quicksort, so equal probabilities with
//! different labels fall in a machine-dependent order; we sort stably (the reference vectors are
//! made with netcal's sort made stable). netcal fails when the path has no model besides the
//! perfect fit (the labels are already monotone in p); we then use that fit.

use super::check_params;
use super::one_vs_all::{bic, BinaryMap};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// One near-isotonic model: groups with their intervals and values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NearIsotonic {
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub values: Vec<f64>,
}

impl NearIsotonic {
    /// The value of p: the last group whose interval holds it, 0 when none does.
    fn value(&self, p: f64) -> f64 {
        // Lower bounds do not decrease, so the groups that may hold p end at the last one whose
        // lower bound is below p (or is 0 when p is 0); that group holds p if any does, because
        // an earlier group's upper bound never passes a later group's.
        let i = self.lower.partition_point(|&lo| lo < p || (lo == 0.0 && p == 0.0));
        match i.checked_sub(1) {
            Some(i) if p <= self.upper[i] => self.values[i],
            _ => 0.0,
        }
    }
}

/// The state of the mPAVA path after a step.
struct Step {
    lambda: f64,
    counts: Vec<usize>,
    model: NearIsotonic,
}

/// Walks netcal's mPAVA path over p-sorted rows, calling `visit(index, model)` on each model
/// once its values are final (after the next step has updated them in place).
fn path(p: &[f64], y: &[bool], mut visit: impl FnMut(usize, &NearIsotonic)) {
    // Quick initialisation: one group per run of equal labels.
    let starts: Vec<usize> = (0..p.len()).filter(|&i| i == 0 || y[i] != y[i - 1]).collect();
    let mids = starts[1..].iter().map(|&s| (p[s - 1] + p[s]) / 2.0);
    let lower = std::iter::once(0.0).chain(mids.clone()).collect();
    let upper = mids.chain(std::iter::once(1.0)).collect();
    let counts = starts.iter().enumerate().map(|(g, &s)| starts.get(g + 1).unwrap_or(&p.len()) - s).collect();
    let values = starts.iter().map(|&s| f64::from(u8::from(y[s]))).collect();
    let mut cur = Step { lambda: 0.0, counts, model: NearIsotonic { lower, upper, values } };
    for index in 0.. {
        let g = cur.counts.len();
        let v = &cur.model.values;
        // dᵢ: the value before group i is higher (none before the first or after the last).
        let d = |i: usize| f64::from(u8::from(i > 0 && i < g && v[i - 1] > v[i]));
        let slopes: Vec<f64> = (0..g).map(|i| (d(i) - d(i + 1)) / cur.counts[i] as f64).collect();
        let t: Vec<f64> = (0..g.saturating_sub(1))
            .map(|i| {
                let ds = slopes[i] - slopes[i + 1];
                if ds == 0.0 {
                    f64::INFINITY
                } else {
                    (v[i + 1] - v[i]) / ds + cur.lambda
                }
            })
            .collect();
        let next = t.iter().copied().fold(f64::INFINITY, f64::min);
        if next < cur.lambda || next == f64::INFINITY {
            visit(index, &cur.model);
            return;
        }
        let step = next - cur.lambda;
        cur.model.values.iter_mut().zip(&slopes).for_each(|(v, s)| *v += s * step);
        let joined: Vec<usize> = (0..t.len()).filter(|&i| t[i] == next).collect();
        for &i in &joined {
            cur.counts[i] += cur.counts[i + 1];
            cur.model.upper[i] = cur.model.upper[i + 1];
        }
        visit(index, &cur.model);
        let mut dropped = vec![false; g];
        joined.iter().for_each(|&i| dropped[i + 1] = true);
        let keep = |i: &usize| !dropped[*i];
        let pick = |a: &[f64]| (0..g).filter(keep).map(|i| a[i]).collect::<Vec<f64>>();
        cur = Step {
            lambda: next,
            counts: (0..g).filter(keep).map(|i| cur.counts[i]).collect(),
            model: NearIsotonic {
                lower: pick(&cur.model.lower),
                upper: pick(&cur.model.upper),
                values: pick(&cur.model.values),
            },
        };
    }
}

/// ENIR: a weighted average of near-isotonic models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enir {
    /// The kept models and their weights (summing to 1).
    pub models: Vec<(f64, NearIsotonic)>,
}

impl BinaryMap for Enir {
    type Params = ();

    fn fit(p: &[f64], positive: &[bool], _: &()) -> Result<Self> {
        if p.is_empty() {
            return Err(Error::Empty("ENIR has no rows to fit".into()));
        }
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
        let ps: Vec<f64> = order.iter().map(|&i| p[i]).collect();
        let ys: Vec<bool> = order.iter().map(|&i| positive[i]).collect();
        // Pass 1 scores every model but the first; pass 2 keeps the chosen ones, so the path's
        // models (as many as the label runs) are never held at once.
        let (mut scores, mut first) = (Vec::new(), None);
        path(&ps, &ys, |index, m| {
            if index == 0 {
                first = Some(m.clone());
            } else {
                let ll = bic::log_likelihood(ps.iter().map(|&v| m.value(v)), &ys);
                scores.push(bic::bic(ll, m.values.len(), ps.len()));
            }
        });
        let models = if scores.is_empty() {
            vec![(1.0, first.expect("the path starts with a model"))]
        } else {
            let kept = bic::elbow(&scores);
            let mut models: Vec<(f64, Option<NearIsotonic>)> = kept.iter().map(|&(_, w)| (w, None)).collect();
            path(&ps, &ys, |index, m| {
                if let Some(slot) = kept.iter().position(|&(i, _)| index == i + 1) {
                    models[slot].1 = Some(m.clone());
                }
            });
            models.into_iter().map(|(w, m)| (w, m.expect("every kept model is on the path"))).collect()
        };
        Ok(Self { models })
    }

    fn map(&self, p: f64) -> f64 {
        self.models.iter().map(|(w, m)| m.value(p) * w).sum()
    }

    fn validate(&self) -> Result<()> {
        if self.models.is_empty() {
            return Err(Error::Shape("ENIR has no models".into()));
        }
        for (w, m) in &self.models {
            check_params("ENIR weight", &[*w], 1)?;
            let g = m.values.len();
            if g == 0 {
                return Err(Error::Shape("an ENIR model has no groups".into()));
            }
            check_params("ENIR lower bounds", &m.lower, g)?;
            check_params("ENIR upper bounds", &m.upper, g)?;
            check_params("ENIR values", &m.values, g)?;
            if m.lower.windows(2).any(|w| w[0] > w[1]) {
                return Err(Error::Parameter("ENIR lower bounds must not decrease".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotone_labels_keep_the_perfect_fit() {
        let e = Enir::fit(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true], &()).unwrap();
        assert_eq!(e.models.len(), 1);
        assert_eq!((e.map(0.0), e.map(0.15), e.map(0.5), e.map(0.51), e.map(1.0)), (0.0, 0.0, 0.0, 1.0, 1.0));
    }

    #[test]
    fn a_point_in_no_groups_interval_maps_to_zero() {
        let m = NearIsotonic { lower: vec![0.0, 0.6], upper: vec![0.4, 1.0], values: vec![0.3, 0.9] };
        assert_eq!((m.value(0.0), m.value(0.4), m.value(0.5), m.value(0.6), m.value(0.7)), (0.3, 0.3, 0.0, 0.0, 0.9));
    }
}
