//! `calib`: calibration metrics, temperature scaling, OOD detection, losses and the γ rule from the
//! command line, on predictions saved as `.npy` by any framework.

mod cmd;
mod device;
mod input;
mod output;

use clap::{Parser, Subcommand};
use output::Format;
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
    /// Evaluate a training loss (and its gradient) on saved logits.
    Loss(cmd::loss::Args),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(cmd::bench::Bench),
    /// The README's main job: calibration report of the real CIFAR-10 predictions in data/.
    Quickstart(cmd::quickstart::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            print!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, like every other error of the tool.
            let text = e.to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: bad arguments"));
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        Command::Metrics(a) => cmd::metrics::run(a, cli.format),
        Command::Calibrate(a) => cmd::calibrate::run(a, cli.format),
        Command::Ood(a) => cmd::ood::run(a, cli.format),
        Command::Gamma(a) => cmd::gamma::run(a, cli.format),
        Command::Loss(a) => cmd::loss::run(a, cli.format),
        Command::Bench(b) => cmd::bench::run(b, cli.format),
        Command::Quickstart(a) => cmd::quickstart::run(a, cli.format),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
