//! Histogram binning (Zadrozny & Elkan 2001) and Bayesian binning into quantiles (BBQ, Naeini,
//! Cooper & Hauskrecht 2015), as netcal 1.4.0 implements them (`HistogramBinning(bins=B)` and
//! `BBQ()`: equal-width bins, BIC score).
//!
//! netcal's rules, which we follow exactly (the tests pin each one):
//! - The bin edges are `np.linspace(0, 1, B + 1)`: edge i is i·(1/B), the last is 1.
//! - Fitting clips p to [ε, 1 − ε] (ε = 2⁻⁵²) and bins it as scipy's `binned_statistic_dd` does,
//!   [lo, hi); a bin's value is the fraction of positives in it, an empty bin takes its centre.
//! - Mapping does not clip and bins as `np.digitize(p, edges, right=True) − 1` does, (lo, hi],
//!   with p = 0 in the first bin; so a p on an interior edge is fitted in the bin above the edge
//!   and mapped by the bin below it.
//! - BBQ fits a histogram for every B from max(1, ⌊N^⅓/10⌋) to min(⌈N/5⌉, ⌈10·N^⅓⌉), scores each
//!   by its BIC (B degrees of freedom, netcal's float32 log-likelihood) and averages the
//!   histograms the elbow rule keeps, weighted by their relative likelihoods.

use super::check_params;
use super::one_vs_all::{bic, BinaryMap};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The default bin count of `histogram` (netcal's default is 10; we use the ECE's 15, as the
/// issue and `calib`'s binning do).
pub const DEFAULT_BINS: usize = 15;

/// Values of B equal-width bins on [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Histogram {
    /// The calibrated probability of each bin.
    pub values: Vec<f64>,
}

impl Histogram {
    fn bins(&self) -> usize {
        self.values.len()
    }
    /// Edge i of B bins as `np.linspace(0, 1, B + 1)` computes it.
    fn edge(i: usize, bins: usize) -> f64 {
        if i == bins {
            1.0
        } else {
            i as f64 * (1.0 / bins as f64)
        }
    }
}

impl BinaryMap for Histogram {
    type Params = usize;

    fn fit(p: &[f64], positive: &[bool], &bins: &usize) -> Result<Self> {
        if bins == 0 {
            return Err(Error::Parameter("histogram binning needs at least one bin".into()));
        }
        let (mut hits, mut counts) = (vec![0usize; bins], vec![0usize; bins]);
        for (&v, &y) in p.iter().zip(positive) {
            let v = v.clamp(f64::EPSILON, 1.0 - f64::EPSILON);
            // [lo, hi): the number of edges ≤ v, less one; v < 1 so it is below `bins`.
            let b = edges_before(v, bins, |e, v| e <= v).saturating_sub(1).min(bins - 1);
            counts[b] += 1;
            hits[b] += usize::from(y);
        }
        let values = (0..bins)
            .map(|b| {
                if counts[b] == 0 {
                    0.5 * (Self::edge(b, bins) + Self::edge(b + 1, bins))
                } else {
                    hits[b] as f64 / counts[b] as f64
                }
            })
            .collect();
        Ok(Self { values })
    }

    fn map(&self, p: f64) -> f64 {
        let bins = self.bins();
        // (lo, hi]: the number of edges < p, less one, kept inside 0..bins.
        self.values[edges_before(p, bins, |e, p| e < p).saturating_sub(1).min(bins - 1)]
    }

    fn validate(&self) -> Result<()> {
        if self.values.is_empty() {
            return Err(Error::Shape("a histogram has no bins".into()));
        }
        check_params("histogram values", &self.values, self.values.len())
    }
}

