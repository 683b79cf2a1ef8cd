//! The epoch loop every task shares: batches in (built ahead on a loader thread), logits and
//! targets out, a loss from the core, an optimiser step; per-epoch validation with the core's
//! metrics; checkpoints that make a killed run resume to the same result; the best checkpoint by
//! a named criterion.
//!
//! The training step never waits on the host: the loss, NLL and error sums stay on the device
//! and are read once per log interval and once per epoch; gradient clipping scales on the device.

use crate::checkpoint;
use crate::collective::{all_gather_f64, Collective, SingleProcess};
use crate::error::{file, Error, Result};
use crate::loader::with_prefetch;
use crate::observer::{Observer, Silent};
use crate::optim::{Optimizer, OptimizerConfig, ParamGroup};
use crate::precision::{self, Precision};
use crate::probe::{grad_norms, GradNorms, RowStats, PREFETCH};
use crate::run::{append_log, state_from, state_tensors, truncate_log, EpochLog, RunState};
use crate::schedule::Schedule;
use crate::step_graph::{CudaGraph, GraphedStep, Recorder, StepOut};
use crate::task::{Batches, Data, Shard, Task};
use calib::loss::{Loss, LossSpec, Reduction};
use calib::npy::RowWriter;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

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
#[non_exhaustive]
pub struct TrainConfig {
    pub epochs: usize,
    /// Samples per batch over all ranks together; translation: target tokens per batch on each
    /// rank (see [`crate::task::Data::batch_size_per_rank`]).
    pub batch_size: usize,
    pub loss: String,
    pub reduction: Reduction,
    pub optimizer: OptimizerConfig,
    /// Parameters with their own rate factor or weight decay (`[[train.groups]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<ParamGroup>,
    pub schedule: Schedule,
    /// Global gradient-norm clipping (the official code clips at 2).
    pub clip_grad_norm: Option<f64>,
    pub seed: u64,
    pub select_best_by: Criterion,
    /// Also probe the test split every epoch (the paper's Figures 1–2 plot test NLL and entropy).
    #[serde(default)]
    pub probe_test: bool,
    /// One optimiser step every this many batches, their gradients summed (fairseq's
    /// `--update-freq`): a larger effective batch in the same memory. With `mean` reduction the
    /// step sees the mean over all the group's rows, as fairseq divides by the update's sample
    /// size (batches of unequal rows, as token batches are, weigh by their rows).
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
    /// End every epoch after this many training batches (smoke runs of a recipe, speed
    /// measurements); all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batches: Option<usize>,
    /// Record the training step as a CUDA graph and replay it (crate::step_graph): for small
    /// models on a GPU, where kernel launches set the pace. CUDA only, one process, one batch an
    /// update, the fused SGD or Adam kernels; off by default until measured on a GPU.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cuda_graph: bool,
}

fn one() -> usize {
    1
}

impl TrainConfig {
    /// The settings every recipe must give; the rest start at their defaults (no probes, no
    /// accumulation, fp32, no clipping, best by error).
    pub fn new(
        epochs: usize,
        batch_size: usize,
        loss: impl Into<String>,
        optimizer: OptimizerConfig,
        schedule: Schedule,
    ) -> Self {
        Self {
            epochs,
            batch_size,
            loss: loss.into(),
            reduction: Reduction::Mean,
            optimizer,
            groups: Vec::new(),
            schedule,
            clip_grad_norm: None,
            seed: 0,
            select_best_by: Criterion::Error,
            probe_test: false,
            accumulate: 1,
            keep_epochs: 0,
            precision: Precision::Fp32,
            probe_grad_norms: 0,
            max_batches: None,
            cuda_graph: false,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 || self.accumulate == 0 || self.max_batches == Some(0) {
            return Err(Error::Config("epochs, batch_size, accumulate and max_batches must be at least 1".into()));
        }
        self.loss.parse::<LossSpec>()?;
        self.schedule.validate().map_err(Error::Config)?;
        for g in &self.groups {
            g.validate().map_err(Error::Config)?;
        }
        if let Some(c) = self.clip_grad_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::Config(format!("clip_grad_norm {c} must be positive")));
            }
        }
        if self.cuda_graph && self.accumulate > 1 {
            return Err(Error::Config("cuda_graph records one batch an update: set accumulate = 1".into()));
        }
        Ok(())
    }
}

/// Copies saved tensors into the var store. Every variable must be present with its shape; all
/// are checked, in name order (the first mismatch is the one named), before any is copied.
pub fn load_weights(vs: &VarStore, saved: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut pairs = Vec::with_capacity(vars.len());
    for (name, var) in vars {
        let t = saved.get(&name).ok_or_else(|| file(path, format!("no tensor {name} (another model?)")))?;
        if t.size() != var.size() {
            return Err(file(path, format!("{name} has shape {:?}, the model {:?}", t.size(), var.size())));
        }
        pairs.push((var, t));
    }
    tch::no_grad(|| {
        for (mut var, t) in pairs {
            var.copy_(t);
        }
    });
    Ok(())
}

/// Streams a split's logits (float32) and targets (int64) to `dir/{split}_logits.npy` and
/// `dir/{split}_labels.npy`, a batch at a time; returns the rows written.
pub fn predict_to<T: Task>(task: &T, split: &str, dir: &Path) -> Result<usize> {
    let device = task.var_store().device();
    let batches = task.data().eval_batches(split, Shard::WHOLE)?;
    let (logits_path, labels_path) = (dir.join(format!("{split}_logits.npy")), dir.join(format!("{split}_labels.npy")));
    let mut writers: Option<(RowWriter<f32>, RowWriter<i64>)> = None;
    tch::no_grad(|| {
        with_prefetch(batches, PREFETCH, device, |it| -> Result<()> {
            for b in it {
                let (l, y) = task.forward(&b, false)?;
                let k = l.size()[1] as usize;
                if writers.is_none() {
                    writers = Some((RowWriter::new(&logits_path, &[k])?, RowWriter::new(&labels_path, &[])?));
                }
                let (wl, wy) = writers.as_mut().expect("just made");
                wl.push(&Vec::<f32>::try_from(l.to_kind(Kind::Float).to_device(tch::Device::Cpu).flatten(0, -1))?)?;
                wy.push(&Vec::<i64>::try_from(y.to_kind(Kind::Int64).to_device(tch::Device::Cpu))?)?;
            }
            Ok(())
        })
    })?;
    let (wl, wy) = writers.ok_or_else(|| Error::Task(format!("split {split} has no samples")))?;
    wy.finish()?;
    Ok(wl.finish()?)
}

