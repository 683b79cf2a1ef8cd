//! `calib tokenizer`.

use super::values;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Tokenizer {
    /// Train a joint BPE or unigram vocabulary and save it as tokenizer.json.
    Train(TrainArgs),
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Training text, one sentence per line (`.gz` too); repeat for each side.
    #[arg(long = "input", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Vocabulary size, special tokens included.
    #[arg(long, default_value_t = 32000, value_parser = values::vocab, allow_negative_numbers = true)]
    pub vocab: usize,
    /// `bpe` or `unigram`.
    #[arg(long, default_value = "bpe")]
    pub kind: String,
    #[arg(long)]
    pub out: PathBuf,
}
