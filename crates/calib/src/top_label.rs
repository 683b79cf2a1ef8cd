//! Top-label calibration errors that are not a fixed-width binning: smooth ECE (Błasiok &
//! Nakkiran 2023), Kumar et al.'s debiased L2 error (2019), ECE_sweep (Roelofs et al. 2022) and
//! the KS error (Gupta et al. 2021).
//!
//! Each is a function of every row's top-label confidence and whether the top label is right,
//! which [`crate::metrics::evaluate`] already keeps for AdaECE: they cost a sort and a few passes
//! over `n` numbers, never another pass over the `[N, K]` matrix. Smooth ECE and the debiased
//! error follow their reference packages step by step (relplot 1.0.3's `smECE`,
//! uncertainty-calibration 0.1.4's `lower_bound_scaling_top_ce`), including their grids and
//! rounding rules, so that they agree with them to 1e-6 (`tests/top_label_vectors.rs`).

use std::cmp::Ordering;

/// Confidences and correctness sorted by confidence (ascending, ties in input order).
pub struct Sorted {
    conf: Vec<f64>,
    hit: Vec<bool>,
}

impl Sorted {
    pub fn new(conf: &[f64], correct: &[bool]) -> Self {
        assert_eq!(conf.len(), correct.len(), "one correctness per confidence");
        let mut order: Vec<usize> = (0..conf.len()).collect();
        order.sort_by(|&a, &b| conf[a].partial_cmp(&conf[b]).unwrap_or(Ordering::Equal));
        Sorted { conf: order.iter().map(|&i| conf[i]).collect(), hit: order.iter().map(|&i| correct[i]).collect() }
    }

    fn n(&self) -> usize {
        self.conf.len()
    }
}

/// Smooth ECE and the kernel bandwidth σ it was measured at.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SmoothEce {
    pub value: f64,
    pub bandwidth: f64,
}

/// Smooth ECE with the automatic bandwidth: relplot's `smECE(f, y)` (reflected Gaussian kernel,
/// `eps = 0.001`), the bandwidth being the fixed point σ = smECE_σ found by ten bisection steps
/// from σ = 1, exactly as relplot's `search_param` walks (it returns the last σ whose check
/// failed, so the value is that of a σ already evaluated).
pub fn smooth_ece(conf: &[f64], correct: &[bool]) -> SmoothEce {
    const EPS: f64 = 0.001;
    let residual = residuals(conf, correct);
    let at = |sigma: f64| smooth_ece_at_residuals(conf, &residual, sigma);
    // check(α) = α < eps or α < smECE_α.
    let first = at(1.0);
    if 1.0 < first {
        return SmoothEce { value: first, bandwidth: 1.0 };
    }
    let (mut start, mut end, mut value) = (1.0f64, 0.0f64, first);
    for _ in 0..10 {
        let mid = (start + end) / 2.0;
        if mid < EPS {
            end = mid;
            continue;
        }
        let v = at(mid);
        if mid < v {
            end = mid;
        } else {
            (start, value) = (mid, v);
        }
    }
    SmoothEce { value, bandwidth: start }
}

/// Smooth ECE at a fixed bandwidth σ: relplot's `smECE_sigma(f, y, sigma)`.
pub fn smooth_ece_at(conf: &[f64], correct: &[bool], sigma: f64) -> f64 {
    smooth_ece_at_residuals(conf, &residuals(conf, correct), sigma)
}

/// Each row's confidence minus its correctness.
fn residuals(conf: &[f64], correct: &[bool]) -> Vec<f64> {
    conf.iter().zip(correct).map(|(&f, &y)| f - f64::from(u8::from(y))).collect()
}

/// relplot's `smooth_ece`: the kernel-smoothed residual `r(t)` and density `δ(t)` on a mesh of
/// `max(round(10/σ), 200)` points, `Σ|r|·δ / Σδ`.
fn smooth_ece_at_residuals(conf: &[f64], residual: &[f64], sigma: f64) -> f64 {
    let mesh = linspace(py_round(10.0 / sigma).max(200.0) as usize);
    let (smoothed, density) = ReflectedGaussian::new(sigma, conf).apply(residual, &mesh);
    let density: Vec<f64> = density.iter().map(|d| d + 1e-4).collect();
    let weighted: f64 = smoothed.iter().zip(&density).map(|(r, d)| (r / d).abs() * d).sum();
    weighted / density.iter().sum::<f64>()
}

