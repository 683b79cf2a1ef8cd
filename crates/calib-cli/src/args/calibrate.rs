//! `calib calibrate`.

use super::MetricSettings;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Validation logits `[N, K]` (.npy) on which T is chosen.
    #[arg(long)]
    pub val_logits: PathBuf,
    #[arg(long)]
    pub val_labels: PathBuf,
    /// Test logits to report metrics on (the validation set when absent).
    #[arg(long, requires = "labels")]
    pub logits: Option<PathBuf>,
    #[arg(long, requires = "logits")]
    pub labels: Option<PathBuf>,
    /// `ece-grid` (the paper's), `nll-grid`, or `nll` (continuous fit).
    #[arg(long, default_value = "ece-grid")]
    pub method: String,
    #[command(flatten)]
    pub settings: MetricSettings,
    /// Write reliability diagrams before and after scaling into this folder.
    #[arg(long)]
    pub plot_dir: Option<PathBuf>,
}
