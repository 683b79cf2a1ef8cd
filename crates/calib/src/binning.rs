//! Confidence bins: equal-width edges, the `(lo, hi]` rule, and per-bin sums.

use crate::scores::Real;

/// `m` equal-width bins on [0, 1]. Bin `j` is `(edge_j, edge_{j+1}]`: the lower edge is excluded,
/// so a confidence of exactly 0 is in no bin (it still counts in `n`), as in the official code.
#[derive(Debug, Clone)]
pub(crate) struct Binning<F> {
    edges: Vec<F>,
}

impl<F: Real> Binning<F> {
    pub fn new(m: usize) -> Self {
        Self { edges: F::unit_edges(m) }
    }

    pub fn len(&self) -> usize {
        self.edges.len() - 1
    }

    pub fn edges(&self) -> &[F] {
        &self.edges
    }

    /// The bin holding `c`, found from a guess `ceil(c m) - 1` corrected against the actual
    /// edges, so the rule is exactly `edge_j < c <= edge_{j+1}` in `F` arithmetic.
    #[inline]
    pub fn bin_of(&self, c: F) -> Option<usize> {
        let m = self.len();
        if c <= self.edges[0] || c > self.edges[m] {
            return None;
        }
        let mut j = ((c.f64() * m as f64).ceil() as usize).saturating_sub(1).min(m - 1);
        while j > 0 && c <= self.edges[j] {
            j -= 1;
        }
        while j + 1 < m && c > self.edges[j + 1] {
            j += 1;
        }
        Some(j)
    }
}

/// Count, summed confidence and number of hits (correct predictions, or label == class for
/// classwise ECE) per bin.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BinSums {
    pub count: Vec<u64>,
    pub sum_conf: Vec<f64>,
    pub hits: Vec<u64>,
}

impl BinSums {
    pub fn new(m: usize) -> Self {
        Self { count: vec![0; m], sum_conf: vec![0.0; m], hits: vec![0; m] }
    }

    #[inline]
    pub fn add(&mut self, bin: usize, conf: f64, hit: bool) {
        self.count[bin] += 1;
        self.sum_conf[bin] += conf;
        self.hits[bin] += hit as u64;
    }

    pub fn merge(&mut self, other: &Self) {
        for j in 0..self.count.len() {
            self.count[j] += other.count[j];
            self.sum_conf[j] += other.sum_conf[j];
            self.hits[j] += other.hits[j];
        }
    }

    /// |mean confidence − accuracy| of each non-empty bin (None when empty).
    pub fn gaps(&self) -> impl Iterator<Item = Option<f64>> + '_ {
        (0..self.count.len()).map(|j| {
            let c = self.count[j];
            (c > 0).then(|| (self.sum_conf[j] / c as f64 - self.hits[j] as f64 / c as f64).abs())
        })
    }

    /// Σ_j (|B_j| / n) · |mean_conf_j − acc_j| over non-empty bins.
    pub fn ece(&self, n: usize) -> f64 {
        self.gaps().zip(&self.count).filter_map(|(g, &c)| g.map(|g| g * (c as f64 / n as f64))).sum()
    }

    /// The largest gap over non-empty bins (0 when all are empty).
    pub fn mce(&self) -> f64 {
        self.gaps().flatten().fold(0.0, f64::max)
    }

    pub fn total(&self) -> u64 {
        self.count.iter().sum()
    }
}

/// One row of a reliability diagram.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Bin {
    pub lower: f64,
    pub upper: f64,
    pub count: u64,
    /// Mean confidence; None for an empty bin.
    pub mean_conf: Option<f64>,
    /// Share of hits; None for an empty bin.
    pub accuracy: Option<f64>,
}

impl Bin {
    pub(crate) fn from_sums(sums: &BinSums, j: usize, lower: f64, upper: f64) -> Self {
        let c = sums.count[j];
        Self {
            lower,
            upper,
            count: c,
            mean_conf: (c > 0).then(|| sums.sum_conf[j] / c as f64),
            accuracy: (c > 0).then(|| sums.hits[j] as f64 / c as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float32_edges_match_torch_linspace() {
        // The values the official float32 pipeline uses (testvectors/README.md).
        let expected = [
            0.0,
            0.06666667014360428,
            0.13333334028720856,
            0.20000001788139343,
            0.2666666805744171,
            0.3333333432674408,
            0.40000003576278687,
            0.46666669845581055,
            0.5333333015441895,
            0.5999999642372131,
            0.6666666269302368,
            0.7333333492279053,
            0.800000011920929,
            0.8666666746139526,
            0.9333333373069763,
            1.0,
        ];
        let edges: Vec<f64> = f32::unit_edges(15).iter().map(|&e| e as f64).collect();
        assert_eq!(edges, expected);
    }

    #[test]
    fn lower_edge_is_excluded_upper_included() {
        let b = Binning::<f64>::new(5);
        assert_eq!(b.bin_of(0.0), None);
        assert_eq!(b.bin_of(0.2), Some(0));
        assert_eq!(b.bin_of(0.2000001), Some(1));
        assert_eq!(b.bin_of(1.0), Some(4));
        assert_eq!(b.bin_of(1e-300), Some(0));
        // float32 edge 8/15 is below float32(8/15): that value goes one bin higher.
        let b32 = Binning::<f32>::new(15);
        assert_eq!(b32.bin_of(8.0f32 / 15.0), Some(8));
        assert_eq!(Binning::<f64>::new(15).bin_of(8.0 / 15.0), Some(7));
    }
}
