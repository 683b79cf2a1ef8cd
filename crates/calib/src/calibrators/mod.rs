//! Post-hoc calibrators: maps fitted on validation predictions that turn other rows into
//! calibrated probabilities, saved as JSON and applied later (`calib calibrate --save`, `calib apply`).
//!
//! Every method implements [`Calibrator`]: fit once on validation rows and their labels, then
//! [`Calibrator::transform`] any rows with the same number of classes into probabilities that sum
//! to 1. [`Method`] names a method as `--method` spells it and fits it into a [`Fitted`], the
//! serialisable union of all fitted calibrators; [`Saved`] is the file format.
//!
//! The binary methods (histogram binning, isotonic regression, BBQ, ENIR) are used on K classes
//! by netcal's rule ([`one_vs_all::OneVsAll`]): for K = 2 one map on p(class 1), for K > 2 one map
//! per class on that class's probability, rows then renormalised.

pub mod binary;
pub mod enir;
pub mod ets;
pub mod focal_ts;
pub mod histogram;
pub mod isotonic;
pub mod linear;
pub mod one_vs_all;
mod optimize;
pub mod temperature;

use crate::error::{Error, Result};
use crate::scores::{Real, ScoreKind, Scores};
use one_vs_all::OneVsAll;
use serde::{Deserialize, Serialize};

/// Rows to calibrate: a row-major `[n, k]` matrix of logits or probabilities in f64, validated
/// like [`Scores`] but without labels (a calibrator is applied to rows whose labels are unknown).
#[derive(Debug, Clone)]
pub struct Predictions<'a> {
    values: std::borrow::Cow<'a, [f64]>,
    k: usize,
    kind: ScoreKind,
}

impl<'a> Predictions<'a> {
    /// Checks the shape and that every value is finite (a probability in [0, 1] for `Probs`).
    pub fn new(values: impl Into<std::borrow::Cow<'a, [f64]>>, k: usize, kind: ScoreKind) -> Result<Self> {
        let values = values.into();
        if k == 0 {
            return Err(Error::Shape("the score matrix has 0 classes".into()));
        }
        if values.len() % k != 0 {
            return Err(Error::Shape(format!("{} values do not form rows of {k} classes", values.len())));
        }
        if values.is_empty() {
            return Err(Error::Empty("the score matrix has no rows".into()));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::NotFinite { row: i / k, col: i % k, value: values[i] });
        }
        if kind == ScoreKind::Probs {
            if let Some(i) = values.iter().position(|v| !(0.0..=1.0).contains(v)) {
                return Err(Error::NotProbability { row: i / k, col: i % k, value: values[i] });
            }
        }
        Ok(Self { values, k, kind })
    }

    /// Rows read from a file (any stored precision), widened to f64 and validated.
    pub fn from_values(values: crate::Values, k: usize, kind: ScoreKind) -> Result<Predictions<'static>> {
        let mut v = vec![0.0f64; values.len()];
        f64::load(values.slice(), &mut v);
        Predictions::new(v, k, kind)
    }

    /// The values of validated scores, widened to f64.
    pub fn of_scores<F: Real>(s: &Scores<F>) -> Predictions<'static> {
        let mut values = vec![0.0f64; s.n() * s.k()];
        f64::load(s.rows(0..s.n()), &mut values);
        Predictions { values: values.into(), k: s.k(), kind: s.kind() }
    }

    pub fn n(&self) -> usize {
        self.values.len() / self.k
    }
    pub fn k(&self) -> usize {
        self.k
    }
    pub fn kind(&self) -> ScoreKind {
        self.kind
    }
    pub fn values(&self) -> &[f64] {
        &self.values
    }
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.k..(i + 1) * self.k]
    }

    /// Softmax of each row for logits; the rows themselves for probabilities.
    pub fn probs(&self) -> Vec<f64> {
        match self.kind {
            ScoreKind::Probs => self.values.to_vec(),
            ScoreKind::Logits => {
                let mut out = self.values.to_vec();
                out.chunks_mut(self.k).for_each(softmax_in_place);
                out
            }
        }
    }

    /// Log-probabilities of each row: log-softmax of logits, ln p of probabilities (−∞ for 0).
    pub fn log_probs(&self) -> Vec<f64> {
        match self.kind {
            ScoreKind::Probs => self.values.iter().map(|p| p.ln()).collect(),
            ScoreKind::Logits => {
                let mut out = self.values.to_vec();
                out.chunks_mut(self.k).for_each(|r| {
                    let max = r.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                    let lse = max + r.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                    r.iter_mut().for_each(|v| *v -= lse);
                });
                out
            }
        }
    }
}

