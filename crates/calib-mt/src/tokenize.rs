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
    #[error("{origin}: no training text (the input is empty or holds only blank lines)")]
    Empty { origin: String },
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error("tokenizer: {0}")]
    Library(String),
    #[error(transparent)]
    Spm(#[from] crate::spm::Error),
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
///
/// `origin` names where the sentences came from (the files, joined by ", "), for the error when
/// they hold no text.
pub fn train(sentences: &[String], size: usize, kind: Kind, progress: bool, origin: &str) -> Result<Tokenizer> {
    if size <= SPECIALS.len() {
        return Err(Error::Size(size));
    }
    if sentences.iter().all(|s| s.trim().is_empty()) {
        return Err(Error::Empty { origin: origin.into() });
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

/// Loads a `tokenizer.json`, or a sentencepiece `.model` (see [`crate::spm`]).
pub fn load(path: &Path) -> Result<Tokenizer> {
    if path.extension().is_some_and(|x| x == "model") {
        return Ok(crate::spm::load(path, SPECIALS[0])?);
    }
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

/// A tokenizer with the ids of the specials translation needs. Vocabularies this module trains
/// have them at 0–3; a loaded one only needs to contain them (any ids).
pub struct Vocab {
    tokenizer: Tokenizer,
    pub pad: u32,
    pub bos: u32,
    pub eos: u32,
}

impl Vocab {
    /// `path` names the tokenizer in errors.
    pub fn new(tokenizer: Tokenizer, path: &Path) -> Result<Self> {
        let id = |t: &str| {
            tokenizer.token_to_id(t).ok_or_else(|| Error::File {
                path: path.display().to_string(),
                problem: format!("the vocabulary has no {t} token (translation needs <pad>, <s> and </s>)"),
            })
        };
        Ok(Self { pad: id(SPECIALS[0])?, bos: id(SPECIALS[1])?, eos: id(SPECIALS[2])?, tokenizer })
    }

    /// Loads a `tokenizer.json`.
    pub fn load(path: &Path) -> Result<Self> {
        Self::new(load(path)?, path)
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Entries, specials included.
    pub fn size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Ids of many sentences, encoded in parallel.
    pub fn encode_batch(&self, sentences: &[String]) -> Result<Vec<Vec<u32>>> {
        let inputs: Vec<&str> = sentences.iter().map(String::as_str).collect();
        Ok(self.tokenizer.encode_batch(inputs, false).map_err(lib)?.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// The text of `ids` (specials skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        decode(&self.tokenizer, ids)
    }

    /// Whether both map every token to the same id.
    pub fn same_entries(&self, other: &Vocab) -> bool {
        self.tokenizer.get_vocab(true) == other.tokenizer.get_vocab(true)
    }
}
