//! `calib`: calibration metrics, temperature scaling, OOD detection, losses and the γ rule from the
//! command line, on predictions saved as `.npy` by any framework.

mod cmd;

/// mimalloc: BLEU's n-gram tables allocate many small strings, where glibc's malloc costs a third
/// of the run time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// BLEU, chrF or TER of hypotheses (stdin) against references, as sacreBLEU 2.6.0.
    Bleu(cmd::bleu::Args),
    /// Sub-word vocabularies (tokenizers): `calib tokenizer train --input a.en --input a.de --vocab 32000 --out tok.json`.
    #[command(subcommand)]
    Tokenizer(cmd::tokenizer::Tokenizer),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(cmd::bench::Bench),
    /// Calibration report of saved predictions: T by the ECE grid, metrics before/after with
    /// bootstrap intervals, reliability diagrams, report.md/json.
    Report(calib_cli::report::Args),
    /// Train a model from a recipe [libtorch; `calib train --help`].
    #[command(disable_help_flag = true)]
    Train {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Evaluate a run: predictions, calibration report, OOD [libtorch; `calib eval --help`].
    #[command(disable_help_flag = true)]
    Eval {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Translate sentences from stdin with a trained run: beam search, n-best, temperature,
    /// scores [libtorch; `calib decode --help`].
    #[command(disable_help_flag = true)]
    Decode {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Studies over a trained run: `calib study temperature` (BLEU and ECE against T) [libtorch].
    #[command(disable_help_flag = true)]
    Study {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Average the weights of a run's last epoch checkpoints [libtorch].
    #[command(disable_help_flag = true)]
    AverageCheckpoints {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Regenerate CIFAR-10-C Gaussian noise from the CIFAR-10 test images [libtorch binary].
    #[command(disable_help_flag = true)]
    MakeCifar10c {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The README's main job: train a small network on the embedded CIFAR-10 subset with CE and
    /// FLSD-53 and compare their calibration [libtorch].
    #[command(disable_help_flag = true)]
    Quickstart {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    output::exit(Cli::try_parse().map(|cli| match &cli.command {
        Command::Metrics(a) => cmd::metrics::run(a, cli.format),
        Command::Calibrate(a) => cmd::calibrate::run(a, cli.format),
        Command::Ood(a) => cmd::ood::run(a, cli.format),
        Command::Gamma(a) => cmd::gamma::run(a, cli.format),
        Command::Loss { args } => cmd::torch::hand_over("loss", args, cli.format),
        Command::Bleu(a) => cmd::bleu::run(a, cli.format),
        Command::Tokenizer(t) => cmd::tokenizer::run(t, cli.format),
        Command::Bench(b) => cmd::bench::run(b, cli.format),
        Command::Report(a) => calib_cli::report::run(a, cli.format),
        Command::Train { args } => cmd::torch::hand_over("train", args, cli.format),
        Command::Eval { args } => cmd::torch::hand_over("eval", args, cli.format),
        Command::Quickstart { args } => cmd::torch::hand_over("quickstart", args, cli.format),
        Command::MakeCifar10c { args } => cmd::torch::hand_over("make-cifar10c", args, cli.format),
        Command::Decode { args } => cmd::torch::hand_over("decode", args, cli.format),
        Command::Study { args } => cmd::torch::hand_over("study", args, cli.format),
        Command::AverageCheckpoints { args } => cmd::torch::hand_over("average-checkpoints", args, cli.format),
    }))
}
