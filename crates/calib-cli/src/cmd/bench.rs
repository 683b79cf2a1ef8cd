//! `calib bench`: timings of the metric suite on a large predictions file. Comparisons with
//! numpy, the official code and torchmetrics are in `benches/compare_metrics.py`.

use anyhow::Result;
use calib::metrics::{self, Options};
use calib::{npy, Real, ScoreKind};
use calib_cli::args::bench::{Bench, MetricsArgs};
use calib_cli::input;
use calib_cli::output::{emit, Format};
use calib_report::table::{render, Style};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

pub fn run(b: &Bench, format: Format) -> Result<()> {
    match b {
        Bench::Metrics(a) => metrics_bench(a, format),
        Bench::Decode(_) => super::torch::hand_over("bench decode"),
        Bench::Text(_) => super::torch::hand_over("bench text"),
        Bench::Train(_) => super::torch::hand_over("bench train"),
    }
}

/// Over-confident float32 logits: noise in [-2, 2), with the label's logit raised by 5 in 85 % of
/// the rows, like a trained classifier.
fn make_file(logits: &Path, labels: &Path, n: usize, k: usize, seed: u64) -> Result<()> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let values = n * k;
    let mut x = Vec::new();
    x.try_reserve_exact(values).map_err(|e| anyhow::anyhow!("cannot hold {values} logits in memory: {e}"))?;
    x.resize(values, 0f32);
    let y: Vec<i64> = (0..n).map(|_| rng.random_range(0..k as i64)).collect();
    for (i, row) in x.chunks_exact_mut(k).enumerate() {
        row.iter_mut().for_each(|v| *v = 4.0 * (rng.random::<f32>() - 0.5));
        if rng.random::<f32>() < 0.85 {
            row[y[i] as usize] += 5.0;
        }
    }
    npy::write(logits, &[n, k], &x)?;
    npy::write(labels, &[n], &y)?;
    Ok(())
}

fn best_of<T>(repeats: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        let v = f()?;
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(v);
    }
    Ok((best, out.expect("at least one run")))
}

fn suite<F: Real>(l: &Path, y: &Path) -> Result<f64> {
    let s = input::load::<F>(l, y, ScoreKind::Logits)?;
    Ok(metrics::evaluate(&s, &Options::default())?.ece)
}

fn ece_only(l: &Path, y: &Path) -> Result<f64> {
    let s = input::load::<f32>(l, y, ScoreKind::Logits)?;
    Ok(metrics::basic(&s, &Options::default())?.ece)
}

/// Most logits a benchmark file holds (4 GB as float32).
const MAX_VALUES: u64 = 1_000_000_000;

fn metrics_bench(a: &MetricsArgs, format: Format) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let logits = a.file.clone().unwrap_or_else(|| dir.path().join("bench.npy"));
    let labels = logits.with_extension("labels.npy");
    if a.n.saturating_mul(a.classes) > MAX_VALUES {
        anyhow::bail!("--n {} × --classes {} is more than the 10^9 values a benchmark file may hold", a.n, a.classes);
    }
    if !logits.exists() || !labels.exists() {
        eprintln!("writing {} ({} x {} float32) ...", logits.display(), a.n, a.classes);
        make_file(&logits, &labels, a.n as usize, a.classes as usize, a.seed)?;
    }
    let (read, _) = best_of(a.repeats, || Ok((npy::read_floats(&logits, 2, "logits")?, npy::read_labels(&labels)?)))?;
    let (full64, ece64) = best_of(a.repeats, || suite::<f64>(&logits, &labels))?;
    let (full32, ece32) = best_of(a.repeats, || suite::<f32>(&logits, &labels))?;
    let (ece, ece_fast) = best_of(a.repeats, || ece_only(&logits, &labels))?;
    let values = std::fs::metadata(&logits)?.len() as f64 / 4.0;
    let rows = [
        ("read .npy (logits + labels)", read),
        ("full suite, f64 (read + ECE, AdaECE, classwise, MCE, NLL, top-5, entropy)", full64),
        ("full suite, f32", full32),
        ("ECE alone, f32 (read + one softmax pass)", ece),
    ];
    let json = json!({
        "n": a.n, "classes": a.classes, "threads": rayon::current_num_threads(),
        "seconds": rows.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "ece": {"f64": ece64, "f32": ece32, "ece_only": ece_fast},
    });
    emit(format, &json, || {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|(k, v)| vec![k.to_string(), format!("{v:.3}"), format!("{:.0}", values / v / 1e6)])
            .collect();
        format!(
            "{} x {} logits, {} threads, best of {}\n{}",
            a.n,
            a.classes,
            rayon::current_num_threads(),
            a.repeats,
            render(&["measurement", "seconds", "M values/s"], &table, Style::Terminal)
        )
    })
}
