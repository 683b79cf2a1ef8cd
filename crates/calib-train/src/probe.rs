//! What the trainer measures besides the loss: per-row statistics of a split streamed batch by
//! batch (confidence, correctness, NLL, entropy, at any temperature), the paper's Figures 1–2
//! probes and ECE from them, and the per-sample gradient norms of the last layer (Figure 3 b–d).

use crate::collective::{all_gather_f64, Collective};
use crate::error::{Error, Result};
use crate::loader::with_prefetch;
use crate::task::{Batches, Data, Shard, Task};
use calib::loss::{Loss, Reduction};
use calib::metrics;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Validation numbers of one epoch: the probes of the paper's Figures 1–2 plus ECE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub error: f64,
    pub nll: f64,
    pub ece: f64,
    pub nll_correct: Option<f64>,
    pub nll_wrong: Option<f64>,
    pub entropy_correct: Option<f64>,
    pub entropy_wrong: Option<f64>,
}

/// How many batches the loader prepares ahead.
pub(crate) const PREFETCH: usize = 4;

/// One number per row of a split: confidence, correctness, NLL and predictive entropy. Computed
/// batch by batch on the device, so probing never holds an `[N, K]` matrix (translation rows are
/// vocabulary-wide).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowStats {
    pub confidence: Vec<f64>,
    pub correct: Vec<bool>,
    pub nll: Vec<f64>,
    pub entropy: Vec<f64>,
}

impl RowStats {
    /// Adds the rows of one batch of logits `[n, K]` and targets `[n]`.
    pub fn push(&mut self, logits: &Tensor, targets: &Tensor) -> Result<()> {
        self.push_at(logits, targets, 1.0)
    }

    /// [`RowStats::push`] with the logits divided by the temperature `t` (correctness does not
    /// depend on it).
    pub fn push_at(&mut self, logits: &Tensor, targets: &Tensor, t: f64) -> Result<()> {
        let logits = logits.to_kind(Kind::Double);
        let lp = if t == 1.0 { logits.log_softmax(1, Kind::Double) } else { (logits / t).log_softmax(1, Kind::Double) };
        let p = lp.exp();
        let (conf, pred) = p.max_dim(1, false);
        let nll = -lp.gather(1, &targets.unsqueeze(1), false).squeeze_dim(1);
        let entropy = -(&p * &lp).sum_dim_intlist(1, false, Kind::Double);
        let host = |t: Tensor| Vec::<f64>::try_from(t.to_device(tch::Device::Cpu));
        self.confidence.extend(host(conf)?);
        self.nll.extend(host(nll)?);
        self.entropy.extend(host(entropy)?);
        self.correct.extend(Vec::<bool>::try_from(pred.eq_tensor(targets).to_device(tch::Device::Cpu))?);
        Ok(())
    }

    /// The rows of a whole split, at every temperature of `temps` from one forward pass.
    pub fn of_split_at<T: Task>(task: &T, split: &str, temps: &[f64]) -> Result<Vec<Self>> {
        let stats = Self::of_shard_at(task, split, temps, Shard::WHOLE)?;
        if stats.first().is_some_and(|s| s.correct.is_empty()) {
            return Err(Error::Task(format!("split {split} has no samples")));
        }
        Ok(stats)
    }

    /// The rows of `shard`'s part of a split (every world-th evaluation batch from its rank),
    /// at every temperature of `temps`; a rank's part may be empty.
    pub fn of_shard_at<T: Task>(task: &T, split: &str, temps: &[f64], shard: Shard) -> Result<Vec<Self>> {
        let mut stats = vec![Self::default(); temps.len()];
        let device = task.var_store().device();
        let batches: Batches<'_, T::Batch> = task.data().eval_batches(split, shard)?;
        tch::no_grad(|| {
            with_prefetch(batches, PREFETCH, device, |it| -> Result<()> {
                for b in it {
                    let (l, y) = task.forward(&b, false)?;
                    // Widened once for every temperature (push_at's conversion is then a no-op).
                    let l = l.to_kind(Kind::Double);
                    for (s, &t) in stats.iter_mut().zip(temps) {
                        s.push_at(&l, &y, t)?;
                    }
                }
                Ok(())
            })
        })?;
        Ok(stats)
    }

    /// Every rank's rows, in rank order, on every rank (exchanged on `device`).
    pub fn gathered(self, collective: &dyn Collective, device: tch::Device) -> Result<Self> {
        if collective.world_size() == 1 {
            return Ok(self);
        }
        let packed: Vec<f64> = (0..self.correct.len())
            .flat_map(|i| [self.confidence[i], self.nll[i], self.entropy[i], f64::from(u8::from(self.correct[i]))])
            .collect();
        let all: Vec<f64> = all_gather_f64(collective, &packed, device)?.concat();
        let field = |f: usize| all.iter().skip(f).step_by(4).copied();
        Ok(Self {
            confidence: field(0).collect(),
            nll: field(1).collect(),
            entropy: field(2).collect(),
            correct: field(3).map(|c| c > 0.5).collect(),
        })
    }

