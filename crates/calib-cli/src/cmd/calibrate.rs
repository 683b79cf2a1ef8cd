//! `calib calibrate`: a post-hoc calibrator fitted on validation predictions, metrics before and
//! after; `calib apply`: a saved calibrator on new rows.

use anyhow::{anyhow, bail, ensure, Result};
use calib::calibrators::{self, Calibrator, Fitted, Judged, Method, Predictions, Saved};
use calib::metrics::Report;
use calib::temperature::{self, Method as TMethod};
use calib::{metrics, npy, Real, ScoreKind, Scores};
use calib_cli::args::calibrate::{ApplyArgs, Args};
use calib_cli::input::{self, Precision};
use calib_cli::output::{emit, metric_rows, Format};
use calib_report::table::{fixed, percent, render, Style};
use serde_json::json;
use std::path::Path;

pub fn run(a: &Args, format: Format) -> Result<()> {
    if a.method == "all" {
        ensure!(a.save.is_none() && a.save_probs.is_none(), "--save and --save-probs need one --method, not all");
        return run_all(a, format);
    }
    let method: Method = a.method.parse()?;
    match (method, a.settings.precision) {
        (Method::Temperature(m), Precision::F64) if !a.probs => run_temperature::<f64>(a, m, format),
        (Method::Temperature(m), Precision::F32) if !a.probs => run_temperature::<f32>(a, m, format),
        _ => run_method(a, method, format),
    }
}

fn kind(probs: bool) -> ScoreKind {
    if probs {
        ScoreKind::Probs
    } else {
        ScoreKind::Logits
    }
}

/// The validation scores and, when given, the test scores (with the same number of classes).
fn load_sets<F: Real>(a: &Args) -> Result<(Scores<F>, Option<Scores<F>>)> {
    let kind = kind(a.probs);
    let val = input::load::<F>(&a.val_logits, &a.val_labels, kind)?;
    let test = match (&a.logits, &a.labels) {
        (Some(l), Some(y)) => Some(input::load::<F>(l, y, kind)?),
        _ => None,
    };
    if let (Some(t), Some(l)) = (&test, &a.logits) {
        ensure!(
            t.k() == val.k(),
            "{} has {} classes but {} has {}",
            a.val_logits.display(),
            val.k(),
            l.display(),
            t.k()
        );
    }
    Ok((val, test))
}

/// Saves what `--save` and `--save-probs` ask for.
fn save_outputs(a: &Args, saved: &Saved, target: &Predictions) -> Result<()> {
    if let Some(path) = &a.save {
        saved.save(path)?;
    }
    if let Some(path) = &a.save_probs {
        let p = saved.transform(target)?;
        npy::write(path, &[target.n(), target.k()], &p)?;
    }
    Ok(())
}

/// The rows whose calibrated probabilities `--save-probs` writes: the test rows, else validation.
fn evaluated_on(a: &Args) -> &'static str {
    if a.logits.is_some() {
        "test"
    } else {
        "validation"
    }
}

fn plot(dir: &Path, before: &Report, after: &Report, label: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow!("{}: cannot create: {e}", dir.display()))?;
    for (name, r, label) in [("before", before, "before calibration".to_string()), ("after", after, label.to_string())]
    {
        let svg = calib_report::plot::reliability_diagram(&r.bins, &label, &format!("ECE {}%", percent(Some(r.ece))))?;
        calib_report::plot::save(&dir.join(format!("reliability-{name}.svg")), &svg)?;
    }
    Ok(())
}

