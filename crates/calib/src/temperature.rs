//! Temperature scaling: the paper's grid search (by validation ECE or NLL) and a continuous NLL fit.

use crate::error::{Error, Result};
use crate::metrics::{self, Mode, Options};
use crate::scores::{Real, ScoreKind, Scores};
use rayon::prelude::*;

/// How the temperature is chosen on the validation set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Grid T = 0.1 … 10.0, lowest validation ECE (the paper's reported method).
    EceGrid,
    /// Same grid, lowest validation NLL.
    NllGrid,
    /// Continuous minimiser of validation NLL.
    Nll,
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ece-grid" => Ok(Self::EceGrid),
            "nll-grid" => Ok(Self::NllGrid),
            "nll" => Ok(Self::Nll),
            _ => Err(Error::UnknownName { what: "method", name: s.into(), expected: "ece-grid, nll-grid, nll".into() }),
        }
    }
}

impl Method {
    /// The name `--method` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::EceGrid => "ece-grid",
            Self::NllGrid => "nll-grid",
            Self::Nll => "nll",
        }
    }
}

/// The 100 temperatures of the grid. Paper mode accumulates `T += 0.1` in f64 from 0.1, as the
/// official loop does (so T = 1.8000000000000005 is a grid value); corrected mode uses k/10.
pub fn grid(mode: Mode) -> Vec<f64> {
    match mode {
        Mode::Paper => std::iter::successors(Some(0.1f64), |t| Some(t + 0.1)).take(100).collect(),
        Mode::Corrected => (1..=100).map(|k| k as f64 / 10.0).collect(),
    }
}

/// Validation NLL and ECE at one grid temperature.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GridPoint {
    pub t: f64,
    pub nll: f64,
    pub ece: f64,
}

/// Result of [`grid_search`]: the temperature each criterion picks and the whole curve.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GridSearch {
    pub t_ece: f64,
    pub t_nll: f64,
    pub points: Vec<GridPoint>,
}

/// Evaluates validation NLL and ECE at every grid temperature. A later T replaces the best only
/// when strictly better, so ties keep the smaller T (as the official code).
pub fn grid_search<F: Real>(val: &Scores<F>, bins: usize, mode: Mode) -> Result<GridSearch> {
    require_logits(val)?;
    let points = grid(mode)
        .into_par_iter()
        .map(|t| {
            let b = metrics::basic(val, &Options { bins, mode, temperature: Some(t) })?;
            Ok(GridPoint { t, nll: b.nll, ece: b.ece })
        })
        .collect::<Result<Vec<_>>>()?;
    let pick = |key: fn(&GridPoint) -> f64| {
        points.iter().fold((f64::INFINITY, 1.0), |best, p| if best.0 > key(p) { (key(p), p.t) } else { best }).1
    };
    Ok(GridSearch { t_ece: pick(|p| p.ece), t_nll: pick(|p| p.nll), points })
}

const BETA_MIN: f64 = 0.01;
const BETA_MAX: f64 = 50.0;

/// The temperature minimising mean validation NLL, computed in f64.
///
/// NLL is convex in β = 1/T: d/dβ = mean(E_p[z] − z_y), d²/dβ² = mean(Var_p[z]) ≥ 0. So the
/// optimum is the root of the first derivative, found by Newton steps safeguarded by bisection
/// on the bracket T ∈ [0.02, 100] (β ∈ [0.01, 50], the bounds of the reference implementation
/// behind `not_official_continuous_nll_T_f64`). When the optimum lies outside (e.g. a separable validation
/// set wants T → 0) the nearer bound is returned, so T is always positive and finite.
pub fn fit_nll<F: Real>(val: &Scores<F>) -> Result<f64> {
    require_logits(val)?;
    let (k, labels) = (val.k(), val.labels());
    let derivs = |beta: f64| -> (f64, f64) {
        (0..val.n())
            .into_par_iter()
            .map_init(
                || vec![0.0f64; k],
                |row, i| {
                    f64::load(val.row(i), row);
                    let max = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                    let (mut s, mut s1, mut s2) = (0.0, 0.0, 0.0);
                    for &v in row.iter() {
                        let e = (beta * (v - max)).exp();
                        s += e;
                        s1 += e * v;
                        s2 += e * v * v;
                    }
                    let mean = s1 / s;
                    (mean - row[labels[i]], (s2 / s - mean * mean).max(0.0))
                },
            )
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    let (mut lo, mut hi) = (BETA_MIN, BETA_MAX);
    if derivs(lo).0 >= 0.0 {
        return Ok(1.0 / lo);
    }
    if derivs(hi).0 <= 0.0 {
        return Ok(1.0 / hi);
    }
    let mut beta = 1.0;
    for _ in 0..200 {
        let (d1, d2) = derivs(beta);
        if d1 == 0.0 {
            break;
        }
        if d1 > 0.0 {
            hi = beta;
        } else {
            lo = beta;
        }
        let newton = beta - d1 / d2;
        let next = if d2 > 0.0 && newton > lo && newton < hi { newton } else { 0.5 * (lo + hi) };
        if (next - beta).abs() <= 1e-15 * beta || hi - lo <= 1e-15 * beta {
            beta = next;
            break;
        }
        beta = next;
    }
    Ok(1.0 / beta)
}

/// The temperature the given method chooses on `val`.
pub fn choose<F: Real>(val: &Scores<F>, method: Method, bins: usize, mode: Mode) -> Result<f64> {
    match method {
        Method::EceGrid => Ok(grid_search(val, bins, mode)?.t_ece),
        Method::NllGrid => Ok(grid_search(val, bins, mode)?.t_nll),
        Method::Nll => fit_nll(val),
    }
}

fn require_logits<F: Real>(s: &Scores<F>) -> Result<()> {
    match s.kind() {
        ScoreKind::Logits => Ok(()),
        ScoreKind::Probs => Err(Error::Parameter("temperature scaling needs logits, not probabilities".into())),
    }
}
