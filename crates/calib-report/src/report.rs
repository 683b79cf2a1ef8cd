//! The calibration report of one or more models' predictions: for every model folder
//! (`val_logits.npy`, `val_labels.npy`, `test_logits.npy`, `test_labels.npy`, as `calib eval`
//! writes them) it chooses T on the validation split by the paper's ECE grid, reports test metrics
//! before and after scaling with bootstrap intervals, draws reliability diagrams, and writes
//! `report.json` and `report.md`. Beside temperature scaling it fits every post-hoc method of
//! `calib::calibrators` that applies on the validation split and reports its test metrics, with
//! the reliability diagram of the one of lowest ECE.
//!
//! ```no_run
//! use calib_report::report::{self, Options};
//!
//! let opts = Options::new(vec!["data/predictions".into()], "runs/report").with_bootstrap(200);
//! let result = report::build(&opts, &())?;
//! println!("T = {}", result.models[0].temperature);
//! println!("{}", result.terminal_text());
//! # Ok::<(), report::ReportError>(())
//! ```
//!
//! Nothing is printed: the bootstrap's progress reaches the caller through [`Progress`].

use crate::plot;
use crate::table::{fixed, percent, render, Style};
use calib::bootstrap::{self, Interval, MetricIntervals, Settings};
use calib::calibrators::{self, Method, Predictions};
use calib::metrics::{self, Mode, Report};
use calib::{npy, temperature, ScoreKind, Scores};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The files a model folder holds.
pub const FILES: [&str; 4] = ["val_logits.npy", "val_labels.npy", "test_logits.npy", "test_labels.npy"];

/// Coverage of the bootstrap intervals.
pub const LEVEL: f64 = 0.9;

/// What to report on and where. Non-exhaustive: build it with [`Options::new`] and the `with_*`
/// methods (defaults: 1000 resamples, seed 0, 15 bins).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// Model folders with val/test logits and labels, or folders of such folders.
    pub inputs: Vec<PathBuf>,
    /// Where report.json, report.md and plots/ go.
    pub out: PathBuf,
    /// Bootstrap resamples for the 90 % intervals.
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Bins of the calibration metrics.
    pub bins: usize,
}

impl Options {
    pub fn new(inputs: Vec<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self { inputs, out: out.into(), bootstrap: 1000, seed: 0, bins: 15 }
    }

