//! `calib study`.

use super::decode::SearchArgs;
use super::values;
use super::{DeviceArg, RunArgs};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Study {
    /// Test BLEU and validation ECE as functions of the temperature (the paper's Figure K.1).
    Temperature(TemperatureArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct TemperatureArgs {
    #[command(flatten)]
    pub weights: RunArgs,
    /// Test source sentences (plain text, .gz or WMT .sgm); default: the run's recipe's
    /// `data.test_src`.
    #[arg(long, requires = "refs")]
    pub src: Option<PathBuf>,
    /// Test references (repeatable); default: the recipe's `data.test_tgt`.
    #[arg(long = "ref", requires = "src")]
    pub refs: Vec<PathBuf>,
    /// Validation pairs for the token-level ECE; default: the recipe's `data.valid_src` and
    /// `data.valid_tgt`.
    #[arg(long, requires = "valid_ref")]
    pub valid_src: Option<PathBuf>,
    #[arg(long, requires = "valid_src")]
    pub valid_ref: Option<PathBuf>,
    /// Temperatures: FROM:TO:STEP, or a comma-separated list.
    #[arg(long = "t", default_value = "0.5:2.0:0.1")]
    pub temperatures: String,
    #[command(flatten)]
    pub search: SearchArgs,
    /// Only the first N test sentences.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Confidence bins of the ECE.
    #[arg(long, default_value_t = 15, value_parser = values::bins, allow_negative_numbers = true)]
    pub bins: usize,
    /// Where study.json, study.md and temperature.svg go (default RUN/study-temperature).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    #[arg(long)]
    pub quiet: bool,
}
