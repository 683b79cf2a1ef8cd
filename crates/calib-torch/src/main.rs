//! `calib-torch`: the commands of `calib` that compute with libtorch tensors. Users normally call
//! them through `calib` (e.g. `calib train …`), which parses the arguments with the same
//! definitions (`calib_cli::args`) and hands over to this binary.

mod args;
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

use calib_cli::args::bench::Bench;
use calib_cli::args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any tensor exists: large freed tensors stay in the process (see the module's doc).
    calib_train::host_memory::keep_freed_memory();
    calib_cli::output::exit(Cli::try_parse().map(|cli| match &cli.command {
        Command::Loss(a) => loss::run(a, cli.format),
        Command::Train(a) => train::run(a, cli.format),
        Command::Eval(a) => eval::run(a, cli.format),
        Command::Quickstart(a) => quickstart::run(a, cli.format),
        Command::MakeCifar10c(a) => cifar10c::run(a, cli.format),
        Command::Decode(a) => decode::run(a, cli.format),
        Command::Bench(Bench::Decode(a)) | Command::BenchDecode(a) => bench::decode(a, cli.format),
        Command::Bench(Bench::Text(a)) => bench::text(a, cli.format),
        Command::Bench(Bench::Train(a)) => bench::train(a, cli.format),
        Command::Study(s) => study::run(s, cli.format),
        Command::AverageCheckpoints(a) => average::run(a, cli.format),
        _ => Err(anyhow::anyhow!("calib-torch runs only the libtorch commands; run this one with `calib`")),
    }))
}
