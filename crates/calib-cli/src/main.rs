//! `calib`: calibration metrics, temperature scaling, OOD detection, losses and the γ rule from the
//! command line, on predictions saved as `.npy` by any framework.

mod cmd;

/// mimalloc: BLEU's n-gram tables allocate many small strings, where glibc's malloc costs a third
/// of the run time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use calib_cli::args::{Cli, Command};
use calib_cli::output;
use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

/// The command line, and the command's name as typed (`train`, `bench decode`) for messages.
fn parse() -> Result<(Cli, String), clap::Error> {
    let matches = Cli::command().try_get_matches()?;
    let name = match matches.subcommand() {
        Some((name, sub)) => match sub.subcommand_name() {
            Some(inner) => format!("{name} {inner}"),
            None => name.to_string(),
        },
        None => String::new(),
    };
    Ok((Cli::from_arg_matches(&matches)?, name))
}

fn main() -> ExitCode {
    output::exit(parse().map(|(cli, name)| {
        if cli.command.needs_torch() {
            return cmd::torch::hand_over(&name);
        }
        match &cli.command {
            Command::Metrics(a) => cmd::metrics::run(a, cli.format),
            Command::Calibrate(a) => cmd::calibrate::run(a, cli.format),
            Command::Apply(a) => cmd::calibrate::apply(a, cli.format),
            Command::Ood(a) => cmd::ood::run(a, cli.format),
            Command::Gamma(a) => cmd::gamma::run(a, cli.format),
            Command::Bleu(a) => cmd::bleu::run(a, cli.format),
            Command::Tokenizer(t) => cmd::tokenizer::run(t, cli.format),
            Command::Bench(b) => cmd::bench::run(b, cli.format),
            Command::Report(a) => calib_cli::report::run(a, cli.format),
            _ => cmd::torch::hand_over(&name),
        }
    }))
}
