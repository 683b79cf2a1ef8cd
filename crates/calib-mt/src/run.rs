//! Translation runs: training a recipe into a run folder (the vocabulary, trained or given, saved
//! with it), loading a trained run for decoding and studies, and writing its token-level
//! predictions. The binary only dispatches here.

use crate::data::Parallel;
use crate::recipe::MtRecipe;
pub use crate::recipe::{Error, Result};
use crate::task::{Specials, TranslationData, TranslationTask};
use crate::tokenize::Vocab;
use calib_train::checkpoint;
use calib_train::run::RunState;
use calib_train::task::{Data, Task};
use calib_train::trainer::{self, Fit};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Trains `recipe` into `out`: the vocabulary (the recipe's, or trained and saved into the run
/// folder), the corpora read through it, then the shared trainer. `log` hears what was read.
/// Bad data leaves no run folder behind.
pub fn train(
    recipe: &MtRecipe,
    out: &Path,
    device: tch::Device,
    fit: Fit<'_>,
    resume: bool,
    log: &mut dyn FnMut(String),
) -> Result<RunState> {
    let vocab = recipe.vocab(out, resume, log)?;
    let (train, splits) = recipe.corpora(&vocab, log)?;
    let data = TranslationData::new(train, splits, recipe.train.batch_size, Specials::from(&vocab))?;
    std::fs::create_dir_all(out)
        .map_err(|e| Error::File { path: out.to_path_buf(), problem: format!("cannot create the run folder: {e}") })?;
    if !resume {
        crate::tokenize::save(vocab.tokenizer(), &out.join("tokenizer.json"))?;
    }
    tch::manual_seed(recipe.train.seed as i64);
    let task = TranslationTask::new(recipe.model.for_vocab(&vocab)?, data, device);
    Ok(fit.resume(resume).config(calib_train::recipe::encode(recipe)?).run(&task, &recipe.train, out)?)
}

/// A trained run ready to translate: its recipe, its vocabulary (the run's own, or another
/// tokenizer with the same entries) and the task holding the model with the checkpoint's weights.
pub struct LoadedRun {
    pub recipe: MtRecipe,
    pub vocab: Vocab,
    pub task: TranslationTask,
}

/// Loads `run` with the weights of `checkpoint_file`; `tokenizer` replaces the run's own
/// vocabulary (it must have the same entries); `splits` reads the evaluation data through the
/// run's recipe and vocabulary.
pub fn load(
    run: &Path,
    checkpoint_file: &Path,
    tokenizer: Option<&Path>,
    device: tch::Device,
    splits: impl FnOnce(&MtRecipe, &Vocab) -> Result<HashMap<String, Parallel>>,
) -> Result<LoadedRun> {
    let recipe = MtRecipe::load(&run.join("config.toml"), &[])?;
    let own = run.join("tokenizer.json");
    let vocab = Vocab::load(&own)?;
    let vocab = match tokenizer {
        Some(p) => {
            let other = Vocab::load(p)?;
            if !other.same_entries(&vocab) {
                return Err(Error::File {
                    path: p.to_path_buf(),
                    problem: format!(
                        "this tokenizer ({} entries) does not match the vocabulary the run was trained with ({}, {} entries)",
                        other.size(),
                        own.display(),
                        vocab.size()
                    ),
                });
            }
            other
        }
        None => vocab,
    };
    let saved = checkpoint::load_tensors(checkpoint_file)?;
    let file_error = |problem: String| Error::File { path: checkpoint_file.to_path_buf(), problem };
    let rows = saved
        .get("embed")
        .map(|t| t.size()[0])
        .ok_or_else(|| file_error("no embed tensor (not a translation checkpoint)".into()))?;
    if rows as usize != vocab.size() {
        return Err(file_error(format!(
            "the checkpoint's vocabulary has {rows} entries but the tokenizer {} has {}",
            tokenizer.unwrap_or(&own).display(),
            vocab.size()
        )));
    }
    let config = recipe.model.for_vocab(&vocab)?;
    let splits = splits(&recipe, &vocab)?;
    let data = TranslationData::new(Parallel::default(), splits, recipe.train.batch_size, Specials::from(&vocab))?;
    let task = TranslationTask::new(config, data, device);
    trainer::load_weights(task.var_store(), &saved, checkpoint_file)?;
    Ok(LoadedRun { recipe, vocab, task })
}

/// Token-level predictions of a run (one row per teacher-forced target token, padding dropped)
/// on its validation and test sets, streamed to `out/predictions/`; returns that folder.
pub fn predict(run: &Path, checkpoint_file: &Path, out: &Path, device: tch::Device) -> Result<PathBuf> {
    let loaded = load(run, checkpoint_file, None, device, |recipe, vocab| recipe.eval_splits(vocab))?;
    let dir = out.join("predictions");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::File { path: dir.clone(), problem: format!("cannot create: {e}") })?;
    for split in ["val", "test"] {
        if loaded.task.data().has_split(split) {
            trainer::predict_to(&loaded.task, split, &dir)?;
        }
    }
    Ok(dir)
}
