//! The paper's tables and figures from run folders (`calib report --runs runs/…`).
//!
//! Every run folder that holds `config.toml` and `predictions/{val,test}_{logits,labels}.npy`
//! (what `calib train` and `calib eval` leave) is one cell: its dataset and network name the
//! table row, its loss the column, labelled as the paper labels them (CE, Brier, MMCE, LS-0.05,
//! FL-1/2/3, FLSc-531, FLSD-53, …; see [`calib::loss::LossSpec::label`]). For each cell the
//! temperature is chosen on the validation split by the paper's ECE grid and the test metrics are
//! computed before and after it, with 90 % bootstrap intervals. The tables (Markdown and LaTeX):
//!
//! | file | paper | what |
//! | --- | --- | --- |
//! | `table1-ece` | Table 1 | ECE % before scaling, after it, T in brackets |
//! | `table2-error` | Table 2 | test error % |
//! | `tableF1-adaece`, `tableF2-classwise-ece` | F.1, F.2 | AdaECE, classwise-ECE before and after |
//! | `tableF7-topk` | F.7 | top-1 and top-5 error |
//! | `tableF8-nll` | F.8/F.9 | test NLL before and after |
//! | `tableF10-mce` | F.10/F.11 | MCE before and after |
//! | `tableH1-s99` | H.1 | share of test samples with confidence ≥ 0.99 and their accuracy |
//! | `tableJ1-checkpoints` | J.1 | test error and ECE at the epochs best by validation ECE, NLL and error (from the per-epoch test probe), and at the evaluated checkpoint |
//! | `table3-ood-NAME` | Table 3 | OOD AUROC (entropy) before and after T, per OOD set |
//! | `tableK1-translation` | K.1 | test BLEU and validation token ECE at T = 1 and at the chosen T (runs with a temperature study) |
//!
//! The focal variants of F.3–F.6 are columns of the same tables (FL-1/2/3, FLSc-531, FLSD-53).
//! Figures (SVG and PNG): ECE before and after T with 90 % intervals per table row (Figure 4, G.1–G.4),
//! training dynamics from `metrics.jsonl` per row (Figures 1–2: NLL, ECE and the entropy of right
//! and wrong samples on the probed split, the last layer's weight norm), g(p, γ) (Figure 3a), the
//! last probed gradient-norm histograms (Figure 3 b–d), OOD ROC curves, and BLEU and ECE against T
//! per studied translation run (Figure K.1).
//! Translation runs appear as rows of the same tables with token-level metrics.

use crate::plot;
use crate::report::{self, ModelReport, Progress, ReportError};
use crate::table::{fixed, percent, render, Style};
use calib::loss::LossSpec;
use calib::ood;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The paper's column order; losses it does not name follow, sorted.
pub const LOSS_ORDER: [&str; 9] = ["CE", "Brier", "MMCE", "LS-0.05", "FL-1", "FL-2", "FL-3", "FLSc-531", "FLSD-53"];

/// What to read and where the tables and figures go. Build with [`Options::new`] (1,000
/// resamples, seed 0, 15 bins).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// Run folders, or folders holding run folders (searched three levels deep).
    pub runs: Vec<PathBuf>,
    pub out: PathBuf,
    pub report: report::Options,
}

impl Options {
    pub fn new(runs: Vec<PathBuf>, out: impl Into<PathBuf>) -> Self {
        let out = out.into();
        Self { report: report::Options::new(Vec::new(), &out), runs, out }
    }

    pub fn with_bootstrap(mut self, resamples: usize) -> Self {
        self.report = self.report.with_bootstrap(resamples);
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.report = self.report.with_seed(seed);
        self
    }
}

/// Why the paper's tables could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PaperError {
    #[error("{}: no run folder with config.toml and predictions/ (run `calib eval --run` first)", path.display())]
    NoRuns { path: PathBuf },
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("{}: line {line}: {message}", path.display())]
    Log { path: PathBuf, line: usize, message: String },
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Core(#[from] calib::Error),
    #[error(transparent)]
    Plot(#[from] crate::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// One run's line of `metrics.jsonl`, the fields the figures and Table J.1 read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochPoint {
    pub epoch: usize,
    /// Whether the run probed the test split this epoch (`train.probe_test`): the values below
    /// are then the test split's, else the validation split's.
    pub test: bool,
    pub nll: Option<f64>,
    pub ece: Option<f64>,
    pub error: Option<f64>,
    pub entropy_correct: Option<f64>,
    pub entropy_wrong: Option<f64>,
    pub weight_norm: Option<f64>,
    /// Validation values, for choosing checkpoints (J.1).
    pub val_nll: Option<f64>,
    pub val_ece: Option<f64>,
    pub val_error: Option<f64>,
    /// The last layer's per-sample gradient-norm histogram (log10 bin edges, counts), when probed.
    pub grad_norms: Option<(Vec<f64>, Vec<u64>)>,
}

/// One OOD set's AUROC (entropy as the score) before and after T.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OodCell {
    pub name: String,
    pub before: f64,
    pub after: f64,
    /// The ROC curve before T (false-positive rate, true-positive rate), at most 201 points.
    pub roc: Vec<(f64, f64)>,
}

