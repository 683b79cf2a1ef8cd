//! `calib study temperature`: the paper's appendix K. For every temperature T, test BLEU with
//! beam search at T (T divides the logits at every step), and validation token-level ECE and NLL
//! at T (teacher-forced target tokens, the core's metrics); the T with the lowest validation ECE
//! and the BLEU there. Writes a table, JSON and Figure K.1 (SVG).

use crate::decode::{encode_checked, SearchArgs};
use crate::mt::{self, RunArgs};
use anyhow::{bail, Context, Result};
use calib_cli::output::{emit, Format};
use calib_mt::corpus::{self, Empty};
use calib_mt::data::{self, ReadOptions};
use calib_mt::decode::translate;
use calib_mt::metrics::{corpus_bleu, BleuOptions};
use calib_report::table::{self, Style};
use calib_train::device::{self, DeviceRequest};
use calib_train::trainer::Task;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Study {
    /// Test BLEU and validation ECE as functions of the temperature (the paper's Figure K.1).
    Temperature(TemperatureArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct TemperatureArgs {
    #[command(flatten)]
    pub weights: RunArgs,
    /// Test source sentences (plain text, .gz or WMT .sgm).
    #[arg(long)]
    pub src: PathBuf,
    /// Test references (repeatable).
    #[arg(long = "ref", required = true)]
    pub refs: Vec<PathBuf>,
    /// Validation pairs for the token-level ECE.
    #[arg(long)]
    pub valid_src: PathBuf,
    #[arg(long)]
    pub valid_ref: PathBuf,
    /// Temperatures: FROM:TO:STEP, or a comma-separated list.
    #[arg(long = "t", default_value = "0.5:2.0:0.1")]
    pub temperatures: String,
    #[command(flatten)]
    pub search: SearchArgs,
    /// Only the first N test sentences.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Confidence bins of the ECE.
    #[arg(long, default_value_t = 15)]
    pub bins: usize,
    /// Where study.json, study.md and temperature.svg go (default RUN/study-temperature).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceRequest::Auto)]
    pub device: DeviceRequest,
    #[arg(long)]
    pub quiet: bool,
}

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

#[derive(Debug, Clone, Serialize)]
struct Point {
    t: f64,
    bleu: f64,
    val_ece: f64,
    val_nll: f64,
}

/// Token-level ECE and NLL of the validation set at every temperature, from one forward pass.
fn validation_curves(task: &dyn Task, temps: &[f64], bins: usize) -> Result<Vec<(f64, f64)>> {
    let mut conf: Vec<Vec<f64>> = vec![Vec::new(); temps.len()];
    let mut nll = vec![0.0; temps.len()];
    let mut correct: Vec<bool> = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for b in task.eval_batches("val")? {
            let (logits, targets) = task.forward(&b, false);
            let logits = logits.to_kind(Kind::Double);
            correct.extend(Vec::<bool>::try_from(
                logits.argmax(1, false).eq_tensor(&targets).to_device(tch::Device::Cpu),
            )?);
            for (i, &t) in temps.iter().enumerate() {
                let lp = (&logits / t).log_softmax(1, Kind::Double);
                let (top, _) = lp.max_dim(1, false);
                conf[i].extend(Vec::<f64>::try_from(top.exp().to_device(tch::Device::Cpu))?);
                let picked: Tensor = -lp.gather(1, &targets.unsqueeze(1), false).sum(Kind::Double);
                nll[i] += picked.double_value(&[]);
            }
        }
        Ok(())
    })?;
    anyhow::ensure!(!correct.is_empty(), "the validation set has no target tokens");
    let n = correct.len() as f64;
    temps
        .iter()
        .enumerate()
        .map(|(i, _)| Ok((calib::metrics::ece_of_confidences(&conf[i], &correct, bins)?, nll[i] / n)))
        .collect()
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
    a.search.search(1.0, 1, true)?;
    let device = device::select(a.device)?;
    let loaded = mt::load_run(&a.weights, None, device, |recipe, vocab| {
        let opts = ReadOptions { max_len: recipe.data.max_len, max_ratio: None, limit: None, empty: Empty::Reject };
        Ok(HashMap::from([("val".to_string(), data::read(&a.valid_src, &a.valid_ref, vocab, opts)?)]))
    })?;
    let (vocab, model) = (&loaded.vocab, loaded.task.model());
    let sources = read_limited(&a.src, a.limit)?;
    let refs = a.refs.iter().map(|r| read_limited(r, a.limit)).collect::<Result<Vec<_>>>()?;
    for (r, path) in refs.iter().zip(&a.refs) {
        anyhow::ensure!(
            r.len() == sources.len(),
            "{} has {} segments but {} has {}",
            path.display(),
            r.len(),
            a.src.display(),
            sources.len()
        );
    }
    let ids = encode_checked(vocab, &sources, model.config.max_positions, 1, &a.src.display().to_string())?;
    if !a.quiet {
        eprintln!("validation token-level ECE at {} temperatures", temps.len());
    }
    let curves = validation_curves(&loaded.task, &temps, a.bins)?;
    let opts = BleuOptions::default();
    let mut points = Vec::new();
    let mut signature = String::new();
    for (&t, &(val_ece, val_nll)) in temps.iter().zip(&curves) {
        let search = a.search.search(t, 1, true)?;
        let hyps = translate(model, &ids, mt::specials(vocab), a.search.max_tokens, &search, device);
        let texts = hyps
            .iter()
            .map(|h| vocab.decode(&h[0].tokens.iter().map(|&x| x as u32).collect::<Vec<_>>()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let bleu = corpus_bleu(&texts, &refs, &opts)?;
        signature = bleu.signature.clone();
        if !a.quiet {
            eprintln!("T = {t}: BLEU {:.2}, validation ECE {:.2}%, NLL {val_nll:.4}", bleu.score, 100.0 * val_ece);
        }
        points.push(Point { t, bleu: bleu.score, val_ece, val_nll });
    }
    let best = points.iter().min_by(|x, y| x.val_ece.total_cmp(&y.val_ece)).expect("at least one temperature").clone();
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