/// A training run: how to start it (fresh or resumed), which ranks take part, who hears about
/// its progress. `Fit::new().resume(true).observer(&mut bars).run(&task, &config, run)`.
pub struct Fit<'a> {
    resume: bool,
    collective: &'a dyn Collective,
    observer: Option<&'a mut dyn Observer>,
    log_every: usize,
    config: Option<String>,
    /// What records the step when `cuda_graph` is set (a CUDA graph; the tests' CPU stand-in).
    recorder: RecorderFactory,
}

/// Makes the recorder of each epoch's step for a model on this device.
type RecorderFactory = fn(tch::Device) -> Result<Box<dyn Recorder>>;

fn cuda_graph(device: tch::Device) -> Result<Box<dyn Recorder>> {
    if !device.is_cuda() {
        return Err(Error::Config(format!("cuda_graph needs a CUDA device; this run is on {device:?}")));
    }
    Ok(Box::new(CudaGraph::new()?))
}

impl Default for Fit<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Fit<'a> {
    /// A fresh single-process run that reports nothing, checking the loss every 100 batches.
    pub fn new() -> Self {
        Self {
            resume: false,
            collective: &SingleProcess,
            observer: None,
            log_every: 100,
            config: None,
            recorder: cuda_graph,
        }
    }

    /// The resolved recipe, kept as the run's `config.toml`. It is written once the run has been
    /// validated: before the first epoch of a fresh run, after a resumed run's checkpoint has
    /// loaded into the model. A resume that fails (another network, a damaged checkpoint) leaves
    /// the folder as it was.
    pub fn config(mut self, text: String) -> Self {
        self.config = Some(text);
        self
    }

    /// Records the step with `make` instead of a CUDA graph (the tests' CPU stand-in).
    #[cfg(test)]
    fn recorder(mut self, make: RecorderFactory) -> Self {
        self.recorder = make;
        self
    }

    /// Continue the run from its `last.safetensors`.
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Train as one rank of `collective`.
    pub fn collective(mut self, collective: &'a dyn Collective) -> Self {
        self.collective = collective;
        self
    }

    pub fn observer(mut self, observer: &'a mut dyn Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Read the loss (a device synchronisation) every this many batches: the NaN check and the
    /// progress report.
    pub fn log_every(mut self, batches: usize) -> Self {
        self.log_every = batches.max(1);
        self
    }

    /// Trains `task` into the run folder `run`.
    pub fn run<T: Task>(self, task: &T, config: &TrainConfig, run: &Path) -> Result<RunState> {
        let Fit { resume, collective, observer, log_every, config: text, recorder } = self;
        let mut silent = Silent;
        let rank0 = collective.rank() == 0;
        let observer: &mut dyn Observer = match observer {
            Some(o) if rank0 => o,
            _ => &mut silent,
        };
        let start = Start { resume, config: text.as_deref(), recorder };
        fit(task, config, run, start, collective, observer, log_every)
    }
}

/// A resume under another recipe (`--resume --set …`) would lose the recipe that trained the
/// epochs so far, which `metrics.jsonl` alone cannot tell (a learning rate, a loss changed midway):
/// it is kept as `config-to-epoch-N.toml` beside the new `config.toml`, N the last epoch it
/// trained, as fairseq keeps each checkpoint's arguments. A second change before another epoch
/// ends keeps the first file: the recipe in between trained nothing.
fn keep_replaced_config(run: &Path, epochs_done: usize, text: &str) -> Result<()> {
    let (path, kept) = (run.join("config.toml"), run.join(format!("config-to-epoch-{epochs_done}.toml")));
    if epochs_done == 0 || kept.exists() {
        return Ok(());
    }
    match std::fs::read_to_string(&path) {
        Ok(old) if old != text => Ok(calib::atomic::write(&kept, old.as_bytes())?),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(file(&path, format!("cannot read: {e}"))),
        _ => Ok(()),
    }
}

/// How [`fit`] starts: resumed or fresh, and the `config.toml` text to keep.
struct Start<'a> {
    resume: bool,
    config: Option<&'a str>,
    recorder: RecorderFactory,
}

/// Everything the settings ask of the task is there before the first step.
fn check_capabilities<T: Task>(task: &T, config: &TrainConfig) -> Result<()> {
    let data = task.data();
    if !data.has_split("val") {
        return Err(Error::Task("the task has no validation split (val), which picks the best epoch".into()));
    }
    if config.probe_test && !data.has_split("test") {
        return Err(Error::Task("train.probe_test is set but the task has no test split".into()));
    }
    let caps = task.capabilities();
    if config.probe_grad_norms > 0 {
        if !caps.features {
            return Err(Error::Task(
                "train.probe_grad_norms is set but this task's model does not expose its last layer's features".into(),
            ));
        }
        if !data.has_split("train") {
            return Err(Error::Task("train.probe_grad_norms needs the task's train split for evaluation".into()));
        }
    }
    if let Some(name) = &caps.last_layer {
        if !task.var_store().variables().contains_key(name) {
            return Err(Error::Task(format!("the task names its last layer {name}, which the model does not have")));
        }
    }
    Ok(())
}

fn scalar(t: &Tensor) -> f64 {
    t.double_value(&[])
}

/// The batch's logits in float32 whatever the forward ran in (as autocast leaves softmax in
/// float32), and its targets.
fn logits_for_loss<T: Task>(task: &T, batch: &T::Batch, config: &TrainConfig) -> Result<(Tensor, Tensor)> {
    let device = task.var_store().device();
    let (logits, targets) = precision::with(config.precision, device, || task.forward(batch, true))?;
    let logits = if config.precision == Precision::Fp32 { logits } else { logits.to_kind(Kind::Float) };
    Ok((logits, targets))
}

