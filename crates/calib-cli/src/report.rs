//! The calibration report of one or more models' predictions: for every model folder
//! (`val_logits.npy`, `val_labels.npy`, `test_logits.npy`, `test_labels.npy`, as `calib eval`
//! writes them) it chooses T on the validation split by the paper's ECE grid, reports test metrics
//! before and after scaling with bootstrap intervals, draws reliability diagrams, and writes
//! `report.json` and `report.md`. Used by `calib report`, `calib eval` and `calib quickstart`.

use crate::input;
use crate::output::{emit, Format};
use anyhow::{bail, Context, Result};
use calib::bootstrap::{self, Interval, MetricIntervals, Settings};
use calib::metrics::{self, Mode, Options, Report};
use calib::{temperature, ScoreKind};
use calib_report::plot;
use calib_report::table::{fixed, percent, render, Style};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// A model folder with val/test logits and labels, or a folder of such folders (repeatable).
    #[arg(long = "predictions", default_value = "data/predictions")]
    pub data: Vec<PathBuf>,
    /// Where report.json, report.md and plots/ go.
    #[arg(long, default_value = "runs/report")]
    pub out: PathBuf,
    /// Bootstrap resamples for the 90 % intervals.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 15)]
    pub bins: usize,
}

struct ModelResult {
    name: String,
    temperature: f64,
    before: Report,
    after: Report,
    ci_before: MetricIntervals,
    ci_after: MetricIntervals,
}

const FILES: [&str; 4] = ["val_logits.npy", "val_labels.npy", "test_logits.npy", "test_labels.npy"];

/// `data` itself when it holds predictions, else its sub-folders that do, sorted.
fn model_dirs(data: &Path) -> Result<Vec<PathBuf>> {
    let holds = |p: &Path| FILES.iter().all(|f| p.join(f).is_file());
    if holds(data) {
        return Ok(vec![data.to_path_buf()]);
    }
    let entries =
        std::fs::read_dir(data).with_context(|| format!("{}: cannot read the data folder", data.display()))?;
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| holds(p)).collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!("{}: no model folder with {} found", data.display(), FILES.join(", "));
    }
    Ok(dirs)
}

fn bar(len: usize, label: String) -> ProgressBar {
    let pb = ProgressBar::new(len as u64).with_message(label);
    pb.set_style(
        ProgressStyle::with_template("{msg:>34} [{bar:30}] {pos}/{len} resamples, {per_sec}, ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb
}

fn evaluate_model(dir: &Path, a: &Args) -> Result<ModelResult> {
    // A run's predictions live in runs/<name>/predictions: name the model after the run.
    let named = if dir.file_name().is_some_and(|f| f == "predictions") { dir.parent().unwrap_or(dir) } else { dir };
    let name = named.file_name().map_or("model".into(), |f| f.to_string_lossy().into_owned());
    let val = input::load::<f64>(&dir.join(FILES[0]), &dir.join(FILES[1]), ScoreKind::Logits)?;
    let test = input::load::<f64>(&dir.join(FILES[2]), &dir.join(FILES[3]), ScoreKind::Logits)?;
    let opts = Options { bins: a.bins, mode: Mode::Corrected, temperature: None };
    opts.validate()?;
    let t = temperature::grid_search(&val, opts.bins, opts.mode)?.t_ece;
    let scaled = Options { temperature: Some(t), ..opts };
    let settings = Settings { resamples: a.bootstrap, level: 0.9, seed: a.seed };
    let mut intervals = Vec::new();
    for (o, when) in [(&opts, "before"), (&scaled, "after")] {
        let pb = bar(a.bootstrap, format!("{name} {when}"));
        intervals.push(bootstrap::metrics_with_progress(&test, o, &settings, || pb.inc(1))?);
        pb.finish_and_clear();
    }
    let ci_after = intervals.pop().expect("two runs");
    let ci_before = intervals.pop().expect("two runs");
    Ok(ModelResult {
        name,
        temperature: t,
        before: metrics::evaluate(&test, &opts)?,
        after: metrics::evaluate(&test, &scaled)?,
        ci_before,
        ci_after,
    })
}

fn with_ci(v: f64, i: &Interval) -> String {
    format!("{} ({}–{})", percent(Some(v)), percent(Some(i.lower)), percent(Some(i.upper)))
}

fn table(results: &[ModelResult], style: Style) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                percent(Some(r.before.error)),
                fixed(r.before.nll, 3),
                with_ci(r.before.ece, &r.ci_before.ece),
                percent(Some(r.before.adaece)),
                percent(Some(r.before.classwise_ece)),
                format!("{:.1}", r.temperature),
                with_ci(r.after.ece, &r.ci_after.ece),
                percent(Some(r.after.adaece)),
                percent(Some(r.after.classwise_ece)),
                fixed(r.after.nll, 3),
            ]
        })
        .collect();
    let header = [
        "model",
        "error %",
        "NLL",
        "ECE % (90% CI)",
        "AdaECE %",
        "CW-ECE %",
        "T",
        "ECE % after T",
        "AdaECE % after",
        "CW-ECE % after",
        "NLL after",
    ];
    render(&header, &rows, style)
}