/// A translation run's temperature study (`calib study temperature`, `study-temperature/study.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Study {
    /// (T, test BLEU, validation token ECE) per temperature.
    pub points: Vec<(f64, f64, f64)>,
    /// The T of lowest validation ECE.
    pub chosen: f64,
}

/// One run: where it sits in the tables and what it measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunCell {
    pub dir: PathBuf,
    pub dataset: String,
    pub network: String,
    /// The paper's label of the loss.
    pub loss: String,
    /// The checkpoint `calib eval` evaluated (`last`, `best`, …), from `report.json`.
    pub checkpoint: String,
    pub model: ModelReport,
    pub ood: Vec<OodCell>,
    pub epochs: Vec<EpochPoint>,
    pub study: Option<Study>,
}

impl RunCell {
    /// The table row this run belongs to.
    pub fn row(&self) -> String {
        format!("{} / {}", self.dataset, self.network)
    }

    /// The epoch whose validation value of `pick` is lowest (first on ties).
    pub fn best_epoch(&self, pick: impl Fn(&EpochPoint) -> Option<f64>) -> Option<(usize, f64)> {
        self.epochs.iter().filter_map(|e| pick(e).map(|v| (e.epoch, v))).fold(None, |best, (e, v)| match best {
            Some((_, b)) if b <= v => best,
            _ => Some((e, v)),
        })
    }
}

/// A table in both renderings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// File stem, e.g. `table1-ece`.
    pub id: String,
    pub title: String,
    pub markdown: String,
    pub latex: String,
}

/// Every run, its tables, and the files written.
#[derive(Debug, Clone, Serialize)]
pub struct PaperReport {
    pub runs: Vec<RunCell>,
    pub tables: Vec<Table>,
    #[serde(skip)]
    pub files: Vec<PathBuf>,
}

/// Run folders under `path`: itself, or folders up to three levels below it.
pub fn run_dirs(path: &Path) -> Vec<PathBuf> {
    let is_run = |p: &Path| {
        p.join("config.toml").is_file() && report::FILES.iter().all(|f| p.join("predictions").join(f).is_file())
    };
    fn walk(p: &Path, depth: usize, is_run: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
        if is_run(p) {
            out.push(p.to_path_buf());
            return;
        }
        if depth == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(p) else { return };
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|d| d.is_dir()).collect();
        dirs.sort();
        for d in dirs {
            walk(&d, depth - 1, is_run, out);
        }
    }
    let mut out = Vec::new();
    walk(path, 3, &is_run, &mut out);
    out
}

/// Dataset, network and loss label of a run's `config.toml`.
pub fn identify(dir: &Path) -> Result<(String, String, String), PaperError> {
    let path = dir.join("config.toml");
    let bad = |message: String| PaperError::Config { path: path.clone(), message };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| bad(e.message().to_string()))?;
    let get = |section: &str, key: &str| table.get(section).and_then(|s| s.get(key)).and_then(|v| v.as_str());
    let task = table.get("task").and_then(|t| t.as_str()).ok_or_else(|| bad("no `task`".into()))?;
    let folder = || {
        get("data", "dir")
            .and_then(|d| Path::new(d).file_name().map(|f| f.to_string_lossy().into_owned()))
            .unwrap_or_else(|| task.to_string())
    };
    let (dataset, network) = match task {
        "image" => (
            get("data", "dataset").ok_or_else(|| bad("no data.dataset".into()))?.to_string(),
            get("model", "arch").ok_or_else(|| bad("no model.arch".into()))?.to_string(),
        ),
        "tree" => ("sst".to_string(), "tree-lstm".to_string()),
        "text" => ("20ng".to_string(), "gp-cnn".to_string()),
        "translation" => (folder(), format!("transformer-{}", get("model", "preset").unwrap_or("custom"))),
        other => return Err(bad(format!("unknown task '{other}'"))),
    };
    let loss = get("train", "loss").ok_or_else(|| bad("no train.loss".into()))?;
    let label = loss.parse::<LossSpec>().map_err(|e| bad(format!("train.loss: {e}")))?.label();
    Ok((dataset, network, label))
}

fn number(v: &serde_json::Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(|v| v.as_f64())
}

/// The histogram of a log line's `grad_norms` probe, when it has one.
fn grad_norms(v: &serde_json::Value) -> Option<(Vec<f64>, Vec<u64>)> {
    let g = v.get("grad_norms")?;
    let edges = g.get("log10_edges")?.as_array()?.iter().map(|e| e.as_f64()).collect::<Option<Vec<f64>>>()?;
    let counts = g.get("counts")?.as_array()?.iter().map(|c| c.as_u64()).collect::<Option<Vec<u64>>>()?;
    (edges.len() == counts.len() + 1).then_some((edges, counts))
}