/// The batch's share of the epoch's figures, on the device: the loss summed over its rows, the
/// true classes' −log p, the rows predicted wrong.
fn batch_sums(value: &Tensor, logits: &Tensor, targets: &Tensor, mean: bool) -> StepOut {
    tch::no_grad(|| {
        let rows = targets.size()[0] as usize;
        let v = value.detach().to_kind(Kind::Double);
        // −log p_y = logsumexp(z) − z_y in the logits' precision, summed in f64: a log_softmax
        // in f64 would copy the whole [rows, classes] block twice a step.
        let picked = logits.gather(1, &targets.unsqueeze(1), false).squeeze_dim(1);
        StepOut {
            loss: if mean { v * rows as f64 } else { v },
            nll: (logits.logsumexp([1], false) - picked).sum(Kind::Double),
            wrong: logits.argmax(1, false).ne_tensor(targets).sum(Kind::Int64),
            rows,
        }
    })
}

/// The step a CUDA graph records (one batch an update, one process): the gradient, clipping,
/// the update at the rate already on the device, and the batch's sums.
fn recorded_step<T: Task>(
    task: &T,
    batch: &T::Batch,
    (loss, mean, epoch): (&Loss, bool, usize),
    opt: &mut Optimizer,
    config: &TrainConfig,
) -> Result<StepOut> {
    opt.zero_grad();
    let (logits, targets) = logits_for_loss(task, batch, config)?;
    let value = loss.forward(&logits, &targets, epoch);
    value.backward();
    if let Some(max) = config.clip_grad_norm {
        let _ = opt.clip_grad_norm(max);
    }
    // The rate argument is not read with device counters (see Optimizer::use_device_counters).
    opt.step(f64::NAN)?;
    Ok(batch_sums(&value, &logits, &targets, mean))
}

