//! The epoch loop every task shares: batches in, logits and targets out, a loss from the core,
//! an optimiser step; per-epoch validation with the core's metrics; checkpoints that make a killed
//! run resume to the same result; the best checkpoint by a named criterion.

use crate::checkpoint;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::precision::{self, Precision};
use crate::schedule::Schedule;
use anyhow::{bail, Context, Result};
use calib::loss::{Loss, LossSpec, Reduction};
use calib::metrics;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// Model inputs and integer targets. `inputs` holds what the task's model takes: one image
/// tensor, or a source and a shifted target sentence batch.
pub struct Batch {
    pub inputs: Vec<Tensor>,
    pub targets: Tensor,
}

/// What a task gives the shared loop. Everything ends as logits `[n, K]` and targets `[n]`.
pub trait Task {
    /// The batches of training epoch `epoch`, in an order fixed by `(seed, epoch)` so that a
    /// resumed run sees the same data as an uninterrupted one.
    fn train_batches(&self, epoch: usize, seed: u64) -> Box<dyn Iterator<Item = Batch> + '_>;
    /// Number of training batches per epoch (for progress bars and schedules).
    fn train_batches_per_epoch(&self) -> usize;
    /// Evaluation batches of a split (`val`, `test`, `ood-…`), in a fixed order.
    fn eval_batches(&self, split: &str) -> Result<Box<dyn Iterator<Item = Batch> + '_>>;
    /// Logits `[n, K]` and targets `[n]` of a batch (translation: one row per target token).
    fn forward(&self, batch: &Batch, train: bool) -> (Tensor, Tensor);
    fn var_store(&self) -> &VarStore;
    /// Features `[n, d]` the last linear layer reads, that layer's logits `[n, K]` and the
    /// targets of a batch, in evaluation mode: what the per-sample gradient-norm probe needs.
    /// `None` for tasks whose model is not split so.
    fn features(&self, _batch: &Batch) -> Option<(Tensor, Tensor, Tensor)> {
        None
    }
    /// Name of the last linear layer's weight in the var store (for the weight-norm probe).
    fn last_layer_weight(&self) -> Option<String> {
        None
    }
}

/// Which validation number picks `best.safetensors` (the paper's appendix J compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Criterion {
    Error,
    Nll,
    Ece,
}

/// Training settings shared by every task (the `[train]` table of a recipe).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub loss: String,
    pub reduction: Reduction,
    pub optimizer: OptimizerConfig,
    pub schedule: Schedule,
    /// Global gradient-norm clipping (the official code clips at 2).
    pub clip_grad_norm: Option<f64>,
    pub seed: u64,
    pub select_best_by: Criterion,
    /// Also probe the test split every epoch (the paper's Figures 1–2 plot test NLL and entropy).
    #[serde(default)]
    pub probe_test: bool,
    /// One optimiser step every this many batches, their gradients summed (fairseq's
    /// `--update-freq`): a larger effective batch in the same memory. With `mean` reduction each
    /// batch's loss is divided by this, so the step sees the mean over the group.
    #[serde(default = "one")]
    pub accumulate: usize,
    /// Also keep the weights after each of the last this many epochs (`epoch-N.safetensors`),
    /// for `calib average-checkpoints`.
    #[serde(default)]
    pub keep_epochs: usize,
    /// Forward arithmetic of training steps: `fp32`, or `bf16` autocast (evaluation stays fp32).
    #[serde(default)]
    pub precision: Precision,
    /// After every epoch, the per-sample gradient norms of the last linear layer's weights on
    /// this many training samples (the paper's Figure 3 b–d); 0 turns the probe off.
    #[serde(default)]
    pub probe_grad_norms: usize,
}

