//! `calib loss`.

use super::DeviceArg;
use crate::input::Precision;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    pub logits: PathBuf,
    #[arg(long)]
    pub labels: PathBuf,
    /// Loss name: ce, focal:3, flsd:53, flsd:532, flsd:0.2=5,0.5=3,1=2, flsd-auto:0.2,0.25,
    /// flsc:531, ls:0.05, brier, mmce:2, mmce-unweighted:2.
    #[arg(long)]
    pub loss: String,
    /// `sum` over the batch (the official image code) or `mean`.
    #[arg(long, default_value = "sum")]
    pub reduction: String,
    /// Epoch (for scheduled γ, flsc).
    #[arg(long, default_value_t = 0)]
    pub epoch: usize,
    /// Targets equal to this are padding and ignored.
    #[arg(long, allow_negative_numbers = true)]
    pub ignore_index: Option<i64>,
    /// Write d loss / d logits here (.npy, same shape and precision as the computation).
    #[arg(long)]
    pub grad_out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    pub precision: Precision,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}
