//! `calib ood`: how well softmax entropy and confidence separate in- from out-of-distribution.

use anyhow::{bail, Result};
use calib::{bootstrap, npy, ood, Real, ScoreKind, Scores};
use calib_cli::args::ood::Args;
use calib_cli::input::Precision;
use calib_cli::output::{emit, Format};
use calib_report::table::{render, Style};
use serde_json::json;
use std::path::Path;

/// Logits without labels: OOD scores read only the values, so every label is a placeholder 0.
fn load<F: Real>(path: &Path) -> Result<Scores<F>> {
    let a = npy::read_floats(path, 2, "logits")?;
    let (n, k) = (a.shape()[0], a.shape()[1]);
    if n == 0 || k == 0 {
        bail!("{}: the logits array has shape [{n}, {k}]; it needs at least one row and one class", path.display());
    }
    Scores::from_values(a.values, k, &vec![0; n], ScoreKind::Logits)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn run(a: &Args, format: Format) -> Result<()> {
    match a.precision {
        Precision::F64 => run_in::<f64>(a, format),
        Precision::F32 => run_in::<f32>(a, format),
    }
}

fn run_in<F: Real>(a: &Args, format: Format) -> Result<()> {
    let (inside, outside) = (load::<F>(&a.in_logits)?, load::<F>(&a.out_logits)?);
    if inside.k() != outside.k() {
        bail!(
            "{} has {} classes but {} has {}",
            a.in_logits.display(),
            inside.k(),
            a.out_logits.display(),
            outside.k()
        );
    }
    let (si, so) = (ood::softmax_scores(&inside, a.temperature)?, ood::softmax_scores(&outside, a.temperature)?);
    let r = ood::from_scores(&si, &so)?;
    let ci = a.boot.settings().map(|s| bootstrap::ood(&si, &so, &s)).transpose()?;
    let mut json = json!({
        "auroc_entropy": r.auroc_entropy,
        "auroc_confidence": r.auroc_confidence,
        "temperature": a.temperature,
        "n_in": inside.n(),
        "n_out": outside.n(),
    });
    if let Some((e, c)) = &ci {
        json["ci"] =
            json!({"level": a.boot.level, "resamples": a.boot.bootstrap, "auroc_entropy": e, "auroc_confidence": c});
    }
    emit(format, &json, || {
        let band = |i: Option<&bootstrap::Interval>| {
            i.map_or(String::new(), |i| format!("{:.2} – {:.2}", 100.0 * i.lower, 100.0 * i.upper))
        };
        let rows = vec![
            vec![
                "entropy (OOD positive)".into(),
                format!("{:.2}", 100.0 * r.auroc_entropy),
                band(ci.as_ref().map(|c| &c.0)),
            ],
            vec![
                "confidence (in-dist. positive)".into(),
                format!("{:.2}", 100.0 * r.auroc_confidence),
                band(ci.as_ref().map(|c| &c.1)),
            ],
        ];
        render(&["score", "AUROC %", "CI"], &rows, Style::Terminal)
    })
}