fn one() -> usize {
    1
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 || self.accumulate == 0 {
            bail!("epochs, batch_size and accumulate must be at least 1");
        }
        self.loss.parse::<LossSpec>()?;
        self.schedule.validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }
}

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

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    /// Mean cross-entropy of the training batches (in training mode, as they were seen).
    pub train_nll: f64,
    pub train_error: f64,
    pub val: Probe,
    pub test: Option<Probe>,
    pub last_layer_weight_norm: Option<f64>,
    /// See [`TrainConfig::probe_grad_norms`].
    #[serde(default)]
    pub grad_norms: Option<GradNorms>,
    pub seconds: f64,
    pub samples_per_second: f64,
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
pub fn grad_norms(task: &dyn Task, loss: &Loss, epoch: usize, n: usize) -> Result<Vec<f64>> {
    let per_sample = loss.clone().with_reduction(Reduction::Sum);
    let mut out = Vec::with_capacity(n);
    for b in task.eval_batches("train")? {
        let Some((h, z, y)) = tch::no_grad(|| task.features(&b)) else {
            bail!("this task's model does not expose its last layer's features");
        };
        let z = z.detach().to_kind(Kind::Float).set_requires_grad(true);
        let value = per_sample.forward(&z, &y, epoch);
        let g = Tensor::run_backward(&[&value], &[&z], false, false).remove(0);
        let norms = g.to_kind(Kind::Double).norm_scalaropt_dim(2, [1], false)
            * h.to_kind(Kind::Double).norm_scalaropt_dim(2, [1], false);
        out.extend(Vec::<f64>::try_from(norms.to_device(tch::Device::Cpu))?);
        if out.len() >= n {
            break;
        }
    }
    out.truncate(n);
    Ok(out)
}

/// `state.json`: where a run stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs finished (the next one to run).
    pub epochs_done: usize,
    pub global_step: usize,
    pub best_value: Option<f64>,
    pub best_epoch: Option<usize>,
}

/// Logits and targets of a whole split.
pub fn predict(task: &dyn Task, split: &str) -> Result<(Tensor, Tensor)> {
    let (mut logits, mut targets) = (Vec::new(), Vec::new());
    tch::no_grad(|| -> Result<()> {
        for b in task.eval_batches(split)? {
            let (l, t) = task.forward(&b, false);
            logits.push(l.to_kind(Kind::Float).to_device(tch::Device::Cpu));
            targets.push(t.to_device(tch::Device::Cpu));
        }
        Ok(())
    })?;
    if logits.is_empty() {
        bail!("split {split} has no samples");
    }
    Ok((Tensor::cat(&logits, 0), Tensor::cat(&targets, 0)))
}

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
        let lp = logits.to_kind(Kind::Double).log_softmax(1, Kind::Double);
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

    /// The rows of a whole split.
    pub fn of_split(task: &dyn Task, split: &str) -> Result<Self> {
        let mut stats = Self::default();
        tch::no_grad(|| -> Result<()> {
            for b in task.eval_batches(split)? {
                let (l, t) = task.forward(&b, false);
                stats.push(&l, &t)?;
            }
            Ok(())
        })?;
        if stats.confidence.is_empty() {
            bail!("split {split} has no samples");
        }
        Ok(stats)
    }

    /// The probes of the paper's Figures 1–2 and ECE (15 bins).
    pub fn probe(&self) -> Result<Probe> {
        let n = self.correct.len();
        if n == 0 {
            bail!("no samples to probe");
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
            ece: metrics::ece_of_confidences(&self.confidence, &self.correct, 15)?,
            nll_correct: mean_where(&self.nll, true),
            nll_wrong: mean_where(&self.nll, false),
            entropy_correct: mean_where(&self.entropy, true),
            entropy_wrong: mean_where(&self.entropy, false),
        })
    }
}

/// Copies saved tensors into the var store (every variable must be present with its shape).
pub fn load_weights(vs: &VarStore, saved: &HashMap<String, Tensor>, file: &Path) -> Result<()> {
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vs.variables() {
            let t =
                saved.get(&name).with_context(|| format!("{}: no tensor {name} (another model?)", file.display()))?;
            if t.size() != var.size() {
                bail!("{}: {name} has shape {:?}, the model {:?}", file.display(), t.size(), var.size());
            }
            var.copy_(t);
        }
        Ok(())
    })
}