    pub fn with_bootstrap(mut self, resamples: usize) -> Self {
        self.bootstrap = resamples;
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn with_bins(mut self, bins: usize) -> Self {
        self.bins = bins;
        self
    }

    fn settings(&self) -> Settings {
        Settings::new(self.bootstrap, LEVEL, self.seed)
    }
}

/// Progress of the bootstrap, for a progress bar. Every method has an empty default; `()`
/// reports nothing. `advance` is called from worker threads.
pub trait Progress: Sync {
    /// A bootstrap of `resamples` resamples starts; `label` names it (e.g. "ce before").
    fn begin(&self, label: &str, resamples: usize) {
        let _ = (label, resamples);
    }
    /// One resample is done.
    fn advance(&self) {}
    /// The bootstrap begun last is done.
    fn end(&self) {}
}

impl Progress for () {}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("{}: cannot read the data folder", path.display())]
    ReadFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no model folder with {} found", path.display(), FILES.join(", "))]
    NoModels { path: PathBuf },
    #[error("{}: cannot create", path.display())]
    CreateFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the logits array has shape [{n}, {k}]; it needs at least one row and one class", path.display())]
    EmptyArray { path: PathBuf, n: usize, k: usize },
    #[error("{} has {rows} rows but {} has {labels} labels", scores.display(), labels_path.display())]
    LabelCount { scores: PathBuf, rows: usize, labels_path: PathBuf, labels: usize },
    /// The values or labels of a pair of files are invalid; `path` names the file at fault (or
    /// both, separated by " / ").
    #[error("{path}: {source}")]
    Predictions { path: String, source: calib::Error },
    #[error(transparent)]
    Core(#[from] calib::Error),
    #[error(transparent)]
    Plot(#[from] crate::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// One model's report.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ModelReport {
    pub name: String,
    /// T chosen on the validation split by the ECE grid.
    pub temperature: f64,
    /// Test metrics before and after scaling.
    pub before: Report,
    pub after: Report,
    /// Their bootstrap intervals.
    pub ci_before: MetricIntervals,
    pub ci_after: MetricIntervals,
    /// Every post-hoc method that applies, fitted on the validation split, on the test split.
    pub posthoc: Vec<PostHoc>,
    /// The folder the predictions came from.
    #[serde(skip)]
    pub source: PathBuf,
    /// The reliability diagrams written (before, after).
    #[serde(skip)]
    pub files: Vec<PathBuf>,
}

/// One post-hoc method's test metrics, or why its fit failed (a method without a finite optimum
/// on this validation split is refused, not reported as the input).
#[derive(Debug, Clone, Serialize)]
pub struct PostHoc {
    pub method: String,
    pub after: Option<Report>,
    pub error: Option<String>,
}

/// The columns of the post-hoc table: header, value, whether shown as a percentage.
type Column = (&'static str, fn(&Report) -> f64, bool);
const POSTHOC_COLUMNS: [Column; 6] = [
    ("ECE %", |r| r.ece, true),
    ("AdaECE %", |r| r.adaece, true),
    ("CW-ECE %", |r| r.classwise_ece, true),
    ("smooth ECE %", |r| r.smece, true),
    ("NLL", |r| r.nll, false),
    ("Brier", |r| r.brier, false),
];

/// The report of every model; serialises to what `report.json` holds.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CalibrationReport {
    /// The inputs as given.
    pub predictions: Vec<PathBuf>,
    pub bins: usize,
    pub mode: Mode,
    pub temperature_method: &'static str,
    pub bootstrap: Settings,
    pub models: Vec<ModelReport>,
    /// The output folder.
    #[serde(skip)]
    pub out: PathBuf,
    /// report.json and report.md.
    #[serde(skip)]
    pub files: Vec<PathBuf>,
}

/// `data` itself when it holds predictions, else its sub-folders that do, sorted.
pub fn model_dirs(data: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let holds = |p: &Path| FILES.iter().all(|f| p.join(f).is_file());
    if holds(data) {
        return Ok(vec![data.to_path_buf()]);
    }
    let entries =
        std::fs::read_dir(data).map_err(|source| ReportError::ReadFolder { path: data.to_path_buf(), source })?;
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| holds(p)).collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(ReportError::NoModels { path: data.to_path_buf() });
    }
    Ok(dirs)
}

/// Reads `[n, k]` logits and `[n]` labels and validates them together, naming the file at fault.
pub fn load(scores: &Path, labels: &Path) -> Result<Scores<f64>, ReportError> {
    let values = npy::read_floats(scores, 2, "logits")?;
    let y = npy::read_labels(labels)?;
    let (n, k) = (values.shape()[0], values.shape()[1]);
    if n == 0 || k == 0 {
        return Err(ReportError::EmptyArray { path: scores.to_path_buf(), n, k });
    }
    if y.len() != n {
        return Err(ReportError::LabelCount {
            scores: scores.to_path_buf(),
            rows: n,
            labels_path: labels.to_path_buf(),
            labels: y.len(),
        });
    }
    Scores::from_values(values.values, k, &y, ScoreKind::Logits).map_err(|source| {
        let path = match source {
            calib::Error::LabelOutOfRange { .. } => labels.display().to_string(),
            calib::Error::NotFinite { .. } | calib::Error::NotProbability { .. } => scores.display().to_string(),
            _ => format!("{} / {}", scores.display(), labels.display()),
        };
        ReportError::Predictions { path, source }
    })
}

