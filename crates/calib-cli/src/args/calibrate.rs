//! `calib calibrate` and `calib apply`.

use super::MetricSettings;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Validation scores `[N, K]` (.npy) on which the calibrator is fitted: logits, or
    /// probabilities with `--probs`.
    #[arg(long)]
    pub val_logits: PathBuf,
    #[arg(long)]
    pub val_labels: PathBuf,
    /// Test scores to calibrate and report metrics on (the validation set when absent).
    #[arg(long, requires = "labels")]
    pub logits: Option<PathBuf>,
    #[arg(long, requires = "logits")]
    pub labels: Option<PathBuf>,
    /// The scores are probabilities (rows summing to 1), not logits.
    #[arg(long)]
    pub probs: bool,
    /// `ece-grid` (the paper's temperature scaling), `nll-grid`, `nll`, `vector`, `matrix`,
    /// `matrix-odir:λ,μ`, `dirichlet[:λ,μ]`, `ets`, `histogram[:B]`, `isotonic`, `bbq`, `enir`,
    /// `platt`, `beta` (K = 2), or `all`: every method that applies, in one table.
    #[arg(long, default_value = "ece-grid")]
    pub method: String,
    #[command(flatten)]
    pub settings: MetricSettings,
    /// Write reliability diagrams before and after calibration into this folder (with `all`: of
    /// the method with the lowest ECE).
    #[arg(long)]
    pub plot_dir: Option<PathBuf>,
    /// Save the fitted calibrator as JSON (for `calib apply`); written atomically.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Save the calibrated float64 `[N, K]` probabilities of `--logits` (of the validation rows
    /// when `--logits` is absent) as .npy; written atomically.
    #[arg(long)]
    pub save_probs: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// A calibrator saved by `calib calibrate --save`.
    #[arg(long)]
    pub calibrator: PathBuf,
    /// The rows to calibrate `[N, K]` (.npy): logits, or probabilities with `--probs`, as the
    /// calibrator was fitted on.
    #[arg(long)]
    pub logits: PathBuf,
    /// The scores are probabilities.
    #[arg(long)]
    pub probs: bool,
    /// Where to write the calibrated float64 `[N, K]` probabilities (.npy); written atomically.
    #[arg(long)]
    pub out: PathBuf,
}
