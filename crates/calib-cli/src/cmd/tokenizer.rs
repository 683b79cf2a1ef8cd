//! `calib tokenizer train`: a joint sub-word vocabulary from parallel text.

use anyhow::Result;
use calib_cli::args::tokenizer::Tokenizer;
use calib_cli::output::{emit, Format};
use calib_mt::corpus::{read_lines, Empty};
use calib_mt::tokenize::{self, Kind};
use serde_json::json;
use std::io::IsTerminal;

pub fn run(t: &Tokenizer, format: Format) -> Result<()> {
    let Tokenizer::Train(a) = t;
    let kind: Kind = a.kind.parse()?;
    let mut text = Vec::new();
    for p in &a.inputs {
        text.extend(read_lines(p, Empty::Keep)?);
    }
    let origin = a.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    let tok = tokenize::train(&text, a.vocab, kind, std::io::stderr().is_terminal(), &origin)?;
    tokenize::save(&tok, &a.out)?;
    let size = tok.get_vocab_size(true);
    emit(format, &json!({"out": a.out, "kind": a.kind, "vocab_size": size, "sentences": text.len()}), || {
        format!("wrote {} ({} {} entries from {} sentences)", a.out.display(), size, a.kind, text.len())
    })
}
