//! `calib ood`.

use super::values;
use super::BootstrapSettings;
use crate::input::Precision;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// In-distribution logits `[N, K]` (.npy).
    #[arg(long)]
    pub in_logits: PathBuf,
    /// Out-of-distribution logits `[M, K]` (.npy).
    #[arg(long)]
    pub out_logits: PathBuf,
    /// Divide logits by this temperature first (e.g. the one `calib calibrate` chose).
    #[arg(long, value_parser = values::positive, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    pub precision: Precision,
    #[command(flatten)]
    pub boot: BootstrapSettings,
}
