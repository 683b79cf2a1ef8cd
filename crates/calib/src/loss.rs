//! The training losses: their names and reductions (always available, so reports can label runs
//! without libtorch) and, behind the `tch` feature, [`Loss`] on `tch` tensors (logits `[n, K]`,
//! integer targets `[n]`).
//!
//! Names shared by the CLI, recipes and reports (see [`LossSpec::from_str`]): `ce`, `focal:3`,
//! `flsd:53`, `flsd:532`, `flsd:0.2=5,0.5=3,1=2`, `flsd-auto:0.2,0.25`, `flsc:531`, `flsc:532`,
//! `flsc:0=5,100=3,250=1`, `ls:0.05`, `brier`, `mmce:2`, `mmce-unweighted:2`, `dual-focal:5`.
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

/// Which loss, with its hyper-parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum LossSpec {
    CrossEntropy,
    /// −(1 − p)^γ log p with a fixed γ.
    Focal {
        gamma: f64,
    },
    /// Dual Focal Loss (Tao, Dong & Xu, ICML 2023): −(1 − p_y + p_j)^γ log p_y, with p_j the
    /// largest probability strictly below p_y (0 when none is), as the reference code's masked
    /// `topk` computes it, gradient through p_j included.
    DualFocal {
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

const NAMES: &str = "ce, focal:G, dual-focal[:G], flsd:53, flsd:532, flsd:T=G,..., flsd-auto:T,..., flsc:531, flsc:532, flsc:E=G,..., ls:A, ls-fairseq:E, brier, mmce:L, mmce-unweighted:L";

/// γ of `dual-focal` without a value: the reference's CIFAR setting.
const DUAL_FOCAL_DEFAULT_GAMMA: f64 = 5.0;

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
            "dual-focal" => {
                // The reference's CIFAR setting (γ = 5, the paper's Table 13) when none is given.
                let gamma = arg.map_or(Ok(DUAL_FOCAL_DEFAULT_GAMMA), |a| parse_f64("dual focal γ", a))?;
                if gamma < 0.0 {
                    return Err(Error::Parameter(format!("dual focal γ = {gamma} must be ≥ 0")));
                }
                Self::DualFocal { gamma }
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
            Self::DualFocal { gamma } => format!("DFL-{gamma}"),
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

#[cfg(feature = "tch")]
mod apply;
#[cfg(feature = "tch")]
pub use apply::{mmce_unweighted, mmce_weighted, Loss};
