//! `calib`: calibration metrics, temperature scaling, OOD detection, losses and the γ rule from the
//! command line, on predictions saved as `.npy` by any framework.

mod cmd;

use calib_cli::output::{self, Format};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "calib", version, about = "Calibrated neural networks: metrics, temperature scaling, focal losses")]
struct Cli {
    /// Readable tables, or one JSON object on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Calibration and accuracy metrics of saved predictions (ECE, AdaECE, classwise-ECE, MCE, NLL, …).
    Metrics(cmd::metrics::Args),
    /// Fit a temperature on validation predictions and report metrics before and after.
    Calibrate(cmd::calibrate::Args),
    /// OOD detection AUROC from in-distribution and out-of-distribution logits.
    Ood(cmd::ood::Args),
    /// The focal-loss γ rule: γ*(p0) by Lambert W, and the g(p, γ) curves.
    Gamma(cmd::gamma::Args),
    /// Evaluate a training loss (and its gradient) on saved logits [libtorch; `calib loss --help`].
    #[command(disable_help_flag = true)]
    Loss {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(cmd::bench::Bench),
    /// The README's main job: calibration report of the real CIFAR-10 predictions in data/.
    Quickstart(cmd::quickstart::Args),
}

fn main() -> ExitCode {
    output::exit(Cli::try_parse().map(|cli| match &cli.command {
        Command::Metrics(a) => cmd::metrics::run(a, cli.format),
        Command::Calibrate(a) => cmd::calibrate::run(a, cli.format),
        Command::Ood(a) => cmd::ood::run(a, cli.format),
        Command::Gamma(a) => cmd::gamma::run(a, cli.format),
        Command::Loss { args } => cmd::torch::hand_over("loss", args, cli.format),
        Command::Bench(b) => cmd::bench::run(b, cli.format),
        Command::Quickstart(a) => cmd::quickstart::run(a, cli.format),
    }))
}
