//! Training losses on `tch` tensors: logits `[n, K]` and integer targets `[n]`.
//!
//! Names shared by the CLI, recipes and reports (see [`LossSpec::from_str`]): `ce`, `focal:3`,
//! `flsd:53`, `flsd:532`, `flsd:0.2=5,0.5=3,1=2`, `flsd-auto:0.2,0.25`, `flsc:531`, `flsc:532`,
//! `flsc:0=5,100=3,250=1`, `ls:0.05`, `brier`, `mmce:2`, `mmce-unweighted:2`.
//!
//! Reductions: `sum` adds the per-sample losses over the batch (MMCE: the batch size times its
//! objective), `mean` divides that by the batch size. The official image code reduces each loss
//! its own way, and `official` follows it loss by loss: it **sums** cross-entropy, focal, FLSD
//! and FLSc (`reduction='sum'`), multiplies the MMCE objective (mean CE + λ·MMCE) by the batch
//! size, and **averages** the Brier score (`BrierScore` divides by the batch size), so at batch
//! 128 a Brier step is 128× smaller than a summed one. The paper's image recipes use `official`;
//! label smoothing, which the official image script lacks, is summed like cross-entropy. `mean`
//! makes the step size independent of the batch size and is what token-level translation
//! training (variable batch sizes) uses.

use crate::error::{Error, Result};
use crate::gamma::{Policy, Schedule};
use std::str::FromStr;
use tch::{Kind, Tensor};

/// Which loss, with its hyper-parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum LossSpec {
    CrossEntropy,
    /// −(1 − p)^γ log p with a fixed γ.
    Focal {
        gamma: f64,
    },
    /// Focal loss with γ chosen per sample from its true-class probability (no gradient through
    /// the choice).
    Flsd {
        policy: Policy,
        name: String,
    },
    /// Focal loss with γ scheduled by epoch.
    Flsc {
        schedule: Schedule,
        name: String,
    },
    /// Label smoothing. PyTorch's form (the default, `ls:α`): target (1 − α)·onehot + α/K.
    /// fairseq's form (`ls-fairseq:ε`, `label_smoothed_cross_entropy`): 1 − ε on the true class and
    /// ε/(K − 1) on each other class, so the true class never receives smoothing mass.
    LabelSmoothing {
        alpha: f64,
        fairseq: bool,
    },
    /// Σ_k (p_k − onehot_k)² per sample.
    Brier,
    /// Cross-entropy + λ·MMCE (Kumar et al.); `weighted` is the official MMCE_w variant, the
    /// paper's baseline.
    Mmce {
        lambda: f64,
        weighted: bool,
    },
}

/// How per-sample losses are combined over the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    #[default]
    Sum,
    Mean,
    /// The official training code's reduction for each loss: mean for Brier, sum otherwise.
    Official,
}

impl Reduction {
    /// `sum` or `mean`: what this reduction is for `spec` (`official` resolved loss by loss).
    pub fn resolve(self, spec: &LossSpec) -> Self {
        match (self, spec) {
            (Self::Official, LossSpec::Brier) => Self::Mean,
            (Self::Official, _) => Self::Sum,
            (r, _) => r,
        }
    }
}

impl FromStr for Reduction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sum" => Ok(Self::Sum),
            "mean" => Ok(Self::Mean),
            "official" => Ok(Self::Official),
            _ => Err(Error::UnknownName { what: "reduction", name: s.into(), expected: "sum, mean, official".into() }),
        }
    }
}

const NAMES: &str = "ce, focal:G, flsd:53, flsd:532, flsd:T=G,..., flsd-auto:T,..., flsc:531, flsc:532, flsc:E=G,..., ls:A, ls-fairseq:E, brier, mmce:L, mmce-unweighted:L";

fn parse_f64(what: &'static str, text: &str) -> Result<f64> {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| Error::Parse {
        what,
        text: text.into(),
        reason: "not a finite number".into(),
    })
}

