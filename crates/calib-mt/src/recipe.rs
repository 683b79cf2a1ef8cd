//! Translation recipes (`task = "translation"`): the data, the vocabulary (trained on the
//! training text or given), the model preset and the shared training settings, and reading the
//! corpora through a vocabulary.

use crate::corpus::{self, Empty};
use crate::data::{self, Parallel, ReadOptions};
use crate::tokenize::{self, Vocab};
use crate::transformer::Config;
use calib_train::trainer::TrainConfig;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What can go wrong with a translation recipe or run; every variant names the file or setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("{}: {problem}", path.display())]
    File { path: PathBuf, problem: String },
    #[error(transparent)]
    Corpus(#[from] crate::corpus::Error),
    #[error(transparent)]
    Data(#[from] crate::data::Error),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenize::Error),
    #[error(transparent)]
    Train(#[from] calib_train::Error),
    #[error(transparent)]
    Core(#[from] calib::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `task` key of translation recipes.
pub const KIND: &str = "translation";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtRecipe {
    /// Always `translation`.
    pub task: String,
    pub data: MtData,
    pub model: MtModel,
    /// `batch_size` counts target-side tokens per batch (fairseq's `--max-tokens`).
    pub train: TrainConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtData {
    /// Folder the file names below are relative to (`--data` overrides it).
    pub dir: PathBuf,
    /// Parallel text, one sentence per line (`.gz` too); test sets may be WMT SGML (`.sgm`).
    pub train_src: String,
    pub train_tgt: String,
    pub valid_src: String,
    pub valid_tgt: String,
    pub test_src: Option<String>,
    pub test_tgt: Option<String>,
    /// A `tokenizer.json` to use (relative to the current folder). Without it a joint vocabulary
    /// of `vocab_size` entries (`vocab_kind` bpe or unigram) is trained on the training text.
    /// Either way the run keeps its own copy, `tokenizer.json`.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    #[serde(default = "default_kind")]
    pub vocab_kind: String,
    /// Training pairs with a side longer than this many sub-word tokens are left out (and
    /// counted). Validation and test pairs are all kept, up to the model's positions.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Training pairs whose longer side has more than this many times the tokens of the shorter
    /// are left out too (Moses' `clean-corpus-n` uses 9; none by default).
    #[serde(default)]
    pub max_ratio: Option<f64>,
    /// Use only the first this many training pairs (short CPU runs).
    #[serde(default)]
    pub limit: Option<usize>,
}

fn default_vocab() -> usize {
    8000
}
fn default_kind() -> String {
    "bpe".into()
}
fn default_max_len() -> usize {
    250
}

/// A preset (`small`, `base`) and any of its fields overridden.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MtModel {
    pub preset: String,
    pub d_model: Option<i64>,
    pub heads: Option<i64>,
    pub ffn: Option<i64>,
    pub encoder_layers: Option<usize>,
    pub decoder_layers: Option<usize>,
    pub dropout: Option<f64>,
    pub attention_dropout: Option<f64>,
    pub activation_dropout: Option<f64>,
    pub pre_norm: Option<bool>,
    pub max_positions: Option<i64>,
}

impl MtModel {
    /// The model of the preset with the recipe's overrides for `vocab` entries (no padding row).
    pub fn config(&self, vocab: usize) -> Result<Config> {
        let mut c = Config::preset(&self.preset, vocab as i64).map_err(Error::Config)?;
        c.d_model = self.d_model.unwrap_or(c.d_model);
        c.heads = self.heads.unwrap_or(c.heads);
        c.ffn = self.ffn.unwrap_or(c.ffn);
        c.encoder_layers = self.encoder_layers.unwrap_or(c.encoder_layers);
        c.decoder_layers = self.decoder_layers.unwrap_or(c.decoder_layers);
        c.dropout = self.dropout.unwrap_or(c.dropout);
        c.attention_dropout = self.attention_dropout.unwrap_or(c.attention_dropout);
        c.activation_dropout = self.activation_dropout.unwrap_or(c.activation_dropout);
        c.pre_norm = self.pre_norm.unwrap_or(c.pre_norm);
        c.max_positions = self.max_positions.unwrap_or(c.max_positions);
        if c.heads <= 0 || c.d_model % c.heads != 0 {
            return Err(Error::Config(format!(
                "model: d_model {} must be a positive multiple of heads {}",
                c.d_model, c.heads
            )));
        }
        Ok(c)
    }

    /// The model for `vocab`, its padding token's row zeroed and without lookup gradient.
    pub fn for_vocab(&self, vocab: &Vocab) -> Result<Config> {
        Ok(Config { padding: Some(vocab.pad as i64), ..self.config(vocab.size())? })
    }
}

impl calib_train::recipe::Recipe for MtRecipe {
    const KIND: &'static str = KIND;
    type Error = Error;
    fn task(&self) -> &str {
        &self.task
    }
    fn check(&self) -> Result<()> {
        self.validate()
    }
}

impl MtRecipe {
    /// Reads a recipe with `key=value` overrides applied (unknown keys are errors).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        Self::from_table(calib_train::recipe::load(path, overrides)?, path)
    }

    /// The recipe of a TOML table (see [`calib_train::recipe`]), checked.
    pub fn from_table(table: toml::Table, path: &Path) -> Result<Self> {
        calib_train::recipe::typed(table, path)
    }

    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        self.data.vocab_kind.parse::<tokenize::Kind>()?;
        self.model.config(self.data.vocab_size)?;
        if self.data.test_src.is_some() != self.data.test_tgt.is_some() {
            return Err(Error::Config("data: give both test_src and test_tgt, or neither".into()));
        }
        let positions = self.model.config(self.data.vocab_size)?.max_positions as usize;
        if self.data.max_len + 1 > positions {
            return Err(Error::Config(format!(
                "data.max_len {} needs {} positions (EOS), the model has {positions}",
                self.data.max_len,
                self.data.max_len + 1
            )));
        }
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.data.dir.join(name)
    }

    /// The validation pair's files (source, reference).
    pub fn valid_files(&self) -> (PathBuf, PathBuf) {
        (self.path(&self.data.valid_src), self.path(&self.data.valid_tgt))
    }

    /// The test pair's files, when the recipe names them.
    pub fn test_files(&self) -> Option<(PathBuf, PathBuf)> {
        Some((self.path(self.data.test_src.as_ref()?), self.path(self.data.test_tgt.as_ref()?)))
    }

    /// The vocabulary of a run: a resumed run's own `tokenizer.json`; otherwise the recipe's
    /// tokenizer, or one trained on the training text. The caller saves it into the run folder
    /// once the corpora have been read, so bad data leaves no stale vocabulary behind.
    pub fn vocab(&self, run: &Path, resume: bool, log: &mut dyn FnMut(String)) -> Result<Vocab> {
        if resume {
            return Ok(Vocab::load(&run.join("tokenizer.json"))?);
        }
        let (tok, path) = match &self.data.tokenizer {
            Some(p) => (tokenize::load(p)?, p.clone()),
            None => {
                let mut text = Vec::new();
                for name in [&self.data.train_src, &self.data.train_tgt] {
                    let lines = corpus::Lines::open(&self.path(name), Empty::Reject)?;
                    for line in lines.take(self.data.limit.unwrap_or(usize::MAX)) {
                        text.push(line?);
                    }
                }
                log(format!(
                    "training a {} vocabulary of {} entries on {} sentences",
                    self.data.vocab_kind,
                    self.data.vocab_size,
                    text.len()
                ));
                let kind = self.data.vocab_kind.parse()?;
                let origin = format!(
                    "{}, {}",
                    self.path(&self.data.train_src).display(),
                    self.path(&self.data.train_tgt).display()
                );
                (tokenize::train(&text, self.data.vocab_size, kind, false, &origin)?, run.join("tokenizer.json"))
            }
        };
        Ok(Vocab::new(tok, &path)?)
    }

    fn read(
        &self,
        src: &str,
        tgt: &str,
        vocab: &Vocab,
        limit: Option<usize>,
        filter: Option<(usize, Option<f64>)>,
    ) -> Result<Parallel> {
        // Evaluation sets lose no pair: only what the model cannot take at all (EOS included).
        let positions = self.model.config(vocab.size())?.max_positions as usize - 1;
        let (max_len, max_ratio) = filter.unwrap_or((positions, None));
        let opts = ReadOptions { max_len, max_ratio, limit, empty: Empty::Reject };
        Ok(data::read(&self.path(src), &self.path(tgt), vocab, opts)?)
    }

    /// The `val` (and `test`) splits.
    pub fn eval_splits(&self, vocab: &Vocab) -> Result<HashMap<String, Parallel>> {
        let mut splits = HashMap::new();
        splits.insert("val".to_string(), self.read(&self.data.valid_src, &self.data.valid_tgt, vocab, None, None)?);
        if let (Some(s), Some(t)) = (&self.data.test_src, &self.data.test_tgt) {
            splits.insert("test".to_string(), self.read(s, t, vocab, None, None)?);
        }
        Ok(splits)
    }

    /// The training pairs and the evaluation splits.
    pub fn corpora(&self, vocab: &Vocab, log: &mut dyn FnMut(String)) -> Result<(Parallel, HashMap<String, Parallel>)> {
        let train = self.read(
            &self.data.train_src,
            &self.data.train_tgt,
            vocab,
            self.data.limit,
            Some((self.data.max_len, self.data.max_ratio)),
        )?;
        let splits = self.eval_splits(vocab)?;
        log(format!(
            "{} training pairs ({} source, {} target tokens; {} of {} left out: longer than {} tokens or out of ratio)",
            train.len(),
            train.src.tokens(),
            train.tgt.tokens(),
            train.dropped,
            train.read,
            self.data.max_len
        ));
        Ok((train, splits))
    }
}
