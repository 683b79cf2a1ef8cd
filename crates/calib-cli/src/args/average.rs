//! `calib average-checkpoints`.

use super::values;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// A run folder: average its last --last `epoch-N.safetensors`.
    #[arg(long)]
    pub run: Option<PathBuf>,
    #[arg(long, default_value_t = 5, value_parser = values::count, allow_negative_numbers = true)]
    pub last: usize,
    /// Or these checkpoint files.
    #[arg(long = "input", conflicts_with = "run")]
    pub inputs: Vec<PathBuf>,
    /// Output file (default RUN/averaged.safetensors).
    #[arg(long)]
    pub out: Option<PathBuf>,
}