/// Temperature scaling on logits, in the chosen precision (the paper's pipeline in f32).
fn run_temperature<F: Real>(a: &Args, method: TMethod, format: Format) -> Result<()> {
    let opts = a.settings.options(None)?;
    let (val, test) = load_sets::<F>(a)?;
    let grid = match method {
        TMethod::EceGrid | TMethod::NllGrid => Some(temperature::grid_search(&val, opts.bins, opts.mode)?),
        TMethod::Nll => None,
    };
    let t = match (&grid, method) {
        (Some(g), TMethod::EceGrid) => g.t_ece,
        (Some(g), _) => g.t_nll,
        (None, _) => temperature::fit_nll(&val)?,
    };
    let target = test.as_ref().unwrap_or(&val);
    let before = metrics::evaluate(target, &opts)?;
    let after = metrics::evaluate(target, &opts.with_temperature(t))?;
    let fitted =
        Fitted::Temperature(calib::calibrators::temperature::TemperatureScaling { classes: val.k(), temperature: t });
    let saved = Saved::new(method.name(), ScoreKind::Logits, fitted);
    if a.save.is_some() || a.save_probs.is_some() {
        save_outputs(a, &saved, &Predictions::of_scores(target))?;
    }
    if let Some(dir) = &a.plot_dir {
        plot(dir, &before, &after, &format!("T = {t:.2}"))?;
    }
    let json = json!({
        "temperature": t,
        "method": method,
        "mode": opts.mode,
        "precision": a.settings.precision,
        "evaluated_on": evaluated_on(a),
        "before": before,
        "after": after,
        "grid": grid.as_ref().map(|g| &g.points),
        "calibrator": saved,
    });
    emit(format, &json, || {
        format!(
            "T = {t} ({}, chosen on {} validation samples); metrics on the {} set\n{}",
            a.method,
            val.n(),
            evaluated_on(a),
            render(&["metric", "before", "after"], &metric_rows(&[&before, &after]), Style::Terminal)
        )
    })
}

/// Any method on logits or probabilities (computed in f64).
fn run_method(a: &Args, method: Method, format: Format) -> Result<()> {
    let opts = a.settings.options(None)?;
    let (val, test) = load_sets::<f64>(a)?;
    let target = test.as_ref().unwrap_or(&val);
    let val_rows = Predictions::of_scores(&val);
    let o = calibrators::fit_and_judge(method, &val_rows, val.labels(), target, &opts)
        .map_err(|e| anyhow!("{} / {}: {method}: {e}", a.val_logits.display(), a.val_labels.display()))?;
    save_outputs(a, &o.saved, &Predictions::of_scores(target))?;
    let before = metrics::evaluate(target, &opts)?;
    if let Some(dir) = &a.plot_dir {
        plot(dir, &before, &o.after, &method.to_string())?;
    }
    let json = json!({
        "method": method.to_string(),
        "mode": opts.mode,
        "evaluated_on": evaluated_on(a),
        "fit_seconds": o.fit_seconds,
        "before": before,
        "after": o.after,
        "calibrator": o.saved,
    });
    emit(format, &json, || {
        format!(
            "{method} fitted on {} validation samples in {:.3} s; metrics on the {} set\n{}",
            val.n(),
            o.fit_seconds,
            evaluated_on(a),
            render(&["metric", "before", "after"], &metric_rows(&[&before, &o.after]), Style::Terminal)
        )
    })
}

/// The columns of `--method all`: (header, report key, whether shown as a percentage).
const COLUMNS: [(&str, &str, bool); 6] = [
    ("ECE %", "ece", true),
    ("AdaECE %", "adaece", true),
    ("classwise-ECE %", "classwise_ece", true),
    ("smooth ECE %", "smece", true),
    ("NLL", "nll", false),
    ("Brier", "brier", false),
];

