//! Calibration and accuracy metrics over a [`Scores`] matrix, computed in one parallel pass.
//!
//! Two modes, named in every [`Report`]:
//! - [`Mode::Paper`]: the official code's algorithms with their quirks (AdaECE's interpolated
//!   edges that leave the minimum-confidence samples out; classwise ECE over `max(label)+1`
//!   classes), so published numbers can be reproduced.
//! - [`Mode::Corrected`] (default): the definitions the paper states. AdaECE sorts by confidence
//!   (ties by sample index) and splits into `m` contiguous groups whose sizes differ by at most one,
//!   larger groups first (numpy `array_split`), every sample counted; classwise ECE covers all K
//!   classes of the input.
//!
//! ECE and MCE use the same `(lo, hi]` bins in both modes.

use crate::binning::{Bin, BinSums, Binning};
use crate::error::{Error, Result};
use crate::scores::{Real, ScoreKind, Scores, Unscanned};
use crate::softmax::{dispatch, Kernel, Row};
use rayon::prelude::*;

/// Which definitions to use; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Paper,
    #[default]
    Corrected,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "paper" => Ok(Mode::Paper),
            "corrected" => Ok(Mode::Corrected),
            _ => Err(Error::UnknownName { what: "mode", name: s.into(), expected: "paper, corrected".into() }),
        }
    }
}

/// Settings of one metric computation: `Options::new(15, Mode::Corrected)`, then
/// [`Options::with_temperature`] to scale logits first. Non-exhaustive: build it with
/// [`Options::new`] or [`Options::default`] (15 bins, corrected mode, no temperature).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// Number of equal-width (ECE, classwise, MCE) and adaptive (AdaECE) bins.
    pub bins: usize,
    pub mode: Mode,
    /// Divide logits by this before the softmax (ignored for probabilities).
    pub temperature: Option<f64>,
}

impl Default for Options {
    fn default() -> Self {
        Self { bins: 15, mode: Mode::Corrected, temperature: None }
    }
}

impl Options {
    /// `bins` bins in `mode`, no temperature.
    pub fn new(bins: usize, mode: Mode) -> Self {
        Self { bins, mode, temperature: None }
    }

    /// The same options dividing logits by `t` first.
    pub fn with_temperature(self, t: f64) -> Self {
        self.with_temperature_opt(Some(t))
    }

    /// The same options with this temperature, or none.
    pub fn with_temperature_opt(self, temperature: Option<f64>) -> Self {
        Self { temperature, ..self }
    }

    pub fn with_bins(self, bins: usize) -> Self {
        Self { bins, ..self }
    }

    pub fn with_mode(self, mode: Mode) -> Self {
        Self { mode, ..self }
    }

    pub fn validate(&self) -> Result<()> {
        if self.bins == 0 {
            return Err(Error::Parameter("the number of bins must be at least 1".into()));
        }
        if let Some(t) = self.temperature {
            if !(t.is_finite() && t > 0.0) {
                return Err(Error::Parameter(format!("temperature {t} must be positive and finite")));
            }
        }
        Ok(())
    }
}

/// Mean predictive entropy (nats), over all samples and split by correctness (paper Figs. 1–2).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entropy {
    pub all: f64,
    pub correct: Option<f64>,
    pub wrong: Option<f64>,
}

/// The official repository's list-based metrics (bin index `ceil(m·conf − 1)`, empty bins count
/// as gap 0), kept so its legacy numbers can be reproduced.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Legacy {
    pub ece: f64,
    pub mce: f64,
    pub ace: f64,
    pub l2: f64,
}

/// Every metric of one set of predictions. Values are fractions, not percent.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    pub mode: Mode,
    pub n: usize,
    pub classes: usize,
    pub error: f64,
    pub top5_error: f64,
    /// Mean negative log-likelihood. For probability inputs `−ln max(p_y, ε)` with ε the
    /// precision's machine epsilon (scikit-learn's `log_loss` clip), so a calibrator that gives
    /// the label probability 0 counts a finite 36 nats (f64), not infinity.
    pub nll: f64,
    /// Mean over rows of `Σ_k (p_k − 1[k = y])²`.
    pub brier: f64,
    pub ece: f64,
    pub adaece: f64,
    pub classwise_ece: f64,
    pub mce: f64,
    /// Smooth ECE with relplot's automatic bandwidth ([`crate::top_label::smooth_ece`]).
    pub smece: f64,
    pub smece_bandwidth: f64,
    /// Kumar et al.'s debiased top-label L2 error over `bins` equal-mass bins ([`crate::top_label::debiased_l2`]).
    pub ece_debiased_l2: f64,
    /// Roelofs et al.'s ECE_sweep and its number of equal-mass bins ([`crate::top_label::ece_sweep`]).
    pub ece_sweep: f64,
    pub ece_sweep_bins: usize,
    /// Gupta et al.'s KS error of the top label ([`crate::top_label::ks`]).
    pub ks: f64,
    /// Share of samples with confidence ≥ 0.99, and the accuracy among them (None when none).
    pub s99_fraction: f64,
    pub s99_accuracy: Option<f64>,
    pub entropy: Entropy,
    /// The reliability diagram: the ECE bins.
    pub bins: Vec<Bin>,
    pub adaece_bins: Vec<Bin>,
    /// Classes averaged by classwise ECE (`max(label)+1` in paper mode, K otherwise).
    pub classwise_num_classes: usize,
    pub classwise_per_class: Vec<f64>,
    pub samples_in_no_ece_bin: u64,
    pub samples_in_no_adaece_bin: u64,
    pub legacy: Legacy,
}