/// `k=v,k=v` pairs.
fn parse_pairs(what: &'static str, text: &str) -> Result<Vec<(f64, f64)>> {
    text.split(',')
        .map(|pair| {
            let (k, v) = pair.split_once('=').ok_or_else(|| Error::Parse {
                what,
                text: text.into(),
                reason: format!("'{pair}' is not KEY=GAMMA"),
            })?;
            Ok((parse_f64(what, k)?, parse_f64(what, v)?))
        })
        .collect()
}

/// The digits of a shorthand such as `53` or `532`.
fn digits(text: &str) -> Option<Vec<f64>> {
    text.chars().map(|c| c.to_digit(10).map(f64::from)).collect()
}

impl FromStr for LossSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (head, arg) = match s.split_once(':') {
            Some((h, a)) => (h, Some(a)),
            None => (s, None),
        };
        let need = |what: &'static str| {
            arg.ok_or_else(|| Error::Parse { what, text: s.into(), reason: "missing ':VALUE'".into() })
        };
        let spec = match head {
            "ce" if arg.is_none() => Self::CrossEntropy,
            "brier" if arg.is_none() => Self::Brier,
            "focal" => {
                let gamma = parse_f64("focal γ", need("focal γ")?)?;
                if gamma < 0.0 {
                    return Err(Error::Parameter(format!("focal γ = {gamma} must be ≥ 0")));
                }
                Self::Focal { gamma }
            }
            "flsd" => {
                let a = need("FLSD policy")?;
                let policy = match digits(a) {
                    Some(d) if d.len() == 2 => Policy::new(vec![(0.2, d[0])], d[1])?,
                    Some(d) if d.len() == 3 => Policy::new(vec![(0.2, d[0]), (0.5, d[1])], d[2])?,
                    _ => {
                        let pairs = parse_pairs("FLSD policy", a)?;
                        let last = pairs.last().expect("split yields one item").1;
                        Policy::new(pairs, last)?
                    }
                };
                Self::Flsd { policy, name: a.into() }
            }
            "flsd-auto" => {
                let a = need("FLSD thresholds")?;
                let t = a.split(',').map(|x| parse_f64("FLSD threshold", x)).collect::<Result<Vec<_>>>()?;
                Self::Flsd { policy: Policy::from_lambert(&t)?, name: format!("auto{a}") }
            }
            "flsc" => {
                let a = need("FLSc schedule")?;
                let steps = match digits(a) {
                    Some(d) if d.len() == 3 => vec![(0, d[0]), (100, d[1]), (250, d[2])],
                    _ => parse_pairs("FLSc schedule", a)?
                        .into_iter()
                        .map(|(e, g)| {
                            if e >= 0.0 && e.fract() == 0.0 {
                                Ok((e as usize, g))
                            } else {
                                Err(Error::Parse {
                                    what: "FLSc schedule",
                                    text: a.into(),
                                    reason: format!("epoch {e} is not a whole number"),
                                })
                            }
                        })
                        .collect::<Result<_>>()?,
                };
                Self::Flsc { schedule: Schedule::new(steps)?, name: a.into() }
            }
            "ls" | "ls-fairseq" => {
                let alpha = parse_f64("smoothing α", need("smoothing α")?)?;
                if !(0.0..=1.0).contains(&alpha) {
                    return Err(Error::Parameter(format!("label smoothing α = {alpha} must lie in [0, 1]")));
                }
                Self::LabelSmoothing { alpha, fairseq: head == "ls-fairseq" }
            }
            "mmce" | "mmce-unweighted" => {
                let lambda = parse_f64("MMCE λ", need("MMCE λ")?)?;
                if lambda < 0.0 {
                    return Err(Error::Parameter(format!("MMCE λ = {lambda} must be ≥ 0")));
                }
                Self::Mmce { lambda, weighted: head == "mmce" }
            }
            _ => return Err(Error::UnknownName { what: "loss", name: s.into(), expected: NAMES.into() }),
        };
        Ok(spec)
    }
}

