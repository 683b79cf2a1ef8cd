//! `calib train`: a recipe, overrides, a run folder, and the shared trainer.

use crate::mt::MtRecipe;
use crate::recipe::{Plan, Recipe};
use anyhow::{Context, Result};
use calib_cli::args::train::Args;
use calib_cli::output::{emit, Format};
use calib_mt::task::{Specials, TranslationTask};
use calib_train::device::{self, DeviceRequest};
use calib_train::precision::Precision;
use calib_train::trainer;
use calib_vision::task::ImageTask;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The recipe values the options override.
trait Overrides {
    fn overrides(&self) -> Vec<String>;
}

impl Overrides for Args {
    fn overrides(&self) -> Vec<String> {
        let mut o = Vec::new();
        if let Some(l) = &self.loss {
            o.push(format!("train.loss=\"{l}\""));
        }
        if let Some(d) = &self.data {
            o.push(format!("data.dir=\"{}\"", d.display()));
        }
        if let Some(e) = self.epochs {
            o.push(format!("train.epochs={e}"));
        }
        if let Some(b) = self.batch_size {
            o.push(format!("train.batch_size={b}"));
        }
        if let Some(p) = self.precision.map(crate::args::precision) {
            o.push(format!("train.precision=\"{}\"", if p == Precision::Bf16 { "bf16" } else { "fp32" }));
        }
        o.extend(self.sets.iter().cloned());
        o
    }
}

/// Resolves the recipe and run folder of `a` (a resumed run reads its own config.toml).
pub fn resolve(a: &Args) -> Result<(Plan, PathBuf)> {
    if a.resume {
        let out = a.out.clone().context("--resume needs --out RUN_FOLDER")?;
        return Ok((Plan::load(&out.join("config.toml"), &a.overrides())?, out));
    }
    let path = a.recipe.as_ref().context("give --recipe FILE.toml (or --resume --out RUN)")?;
    let plan = Plan::load(path, &a.overrides())?;
    let out = a.out.clone().unwrap_or_else(|| {
        let stem = path.file_stem().map_or("run".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from("runs").join(format!("{stem}-{}", plan.train().loss.replace([':', ',', '='], "_")))
    });
    Ok((plan, out))
}

/// Refuses to overwrite a run (unless resuming it) and selects the device.
fn start(out: &Path, resume: bool, device: DeviceRequest) -> Result<tch::Device> {
    anyhow::ensure!(
        resume || !out.join("state.json").exists(),
        "{} already holds a run; use --resume to continue it or choose another --out",
        out.display()
    );
    device::select(device)
}

/// Trains; returns the run folder.
pub fn train(
    recipe: &Recipe,
    out: &Path,
    resume: bool,
    device: DeviceRequest,
    quiet: bool,
) -> Result<trainer::RunState> {
    let device = start(out, resume, device)?;
    // Initial weights come from libtorch's generator: seed it first, so a run is reproducible.
    tch::manual_seed(recipe.train.seed as i64);
    let task = ImageTask::new(
        recipe.splits()?,
        recipe.arch()?,
        recipe.train.batch_size,
        recipe.normalization()?,
        recipe.data.augment,
        device,
    )?;
    // The run folder is made only once the data has loaded, so a bad recipe leaves nothing behind.
    // On --resume the config is rewritten too: overrides (more epochs, …) must be what eval reads.
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create the run folder", out.display()))?;
    calib::atomic::write(&out.join("config.toml"), toml::to_string(recipe)?.as_bytes())?;
    trainer::fit(&task, &recipe.train, out, resume, quiet)
}

/// Trains a Transformer: the vocabulary (the recipe's, or trained and saved into the run
/// folder), the corpora read through it, then the shared trainer.
pub fn train_translation(
    recipe: &MtRecipe,
    out: &Path,
    resume: bool,
    device: DeviceRequest,
    quiet: bool,
) -> Result<trainer::RunState> {
    let device = start(out, resume, device)?;
    let vocab = recipe.vocab(out, resume, quiet)?;
    let (train, splits) = recipe.corpora(&vocab, quiet)?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create the run folder", out.display()))?;
    if !resume {
        calib_mt::tokenize::save(vocab.tokenizer(), &out.join("tokenizer.json"))?;
    }
    tch::manual_seed(recipe.train.seed as i64);
    let config = recipe.model.config(vocab.size())?;
    let task = TranslationTask::new(config, train, splits, recipe.train.batch_size, Specials::from(&vocab), device)?;
    calib::atomic::write(&out.join("config.toml"), toml::to_string(recipe)?.as_bytes())?;
    trainer::fit(&task, &recipe.train, out, resume, quiet)
}

pub fn run(a: &Args, format: Format) -> Result<()> {
    let (plan, out) = resolve(a)?;
    let state = match &plan {
        Plan::Image(recipe) => train(recipe, &out, a.resume, crate::args::device(a.device), a.quiet)?,
        Plan::Translation(recipe) => train_translation(recipe, &out, a.resume, crate::args::device(a.device), a.quiet)?,
    };
    let json = json!({"run": out, "epochs": state.epochs_done, "best_epoch": state.best_epoch, "best_value": state.best_value, "select_best_by": plan.train().select_best_by});
    emit(format, &json, || {
        format!(
            "trained {} for {} epochs; best {:?} at epoch {:?}",
            out.display(),
            state.epochs_done,
            plan.train().select_best_by,
            state.best_epoch
        )
    })
}