/// Sums one chunk of rows contributes; merged in chunk order so results do not depend on the
/// number of threads.
struct Partial {
    ece: BinSums,
    legacy: BinSums,
    classwise: Vec<BinSums>,
    correct: u64,
    top5: u64,
    nll: f64,
    brier: f64,
    entropy: [f64; 2],
    s99: u64,
    s99_correct: u64,
}

const CHUNK: usize = 2048;

/// Everything [`evaluate`] sums over a block of rows, plus each row's confidence and correctness.
struct SuiteChunk<'a, F> {
    scores: &'a Scores<F>,
    binning: &'a Binning<F>,
    temperature: Option<F>,
    classes: usize,
    first: usize,
    conf: &'a mut [F],
    correct: &'a mut [bool],
}

impl<F: Real> Kernel for SuiteChunk<'_, F> {
    type Out = Partial;

    #[inline(always)]
    fn run(self) -> Partial {
        let (s, k, m) = (self.scores, self.scores.k(), self.binning.len());
        let mut part = Partial {
            ece: BinSums::new(m),
            legacy: BinSums::new(m),
            classwise: vec![BinSums::new(m); self.classes],
            correct: 0,
            top5: 0,
            nll: 0.0,
            brier: 0.0,
            entropy: [0.0; 2],
            s99: 0,
            s99_correct: 0,
        };
        let mut row = Row::new(k);
        for r in 0..self.conf.len() {
            let y = s.labels()[self.first + r];
            let st = row.compute(s.row(self.first + r), s.kind(), self.temperature);
            let (cf, hit) = (st.conf, st.pred == y);
            self.conf[r] = cf;
            self.correct[r] = hit;
            part.correct += hit as u64;
            if let Some(b) = self.binning.bin_of(cf) {
                part.ece.add(b, cf.f64(), hit);
            }
            let lb = ((m as f64 * cf.f64() - 1.0).ceil().max(0.0) as usize).min(m - 1);
            part.legacy.add(lb, cf.f64(), hit);
            let p = &row.p;
            let py = p[y];
            let above = p.iter().filter(|&&v| v > py).count() + p[..y].iter().filter(|&&v| v == py).count();
            part.top5 += (above < 5) as u64;
            part.nll += row.nll_of(&st, y, s.kind()).f64();
            part.brier += row.brier(y).f64();
            part.entropy[usize::from(!hit)] += row.entropy(&st, s.kind()).f64();
            if cf.f64() >= 0.99 {
                part.s99 += 1;
                part.s99_correct += hit as u64;
            }
            for (cls, sums) in part.classwise.iter_mut().enumerate() {
                if let Some(b) = self.binning.bin_of(p[cls]) {
                    sums.add(b, p[cls].f64(), y == cls);
                }
            }
        }
        part
    }
}

/// Per-sample confidence and correctness, kept for AdaECE.
pub(crate) struct SampleConf<F> {
    pub conf: Vec<F>,
    pub correct: Vec<bool>,
}

