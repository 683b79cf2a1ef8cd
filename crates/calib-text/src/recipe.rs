//! Text recipes: `task = "text"` (20 Newsgroups and the Global Pooling CNN) and `task = "tree"`
//! (the SST binary task and the Tree-LSTM), with the data they name read into splits, the
//! vocabulary each run keeps (`vocab.txt`), and the GloVe matrix for it.

use crate::glove::{self, GloveOptions, Missing};
use crate::gpcnn::GpCnnConfig;
use crate::newsgroups::{self, EncodeOptions, Newsgroups, ReadOptions, Vocabulary};
use crate::sst::{self, Tree};
use crate::treelstm::TreeLstmConfig;
use calib_train::trainer::TrainConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// What can go wrong with a text recipe or run; every variant names the file or setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("{}: {problem}", path.display())]
    File { path: PathBuf, problem: String },
    #[error(transparent)]
    Glove(#[from] glove::Error),
    #[error(transparent)]
    Newsgroups(#[from] newsgroups::Error),
    #[error(transparent)]
    Sst(#[from] sst::Error),
    #[error(transparent)]
    Train(#[from] calib_train::Error),
    #[error(transparent)]
    Core(#[from] calib::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `task` key of document recipes (20 Newsgroups).
pub const DOC_KIND: &str = "text";
/// The `task` key of tree recipes (SST).
pub const TREE_KIND: &str = "tree";
/// The vocabulary a run keeps: one word a line, in row order after the reserved rows.
pub const VOCAB_FILE: &str = "vocab.txt";

fn d_vocab() -> usize {
    20_000
}
fn d_max_len() -> usize {
    1000
}
fn d_val() -> usize {
    newsgroups::VALIDATION_SIZE
}
fn d_split_seed() -> u64 {
    newsgroups::VALIDATION_SEED
}
fn d_dropout() -> f64 {
    0.5
}
fn d_memory() -> i64 {
    150
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocRecipe {
    /// Always `text`.
    pub task: String,
    pub data: DocData,
    #[serde(default)]
    pub model: DocModel,
    pub train: TrainConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocData {
    /// The folder holding `20news-bydate-train` and `20news-bydate-test` (`--data` overrides it).
    pub dir: PathBuf,
    /// GloVe vectors (`.txt` or `.txt.gz`), relative to the current folder.
    pub glove: PathBuf,
    /// Vocabulary words: the most frequent in the training documents.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// Ids per document (padded and truncated at the front, as the reference).
    #[serde(default = "d_max_len")]
    pub max_len: usize,
    /// Training documents held out for validation and temperature scaling, and the seed that
    /// picks them.
    #[serde(default = "d_val")]
    pub val_size: usize,
    #[serde(default = "d_split_seed")]
    pub split_seed: u64,
    /// scikit-learn's `remove=('footers', 'quotes')` (the reference keeps both).
    #[serde(default)]
    pub strip_footers: bool,
    #[serde(default)]
    pub strip_quotes: bool,
    /// Words GloVe lacks get U(±scale) (seeded by `train.seed`); 0 gives them zero vectors (the
    /// reference).
    #[serde(default)]
    pub missing_scale: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocModel {
    /// Fine-tune the embedding (the reference freezes it).
    #[serde(default)]
    pub train_embedding: bool,
    /// Dropout between the dense layer and the classifier.
    #[serde(default = "d_dropout")]
    pub dropout: f64,
}

impl Default for DocModel {
    fn default() -> Self {
        Self { train_embedding: false, dropout: d_dropout() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeRecipe {
    /// Always `tree`.
    pub task: String,
    pub data: TreeDataConfig,
    #[serde(default)]
    pub model: TreeModel,
    pub train: TrainConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeDataConfig {
    /// The folder of the PTB tree files (`--data` overrides it).
    pub dir: PathBuf,
    pub train: String,
    pub valid: String,
    pub test: Option<String>,
    /// GloVe vectors, relative to the current folder.
    pub glove: PathBuf,
    /// Look words up lowercased (GloVe 6B is lowercase; SST keeps case).
    #[serde(default = "yes")]
    pub lowercase: bool,
    /// Words GloVe lacks get U(±scale), seeded by `train.seed` (0: zero vectors).
    #[serde(default)]
    pub missing_scale: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeModel {
    #[serde(default = "d_memory")]
    pub memory: i64,
    /// Dropout on the word vectors and on the states the classifier reads.
    #[serde(default = "d_dropout")]
    pub dropout: f64,
}

impl Default for TreeModel {
    fn default() -> Self {
        Self { memory: d_memory(), dropout: d_dropout() }
    }
}

macro_rules! recipe_impl {
    ($recipe:ty, $kind:expr) => {
        impl calib_train::recipe::Recipe for $recipe {
            const KIND: &'static str = $kind;
            type Error = Error;
            fn task(&self) -> &str {
                &self.task
            }
            fn check(&self) -> Result<()> {
                self.validate()
            }
        }

        impl $recipe {
            /// Reads a recipe with `key=value` overrides applied (unknown keys are errors).
            pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
                Self::from_table(calib_train::recipe::load(path, overrides)?, path)
            }

            /// The recipe of a TOML table, checked.
            pub fn from_table(table: toml::Table, path: &Path) -> Result<Self> {
                calib_train::recipe::typed(table, path)
            }
        }
    };
}

recipe_impl!(DocRecipe, DOC_KIND);
recipe_impl!(TreeRecipe, TREE_KIND);

fn check_dropout(p: f64) -> Result<()> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Config(format!("model.dropout {p} must lie in [0, 1)")));
    }
    Ok(())
}

fn missing(scale: f32, seed: u64) -> Result<Missing> {
    if scale == 0.0 {
        Ok(Missing::Zero)
    } else if scale.is_finite() && scale > 0.0 {
        Ok(Missing::Uniform { scale, seed })
    } else {
        Err(Error::Config(format!("data.missing_scale {scale} must be at least 0")))
    }
}

/// The embedding matrix of `index` (word → row, `rows` rows) from the GloVe file, as a tensor;
/// `log` hears the coverage.
fn embedding(
    path: &Path,
    index: &HashMap<String, usize>,
    rows: usize,
    missing: Missing,
    log: &mut dyn FnMut(String),
) -> Result<tch::Tensor> {
    let e = glove::read(path, index, rows, &GloveOptions::new(missing))?;
    log(format!(
        "GloVe {}: {} of {} vocabulary words found ({:.1}%), {}-d",
        path.display(),
        e.found,
        e.vocabulary,
        100.0 * e.coverage(),
        e.dim
    ));
    Ok(tch::Tensor::from_slice(&e.vectors).view([e.rows as i64, e.dim as i64]))
}

/// Writes a vocabulary (`words` in row order) into a run folder.
pub fn save_vocab(run: &Path, words: &[String]) -> Result<()> {
    let mut text = words.join("\n");
    text.push('\n');
    Ok(calib::atomic::write(&run.join(VOCAB_FILE), text.as_bytes())?)
}

/// Reads a run's vocabulary; an empty line is an error naming it. (Words may hold any character
/// but a line end: SST has tokens with a no-break space, such as `2 1\/2`.)
pub fn load_vocab(run: &Path) -> Result<Vec<String>> {
    let path = run.join(VOCAB_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::File { path: path.clone(), problem: format!("cannot read: {e}") })?;
    text.lines()
        .enumerate()
        .map(|(i, w)| {
            if w.is_empty() {
                Err(Error::File { path: path.clone(), problem: format!("line {}: empty (one word a line)", i + 1) })
            } else {
                Ok(w.to_string())
            }
        })
        .collect()
}

/// The embedding rows a checkpoint holds; an error names both files when they differ from
/// `rows` (the vocabulary's).
pub fn check_rows(saved: &HashMap<String, tch::Tensor>, checkpoint: &Path, run: &Path, rows: usize) -> Result<()> {
    let found = saved.get("embedding").map(|t| t.size()[0]).ok_or_else(|| Error::File {
        path: checkpoint.into(),
        problem: "no embedding tensor (not a text checkpoint)".into(),
    })?;
    if found as usize != rows {
        return Err(Error::File {
            path: checkpoint.into(),
            problem: format!(
                "the checkpoint's embedding has {found} rows but the vocabulary {} gives {rows}",
                run.join(VOCAB_FILE).display()
            ),
        });
    }
    Ok(())
}

/// Documents read and encoded: every split, the vocabulary, the class names.
pub struct DocCorpus {
    pub splits: HashMap<String, newsgroups::Encoded>,
    pub vocabulary: Vocabulary,
    pub classes: Vec<String>,
}

impl DocRecipe {
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        check_dropout(self.model.dropout)?;
        missing(self.data.missing_scale, 0)?;
        let min = self.config(2, 1, 2).min_len();
        if self.data.max_len < min {
            return Err(Error::Config(format!(
                "data.max_len {} is shorter than the {min} ids the network's convolutions and pools need",
                self.data.max_len
            )));
        }
        if self.data.vocab_size == 0 || self.data.val_size == 0 {
            return Err(Error::Config("data.vocab_size and data.val_size must be at least 1".into()));
        }
        Ok(())
    }

    pub fn config(&self, rows: i64, dim: i64, classes: i64) -> GpCnnConfig {
        let mut c = GpCnnConfig::reference(rows, dim, classes);
        c.dropout = self.model.dropout;
        c.train_embedding = self.model.train_embedding;
        c
    }

    fn encode_options(&self) -> EncodeOptions {
        EncodeOptions::new(self.data.max_len)
    }

    /// Reads the corpus: the vocabulary is `words` when given (a trained run's), otherwise the
    /// training documents' most frequent words.
    pub fn corpus(&self, words: Option<Vec<String>>, log: &mut dyn FnMut(String)) -> Result<DocCorpus> {
        let options = ReadOptions::default()
            .with_footers(self.data.strip_footers)
            .with_quotes(self.data.strip_quotes)
            .with_validation(self.data.val_size, self.data.split_seed);
        let corpus = Newsgroups::read(&self.data.dir, &options)?;
        let vocabulary = match words {
            Some(words) => Vocabulary::from_words(words),
            None => Vocabulary::build(corpus.train.iter().map(|d| d.text.as_str()), self.data.vocab_size),
        };
        log(format!(
            "20 Newsgroups {}: {} training, {} validation, {} test documents; {} vocabulary words",
            self.data.dir.display(),
            corpus.train.len(),
            corpus.validation.len(),
            corpus.test.len(),
            vocabulary.words().len()
        ));
        let enc = |docs: &[newsgroups::Document]| newsgroups::encode(docs, &vocabulary, &self.encode_options());
        let splits = HashMap::from([
            ("train".to_string(), enc(&corpus.train)),
            ("val".to_string(), enc(&corpus.validation)),
            ("test".to_string(), enc(&corpus.test)),
        ]);
        Ok(DocCorpus { splits, vocabulary, classes: corpus.groups })
    }

    /// The GloVe matrix of a vocabulary.
    pub fn embedding(&self, vocabulary: &Vocabulary, log: &mut dyn FnMut(String)) -> Result<tch::Tensor> {
        let missing = missing(self.data.missing_scale, self.train.seed)?;
        embedding(&self.data.glove, vocabulary.index(), vocabulary.rows(), missing, log)
    }
}

/// The SST binary task read: every split's trees (neutral sentences dropped) and the vocabulary.
pub struct TreeCorpus {
    pub splits: HashMap<String, Vec<Tree>>,
    /// Word → row; row 0 is every unknown word.
    pub vocab: HashMap<String, i64>,
    /// The words in row order from row 1.
    pub words: Vec<String>,
}

impl TreeRecipe {
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        check_dropout(self.model.dropout)?;
        missing(self.data.missing_scale, 0)?;
        if self.model.memory < 1 {
            return Err(Error::Config(format!("model.memory {} must be at least 1", self.model.memory)));
        }
        Ok(())
    }

    pub fn config(&self, rows: i64, dim: i64) -> TreeLstmConfig {
        TreeLstmConfig { rows, dim, memory: self.model.memory, classes: 2, dropout: self.model.dropout }
    }

    /// Reads the trees; the vocabulary is `words` when given (a trained run's), otherwise every
    /// word of the three files (lowercased when the recipe says so), sorted: the embedding is
    /// fine-tuned from GloVe, so a word seen only in the test sentences keeps its GloVe vector.
    pub fn corpus(&self, words: Option<Vec<String>>, log: &mut dyn FnMut(String)) -> Result<TreeCorpus> {
        let mut files = vec![("train", &self.data.train), ("val", &self.data.valid)];
        if let Some(test) = &self.data.test {
            files.push(("test", test));
        }
        let mut splits = HashMap::new();
        for (name, file) in files {
            let path = self.data.dir.join(file);
            let all = sst::read_trees(&path)?;
            let total = all.len();
            let kept = sst::binary_trees(all);
            if kept.is_empty() {
                return Err(Error::File { path, problem: "no sentence with a non-neutral root".into() });
            }
            log(format!("{}: {} of {total} sentences in the binary task", path.display(), kept.len()));
            splits.insert(name.to_string(), kept);
        }
        let fold = |w: &str| if self.data.lowercase { w.to_lowercase() } else { w.to_string() };
        let words = match words {
            Some(w) => w,
            None => {
                let all: BTreeSet<String> = splits.values().flatten().flat_map(|t| t.words().map(fold)).collect();
                all.into_iter().collect()
            }
        };
        let vocab = words.iter().enumerate().map(|(i, w)| (w.clone(), i as i64 + 1)).collect();
        Ok(TreeCorpus { splits, vocab, words })
    }

    /// The GloVe matrix of the vocabulary (row 0, unknown words, stays zero).
    pub fn embedding(&self, corpus: &TreeCorpus, log: &mut dyn FnMut(String)) -> Result<tch::Tensor> {
        let missing = missing(self.data.missing_scale, self.train.seed)?;
        let index = corpus.vocab.iter().map(|(w, &i)| (w.clone(), i as usize)).collect();
        embedding(&self.data.glove, &index, corpus.words.len() + 1, missing, log)
    }
}