/// A translation run's temperature study, when `calib study temperature` has written one.
pub fn read_study(dir: &Path) -> Result<Option<Study>, PaperError> {
    let path = dir.join("study-temperature/study.json");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let bad = || PaperError::Config { path: path.clone(), message: "no points with t, bleu and val_ece".into() };
    let points = v
        .get("points")
        .and_then(|p| p.as_array())
        .ok_or_else(bad)?
        .iter()
        .map(|p| Some((number(p, &["t"])?, number(p, &["bleu"])?, number(p, &["val_ece"])?)))
        .collect::<Option<Vec<_>>>()
        .filter(|p| !p.is_empty())
        .ok_or_else(bad)?;
    let chosen = number(&v, &["chosen_by_val_ece", "t"]).ok_or_else(bad)?;
    Ok(Some(Study { points, chosen }))
}

/// At most `n + 1` points of a curve, evenly spaced along it, the last one kept.
fn thin(curve: Vec<(f64, f64)>, n: usize) -> Vec<(f64, f64)> {
    if curve.len() <= n + 1 {
        return curve;
    }
    let step = curve.len().div_ceil(n);
    let last = *curve.last().expect("not empty");
    let mut out: Vec<(f64, f64)> = curve.into_iter().step_by(step).collect();
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// The points of `metrics.jsonl` (missing file: none).
pub fn read_epochs(dir: &Path) -> Result<Vec<EpochPoint>, PaperError> {
    let path = dir.join("metrics.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| PaperError::Log {
            path: path.clone(),
            line: i + 1,
            message: e.to_string(),
        })?;
        let epoch = v.get("epoch").and_then(|e| e.as_u64()).ok_or_else(|| PaperError::Log {
            path: path.clone(),
            line: i + 1,
            message: "no epoch".into(),
        })? as usize;
        let split = if v.get("test").is_some_and(|t| t.is_object()) { "test" } else { "val" };
        out.push(EpochPoint {
            epoch,
            test: split == "test",
            nll: number(&v, &[split, "nll"]),
            ece: number(&v, &[split, "ece"]),
            error: number(&v, &[split, "error"]),
            entropy_correct: number(&v, &[split, "entropy_correct"]),
            entropy_wrong: number(&v, &[split, "entropy_wrong"]),
            weight_norm: number(&v, &["last_layer_weight_norm"]),
            val_nll: number(&v, &["val", "nll"]),
            val_ece: number(&v, &["val", "ece"]),
            val_error: number(&v, &["val", "error"]),
            grad_norms: grad_norms(&v),
        });
    }
    Ok(out)
}

/// OOD AUROC of every `predictions/ood-NAME_logits.npy` of a run, before and after `t`.
fn ood_cells(pred: &Path, t: f64) -> Result<Vec<OodCell>, PaperError> {
    let mut names: Vec<String> = std::fs::read_dir(pred)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let f = e.file_name().to_string_lossy().into_owned();
                    f.strip_prefix("ood-").and_then(|r| r.strip_suffix("_logits.npy")).map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let inside = report::load(&pred.join("test_logits.npy"), &pred.join("test_labels.npy"))?;
    // The test set's scores before and after T once, for every OOD set.
    let (in_before, in_after) = (ood::softmax_scores(&inside, None)?, ood::softmax_scores(&inside, Some(t))?);
    let mut out = Vec::new();
    for name in names {
        let outside =
            report::load(&pred.join(format!("ood-{name}_logits.npy")), &pred.join(format!("ood-{name}_labels.npy")))?;
        ood::check_classes(&inside, &outside)?;
        let out_before = ood::softmax_scores(&outside, None)?;
        let before = ood::from_scores(&in_before, &out_before)?.auroc_entropy;
        let after = ood::from_scores(&in_after, &ood::softmax_scores(&outside, Some(t))?)?.auroc_entropy;
        // OOD is the positive class, entropy the score, as in the AUROC.
        let roc = thin(ood::roc_curve(&out_before.entropy, &in_before.entropy)?, 200);
        out.push(OodCell { name, before, after, roc });
    }
    Ok(out)
}