pub fn run(a: &Args, format: Format) -> Result<()> {
    let (json, table) = build(a)?;
    emit(format, &json, || table)
}

/// Writes the report files and returns the JSON and the terminal table.
pub fn build(a: &Args) -> Result<(serde_json::Value, String)> {
    Settings { resamples: a.bootstrap, level: 0.9, seed: a.seed }.validate()?;
    let mut dirs = Vec::new();
    for d in &a.data {
        dirs.extend(model_dirs(d)?);
    }
    let plots = a.out.join("plots");
    std::fs::create_dir_all(&plots).with_context(|| format!("{}: cannot create", plots.display()))?;
    let mut results = Vec::new();
    for dir in &dirs {
        let r = evaluate_model(dir, a)?;
        for (when, rep, label) in [
            ("before", &r.before, "before scaling".to_string()),
            ("after", &r.after, format!("T = {:.1}", r.temperature)),
        ] {
            let svg = plot::reliability_diagram(
                &rep.bins,
                &format!("{} {label}", r.name),
                &format!("ECE {}%", percent(Some(rep.ece))),
            )?;
            plot::save(&plots.join(format!("{}-{when}.svg", r.name)), &svg)?;
        }
        results.push(r);
    }
    let json = json!({
        "predictions": a.data,
        "bins": a.bins,
        "mode": Mode::Corrected,
        "temperature_method": "ece-grid on the validation split",
        "bootstrap": {"resamples": a.bootstrap, "level": 0.9, "seed": a.seed},
        "models": results.iter().map(|r| json!({
            "name": r.name, "temperature": r.temperature,
            "before": r.before, "after": r.after, "ci_before": r.ci_before, "ci_after": r.ci_after,
        })).collect::<Vec<_>>(),
    });
    calib::atomic::write(&a.out.join("report.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    let md = format!(
        "# Calibration report\n\nTest-set metrics of the predictions in {} before and after temperature scaling \
         (T chosen on the validation split by the paper's ECE grid; {} bins, corrected mode; 90 % bootstrap intervals \
         from {} resamples, seed {}).\n\n{}\n\nReliability diagrams: `plots/<model>-before.svg`, `plots/<model>-after.svg`.\n",
        a.data.iter().map(|d| format!("`{}`", d.display())).collect::<Vec<_>>().join(", "),
        a.bins,
        a.bootstrap,
        a.seed,
        table(&results, Style::Markdown)
    );
    calib::atomic::write(&a.out.join("report.md"), md.as_bytes())?;
    let text =
        format!("{}\nwrote {}/report.json, report.md and plots/", table(&results, Style::Terminal), a.out.display());
    Ok((json, text))
}