/// Computes every metric of `scores` in one parallel pass over the matrix (plus a sort for AdaECE).
pub fn evaluate<F: Real>(scores: &Scores<F>, opts: &Options) -> Result<Report> {
    opts.validate()?;
    scores.check_temperature(opts.temperature)?;
    let (n, k, m) = (scores.n(), scores.k(), opts.bins);
    let labels = scores.labels();
    let classes = match opts.mode {
        Mode::Paper => labels.iter().max().map_or(0, |&l| l + 1),
        Mode::Corrected => k,
    };
    let binning = Binning::<F>::new(m);
    let temperature = temperature_of::<F>(scores.kind(), opts.temperature);

    let mut conf = vec![F::zero(); n];
    let mut correct = vec![false; n];
    let partials: Vec<Partial> = conf
        .par_chunks_mut(CHUNK)
        .zip(correct.par_chunks_mut(CHUNK))
        .enumerate()
        .map(|(c, (conf, correct))| {
            dispatch(SuiteChunk { scores, binning: &binning, temperature, classes, first: c * CHUNK, conf, correct })
        })
        .collect();

    let total = partials.into_iter().reduce(|mut a, b| {
        a.ece.merge(&b.ece);
        a.legacy.merge(&b.legacy);
        a.classwise.iter_mut().zip(&b.classwise).for_each(|(x, y)| x.merge(y));
        a.correct += b.correct;
        a.top5 += b.top5;
        a.nll += b.nll;
        a.brier += b.brier;
        a.entropy[0] += b.entropy[0];
        a.entropy[1] += b.entropy[1];
        a.s99 += b.s99;
        a.s99_correct += b.s99_correct;
        a
    });
    let total = total.expect("n > 0 gives at least one chunk");
    let nf = n as f64;
    let edges: Vec<f64> = binning.edges().iter().map(|e| e.f64()).collect();
    let classwise_per_class: Vec<f64> = total.classwise.iter().map(|s| s.ece(n)).collect();
    let conf64: Vec<f64> = conf.iter().map(|c| c.f64()).collect();
    let smooth = crate::top_label::smooth_ece(&conf64, &correct);
    let top = crate::top_label::Sorted::new(&conf64, &correct);
    let sweep = crate::top_label::ece_sweep(&top);
    let ada = adaptive(&SampleConf { conf, correct }, m, opts.mode);
    let n_wrong = n as u64 - total.correct;
    Ok(Report {
        mode: opts.mode,
        n,
        classes: k,
        error: n_wrong as f64 / nf,
        top5_error: (n as u64 - total.top5) as f64 / nf,
        nll: total.nll / nf,
        brier: total.brier / nf,
        ece: total.ece.ece(n),
        adaece: ada.value,
        classwise_ece: classwise_per_class.iter().sum::<f64>() / classwise_per_class.len().max(1) as f64,
        mce: total.ece.mce(),
        smece: smooth.value,
        smece_bandwidth: smooth.bandwidth,
        ece_debiased_l2: crate::top_label::debiased_l2(&top, m),
        ece_sweep: sweep.value,
        ece_sweep_bins: sweep.bins,
        ks: crate::top_label::ks(&top),
        s99_fraction: total.s99 as f64 / nf,
        s99_accuracy: (total.s99 > 0).then(|| total.s99_correct as f64 / total.s99 as f64),
        entropy: Entropy {
            all: (total.entropy[0] + total.entropy[1]) / nf,
            correct: (total.correct > 0).then(|| total.entropy[0] / total.correct as f64),
            wrong: (n_wrong > 0).then(|| total.entropy[1] / n_wrong as f64),
        },
        bins: (0..m).map(|j| Bin::from_sums(&total.ece, j, edges[j], edges[j + 1])).collect(),
        adaece_bins: ada.bins,
        classwise_num_classes: classes,
        classwise_per_class,
        samples_in_no_ece_bin: n as u64 - total.ece.total(),
        samples_in_no_adaece_bin: ada.outside,
        legacy: legacy(&total.legacy, n),
    })
}

/// What a bootstrap resample needs of every sample, computed once (softmax under the
/// temperature, bins), so a resample costs sums over its drawn rows instead of a new softmax of
/// the whole matrix.
///
/// Classwise ECE needs, per class and bin, the drawn probabilities' sum and the drawn labels.
/// The labels take one bin per sample (that of its label's probability). Of a row's
/// probabilities at most `m − 1` lie above the first bin (they sum to 1), kept as a short list;
/// the first bin's sum is the class's whole drawn mass less those, and the mass of every class
/// in every resample of a batch is one matrix product, weights `[resamples, n]` × probabilities
/// `[n, K]` ([`Samples::class_mass`]). So vocabulary-wide token predictions (K = 8,000) cost
/// seconds, not a full evaluation per resample.
pub(crate) struct Samples<'a, F> {
    scores: &'a Scores<F>,
    t: Option<F>,
    conf: Vec<F>,
    correct: Vec<bool>,
    ece_bin: Vec<u32>,
    nll: Vec<f64>,
    brier: Vec<f64>,
    /// Per sample: the max of z/T its softmax subtracted (to rebuild its probabilities).
    max: Vec<F>,
    /// Per sample: the bin of its label's probability.
    label_bin: Vec<u32>,
    /// The (class, bin, probability) entries above the first bin, sample by sample; sample i's
    /// are `high[high_rows[i]..high_rows[i + 1]]`.
    high: Vec<(u32, u32, f64)>,
    high_rows: Vec<usize>,
    labels: Vec<usize>,
    k: usize,
    m: usize,
    mode: Mode,
}

/// "No bin": a value of 0 (or outside [0, 1]) is in no `(lo, hi]` bin.
const NO_BIN: u32 = u32::MAX;

/// Columns of the probability matrix per task of [`Samples::class_mass`], and rows per matrix
/// product: fixed, so the sums' order (and so the results) does not depend on the thread count.
const MASS_COLUMNS: usize = 256;
const MASS_ROWS: usize = 128;

/// The metrics the bootstrap intervals cover.
pub(crate) struct Resampled {
    pub ece: f64,
    pub adaece: f64,
    pub classwise_ece: f64,
    pub nll: f64,
    pub brier: f64,
    pub smece: f64,
    pub ece_debiased_l2: f64,
    pub ece_sweep: f64,
    pub ks: f64,
    pub error: f64,
}