fn fit<T: Task>(
    task: &T,
    config: &TrainConfig,
    run: &Path,
    start: Start<'_>,
    collective: &dyn Collective,
    observer: &mut dyn Observer,
    log_every: usize,
) -> Result<RunState> {
    config.validate()?;
    check_capabilities(task, config)?;
    let (rank, world) = (collective.rank(), collective.world_size());
    let shard = Shard::new(rank, world)?;
    let rank0 = rank == 0;
    if !task.data().batch_size_per_rank() && config.batch_size % world != 0 {
        return Err(Error::Config(format!("batch_size {} is not a multiple of the {world} ranks", config.batch_size)));
    }
    let spec: LossSpec = config.loss.parse()?;
    let loss = Loss::new(spec, config.reduction);
    // `official` resolved for this loss: what accumulation, logging and the ranks' sum divide by.
    let mean = config.reduction.resolve(&loss.spec) == Reduction::Mean;
    // A `mean` loss over several batches (accumulated, or on several ranks) is the mean over all
    // their rows, as fairseq normalises by the update's sample size: each batch's gradient is
    // taken of its rows' sum and the update divides by the rows of the whole step.
    let by_rows = mean && (config.accumulate > 1 || collective.communicates());
    let vs = task.var_store();
    let device = vs.device();
    let mut opt = Optimizer::new(config.optimizer.clone(), vs).with_groups(&config.groups)?;
    let (last, state_file, log_file) =
        (run.join("last.safetensors"), run.join("state.json"), run.join("metrics.jsonl"));
    let mut state = RunState::new();
    if start.resume && last.exists() {
        let saved = checkpoint::load_tensors(&last)?;
        // The state saved inside the checkpoint, not state.json: the two files cannot be renamed
        // into place together, and the weights are what the next epoch starts from.
        state = state_from(&saved, &last)?;
        load_weights(vs, &saved, &last)?;
        opt.load_state(&saved, &last)?;
        if rank0 {
            truncate_log(&log_file, state.epochs_done)?;
            checkpoint::save_json(&state_file, &state)?;
        }
        observer.resumed(run, state.epochs_done);
    } else if state_file.exists() {
        return Err(file(
            run,
            if start.resume {
                "--resume: state.json records epochs but their checkpoint last.safetensors is missing"
            } else {
                "already holds a run; use --resume to continue it or choose another --out"
            },
        ));
    } else if rank0 && log_file.exists() {
        // A fresh start, or a run killed before its first checkpoint: the log starts empty
        // (whatever a killed attempt logged had no checkpoint to resume from).
        std::fs::remove_file(&log_file).map_err(|e| file(&log_file, format!("cannot remove: {e}")))?;
    }
    if let (true, Some(text)) = (rank0, start.config) {
        keep_replaced_config(run, state.epochs_done, text)?;
        calib::atomic::write(&run.join("config.toml"), text.as_bytes())?;
    }
    let group = collective.communicates();
    if group {
        // Every replica starts from rank 0's weights.
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tensors: Vec<Tensor> = vars.into_iter().map(|(_, t)| t).collect();
        check_same_model(&tensors, collective)?;
        tch::no_grad(|| collective.broadcast(&mut tensors, 0))?;
        collective.barrier()?;
    }
    let per_epoch = task.data().train_batches_per_epoch(shard).min(config.max_batches.unwrap_or(usize::MAX));
    let caps = task.capabilities();
    let zero = |kind: Kind| Tensor::zeros([], (kind, device));
    if config.cuda_graph {
        if group {
            return Err(Error::Config("cuda_graph records one process's step: it does not run data-parallel".into()));
        }
        opt.use_device_counters()?;
    }
    let mut graphed: Option<GraphedStep<T::Batch>> = None;
    for epoch in state.epochs_done..config.epochs {
        // Dropout masks: rank 0 draws as a single process does; other ranks draw their own.
        tch::manual_seed(config.seed as i64 + epoch as i64 + 1_000_003 * rank as i64);
        if config.cuda_graph {
            // Recorded anew each epoch: the loss may read the epoch (FLSc's γ).
            let recorder = (start.recorder)(device)?;
            match graphed.as_mut() {
                Some(g) => g.new_epoch(recorder),
                None => graphed = Some(GraphedStep::new(recorder)),
            }
        }
        let started = Instant::now();
        observer.epoch_started(epoch + 1, config.epochs, per_epoch);
        let mut lr = config.schedule.lr(epoch, state.global_step);
        // Sums on the device: no host synchronisation inside the training step.
        let (mut loss_sum, mut nll_sum, mut wrong) = (zero(Kind::Double), zero(Kind::Double), zero(Kind::Int64));
        let mut seen = 0usize;
        let batches = task.data().train_batches(epoch, config.seed, shard);
        let batches: Batches<'_, T::Batch> = match config.max_batches {
            Some(m) => Box::new(batches.take(m)),
            None => batches,
        };
        let (waited, reducing) = with_prefetch(batches, PREFETCH, device, |it| -> Result<(f64, f64)> {
            // Batches of one accumulation group share a step; `pending` marks gradients not yet applied.
            let mut pending = false;
            let mut reducing = 0.0f64;
            // This rank's rows in the current accumulation group.
            let mut group_rows = 0usize;
            let mut interval = Interval { first_step: 1, loss: 0.0, rows: 0 };
            let mut step = 0usize;
            for batch in it.by_ref() {
                let out = if let Some(g) = graphed.as_mut() {
                    // One batch an update, one process (checked): the recorded step.
                    lr = config.schedule.lr(epoch, state.global_step);
                    opt.set_lr(lr);
                    let out = g.step(batch, &mut |b| recorded_step(task, b, (&loss, mean, epoch), &mut opt, config))?;
                    state.global_step += 1;
                    out
                } else {
                    if !pending {
                        lr = config.schedule.lr(epoch, state.global_step);
                        opt.zero_grad();
                    }
                    let (logits, targets) = logits_for_loss(task, &batch, config)?;
                    let value = loss.forward(&logits, &targets, epoch);
                    let n = targets.size()[0] as usize;
                    if by_rows {
                        (&value * n as f64).backward();
                    } else {
                        value.backward();
                    }
                    group_rows += n;
                    pending = (step + 1) % config.accumulate != 0;
                    if !pending {
                        update(&mut opt, config, (lr, by_rows, group_rows), collective, &mut reducing)?;
                        state.global_step += 1;
                        group_rows = 0;
                    }
                    batch_sums(&value, &logits, &targets, mean)
                };
                tch::no_grad(|| {
                    loss_sum += &out.loss;
                    nll_sum += &out.nll;
                    wrong += &out.wrong;
                });
                seen += out.rows;
                step += 1;
                observer.batch_done();
                crate::fault::point("batch");
                if step % log_every == 0 {
                    interval.report(observer, &loss_sum, seen, (epoch, step), &state, run)?;
                }
            }
            if pending {
                // The epoch's last group was short: apply what it gathered.
                update(&mut opt, config, (lr, by_rows, group_rows), collective, &mut reducing)?;
                state.global_step += 1;
            }
            if seen > interval.rows {
                interval.report(observer, &loss_sum, seen, (epoch, step), &state, run)?;
            }
            Ok((it.waited().as_secs_f64(), reducing))
        })?;
        observer.training_ended();
        let train_seconds = started.elapsed().as_secs_f64();
        let mut totals = [
            loss_sum,
            nll_sum,
            wrong.to_kind(Kind::Double),
            Tensor::scalar_tensor(seen as f64, (Kind::Double, device)),
        ];
        if group {
            collective.all_reduce_sum(&mut totals)?;
        }
        let rows = scalar(&totals[3]).max(1.0);
        // The ranks evaluate a share of the batches each, and every rank sees all rows.
        let val = RowStats::of_split_on(task, "val", collective)?.probe()?;
        let test =
            if config.probe_test { Some(RowStats::of_split_on(task, "test", collective)?.probe()?) } else { None };
        let weight_norm = caps.last_layer.as_ref().and_then(|name| vs.variables().get(name).map(|w| scalar(&w.norm())));
        // Only rank 0 logs the gradient-norm probe, so only it pays for it.
        let grad_norms = if config.probe_grad_norms > 0 && rank0 {
            Some(GradNorms::new(&grad_norms(task, &loss, epoch, config.probe_grad_norms)?))
        } else {
            None
        };
        let log = EpochLog {
            epoch: epoch + 1,
            lr,
            train_loss: scalar(&totals[0]) / rows,
            train_nll: scalar(&totals[1]) / rows,
            train_error: scalar(&totals[2]) / rows,
            val: val.clone(),
            test,
            last_layer_weight_norm: weight_norm,
            grad_norms,
            seconds: started.elapsed().as_secs_f64(),
            samples_per_second: rows / train_seconds.max(1e-9),
            data_wait_seconds: waited,
            collective_seconds: group.then_some(reducing),
        };
        let value = match config.select_best_by {
            Criterion::Error => val.error,
            Criterion::Nll => val.nll,
            Criterion::Ece => val.ece,
        };
        let improved = state.best_value.is_none_or(|b| value < b);
        if improved {
            state.best_value = Some(value);
            state.best_epoch = Some(epoch + 1);
        }
        state.epochs_done = epoch + 1;
        if rank0 {
            save_epoch(vs, &opt, &state, config, run, improved, &log)?;
            checkpoint::save_json(&state_file, &state)?;
        }
        observer.epoch_finished(&log, config.epochs);
    }
    Ok(state)
}

/// Every rank built a model of the same size (a rank with another vocabulary, say, would
/// otherwise receive weights that do not fit).
fn check_same_model(tensors: &[Tensor], collective: &dyn Collective) -> Result<()> {
    let mine = [tensors.len() as f64, tensors.iter().map(|t| t.numel() as f64).sum()];
    // On the model's device: NCCL reduces CUDA tensors only.
    let device = tensors.first().map_or(tch::Device::Cpu, Tensor::device);
    let sizes = all_gather_f64(collective, &mine, device)?;
    match (1..sizes.len()).find(|&r| sizes[r] != sizes[0]) {
        None => Ok(()),
        Some(r) => Err(Error::Collective {
            operation: "start",
            problem: format!(
                "rank {r} built a model of {} tensors and {} values, rank 0 one of {} and {}: the ranks must read the same data and recipe",
                sizes[r][0], sizes[r][1], sizes[0][0], sizes[0][1]
            ),
        }),
    }
}

/// Where the current log interval began: its first step (1-based), and the epoch's loss sum
/// and rows as read at its start.
struct Interval {
    first_step: usize,
    loss: f64,
    rows: usize,
}