/// relplot's `ReflectedGaussianKernel(σ).apply`: values spread linearly onto a grid of
/// `max(2000, round(20/σ)) // 2 + 1` points, convolved with a Gaussian over the grid reflected at
/// both ends, then interpolated linearly at the mesh.
struct ReflectedGaussian {
    grid: usize,
    kernel: Vec<f64>,
    /// Each confidence's grid cell and its fraction of the way to the next point.
    cell: Vec<(usize, f64)>,
}

impl ReflectedGaussian {
    fn new(sigma: f64, conf: &[f64]) -> Self {
        let grid = (py_round(20.0 / sigma).max(2000.0) as usize) / 2 + 1;
        let norm = (2.0 * std::f64::consts::PI).sqrt() * sigma;
        let kernel =
            linspace(grid).iter().map(|t| (-(t - 0.5) * (t - 0.5) / (2.0 * sigma * sigma)).exp() / norm).collect();
        let scale = (grid - 1) as f64;
        let cell = conf
            .iter()
            .map(|&f| {
                let b = ((f * scale).trunc().max(0.0) as usize).min(grid - 2);
                (b, f * scale - b as f64)
            })
            .collect();
        ReflectedGaussian { grid, kernel, cell }
    }

    /// The smoothed `weights` and the smoothed density (weights of 1) at the mesh. Both
    /// convolutions are one FFT: the two grids are the real and imaginary parts of one signal,
    /// which a real kernel keeps apart. relplot's `np.convolve` sums directly; the FFT's sums
    /// differ from those by rounding only (~1e-15 of the largest grid value).
    fn apply(&self, weights: &[f64], mesh: &[f64]) -> (Vec<f64>, Vec<f64>) {
        use rustfft::num_complex::Complex;
        let e = self.grid;
        let mut values = vec![Complex::new(0.0, 0.0); e];
        for (&(b, frac), &w) in self.cell.iter().zip(weights) {
            values[b] += Complex::new((1.0 - frac) * w, 1.0 - frac);
            values[b + 1] += Complex::new(frac * w, frac);
        }
        // The grid reflected at both ends without repeating the end points: 3E − 2 values,
        // then np.convolve(ext, kernel)[E//2 + E − 1 + s] for s < E ("valid"[E//2 : E//2 + E]).
        let ext = (1..e).rev().chain(0..e).chain((0..e - 1).rev()).map(|i| values[i]);
        // At least the full convolution's 4E − 3 points, so the circular product is the linear one.
        let len = (4 * e - 3).next_power_of_two();
        let mut planner = rustfft::FftPlanner::<f64>::new();
        let (forward, inverse) = (planner.plan_fft_forward(len), planner.plan_fft_inverse(len));
        let mut signal: Vec<Complex<f64>> = ext.chain(std::iter::repeat(Complex::new(0.0, 0.0))).take(len).collect();
        let mut kernel: Vec<Complex<f64>> = self
            .kernel
            .iter()
            .map(|&v| Complex::new(v, 0.0))
            .chain(std::iter::repeat(Complex::new(0.0, 0.0)))
            .take(len)
            .collect();
        forward.process(&mut signal);
        forward.process(&mut kernel);
        signal.iter_mut().zip(&kernel).for_each(|(a, b)| *a *= b / len as f64);
        inverse.process(&mut signal);
        let at = &signal[e / 2 + e - 1..e / 2 + 2 * e - 1];
        let (smoothed, density): (Vec<f64>, Vec<f64>) = at.iter().map(|c| (c.re, c.im)).unzip();
        (interpolate(mesh, &smoothed), interpolate(mesh, &density))
    }
}

/// relplot's `interpolate`: the piecewise-linear function through `(i/(len−1), y_i)` at `t`.
fn interpolate(t: &[f64], y: &[f64]) -> Vec<f64> {
    let cells = y.len() - 1;
    let width = 1.0 / cells as f64;
    t.iter()
        .map(|&x| {
            let i = ((x * cells as f64).trunc().max(0.0) as usize).min(cells - 1);
            let r = (x - i as f64 * width) / width;
            y[i] * (1.0 - r) + y[i + 1] * r
        })
        .collect()
}

/// `numpy.linspace(0, 1, n)`: `i · (1/(n−1))` with the last point exactly 1.
fn linspace(n: usize) -> Vec<f64> {
    let step = 1.0 / (n - 1) as f64;
    let mut t: Vec<f64> = (0..n).map(|i| i as f64 * step).collect();
    t[n - 1] = 1.0;
    t
}

/// Python's `round` to an integer: halves to even.
fn py_round(x: f64) -> f64 {
    x.round_ties_even()
}

