//! `calib metrics`.

use super::values;
use super::{BootstrapSettings, MetricSettings};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `[N, K]` float32/float64 `.npy` of logits (or probabilities with --probs).
    #[arg(long)]
    pub logits: PathBuf,
    /// `[N]` int32/int64 `.npy` of class labels.
    #[arg(long)]
    pub labels: PathBuf,
    /// The scores are probabilities: no softmax, no temperature, no NLL.
    #[arg(long)]
    pub probs: bool,
    /// Divide logits by this temperature first.
    #[arg(long, value_parser = values::positive, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    #[command(flatten)]
    pub settings: MetricSettings,
    #[command(flatten)]
    pub boot: BootstrapSettings,
    /// Compute only this metric (one light pass): `ece` (with MCE, NLL and error).
    #[arg(long, value_parser = ["ece"], conflicts_with_all = ["bootstrap", "plot"])]
    pub only: Option<String>,
    /// Write the reliability diagram here (SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
}
