//! `calib bleu`.

use super::values;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Reference file, one segment per line (repeat for several references).
    #[arg(long = "ref", required = true)]
    pub refs: Vec<PathBuf>,
    /// Hypotheses file (default: standard input).
    #[arg(long)]
    pub hyp: Option<PathBuf>,
    /// `bleu`, `chrf`, `chrf++` or `ter`.
    #[arg(long, default_value = "bleu")]
    pub metric: String,
    /// BLEU tokeniser: 13a, intl, none, char, zh.
    #[arg(long, default_value = "13a")]
    pub tokenize: String,
    #[arg(long)]
    pub lowercase: bool,
    /// BLEU smoothing: exp, floor, add-k, none.
    #[arg(long, default_value = "exp")]
    pub smooth: String,
    #[arg(long, value_parser = values::non_negative, allow_negative_numbers = true)]
    pub smooth_value: Option<f64>,
    /// Use effective order (for sentence-level use).
    #[arg(long)]
    pub effective_order: bool,
}