impl LossSpec {
    /// The label reports use, following the paper (CE, FL-3, FLSD-53, FLSc-531, LS-0.05, Brier, MMCE).
    pub fn label(&self) -> String {
        match self {
            Self::CrossEntropy => "CE".into(),
            Self::Focal { gamma } => format!("FL-{gamma}"),
            Self::Flsd { name, .. } => format!("FLSD-{name}"),
            Self::Flsc { name, .. } => format!("FLSc-{name}"),
            Self::LabelSmoothing { alpha, fairseq: false } => format!("LS-{alpha}"),
            Self::LabelSmoothing { alpha, fairseq: true } => format!("LS-{alpha} (fairseq)"),
            Self::Brier => "Brier".into(),
            Self::Mmce { weighted: true, .. } => "MMCE".into(),
            Self::Mmce { weighted: false, .. } => "MMCE-unweighted".into(),
        }
    }
}

/// A loss ready to apply: what, how reduced, and which target (padding) to ignore.
/// Non-exhaustive: build it with [`Loss::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Loss {
    pub spec: LossSpec,
    pub reduction: Reduction,
    pub ignore_index: Option<i64>,
}

impl Loss {
    pub fn new(spec: LossSpec, reduction: Reduction) -> Self {
        Self { spec, reduction, ignore_index: None }
    }

    pub fn with_ignore_index(mut self, index: i64) -> Self {
        self.ignore_index = Some(index);
        self
    }

    /// The same loss ignoring this target, or none.
    pub fn with_ignore_index_opt(mut self, index: Option<i64>) -> Self {
        self.ignore_index = index;
        self
    }

    /// The same loss reduced another way.
    pub fn with_reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The loss of a batch at `epoch` (only FLSc reads it). Rows whose target is the ignore index
    /// are dropped first; `mean` divides by the rows kept.
    pub fn forward(&self, logits: &Tensor, targets: &Tensor, epoch: usize) -> Tensor {
        let (logits, targets) = match self.ignore_index {
            Some(ii) => {
                let keep = targets.ne(ii).nonzero().squeeze_dim(1);
                (logits.index_select(0, &keep), targets.index_select(0, &keep))
            }
            None => (logits.shallow_clone(), targets.shallow_clone()),
        };
        let n = targets.size()[0];
        let mean = self.reduction.resolve(&self.spec) == Reduction::Mean;
        let reduce = |per_sample: Tensor| match mean && n > 0 {
            true => per_sample.mean(per_sample.kind()),
            false => per_sample.sum(per_sample.kind()),
        };
        match &self.spec {
            LossSpec::CrossEntropy => reduce(-true_class_log_prob(&logits, &targets)),
            LossSpec::Focal { gamma } => reduce(focal(&logits, &targets, *gamma)),
            LossSpec::Flsd { policy, .. } => reduce(focal_sample_dependent(&logits, &targets, policy)),
            LossSpec::Flsc { schedule, .. } => reduce(focal(&logits, &targets, schedule.gamma(epoch))),
            LossSpec::LabelSmoothing { alpha, fairseq } => reduce(label_smoothing(&logits, &targets, *alpha, *fairseq)),
            LossSpec::Brier => reduce(brier(&logits, &targets)),
            LossSpec::Mmce { .. } if n == 0 => logits.sum(logits.kind()) * 0.0,
            LossSpec::Mmce { lambda, weighted } => {
                let ce = (-true_class_log_prob(&logits, &targets)).mean(logits.kind());
                let term =
                    if *weighted { mmce_weighted(&logits, &targets) } else { mmce_unweighted(&logits, &targets) };
                let objective = ce + term * *lambda;
                match mean {
                    // The official training loop's objective: n·(mean CE + λ·MMCE).
                    false => objective * n as f64,
                    true => objective,
                }
            }
        }
    }
}

/// log p_{i, y_i}.
fn true_class_log_prob(logits: &Tensor, targets: &Tensor) -> Tensor {
    logits.log_softmax(1, logits.kind()).gather(1, &targets.unsqueeze(1), false).squeeze_dim(1)
}