impl Interval {
    /// Reads the epoch's loss sum (the interval's one synchronisation): stops on NaN/∞, else
    /// reports the interval's mean loss and starts the next interval. `at` = (epoch, last step).
    fn report(
        &mut self,
        observer: &mut dyn Observer,
        loss_sum: &Tensor,
        rows: usize,
        at: (usize, usize),
        state: &RunState,
        run: &Path,
    ) -> Result<()> {
        let (epoch, last_step) = at;
        let total = scalar(loss_sum);
        let mean = (total - self.loss) / (rows - self.rows).max(1) as f64;
        if !mean.is_finite() {
            return Err(Error::NonFinite {
                epoch: epoch + 1,
                first_step: self.first_step,
                last_step,
                value: mean,
                epochs_done: state.epochs_done,
                run: run.to_path_buf(),
            });
        }
        observer.interval(mean);
        *self = Interval { first_step: last_step + 1, loss: total, rows };
        Ok(())
    }
}

/// Writes an epoch's files (rank 0): the best weights when they improved, the kept epoch
/// weights, the log line, then the checkpoint with optimiser and run state.
fn save_epoch(
    vs: &VarStore,
    opt: &Optimizer,
    state: &RunState,
    config: &TrainConfig,
    run: &Path,
    improved: bool,
    log: &EpochLog,
) -> Result<()> {
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    if improved {
        checkpoint::save_tensors(&run.join("best.safetensors"), &named)?;
    }
    let epoch = state.epochs_done;
    if config.keep_epochs > 0 {
        checkpoint::save_tensors(&run.join(format!("epoch-{epoch}.safetensors")), &named)?;
        if let Some(old) = epoch.checked_sub(config.keep_epochs) {
            let stale = run.join(format!("epoch-{old}.safetensors"));
            if stale.exists() {
                std::fs::remove_file(&stale).map_err(|e| file(&stale, format!("cannot remove: {e}")))?;
            }
        }
    }
    named.extend(opt.state());
    named.extend(state_tensors(state));
    append_log(&run.join("metrics.jsonl"), log)?;
    crate::fault::point("log");
    checkpoint::save_tensors(&run.join("last.safetensors"), &named)
}