/// Kumar et al.'s debiased top-label L2 calibration error over `bins` equal-mass bins, as
/// uncertainty-calibration's `lower_bound_scaling_top_ce(probs, labels, p=2, debias=True,
/// num_bins=bins, binning_scheme=get_equal_bins)` computes it: bin edges halfway between the
/// sorted confidences where `numpy.array_split` cuts them (duplicates merged, 1 appended), each
/// row in the bin of the first edge ≥ its confidence, and per bin of at least two rows the
/// squared gap less the label variance `ā(1−ā)/(n_b−1)`; the square root of the weighted sum,
/// floored at 0.
pub fn debiased_l2(sorted: &Sorted, bins: usize) -> f64 {
    let n = sorted.n();
    let parts = bins.min(n);
    let sizes = array_split(n, parts);
    let mut edges = Vec::with_capacity(parts);
    let mut start = 0;
    for &size in &sizes[..parts - 1] {
        let end = start + size;
        edges.push((sorted.conf[end - 1] + sorted.conf[end]) / 2.0);
        start = end;
    }
    edges.push(1.0);
    edges.sort_by(f64::total_cmp);
    edges.dedup();
    let mut sums = vec![(0usize, 0.0f64, 0usize); edges.len()];
    let mut bin = 0;
    for (&f, &hit) in sorted.conf.iter().zip(&sorted.hit) {
        while bin + 1 < edges.len() && edges[bin] < f {
            bin += 1;
        }
        let s = &mut sums[bin];
        s.0 += 1;
        s.1 += f;
        s.2 += usize::from(hit);
    }
    let square: f64 = sums
        .iter()
        .filter(|s| s.0 >= 2)
        .map(|&(count, sum_conf, hits)| {
            let c = count as f64;
            let (mean_conf, mean_label) = (sum_conf / c, hits as f64 / c);
            let gap = (mean_conf - mean_label).abs().powi(2);
            c / n as f64 * (gap - mean_label * (1.0 - mean_label) / (c - 1.0))
        })
        .sum();
    square.max(0.0).sqrt()
}

/// ECE_sweep and the number of equal-mass bins it was measured with.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sweep {
    pub value: f64,
    pub bins: usize,
}

/// Roelofs et al.'s ECE_sweep: the rows sorted by confidence are split into b equal-mass bins
/// (sizes as `numpy.array_split`) for b = 1, 2, …; the sweep stops before the first b whose bin
/// accuracies are not non-decreasing and returns the L1 ECE at the last monotone b. Accuracies
/// are compared exactly (as fractions), so the stopping point does not depend on rounding. The
/// cost is O(b²) for a sweep that stops at b bins (tens on real predictions).
pub fn ece_sweep(sorted: &Sorted) -> Sweep {
    let n = sorted.n();
    let mut prefix_conf = vec![0.0; n + 1];
    let mut prefix_hits = vec![0u64; n + 1];
    for i in 0..n {
        prefix_conf[i + 1] = prefix_conf[i] + sorted.conf[i];
        prefix_hits[i + 1] = prefix_hits[i] + u64::from(sorted.hit[i]);
    }
    let ece_at = |b: usize| -> Option<f64> {
        let (q, r) = (n / b, n % b);
        let (mut start, mut last, mut total) = (0usize, None::<(u64, u64)>, 0.0);
        for i in 0..b {
            let end = start + q + usize::from(i < r);
            let (hits, count) = (prefix_hits[end] - prefix_hits[start], (end - start) as u64);
            if let Some((h, c)) = last {
                if u128::from(hits) * u128::from(c) < u128::from(h) * u128::from(count) {
                    return None;
                }
            }
            total += (prefix_conf[end] - prefix_conf[start] - hits as f64).abs();
            last = Some((hits, count));
            start = end;
        }
        Some(total / n as f64)
    };
    // Wrong rows all below right rows: every split is monotone, so the sweep ends at one row per
    // bin; said at once, since the loop below costs O(b²) and would be quadratic in n here.
    if sorted.hit.windows(2).all(|w| w[0] <= w[1]) {
        return Sweep { value: ece_at(n).expect("sorted correctness is monotone"), bins: n };
    }
    let mut best = Sweep { value: ece_at(1).expect("one bin is monotone"), bins: 1 };
    for b in 2..=n {
        match ece_at(b) {
            Some(value) => best = Sweep { value, bins: b },
            None => break,
        }
    }
    best
}

/// Gupta et al.'s KS calibration error of the top label: the largest gap between the cumulative
/// confidence and the cumulative accuracy of the rows sorted by confidence, both divided by n.
/// The gap is read at the end of each run of equal confidences, so the order of tied rows (which
/// the reference's unstable argsort leaves open) does not change it; with distinct confidences
/// this is the reference's value.
pub fn ks(sorted: &Sorted) -> f64 {
    let n = sorted.n();
    let (mut conf, mut hits, mut worst) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        conf += sorted.conf[i];
        hits += f64::from(u8::from(sorted.hit[i]));
        if i + 1 == n || sorted.conf[i + 1] != sorted.conf[i] {
            worst = worst.max((conf / n as f64 - hits / n as f64).abs());
        }
    }
    worst
}