/// Replaces a row of scores by its softmax, computed stably.
pub fn softmax_in_place(r: &mut [f64]) {
    let max = r.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let mut s = 0.0;
    r.iter_mut().for_each(|v| {
        *v = (*v - max).exp();
        s += *v;
    });
    r.iter_mut().for_each(|v| *v /= s);
}

/// A fitted post-hoc calibrator.
pub trait Calibrator {
    /// The number of classes it was fitted for; [`Calibrator::transform`] refuses other widths.
    fn classes(&self) -> usize;
    /// Calibrated probabilities of `x`, row-major `[n, k]`, each row summing to 1.
    fn transform(&self, x: &Predictions) -> Result<Vec<f64>>;
}

/// Checks that `x` has the classes a calibrator was fitted for.
pub(crate) fn check_width(x: &Predictions, classes: usize) -> Result<()> {
    if x.k() != classes {
        return Err(Error::Shape(format!("the calibrator was fitted for {classes} classes, the rows have {}", x.k())));
    }
    Ok(())
}

/// Checks fitting rows and labels: as many labels as rows, each in `0..k`.
pub(crate) fn check_fit(x: &Predictions, labels: &[usize]) -> Result<()> {
    if labels.len() != x.n() {
        return Err(Error::Shape(format!("{} score rows but {} labels", x.n(), labels.len())));
    }
    if let Some(index) = labels.iter().position(|&l| l >= x.k()) {
        return Err(Error::LabelOutOfRange { index, label: labels[index] as i64, classes: x.k() });
    }
    Ok(())
}

/// A method as `--method` names it, with its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Temperature scaling (the grid by ECE or NLL, or the continuous NLL fit).
    Temperature(crate::temperature::Method),
    /// Per-class scale and bias on the logits.
    Vector,
    /// A K×K matrix and bias on the logits, with ODIR (λ, μ) when given.
    Matrix { odir: Option<(f64, f64)> },
    /// A K×K matrix and bias on the log-probabilities, with ODIR (λ, μ).
    Dirichlet { lambda: f64, mu: f64 },
    /// Ensemble temperature scaling (Zhang et al. 2020).
    Ets,
    /// Focal temperature scaling (Komisarenko & Kull 2024) with the focal γ of its link.
    FocalTs { gamma: f64 },
    /// Histogram binning with `bins` equal-width bins.
    Histogram { bins: usize },
    /// Isotonic regression.
    Isotonic,
    /// Bayesian binning into quantiles.
    Bbq,
    /// Ensemble of near-isotonic regressions.
    Enir,
    /// Logistic regression on the logit difference (K = 2).
    Platt,
    /// Beta calibration with a, b ≥ 0 (K = 2).
    Beta,
}

/// Every method name `--method` accepts.
pub const NAMES: &str = "ece-grid, nll-grid, nll, vector, matrix, matrix-odir:λ,μ, dirichlet[:λ,μ], ets, \
                         focal-ts[:γ], histogram[:B], isotonic, bbq, enir, platt, beta";