/// Reads every run of `opts.runs`, writes the tables and figures into `opts.out`, and returns
/// them.
pub fn build(opts: &Options, progress: &dyn Progress) -> Result<PaperReport, PaperError> {
    let mut dirs = Vec::new();
    for p in &opts.runs {
        let found = run_dirs(p);
        if found.is_empty() {
            return Err(PaperError::NoRuns { path: p.clone() });
        }
        dirs.extend(found);
    }
    let mut runs = Vec::new();
    for dir in dirs {
        let (dataset, network, loss) = identify(&dir)?;
        let pred = dir.join("predictions");
        let model = report::evaluate_model(&pred, &opts.report, progress)?;
        let checkpoint = std::fs::read_to_string(dir.join("report.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("checkpoint").and_then(|c| c.as_str()).map(str::to_string))
            .unwrap_or_else(|| "unrecorded".into());
        let ood = ood_cells(&pred, model.temperature)?;
        let epochs = read_epochs(&dir)?;
        let study = read_study(&dir)?;
        runs.push(RunCell { dir, dataset, network, loss, checkpoint, model, ood, epochs, study });
    }
    let tables = tables(&runs);
    let mut report = PaperReport { runs, tables, files: Vec::new() };
    report.files = write(&report, &opts.out)?;
    Ok(report)
}

/// The losses present, in the paper's order.
fn columns(runs: &[RunCell]) -> Vec<String> {
    let mut cols: Vec<String> =
        LOSS_ORDER.iter().filter(|l| runs.iter().any(|r| r.loss == **l)).map(|l| l.to_string()).collect();
    let mut extra: Vec<String> =
        runs.iter().map(|r| r.loss.clone()).filter(|l| !LOSS_ORDER.contains(&l.as_str())).collect();
    extra.sort();
    extra.dedup();
    cols.extend(extra);
    cols
}

/// Table rows (dataset / network) in first-seen order, each with its runs by loss.
fn rows(runs: &[RunCell]) -> Vec<(String, BTreeMap<String, &RunCell>)> {
    let mut out: Vec<(String, BTreeMap<String, &RunCell>)> = Vec::new();
    for r in runs {
        let row = r.row();
        match out.iter_mut().find(|(name, _)| *name == row) {
            Some((_, cells)) => {
                cells.insert(r.loss.clone(), r);
            }
            None => out.push((row, BTreeMap::from([(r.loss.clone(), r)]))),
        }
    }
    out
}

/// A dataset × network by loss table of `cell(run)`.
fn grid(id: &str, title: &str, runs: &[RunCell], cell: impl Fn(&RunCell) -> String) -> Table {
    let cols = columns(runs);
    let header: Vec<&str> = std::iter::once("dataset / network").chain(cols.iter().map(String::as_str)).collect();
    let body: Vec<Vec<String>> = rows(runs)
        .into_iter()
        .map(|(row, cells)| {
            std::iter::once(row).chain(cols.iter().map(|c| cells.get(c).map_or("—".into(), |r| cell(r)))).collect()
        })
        .collect();
    Table {
        id: id.into(),
        title: title.into(),
        markdown: render(&header, &body, Style::Markdown),
        latex: latex(title, &header, &body),
    }
}

/// A LaTeX `tabular` (booktabs) with the title as caption.
fn latex(title: &str, header: &[&str], body: &[Vec<String>]) -> String {
    let esc = |s: &str| s.replace('%', "\\%").replace('_', "\\_").replace('&', "\\&").replace('—', "--");
    let mut s = format!(
        "\\begin{{table}}[t]\n\\centering\n\\caption{{{}}}\n\\begin{{tabular}}{{l{}}}\n\\toprule\n",
        esc(title),
        "c".repeat(header.len() - 1)
    );
    s += &header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" & ");
    s += " \\\\\n\\midrule\n";
    for row in body {
        s += &row.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" & ");
        s += " \\\\\n";
    }
    s + "\\bottomrule\n\\end{tabular}\n\\end{table}\n"
}

fn before_after(before: f64, after: f64) -> String {
    format!("{} / {}", percent(Some(before)), percent(Some(after)))
}

