//! Percentile bootstrap confidence intervals, seeded and reproducible whatever the thread count:
//! resample `b` draws its indices from its own ChaCha stream (seed, stream b).

use crate::error::{Error, Result};
use crate::metrics::{self, Options, Resampled, Samples};
use crate::ood::{self, SoftmaxScores};
use crate::scores::{Real, Scores};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Bootstrap settings: number of resamples, two-sided coverage (0.9 → 5th and 95th
/// percentiles) and seed.
/// Non-exhaustive: build it with [`Settings::new`] or [`Settings::default`] (1000 resamples,
/// level 0.9, seed 0).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Settings {
    pub resamples: usize,
    pub level: f64,
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { resamples: 1000, level: 0.9, seed: 0 }
    }
}

impl Settings {
    /// `resamples` resamples for intervals of two-sided coverage `level`, seeded by `seed`.
    pub fn new(resamples: usize, level: f64, seed: u64) -> Self {
        Self { resamples, level, seed }
    }

    pub fn with_resamples(self, resamples: usize) -> Self {
        Self { resamples, ..self }
    }

    pub fn with_level(self, level: f64) -> Self {
        Self { level, ..self }
    }

    pub fn with_seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }

    pub fn validate(&self) -> Result<()> {
        if self.resamples < 2 {
            return Err(Error::Parameter("the bootstrap needs at least 2 resamples".into()));
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            return Err(Error::Parameter(format!("confidence level {} must lie in (0, 1)", self.level)));
        }
        Ok(())
    }
}

/// A point estimate on the full sample and its percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Intervals for the metrics the paper bootstraps, plus NLL, Brier, the top-label errors of
/// [`crate::top_label`] and the error rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetricIntervals {
    pub level: f64,
    pub resamples: usize,
    pub seed: u64,
    pub ece: Interval,
    pub adaece: Interval,
    pub classwise_ece: Interval,
    pub nll: Interval,
    pub brier: Interval,
    pub smece: Interval,
    pub ece_debiased_l2: Interval,
    pub ece_sweep: Interval,
    pub ks: Interval,
    pub error: Interval,
}

fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

fn draw(r: &mut ChaCha8Rng, n: usize) -> Vec<usize> {
    (0..n).map(|_| r.random_range(0..n)).collect()
}

/// Resamples whose class masses are computed together (one matrix product): a bound on the
/// weights `[batch, n]` and masses `[batch, K]` held at once.
const MASS_BATCH: usize = 256;

/// Linear-interpolated percentile (numpy's default) of sorted values, `q` in [0, 1]; NaN for
/// no values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let i = h.floor() as usize;
    match sorted.get(i + 1) {
        Some(&next) => sorted[i] + (h - i as f64) * (next - sorted[i]),
        None => sorted[i],
    }
}

fn interval(estimate: f64, mut values: Vec<f64>, level: f64) -> Interval {
    values.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    Interval { estimate, lower: percentile(&values, tail), upper: percentile(&values, 1.0 - tail) }
}

/// Resamples the predictions with replacement and recomputes the metrics on each resample.
pub fn metrics<F: Real>(scores: &Scores<F>, opts: &Options, settings: &Settings) -> Result<MetricIntervals> {
    metrics_with_progress(scores, opts, settings, || {})
}

/// [`metrics`], calling `tick` after each resample (for a progress bar).
pub fn metrics_with_progress<F: Real>(
    scores: &Scores<F>,
    opts: &Options,
    settings: &Settings,
    tick: impl Fn() + Sync,
) -> Result<MetricIntervals> {
    settings.validate()?;
    let full = metrics::evaluate(scores, opts)?;
    // Per-sample values once, then sums per resample; the classes' masses a batch at a time.
    let samples = Samples::new(scores, opts)?;
    let mut reports: Vec<Resampled> = Vec::with_capacity(settings.resamples);
    for first in (0..settings.resamples).step_by(MASS_BATCH) {
        let batch: Vec<Vec<usize>> = (first..(first + MASS_BATCH).min(settings.resamples))
            .into_par_iter()
            .map(|b| draw(&mut rng(settings.seed, b as u64), scores.n()))
            .collect();
        let mass = samples.class_mass(&batch);
        let k = scores.k();
        reports.par_extend(batch.par_iter().zip(mass.par_chunks(k)).map(|(idx, mass)| {
            let r = samples.resample(idx, mass);
            tick();
            r
        }));
    }
    let ci = |est: f64, f: fn(&Resampled) -> f64| interval(est, reports.iter().map(f).collect(), settings.level);
    Ok(MetricIntervals {
        level: settings.level,
        resamples: settings.resamples,
        seed: settings.seed,
        ece: ci(full.ece, |r| r.ece),
        adaece: ci(full.adaece, |r| r.adaece),
        classwise_ece: ci(full.classwise_ece, |r| r.classwise_ece),
        nll: ci(full.nll, |r| r.nll),
        brier: ci(full.brier, |r| r.brier),
        smece: ci(full.smece, |r| r.smece),
        ece_debiased_l2: ci(full.ece_debiased_l2, |r| r.ece_debiased_l2),
        ece_sweep: ci(full.ece_sweep, |r| r.ece_sweep),
        ks: ci(full.ks, |r| r.ks),
        error: ci(full.error, |r| r.error),
    })
}

