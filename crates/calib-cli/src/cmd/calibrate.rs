//! `calib calibrate`: temperature scaling fitted on validation predictions.

use anyhow::Result;
use calib::temperature::{self, Method};
use calib::{metrics, Real, ScoreKind};
use calib_cli::args::calibrate::Args;
use calib_cli::input::{self, Precision};
use calib_cli::output::{emit, metric_rows, Format};
use calib_report::table::{percent, render, Style};
use serde_json::json;

pub fn run(a: &Args, format: Format) -> Result<()> {
    match a.settings.precision {
        Precision::F64 => run_in::<f64>(a, format),
        Precision::F32 => run_in::<f32>(a, format),
    }
}

fn run_in<F: Real>(a: &Args, format: Format) -> Result<()> {
    let method: Method = a.method.parse()?;
    let opts = a.settings.options(None)?;
    let val = input::load::<F>(&a.val_logits, &a.val_labels, ScoreKind::Logits)?;
    let test = match (&a.logits, &a.labels) {
        (Some(l), Some(y)) => Some(input::load::<F>(l, y, ScoreKind::Logits)?),
        _ => None,
    };
    if let Some(t) = &test {
        anyhow::ensure!(
            t.k() == val.k(),
            "{} has {} classes but {} has {}",
            a.val_logits.display(),
            val.k(),
            a.logits.as_ref().expect("test given").display(),
            t.k()
        );
    }
    let grid = match method {
        Method::EceGrid | Method::NllGrid => Some(temperature::grid_search(&val, opts.bins, opts.mode)?),
        Method::Nll => None,
    };
    let t = match (&grid, method) {
        (Some(g), Method::EceGrid) => g.t_ece,
        (Some(g), _) => g.t_nll,
        (None, _) => temperature::fit_nll(&val)?,
    };
    let target = test.as_ref().unwrap_or(&val);
    let before = metrics::evaluate(target, &opts)?;
    let after = metrics::evaluate(target, &opts.with_temperature(t))?;
    if let Some(dir) = &a.plot_dir {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", dir.display()))?;
        for (name, r, label) in
            [("before", &before, "before scaling".to_string()), ("after", &after, format!("T = {t:.2}"))]
        {
            let svg =
                calib_report::plot::reliability_diagram(&r.bins, &label, &format!("ECE {}%", percent(Some(r.ece))))?;
            calib_report::plot::save(&dir.join(format!("reliability-{name}.svg")), &svg)?;
        }
    }
    let json = json!({
        "temperature": t,
        "method": method,
        "mode": opts.mode,
        "precision": a.settings.precision,
        "evaluated_on": if test.is_some() { "test" } else { "validation" },
        "before": before,
        "after": after,
        "grid": grid.as_ref().map(|g| &g.points),
    });
    emit(format, &json, || {
        format!(
            "T = {t} ({}, chosen on {} validation samples); metrics on the {} set\n{}",
            a.method,
            val.n(),
            if test.is_some() { "test" } else { "validation" },
            render(&["metric", "before", "after"], &metric_rows(&[&before, &after]), Style::Terminal)
        )
    })
}