/// Trains `task` into `run`: resumes from `run/last.safetensors` when `resume` is set.
pub fn fit(task: &dyn Task, config: &TrainConfig, run: &Path, resume: bool, quiet: bool) -> Result<RunState> {
    config.validate()?;
    let spec: LossSpec = config.loss.parse()?;
    let loss = Loss::new(spec, config.reduction);
    let vs = task.var_store();
    let mut opt = Optimizer::new(config.optimizer.clone(), vs);
    let (last, best, state_file, log_file) =
        (run.join("last.safetensors"), run.join("best.safetensors"), run.join("state.json"), run.join("metrics.jsonl"));
    let mut state = RunState { epochs_done: 0, global_step: 0, best_value: None, best_epoch: None };
    if resume {
        anyhow::ensure!(last.exists(), "--resume: {} holds no checkpoint (last.safetensors)", run.display());
        let saved = checkpoint::load_tensors(&last)?;
        // The state saved inside the checkpoint, not state.json: the two files cannot be renamed
        // into place together, and the weights are what the next epoch starts from.
        state = state_from(&saved, &last)?;
        load_weights(vs, &saved, &last)?;
        opt.load_state(&saved)?;
        truncate_log(&log_file, state.epochs_done)?;
        checkpoint::save_json(&state_file, &state)?;
        if !quiet {
            eprintln!("resuming {} after epoch {}", run.display(), state.epochs_done);
        }
    } else if state_file.exists() {
        bail!("{} already holds a run; use --resume to continue it or choose another --out", run.display());
    }
    let per_epoch = task.train_batches_per_epoch();
    for epoch in state.epochs_done..config.epochs {
        tch::manual_seed(config.seed as i64 + epoch as i64);
        let started = Instant::now();
        let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(per_epoch as u64) };
        bar.set_style(
            ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} batches, {per_sec}, ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(format!("{}/{}", epoch + 1, config.epochs));
        let (mut loss_sum, mut seen, mut lr) = (0.0, 0usize, 0.0);
        // Summed on the device and read once per epoch: no extra host sync in the training step.
        let (mut nll_sum, mut wrong): (Option<Tensor>, Option<Tensor>) = (None, None);
        // Batches of one accumulation group share a step; `pending` marks gradients not yet applied.
        let mut pending = false;
        for (step, batch) in task.train_batches(epoch, config.seed).enumerate() {
            if !pending {
                lr = config.schedule.lr(epoch, state.global_step);
                opt.zero_grad();
            }
            let (logits, targets) = precision::with(config.precision, vs.device(), || task.forward(&batch, true));
            // The loss in float32 whatever the forward ran in (as autocast does for softmax).
            let logits = if config.precision == Precision::Fp32 { logits } else { logits.to_kind(Kind::Float) };
            let value = loss.forward(&logits, &targets, epoch);
            let v = value.double_value(&[]);
            if !v.is_finite() {
                bar.abandon();
                bail!(
                    "epoch {}, step {}: the loss is {v}; stopped (the last good checkpoint, after epoch {}, is intact in {})",
                    epoch + 1,
                    step + 1,
                    state.epochs_done,
                    run.display()
                );
            }
            if config.accumulate > 1 && config.reduction == Reduction::Mean {
                (&value / config.accumulate as f64).backward();
            } else {
                value.backward();
            }
            pending = (step + 1) % config.accumulate != 0;
            if !pending {
                update(&mut opt, config, lr);
                state.global_step += 1;
            }
            let n = targets.size()[0] as usize;
            loss_sum += if config.reduction == Reduction::Mean { v * n as f64 } else { v };
            seen += n;
            let (batch_nll, batch_wrong) = tch::no_grad(|| {
                let nll =
                    -logits.log_softmax(1, Kind::Double).gather(1, &targets.unsqueeze(1), false).sum(Kind::Double);
                (nll, logits.argmax(1, false).ne_tensor(&targets).sum(Kind::Int64))
            });
            nll_sum = Some(nll_sum.map_or(batch_nll.shallow_clone(), |s| s + batch_nll));
            wrong = Some(wrong.map_or(batch_wrong.shallow_clone(), |s| s + batch_wrong));
            bar.inc(1);
        }
        if pending {
            // The epoch's last group was short: apply what it gathered.
            update(&mut opt, config, lr);
            state.global_step += 1;
        }
        bar.finish_and_clear();
        let train_seconds = started.elapsed().as_secs_f64();
        let val = RowStats::of_split(task, "val")?.probe()?;
        let test = if config.probe_test { Some(RowStats::of_split(task, "test")?.probe()?) } else { None };
        let weight_norm =
            task.last_layer_weight().and_then(|name| vs.variables().get(&name).map(|w| w.norm().double_value(&[])));
        let grad_norms = if config.probe_grad_norms > 0 {
            Some(GradNorms::new(&self::grad_norms(task, &loss, epoch, config.probe_grad_norms)?))
        } else {
            None
        };
        let log = EpochLog {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            train_nll: nll_sum.map_or(0.0, |t| t.double_value(&[])) / seen.max(1) as f64,
            train_error: wrong.map_or(0, |t| t.int64_value(&[])) as f64 / seen.max(1) as f64,
            val: val.clone(),
            test,
            last_layer_weight_norm: weight_norm,
            grad_norms,
            seconds: started.elapsed().as_secs_f64(),
            samples_per_second: seen as f64 / train_seconds.max(1e-9),
        };
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let value = match config.select_best_by {
            Criterion::Error => val.error,
            Criterion::Nll => val.nll,
            Criterion::Ece => val.ece,
        };
        if state.best_value.is_none_or(|b| value < b) {
            checkpoint::save_tensors(&best, &named)?;
            state.best_value = Some(value);
            state.best_epoch = Some(epoch + 1);
        }
        state.epochs_done = epoch + 1;
        if config.keep_epochs > 0 {
            checkpoint::save_tensors(&run.join(format!("epoch-{}.safetensors", epoch + 1)), &named)?;
            if let Some(old) = (epoch + 1).checked_sub(config.keep_epochs) {
                let stale = run.join(format!("epoch-{old}.safetensors"));
                if stale.exists() {
                    std::fs::remove_file(&stale).with_context(|| format!("{}: cannot remove", stale.display()))?;
                }
            }
        }
        named.extend(opt.state());
        named.extend(state_tensors(&state));
        append_log(&log_file, &log)?;
        checkpoint::save_tensors(&last, &named)?;
        checkpoint::save_json(&state_file, &state)?;
        if !quiet {
            eprintln!(
                "epoch {}/{}: loss {:.4}, train error {:.2}%, val error {:.2}%, val NLL {:.4}, val ECE {:.2}%, {:.0} samples/s",
                epoch + 1,
                config.epochs,
                log.train_loss,
                100.0 * log.train_error,
                100.0 * val.error,
                val.nll,
                100.0 * val.ece,
                log.samples_per_second
            );
        }
    }
    Ok(state)
}

