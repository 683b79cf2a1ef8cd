//! The whole command line of `calib`, defined once: `calib` parses it (so `calib train --help`
//! shows the real options and bad arguments fail there), and `calib-torch`, to which `calib` hands
//! the libtorch commands' original arguments over, parses the same definitions.
//!
//! Nothing here links libtorch: values that the libtorch crates define (`DeviceRequest`, training
//! `Precision`) have their own definitions here ([`DeviceArg`], [`PrecisionArg`]), converted in
//! `calib-torch`.

pub mod average;
pub mod bench;
pub mod bleu;
pub mod calibrate;
pub mod cifar10c;
pub mod decode;
pub mod eval;
pub mod gamma;
pub mod loss;
pub mod metrics;
pub mod ood;
pub mod quickstart;
pub mod report;
pub mod study;
pub mod tokenizer;
pub mod train;
pub mod values;

use crate::input::Precision;
use crate::output::Format;
use calib::metrics::{Mode, Options};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "calib", version, about = "Calibrated neural networks: metrics, temperature scaling, focal losses")]
pub struct Cli {
    /// Readable tables, or one JSON object on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Calibration and accuracy metrics of saved predictions (ECE, AdaECE, classwise-ECE, MCE, NLL, …).
    Metrics(metrics::Args),
    /// Fit a post-hoc calibrator (temperature, vector, matrix, Dirichlet, ETS, histogram,
    /// isotonic, BBQ, ENIR, Platt, beta) on validation predictions; metrics before and after.
    Calibrate(calibrate::Args),
    /// Apply a calibrator saved by `calib calibrate --save` to new rows.
    Apply(calibrate::ApplyArgs),
    /// OOD detection AUROC from in-distribution and out-of-distribution logits.
    Ood(ood::Args),
    /// The focal-loss γ rule: γ*(p0) by Lambert W, and the g(p, γ) curves.
    Gamma(gamma::Args),
    /// Evaluate a training loss (and its gradient) on saved logits [libtorch].
    Loss(loss::Args),
    /// BLEU, chrF or TER of hypotheses (stdin) against references, as sacreBLEU 2.6.0.
    Bleu(bleu::Args),
    /// Sub-word vocabularies (tokenizers): `calib tokenizer train --input a.en --input a.de --vocab 32000 --out tok.json`.
    #[command(subcommand)]
    Tokenizer(tokenizer::Tokenizer),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Calibration report of saved predictions: T by the ECE grid, metrics before/after with
    /// bootstrap intervals, reliability diagrams, report.md/json.
    Report(report::Args),
    /// Train a model from a recipe [libtorch].
    Train(train::Args),
    /// Evaluate a run: predictions, calibration report, OOD [libtorch].
    Eval(eval::Args),
    /// Translate sentences from stdin with a trained run: beam search, n-best, temperature,
    /// scores [libtorch].
    Decode(decode::Args),
    /// Studies over a trained run: `calib study temperature` (BLEU and ECE against T) [libtorch].
    #[command(subcommand)]
    Study(study::Study),
    /// Average the weights of a run's last epoch checkpoints (or of given files) [libtorch].
    AverageCheckpoints(average::Args),
    /// Regenerate CIFAR-10-C Gaussian noise (severities 1–5) from the CIFAR-10 test images [libtorch].
    MakeCifar10c(cifar10c::Args),
    /// The README's main job: train a small network on the embedded CIFAR-10 subset with CE and
    /// FLSD-53 and compare their calibration [libtorch].
    Quickstart(quickstart::Args),
    /// `calib bench decode` under its former `calib-torch` name.
    #[command(hide = true)]
    BenchDecode(bench::DecodeArgs),
}