/// Every table of the module's list that the runs give.
pub fn tables(runs: &[RunCell]) -> Vec<Table> {
    let mut out = vec![
        grid("table1-ece", "Table 1: test ECE (%) before temperature scaling, after it (T)", runs, |r| {
            format!(
                "{} ({} ({:.1}))",
                percent(Some(r.model.before.ece)),
                percent(Some(r.model.after.ece)),
                r.model.temperature
            )
        }),
        grid("table2-error", "Table 2: test error (%)", runs, |r| percent(Some(r.model.before.error))),
        grid("tableF1-adaece", "Table F.1: test AdaECE (%) before / after T", runs, |r| {
            before_after(r.model.before.adaece, r.model.after.adaece)
        }),
        grid("tableF2-classwise-ece", "Table F.2: test classwise-ECE (%) before / after T", runs, |r| {
            before_after(r.model.before.classwise_ece, r.model.after.classwise_ece)
        }),
        grid("tableF7-topk", "Table F.7: top-1 / top-5 test error (%)", runs, |r| {
            before_after(r.model.before.error, r.model.before.top5_error)
        }),
        grid("tableF8-nll", "Tables F.8–F.9: test NLL before / after T", runs, |r| {
            format!("{} / {}", fixed(Some(r.model.before.nll), 3), fixed(Some(r.model.after.nll), 3))
        }),
        grid("tableF10-mce", "Tables F.10–F.11: test MCE (%) before / after T", runs, |r| {
            before_after(r.model.before.mce, r.model.after.mce)
        }),
        grid("tableH1-s99", "Table H.1: test samples with confidence ≥ 0.99 (%) and their accuracy (%)", runs, |r| {
            format!("{} ({})", percent(Some(r.model.before.s99_fraction)), percent(r.model.before.s99_accuracy))
        }),
        grid(
            "tableJ1-checkpoints",
            "Table J.1: test error / ECE (%) of the epochs best by validation ECE, NLL and error (the epoch in brackets; \
             the epoch alone where the run did not probe the test split each epoch), and of the evaluated checkpoint",
            runs,
            |r| {
                let at = |pick: fn(&EpochPoint) -> Option<f64>| match r.best_epoch(pick) {
                    None => "—".to_string(),
                    Some((epoch, _)) => match r.epochs.iter().find(|p| p.epoch == epoch && p.test) {
                        Some(p) => format!("{} / {} ({epoch})", percent(p.error), percent(p.ece)),
                        None => format!("epoch {epoch}"),
                    },
                };
                format!(
                    "ECE: {} · NLL: {} · error: {} · {}: {}",
                    at(|p| p.val_ece),
                    at(|p| p.val_nll),
                    at(|p| p.val_error),
                    r.checkpoint,
                    before_after(r.model.before.error, r.model.before.ece)
                )
            },
        ),
    ];
    let ood_names: Vec<String> = {
        let mut n: Vec<String> = runs.iter().flat_map(|r| r.ood.iter().map(|o| o.name.clone())).collect();
        n.sort();
        n.dedup();
        n
    };
    let studied: Vec<RunCell> = runs.iter().filter(|r| r.study.is_some()).cloned().collect();
    if !studied.is_empty() {
        out.push(grid(
            "tableK1-translation",
            "Table K.1: test BLEU and validation token ECE (%) at T = 1 and at the T of lowest validation ECE (T)",
            &studied,
            |r| {
                let s = r.study.as_ref().expect("filtered");
                let at = |t: f64| {
                    s.points.iter().min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs())).expect("points")
                };
                let (one, best) = (at(1.0), at(s.chosen));
                format!(
                    "BLEU {:.2} → {:.2}, ECE {} → {} ({})",
                    one.1,
                    best.1,
                    percent(Some(one.2)),
                    percent(Some(best.2)),
                    s.chosen
                )
            },
        ));
    }
    for name in ood_names {
        let with: Vec<RunCell> = runs.iter().filter(|r| r.ood.iter().any(|o| o.name == name)).cloned().collect();
        out.push(grid(
            &format!("table3-ood-{name}"),
            &format!("Table 3: OOD AUROC (%) against {name}, entropy as the score, before / after T"),
            &with,
            |r| {
                let o = r.ood.iter().find(|o| o.name == name).expect("filtered");
                before_after(o.before, o.after)
            },
        ));
    }
    out
}

/// Writes the tables (`.md`, `.tex`), `tables.md` with all of them, `paper.json` and the figures.
fn write(report: &PaperReport, out: &Path) -> Result<Vec<PathBuf>, PaperError> {
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures).map_err(|source| ReportError::CreateFolder { path: figures.clone(), source })?;
    let mut files = Vec::new();
    let mut all = String::from("# The paper's tables from our runs\n\n");
    for t in &report.tables {
        for (ext, text) in [("md", format!("## {}\n\n{}\n", t.title, t.markdown)), ("tex", t.latex.clone())] {
            let f = out.join(format!("{}.{ext}", t.id));
            calib::atomic::write(&f, text.as_bytes())?;
            files.push(f);
        }
        all += &format!("## {}\n\n{}\n\n", t.title, t.markdown);
    }
    all += &runs_list(&report.runs);
    let f = out.join("tables.md");
    calib::atomic::write(&f, all.as_bytes())?;
    files.push(f);
    let f = out.join("paper.json");
    calib::atomic::write(&f, serde_json::to_string_pretty(report)?.as_bytes())?;
    files.push(f);
    files.extend(write_figures(&report.runs, &figures)?);
    Ok(files)
}

/// Which folder each cell came from.
fn runs_list(runs: &[RunCell]) -> String {
    let mut s = String::from("## Runs\n\n");
    for r in runs {
        s += &format!("- {} {}: `{}` (checkpoint {})\n", r.row(), r.loss, r.dir.display(), r.checkpoint);
    }
    s
}

fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// Which value of an epoch a training-dynamics panel draws.
type Pick = fn(&EpochPoint) -> Option<f64>;