impl<'a, F: Real> Samples<'a, F> {
    /// Per-sample values of `scores` under `opts` (checked).
    pub fn new(scores: &'a Scores<F>, opts: &Options) -> Result<Self> {
        opts.validate()?;
        scores.check_temperature(opts.temperature)?;
        let (n, k, m) = (scores.n(), scores.k(), opts.bins);
        let binning = Binning::<F>::new(m);
        let t = temperature_of::<F>(scores.kind(), opts.temperature);
        let bin = |c: F| binning.bin_of(c).map_or(NO_BIN, |b| b as u32);
        struct Sample<F> {
            conf: F,
            correct: bool,
            ece_bin: u32,
            nll: f64,
            brier: f64,
            max: F,
            label_bin: u32,
            high: Vec<(u32, u32, f64)>,
        }
        let per_sample: Vec<Sample<F>> = (0..n)
            .into_par_iter()
            .map_init(
                || Row::new(k),
                |row, i| {
                    let y = scores.labels()[i];
                    let st = row.compute(scores.row(i), scores.kind(), t);
                    let high = (row.p.iter().enumerate())
                        .filter_map(|(c, &v)| {
                            let b = bin(v);
                            (b != NO_BIN && b > 0).then(|| (c as u32, b, v.f64()))
                        })
                        .collect();
                    Sample {
                        conf: st.conf,
                        correct: st.pred == y,
                        ece_bin: bin(st.conf),
                        nll: row.nll_of(&st, y, scores.kind()).f64(),
                        brier: row.brier(y).f64(),
                        max: row.max,
                        label_bin: bin(row.p[y]),
                        high,
                    }
                },
            )
            .collect();
        let mut high_rows = Vec::with_capacity(n + 1);
        high_rows.push(0);
        for s in &per_sample {
            high_rows.push(high_rows.last().expect("starts at 0") + s.high.len());
        }
        Ok(Samples {
            scores,
            t,
            conf: per_sample.iter().map(|s| s.conf).collect(),
            correct: per_sample.iter().map(|s| s.correct).collect(),
            ece_bin: per_sample.iter().map(|s| s.ece_bin).collect(),
            nll: per_sample.iter().map(|s| s.nll).collect(),
            brier: per_sample.iter().map(|s| s.brier).collect(),
            max: per_sample.iter().map(|s| s.max).collect(),
            label_bin: per_sample.iter().map(|s| s.label_bin).collect(),
            high: per_sample.into_iter().flat_map(|s| s.high).collect(),
            high_rows,
            labels: scores.labels().to_vec(),
            k,
            m,
            mode: opts.mode,
        })
    }

    /// For each resample (row indices, with repeats), the sum of each class's probability over
    /// its rows: `[resamples.len() · K]`, resample-major. One matrix product of the resamples'
    /// row counts and the probabilities, rebuilt `MASS_COLUMNS` classes at a time in parallel.
    pub fn class_mass(&self, resamples: &[Vec<usize>]) -> Vec<f64> {
        let (n, k, r) = (self.labels.len(), self.k, resamples.len());
        let mut weights = vec![0.0f64; r * n];
        for (w, idx) in weights.chunks_mut(n).zip(resamples) {
            for &i in idx {
                w[i] += 1.0;
            }
        }
        let blocks: Vec<(std::ops::Range<usize>, Vec<f64>)> = (0..k.div_ceil(MASS_COLUMNS))
            .into_par_iter()
            .map(|block| {
                let cols = block * MASS_COLUMNS..((block + 1) * MASS_COLUMNS).min(k);
                let width = cols.len();
                let (mut part, mut p) = (vec![F::zero(); width], vec![0.0f64; MASS_ROWS * width]);
                let mut mass = vec![0.0f64; r * width];
                for rows in (0..n).step_by(MASS_ROWS).map(|a| a..(a + MASS_ROWS).min(n)) {
                    for (i, dst) in rows.clone().zip(p.chunks_mut(width)) {
                        let z = self.scores.row(i).sub(cols.clone());
                        Row::part(z, self.scores.kind(), self.t, self.max[i], self.conf[i], &mut part);
                        dst.iter_mut().zip(&part).for_each(|(d, &v)| *d = v.f64());
                    }
                    // SAFETY: weights is [r, n] (row stride n, the columns `rows` in range), p holds
                    // rows.len() rows of `width`, mass is [r, width]; none of them overlap.
                    unsafe {
                        matrixmultiply::dgemm(
                            r,
                            rows.len(),
                            width,
                            1.0,
                            weights.as_ptr().add(rows.start),
                            n as isize,
                            1,
                            p.as_ptr(),
                            width as isize,
                            1,
                            1.0,
                            mass.as_mut_ptr(),
                            width as isize,
                            1,
                        );
                    }
                }
                (cols, mass)
            })
            .collect();
        let mut out = vec![0.0f64; r * k];
        for (cols, mass) in blocks {
            for (dst, src) in out.chunks_mut(k).zip(mass.chunks(cols.len())) {
                dst[cols.clone()].copy_from_slice(src);
            }
        }
        out
    }