/// The default ODIR strengths of Dirichlet calibration.
pub const DIRICHLET_DEFAULT: (f64, f64) = (1e-3, 1e-3);

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (name, params) = s.split_once(':').map_or((s, None), |(n, p)| (n, Some(p)));
        let parse_error =
            |reason: &str| Error::Parse { what: "calibration method", text: s.into(), reason: reason.into() };
        let pair = |p: &str| -> Result<(f64, f64)> {
            let v: Vec<f64> = p
                .split(',')
                .map(|x| x.trim().parse::<f64>().map_err(|_| parse_error("expected two numbers λ,μ")))
                .collect::<Result<_>>()?;
            match v[..] {
                [l, m] if l >= 0.0 && m >= 0.0 && l.is_finite() && m.is_finite() => Ok((l, m)),
                _ => Err(parse_error("expected two non-negative numbers λ,μ")),
            }
        };
        let none =
            |m: Method| if params.is_some() { Err(parse_error("this method takes no parameters")) } else { Ok(m) };
        match name {
            "ece-grid" | "nll-grid" | "nll" => none(Self::Temperature(name.parse()?)),
            "vector" => none(Self::Vector),
            "matrix" => none(Self::Matrix { odir: None }),
            "matrix-odir" => {
                Ok(Self::Matrix { odir: Some(pair(params.ok_or_else(|| parse_error("expected matrix-odir:λ,μ"))?)?) })
            }
            "dirichlet" => {
                let (lambda, mu) = params.map(pair).transpose()?.unwrap_or(DIRICHLET_DEFAULT);
                Ok(Self::Dirichlet { lambda, mu })
            }
            "ets" => none(Self::Ets),
            "focal-ts" => {
                let gamma = number(params, focal_ts::DEFAULT_GAMMA, |g| g.is_finite() && *g >= 0.0)
                    .ok_or_else(|| parse_error("expected a focal γ ≥ 0"))?;
                Ok(Self::FocalTs { gamma })
            }
            "histogram" => {
                let bins = number(params, histogram::DEFAULT_BINS, |&b| b > 0)
                    .ok_or_else(|| parse_error("expected a positive number of bins"))?;
                Ok(Self::Histogram { bins })
            }
            "isotonic" => none(Self::Isotonic),
            "bbq" => none(Self::Bbq),
            "enir" => none(Self::Enir),
            "platt" => none(Self::Platt),
            "beta" => none(Self::Beta),
            _ => Err(Error::UnknownName { what: "method", name: s.into(), expected: format!("{NAMES}, all") }),
        }
    }
}

/// A method's one numeric parameter: `default` when absent, None when it does not parse or is
/// not `valid`.
fn number<T: std::str::FromStr>(params: Option<&str>, default: T, valid: impl Fn(&T) -> bool) -> Option<T> {
    match params {
        None => Some(default),
        Some(p) => p.trim().parse::<T>().ok().filter(valid),
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Temperature(m) => f.write_str(m.name()),
            Self::Vector => f.write_str("vector"),
            Self::Matrix { odir: None } => f.write_str("matrix"),
            Self::Matrix { odir: Some((l, m)) } => write!(f, "matrix-odir:{l},{m}"),
            Self::Dirichlet { lambda, mu } => write!(f, "dirichlet:{lambda},{mu}"),
            Self::Ets => f.write_str("ets"),
            Self::FocalTs { gamma } => write!(f, "focal-ts:{gamma}"),
            Self::Histogram { bins } => write!(f, "histogram:{bins}"),
            Self::Isotonic => f.write_str("isotonic"),
            Self::Bbq => f.write_str("bbq"),
            Self::Enir => f.write_str("enir"),
            Self::Platt => f.write_str("platt"),
            Self::Beta => f.write_str("beta"),
        }
    }
}

/// What a fit needs besides the rows: the binning of the ECE grid.
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    pub bins: usize,
    pub mode: crate::metrics::Mode,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self { bins: 15, mode: crate::metrics::Mode::Corrected }
    }
}

/// The largest K for which `--method all` includes the K×K methods (matrix, Dirichlet), whose K²
/// parameters (64 M for an 8,000-entry vocabulary) neither fit nor generalise past it, and the
/// one-vs-all methods, whose K maps would each see a handful of positives.
pub const MAX_MATRIX_CLASSES: usize = 1000;

impl Method {
    /// Whether the method can be fitted on `k` classes of scores of `kind`; the reason if not.
    pub fn applies(&self, k: usize, kind: ScoreKind) -> std::result::Result<(), String> {
        match self {
            Self::Temperature(_) | Self::Ets | Self::FocalTs { .. } if kind == ScoreKind::Probs => {
                Err("needs logits, not probabilities".into())
            }
            Self::Platt | Self::Beta if k != 2 => Err(format!("is binary only (K = 2), the scores have {k} classes")),
            _ => Ok(()),
        }
    }