/// Per-sample −(1 − p)^γ log p with a fixed γ.
fn focal(logits: &Tensor, targets: &Tensor, g: f64) -> Tensor {
    let logpt = true_class_log_prob(logits, targets);
    if g == 0.0 {
        // (1 − p)^0 has a 0·∞ gradient at p = 1; γ = 0 is cross-entropy exactly.
        return -logpt;
    }
    let q: Tensor = 1.0 - logpt.exp();
    -q.pow_tensor_scalar(g) * logpt
}

/// FLSD: γ_i from the policy at p_i = exp(log p_i), compared in f64 against the thresholds (as the
/// official code compares `pt.item()`), held constant.
fn focal_sample_dependent(logits: &Tensor, targets: &Tensor, policy: &Policy) -> Tensor {
    let logpt = true_class_log_prob(logits, targets);
    let pt = logpt.exp();
    let pt64 = pt.detach().to_kind(Kind::Double);
    let mut gamma = pt64.full_like(policy.otherwise());
    for &(threshold, g) in policy.thresholds().iter().rev() {
        gamma = pt64.full_like(g).where_self(&pt64.lt(threshold), &gamma);
    }
    let q: Tensor = 1.0 - pt;
    -q.pow(&gamma.to_kind(logits.kind())) * logpt
}

/// −Σ_k s_k log p_k with the smoothed target s: PyTorch's (1 − α)·onehot + α/K, or fairseq's
/// (1 − α − α/(K − 1))·nll + α/(K − 1)·Σ_k(−log p_k), which puts exactly 1 − α on the true class.
fn label_smoothing(logits: &Tensor, targets: &Tensor, alpha: f64, fairseq: bool) -> Tensor {
    let logp = logits.log_softmax(1, logits.kind());
    let k = logits.size()[1] as f64;
    let nll = -logp.gather(1, &targets.unsqueeze(1), false).squeeze_dim(1);
    let uniform = -logp.sum_dim_intlist(1, false, logits.kind());
    let eps_i = if fairseq { alpha / (k - 1.0).max(1.0) } else { alpha / k };
    let on_true = if fairseq { 1.0 - alpha - eps_i } else { 1.0 - alpha };
    nll * on_true + uniform * eps_i
}

fn brier(logits: &Tensor, targets: &Tensor) -> Tensor {
    let p = logits.softmax(1, logits.kind());
    let onehot = p.zeros_like().scatter_value(1, &targets.unsqueeze(1), 1.0);
    (p - onehot).square().sum_dim_intlist(1, false, logits.kind())
}

/// k(a, b) = exp(−|a − b| / 0.4) for every pair.
fn laplacian_kernel(a: &Tensor, b: &Tensor) -> Tensor {
    ((a.unsqueeze(1) - b.unsqueeze(0)).abs() / -0.4).exp()
}

fn confidence_and_correct(logits: &Tensor, targets: &Tensor) -> (Tensor, Tensor) {
    let (conf, pred) = logits.softmax(1, logits.kind()).max_dim(1, false);
    (conf, pred.eq_tensor(targets))
}

/// MMCE_m = (1/n²) Σ_ij (c_i − r_i)(c_j − r_j) k(r_i, r_j), with r the confidence and c the
/// correctness (no square root, as the official `MMCE`).
pub fn mmce_unweighted(logits: &Tensor, targets: &Tensor) -> Tensor {
    let (r, correct) = confidence_and_correct(logits, targets);
    let d = correct.to_kind(r.kind()) - &r;
    let n = r.size()[0] as f64;
    (d.unsqueeze(1) * d.unsqueeze(0) * laplacian_kernel(&r, &r)).sum(r.kind()) / (n * n)
}