/// Reduces the gathered gradients over the ranks, clips them when asked, and applies them at
/// rate `lr`. Gradients of summed losses are summed. With `by_rows` the gradients are of each
/// batch's row sum and `rows` counts this rank's rows in the step: the gradients are summed with
/// the row counts (which travel in the last bucket) and divided by them, so the step equals one
/// process's on the whole batch even when ranks and batches hold different numbers of rows
/// (tokens, tree nodes). DDP's plain average of the ranks' means would not.
fn update(
    opt: &mut Optimizer,
    config: &TrainConfig,
    (lr, by_rows, rows): (f64, bool, usize),
    collective: &dyn Collective,
    reducing: &mut f64,
) -> Result<()> {
    let mut grads = opt.grads();
    if collective.communicates() {
        let started = Instant::now();
        if by_rows && !grads.is_empty() {
            let (kind, device) = (grads[0].kind(), grads[0].device());
            // Filled on the device (no host copy in the step); exact in float32 up to 2^24 rows.
            grads.push(Tensor::full([1], rows as f64, (kind, device)));
        }
        collective.all_reduce_sum(&mut grads)?;
        if by_rows {
            if let Some(total) = grads.pop() {
                // Divided on the device: no host synchronisation in the step.
                tch::no_grad(|| {
                    for g in &mut grads {
                        let _ = g.g_div_(&total);
                    }
                });
            }
        }
        *reducing += started.elapsed().as_secs_f64();
    } else if by_rows {
        tch::no_grad(|| {
            for g in &mut grads {
                let _ = g.g_div_scalar_(rows.max(1) as f64);
            }
        });
    }
    if let Some(max) = config.clip_grad_norm {
        let _ = opt.clip_grad_norm(max);
    }
    opt.step(lr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::LocalGroup;
    use crate::optim::OptimizerConfig;
    use crate::probe::grad_norms;
    use crate::task::{Batches, Capabilities, Features};
    use tch::nn::{self, Module};

    /// Fixed data on the host (16 samples, 3 features, 4 classes), batches in order.
    struct Rows {
        x: Vec<f32>,
        y: Vec<i64>,
        batch: usize,
        /// Make sample 5's features NaN (a loss that blows up).
        poisoned: bool,
        /// How long building a batch takes (a slow loader).
        delay: std::time::Duration,
        /// One process also takes the rows left over as a last, shorter batch.
        tail: bool,
    }

    impl Rows {
        fn batch(&self, rows: &[usize]) -> Vec<Tensor> {
            std::thread::sleep(self.delay);
            let mut x: Vec<f32> = rows.iter().flat_map(|&r| self.x[3 * r..3 * r + 3].to_vec()).collect();
            if self.poisoned {
                if let Some(i) = rows.iter().position(|&r| r == 5) {
                    x[3 * i] = f32::NAN;
                }
            }
            let y: Vec<i64> = rows.iter().map(|&r| self.y[r]).collect();
            vec![Tensor::from_slice(&x).view([rows.len() as i64, 3]), Tensor::from_slice(&y)]
        }
    }

    impl Data for Rows {
        type Batch = Vec<Tensor>;
        fn train_batches(&self, _epoch: usize, _seed: u64, shard: Shard) -> Batches<'_, Vec<Tensor>> {
            // Rank r takes every world-th sample; its batches are the global batches' parts.
            let mine = shard.take((0..16).collect::<Vec<usize>>());
            let per_rank = self.batch / shard.world();
            let full = (0..mine.len() / per_rank).map(move |i| mine[i * per_rank..(i + 1) * per_rank].to_vec());
            let tail = (self.tail && 16 % self.batch != 0).then(|| (16 - 16 % self.batch..16).collect::<Vec<usize>>());
            Box::new(full.chain(tail).map(move |rows| self.batch(&rows)))
        }
        fn train_batches_per_epoch(&self, shard: Shard) -> usize {
            16 / self.batch.max(shard.world()) + usize::from(self.tail && 16 % self.batch != 0)
        }
        fn eval_batches(&self, _split: &str, shard: Shard) -> Result<Batches<'_, Vec<Tensor>>> {
            Ok(Box::new(shard.every([(0..16).collect::<Vec<usize>>()]).map(|r| self.batch(&r))))
        }
        fn has_split(&self, split: &str) -> bool {
            ["train", "val", "test"].contains(&split)
        }
    }

    /// A linear classifier on [`Rows`]: what accumulation and data parallelism must not change.
    struct Linear {
        vs: VarStore,
        lin: nn::Linear,
        data: Rows,
        features: bool,
    }

    impl Linear {
        fn new(batch: usize) -> Self {
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
            Self {
                vs,
                lin,
                data: Rows { x, y, batch, poisoned: false, delay: std::time::Duration::ZERO, tail: false },
                features: true,
            }
        }
        fn x(&self) -> Tensor {
            Tensor::from_slice(&self.data.x).view([16, 3])
        }
        fn y(&self) -> Tensor {
            Tensor::from_slice(&self.data.y)
        }
    }

    impl Task for Linear {
        type Batch = Vec<Tensor>;
        type Data = Rows;
        fn data(&self) -> &Rows {
            &self.data
        }
        fn forward(&self, batch: &Vec<Tensor>, _train: bool) -> Result<(Tensor, Tensor)> {
            Ok((self.lin.forward(&batch[0]), batch[1].shallow_clone()))
        }
        fn var_store(&self) -> &VarStore {
            &self.vs
        }
        fn capabilities(&self) -> Capabilities {
            let caps = Capabilities::none().with_last_layer("fc.weight");
            if self.features {
                caps.with_features()
            } else {
                caps
            }
        }
        fn features(&self, batch: &Vec<Tensor>) -> Option<Features> {
            let hidden = batch[0].shallow_clone();
            Some(Features { logits: self.lin.forward(&hidden), hidden, targets: batch[1].shallow_clone() })
        }
    }

    fn config(accumulate: usize, epochs: usize, keep_epochs: usize) -> TrainConfig {
        let sgd = OptimizerConfig::Sgd { momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false };
        let mut c = TrainConfig::new(
            epochs,
            1,
            "ce",
            sgd,
            Schedule::Steps { base: 0.5, milestones: vec![], factor: 1.0, timing: Default::default() },
        );
        c.accumulate = accumulate;
        c.keep_epochs = keep_epochs;
        c
    }

    fn weights_after(batch: usize, accumulate: usize) -> Tensor {
        let task = Linear::new(batch);
        let dir = tempfile::tempdir().unwrap();
        let state = Fit::new().run(&task, &config(accumulate, 1, 0), dir.path()).unwrap();
        assert_eq!(state.global_step, 16 / (batch * accumulate));
        task.lin.ws.copy()
    }

    /// With a learning rate of 1e-12 the model is the same for every batch (to far below the
    /// tolerance), so the epoch's training NLL and error are those of the whole set under the
    /// initial weights, computed here in f64.
    #[test]
    fn training_nll_and_error_are_the_sets_under_fixed_weights() {
        let task = Linear::new(4);
        let mut c = config(1, 1, 0);
        c.schedule = Schedule::Steps { base: 1e-12, milestones: vec![], factor: 1.0, timing: Default::default() };
        c.loss = "ls:0.1".into();
        let dir = tempfile::tempdir().unwrap();
        Fit::new().run(&task, &c, dir.path()).unwrap();
        let logits = task.lin.forward(&task.x()).to_kind(Kind::Double);
        let y = task.y();
        let nll = -logits.log_softmax(1, Kind::Double).gather(1, &y.unsqueeze(1), false).mean(Kind::Double);
        let error = logits.argmax(1, false).ne_tensor(&y).to_kind(Kind::Double).mean(Kind::Double);
        let log: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap().trim()).unwrap();
        let got = |k: &str| log[k].as_f64().unwrap();
        assert!((got("train_nll") - nll.double_value(&[])).abs() < 1e-6, "{log}");
        assert_eq!(got("train_error"), error.double_value(&[]));
        // Label smoothing's loss is not the NLL.
        assert!((got("train_loss") - got("train_nll")).abs() > 1e-3);
    }

    /// Calls of the stand-in recorder, by kind: eager, record, replay.
    static RECORDER_CALLS: [std::sync::atomic::AtomicUsize; 3] = [const { std::sync::atomic::AtomicUsize::new(0) }; 3];

    /// The CPU stand-in for a CUDA graph: a "replay" runs the step again on the tensors it was
    /// recorded with, so the static batch, the copies into it and the device counters are all
    /// exercised (only the capture is not); it counts its calls.
    struct CountingRerun;

    impl CountingRerun {
        fn count(kind: usize, run: &mut dyn FnMut() -> Result<StepOut>) -> Result<StepOut> {
            RECORDER_CALLS[kind].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            run()
        }
    }

    impl Recorder for CountingRerun {
        fn eager(&mut self, run: &mut dyn FnMut() -> Result<StepOut>) -> Result<StepOut> {
            Self::count(0, run)
        }
        fn record(&mut self, run: &mut dyn FnMut() -> Result<StepOut>) -> Result<StepOut> {
            Self::count(1, run)
        }
        fn replay(&mut self, run: &mut dyn FnMut() -> Result<StepOut>, _recorded: &StepOut) -> Result<StepOut> {
            Self::count(2, run)
        }
    }

    /// The recorded step (batches copied into the recorded one, the rate and step count on the
    /// device, a short last batch taken eagerly, a new recording each epoch) trains as the plain
    /// loop does, with SGD and with Adam under a changing rate and clipping; on the CPU the
    /// CUDA recorder is refused.
    #[test]
    fn the_recorded_step_trains_as_the_plain_loop() {
        use std::sync::atomic::Ordering::SeqCst;
        let adam = OptimizerConfig::Adam { beta1: 0.9, beta2: 0.98, eps: 1e-9, weight_decay: 0.0 };
        for (optimizer, schedule) in [
            (config(1, 1, 0).optimizer, config(1, 1, 0).schedule),
            (adam, Schedule::InverseSqrt { peak: 0.1, warmup: 3 }),
        ] {
            let train = |graph: bool| {
                let mut task = Linear::new(5);
                task.data.tail = true;
                let mut c = config(1, 3, 0);
                (c.optimizer, c.schedule, c.clip_grad_norm, c.cuda_graph) =
                    (optimizer.clone(), schedule.clone(), Some(0.5), graph);
                let dir = tempfile::tempdir().unwrap();
                Fit::new().recorder(|_| Ok(Box::new(CountingRerun))).run(&task, &c, dir.path()).unwrap();
                let log = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
                (task.lin.ws.copy(), log)
            };
            let calls = || RECORDER_CALLS.each_ref().map(|c| c.swap(0, SeqCst));
            let (plain, plain_log) = train(false);
            assert_eq!(calls(), [0, 0, 0]);
            let (recorded, recorded_log) = train(true);
            // 3 epochs of batches 5, 5, 5, 1. Epoch 1: 3 eager warm-up steps, then its short
            // batch eager (only the shape the warm-up batches shared is recorded). Epochs 2 and
            // 3: the first batch recorded, 2 replays, the short batch eager.
            assert_eq!(calls(), [3 + 1 + 2, 2, 4], "{optimizer:?}");
            assert!(recorded.allclose(&plain, 1e-5, 1e-6, false), "{optimizer:?}: {recorded} vs {plain}");
            let losses = |log: &str| -> Vec<f64> {
                log.lines()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"].as_f64().unwrap())
                    .collect()
            };
            for (a, b) in losses(&recorded_log).iter().zip(losses(&plain_log)) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
        let mut c = config(1, 1, 0);
        c.cuda_graph = true;
        let dir = tempfile::tempdir().unwrap();
        let e = Fit::new().run(&Linear::new(4), &c, dir.path()).err().unwrap().to_string();
        assert!(e.contains("cuda_graph needs a CUDA device; this run is on Cpu"), "{e}");
        c.accumulate = 2;
        assert!(c.validate().err().unwrap().to_string().contains("set accumulate = 1"));
    }

    /// Two accumulated batches of 4 make the step one batch of 8 makes (mean reduction).
    #[test]
    fn accumulation_equals_a_larger_batch() {
        let big = weights_after(8, 1);
        assert!(weights_after(4, 2).allclose(&big, 1e-6, 1e-6, false));
        assert!(!weights_after(4, 1).allclose(&big, 1e-3, 1e-3, false));
    }

    /// Two ranks (threads of a [`LocalGroup`]) with half a batch each end with the weights one
    /// process gets from the whole batches, for mean and sum reduction, clipping included; only
    /// rank 0 writes the run folder.
    #[test]
    fn two_ranks_with_half_batches_equal_one_process() {
        for (reduction, clip) in [(Reduction::Mean, None), (Reduction::Sum, Some(0.5))] {
            let mut c = config(1, 2, 0);
            c.batch_size = 8;
            c.reduction = reduction;
            c.clip_grad_norm = clip;
            let single = Linear::new(8);
            let dir = tempfile::tempdir().unwrap();
            Fit::new().run(&single, &c, dir.path()).unwrap();
            let want = single.lin.ws.copy();
            let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
            let paths: Vec<std::path::PathBuf> = dirs.iter().map(|d| d.path().to_path_buf()).collect();
            let handles: Vec<_> = LocalGroup::new(2)
                .into_iter()
                .zip(paths.clone())
                .map(|(group, path)| {
                    let c = c.clone();
                    std::thread::spawn(move || {
                        let task = Linear::new(8);
                        if group.rank() == 1 {
                            // Rank 1 starts from other weights: the broadcast must replace them.
                            tch::no_grad(|| {
                                let _ = task.lin.ws.shallow_clone().fill_(3.0);
                            });
                        }
                        Fit::new().collective(&group).run(&task, &c, &path).unwrap();
                        Vec::<f32>::try_from(task.lin.ws.flatten(0, -1)).unwrap()
                    })
                })
                .collect();
            let got: Vec<Vec<f32>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(got[0], got[1], "replicas diverged");
            let want = Vec::<f32>::try_from(want.flatten(0, -1)).unwrap();
            for (a, b) in got[0].iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{reduction:?}: {a} vs {b}");
            }
            assert!(paths[0].join("last.safetensors").exists() && paths[0].join("metrics.jsonl").exists());
            assert_eq!(std::fs::read_dir(&paths[1]).unwrap().count(), 0, "rank 1 wrote files");
        }
    }

    /// A resume under a changed recipe keeps the one that trained the epochs so far; a resume
    /// under the same recipe, or a fresh start, keeps nothing extra.
    #[test]
    fn a_resume_under_another_recipe_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        let kept = || {
            let mut names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.starts_with("config"))
                .collect();
            names.sort();
            names
        };
        Fit::new().config("lr = 1".into()).run(&Linear::new(4), &config(1, 1, 0), dir.path()).unwrap();
        Fit::new().resume(true).config("lr = 1".into()).run(&Linear::new(4), &config(1, 2, 0), dir.path()).unwrap();
        assert_eq!(kept(), ["config.toml"]);
        Fit::new().resume(true).config("lr = 2".into()).run(&Linear::new(4), &config(1, 3, 0), dir.path()).unwrap();
        assert_eq!(kept(), ["config-to-epoch-2.toml", "config.toml"]);
        assert_eq!((read("config-to-epoch-2.toml"), read("config.toml")), ("lr = 1".into(), "lr = 2".into()));
        // Epoch 3 trained under "lr = 2"; all 3 epochs are done, so the next resumes train nothing.
        // A change keeps "lr = 2" as epoch 3's recipe, and a second change, with no epoch trained
        // under the first, leaves that file alone.
        Fit::new().resume(true).config("lr = 3".into()).run(&Linear::new(4), &config(1, 3, 0), dir.path()).unwrap();
        Fit::new().resume(true).config("lr = 4".into()).run(&Linear::new(4), &config(1, 3, 0), dir.path()).unwrap();
        assert_eq!(kept(), ["config-to-epoch-2.toml", "config-to-epoch-3.toml", "config.toml"]);
        assert_eq!(
            (read("config-to-epoch-2.toml"), read("config-to-epoch-3.toml"), read("config.toml")),
            ("lr = 1".into(), "lr = 2".into(), "lr = 4".into())
        );
    }

    /// A resume that fails (a model the checkpoint does not fit) leaves `config.toml` and the log
    /// as they were; a folder that a run killed before its first checkpoint left behind starts
    /// cleanly, fresh or with `resume`, and logs each epoch once.
    #[test]
    fn failed_resumes_change_nothing_and_unfinished_runs_restart_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = |f: &str| dir.path().join(f);
        let read = |f: &str| std::fs::read(path(f)).unwrap();
        let lines = || String::from_utf8(read("metrics.jsonl")).unwrap().lines().count();
        Fit::new().config("first".into()).run(&Linear::new(4), &config(1, 1, 0), dir.path()).unwrap();
        let (conf, log) = (read("config.toml"), read("metrics.jsonl"));
        assert_eq!(conf, b"first");
        let other = Linear::new(4);
        let _extra = other.vs.root().var("extra", &[1], nn::Init::Const(0.0));
        let e = Fit::new().resume(true).config("second".into()).run(&other, &config(1, 2, 0), dir.path());
        assert!(e.unwrap_err().to_string().contains("extra"));
        assert_eq!((read("config.toml"), read("metrics.jsonl")), (conf, log));

        // Killed inside the first checkpoint write: a config and a log line, no checkpoint.
        std::fs::remove_file(path("last.safetensors")).unwrap();
        std::fs::remove_file(path("state.json")).unwrap();
        Fit::new().config("again".into()).run(&Linear::new(4), &config(1, 2, 0), dir.path()).unwrap();
        assert_eq!((lines(), read("config.toml")), (2, b"again".to_vec()));
        std::fs::remove_file(path("last.safetensors")).unwrap();
        std::fs::remove_file(path("state.json")).unwrap();
        Fit::new().resume(true).run(&Linear::new(4), &config(1, 1, 0), dir.path()).unwrap();
        assert_eq!(lines(), 1);
        // A state that records epochs whose checkpoint is gone is not silently restarted.
        std::fs::remove_file(path("last.safetensors")).unwrap();
        let e = Fit::new().resume(true).run(&Linear::new(4), &config(1, 2, 0), dir.path()).unwrap_err();
        assert!(e.to_string().contains("last.safetensors is missing"), "{e}");
        assert_eq!(lines(), 1);
    }

    /// bf16 autocast trains (the products round to bf16, so the result is close, not equal).
    #[test]
    fn bf16_autocast_training() {
        let fp32 = weights_after(8, 1);
        let task = Linear::new(8);
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(1, 1, 0);
        config.precision = Precision::Bf16;
        Fit::new().run(&task, &config, dir.path()).unwrap();
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
                let x = task.x().narrow(0, i as i64, 1);
                let l = Loss::new(name.parse().unwrap(), Reduction::Sum).forward(
                    &task.lin.forward(&x),
                    &task.y().narrow(0, i as i64, 1),
                    0,
                );
                let g = Tensor::run_backward(&[&l], &[w], false, false).remove(0);
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
        Fit::new().run(&task, &config(1, 3, 2), dir.path()).unwrap();
        let exists = |e: usize| dir.path().join(format!("epoch-{e}.safetensors")).exists();
        assert_eq!((exists(1), exists(2), exists(3)), (false, true, true));
        let saved = checkpoint::load_tensors(&dir.path().join("epoch-3.safetensors")).unwrap();
        assert!(saved["fc.weight"].equal(&task.lin.ws));
        assert!(!saved.contains_key("run.epochs_done"));
        let log = crate::run::read_log(dir.path()).unwrap();
        assert_eq!(log.len(), 3);
        assert!(log.iter().all(|e| e.last_layer_weight_norm.is_some()));
    }

    /// The time the step waits for batches is logged: four batches that take 30 ms each to build
    /// make at least 0.12 s of waiting in the epoch.
    #[test]
    fn the_wait_for_data_is_logged() {
        let mut task = Linear::new(4);
        task.data.delay = std::time::Duration::from_millis(30);
        let dir = tempfile::tempdir().unwrap();
        Fit::new().run(&task, &config(1, 1, 0), dir.path()).unwrap();
        let log = crate::run::read_log(dir.path()).unwrap();
        let waited = log[0].data_wait_seconds;
        assert!((0.12..log[0].seconds).contains(&waited), "waited {waited} s of {} s", log[0].seconds);
    }

    /// A probe the model cannot serve fails before the first step, leaving the folder empty.
    #[test]
    fn capabilities_are_checked_before_training() {
        let mut task = Linear::new(4);
        task.features = false;
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(1, 1, 0);
        c.probe_grad_norms = 4;
        let e = Fit::new().run(&task, &c, dir.path()).unwrap_err().to_string();
        assert!(e.contains("probe_grad_norms"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// A NaN loss stops the run at the end of its log interval, naming the epoch and steps, and
    /// the previous checkpoint stays as it was.
    #[test]
    fn a_nan_loss_stops_with_the_checkpoint_intact() {
        let mut task = Linear::new(4);
        let dir = tempfile::tempdir().unwrap();
        Fit::new().run(&task, &config(1, 1, 0), dir.path()).unwrap();
        let before = std::fs::read(dir.path().join("last.safetensors")).unwrap();
        task.data.poisoned = true;
        let e = Fit::new().resume(true).log_every(2).run(&task, &config(1, 2, 0), dir.path()).unwrap_err();
        assert!(matches!(e, Error::NonFinite { epoch: 2, first_step: 1, last_step: 2, .. }), "{e}");
        assert_eq!(std::fs::read(dir.path().join("last.safetensors")).unwrap(), before);
    }

    /// Predictions stream to `.npy` and equal one forward pass over the split.
    #[test]
    fn predictions_stream_to_npy() {
        let task = Linear::new(4);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(predict_to(&task, "test", dir.path()).unwrap(), 16);
        let saved = calib::npy::read_floats(&dir.path().join("test_logits.npy"), 2, "logits").unwrap();
        assert_eq!(saved.shape(), &[16, 4]);
        let want = Vec::<f32>::try_from(task.lin.forward(&task.x()).flatten(0, -1)).unwrap();
        assert_eq!(saved.into_real::<f32>(), want);
        assert_eq!(calib::npy::read_labels(&dir.path().join("test_labels.npy")).unwrap(), task.data.y);
    }
}
