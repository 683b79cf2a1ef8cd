//! `calib bench`.

use super::decode::SearchArgs;
use super::{DeviceArg, RunArgs};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Bench {
    /// Time reading a `.npy` of logits and computing the metrics on it.
    Metrics(MetricsArgs),
    /// Beam-search sentences/s of a translation run with and without the key/value cache
    /// [libtorch].
    Decode(DecodeArgs),
    /// Training speed of a text recipe on its real data: the Tree-LSTM level-batched against a
    /// node-by-node recursion of the same model (trees/s), or the Global Pooling CNN (documents/s)
    /// [libtorch].
    Text(TextArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct TextArgs {
    /// A `task = "tree"` or `task = "text"` recipe.
    #[arg(long)]
    pub recipe: PathBuf,
    /// Recipe overrides, `section.key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Timed training batches (after two of warm-up).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batches: u64,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
}

#[derive(clap::Args, Debug)]
pub struct MetricsArgs {
    /// Rows (at most 10^8; rows × classes at most 10^9).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub n: u64,
    /// Classes (2–100000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    pub classes: u64,
    /// Use (or create) the logits here; labels go next to it as `<stem>.labels.npy`.
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Timed runs per measurement (the best is reported; 1–1000).
    #[arg(long, default_value_t = 3, value_parser = super::values::beam)]
    pub repeats: usize,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DecodeArgs {
    #[command(flatten)]
    pub weights: RunArgs,
    /// Source sentences (plain text, .gz or WMT .sgm).
    #[arg(long)]
    pub src: PathBuf,
    /// The first N sentences.
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    #[command(flatten)]
    pub search: SearchArgs,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
}
