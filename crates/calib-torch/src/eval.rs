//! `calib eval`: a run's predictions on its validation, test and OOD sets, and its calibration
//! report (metrics before and after temperature scaling, bootstrap intervals, reliability
//! diagrams, OOD AUROC before and after T).

use crate::mt::{self, RunArgs};
use crate::recipe::{Plan, Recipe};
use anyhow::{Context, Result};
use calib::{npy, ood, ScoreKind, Scores};
use calib_cli::args::eval::Args;
use calib_cli::output::{emit, Format};
use calib_cli::report::Bars;
use calib_report::report::{self, CalibrationReport};
use calib_train::checkpoint;
use calib_train::device::{self, DeviceRequest};
use calib_train::trainer::{self, Task};
use calib_vision::task::ImageTask;
use serde_json::json;
use std::path::{Path, PathBuf};

fn save_split(dir: &Path, split: &str, logits: &tch::Tensor, targets: &tch::Tensor) -> Result<()> {
    let (n, k) = (logits.size()[0] as usize, logits.size()[1] as usize);
    npy::write(&dir.join(format!("{split}_logits.npy")), &[n, k], &Vec::<f32>::try_from(logits.flatten(0, -1))?)?;
    npy::write(&dir.join(format!("{split}_labels.npy")), &[n], &Vec::<i64>::try_from(targets)?)?;
    Ok(())
}

fn scores(logits: &tch::Tensor) -> Result<Scores<f64>> {
    let (n, k) = (logits.size()[0] as usize, logits.size()[1] as usize);
    Ok(Scores::new(
        Vec::<f64>::try_from(logits.to_kind(tch::Kind::Double).flatten(0, -1))?,
        k,
        &vec![0; n],
        ScoreKind::Logits,
    )?)
}

/// Loads a run's checkpoint and writes its val/test predictions to `run/predictions/`; returns
/// the task (for more splits) and that folder.
pub fn write_predictions(weights: &RunArgs, ood: &[String], device: DeviceRequest) -> Result<(ImageTask, PathBuf)> {
    let run = &weights.run;
    let recipe = Recipe::load(&run.join("config.toml"), &[])?;
    let mut splits = recipe.splits()?;
    anyhow::ensure!(splits.test.is_some(), "{}: the recipe has no test set", run.display());
    for o in ood {
        let (name, path) = o.split_once('=').with_context(|| format!("--ood {o}: expected NAME=PATH"))?;
        let images = recipe.read_ood(Path::new(path))?.resized(splits.train.height, splits.train.width);
        splits.ood.push((name.to_string(), images));
    }
    let device = device::select(device)?;
    let task = ImageTask::new(splits, recipe.arch()?, recipe.train.batch_size, recipe.normalization()?, false, device)?;
    let file = weights.file();
    trainer::load_weights(task.var_store(), &checkpoint::load_tensors(&file)?, &file)?;
    let pred = run.join("predictions");
    std::fs::create_dir_all(&pred).with_context(|| format!("{}: cannot create", pred.display()))?;
    for split in ["val", "test"] {
        let (l, t) = trainer::predict(&task, split)?;
        save_split(&pred, split, &l, &t)?;
    }
    Ok((task, pred))
}

/// Token-level predictions of a translation run (one row per teacher-forced target token,
/// padding dropped) on its validation and test sets, in `run/predictions/`.
fn write_translation_predictions(weights: &RunArgs, device: DeviceRequest) -> Result<PathBuf> {
    let device = device::select(device)?;
    let loaded = mt::load_run(weights, None, device, |recipe, vocab| recipe.eval_splits(vocab))?;
    let pred = weights.run.join("predictions");
    std::fs::create_dir_all(&pred).with_context(|| format!("{}: cannot create", pred.display()))?;
    for split in ["val", "test"] {
        let (l, t) = trainer::predict(&loaded.task, split)?;
        save_split(&pred, split, &l, &t)?;
    }
    Ok(pred)
}

fn report_of(run: &Path, pred: &Path, bootstrap: usize) -> Result<CalibrationReport> {
    let opts = report::Options::new(vec![pred.to_path_buf()], run).with_bootstrap(bootstrap);
    Ok(report::build(&opts, &Bars::default())?)
}