/// The sizes of `numpy.array_split(range(n), parts)`: the first `n % parts` one longer.
fn array_split(n: usize, parts: usize) -> Vec<usize> {
    (0..parts).map(|i| n / parts + usize::from(i < n % parts)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_split_sizes_put_the_remainder_first() {
        assert_eq!(array_split(10, 3), vec![4, 3, 3]);
        assert_eq!(array_split(3, 3), vec![1, 1, 1]);
    }

    #[test]
    fn linspace_is_numpys() {
        assert_eq!(linspace(3), vec![0.0, 0.5, 1.0]);
        assert_eq!(linspace(5)[3], 3.0 * 0.25);
    }

    #[test]
    fn python_round_takes_halves_to_even() {
        assert_eq!(py_round(2.5), 2.0);
        assert_eq!(py_round(3.5), 4.0);
        assert_eq!(py_round(200.4), 200.0);
    }

    #[test]
    fn sweep_stops_before_the_first_non_monotone_split() {
        // Sorted confidences with hits 0,1,0,1: b = 2 gives accuracies ½, ½ (monotone),
        // b = 3 gives 0/2… [0,1],[0],[1] → ½, 0, 1: not monotone, so b = 2.
        let s = Sorted::new(&[0.1, 0.2, 0.3, 0.4], &[false, true, false, true]);
        let sweep = ece_sweep(&s);
        assert_eq!(sweep.bins, 2);
        // |0.3 − 1| + |0.7 − 1| over 4.
        assert!((sweep.value - (0.7 + 0.3) / 4.0).abs() < 1e-15);
    }

    #[test]
    fn sweep_of_rising_accuracy_reaches_one_row_per_bin() {
        let s = Sorted::new(&[0.2, 0.4, 0.6, 0.8], &[false, false, true, true]);
        let sweep = ece_sweep(&s);
        assert_eq!(sweep.bins, 4);
        assert!((sweep.value - (0.2 + 0.4 + 0.4 + 0.2) / 4.0).abs() < 1e-15);
    }

    #[test]
    fn ks_reads_the_gap_after_ties_whatever_their_order() {
        let a = ks(&Sorted::new(&[0.5, 0.5, 0.9], &[true, false, true]));
        let b = ks(&Sorted::new(&[0.5, 0.5, 0.9], &[false, true, true]));
        assert_eq!(a, b);
        // After the tie: conf 1.0, hits 1 → 0; after all: 1.9 vs 2 → 0.1/3.
        assert!((a - 0.1 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn debiased_error_subtracts_the_label_variance() {
        // 4 rows in 2 bins of 2, edge 0.75. Bin 1: (0.6 − 0.5)² − 0.25/1 = −0.24; bin 2:
        // (0.9 − 1)² − 0 = 0.01; weighted ½ each the sum is negative, floored at 0.
        let s = Sorted::new(&[0.6, 0.6, 0.9, 0.9], &[true, false, true, true]);
        assert_eq!(debiased_l2(&s, 2), 0.0);
        let s = Sorted::new(&[0.6, 0.6, 0.9, 0.9], &[true, true, false, false]);
        // Bin 1: 0.16 − 0 ; bin 2: 0.81 − 0.
        assert!((debiased_l2(&s, 2) - (0.5f64 * 0.16 + 0.5 * 0.81).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn smooth_ece_of_a_calibrated_grid_is_small_and_of_overconfidence_large() {
        let conf: Vec<f64> = (0..1000).map(|i| 0.5 + 0.5 * (i as f64 + 0.5) / 1000.0).collect();
        // Right exactly as often as claimed, bin by bin of 100 rows.
        let calibrated: Vec<bool> = conf.iter().enumerate().map(|(i, &c)| ((i % 100) as f64) < c * 100.0).collect();
        let wrong_half: Vec<bool> = (0..1000).map(|i| i % 2 == 0).collect();
        let good = smooth_ece(&conf, &calibrated);
        let bad = smooth_ece(&conf, &wrong_half);
        assert!(good.value < 0.03, "{good:?}");
        assert!((bad.value - 0.25).abs() < 0.02, "{bad:?}");
        assert!(good.bandwidth <= 1.0 && good.bandwidth >= 1.0 / 1024.0);
        assert_eq!(smooth_ece_at(&conf, &wrong_half, bad.bandwidth), bad.value);
    }
}