impl Command {
    /// Whether the command computes with libtorch tensors, i.e. runs in `calib-torch`.
    pub fn needs_torch(&self) -> bool {
        match self {
            Command::Metrics(_)
            | Command::Calibrate(_)
            | Command::Apply(_)
            | Command::Ood(_)
            | Command::Gamma(_)
            | Command::Bleu(_)
            | Command::Tokenizer(_)
            | Command::Bench(bench::Bench::Metrics(_))
            | Command::Report(_) => false,
            Command::Loss(_)
            | Command::Train(_)
            | Command::Eval(_)
            | Command::Decode(_)
            | Command::Study(_)
            | Command::AverageCheckpoints(_)
            | Command::MakeCifar10c(_)
            | Command::Quickstart(_)
            | Command::Bench(bench::Bench::Decode(_) | bench::Bench::Text(_) | bench::Bench::Train(_))
            | Command::BenchDecode(_) => true,
        }
    }
}

/// Where a libtorch command computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
    /// CUDA when it can be loaded and a GPU is visible, else CPU.
    Auto,
}

/// Forward arithmetic of training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    /// float32 throughout.
    Fp32,
    /// Autocast to bfloat16: matrix products and convolutions in bf16, reductions and the loss
    /// in float32 (PyTorch's `torch.autocast(dtype=torch.bfloat16)`).
    Bf16,
}

/// Which trained weights a command reads.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The run folder `calib train` wrote.
    #[arg(long)]
    pub run: PathBuf,
    /// `best`, `last`, `averaged` (see `calib average-checkpoints`) or a .safetensors path.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
}

impl RunArgs {
    /// The checkpoint file.
    pub fn file(&self) -> PathBuf {
        if self.checkpoint.ends_with(".safetensors") {
            PathBuf::from(&self.checkpoint)
        } else {
            self.run.join(format!("{}.safetensors", self.checkpoint))
        }
    }
}

/// Settings shared by every command that computes metrics.
#[derive(clap::Args, Debug, Clone)]
pub struct MetricSettings {
    /// Number of bins for ECE, AdaECE, classwise-ECE and MCE (1–100000).
    #[arg(long, default_value_t = 15, value_parser = values::bins, allow_negative_numbers = true)]
    pub bins: usize,
    /// `corrected` (the paper's stated definitions) or `paper` (the official code, quirks included).
    #[arg(long, default_value = "corrected")]
    pub mode: String,
    /// Arithmetic: f64, or f32 to reproduce the official float32 PyTorch pipeline.
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    pub precision: Precision,
}

impl MetricSettings {
    pub fn options(&self, temperature: Option<f64>) -> anyhow::Result<Options> {
        let opts = Options::new(self.bins, self.mode.parse::<Mode>()?).with_temperature_opt(temperature);
        opts.validate()?;
        Ok(opts)
    }
}

/// Bootstrap settings shared by `metrics` and `ood`.
#[derive(clap::Args, Debug, Clone)]
pub struct BootstrapSettings {
    /// Percentile confidence intervals from this many resamples (0: none; at most 100000).
    #[arg(long, default_value_t = 0, value_parser = values::resamples, allow_negative_numbers = true)]
    pub bootstrap: usize,
    /// Two-sided coverage of the intervals, in (0, 1).
    #[arg(long, default_value_t = 0.9, value_parser = values::open_unit, allow_negative_numbers = true)]
    pub level: f64,
    /// Seed of the resampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl BootstrapSettings {
    pub fn settings(&self) -> Option<calib::bootstrap::Settings> {
        (self.bootstrap > 0).then_some(calib::bootstrap::Settings::new(self.bootstrap, self.level, self.seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn libtorch_commands_are_recognised() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).unwrap().command;
        assert!(
            parse(&["calib", "train", "--recipe", "r.toml", "--device", "cpu", "--precision", "bf16"]).needs_torch()
        );
        assert!(parse(&["calib", "bench", "decode", "--run", "r", "--src", "s"]).needs_torch());
        assert!(!parse(&["calib", "bench", "metrics"]).needs_torch());
        assert!(!parse(&["calib", "gamma", "--p0", "0.2"]).needs_torch());
        assert!(Cli::try_parse_from(["calib", "train", "--no-such-flag"]).is_err());
    }
}