    /// The metrics of the resample that takes rows `idx` (with repeats), whose classes' summed
    /// probabilities are `mass` (from [`Samples::class_mass`]); equal to [`evaluate`] of
    /// `scores.select(idx)` up to the order of floating-point sums.
    pub fn resample(&self, idx: &[usize], mass: &[f64]) -> Resampled {
        let (n, m) = (idx.len(), self.m);
        let mut ece = BinSums::new(m);
        let (mut wrong, mut nll, mut brier) = (0usize, 0.0, 0.0);
        let classes = match self.mode {
            Mode::Paper => idx.iter().map(|&i| self.labels[i]).max().map_or(0, |l| l + 1),
            Mode::Corrected => self.k,
        };
        // Per (class, bin): the drawn probabilities' sum (the first bin filled in last) and labels.
        let (mut sums, mut hits) = (vec![0.0f64; classes * m], vec![0.0f64; classes * m]);
        for &i in idx {
            let (c, hit) = (self.conf[i], self.correct[i]);
            wrong += usize::from(!hit);
            if self.ece_bin[i] != NO_BIN {
                ece.add(self.ece_bin[i] as usize, c.f64(), hit);
            }
            nll += self.nll[i];
            brier += self.brier[i];
            if self.label_bin[i] != NO_BIN {
                hits[self.labels[i] * m + self.label_bin[i] as usize] += 1.0;
            }
            for &(cls, b, p) in &self.high[self.high_rows[i]..self.high_rows[i + 1]] {
                if (cls as usize) < classes {
                    sums[cls as usize * m + b as usize] += p;
                }
            }
        }
        let per_class: Vec<f64> = (0..classes)
            .map(|cls| {
                let (s, h) = (&mut sums[cls * m..(cls + 1) * m], &hits[cls * m..(cls + 1) * m]);
                s[0] = mass[cls] - s[1..].iter().sum::<f64>();
                // A bin's (count/n)·|mean p − accuracy| is |Σ p − Σ hits| / n.
                s.iter().zip(h).map(|(a, b)| (a - b).abs()).sum::<f64>() / n as f64
            })
            .collect();
        let picked = SampleConf {
            conf: idx.iter().map(|&i| self.conf[i]).collect(),
            correct: idx.iter().map(|&i| self.correct[i]).collect(),
        };
        let conf: Vec<f64> = picked.conf.iter().map(|c| c.f64()).collect();
        let top = crate::top_label::Sorted::new(&conf, &picked.correct);
        Resampled {
            ece: ece.ece(n),
            adaece: adaptive(&picked, m, self.mode).value,
            classwise_ece: per_class.iter().sum::<f64>() / per_class.len().max(1) as f64,
            nll: nll / n as f64,
            brier: brier / n as f64,
            smece: crate::top_label::smooth_ece(&conf, &picked.correct).value,
            ece_debiased_l2: crate::top_label::debiased_l2(&top, m),
            ece_sweep: crate::top_label::ece_sweep(&top).value,
            ks: crate::top_label::ks(&top),
            error: wrong as f64 / n as f64,
        }
    }
}

/// The few metrics a temperature search or a quick check needs, from one light parallel pass.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Basic {
    pub mode: Mode,
    pub n: usize,
    pub classes: usize,
    pub error: f64,
    pub nll: f64,
    pub ece: f64,
    pub mce: f64,
    pub bins: Vec<Bin>,
}

/// ECE from per-sample confidences and correctness, with `bins` equal-width `(lo, hi]` bins as
/// [`evaluate`] uses. For evaluations that stream over batches and keep one confidence per row
/// instead of whole score rows: the training loop's per-epoch probe, and token-level
/// translation, whose rows are vocabulary-wide.
pub fn ece_of_confidences(confidence: &[f64], correct: &[bool], bins: usize) -> Result<f64> {
    if bins == 0 {
        return Err(Error::Parameter("the number of bins must be at least 1".into()));
    }
    if confidence.len() != correct.len() {
        return Err(Error::Shape(format!("{} confidences but {} correctness flags", confidence.len(), correct.len())));
    }
    if confidence.is_empty() {
        return Err(Error::Empty("no samples".into()));
    }
    if let Some((row, &value)) = confidence.iter().enumerate().find(|(_, c)| !(0.0..=1.0).contains(*c)) {
        return Err(Error::NotProbability { row, col: 0, value });
    }
    let binning = Binning::<f64>::new(bins);
    let mut sums = BinSums::new(bins);
    for (&c, &hit) in confidence.iter().zip(correct) {
        if let Some(j) = binning.bin_of(c) {
            sums.add(j, c, hit);
        }
    }
    Ok(sums.ece(confidence.len()))
}

/// ECE, MCE, NLL and error only: the same softmax and bins as [`evaluate`] (so the numbers are
/// identical), without classwise, AdaECE, entropy and top-5 work.
pub fn basic<F: Real>(scores: &Scores<F>, opts: &Options) -> Result<Basic> {
    opts.validate()?;
    scores.check_temperature(opts.temperature)?;
    Ok(basic_pass(scores, opts, false).expect("checked scores"))
}