/// Intervals for both OOD AUROCs, resampling the in-distribution and OOD sets independently.
pub fn ood(inside: &SoftmaxScores, outside: &SoftmaxScores, settings: &Settings) -> Result<(Interval, Interval)> {
    settings.validate()?;
    let full = ood::from_scores(inside, outside)?;
    let pick = |s: &SoftmaxScores, idx: &[usize]| SoftmaxScores {
        entropy: idx.iter().map(|&i| s.entropy[i]).collect(),
        confidence: idx.iter().map(|&i| s.confidence[i]).collect(),
    };
    let values = (0..settings.resamples as u64)
        .into_par_iter()
        .map(|b| {
            let mut r = rng(settings.seed, b);
            let a = pick(inside, &draw(&mut r, inside.entropy.len()));
            let o = pick(outside, &draw(&mut r, outside.entropy.len()));
            ood::from_scores(&a, &o)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((
        interval(full.auroc_entropy, values.iter().map(|v| v.auroc_entropy).collect(), settings.level),
        interval(full.auroc_confidence, values.iter().map(|v| v.auroc_confidence).collect(), settings.level),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScoreKind;

    fn scores() -> Scores<f64> {
        // Deterministic, mildly over-confident logits.
        let (n, k) = (400, 5);
        let mut v = Vec::with_capacity(n * k);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let y = i % k;
            for j in 0..k {
                let noise = ((i * 31 + j * 17) % 23) as f64 / 7.0;
                v.push(noise + if j == y && i % 4 != 0 { 3.0 } else { 0.0 });
            }
            labels.push(y as i64);
        }
        Scores::new(v, k, &labels, ScoreKind::Logits).unwrap()
    }

    /// A resample from the per-sample table gives what a full evaluation of the selected rows
    /// gives, in both modes, with and without a temperature, including a resample that misses
    /// the highest label (Paper mode's classwise then covers fewer classes).
    #[test]
    fn per_sample_resamples_equal_full_evaluations() {
        let s = scores();
        for (mode, bins) in
            [(metrics::Mode::Corrected, 15), (metrics::Mode::Paper, 15), (metrics::Mode::Corrected, 70_000)]
        {
            for t in [None, Some(1.7)] {
                let opts = Options::new(bins, mode).with_temperature_opt(t);
                let samples = Samples::new(&s, &opts).unwrap();
                let no_top: Vec<usize> = (0..s.n()).filter(|i| s.labels()[*i] != 4).collect();
                let resamples = [draw(&mut rng(3, 0), s.n()), draw(&mut rng(3, 1), s.n()), no_top];
                let mass = samples.class_mass(&resamples);
                for (idx, mass) in resamples.iter().zip(mass.chunks(s.k())) {
                    let (fast, full) = (samples.resample(idx, mass), metrics::evaluate(&s.select(idx), &opts).unwrap());
                    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
                    assert!(close(fast.ece, full.ece), "{mode:?} {t:?}: ece {} vs {}", fast.ece, full.ece);
                    assert!(close(fast.adaece, full.adaece), "{mode:?} {t:?}: adaece");
                    assert!(close(fast.classwise_ece, full.classwise_ece), "{mode:?} {t:?}: classwise");
                    assert!(close(fast.nll, full.nll) && fast.error == full.error, "{mode:?} {t:?}");
                    assert!(close(fast.brier, full.brier), "{mode:?} {t:?}: brier");
                    assert!(close(fast.smece, full.smece), "{mode:?} {t:?}: smooth ECE");
                    assert!(close(fast.ece_debiased_l2, full.ece_debiased_l2), "{mode:?} {t:?}: debiased");
                    assert!(close(fast.ece_sweep, full.ece_sweep) && close(fast.ks, full.ks), "{mode:?} {t:?}");
                }
            }
        }
    }

    /// Logits of `n` rows over `k` classes, the label raised in two rows of three.
    fn wide_logits(n: usize, k: usize) -> (Vec<f64>, Vec<i64>) {
        let mut logits = Vec::with_capacity(n * k);
        let labels: Vec<i64> = (0..n).map(|i| ((i * 37) % k) as i64).collect();
        for (i, &y) in labels.iter().enumerate() {
            for j in 0..k {
                let noise = ((i * 131 + j * 71) % 97) as f64 / 24.0;
                logits.push(noise + if j == y as usize && i % 3 != 0 { 9.0 } else { 0.0 });
            }
        }
        (logits, labels)
    }

    /// The same past one block of classes (700 classes: blocks of 256, 256 and 188) and for
    /// float32 logits and for probabilities: the class masses rebuilt block by block are the
    /// softmax's own values.
    #[test]
    fn vocabulary_wide_resamples_equal_full_evaluations() {
        let (n, k) = (300, 700);
        let (logits, labels) = wide_logits(n, k);
        let probs: Vec<f64> = logits
            .chunks(k)
            .flat_map(|row| {
                let sum: f64 = row.iter().map(|z| z.exp()).sum();
                row.iter().map(move |z| z.exp() / sum).collect::<Vec<_>>()
            })
            .collect();
        let wide = Scores::new(logits.clone(), k, &labels, ScoreKind::Logits).unwrap();
        let narrow = Scores::new(logits.iter().map(|&v| v as f32).collect(), k, &labels, ScoreKind::Logits).unwrap();
        let given = Scores::new(probs, k, &labels, ScoreKind::Probs).unwrap();
        let resamples = [draw(&mut rng(5, 0), n), draw(&mut rng(5, 1), n)];
        fn check<F: Real>(s: &Scores<F>, opts: &Options, resamples: &[Vec<usize>], what: &str) {
            let samples = Samples::new(s, opts).unwrap();
            let mass = samples.class_mass(resamples);
            for (idx, mass) in resamples.iter().zip(mass.chunks(s.k())) {
                let (fast, full) = (samples.resample(idx, mass), metrics::evaluate(&s.select(idx), opts).unwrap());
                let gap = (fast.classwise_ece - full.classwise_ece).abs();
                assert!(gap < 1e-12, "{what}: classwise {} vs {}", fast.classwise_ece, full.classwise_ece);
                assert!((fast.ece - full.ece).abs() < 1e-12 && fast.error == full.error, "{what}");
            }
        }
        for mode in [metrics::Mode::Corrected, metrics::Mode::Paper] {
            for t in [None, Some(1.3)] {
                let opts = Options::new(15, mode).with_temperature_opt(t);
                check(&wide, &opts, &resamples, &format!("f64 {mode:?} {t:?}"));
                check(&narrow, &opts, &resamples, &format!("f32 {mode:?} {t:?}"));
            }
            check(&given, &Options::new(15, mode), &resamples, &format!("probabilities {mode:?}"));
        }
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile(&x, 0.05) - 1.15).abs() < 1e-15);
        assert_eq!(percentile(&x, 1.0), 4.0);
        assert!((percentile(&x, 0.5) - 2.5).abs() < 1e-15);
    }

    #[test]
    fn seeded_and_independent_of_thread_count() {
        let s = scores();
        let settings = Settings { resamples: 64, level: 0.9, seed: 7 };
        let opts = Options::default();
        let a = metrics(&s, &opts, &settings).unwrap();
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let b = one.install(|| metrics(&s, &opts, &settings)).unwrap();
        assert_eq!(a, b);
        let c = metrics(&s, &opts, &Settings { seed: 8, ..settings }).unwrap();
        assert_ne!(a.ece, c.ece);
        for i in [a.ece, a.adaece, a.classwise_ece, a.error, a.nll] {
            assert!(i.lower <= i.upper && i.lower < i.estimate + 0.05 && i.upper > i.estimate - 0.05, "{i:?}");
        }
        assert!(metrics(&s, &opts, &Settings { resamples: 1, ..settings }).is_err());
        // Past one batch of resamples and one block of classes as well.
        let (logits, labels) = wide_logits(300, 600);
        let wide = Scores::new(logits, 600, &labels, ScoreKind::Logits).unwrap();
        let settings = Settings { resamples: 300, level: 0.9, seed: 7 };
        let many = metrics(&wide, &opts, &settings).unwrap();
        assert_eq!(many, one.install(|| metrics(&wide, &opts, &settings)).unwrap());
    }
}
