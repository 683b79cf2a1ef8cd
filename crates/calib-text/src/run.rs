//! Text runs: training a recipe into a run folder (its vocabulary saved beside the weights) and
//! writing a trained run's predictions on its validation and test sets. The binary only
//! dispatches here.

use crate::recipe::{check_rows, load_vocab, save_vocab, DocRecipe, Error, Result, TreeRecipe};
use crate::task::{DocData, DocTask, TreeData, TreeTask};
use calib_train::checkpoint;
use calib_train::run::RunState;
use calib_train::task::{Data, Task};
use calib_train::trainer::{self, Fit, TrainConfig};
use std::path::{Path, PathBuf};

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::File { path: dir.into(), problem: format!("cannot create: {e}") })
}

/// The vocabulary a resumed run was trained with (a fresh run builds its own).
fn resumed_words(out: &Path, resume: bool) -> Result<Option<Vec<String>>> {
    resume.then(|| load_vocab(out)).transpose()
}

/// A fresh 20 Newsgroups task: the corpus read (through `words` when given, else a vocabulary
/// built from it), the GloVe matrix, the network from the recipe's seed. Returns the vocabulary
/// too.
pub fn doc_task(
    recipe: &DocRecipe,
    words: Option<Vec<String>>,
    device: tch::Device,
    log: &mut dyn FnMut(String),
) -> Result<(DocTask, Vec<String>)> {
    let corpus = recipe.corpus(words, log)?;
    let embedding = recipe.embedding(&corpus.vocabulary, log)?;
    let (rows, dim) = (embedding.size()[0], embedding.size()[1]);
    tch::manual_seed(recipe.train.seed as i64);
    let config = recipe.config(rows, dim, corpus.classes.len() as i64);
    let words = corpus.vocabulary.words().to_vec();
    Ok((DocTask::new(&config, &embedding, DocData::new(corpus.splits, recipe.train.batch_size), device), words))
}

/// A fresh SST task (see [`doc_task`]).
pub fn tree_task(
    recipe: &TreeRecipe,
    words: Option<Vec<String>>,
    device: tch::Device,
    log: &mut dyn FnMut(String),
) -> Result<(TreeTask, Vec<String>)> {
    let corpus = recipe.corpus(words, log)?;
    let embedding = recipe.embedding(&corpus, log)?;
    let (rows, dim) = (embedding.size()[0], embedding.size()[1]);
    tch::manual_seed(recipe.train.seed as i64);
    let data = TreeData::new(corpus.splits, corpus.vocab, recipe.data.lowercase, recipe.train.batch_size)?;
    Ok((TreeTask::new(&recipe.config(rows, dim), &embedding, data, device), corpus.words))
}

/// Makes the run folder, keeps the vocabulary (a fresh run) and the recipe, and trains.
fn fit_task<T: Task>(
    task: &T,
    words: &[String],
    recipe: &impl serde::Serialize,
    train: &TrainConfig,
    out: &Path,
    fit: Fit<'_>,
    resume: bool,
) -> Result<RunState> {
    create_dir(out)?;
    if !resume {
        save_vocab(out, words)?;
    }
    Ok(fit.resume(resume).config(calib_train::recipe::encode(recipe)?).run(task, train, out)?)
}

/// Trains a 20 Newsgroups recipe into `out`. The data is read and the model built before the run
/// folder is made, so bad data leaves nothing behind.
pub fn train_docs(
    recipe: &DocRecipe,
    out: &Path,
    device: tch::Device,
    fit: Fit<'_>,
    resume: bool,
    log: &mut dyn FnMut(String),
) -> Result<RunState> {
    let (task, words) = doc_task(recipe, resumed_words(out, resume)?, device, log)?;
    fit_task(&task, &words, recipe, &recipe.train, out, fit, resume)
}

/// Trains an SST recipe into `out` (see [`train_docs`]).
pub fn train_trees(
    recipe: &TreeRecipe,
    out: &Path,
    device: tch::Device,
    fit: Fit<'_>,
    resume: bool,
    log: &mut dyn FnMut(String),
) -> Result<RunState> {
    let (task, words) = tree_task(recipe, resumed_words(out, resume)?, device, log)?;
    fit_task(&task, &words, recipe, &recipe.train, out, fit, resume)
}

/// Streams `task`'s validation and test predictions to `out/predictions/`.
fn write_predictions<T: Task>(task: &T, out: &Path) -> Result<PathBuf> {
    let dir = out.join("predictions");
    create_dir(&dir)?;
    for split in ["val", "test"] {
        if task.data().has_split(split) {
            trainer::predict_to(task, split, &dir)?;
        }
    }
    Ok(dir)
}

/// The checkpoint's tensors, checked against the run's vocabulary (`rows` embedding rows).
fn checked(run: &Path, checkpoint_file: &Path, rows: usize) -> Result<std::collections::HashMap<String, tch::Tensor>> {
    let saved = checkpoint::load_tensors(checkpoint_file)?;
    check_rows(&saved, checkpoint_file, run, rows)?;
    Ok(saved)
}

fn embedding_dim(saved: &std::collections::HashMap<String, tch::Tensor>) -> i64 {
    saved["embedding"].size()[1]
}

/// Loads a 20 Newsgroups run with `checkpoint_file` and writes its predictions to
/// `out/predictions/`; returns that folder. Nothing is written when the vocabulary and checkpoint
/// disagree.
pub fn predict_docs(run: &Path, checkpoint_file: &Path, out: &Path, device: tch::Device) -> Result<PathBuf> {
    let recipe = DocRecipe::load(&run.join("config.toml"), &[])?;
    let words = load_vocab(run)?;
    let rows = words.len() + 2;
    let saved = checked(run, checkpoint_file, rows)?;
    let corpus = recipe.corpus(Some(words), &mut |_| {})?;
    let config = recipe.config(rows as i64, embedding_dim(&saved), corpus.classes.len() as i64);
    let placeholder = tch::Tensor::zeros([rows as i64, config.dim], (tch::Kind::Float, tch::Device::Cpu));
    let task = DocTask::new(&config, &placeholder, DocData::new(corpus.splits, recipe.train.batch_size), device);
    trainer::load_weights(task.var_store(), &saved, checkpoint_file)?;
    write_predictions(&task, out)
}

/// Loads an SST run with `checkpoint_file` and writes its root-level predictions to
/// `out/predictions/`; returns that folder.
pub fn predict_trees(run: &Path, checkpoint_file: &Path, out: &Path, device: tch::Device) -> Result<PathBuf> {
    let recipe = TreeRecipe::load(&run.join("config.toml"), &[])?;
    let words = load_vocab(run)?;
    let rows = words.len() + 1;
    let saved = checked(run, checkpoint_file, rows)?;
    let corpus = recipe.corpus(Some(words), &mut |_| {})?;
    let config = recipe.config(rows as i64, embedding_dim(&saved));
    let placeholder = tch::Tensor::zeros([rows as i64, config.dim], (tch::Kind::Float, tch::Device::Cpu));
    let data = TreeData::new(corpus.splits, corpus.vocab, recipe.data.lowercase, recipe.train.batch_size)?;
    let task = TreeTask::new(&config, &placeholder, data, device);
    trainer::load_weights(task.var_store(), &saved, checkpoint_file)?;
    write_predictions(&task, out)
}