/// [`basic`] on scores whose values are checked in the same pass (logits without a temperature:
/// ECE alone is then one read of the file, not two). A row holding a bad value stops the pass, and
/// the error is the one [`Unscanned::scan`] gives. Anything else scans first.
pub fn basic_unscanned<F: Real>(scores: Unscanned<F>, opts: &Options) -> Result<Basic> {
    opts.validate()?;
    if scores.unchecked().kind() != ScoreKind::Logits || opts.temperature.is_some() {
        return basic(&scores.scan()?, opts);
    }
    match basic_pass(scores.unchecked(), opts, true) {
        Some(b) => Ok(b),
        None => Err(scores.scan().expect_err("the pass met a non-finite value")),
    }
}

/// One pass of [`BasicChunk`]s; None when `check` is set and a row holds a non-finite value.
fn basic_pass<F: Real>(scores: &Scores<F>, opts: &Options, check: bool) -> Option<Basic> {
    let m = opts.bins;
    let binning = Binning::<F>::new(m);
    let temperature = temperature_of::<F>(scores.kind(), opts.temperature);
    let n = scores.n();
    let parts: Vec<Option<(BinSums, f64, u64)>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let rows = c * CHUNK..((c + 1) * CHUNK).min(n);
            dispatch(BasicChunk { scores, binning: &binning, temperature, rows, check })
        })
        .collect();
    let mut sums = BinSums::new(m);
    let (mut nll, mut correct) = (0.0, 0);
    for part in parts {
        let (s, l, c) = part?;
        sums.merge(&s);
        nll += l;
        correct += c;
    }
    let edges = binning.edges();
    Some(Basic {
        mode: opts.mode,
        n,
        classes: scores.k(),
        error: (n as u64 - correct) as f64 / n as f64,
        nll: nll / n as f64,
        ece: sums.ece(n),
        mce: sums.mce(),
        bins: (0..m).map(|j| Bin::from_sums(&sums, j, edges[j].f64(), edges[j + 1].f64())).collect(),
    })
}

/// ECE bins, NLL sum and hits of a block of rows, for [`basic`]; with `check`, None as soon as a
/// row holds a non-finite value (logits without a temperature only).
struct BasicChunk<'a, F> {
    scores: &'a Scores<F>,
    binning: &'a Binning<F>,
    temperature: Option<F>,
    rows: std::ops::Range<usize>,
    check: bool,
}

impl<F: Real> Kernel for BasicChunk<'_, F> {
    type Out = Option<(BinSums, f64, u64)>;

    #[inline(always)]
    fn run(self) -> Self::Out {
        let (s, k) = (self.scores, self.scores.k());
        let (mut sums, mut nll, mut correct) = (BinSums::new(self.binning.len()), 0.0, 0u64);
        let mut row = Row::new(k);
        for i in self.rows {
            let y = s.labels()[i];
            let st = if self.check {
                row.compute_conf_checked(s.row(i))?
            } else {
                row.compute_conf(s.row(i), s.kind(), self.temperature)
            };
            nll += row.nll_of(&st, y, s.kind()).f64();
            correct += (st.pred == y) as u64;
            if let Some(b) = self.binning.bin_of(st.conf) {
                sums.add(b, st.conf.f64(), st.pred == y);
            }
        }
        Some((sums, nll, correct))
    }
}

/// The temperature as `F`, or None for probabilities (which are never rescaled).
pub(crate) fn temperature_of<F: Real>(kind: ScoreKind, t: Option<f64>) -> Option<F> {
    match kind {
        ScoreKind::Logits => t.map(F::of),
        ScoreKind::Probs => None,
    }
}

fn legacy(sums: &BinSums, n: usize) -> Legacy {
    let m = sums.count.len();
    let gap = |j: usize| match sums.count[j] {
        0 => 0.0,
        c => (sums.hits[j] as f64 / c as f64 - sums.sum_conf[j] / c as f64).abs(),
    };
    let prop = |j: usize| sums.count[j] as f64 / n as f64;
    let non_empty = sums.count.iter().filter(|&&c| c > 0).count();
    Legacy {
        ece: (0..m).map(|j| prop(j) * gap(j)).sum(),
        mce: (0..m).map(gap).fold(0.0, f64::max),
        ace: (0..m).map(gap).sum::<f64>() / non_empty as f64,
        l2: (0..m).map(|j| prop(j) * gap(j) * gap(j)).sum::<f64>().sqrt(),
    }
}

pub(crate) struct Adaptive {
    pub value: f64,
    pub bins: Vec<Bin>,
    /// Samples counted in no bin (paper mode leaves the minimum-confidence samples out).
    pub outside: u64,
}

