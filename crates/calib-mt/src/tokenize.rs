//! Sub-word vocabularies with Hugging Face `tokenizers`: train a joint BPE or unigram model on
//! parallel text, save and load `tokenizer.json`, encode and decode. Words are split on
//! whitespace with sentencepiece's `▁` convention (Metaspace), so decoding restores the text.

use std::path::Path;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::unigram::{Unigram, UnigramTrainerBuilder};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{AddedToken, Tokenizer};

/// Padding, begin, end and unknown: ids 0–3 in every vocabulary this module trains.
pub const SPECIALS: [&str; 4] = ["<pad>", "<s>", "</s>", "<unk>"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown vocabulary kind '{0}' (expected bpe or unigram)")]
    Kind(String),
    #[error("vocabulary size {0} is too small (at least {min})", min = SPECIALS.len() + 1)]
    Size(usize),
    #[error("no training text")]
    Empty,
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error("tokenizer: {0}")]
    Library(String),
}

pub type Result<T> = std::result::Result<T, Error>;

fn lib(e: impl std::fmt::Display) -> Error {
    Error::Library(e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bpe,
    Unigram,
}

impl std::str::FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bpe" => Ok(Self::Bpe),
            "unigram" => Ok(Self::Unigram),
            _ => Err(Error::Kind(s.into())),
        }
    }
}

fn metaspace() -> Metaspace {
    Metaspace::new('▁', PrependScheme::Always, true)
}

/// Trains a joint vocabulary of `size` entries (specials included) on `sentences`.
pub fn train(sentences: &[String], size: usize, kind: Kind, progress: bool) -> Result<Tokenizer> {
    if size <= SPECIALS.len() {
        return Err(Error::Size(size));
    }
    if sentences.iter().all(|s| s.trim().is_empty()) {
        return Err(Error::Empty);
    }
    let specials: Vec<AddedToken> = SPECIALS.iter().map(|s| AddedToken::from(*s, true)).collect();
    let (model, mut trainer): (tokenizers::models::ModelWrapper, TrainerWrapper) = match kind {
        Kind::Bpe => (
            BPE::builder().unk_token("<unk>".into()).build().map_err(lib)?.into(),
            TrainerWrapper::BpeTrainer(
                BpeTrainerBuilder::new().vocab_size(size).special_tokens(specials).show_progress(progress).build(),
            ),
        ),
        Kind::Unigram => (
            Unigram::default().into(),
            TrainerWrapper::UnigramTrainer(
                UnigramTrainerBuilder::default()
                    .vocab_size(size as u32)
                    .special_tokens(specials)
                    .unk_token(Some("<unk>".into()))
                    .show_progress(progress)
                    .build()
                    .map_err(lib)?,
            ),
        ),
    };
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(metaspace()));
    tok.with_decoder(Some(metaspace()));
    tok.train(&mut trainer, sentences.iter()).map_err(lib)?;
    Ok(tok)
}

/// Saves `tokenizer.json` atomically (written beside the target, then renamed).
pub fn save(tok: &Tokenizer, path: &Path) -> Result<()> {
    let file = |p: String| Error::File { path: path.display().to_string(), problem: p };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = calib::atomic::temp_in(dir).map_err(|e| file(format!("cannot write: {e}")))?;
    tok.save(tmp.path(), false).map_err(|e| file(e.to_string()))?;
    tmp.persist(path).map_err(|e| file(format!("cannot rename into place: {}", e.error)))?;
    calib::atomic::sync_dir(dir);
    Ok(())
}

/// Loads a `tokenizer.json`.
pub fn load(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| Error::File { path: path.display().to_string(), problem: e.to_string() })
}

/// Token ids of `text` (no specials added).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    Ok(tok.encode(text, false).map_err(lib)?.get_ids().to_vec())
}

/// The text of `ids` (specials skipped).
pub fn decode(tok: &Tokenizer, ids: &[u32]) -> Result<String> {
    tok.decode(ids, true).map_err(lib)
}
