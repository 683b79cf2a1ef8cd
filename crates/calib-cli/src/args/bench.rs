//! `calib bench`.

use super::decode::SearchArgs;
use super::{DeviceArg, PrecisionArg, RunArgs};
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
    /// Steady-state training speed of one of the paper's networks on synthetic inputs of its
    /// recipe's shapes: the full step (forward, loss, backward, clipping, optimiser), as one JSON
    /// line that `benches/compare_train.py` sets beside PyTorch eager [libtorch].
    Train(TrainArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    /// small-cnn, resnet18, resnet20, resnet32, resnet56, resnet50, resnet110, resnet110-official, wrn-26-10, densenet121,
    /// transformer-small or transformer-base.
    #[arg(long)]
    pub model: String,
    /// Images a step (image networks; default 128, the paper's).
    #[arg(long, value_parser = super::values::count)]
    pub batch_size: Option<usize>,
    /// Target tokens a step (Transformers; default 4096): sentences of --length tokens each side.
    #[arg(long, value_parser = super::values::count)]
    pub tokens: Option<usize>,
    /// Tokens per sentence on each side (Transformers).
    #[arg(long, default_value_t = 32, value_parser = super::values::count)]
    pub length: usize,
    /// Output classes (image networks) or vocabulary entries (Transformers; default 32000).
    #[arg(long, value_parser = super::values::count)]
    pub classes: Option<usize>,
    /// Image side in pixels (32: CIFAR; 64: Tiny-ImageNet).
    #[arg(long, default_value_t = 32, value_parser = super::values::count)]
    pub image_size: usize,
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32)]
    pub precision: PrecisionArg,
    /// Timed steps, after --warmup untimed ones.
    #[arg(long, default_value_t = 20, value_parser = super::values::count)]
    pub steps: usize,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub warmup: u64,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// The reference optimiser update (a chain of element-wise operations per parameter)
    /// instead of libtorch's fused kernels: the lever's before and after in one run.
    #[arg(long)]
    pub unfused: bool,
    /// Image networks: weights and inputs in the NCHW layout instead of channels-last, which
    /// `calib train` uses by default (`[model] channels_last`): the lever's before and after.
    #[arg(long)]
    pub nchw: bool,
    /// Record the step as a CUDA graph and replay it (`train.cuda_graph`; CUDA only): the
    /// lever's after, against the same command without it.
    #[arg(long)]
    pub cuda_graph: bool,
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
