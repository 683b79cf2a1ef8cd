//! A run folder's records: `state.json` (where the run stands) and `metrics.jsonl` (one line per
//! epoch), and the run state saved inside each checkpoint.

use crate::error::{file, Error, Result};
use crate::probe::{GradNorms, Probe};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tch::Tensor;

/// `state.json`: where a run stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs finished (the next one to run).
    pub epochs_done: usize,
    pub global_step: usize,
    pub best_value: Option<f64>,
    pub best_epoch: Option<usize>,
}

impl RunState {
    pub fn new() -> Self {
        Self { epochs_done: 0, global_step: 0, best_value: None, best_epoch: None }
    }
}

impl Default for RunState {
    fn default() -> Self {
        Self::new()
    }
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
    /// Per-sample gradient norms of the last layer (`train.probe_grad_norms`).
    #[serde(default)]
    pub grad_norms: Option<GradNorms>,
    pub seconds: f64,
    pub samples_per_second: f64,
    /// Seconds the training step waited for the loader thread this epoch (0 when the data
    /// is always ready: the device never waits).
    #[serde(default)]
    pub data_wait_seconds: f64,
    /// Seconds rank 0 spent reducing gradients over the ranks this epoch (data-parallel runs
    /// only). Host time: on CPU the whole collective; on CUDA only its queueing, as NCCL runs
    /// on its own stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective_seconds: Option<f64>,
}

/// Checkpoint entries that are not weights: the optimiser state and the run state.
pub const OPTIMIZER_PREFIX: &str = "optim.";
pub const RUN_PREFIX: &str = "run.";

/// Whether a checkpoint entry is a model weight (not optimiser or run state).
pub fn is_weight(name: &str) -> bool {
    !name.starts_with(OPTIMIZER_PREFIX) && !name.starts_with(RUN_PREFIX)
}

/// The run state as tensors (`run.*`), saved in the same file as the weights it belongs to.
pub(crate) fn state_tensors(s: &RunState) -> Vec<(String, Tensor)> {
    let opt_i = |v: Option<usize>| v.map_or(-1, |v| v as i64);
    vec![
        (format!("{RUN_PREFIX}epochs_done"), Tensor::from_slice(&[s.epochs_done as i64])),
        (format!("{RUN_PREFIX}global_step"), Tensor::from_slice(&[s.global_step as i64])),
        (format!("{RUN_PREFIX}best_epoch"), Tensor::from_slice(&[opt_i(s.best_epoch)])),
        (format!("{RUN_PREFIX}best_value"), Tensor::from_slice(&[s.best_value.unwrap_or(f64::NAN)])),
    ]
}

pub(crate) fn state_from(saved: &HashMap<String, Tensor>, path: &Path) -> Result<RunState> {
    let get = |k: &str| {
        saved
            .get(&format!("{RUN_PREFIX}{k}"))
            .ok_or_else(|| file(path, format!("no {RUN_PREFIX}{k} (not a calib checkpoint)")))
    };
    let best_epoch = get("best_epoch")?.int64_value(&[0]);
    let best_value = get("best_value")?.double_value(&[0]);
    let count = |k: &str| -> Result<usize> {
        usize::try_from(get(k)?.int64_value(&[0])).map_err(|_| file(path, format!("{RUN_PREFIX}{k} is negative")))
    };
    Ok(RunState {
        epochs_done: count("epochs_done")?,
        global_step: count("global_step")?,
        best_epoch: (best_epoch >= 0).then_some(best_epoch as usize),
        best_value: (!best_value.is_nan()).then_some(best_value),
    })
}

/// The log so far; a missing file is an empty log, any other problem an error (never a silent
/// truncation).
fn read_text(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(file(path, format!("cannot read: {e}"))),
    }
}

/// Appends one JSON line (rewriting the file atomically, so a crash never leaves half a line).
pub(crate) fn append_log(path: &Path, log: &EpochLog) -> Result<()> {
    let mut text = read_text(path)?;
    text.push_str(&serde_json::to_string(log).map_err(|e| file(path, e))?);
    text.push('\n');
    Ok(calib::atomic::write(path, text.as_bytes())?)
}

/// Keeps the first `epochs` lines (a run killed after logging but before its state was saved
/// would otherwise log that epoch twice).
pub(crate) fn truncate_log(path: &Path, epochs: usize) -> Result<()> {
    let text = read_text(path)?;
    let kept: String = text.lines().take(epochs).map(|l| format!("{l}\n")).collect();
    Ok(calib::atomic::write(path, kept.as_bytes())?)
}

/// Whether `dir` is a run folder of ours: its `config.toml` is a recipe (a `task` key and a
/// `[train]` table), as every run's is from the moment training starts.
pub fn is_run_folder(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("config.toml")).ok().and_then(|text| text.parse::<toml::Table>().ok()).is_some_and(
        |t| t.get("task").is_some_and(toml::Value::is_str) && t.get("train").is_some_and(toml::Value::is_table),
    )
}

/// Reads a run's `metrics.jsonl`.
pub fn read_log(run: &Path) -> Result<Vec<EpochLog>> {
    let path = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| file(&path, format!("cannot read: {e}")))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::File {
                path: path.clone(),
                problem: format!("line {}: not an epoch record ({e})", i + 1),
            })
        })
        .collect()
}