/// Figure 4 per row, training dynamics per row, and g(p, γ).
fn write_figures(runs: &[RunCell], dir: &Path) -> Result<Vec<PathBuf>, PaperError> {
    let mut files = Vec::new();
    let mut save = |name: String, svg: String| -> Result<(), PaperError> {
        let f = dir.join(name);
        plot::save_with_png(&f, &svg)?;
        files.push(f.with_extension("png"));
        files.push(f);
        Ok(())
    };
    save("figure3a-g.svg".into(), plot::gamma_curves(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])?)?;
    let cols = columns(runs);
    for (row, cells) in rows(runs) {
        let ordered: Vec<&RunCell> = cols.iter().filter_map(|c| cells.get(c).copied()).collect();
        let bars: Vec<plot::CiBar> = ordered
            .iter()
            .map(|r| plot::CiBar {
                label: r.loss.clone(),
                before: (r.model.before.ece, r.model.ci_before.ece.lower, r.model.ci_before.ece.upper),
                after: (r.model.after.ece, r.model.ci_after.ece.lower, r.model.ci_after.ece.upper),
            })
            .collect();
        save(format!("figure4-ece-{}.svg", slug(&row)), plot::ci_bars(&bars, &format!("Test ECE, {row}"), "ECE (%)")?)?;
        // (name, whether the value belongs to a split, how to read it)
        let panels: [(&str, bool, Pick); 5] = [
            ("NLL", true, |p| p.nll),
            ("ECE (%)", true, |p| p.ece.map(|v| 100.0 * v)),
            ("entropy of correct samples", true, |p| p.entropy_correct),
            ("entropy of wrong samples", true, |p| p.entropy_wrong),
            ("last-layer weight norm", false, |p| p.weight_norm),
        ];
        let probed: Vec<(String, Vec<f64>, Vec<u64>)> = ordered
            .iter()
            .filter_map(|r| {
                let last = r.epochs.iter().rev().find_map(|p| p.grad_norms.clone().map(|g| (p.epoch, g)))?;
                Some((format!("{} (epoch {})", r.loss, last.0), last.1 .0, last.1 .1))
            })
            .collect();
        if !probed.is_empty() {
            let title = format!("{row}: per-sample gradient norms, last probed epoch");
            save(format!("figure3-grad-norms-{}.svg", slug(&row)), plot::grad_norm_histograms(&probed, &title)?)?;
        }
        let mut ood_sets: Vec<&str> = ordered.iter().flat_map(|r| r.ood.iter().map(|o| o.name.as_str())).collect();
        ood_sets.sort();
        ood_sets.dedup();
        for set in ood_sets {
            let series: Vec<(String, Vec<(f64, f64)>)> = ordered
                .iter()
                .filter_map(|r| r.ood.iter().find(|o| o.name == set).map(|o| (r.loss.clone(), o.roc.clone())))
                .collect();
            let title = format!("{row}: ROC against {set} (entropy, before T)");
            let svg = plot::curves(&series, &title, "false-positive rate", "true-positive rate")?;
            save(format!("figure-roc-{}-{}.svg", slug(set), slug(&row)), svg)?;
        }
        for r in ordered.iter().filter(|r| r.study.is_some()) {
            let s = r.study.as_ref().expect("filtered");
            let (t, bleu, ece): (Vec<f64>, Vec<f64>, Vec<f64>) = (
                s.points.iter().map(|p| p.0).collect(),
                s.points.iter().map(|p| p.1).collect(),
                s.points.iter().map(|p| p.2).collect(),
            );
            let title = format!("{row}, {}: BLEU and ECE against T", r.loss);
            let svg = plot::bleu_ece_vs_temperature(&t, &bleu, &ece, s.chosen, &title)?;
            save(format!("figureK1-{}-{}.svg", slug(&row), slug(&r.loss)), svg)?;
        }
        // A run that probed the test split is drawn from its test epochs, one that did not from its
        // validation epochs; where a row has both kinds, the legend marks the validation curves so
        // that no validation figure passes for a test one.
        let probed_test: Vec<bool> = ordered.iter().map(|r| r.epochs.iter().any(|p| p.test)).collect();
        let (any_test, all_test) = (probed_test.contains(&true), !probed_test.contains(&false));
        for (i, (name, per_split, pick)) in panels.iter().enumerate() {
            let series: Vec<(String, Vec<(f64, f64)>)> = ordered
                .iter()
                .zip(&probed_test)
                .map(|(r, &test)| {
                    let label = if *per_split && any_test && !test {
                        format!("{} (validation)", r.loss)
                    } else {
                        r.loss.clone()
                    };
                    let points = r.epochs.iter().filter(|p| !per_split || p.test == test);
                    (label, points.filter_map(|p| pick(p).map(|v| (p.epoch as f64, v))).collect())
                })
                .filter(|(_, pts): &(String, Vec<(f64, f64)>)| !pts.is_empty())
                .collect();
            if !series.is_empty() {
                let title = match (per_split, any_test, all_test) {
                    (false, _, _) => format!("{row}: {name} by epoch"),
                    (true, true, true) => format!("{row}: test {name} by epoch"),
                    (true, true, false) => format!("{row}: test {name} by epoch (validation where marked)"),
                    (true, false, _) => format!("{row}: validation {name} by epoch"),
                };
                save(format!("figure1-{}-{}.svg", i + 1, slug(&row)), plot::curves(&series, &title, "epoch", name)?)?;
            }
        }
    }
    Ok(files)
}

