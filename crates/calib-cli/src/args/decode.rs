//! `calib decode`, and the beam-search settings it shares with `study temperature` and
//! `bench decode`.

use super::{values, DeviceArg, RunArgs};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub weights: RunArgs,
    /// A tokenizer.json to use instead of the run's own (it must have the same vocabulary).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    #[command(flatten)]
    pub search: SearchArgs,
    /// Divides the logits before every softmax of the search.
    #[arg(long, default_value_t = 1.0, value_parser = values::positive, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Translations per input sentence, best first, each on its own line.
    #[arg(long, default_value_t = 1, value_parser = values::beam, allow_negative_numbers = true)]
    pub nbest: usize,
    /// Add the score and the per-token log-probabilities (EOS included), tab-separated.
    #[arg(long)]
    pub scores: bool,
    /// Sentences read before a buffer is translated and written (1–1000000).
    #[arg(long, default_value_t = 1000, value_parser = values::buffer, allow_negative_numbers = true)]
    pub buffer: usize,
    /// Decode every step over the whole prefix instead of with cached keys and values.
    #[arg(long)]
    pub no_cache: bool,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// No summary line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// Beam-search settings shared by `decode` and `study temperature`.
#[derive(clap::Args, Debug, Clone)]
pub struct SearchArgs {
    /// Beam width (1–1000).
    #[arg(long, default_value_t = 4, value_parser = values::beam, allow_negative_numbers = true)]
    pub beam: usize,
    /// Length penalty α (negative favours short outputs).
    #[arg(long, default_value_t = 0.6, value_parser = values::finite, allow_negative_numbers = true)]
    pub lenpen: f64,
    /// fairseq (score / len^α) or gnmt (score / ((5 + len) / 6)^α).
    #[arg(long, default_value = "fairseq")]
    pub lenpen_form: String,
    /// Source tokens per batch.
    #[arg(long, default_value_t = 8000, value_parser = values::tokens, allow_negative_numbers = true)]
    pub max_tokens: usize,
    /// Longest output: max_len_a · source length + max_len_b tokens.
    #[arg(long, default_value_t = 1.2, value_parser = values::non_negative, allow_negative_numbers = true)]
    pub max_len_a: f64,
    #[arg(long, default_value_t = 10, value_parser = values::extra_tokens, allow_negative_numbers = true)]
    pub max_len_b: usize,
}
