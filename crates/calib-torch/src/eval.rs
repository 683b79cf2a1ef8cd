//! `calib eval`: a run's predictions on its validation, test and OOD sets, and its calibration
//! report (metrics before and after temperature scaling, bootstrap intervals, reliability
//! diagrams, OOD AUROC before and after T).

use crate::tasks::Kind;
use anyhow::{Context, Result};
use calib_cli::args::eval::Args;
use calib_cli::output::{emit, Format};
use calib_cli::report::Bars;
use calib_report::report::{self, CalibrationReport};
use calib_train::device;
use calib_train::run::EpochLog;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The calibration report of the predictions in `pred`, written to `out`.
fn report_of(out: &Path, pred: &Path, bootstrap: usize) -> Result<CalibrationReport> {
    let opts = report::Options::new(vec![pred.to_path_buf()], out).with_bootstrap(bootstrap);
    Ok(report::build(&opts, &Bars::default())?)
}

/// The gradient-norm histograms a run probed (`train.probe_grad_norms`), at up to four epochs
/// from first to last, as `out/plots/grad-norms.svg`; None when it probed none.
fn grad_norm_plot(run: &Path, out: &Path, log: &[EpochLog]) -> Result<Option<PathBuf>> {
    let probed: Vec<_> = log.iter().filter_map(|e| e.grad_norms.clone().map(|g| (e.epoch, g))).collect();
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
    let config = calib_train::recipe::load(&run.join("config.toml"), &[])?;
    let loss = config.get("train").and_then(|t| t.get("loss")).and_then(|l| l.as_str()).unwrap_or("?");
    let title = format!("Per-sample gradient norms, {loss}");
    let path = out.join("plots/grad-norms.svg");
    std::fs::create_dir_all(out.join("plots")).with_context(|| format!("{}: cannot create plots/", out.display()))?;
    calib_report::plot::save(&path, &calib_report::plot::grad_norm_histograms(&series, &title)?)?;
    Ok(Some(path))
}

/// Evaluates a run; returns the report JSON and its terminal table. Everything is read and
/// checked (config, log, checkpoint) before the first file is written.
pub fn evaluate(a: &Args) -> Result<(serde_json::Value, String)> {
    let run = &a.weights.run;
    let kind = Kind::of_run(run)?;
    let log = calib_train::run::read_log(run)?;
    let device = device::select(crate::args::device(a.device))?;
    let checkpoint = a.weights.file();
    let out = a.out.as_deref().unwrap_or(run);
    if kind != Kind::Image {
        anyhow::ensure!(a.ood.is_empty(), "--ood applies to image runs; {} is not one", run.display());
    }
    // An image run's predictions also name its OOD sets, scored after the report.
    let (pred, image) = match kind {
        Kind::Translation => (calib_mt::run::predict(run, &checkpoint, out, device)?, None),
        Kind::Text => (calib_text::run::predict_docs(run, &checkpoint, out, device)?, None),
        Kind::Tree => (calib_text::run::predict_trees(run, &checkpoint, out, device)?, None),
        Kind::Image => {
            let p = calib_vision::run::predict(run, &checkpoint, &ood_sets(a)?, out, device)?;
            (p.dir.clone(), Some(p))
        }
    };
    let report = report_of(out, &pred, a.bootstrap)?;
    let (mut json, mut table) = (report.to_json()?, report.terminal_text());
    // Which weights were evaluated: the paper's tables name it (the official scripts evaluate the last epoch).
    json["checkpoint"] = json!(a.weights.checkpoint);
    if let Some(plot) = grad_norm_plot(run, out, &log)? {
        table.push_str(&format!("\ngradient norms of the last layer: {}", plot.display()));
    }
    if let Some(pred) = image.filter(|p| !p.ood.is_empty()) {
        let t = report.models.first().context("report without a model")?.temperature;
        let mut results = serde_json::Map::new();
        for r in calib_vision::run::ood_auroc(&pred, t)? {
            table.push_str(&format!(
                "\nOOD {}: AUROC (entropy) {:.2}% before, {:.2}% after T = {t}",
                r.name,
                100.0 * r.before.auroc_entropy,
                100.0 * r.after.auroc_entropy
            ));
            results.insert(r.name.clone(), json!({"before": r.before, "after": r.after, "n": r.n}));
        }
        json["ood"] = serde_json::Value::Object(results);
    }
    calib::atomic::write(&out.join("report.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    Ok((json, table))
}

/// The `--ood NAME=PATH` sets.
fn ood_sets(a: &Args) -> Result<Vec<(String, PathBuf)>> {
    a.ood
        .iter()
        .map(|o| {
            let (name, path) = o.split_once('=').with_context(|| format!("--ood {o}: expected NAME=PATH"))?;
            Ok((name.to_string(), PathBuf::from(path)))
        })
        .collect()
}

pub fn run(a: &Args, format: Format) -> Result<()> {
    let (json, table) = evaluate(a)?;
    emit(format, &json, || table)
}