    /// Every method of `--method all` that applies to `k` classes of scores of `kind`.
    pub fn all(k: usize, kind: ScoreKind) -> Vec<Method> {
        use crate::temperature::Method as T;
        [
            Self::Temperature(T::EceGrid),
            Self::Temperature(T::NllGrid),
            Self::Temperature(T::Nll),
            Self::Vector,
            Self::Matrix { odir: None },
            Self::Dirichlet { lambda: DIRICHLET_DEFAULT.0, mu: DIRICHLET_DEFAULT.1 },
            Self::Ets,
            Self::FocalTs { gamma: focal_ts::DEFAULT_GAMMA },
            Self::Histogram { bins: histogram::DEFAULT_BINS },
            Self::Isotonic,
            Self::Bbq,
            Self::Enir,
            Self::Platt,
            Self::Beta,
        ]
        .into_iter()
        .filter(|m| m.applies(k, kind).is_ok())
        .filter(|m| {
            let per_class = matches!(
                m,
                Self::Matrix { .. }
                    | Self::Dirichlet { .. }
                    | Self::Histogram { .. }
                    | Self::Isotonic
                    | Self::Bbq
                    | Self::Enir
            );
            !per_class || k <= MAX_MATRIX_CLASSES
        })
        .collect()
    }

    /// Fits the method on validation rows `x` and their labels.
    pub fn fit(&self, x: &Predictions, labels: &[usize], opts: &FitOptions) -> Result<Fitted> {
        check_fit(x, labels)?;
        self.applies(x.k(), x.kind()).map_err(|why| Error::Parameter(format!("{self} {why}")))?;
        Ok(match *self {
            Self::Temperature(m) => Fitted::Temperature(temperature::TemperatureScaling::fit(x, labels, m, opts)?),
            Self::Vector => Fitted::Vector(linear::Vector::fit(x, labels)?),
            Self::Matrix { odir } => Fitted::Matrix(linear::Matrix::fit(x, labels, odir)?),
            Self::Dirichlet { lambda, mu } => Fitted::Dirichlet(linear::Dirichlet::fit(x, labels, lambda, mu)?),
            Self::Ets => Fitted::Ets(ets::Ets::fit(x, labels)?),
            Self::FocalTs { gamma } => Fitted::FocalTs(focal_ts::FocalTemperature::fit(x, labels, gamma)?),
            Self::Histogram { bins } => Fitted::Histogram(OneVsAll::fit(x, labels, &bins)?),
            Self::Isotonic => Fitted::Isotonic(OneVsAll::fit(x, labels, &())?),
            Self::Bbq => Fitted::Bbq(OneVsAll::fit(x, labels, &())?),
            Self::Enir => Fitted::Enir(OneVsAll::fit(x, labels, &())?),
            Self::Platt => Fitted::Platt(binary::Platt::fit(x, labels)?),
            Self::Beta => Fitted::Beta(binary::Beta::fit(x, labels)?),
        })
    }
}

/// Any fitted calibrator, as it is saved (`"method"` tags the variant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Fitted {
    Temperature(temperature::TemperatureScaling),
    Vector(linear::Vector),
    Matrix(linear::Matrix),
    Dirichlet(linear::Dirichlet),
    Ets(ets::Ets),
    FocalTs(focal_ts::FocalTemperature),
    Histogram(OneVsAll<histogram::Histogram>),
    Isotonic(OneVsAll<isotonic::Isotonic>),
    Bbq(OneVsAll<histogram::Bbq>),
    Enir(OneVsAll<enir::Enir>),
    Platt(binary::Platt),
    Beta(binary::Beta),
}

/// Calls `$body` with `$c` bound to the fitted calibrator inside any variant.
macro_rules! each_fitted {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            Fitted::Temperature($c) => $body,
            Fitted::Vector($c) => $body,
            Fitted::Matrix($c) => $body,
            Fitted::Dirichlet($c) => $body,
            Fitted::Ets($c) => $body,
            Fitted::FocalTs($c) => $body,
            Fitted::Histogram($c) => $body,
            Fitted::Isotonic($c) => $body,
            Fitted::Bbq($c) => $body,
            Fitted::Enir($c) => $body,
            Fitted::Platt($c) => $body,
            Fitted::Beta($c) => $body,
        }
    };
}

impl Calibrator for Fitted {
    fn classes(&self) -> usize {
        each_fitted!(self, c => c.classes())
    }
    fn transform(&self, x: &Predictions) -> Result<Vec<f64>> {
        check_width(x, self.classes())?;
        each_fitted!(self, c => c.transform(x))
    }
}

/// The saved form of a calibrator: a format tag and version, the method's `--method` name and
/// what it was fitted on, and the fitted parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    pub format: String,
    pub version: u32,
    /// The `--method` text it was fitted with.
    pub name: String,
    /// Scores it expects: logits or probabilities.
    pub input: ScoreKind,
    pub fitted: Fitted,
}