/// The gradient-norm histograms a run probed (`train.probe_grad_norms`), at up to four epochs
/// from first to last, as `plots/grad-norms.svg`; None when it probed none.
fn grad_norm_plot(run: &Path) -> Result<Option<PathBuf>> {
    let probed: Vec<_> =
        trainer::read_log(run)?.into_iter().filter_map(|e| e.grad_norms.map(|g| (e.epoch, g))).collect();
    if probed.is_empty() {
        return Ok(None);
    }
    let last = probed.len() - 1;
    let mut picks: Vec<usize> = (0..4).map(|i| i * last / 3).collect();
    picks.dedup();
    let series: Vec<_> = picks
        .into_iter()
        .map(|i| {
            let (epoch, g) = &probed[i];
            (format!("epoch {epoch} (median {:.2e})", g.median), g.log10_edges.clone(), g.counts.clone())
        })
        .collect();
    let recipe = Recipe::load(&run.join("config.toml"), &[])?;
    let title = format!("Per-sample gradient norms, {}", recipe.train.loss);
    let path = run.join("plots/grad-norms.svg");
    std::fs::create_dir_all(run.join("plots")).with_context(|| format!("{}: cannot create plots/", run.display()))?;
    calib_report::plot::save(&path, &calib_report::plot::grad_norm_histograms(&series, &title)?)?;
    Ok(Some(path))
}

/// Evaluates a run; returns the report JSON and its terminal table.
pub fn evaluate(a: &Args) -> Result<(serde_json::Value, String)> {
    if let Plan::Translation(_) = Plan::load(&a.weights.run.join("config.toml"), &[])? {
        anyhow::ensure!(
            a.ood.is_empty(),
            "--ood applies to image runs; {} is a translation run",
            a.weights.run.display()
        );
        let pred = write_translation_predictions(&a.weights, crate::args::device(a.device))?;
        let report = report_of(&a.weights.run, &pred, a.bootstrap)?;
        return Ok((report.to_json()?, report.terminal_text()));
    }
    let (task, pred) = write_predictions(&a.weights, &a.ood, crate::args::device(a.device))?;
    let names: Vec<String> = task.splits().ood.iter().map(|(n, _)| n.clone()).collect();
    let report = report_of(&a.weights.run, &pred, a.bootstrap)?;
    let (mut json, mut table) = (report.to_json()?, report.terminal_text());
    if let Some(plot) = grad_norm_plot(&a.weights.run)? {
        table.push_str(&format!("\ngradient norms of the last layer: {}", plot.display()));
    }
    if !names.is_empty() {
        let t = report.models.first().context("report without a model")?.temperature;
        // The test logits write_predictions saved, rather than a second forward pass.
        let saved = calib::npy::read_floats(&pred.join("test_logits.npy"), 2, "logits")?;
        let k = saved.shape()[1];
        let n = saved.shape()[0];
        let inside = Scores::<f64>::from_values(saved.values, k, &vec![0; n], ScoreKind::Logits)?;
        let mut results = serde_json::Map::new();
        for name in &names {
            let split = format!("ood-{name}");
            let (l, y) = trainer::predict(&task, &split)?;
            save_split(&pred, &split, &l, &y)?;
            let out = scores(&l)?;
            let before = ood::ood_auroc(&inside, &out, None)?;
            let after = ood::ood_auroc(&inside, &out, Some(t))?;
            table.push_str(&format!(
                "\nOOD {name}: AUROC (entropy) {:.2}% before, {:.2}% after T = {t}",
                100.0 * before.auroc_entropy,
                100.0 * after.auroc_entropy
            ));
            results.insert(name.clone(), json!({"before": before, "after": after, "n": out.n()}));
        }
        json["ood"] = serde_json::Value::Object(results);
        calib::atomic::write(&a.weights.run.join("report.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    }
    Ok((json, table))
}

pub fn run(a: &Args, format: Format) -> Result<()> {
    let (json, table) = evaluate(a)?;
    emit(format, &json, || table)
}