/// AdaECE from per-sample confidences; see the module documentation for the two modes.
pub(crate) fn adaptive<F: Real>(s: &SampleConf<F>, m: usize, mode: Mode) -> Adaptive {
    let n = s.conf.len();
    let mut order: Vec<(F, u32)> = s.conf.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
    let cmp = |a: &(F, u32), b: &(F, u32)| a.0.partial_cmp(&b.0).expect("finite").then(a.1.cmp(&b.1));
    if n > 100_000 {
        order.par_sort_unstable_by(cmp);
    } else {
        order.sort_unstable_by(cmp);
    }
    let mut sums = BinSums::new(m);
    let mut bounds = Vec::with_capacity(m);
    let add_range = |sums: &mut BinSums, j: usize, range: std::ops::Range<usize>| {
        for &(c, i) in &order[range] {
            sums.add(j, c.f64(), s.correct[i as usize]);
        }
    };
    match mode {
        Mode::Paper => {
            let sorted: Vec<f64> = order.iter().map(|&(c, _)| c.f64()).collect();
            let edges = paper_adaptive_edges(&sorted, m);
            for j in 0..m {
                let (lo, hi) = (F::of(edges[j]), F::of(edges[j + 1]));
                let a = order.partition_point(|&(c, _)| c <= lo);
                let b = order.partition_point(|&(c, _)| c <= hi).max(a);
                add_range(&mut sums, j, a..b);
                bounds.push((edges[j], edges[j + 1]));
            }
        }
        Mode::Corrected => {
            let (q, r) = (n / m, n % m);
            let mut start = 0;
            for j in 0..m {
                let end = start + q + usize::from(j < r);
                add_range(&mut sums, j, start..end);
                let edge = |i: usize| order.get(i).map_or(f64::NAN, |&(c, _)| c.f64());
                bounds.push(if end > start { (edge(start), edge(end - 1)) } else { (f64::NAN, f64::NAN) });
                start = end;
            }
        }
    }
    Adaptive {
        value: sums.ece(n),
        bins: (0..m).map(|j| Bin::from_sums(&sums, j, bounds[j].0, bounds[j].1)).collect(),
        outside: n as u64 - sums.total(),
    }
}

