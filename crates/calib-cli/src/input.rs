//! Loading predictions from `.npy` files into validated [`Scores`], with errors that name the
//! file at fault.

use anyhow::{anyhow, bail, Result};
use calib::npy;
use calib::{Error, Real, ScoreKind, Scores, Unscanned, Values};
use std::path::Path;

/// Arithmetic of a computation; see `calib::Real`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F64,
    F32,
}

/// Reads `[n, k]` scores and `[n]` labels and validates them together.
pub fn load<F: Real>(scores: &Path, labels: &Path, kind: ScoreKind) -> Result<Scores<F>> {
    let unscanned = load_unscanned(scores, labels, kind)?;
    unscanned.scan().map_err(|e| blame(e, scores, labels))
}

/// [`load`] without scanning the values (for `calib::metrics::basic_unscanned`, which checks
/// them in its own pass; pass its errors through [`blame`]).
pub fn load_unscanned<F: Real>(scores: &Path, labels: &Path, kind: ScoreKind) -> Result<Unscanned<F>> {
    let what = if kind == ScoreKind::Probs { "probabilities" } else { "logits" };
    let values = npy::read_floats(scores, 2, what)?;
    let y = npy::read_labels(labels)?;
    let (n, k) = (values.shape()[0], values.shape()[1]);
    if n == 0 || k == 0 {
        bail!("{}: the {what} array has shape [{n}, {k}]; it needs at least one row and one class", scores.display());
    }
    if y.len() != n {
        bail!("{} has {n} rows but {} has {} labels", scores.display(), labels.display(), y.len());
    }
    Scores::unscanned(values.values, k, &y, kind).map_err(|e| blame(e, scores, labels))
}

/// A core error as one sentence naming the file at fault.
pub fn blame(e: Error, scores: &Path, labels: &Path) -> anyhow::Error {
    match e {
        Error::LabelOutOfRange { .. } => anyhow!("{}: {e}", labels.display()),
        Error::NotFinite { .. } | Error::NotProbability { .. } => anyhow!("{}: {e}", scores.display()),
        e => anyhow!("{} / {}: {e}", scores.display(), labels.display()),
    }
}

/// Validates already-read arrays, blaming `scores` or `labels` for what is wrong with each.
pub fn from_arrays<F: Real>(
    values: Values,
    k: usize,
    y: &[i64],
    kind: ScoreKind,
    scores: &Path,
    labels: &Path,
) -> Result<Scores<F>> {
    Scores::from_values(values, k, y, kind).map_err(|e| blame(e, scores, labels))
}