/// Clips (when asked) and applies the gathered gradients.
fn update(opt: &mut Optimizer, config: &TrainConfig, lr: f64) {
    if let Some(max) = config.clip_grad_norm {
        opt.clip_grad_norm(max);
    }
    opt.step(lr);
}

/// The run state as tensors (`run.*`), saved in the same file as the weights it belongs to.
fn state_tensors(s: &RunState) -> Vec<(String, Tensor)> {
    let opt_i = |v: Option<usize>| v.map_or(-1, |v| v as i64);
    vec![
        ("run.epochs_done".into(), Tensor::from_slice(&[s.epochs_done as i64])),
        ("run.global_step".into(), Tensor::from_slice(&[s.global_step as i64])),
        ("run.best_epoch".into(), Tensor::from_slice(&[opt_i(s.best_epoch)])),
        ("run.best_value".into(), Tensor::from_slice(&[s.best_value.unwrap_or(f64::NAN)])),
    ]
}

fn state_from(saved: &HashMap<String, Tensor>, file: &Path) -> Result<RunState> {
    let get = |k: &str| saved.get(k).with_context(|| format!("{}: no {k} (not a calib checkpoint)", file.display()));
    let best_epoch = get("run.best_epoch")?.int64_value(&[0]);
    let best_value = get("run.best_value")?.double_value(&[0]);
    Ok(RunState {
        epochs_done: get("run.epochs_done")?.int64_value(&[0]) as usize,
        global_step: get("run.global_step")?.int64_value(&[0]) as usize,
        best_epoch: (best_epoch >= 0).then_some(best_epoch as usize),
        best_value: (!best_value.is_nan()).then_some(best_value),
    })
}