/// The official AdaECE edges: `np.interp(np.linspace(0, n, m + 1), np.arange(n), sorted)`.
/// The grid runs to `n`, not `n − 1`, so the top edges clamp to the maximum confidence.
pub fn paper_adaptive_edges(sorted: &[f64], m: usize) -> Vec<f64> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let step = n as f64 / m as f64;
    (0..=m)
        .map(|j| {
            let x = if j == m { n as f64 } else { j as f64 * step };
            if x >= (n - 1) as f64 {
                return sorted[n - 1];
            }
            let i = x.floor() as usize;
            if x == i as f64 {
                return sorted[i];
            }
            let slope = sorted[i + 1] - sorted[i];
            slope * (x - i as f64) + sorted[i]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probabilities `[c, 1 − c, 0]` with label 0 (correct) or 1 (wrong), c ≥ 0.5.
    fn probs(rows: &[(f64, bool)], k: usize) -> Scores<f64> {
        let mut v = Vec::new();
        for &(c, _) in rows {
            let mut row = vec![0.0; k];
            row[0] = c;
            row[1] = 1.0 - c;
            v.extend(row);
        }
        let labels: Vec<i64> = rows.iter().map(|&(_, ok)| if ok { 0 } else { 1 }).collect();
        Scores::new(v, k, &labels, ScoreKind::Probs).unwrap()
    }

    #[test]
    fn corrected_adaece_counts_every_sample_in_array_split_groups() {
        // Sorted confidences 0.5, 0.6, 0.6 | 0.7, 0.8 | 0.9, 0.95 (7 = 3 + 2 + 2, larger groups first).
        let s =
            probs(&[(0.9, false), (0.6, false), (0.5, true), (0.95, true), (0.7, true), (0.6, true), (0.8, true)], 3);
        let r = evaluate(&s, &Options { bins: 3, mode: Mode::Corrected, temperature: None }).unwrap();
        let expected = (3.0 * (0.1f64) + 2.0 * 0.25 + 2.0 * 0.425) / 7.0;
        assert!((r.adaece - expected).abs() < 1e-12, "{} vs {expected}", r.adaece);
        assert_eq!(r.samples_in_no_adaece_bin, 0);
        assert_eq!(r.adaece_bins.iter().map(|b| b.count).collect::<Vec<_>>(), [3, 2, 2]);
        // Paper mode leaves the minimum-confidence sample out.
        let p = evaluate(&s, &Options { bins: 3, mode: Mode::Paper, temperature: None }).unwrap();
        assert_eq!(p.samples_in_no_adaece_bin, 1);
    }

    /// The one-pass check gives the numbers of `basic` on good data and the scan's error (first
    /// bad value in row-major order) on bad data: NaN, ±∞, float64 values beyond float32.
    #[test]
    fn basic_unscanned_checks_in_its_pass() {
        let (n, k) = (3000, 7);
        let good: Vec<f64> = (0..n * k).map(|i| ((i * 7919) % 1013) as f64 / 37.0 - 13.0).collect();
        let labels: Vec<i64> = (0..n as i64).map(|i| i % k as i64).collect();
        let opts = Options::default();
        let unscanned =
            |v: Vec<f64>| Scores::<f64>::unscanned(f64::into_values(v), k, &labels, ScoreKind::Logits).unwrap();
        let checked = basic(&Scores::<f64>::new(good.clone(), k, &labels, ScoreKind::Logits).unwrap(), &opts).unwrap();
        assert_eq!(basic_unscanned(unscanned(good.clone()), &opts).unwrap(), checked);
        for (at, value) in [(5, f64::NAN), (2 * k + 3, f64::INFINITY), (2500 * k, f64::NEG_INFINITY)] {
            let mut bad = good.clone();
            bad[at] = value;
            bad[n * k - 1] = f64::NAN; // a later bad value must not be the one reported
            let expected = unscanned(bad.clone()).scan().unwrap_err();
            assert_eq!(basic_unscanned(unscanned(bad), &opts).unwrap_err().to_string(), expected.to_string());
            assert!(matches!(expected, Error::NotFinite { row, col, .. } if row * k + col == at));
        }
        let mut huge = good.clone();
        huge[40] = 1e300;
        let f32_scores =
            Scores::<f32>::unscanned(f64::into_values(huge.clone()), k, &labels, ScoreKind::Logits).unwrap();
        let e = basic_unscanned(f32_scores, &opts).unwrap_err();
        assert!(e.to_string().contains("overflows the float32 computation"), "{e}");
    }

    #[test]
    fn ece_of_confidences_equals_evaluate() {
        let rows = [(0.9, false), (0.6, false), (0.5, true), (0.95, true), (0.7, true), (0.6, true), (0.8, true)];
        let r = evaluate(&probs(&rows, 3), &Options::default()).unwrap();
        let (conf, hit): (Vec<f64>, Vec<bool>) = rows.iter().copied().unzip();
        assert_eq!(ece_of_confidences(&conf, &hit, 15).unwrap(), r.ece);
        assert!(ece_of_confidences(&conf, &hit[1..], 15).is_err());
        assert!(ece_of_confidences(&[1.5], &[true], 15).is_err());
        assert!(ece_of_confidences(&[], &[], 15).is_err());
    }

    #[test]
    fn classwise_covers_all_classes_in_corrected_mode() {
        let s = probs(&[(0.9, true), (0.6, false), (0.8, true), (0.7, false)], 3);
        let c = evaluate(&s, &Options { bins: 15, mode: Mode::Corrected, temperature: None }).unwrap();
        let p = evaluate(&s, &Options { bins: 15, mode: Mode::Paper, temperature: None }).unwrap();
        assert_eq!((c.classwise_num_classes, p.classwise_num_classes), (3, 2));
        // Class 2 has probability 0 everywhere: in no bin, so its ECE is 0 and it dilutes the mean.
        assert_eq!(c.classwise_per_class[2], 0.0);
        assert!((3.0 * c.classwise_ece - 2.0 * p.classwise_ece).abs() < 1e-15);
        // Hand value for class 0: bins of 0.9 (hit), 0.6 (miss), 0.8 (hit), 0.7 (miss), each alone.
        let class0 = (0.1 + 0.6 + 0.2 + 0.7) / 4.0;
        assert!((c.classwise_per_class[0] - class0).abs() < 1e-12);
    }

    #[test]
    fn overflowing_values_are_errors_not_panics() {
        // A tiny temperature on large float32 logits would make z/T infinite.
        let s = Scores::<f32>::new(vec![3e38, 0.0, 1.0, 2.0], 2, &[0, 1], ScoreKind::Logits).unwrap();
        assert!(evaluate(&s, &Options { temperature: Some(0.5), ..Options::default() }).is_err());
        assert!(basic(&s, &Options { temperature: Some(0.5), ..Options::default() }).is_err());
        assert!(evaluate(&s, &Options { temperature: Some(2.0), ..Options::default() }).is_ok());
        // float64 values beyond float32's range cannot be computed in f32.
        let big = crate::values::Values::f64(crate::values::Buffer::Owned(vec![1e300, 0.0]));
        let e = Scores::<f32>::from_values(big, 2, &[0], ScoreKind::Logits).unwrap_err().to_string();
        assert!(e.contains("row 0, column 0") && e.contains("float32"), "{e}");
    }

    #[test]
    fn top5_s99_and_entropy_by_hand() {
        // Logits: row 0 puts the label at rank 6 of 7; row 1 is confident and correct.
        let v = vec![6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let s = Scores::new(v, 7, &[5, 0], ScoreKind::Logits).unwrap();
        let r = evaluate(&s, &Options::default()).unwrap();
        assert_eq!((r.error, r.top5_error), (0.5, 0.5));
        assert_eq!(r.s99_fraction, 0.5);
        assert_eq!(r.s99_accuracy, Some(1.0));
        let p: Vec<f64> = {
            let e: Vec<f64> = (0..7).map(|j| (-(j as f64)).exp()).collect();
            let z: f64 = e.iter().sum();
            e.iter().map(|x| x / z).collect()
        };
        let h_wrong: f64 = -p.iter().map(|q| q * q.ln()).sum::<f64>();
        assert!((r.entropy.wrong.unwrap() - h_wrong).abs() < 1e-12);
        assert!((r.nll - 0.5 * (-(p[5].ln()) + -((1.0 / (1.0 + 6.0 * (-10f64).exp())).ln()))).abs() < 1e-12);
    }
}