/// One model folder's report: T from the validation split's ECE grid, test metrics before and
/// after it, and their bootstrap intervals (`o.inputs` and `o.out` are not read).
pub fn evaluate_model(dir: &Path, o: &Options, progress: &dyn Progress) -> Result<ModelReport, ReportError> {
    // A run's predictions live in runs/<name>/predictions: name the model after the run.
    let named = if dir.file_name().is_some_and(|f| f == "predictions") { dir.parent().unwrap_or(dir) } else { dir };
    let name = named.file_name().map_or("model".into(), |f| f.to_string_lossy().into_owned());
    let val = load(&dir.join(FILES[0]), &dir.join(FILES[1]))?;
    let test = load(&dir.join(FILES[2]), &dir.join(FILES[3]))?;
    let opts = metrics::Options::new(o.bins, Mode::Corrected);
    opts.validate()?;
    let t = temperature::grid_search(&val, opts.bins, opts.mode)?.t_ece;
    let scaled = opts.with_temperature(t);
    let settings = o.settings();
    let mut intervals = Vec::new();
    for (m, when) in [(&opts, "before"), (&scaled, "after")] {
        progress.begin(&format!("{name} {when}"), o.bootstrap);
        let ci = bootstrap::metrics_with_progress(&test, m, &settings, || progress.advance());
        progress.end();
        intervals.push(ci?);
    }
    let ci_after = intervals.pop().expect("two runs");
    let ci_before = intervals.pop().expect("two runs");
    let val_rows = Predictions::of_scores(&val);
    let posthoc = Method::all(val.k(), ScoreKind::Logits)
        .into_iter()
        .map(|m| match calibrators::fit_and_judge(m, &val_rows, val.labels(), &test, &opts) {
            Ok(j) => PostHoc { method: m.to_string(), after: Some(j.after), error: None },
            Err(e) => PostHoc { method: m.to_string(), after: None, error: Some(e.to_string()) },
        })
        .collect();
    Ok(ModelReport {
        name,
        temperature: t,
        before: metrics::evaluate(&test, &opts)?,
        after: metrics::evaluate(&test, &scaled)?,
        ci_before,
        ci_after,
        posthoc,
        source: dir.to_path_buf(),
        files: Vec::new(),
    })
}

/// Reads every model folder of `opts.inputs`, writes `report.json`, `report.md` and
/// `plots/<model>-{before,after}.svg` into `opts.out`, and returns the report.
pub fn build(opts: &Options, progress: &dyn Progress) -> Result<CalibrationReport, ReportError> {
    opts.settings().validate()?;
    let mut dirs = Vec::new();
    for d in &opts.inputs {
        dirs.extend(model_dirs(d)?);
    }
    let plots = opts.out.join("plots");
    std::fs::create_dir_all(&plots).map_err(|source| ReportError::CreateFolder { path: plots.clone(), source })?;
    let mut models = Vec::new();
    for dir in &dirs {
        let mut r = evaluate_model(dir, opts, progress)?;
        let mut diagrams = vec![
            ("before", &r.before, "before scaling".to_string()),
            ("after", &r.after, format!("T = {:.1}", r.temperature)),
        ];
        diagrams.extend(r.best_posthoc().map(|(m, rep)| ("best-posthoc", rep, format!("{m} (lowest post-hoc ECE)"))));
        let mut files = Vec::new();
        for (when, rep, label) in diagrams {
            let svg = plot::reliability_diagram(
                &rep.bins,
                &format!("{} {label}", r.name),
                &format!("ECE {}%", percent(Some(rep.ece))),
            )?;
            let file = plots.join(format!("{}-{when}.svg", r.name));
            plot::save(&file, &svg)?;
            files.push(file);
        }
        r.files.extend(files);
        models.push(r);
    }
    let mut report = CalibrationReport {
        predictions: opts.inputs.clone(),
        bins: opts.bins,
        mode: Mode::Corrected,
        temperature_method: "ece-grid on the validation split",
        bootstrap: opts.settings(),
        models,
        out: opts.out.clone(),
        files: Vec::new(),
    };
    let json = report.out.join("report.json");
    calib::atomic::write(&json, report.to_json_string()?.as_bytes())?;
    let md = report.out.join("report.md");
    calib::atomic::write(&md, report.markdown().as_bytes())?;
    report.files = vec![json, md];
    Ok(report)
}

