//! The losses of [`super::LossSpec`] applied to `tch` tensors: logits `[n, K]` and integer
//! targets `[n]`, reduced as [`super::Reduction`] says.

use super::{LossSpec, Reduction};
use crate::gamma::Policy;
use tch::{Kind, Tensor};

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
            LossSpec::DualFocal { gamma } => reduce(dual_focal(&logits, &targets, *gamma)),
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

/// Per-sample −(1 − p_y + p_j)^γ log p_y, p_j the largest probability strictly below p_y: the
/// reference's mask `p < p_y` (no gradient) times p, then its `topk(1)`: the gradient goes to the
/// entry torch's topk picks, which among tied probabilities is not always the first (as `max`
/// would pick), so topk it is.
fn dual_focal(logits: &Tensor, targets: &Tensor, g: f64) -> Tensor {
    let logp = logits.log_softmax(1, logits.kind());
    let p = logp.exp();
    let logpt = logp.gather(1, &targets.unsqueeze(1), false).squeeze_dim(1);
    let pt = logpt.exp();
    let below = p.lt_tensor(&pt.unsqueeze(1)).to_kind(logits.kind());
    let (top, _) = (p * below).topk(1, 1, true, true);
    let pj = top.squeeze_dim(1);
    let base: Tensor = 1.0 - pt + pj;
    -base.pow_tensor_scalar(g) * logpt
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

    /// fairseq's form puts 1 − ε on the true class and ε/(K − 1) on each other class; PyTorch's
    /// puts α/K on every class, the true one included. Checked against −Σ s_k log p_k written out.
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