    /// The rows of a split evaluated by all ranks together, each taking its share of the
    /// batches (the whole split with one rank).
    pub fn of_split_on<T: Task>(task: &T, split: &str, collective: &dyn Collective) -> Result<Self> {
        let shard = Shard::new(collective.rank(), collective.world_size())?;
        let device = task.var_store().device();
        let stats = Self::of_shard_at(task, split, &[1.0], shard)?.remove(0).gathered(collective, device)?;
        if stats.correct.is_empty() {
            return Err(Error::Task(format!("split {split} has no samples")));
        }
        Ok(stats)
    }

    /// The rows of a whole split.
    pub fn of_split<T: Task>(task: &T, split: &str) -> Result<Self> {
        Ok(Self::of_split_at(task, split, &[1.0])?.remove(0))
    }

    /// The probes of the paper's Figures 1–2 and ECE (15 bins).
    pub fn probe(&self) -> Result<Probe> {
        self.probe_with_bins(15)
    }

    /// [`RowStats::probe`] with the ECE over `bins` bins.
    pub fn probe_with_bins(&self, bins: usize) -> Result<Probe> {
        let n = self.correct.len();
        if n == 0 {
            return Err(Error::Task("no samples to probe".into()));
        }
        let mean_where = |values: &[f64], want: bool| {
            let (sum, count) = values
                .iter()
                .zip(&self.correct)
                .filter(|(_, &c)| c == want)
                .fold((0.0, 0usize), |(s, k), (v, _)| (s + v, k + 1));
            (count > 0).then(|| sum / count as f64)
        };
        Ok(Probe {
            error: self.correct.iter().filter(|&&c| !c).count() as f64 / n as f64,
            nll: self.nll.iter().sum::<f64>() / n as f64,
            ece: metrics::ece_of_confidences(&self.confidence, &self.correct, bins)?,
            nll_correct: mean_where(&self.nll, true),
            nll_wrong: mean_where(&self.nll, false),
            entropy_correct: mean_where(&self.entropy, true),
            entropy_wrong: mean_where(&self.entropy, false),
        })
    }
}

/// A histogram of per-sample gradient norms on log-spaced bins: four per decade from 10⁻⁸ to
/// 10² (smaller norms count in the first bin, larger in the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradNorms {
    pub samples: usize,
    pub mean: f64,
    pub median: f64,
    /// log10 of the bin edges (`counts.len() + 1` values).
    pub log10_edges: Vec<f64>,
    pub counts: Vec<u64>,
}

impl GradNorms {
    pub fn new(norms: &[f64]) -> Self {
        let log10_edges: Vec<f64> = (0..=40).map(|i| -8.0 + 0.25 * i as f64).collect();
        let mut counts = vec![0u64; 40];
        for &v in norms {
            let bin = ((v.max(1e-300).log10() + 8.0) / 0.25).floor().clamp(0.0, 39.0) as usize;
            counts[bin] += 1;
        }
        let mut sorted = norms.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
        };
        let mean = norms.iter().sum::<f64>() / norms.len().max(1) as f64;
        Self { samples: norms.len(), mean, median, log10_edges, counts }
    }
}

/// Per-sample norms of the last linear layer's weight gradient, ‖∂L_i/∂z_i‖ · ‖h_i‖ (the layer's
/// gradient for sample i is the outer product of the two), on the first `n` training samples in
/// evaluation mode, with the training loss at `epoch` (the paper's Figure 3 b–d).
pub fn grad_norms<T: Task>(task: &T, loss: &Loss, epoch: usize, n: usize) -> Result<Vec<f64>> {
    if !task.capabilities().features {
        return Err(Error::Task("this task's model does not expose its last layer's features".into()));
    }
    let per_sample = loss.clone().with_reduction(Reduction::Sum);
    let device = task.var_store().device();
    let batches = task.data().eval_batches("train", Shard::WHOLE)?;
    let mut out = Vec::with_capacity(n);
    with_prefetch(batches, PREFETCH, device, |it| -> Result<()> {
        for b in it {
            let Some(f) = tch::no_grad(|| task.features(&b)) else {
                return Err(Error::Task("this task's model does not expose its last layer's features".into()));
            };
            let z = f.logits.detach().to_kind(Kind::Float).set_requires_grad(true);
            let value = per_sample.forward(&z, &f.targets, epoch);
            let g = Tensor::run_backward(&[&value], &[&z], false, false).remove(0);
            let norms = g.to_kind(Kind::Double).norm_scalaropt_dim(2, [1], false)
                * f.hidden.to_kind(Kind::Double).norm_scalaropt_dim(2, [1], false);
            out.extend(Vec::<f64>::try_from(norms.to_device(tch::Device::Cpu))?);
            if out.len() >= n {
                break;
            }
        }
        Ok(())
    })?;
    out.truncate(n);
    Ok(out)
}
