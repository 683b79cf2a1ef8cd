//! Translation recipes (`task = "translation"`) and what `train`, `eval`, `decode` and the
//! temperature study share: reading the corpora through the run's vocabulary and loading a
//! trained run.

use anyhow::{bail, Context, Result};
pub use calib_cli::args::RunArgs;
use calib_mt::corpus::Empty;
use calib_mt::data::{self, Parallel, ReadOptions};
use calib_mt::task::{Specials, TranslationTask};
use calib_mt::tokenize::{self, Vocab};
use calib_mt::transformer::Config;
use calib_train::checkpoint;
use calib_train::trainer::{self, Task, TrainConfig};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtRecipe {
    /// Always `translation` (image recipes have no `task` key).
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
    pub pre_norm: Option<bool>,
    pub max_positions: Option<i64>,
}

impl MtModel {
    pub fn config(&self, vocab: usize) -> Result<Config> {
        let mut c = Config::preset(&self.preset, vocab as i64).map_err(anyhow::Error::msg)?;
        c.d_model = self.d_model.unwrap_or(c.d_model);
        c.heads = self.heads.unwrap_or(c.heads);
        c.ffn = self.ffn.unwrap_or(c.ffn);
        c.encoder_layers = self.encoder_layers.unwrap_or(c.encoder_layers);
        c.decoder_layers = self.decoder_layers.unwrap_or(c.decoder_layers);
        c.dropout = self.dropout.unwrap_or(c.dropout);
        c.pre_norm = self.pre_norm.unwrap_or(c.pre_norm);
        c.max_positions = self.max_positions.unwrap_or(c.max_positions);
        if c.heads <= 0 || c.d_model % c.heads != 0 {
            bail!("model: d_model {} must be a positive multiple of heads {}", c.d_model, c.heads);
        }
        Ok(c)
    }
}

impl MtRecipe {
    pub fn validate(&self) -> Result<()> {
        if self.task != "translation" {
            bail!("task = '{}': expected 'translation'", self.task);
        }
        self.train.validate()?;
        self.data.vocab_kind.parse::<tokenize::Kind>()?;
        self.model.config(self.data.vocab_size)?;
        if self.data.test_src.is_some() != self.data.test_tgt.is_some() {
            bail!("data: give both test_src and test_tgt, or neither");
        }
        let positions = self.model.config(self.data.vocab_size)?.max_positions as usize;
        if self.data.max_len + 1 > positions {
            bail!(
                "data.max_len {} needs {} positions (EOS), the model has {positions}",
                self.data.max_len,
                self.data.max_len + 1
            );
        }
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.data.dir.join(name)
    }

    /// The vocabulary of a run: a resumed run's own `tokenizer.json`; otherwise the recipe's
    /// tokenizer, or one trained on the training text. The caller saves it into the run folder
    /// once the corpora have been read, so bad data leaves no stale vocabulary behind.
    pub fn vocab(&self, run: &Path, resume: bool, quiet: bool) -> Result<Vocab> {
        if resume {
            return Ok(Vocab::load(&run.join("tokenizer.json"))?);
        }
        let (tok, path) = match &self.data.tokenizer {
            Some(p) => (tokenize::load(p)?, p.clone()),
            None => {
                let mut text = Vec::new();
                for name in [&self.data.train_src, &self.data.train_tgt] {
                    let lines = calib_mt::corpus::Lines::open(&self.path(name), Empty::Reject)?;
                    for line in lines.take(self.data.limit.unwrap_or(usize::MAX)) {
                        text.push(line?);
                    }
                }
                if !quiet {
                    eprintln!(
                        "training a {} vocabulary of {} entries on {} sentences",
                        self.data.vocab_kind,
                        self.data.vocab_size,
                        text.len()
                    );
                }
                let kind = self.data.vocab_kind.parse()?;
                (tokenize::train(&text, self.data.vocab_size, kind, !quiet)?, run.join("tokenizer.json"))
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
    pub fn corpora(&self, vocab: &Vocab, quiet: bool) -> Result<(Parallel, HashMap<String, Parallel>)> {
        let train = self.read(
            &self.data.train_src,
            &self.data.train_tgt,
            vocab,
            self.data.limit,
            Some((self.data.max_len, self.data.max_ratio)),
        )?;
        let splits = self.eval_splits(vocab)?;
        if !quiet {
            eprintln!(
                "{} training pairs ({} source, {} target tokens; {} of {} left out: longer than {} tokens or out of ratio)",
                train.len(),
                train.src.tokens(),
                train.tgt.tokens(),
                train.dropped,
                train.read,
                self.data.max_len
            );
        }
        Ok((train, splits))
    }
}

/// A trained run ready to translate: its vocabulary (the run's own, or `tokenizer` when
/// given, which must have the same entries) and the task holding the model with the checkpoint's
/// weights and `splits`.
pub struct LoadedRun {
    pub vocab: Vocab,
    pub task: TranslationTask,
}

/// `splits` reads the evaluation data through the run's recipe and vocabulary.
pub fn load_run(
    weights: &RunArgs,
    tokenizer: Option<&Path>,
    device: tch::Device,
    splits: impl FnOnce(&MtRecipe, &Vocab) -> Result<HashMap<String, Parallel>>,
) -> Result<LoadedRun> {
    let run = &weights.run;
    let recipe = match crate::recipe::Plan::load(&run.join("config.toml"), &[])? {
        crate::recipe::Plan::Translation(r) => r,
        crate::recipe::Plan::Image(_) => bail!("{} is an image run, not a translation run", run.display()),
    };
    let own = run.join("tokenizer.json");
    let vocab = Vocab::load(&own)?;
    let vocab = match tokenizer {
        Some(p) => {
            let other = Vocab::load(p)?;
            if !other.same_entries(&vocab) {
                bail!(
                    "{}: this tokenizer ({} entries) does not match the vocabulary the run was trained with ({}, {} entries)",
                    p.display(),
                    other.size(),
                    own.display(),
                    vocab.size()
                );
            }
            other
        }
        None => vocab,
    };
    let file = weights.file();
    let saved = checkpoint::load_tensors(&file)?;
    let rows = saved
        .get("embed")
        .map(|t| t.size()[0])
        .with_context(|| format!("{}: no embed tensor (not a translation checkpoint)", file.display()))?;
    if rows as usize != vocab.size() {
        bail!(
            "{}: the checkpoint's vocabulary has {rows} entries but the tokenizer {} has {}",
            file.display(),
            tokenizer.unwrap_or(&own).display(),
            vocab.size()
        );
    }
    let config = recipe.model.config(vocab.size())?;
    let splits = splits(&recipe, &vocab)?;
    let task = TranslationTask::new(
        config,
        Parallel::default(),
        splits,
        recipe.train.batch_size,
        Specials::from(&vocab),
        device,
    )?;
    trainer::load_weights(task.var_store(), &saved, &file)?;
    Ok(LoadedRun { vocab, task })
}