/// The number of the B + 1 edges e with `before(e, p)`, by bisection (the edges increase):
/// `e <= p` bins as `np.digitize`/`searchsorted(side='right')`, `e < p` as `right=True`.
fn edges_before(p: f64, bins: usize, before: impl Fn(f64, f64) -> bool) -> usize {
    let (mut lo, mut hi) = (0usize, bins + 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if before(Histogram::edge(mid, bins), p) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// BBQ: a weighted average of histograms of several bin counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bbq {
    /// The kept histograms and their weights (summing to 1).
    pub models: Vec<(f64, Histogram)>,
}

impl Bbq {
    /// netcal's range of bin counts for N rows.
    pub fn bin_range(n: usize) -> std::ops::RangeInclusive<usize> {
        let c = (n as f64).powf(1.0 / 3.0);
        let min = (c / 10.0).floor().max(1.0) as usize;
        let max = ((n as f64 / 5.0).ceil()).min((c * 10.0).ceil()) as usize;
        min..=max
    }
}

impl BinaryMap for Bbq {
    type Params = ();

    fn fit(p: &[f64], positive: &[bool], _: &()) -> Result<Self> {
        let n = p.len();
        let candidates: Vec<Histogram> =
            Self::bin_range(n).map(|b| Histogram::fit(p, positive, &b)).collect::<Result<_>>()?;
        if candidates.is_empty() {
            return Err(Error::Empty(format!("BBQ has no bin count to try for {n} rows")));
        }
        let scores: Vec<f64> = candidates
            .iter()
            .map(|h| {
                let ll = bic::log_likelihood(p.iter().map(|&v| h.map(v)), positive);
                bic::bic(ll, h.bins(), n)
            })
            .collect();
        let models = bic::elbow(&scores).into_iter().map(|(i, w)| (w, candidates[i].clone())).collect();
        Ok(Self { models })
    }

    fn map(&self, p: f64) -> f64 {
        self.models.iter().map(|(w, h)| h.map(p).clamp(0.0, 1.0) * w).sum()
    }

    fn validate(&self) -> Result<()> {
        if self.models.is_empty() {
            return Err(Error::Shape("BBQ has no histograms".into()));
        }
        let weights: Vec<f64> = self.models.iter().map(|m| m.0).collect();
        check_params("BBQ weights", &weights, weights.len())?;
        self.models.iter().try_for_each(|(_, h)| h.validate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interior_edge_is_fitted_above_and_mapped_below() {
        // Edge 0.5 of two bins: fitted into bin 1 ([0.5, 1)), mapped by bin 0 ((0, 0.5]).
        let h = Histogram::fit(&[0.5, 0.25, 0.75], &[true, false, false], &2).unwrap();
        assert_eq!(h.values, vec![0.0, 0.5]);
        assert_eq!(h.map(0.5), 0.0);
        assert_eq!(h.map(0.5000001), 0.5);
    }

    #[test]
    fn confidences_of_zero_and_one_fall_in_the_end_bins() {
        let h = Histogram::fit(&[0.0, 1.0, 0.5], &[false, true, true], &4).unwrap();
        // 0 is clipped to ε (bin 0), 1 to 1 − ε (bin 3); bins 1 is empty, 2 holds 0.5.
        assert_eq!(h.values, vec![0.0, 0.375, 1.0, 1.0]);
        assert_eq!(h.map(0.0), 0.0);
        assert_eq!(h.map(1.0), 1.0);
    }

    #[test]
    fn an_empty_bin_takes_its_centre() {
        let h = Histogram::fit(&[0.05, 0.95], &[true, false], &5).unwrap();
        assert_eq!(h.values[1..4], [0.30000000000000004, 0.5, 0.7000000000000001]);
    }

    #[test]
    fn bbq_tries_netcals_bin_counts() {
        assert_eq!(Bbq::bin_range(5000), 1..=171);
        assert_eq!(Bbq::bin_range(10), 1..=2);
        // 10⁶^⅓ is 99.99999999999997 in floating point, as in NumPy.
        assert_eq!(Bbq::bin_range(1_000_000), 9..=1000);
    }
}
