//! `calib train`.

use super::values;
use super::{DeviceArg, PrecisionArg};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Recipe TOML (e.g. recipes/cifar10/resnet50.toml); not needed with --resume.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// Loss name (ce, focal:3, flsd:53, flsc:531, ls:0.05, brier, mmce:2, …); overrides the recipe.
    #[arg(long)]
    pub loss: Option<String>,
    /// Data folder the recipe's paths are relative to.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, value_parser = values::count, allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    #[arg(long, value_parser = values::tokens, allow_negative_numbers = true)]
    pub batch_size: Option<usize>,
    /// Forward arithmetic of training: fp32, or bf16 autocast (on CUDA; also works on CPU).
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
    /// Any recipe value, e.g. --set train.optimizer.weight_decay=1e-4 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Run folder (default runs/<recipe>-<loss>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint (a run killed before its first
    /// checkpoint starts again from the beginning).
    #[arg(long)]
    pub resume: bool,
    /// Train into an --out folder that holds other files than a run's (those of a run are
    /// replaced, the others left alone); without it such a folder is refused.
    #[arg(long)]
    pub force: bool,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
    /// Data-parallel training on this machine: start N ranks (one per GPU with --device cuda,
    /// else Gloo between CPU processes), like `torchrun --standalone --nproc-per-node N`. Under
    /// torchrun or srun, leave it out: the launcher's variables make this process a rank.
    #[arg(long, value_name = "N", value_parser = values::count)]
    pub nproc_per_node: Option<usize>,
    /// Seconds a rank waits for the others (at the start and in each collective) before it stops
    /// with an error: a rank that died or hangs stops the group instead of blocking it.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = values::count)]
    pub dist_timeout: usize,
}
