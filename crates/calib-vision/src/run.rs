//! Image runs: training a recipe into a run folder, and evaluating a trained run (its
//! predictions on the validation, test and out-of-distribution sets, and the OOD AUROC before and
//! after temperature scaling). The binary only dispatches here.

use crate::recipe::Recipe;
use crate::task::ImageTask;
use crate::{Error, Result};
use calib::{npy, ood, ScoreKind, Scores};
use calib_train::checkpoint;
use calib_train::run::RunState;
use calib_train::task::Task;
use calib_train::trainer::{self, Fit};
use serde::Serialize;
use std::path::{Path, PathBuf};

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Input { path: dir.display().to_string(), problem: format!("cannot create: {e}") })
}

/// Trains `recipe` into `out` on `device` (resuming when `fit` says so). The data is read and
/// the model built before the run folder is made, so a bad recipe leaves nothing behind. On
/// resume the config is rewritten too (once the checkpoint has loaded): overrides (more epochs, …) must be what eval reads.
pub fn train(recipe: &Recipe, out: &Path, device: tch::Device, fit: Fit<'_>) -> Result<RunState> {
    // Initial weights come from libtorch's generator: seed it first, so a run is reproducible.
    tch::manual_seed(recipe.train.seed as i64);
    let task = ImageTask::new(
        recipe.splits()?,
        recipe.arch()?,
        recipe.train.batch_size,
        recipe.normalization()?,
        recipe.data.augment,
        device,
    )?
    .channels_last(recipe.model.channels_last);
    create_dir(out)?;
    Ok(fit.config(calib_train::recipe::encode(recipe)?).run(&task, &recipe.train, out)?)
}

/// What [`predict`] wrote.
pub struct Predictions {
    /// `RUN/predictions`, with `{val,test,ood-NAME}_{logits,labels}.npy`.
    pub dir: PathBuf,
    /// The OOD sets' names.
    pub ood: Vec<String>,
}

/// Loads the run's `checkpoint` (a file) and streams its val, test and OOD predictions to
/// `out/predictions/`. `ood` are `(name, path)` pairs (see [`Recipe::read_ood`]).
pub fn predict(
    run: &Path,
    checkpoint_file: &Path,
    ood: &[(String, PathBuf)],
    out: &Path,
    device: tch::Device,
) -> Result<Predictions> {
    let recipe = Recipe::load(&run.join("config.toml"), &[])?;
    let mut splits = recipe.splits()?;
    if splits.test.is_none() {
        return Err(Error::Config(format!("{}: the recipe has no test set", run.display())));
    }
    for (name, path) in ood {
        let images = recipe.read_ood(path)?.resized(splits.train.height, splits.train.width);
        splits.ood.push((name.clone(), images));
    }
    let task = ImageTask::new(splits, recipe.arch()?, recipe.train.batch_size, recipe.normalization()?, false, device)?
        .channels_last(recipe.model.channels_last);
    trainer::load_weights(task.var_store(), &checkpoint::load_tensors(checkpoint_file)?, checkpoint_file)?;
    let dir = out.join("predictions");
    create_dir(&dir)?;
    let names: Vec<String> = ood.iter().map(|(n, _)| n.clone()).collect();
    for split in ["val".to_string(), "test".to_string()].into_iter().chain(names.iter().map(|n| format!("ood-{n}"))) {
        trainer::predict_to(&task, &split, &dir)?;
    }
    Ok(Predictions { dir, ood: names })
}

/// OOD detection of one set against the test set: AUROC by entropy and by confidence, before and
/// after temperature scaling.
#[derive(Debug, Clone, Serialize)]
pub struct OodResult {
    pub name: String,
    pub n: usize,
    pub before: ood::OodAuroc,
    pub after: ood::OodAuroc,
}

fn logits(dir: &Path, split: &str) -> Result<Scores<f64>> {
    let saved = npy::read_floats(&dir.join(format!("{split}_logits.npy")), 2, "logits")?;
    let (n, k) = (saved.shape()[0], saved.shape()[1]);
    Ok(Scores::<f64>::from_values(saved.values, k, &vec![0; n], ScoreKind::Logits)?)
}

/// The OOD AUROC of every set [`predict`] wrote, with the test set as in-distribution, before and
/// after dividing the logits by `temperature`.
pub fn ood_auroc(predictions: &Predictions, temperature: f64) -> Result<Vec<OodResult>> {
    let inside = logits(&predictions.dir, "test")?;
    predictions
        .ood
        .iter()
        .map(|name| {
            let out = logits(&predictions.dir, &format!("ood-{name}"))?;
            Ok(OodResult {
                name: name.clone(),
                n: out.n(),
                before: ood::ood_auroc(&inside, &out, None)?,
                after: ood::ood_auroc(&inside, &out, Some(temperature))?,
            })
        })
        .collect()
}