const FORMAT: &str = "calib-calibrator";
const VERSION: u32 = 1;

impl Saved {
    pub fn new(name: &str, input: ScoreKind, fitted: Fitted) -> Self {
        Self { format: FORMAT.into(), version: VERSION, name: name.into(), input, fitted }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a fitted calibrator serialises")
    }

    /// Reads a saved calibrator, checking its format tag, version and parameters.
    pub fn from_json(text: &str) -> Result<Self> {
        let saved: Saved = serde_json::from_str(text).map_err(|e| Error::Parse {
            what: "calibrator",
            text: short(text),
            reason: e.to_string(),
        })?;
        if saved.format != FORMAT || saved.version != VERSION {
            return Err(Error::Parse {
                what: "calibrator",
                text: format!("{} v{}", saved.format, saved.version),
                reason: format!("expected format \"{FORMAT}\" version {VERSION}"),
            });
        }
        saved.fitted.validate()?;
        Ok(saved)
    }

    /// Writes the calibrator to `path` atomically (a temporary file renamed over it).
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        crate::atomic::write(path, self.to_json().as_bytes())
    }

    /// Reads a calibrator saved by [`Saved::save`]; errors name the file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::File { path: path.into(), problem: format!("cannot read: {e}") })?;
        Self::from_json(&text).map_err(|e| Error::File { path: path.into(), problem: e.to_string() })
    }

    /// Applies the calibrator to rows of the kind it was fitted on.
    pub fn transform(&self, x: &Predictions) -> Result<Vec<f64>> {
        if x.kind() != self.input {
            return Err(Error::Parameter(format!(
                "the calibrator was fitted on {}, the rows are {}",
                kind_name(self.input),
                kind_name(x.kind())
            )));
        }
        self.fitted.transform(x)
    }
}

/// A method fitted on validation rows and judged on target rows: the calibrator, the target's
/// metrics after it, and the fit's wall time. What `calib calibrate` and `calib report` show for
/// every post-hoc method, in one place so the two agree.
#[derive(Debug, Clone)]
pub struct Judged {
    pub saved: Saved,
    pub after: crate::metrics::Report,
    pub fit_seconds: f64,
}

/// Fits `method` on `val` and its labels, transforms `target` and evaluates the calibrated
/// probabilities with `opts` (its temperature ignored: they are probabilities).
pub fn fit_and_judge(
    method: Method,
    val: &Predictions,
    labels: &[usize],
    target: &Scores<f64>,
    opts: &crate::metrics::Options,
) -> Result<Judged> {
    let start = std::time::Instant::now();
    let fitted = method.fit(val, labels, &FitOptions { bins: opts.bins, mode: opts.mode })?;
    let fit_seconds = start.elapsed().as_secs_f64();
    let saved = Saved::new(&method.to_string(), val.kind(), fitted);
    let probs = saved.transform(&Predictions::of_scores(target))?;
    let labels: Vec<i64> = target.labels().iter().map(|&l| l as i64).collect();
    let calibrated = Scores::<f64>::new(probs, target.k(), &labels, ScoreKind::Probs)?;
    let after = crate::metrics::evaluate(&calibrated, &opts.with_temperature_opt(None))?;
    Ok(Judged { saved, after, fit_seconds })
}

fn kind_name(k: ScoreKind) -> &'static str {
    match k {
        ScoreKind::Logits => "logits",
        ScoreKind::Probs => "probabilities",
    }
}

fn short(text: &str) -> String {
    let t: String = text.chars().take(40).collect();
    if t.len() < text.len() {
        format!("{t}…")
    } else {
        t
    }
}

impl Fitted {
    /// Checks loaded parameters: finite numbers and consistent shapes, so a hand-edited or
    /// corrupted file is an error at load time, not NaN probabilities later.
    pub fn validate(&self) -> Result<()> {
        each_fitted!(self, c => c.validate())
    }
}

/// Checks that every parameter is finite and that there are `len` of them.
pub(crate) fn check_params(what: &str, values: &[f64], len: usize) -> Result<()> {
    if values.len() != len {
        return Err(Error::Shape(format!("{what} has {} values, expected {len}", values.len())));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::Parameter(format!("{what}[{i}] = {} is not finite", values[i])));
    }
    Ok(())
}