/// Every method that applies, one table; the lowest value of each metric is marked with `*`.
fn run_all(a: &Args, format: Format) -> Result<()> {
    let opts = a.settings.options(None)?;
    let (val, test) = load_sets::<f64>(a)?;
    let target = test.as_ref().unwrap_or(&val);
    let val_rows = Predictions::of_scores(&val);
    let before = metrics::evaluate(target, &opts)?;
    let methods = Method::all(val.k(), val.kind());
    let value = |r: &Report| serde_json::to_value(r).expect("a report serialises");
    let outcomes: Vec<(Method, calib::Result<(Judged, serde_json::Value)>)> = methods
        .iter()
        .map(|&m| {
            (
                m,
                calibrators::fit_and_judge(m, &val_rows, val.labels(), target, &opts).map(|o| {
                    let v = value(&o.after);
                    (o, v)
                }),
            )
        })
        .collect();
    let before_v = value(&before);
    let get = |v: &serde_json::Value, key: &str| v.get(key).and_then(|x| x.as_f64());
    let best: Vec<Option<f64>> = COLUMNS
        .iter()
        .map(|&(_, key, _)| {
            outcomes
                .iter()
                .filter_map(|(_, o)| o.as_ref().ok().map(|o| &o.1))
                .chain([&before_v])
                .filter_map(|v| get(v, key))
                .fold(None, |b: Option<f64>, x| Some(b.map_or(x, |b| b.min(x))))
        })
        .collect();
    let best_ece = outcomes
        .iter()
        .filter_map(|(m, o)| o.as_ref().ok().map(|o| (m, &o.0)))
        .min_by(|x, y| x.1.after.ece.total_cmp(&y.1.after.ece));
    if let (Some(dir), Some((m, o))) = (&a.plot_dir, best_ece) {
        plot(dir, &before, &o.after, &format!("{m} (lowest ECE)"))?;
    }
    let cells = |v: &serde_json::Value| -> Vec<String> {
        COLUMNS
            .iter()
            .zip(&best)
            .map(|(&(_, key, pct), b)| match get(v, key) {
                None => "—".to_string(),
                Some(x) => {
                    let text = if pct { percent(Some(x)) } else { fixed(Some(x), 4) };
                    if Some(x) == *b {
                        format!("{text} *")
                    } else {
                        text
                    }
                }
            })
            .collect()
    };
    let mut rows =
        vec![std::iter::once("uncalibrated".to_string()).chain(cells(&before_v)).chain(["".into()]).collect()];
    let mut json_methods = Vec::new();
    for (m, o) in &outcomes {
        match o {
            Ok((o, r)) => {
                rows.push(
                    std::iter::once(m.to_string())
                        .chain(cells(r))
                        .chain([format!("{:.1}", o.fit_seconds * 1e3)])
                        .collect(),
                );
                json_methods.push(json!({"method": m.to_string(), "fit_seconds": o.fit_seconds, "after": o.after}));
            }
            Err(e) => {
                rows.push(std::iter::once(m.to_string()).chain([format!("failed: {e}")]).collect());
                json_methods.push(json!({"method": m.to_string(), "error": e.to_string()}));
            }
        }
    }
    let json = json!({
        "mode": opts.mode,
        "evaluated_on": evaluated_on(a),
        "before": before,
        "methods": json_methods,
        "best": COLUMNS.iter().zip(&best).map(|(&(_, key, _), b)| (key.to_string(), json!(b))).collect::<serde_json::Map<_, _>>(),
    });
    let headers: Vec<&str> = std::iter::once("method").chain(COLUMNS.iter().map(|c| c.0)).chain(["fit ms"]).collect();
    emit(format, &json, || {
        format!(
            "{} methods fitted on {} validation samples; metrics on the {} set (* the lowest)\n{}",
            methods.len(),
            val.n(),
            evaluated_on(a),
            render(&headers, &rows, Style::Terminal)
        )
    })
}

/// `calib apply`: a saved calibrator on new rows.
pub fn apply(a: &ApplyArgs, format: Format) -> Result<()> {
    let saved = Saved::load(&a.calibrator)?;
    let kind = kind(a.probs);
    let what = if a.probs { "probabilities" } else { "logits" };
    let values = npy::read_floats(&a.logits, 2, what)?;
    let k = values.shape()[1];
    if k != saved.fitted.classes() {
        bail!(
            "{}: the calibrator was fitted for {} classes, {} has {k}",
            a.calibrator.display(),
            saved.fitted.classes(),
            a.logits.display()
        );
    }
    let rows = Predictions::from_values(values.values, k, kind).map_err(|e| anyhow!("{}: {e}", a.logits.display()))?;
    let probs = saved.transform(&rows).map_err(|e| anyhow!("{}: {e}", a.calibrator.display()))?;
    npy::write(&a.out, &[rows.n(), k], &probs)?;
    emit(format, &json!({"calibrator": saved.name, "rows": rows.n(), "classes": k, "out": a.out}), || {
        format!("wrote {} ({} rows × {k} classes calibrated by {})", a.out.display(), rows.n(), saved.name)
    })
}
