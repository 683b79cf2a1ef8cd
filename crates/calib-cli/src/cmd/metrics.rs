//! `calib metrics`: every metric of one predictions file.

use anyhow::Result;
use calib::{bootstrap, metrics, Real, ScoreKind};
use calib_cli::args::metrics::Args;
use calib_cli::input::{self, Precision};
use calib_cli::output::{bins_table, emit, metric_rows, Format};
use calib_report::table::{percent, render, Style};
use serde_json::json;

pub fn run(a: &Args, format: Format) -> Result<()> {
    match a.settings.precision {
        Precision::F64 => run_in::<f64>(a, format),
        Precision::F32 => run_in::<f32>(a, format),
    }
}

fn run_in<F: Real>(a: &Args, format: Format) -> Result<()> {
    let opts = a.settings.options(a.temperature)?;
    let kind = if a.probs { ScoreKind::Probs } else { ScoreKind::Logits };
    if a.only.is_some() {
        // One pass over the file: the values are checked by the pass that computes ECE.
        let unscanned = input::load_unscanned::<F>(&a.logits, &a.labels, kind)?;
        let b = metrics::basic_unscanned(unscanned, &opts).map_err(|e| input::blame(e, &a.logits, &a.labels))?;
        let mut json = serde_json::to_value(&b)?;
        json["precision"] = json!(a.settings.precision);
        return emit(format, &json, || {
            let rows = vec![
                vec!["samples".into(), b.n.to_string()],
                vec!["error %".into(), percent(Some(b.error))],
                vec!["ECE %".into(), percent(Some(b.ece))],
                vec!["MCE %".into(), percent(Some(b.mce))],
            ];
            render(&["metric", "value"], &rows, Style::Terminal)
        });
    }
    let scores = input::load::<F>(&a.logits, &a.labels, kind)?;
    let report = metrics::evaluate(&scores, &opts)?;
    let ci = a.boot.settings().map(|s| bootstrap::metrics(&scores, &opts, &s)).transpose()?;
    if let Some(path) = &a.plot {
        let title = a.logits.file_name().map_or("predictions".into(), |f| f.to_string_lossy().into_owned());
        let svg = calib_report::plot::reliability_diagram(
            &report.bins,
            &title,
            &format!("ECE {}%", percent(Some(report.ece))),
        )?;
        calib_report::plot::save(path, &svg)?;
    }
    let mut json = serde_json::to_value(&report)?;
    json["precision"] = json!(a.settings.precision);
    json["temperature"] = json!(a.temperature);
    if let Some(ci) = &ci {
        json["ci"] = serde_json::to_value(ci)?;
    }
    emit(format, &json, || {
        let mut rows = metric_rows(&[&report]);
        if let Some(ci) = &ci {
            let band = |i: &bootstrap::Interval| format!("{} – {}", percent(Some(i.lower)), percent(Some(i.upper)));
            for row in rows.iter_mut() {
                row.push(match row[0].as_str() {
                    "error %" => band(&ci.error),
                    "ECE %" => band(&ci.ece),
                    "AdaECE %" => band(&ci.adaece),
                    "classwise-ECE %" => band(&ci.classwise_ece),
                    "NLL" => format!("{:.4} – {:.4}", ci.nll.lower, ci.nll.upper),
                    "Brier" => format!("{:.4} – {:.4}", ci.brier.lower, ci.brier.upper),
                    "smooth ECE %" => band(&ci.smece),
                    "debiased L2 ECE %" => band(&ci.ece_debiased_l2),
                    "ECE_sweep % (bins)" => band(&ci.ece_sweep),
                    "KS %" => band(&ci.ks),
                    _ => String::new(),
                });
            }
        }
        let ci_header = ci.as_ref().map(|c| format!("{:.0}% CI ({} resamples)", 100.0 * c.level, c.resamples));
        let mut header = vec!["metric", "value"];
        header.extend(ci_header.as_deref());
        format!(
            "{} mode, {} precision\n{}\nreliability bins\n{}",
            a.settings.mode,
            if a.settings.precision == Precision::F32 { "f32" } else { "f64" },
            render(&header, &rows, Style::Terminal),
            bins_table(&report.bins)
        )
    })
}
