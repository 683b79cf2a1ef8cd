//! `calib study temperature`: reads the run and the sentences, runs `calib_mt::study` (test BLEU
//! and validation token-level ECE at every T, the paper's appendix K), and writes a table, JSON
//! and Figure K.1 (SVG).

use crate::decode::{encode_checked, ToSearch};
use crate::mt;
use anyhow::{bail, Context, Result};
use calib_cli::args::study::Study;
use calib_cli::output::{emit, Format};
use calib_mt::corpus;
use calib_mt::data::{self, ReadOptions};
use calib_mt::study::{self, TestSet};
use calib_report::table::{self, Style};
use calib_train::device;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

/// `FROM:TO:STEP` (both ends included, each value FROM + i·STEP) or `a,b,c`.
pub fn parse_grid(text: &str) -> Result<Vec<f64>> {
    let num = |s: &str| -> Result<f64> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .with_context(|| format!("--t {text}: '{s}' is not a number"))
    };
    let values: Vec<f64> = match text.split(':').collect::<Vec<_>>()[..] {
        [a, b, step] => {
            let (a, b, step) = (num(a)?, num(b)?, num(step)?);
            if step <= 0.0 || b < a {
                bail!("--t {text}: expected FROM ≤ TO and STEP > 0");
            }
            let n = ((b - a) / step + 1e-9).floor() as usize;
            (0..=n).map(|i| ((a + i as f64 * step) * 1e9).round() / 1e9).collect()
        }
        [_] => text.split(',').map(num).collect::<Result<_>>()?,
        _ => bail!("--t {text}: expected FROM:TO:STEP or a comma-separated list"),
    };
    if let Some(t) = values.iter().find(|&&t| t <= 0.0) {
        bail!("--t {text}: temperature {t} must be positive");
    }
    Ok(values)
}

fn read_limited(path: &Path, limit: Option<usize>) -> Result<Vec<String>> {
    let mut lines = corpus::read_segments(path)?;
    if let Some(n) = limit {
        lines.truncate(n);
    }
    Ok(lines)
}

pub fn run(study: &Study, format: Format) -> Result<()> {
    let Study::Temperature(a) = study;
    let temps = parse_grid(&a.temperatures)?;
    let device = device::select(crate::args::device(a.device))?;
    let loaded = mt::load_run(&a.weights, None, device, |recipe, vocab| {
        // Every validation pair the model can take counts.
        let max_len = recipe.model.config(vocab.size())?.max_positions as usize - 1;
        let opts = ReadOptions::new(max_len);
        let (src, reference) = match (&a.valid_src, &a.valid_ref) {
            (Some(s), Some(r)) => (s.clone(), r.clone()),
            _ => recipe.valid_files(),
        };
        let val = data::read(&src, &reference, vocab, opts)?;
        Ok(HashMap::from([("val".to_string(), val)]))
    })?;
    let (vocab, model) = (&loaded.vocab, loaded.task.model());
    let (src, ref_files) = match &a.src {
        Some(src) => (src.clone(), a.refs.clone()),
        None => {
            let (src, reference) = loaded.recipe.test_files().with_context(|| {
                format!("{}: the run's recipe names no test pair; give --src and --ref", a.weights.run.display())
            })?;
            (src, vec![reference])
        }
    };
    let sources = read_limited(&src, a.limit)?;
    let refs = ref_files.iter().map(|r| read_limited(r, a.limit)).collect::<Result<Vec<_>>>()?;
    for (r, path) in refs.iter().zip(&ref_files) {
        anyhow::ensure!(
            r.len() == sources.len(),
            "{} has {} segments but {} has {}",
            path.display(),
            r.len(),
            src.display(),
            sources.len()
        );
    }
    let ids = encode_checked(vocab, &sources, model.config.max_positions, 1, &src.display().to_string())?;
    if !a.quiet {
        eprintln!("validation token-level ECE at {} temperatures", temps.len());
    }
    let test = TestSet {
        model,
        vocab,
        sources: &ids,
        refs: &refs,
        search: a.search.search(1.0, 1, true)?,
        max_tokens: a.search.max_tokens,
        device,
    };
    let (points, signature) = study::temperature(&loaded.task, &test, &temps, a.bins, |p| {
        if !a.quiet {
            eprintln!(
                "T = {}: BLEU {:.2}, validation ECE {:.2}%, NLL {:.4}",
                p.t,
                p.bleu,
                100.0 * p.val_ece,
                p.val_nll
            );
        }
    })?;
    let best = study::chosen(&points).expect("at least one temperature").clone();
    let out = a.out.clone().unwrap_or_else(|| a.weights.run.join("study-temperature"));
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
    let json = json!({
        "run": a.weights.run, "checkpoint": a.weights.checkpoint, "beam": a.search.beam, "lenpen": a.search.lenpen, "lenpen_form": a.search.lenpen_form,
        "test_sentences": sources.len(), "bleu_signature": signature, "bins": a.bins,
        "points": points, "chosen_by_val_ece": best,
    });
    let header = ["T", "test BLEU", "val ECE (%)", "val NLL"];
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|p| {
            let mark = if p.t == best.t { " *" } else { "" };
            vec![
                format!("{}{mark}", p.t),
                format!("{:.2}", p.bleu),
                table::percent(Some(p.val_ece)),
                format!("{:.4}", p.val_nll),
            ]
        })
        .collect();
    let caption = format!(
        "T chosen by validation ECE: {} (test BLEU {:.2}, validation ECE {:.2}%); BLEU: {signature}",
        best.t,
        best.bleu,
        100.0 * best.val_ece
    );
    let md = format!(
        "# Temperature study: {}\n\n{}\n\n{caption}\n",
        a.weights.run.display(),
        table::render(&header, &rows, Style::Markdown)
    );
    calib::atomic::write(&out.join("study.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    calib::atomic::write(&out.join("study.md"), md.as_bytes())?;
    let (ts, bleus, eces): (Vec<f64>, Vec<f64>, Vec<f64>) = (
        points.iter().map(|p| p.t).collect(),
        points.iter().map(|p| p.bleu).collect(),
        points.iter().map(|p| p.val_ece).collect(),
    );
    let svg = calib_report::plot::bleu_ece_vs_temperature(
        &ts,
        &bleus,
        &eces,
        best.t,
        &format!("BLEU and ECE against T — {}", a.weights.run.display()),
    )?;
    calib_report::plot::save(&out.join("temperature.svg"), &svg)?;
    emit(format, &json, || {
        format!("{}\n{caption}\nwritten to {}", table::render(&header, &rows, Style::Terminal), out.display())
    })
}

#[cfg(test)]
mod tests {
    use super::parse_grid;

    #[test]
    fn grids() {
        assert_eq!(parse_grid("0.5:1.0:0.1").unwrap(), vec![0.5, 0.6, 0.7, 0.8, 0.9, 1.0]);
        assert_eq!(parse_grid("1,2.5").unwrap(), vec![1.0, 2.5]);
        assert!(parse_grid("1:0.5:0.1").is_err());
        assert!(parse_grid("0,1").is_err());
        assert!(parse_grid("a").is_err());
    }
}