impl ModelReport {
    /// The post-hoc method with the lowest test ECE, if any fitted.
    pub fn best_posthoc(&self) -> Option<(&str, &Report)> {
        self.posthoc
            .iter()
            .filter_map(|p| p.after.as_ref().map(|a| (p.method.as_str(), a)))
            .min_by(|a, b| a.1.ece.total_cmp(&b.1.ece))
    }
}

fn with_ci(v: f64, i: &Interval) -> String {
    format!("{} ({}–{})", percent(Some(v)), percent(Some(i.lower)), percent(Some(i.upper)))
}

impl CalibrationReport {
    /// The report as JSON, as `report.json` holds it.
    pub fn to_json(&self) -> Result<serde_json::Value, ReportError> {
        Ok(serde_json::to_value(self)?)
    }

    /// [`CalibrationReport::to_json`], pretty-printed.
    pub fn to_json_string(&self) -> Result<String, ReportError> {
        Ok(serde_json::to_string_pretty(&self.to_json()?)?)
    }

    /// One row per model: error, NLL, ECE (with its interval), AdaECE, classwise-ECE, T, and the
    /// same after scaling.
    pub fn table(&self, style: Style) -> String {
        let rows: Vec<Vec<String>> = self
            .models
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    percent(Some(r.before.error)),
                    fixed(Some(r.before.nll), 3),
                    with_ci(r.before.ece, &r.ci_before.ece),
                    percent(Some(r.before.adaece)),
                    percent(Some(r.before.classwise_ece)),
                    format!("{:.1}", r.temperature),
                    with_ci(r.after.ece, &r.ci_after.ece),
                    percent(Some(r.after.adaece)),
                    percent(Some(r.after.classwise_ece)),
                    fixed(Some(r.after.nll), 3),
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

    /// One row per model and post-hoc method (the uncalibrated test metrics first); the lowest
    /// value of each metric per model is marked `*`.
    pub fn posthoc_table(&self, style: Style) -> String {
        let mut rows = Vec::new();
        for r in &self.models {
            let reports: Vec<(&str, Option<&Report>, Option<&str>)> =
                std::iter::once(("uncalibrated", Some(&r.before), None))
                    .chain(r.posthoc.iter().map(|p| (p.method.as_str(), p.after.as_ref(), p.error.as_deref())))
                    .collect();
            let best: Vec<f64> = POSTHOC_COLUMNS
                .iter()
                .map(|(_, get, _)| reports.iter().filter_map(|(_, a, _)| a.map(get)).fold(f64::INFINITY, f64::min))
                .collect();
            for (method, after, error) in reports {
                let mut row = vec![r.name.clone(), method.to_string()];
                match after {
                    Some(a) => row.extend(POSTHOC_COLUMNS.iter().zip(&best).map(|((_, get, pct), b)| {
                        let v = get(a);
                        let text = if *pct { percent(Some(v)) } else { fixed(Some(v), 3) };
                        if v == *b {
                            format!("{text} *")
                        } else {
                            text
                        }
                    })),
                    None => {
                        row.push(format!("failed: {}", error.unwrap_or("no result")));
                        row.extend(std::iter::repeat_n(String::new(), POSTHOC_COLUMNS.len() - 1));
                    }
                }
                rows.push(row);
            }
        }
        let header: Vec<&str> = ["model", "method"].into_iter().chain(POSTHOC_COLUMNS.iter().map(|c| c.0)).collect();
        render(&header, &rows, style)
    }

    /// What `report.md` holds.
    pub fn markdown(&self) -> String {
        format!(
            "# Calibration report\n\nTest-set metrics of the predictions in {} before and after temperature scaling \
             (T chosen on the validation split by the paper's ECE grid; {} bins, corrected mode; 90 % bootstrap intervals \
             from {} resamples, seed {}).\n\n{}\n\n## Post-hoc methods\n\nEvery post-hoc method that applies \
             (docs/calibrators.md), fitted on the validation split, on the test split; `*` marks the lowest value of \
             each metric per model.\n\n{}\n\nReliability diagrams: `plots/<model>-before.svg`, \
             `plots/<model>-after.svg`, and `plots/<model>-best-posthoc.svg` (the method of lowest ECE).\n",
            self.predictions.iter().map(|d| format!("`{}`", d.display())).collect::<Vec<_>>().join(", "),
            self.bins,
            self.bootstrap.resamples,
            self.bootstrap.seed,
            self.table(Style::Markdown),
            self.posthoc_table(Style::Markdown)
        )
    }

    /// The terminal table and where the files went.
    pub fn terminal_text(&self) -> String {
        format!("{}\nwrote {}/report.json, report.md and plots/", self.table(Style::Terminal), self.out.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_model(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let (n, k) = (40usize, 3usize);
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let y = (i % k) as i64;
            for c in 0..k {
                logits.push(if c as i64 == y { 3.0f32 } else { (i % 5) as f32 * 0.7 });
            }
            labels.push(y);
        }
        for split in ["val", "test"] {
            npy::write(&dir.join(format!("{split}_logits.npy")), &[n, k], &logits).unwrap();
            npy::write(&dir.join(format!("{split}_labels.npy")), &[n], &labels).unwrap();
        }
    }

    struct Count(std::sync::atomic::AtomicUsize, std::sync::Mutex<Vec<String>>);

    impl Progress for Count {
        fn begin(&self, label: &str, _: usize) {
            self.1.lock().unwrap().push(label.to_string());
        }
        fn advance(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn builds_a_typed_report_and_writes_its_files() {
        let dir = tempfile::tempdir().unwrap();
        write_model(&dir.path().join("models/tiny"));
        let out = dir.path().join("out");
        let opts = Options::new(vec![dir.path().join("models")], &out).with_bootstrap(8).with_seed(3);
        let progress = Count(Default::default(), Default::default());
        let r = build(&opts, &progress).unwrap();
        assert_eq!(r.models.len(), 1);
        assert_eq!(r.models[0].name, "tiny");
        assert!(r.models[0].temperature > 0.0);
        assert_eq!(progress.0.into_inner(), 16);
        assert_eq!(*progress.1.lock().unwrap(), ["tiny before", "tiny after"]);
        for f in r.models[0].files.iter().chain(&r.files) {
            assert!(f.is_file(), "{}", f.display());
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
        assert_eq!(json, r.to_json().unwrap());
        assert_eq!(json["models"][0]["temperature"].as_f64(), Some(r.models[0].temperature));
        assert_eq!(json["bootstrap"]["resamples"], 8);
        assert!(json["models"][0].get("files").is_none());
        assert!(r.markdown().contains("| tiny"));
        // Every method that applies to 3 classes of logits is reported, fitted or refused; the
        // calibrator form of the paper's ECE grid gives the report's own scaled ECE.
        let m = &r.models[0];
        assert_eq!(m.posthoc.len(), Method::all(3, ScoreKind::Logits).len());
        let grid = m.posthoc.iter().find(|p| p.method == "ece-grid").unwrap().after.as_ref().unwrap();
        assert!((grid.ece - m.after.ece).abs() < 1e-12, "{} vs {}", grid.ece, m.after.ece);
        assert!(m.posthoc.iter().all(|p| p.after.is_some() != p.error.is_some()));
        assert!(m.files.iter().any(|f| f.ends_with("plots/tiny-best-posthoc.svg")));
        let md = r.markdown();
        assert!(
            md.contains("## Post-hoc methods") && md.lines().any(|l| l.starts_with("| tiny") && l.contains("ece-grid"))
        );
        assert!(r.terminal_text().ends_with("report.md and plots/"));
    }

    #[test]
    fn errors_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options::new(vec![dir.path().to_path_buf()], dir.path().join("out"));
        assert!(matches!(build(&opts, &()), Err(ReportError::NoModels { .. })));
        let missing = Options::new(vec![dir.path().join("nope")], dir.path().join("out"));
        let e = build(&missing, &()).unwrap_err();
        assert!(matches!(e, ReportError::ReadFolder { .. }));
        assert!(e.to_string().ends_with("nope: cannot read the data folder"), "{e}");
        assert!(matches!(build(&missing.with_bootstrap(1), &()), Err(ReportError::Core(_))));
    }
}
