//! Errors of the core: each names what was wrong with the input, so a CLI can print one sentence.

/// Everything the core can reject. Input checks happen once, at the boundary (`Scores::new`,
/// parsers), so the numerical code below them can assume well-formed data.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    #[error("{}: {problem}", path.display())]
    File { path: std::path::PathBuf, problem: String },
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("row {row}, column {col}: value {value} is not finite")]
    NotFinite { row: usize, col: usize, value: f64 },
    #[error("row {row}, column {col}: probability {value} is outside [0, 1]")]
    NotProbability { row: usize, col: usize, value: f64 },
    #[error(
        "row {row}: the probabilities sum to {sum}, not 1 (give logits, or probabilities that sum to 1 within 1e-3)"
    )]
    RowSum { row: usize, sum: f64 },
    #[error("label {label} at index {index} is outside 0..{classes}")]
    LabelOutOfRange { index: usize, label: i64, classes: usize },
    #[error("empty input: {0}")]
    Empty(String),
    #[error("invalid parameter: {0}")]
    Parameter(String),
    #[error("unknown {what} '{name}' (expected one of: {expected})")]
    UnknownName { what: &'static str, name: String, expected: String },
    #[error("cannot parse {what} '{text}': {reason}")]
    Parse { what: &'static str, text: String, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;
