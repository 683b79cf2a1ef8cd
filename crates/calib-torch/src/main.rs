//! `calib-torch`: the commands of `calib` that compute with libtorch tensors. Users normally call
//! them through `calib` (e.g. `calib train …`), which hands over to this binary.

mod average;
mod bench;
mod cifar10c;
mod decode;
mod eval;
mod loss;
mod mt;
mod progress;
mod quickstart;
mod study;
mod tasks;
mod train;

use calib_cli::output::Format;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "calib-torch", version, about = "calib commands that run on libtorch (called by `calib`)")]
struct Cli {
    /// Readable tables, or one JSON object on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate a training loss (and its gradient) on saved logits.
    Loss(loss::Args),
    /// Train a model from a recipe.
    Train(train::Args),
    /// Predictions and calibration report of a run.
    Eval(eval::Args),
    /// Train the small network on the embedded CIFAR-10 subset with CE and FLSD-53 and compare.
    Quickstart(quickstart::Args),
    /// Average the weights of a run's last epoch checkpoints (or of given files).
    AverageCheckpoints(average::Args),
    /// Studies over a trained run (the temperature study of the paper's appendix K).
    #[command(subcommand)]
    Study(study::Study),
    /// Beam-search speed with and without the key/value cache (`calib bench decode`).
    BenchDecode(bench::DecodeArgs),
    /// Translate sentences from stdin with a trained run (beam search).
    Decode(decode::Args),
    /// Regenerate CIFAR-10-C Gaussian noise (severities 1–5) from the CIFAR-10 test images.
    MakeCifar10c(cifar10c::Args),
}

fn main() -> ExitCode {
    calib_cli::output::exit(Cli::try_parse().map(|cli| match &cli.command {
        Command::Loss(a) => loss::run(a, cli.format),
        Command::Train(a) => train::run(a, cli.format),
        Command::Eval(a) => eval::run(a, cli.format),
        Command::Quickstart(a) => quickstart::run(a, cli.format),
        Command::MakeCifar10c(a) => cifar10c::run(a, cli.format),
        Command::Decode(a) => decode::run(a, cli.format),
        Command::BenchDecode(a) => bench::decode(a, cli.format),
        Command::Study(s) => study::run(s, cli.format),
        Command::AverageCheckpoints(a) => average::run(a, cli.format),
    }))
}