/// Appends one JSON line (rewriting the file atomically, so a crash never leaves half a line).
/// The log so far; a missing file is an empty log, any other problem an error (never a silent
/// truncation).
fn read_text(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read", path.display())),
    }
}

fn append_log(path: &Path, log: &EpochLog) -> Result<()> {
    let mut text = read_text(path)?;
    text.push_str(&serde_json::to_string(log)?);
    text.push('\n');
    Ok(calib::atomic::write(path, text.as_bytes())?)
}

/// Keeps the first `epochs` lines (a run killed after logging but before its state was saved
/// would otherwise log that epoch twice).
fn truncate_log(path: &Path, epochs: usize) -> Result<()> {
    let text = read_text(path)?;
    let kept: String = text.lines().take(epochs).map(|l| format!("{l}\n")).collect();
    Ok(calib::atomic::write(path, kept.as_bytes())?)
}

/// Reads `metrics.jsonl`.
pub fn read_log(run: &Path) -> Result<Vec<EpochLog>> {
    let path: PathBuf = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}: line {}: not an epoch record", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::OptimizerConfig;
    use tch::nn::{self, Module};

    /// A linear classifier on fixed data, batches in order: what accumulation must not change.
    struct Linear {
        vs: VarStore,
        lin: nn::Linear,
        x: Tensor,
        y: Tensor,
        batch: i64,
    }

    impl Linear {
        fn new(batch: i64) -> Self {
            let vs = VarStore::new(tch::Device::Cpu);
            let lin = nn::linear(vs.root() / "fc", 3, 4, Default::default());
            // Fixed weights and data (libtorch's generator is global and tests run in parallel).
            tch::no_grad(|| {
                let w: Vec<f32> = (0..12).map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0).collect();
                lin.ws.shallow_clone().copy_(&Tensor::from_slice(&w).view([4, 3]));
                let _ = lin.bs.as_ref().expect("bias").shallow_clone().fill_(0.1);
            });
            let x: Vec<f32> = (0..48).map(|i| ((i * 13 % 17) as f32 - 8.0) / 4.0).collect();
            let y: Vec<i64> = (0..16).map(|i| (i * 5 % 4) as i64).collect();
            Self { vs, lin, x: Tensor::from_slice(&x).view([16, 3]), y: Tensor::from_slice(&y), batch }
        }
    }

    impl Task for Linear {
        fn train_batches(&self, _epoch: usize, _seed: u64) -> Box<dyn Iterator<Item = Batch> + '_> {
            Box::new((0..16 / self.batch).map(|i| Batch {
                inputs: vec![self.x.narrow(0, i * self.batch, self.batch)],
                targets: self.y.narrow(0, i * self.batch, self.batch),
            }))
        }
        fn train_batches_per_epoch(&self) -> usize {
            (16 / self.batch) as usize
        }
        fn eval_batches(&self, _split: &str) -> Result<Box<dyn Iterator<Item = Batch> + '_>> {
            Ok(Box::new(std::iter::once(Batch {
                inputs: vec![self.x.shallow_clone()],
                targets: self.y.shallow_clone(),
            })))
        }
        fn forward(&self, batch: &Batch, _train: bool) -> (Tensor, Tensor) {
            (self.lin.forward(&batch.inputs[0]), batch.targets.shallow_clone())
        }
        fn features(&self, batch: &Batch) -> Option<(Tensor, Tensor, Tensor)> {
            let h = batch.inputs[0].shallow_clone();
            Some((h.shallow_clone(), self.lin.forward(&h), batch.targets.shallow_clone()))
        }
        fn var_store(&self) -> &VarStore {
            &self.vs
        }
    }

    fn config(accumulate: usize, epochs: usize, keep_epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 1,
            loss: "ce".into(),
            reduction: Reduction::Mean,
            optimizer: OptimizerConfig::Sgd { momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false },
            schedule: Schedule::Steps { base: 0.5, milestones: vec![], factor: 1.0 },
            clip_grad_norm: None,
            seed: 0,
            select_best_by: Criterion::Error,
            probe_test: false,
            accumulate,
            keep_epochs,
            precision: Precision::Fp32,
            probe_grad_norms: 0,
        }
    }

    fn weights_after(batch: i64, accumulate: usize) -> Tensor {
        let task = Linear::new(batch);
        let dir = tempfile::tempdir().unwrap();
        let state = fit(&task, &config(accumulate, 1, 0), dir.path(), false, true).unwrap();
        assert_eq!(state.global_step, 16 / (batch as usize * accumulate));
        task.lin.ws.copy()
    }

    /// Two accumulated batches of 4 make the step one batch of 8 makes (mean reduction).
    #[test]
    fn accumulation_equals_a_larger_batch() {
        let big = weights_after(8, 1);
        assert!(weights_after(4, 2).allclose(&big, 1e-6, 1e-6, false));
        assert!(!weights_after(4, 1).allclose(&big, 1e-3, 1e-3, false));
    }

    /// bf16 autocast trains (the products round to bf16, so the result is close, not equal).
    #[test]
    fn bf16_autocast_training() {
        let fp32 = weights_after(8, 1);
        let task = Linear::new(8);
        let dir = tempfile::tempdir().unwrap();
        let config = TrainConfig { precision: Precision::Bf16, ..config(1, 1, 0) };
        fit(&task, &config, dir.path(), false, true).unwrap();
        let bf16 = task.lin.ws.copy();
        assert!(bf16.allclose(&fp32, 2e-2, 2e-2, false) && !bf16.equal(&fp32));
        assert_eq!(bf16.kind(), Kind::Float);
    }

    /// ‖∂L_i/∂z_i‖·‖h_i‖ equals the norm of the weight gradient autograd gives one sample at a
    /// time, for CE and focal loss.
    #[test]
    fn per_sample_gradient_norms_equal_autograd() {
        let task = Linear::new(16);
        for name in ["ce", "focal:2"] {
            let loss = Loss::new(name.parse().unwrap(), Reduction::Mean);
            let probe = grad_norms(&task, &loss, 0, 10).unwrap();
            assert_eq!(probe.len(), 10);
            for (i, &norm) in probe.iter().enumerate() {
                let w = &task.lin.ws;
                let mut g = w.zeros_like();
                let _ = g.set_requires_grad(false);
                let x = task.x.narrow(0, i as i64, 1);
                let l = Loss::new(name.parse().unwrap(), Reduction::Sum).forward(
                    &task.lin.forward(&x),
                    &task.y.narrow(0, i as i64, 1),
                    0,
                );
                g += Tensor::run_backward(&[&l], &[w], false, false).remove(0);
                let want = g.norm().double_value(&[]);
                assert!((norm - want).abs() <= 1e-5 * want.max(1e-6), "{name} sample {i}: {norm} vs {want}");
            }
        }
        let h = GradNorms::new(&[1e-9, 0.5, 0.5, 2.0, 1e3]);
        assert_eq!((h.samples, h.median, h.counts.iter().sum::<u64>()), (5, 0.5, 5));
        // log10(0.5) = −0.30: bin ⌊(−0.30 + 8) / 0.25⌋ = 30.
        assert_eq!((h.counts[0], h.counts[39], h.counts[30]), (1, 1, 2));
    }

    #[test]
    fn keeps_the_last_epochs() {
        let task = Linear::new(4);
        let dir = tempfile::tempdir().unwrap();
        fit(&task, &config(1, 3, 2), dir.path(), false, true).unwrap();
        let exists = |e: usize| dir.path().join(format!("epoch-{e}.safetensors")).exists();
        assert_eq!((exists(1), exists(2), exists(3)), (false, true, true));
        let saved = checkpoint::load_tensors(&dir.path().join("epoch-3.safetensors")).unwrap();
        assert!(saved["fc.weight"].equal(&task.lin.ws));
        assert!(!saved.contains_key("run.epochs_done"));
    }
}