impl PaperReport {
    /// What the terminal shows: Table 1 and where everything went.
    pub fn terminal_text(&self, out: &Path) -> String {
        let first = self.tables.first().map_or(String::new(), |t| format!("{}\n{}\n", t.title, t.markdown));
        format!("{first}wrote {} tables and figures to {}", self.tables.len(), out.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calib::npy;

    /// A run folder of `loss` whose logits put `margin` on the true class of 60 samples (every
    /// fifth one wrong), with a two-epoch log.
    fn write_run(dir: &Path, dataset: &str, loss: &str, margin: f32, ood: bool) {
        let pred = dir.join("predictions");
        std::fs::create_dir_all(&pred).unwrap();
        std::fs::write(
            dir.join("config.toml"),
            format!("task = \"image\"\n[data]\ndataset = \"{dataset}\"\n[model]\narch = \"resnet50\"\n[train]\nloss = \"{loss}\"\n"),
        )
        .unwrap();
        let (n, k) = (60usize, 4usize);
        let (mut logits, mut labels) = (Vec::new(), Vec::new());
        for i in 0..n {
            let y = i % k;
            let top = if i % 5 == 0 { (y + 1) % k } else { y };
            for c in 0..k {
                logits.push(if c == top { margin } else { 0.1 * (i % 3) as f32 });
            }
            labels.push(y as i64);
        }
        let mut splits = vec!["val", "test"];
        if ood {
            splits.push("ood-svhn");
        }
        for split in splits {
            npy::write(&pred.join(format!("{split}_logits.npy")), &[n, k], &logits).unwrap();
            npy::write(&pred.join(format!("{split}_labels.npy")), &[n], &labels).unwrap();
        }
        // The CIFAR-10 runs probed the test split each epoch; the CIFAR-100 one did not.
        let (t1, t2) = if ood {
            ("{\"nll\":1.0,\"ece\":0.06,\"error\":0.31}", "{\"nll\":0.85,\"ece\":0.08,\"error\":0.21}")
        } else {
            ("null", "null")
        };
        let log = format!(
            "{{\"epoch\":1,\"val\":{{\"nll\":0.9,\"ece\":0.05,\"error\":0.3,\"entropy_correct\":0.5,\"entropy_wrong\":0.9}},\"test\":{t1},\"last_layer_weight_norm\":2.0}}\n\
             {{\"epoch\":2,\"val\":{{\"nll\":0.8,\"ece\":0.07,\"error\":0.2,\"entropy_correct\":0.4,\"entropy_wrong\":0.8}},\"test\":{t2},\"last_layer_weight_norm\":2.5,\"grad_norms\":{{\"log10_edges\":[-2.0,-1.0,0.0],\"counts\":[3,5]}}}}\n"
        );
        std::fs::write(dir.join("metrics.jsonl"), log).unwrap();
        std::fs::write(dir.join("report.json"), "{\"checkpoint\":\"last\"}").unwrap();
    }

    #[test]
    fn runs_become_the_papers_tables() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        write_run(&runs.join("c10/ce"), "cifar10", "ce", 4.0, true);
        write_run(&runs.join("c10/flsd"), "cifar10", "flsd:53", 1.5, true);
        write_run(&runs.join("c100/brier"), "cifar100", "brier", 2.0, false);
        let study = runs.join("c100/brier/study-temperature");
        std::fs::create_dir_all(&study).unwrap();
        let points = r#"{"points":[{"t":0.8,"bleu":20.0,"val_ece":0.05},{"t":1.0,"bleu":21.5,"val_ece":0.03},{"t":1.2,"bleu":21.0,"val_ece":0.02}],"chosen_by_val_ece":{"t":1.2}}"#;
        std::fs::write(study.join("study.json"), points).unwrap();
        let out = dir.path().join("out");
        let r = build(&Options::new(vec![runs], &out).with_bootstrap(20), &()).unwrap();
        assert_eq!(r.runs.len(), 3);
        let t1 = &r.tables[0];
        // Columns in the paper's order, one row per dataset / network, a dash where no run is.
        let header = t1.markdown.lines().next().unwrap();
        assert!(header.starts_with("| dataset / network") && header.contains("Brier"), "{header}");
        assert!(header.find("CE").unwrap() < header.find("Brier").unwrap());
        assert!(header.find("Brier").unwrap() < header.find("FLSD-53").unwrap());
        let c100 = t1.markdown.lines().find(|l| l.contains("cifar100 / resnet50")).unwrap();
        assert_eq!(c100.matches('—').count(), 2, "{c100}");
        // The CE cell holds its own ECE, after-T ECE and T.
        let ce = r.runs.iter().find(|c| c.loss == "CE").unwrap();
        let cell = format!(
            "{} ({} ({:.1}))",
            percent(Some(ce.model.before.ece)),
            percent(Some(ce.model.after.ece)),
            ce.model.temperature
        );
        assert!(t1.markdown.contains(&format!("| {cell} |")), "{cell} not in\n{}", t1.markdown);
        assert!(t1.latex.contains("\\toprule") && t1.latex.contains("FLSD-53") && t1.latex.contains("\\%"));
        // J.1 picks epoch 1 by ECE, 2 by NLL and error: their test error and ECE where the run
        // probed the test split, the epochs alone where it did not, and the evaluated model's.
        let j1 = r.tables.iter().find(|t| t.id == "tableJ1-checkpoints").unwrap();
        let ce_cell = format!(
            "ECE: 31.00 / 6.00 (1) · NLL: 21.00 / 8.00 (2) · error: 21.00 / 8.00 (2) · last: {}",
            before_after(ce.model.before.error, ce.model.before.ece)
        );
        assert!(j1.markdown.contains(&ce_cell), "{ce_cell} not in\n{}", j1.markdown);
        assert!(j1.markdown.contains("ECE: epoch 1 · NLL: epoch 2 · error: epoch 2 · last: "), "{}", j1.markdown);
        let ood = r.tables.iter().find(|t| t.id == "table3-ood-svhn").unwrap();
        assert!(ood.markdown.contains("cifar10 / resnet50") && !ood.markdown.contains("cifar100"));
        for f in [
            "table1-ece.md",
            "table1-ece.tex",
            "tables.md",
            "paper.json",
            "figures/figure3a-g.svg",
            "figures/figure3a-g.png",
        ] {
            assert!(out.join(f).is_file(), "{f}");
        }
        assert!(out.join("figures/figure4-ece-cifar10---resnet50.svg").is_file());
        assert!(out.join("figures/figure1-1-cifar10---resnet50.svg").is_file());
        assert!(out.join("figures/figure3-grad-norms-cifar10---resnet50.png").is_file());
        assert!(out.join("figures/figure-roc-svhn-cifar10---resnet50.svg").is_file());
        assert!(out.join("figures/figureK1-cifar100---resnet50-brier.svg").is_file());
        // K.1 reads the study: BLEU and ECE at T = 1 and at the chosen T.
        let k1 = r.tables.iter().find(|t| t.id == "tableK1-translation").unwrap();
        assert!(k1.markdown.contains("BLEU 21.50 → 21.00, ECE 3.00 → 2.00 (1.2)"), "{}", k1.markdown);
        // The ROC curve runs from (0, 0) to (1, 1) and its area is the AUROC.
        let o = &r.runs.iter().find(|c| c.loss == "CE").unwrap().ood[0];
        assert_eq!((o.roc[0], *o.roc.last().unwrap()), ((0.0, 0.0), (1.0, 1.0)));
        let area: f64 = o.roc.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
        assert!((area - o.before).abs() < 1e-9, "{area} vs {}", o.before);
    }

    #[test]
    fn a_row_of_probed_and_unprobed_runs_marks_its_validation_curves() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        write_run(&runs.join("ce"), "cifar10", "ce", 4.0, true);
        write_run(&runs.join("brier"), "cifar10", "brier", 2.0, false);
        let out = dir.path().join("out");
        build(&Options::new(vec![runs], &out).with_bootstrap(20), &()).unwrap();
        let figure =
            |i: usize| std::fs::read_to_string(out.join(format!("figures/figure1-{i}-cifar10---resnet50.svg")));
        let ece = figure(2).unwrap();
        assert!(ece.contains("test ECE (%) by epoch (validation where marked)"), "{ece}");
        assert!(ece.contains("Brier (validation)") && !ece.contains("CE (validation)"), "{ece}");
        // The weight norm belongs to no split: neither marked nor named for one.
        let norm = figure(5).unwrap();
        assert!(norm.contains("cifar10 / resnet50: last-layer weight norm by epoch"), "{norm}");
        assert!(!norm.contains("(validation)"), "{norm}");
    }

    #[test]
    fn errors_name_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let e = build(&Options::new(vec![dir.path().to_path_buf()], dir.path().join("out")), &()).unwrap_err();
        assert!(e.to_string().contains("no run folder"), "{e}");
        write_run(&dir.path().join("r"), "cifar10", "nonsense:1", 2.0, false);
        let e = build(&Options::new(vec![dir.path().to_path_buf()], dir.path().join("out")), &()).unwrap_err();
        assert!(e.to_string().contains("config.toml") && e.to_string().contains("train.loss"), "{e}");
    }
}