/// The official MMCE_w: with m correct and w wrong samples,
/// MMD² = A/(m²+1e−5) + B/(w²+1e−5) − 2X/(mw+1e−5), where A, B, X are *means* over the pairs of
/// (1−r)(1−r)k, r·r·k and (1−r)·r·k (so the pairs are normalised twice, as in the official code),
/// and MMCE_w = sqrt(MMD² + 1e−10). Exactly 0 (zero gradient) when m = 0 or w = 0.
pub fn mmce_weighted(logits: &Tensor, targets: &Tensor) -> Tensor {
    let (r, correct) = confidence_and_correct(logits, targets);
    let m = correct.sum(Kind::Int64).int64_value(&[]) as f64;
    let w = r.size()[0] as f64 - m;
    if m == 0.0 || w == 0.0 {
        return logits.sum(logits.kind()) * 0.0;
    }
    let rc = r.masked_select(&correct);
    let rw = r.masked_select(&correct.logical_not());
    let wc: Tensor = 1.0 - &rc;
    let pair = |a: &Tensor, b: &Tensor, ra: &Tensor, rb: &Tensor| {
        (a.unsqueeze(1) * b.unsqueeze(0) * laplacian_kernel(ra, rb)).mean(r.kind())
    };
    let a = pair(&wc, &wc, &rc, &rc);
    let b = pair(&rw, &rw, &rw, &rw);
    let x = pair(&wc, &rw, &rc, &rw);
    let mmd = a / (m * m + 1e-5) + b / (w * w + 1e-5) - x * (2.0 / (m * w + 1e-5));
    (mmd + 1e-10).sqrt().clamp_min(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fairseq's form puts 1 − ε on the true class and ε/(K − 1) on each other class; PyTorch's
    /// puts α/K on every class, the true one included. Checked against −Σ s_k log p_k written out.
    /// `official` is the official training loop's reduction loss by loss: Brier averaged, the
    /// focal family summed, MMCE the batch size times its objective.
    #[test]
    fn official_reduction_follows_the_official_code() {
        let logits = Tensor::from_slice(&[2.0f64, 0.5, -1.0, 0.3, 1.2, -0.4, 0.1, 0.1, 0.9]).view([3, 3]);
        let targets = Tensor::from_slice(&[0i64, 2, 1]);
        let value = |name: &str, r: Reduction| {
            Loss::new(name.parse().unwrap(), r).forward(&logits, &targets, 0).double_value(&[])
        };
        for name in ["ce", "focal:3", "flsd:53", "flsc:531", "ls:0.05", "mmce:2"] {
            assert_eq!(value(name, Reduction::Official), value(name, Reduction::Sum), "{name}");
        }
        let brier = value("brier", Reduction::Official);
        assert_eq!(brier, value("brier", Reduction::Mean));
        assert!((brier * 3.0 - value("brier", Reduction::Sum)).abs() < 1e-12);
        assert_eq!("official".parse::<Reduction>().unwrap(), Reduction::Official);
        assert_eq!(Reduction::Official.resolve(&LossSpec::Brier), Reduction::Mean);
        assert_eq!(Reduction::Mean.resolve(&LossSpec::CrossEntropy), Reduction::Mean);
    }

    #[test]
    fn label_smoothing_forms() {
        let logits = Tensor::from_slice(&[2.0f64, 0.5, -1.0, 0.0, 0.3, 1.2, -0.4, 2.2]).view([2, 4]);
        let targets = Tensor::from_slice(&[0i64, 3]);
        let rows = [[2.0f64, 0.5, -1.0, 0.0], [0.3, 1.2, -0.4, 2.2]];
        let expected = |eps_true: f64, eps_other: f64| -> f64 {
            rows.iter()
                .zip([0usize, 3])
                .map(|(r, y)| {
                    let lse = r.iter().map(|v| v.exp()).sum::<f64>().ln();
                    -(0..4).map(|k| if k == y { eps_true } else { eps_other } * (r[k] - lse)).sum::<f64>()
                })
                .sum()
        };
        let value = |name: &str| {
            Loss::new(name.parse().unwrap(), Reduction::Sum).forward(&logits, &targets, 0).double_value(&[])
        };
        assert!((value("ls-fairseq:0.1") - expected(0.9, 0.1 / 3.0)).abs() < 1e-12);
        assert!((value("ls:0.1") - expected(0.9 + 0.1 / 4.0, 0.1 / 4.0)).abs() < 1e-12);
        assert_eq!("ls-fairseq:0.1".parse::<LossSpec>().unwrap().label(), "LS-0.1 (fairseq)");
    }
}
