//! What can go wrong in training and evaluation. Every variant says where: the file, the split,
//! the epoch and steps, or the setting at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read or written, or holds something else than expected.
    #[error("{}: {problem}", path.display())]
    File { path: PathBuf, problem: String },
    /// A setting of the recipe or of the caller is invalid.
    #[error("{0}")]
    Config(String),
    /// The task cannot do what the settings ask (a missing split, a probe the model does not
    /// support), or its data is inconsistent.
    #[error("{0}")]
    Task(String),
    /// The training loss became NaN or infinite; the last checkpoint is intact.
    #[error(
        "epoch {epoch}, steps {first_step}–{last_step}: the loss is {value}; stopped (the last good checkpoint, after epoch {epochs_done}, is intact in {})",
        run.display()
    )]
    NonFinite { epoch: usize, first_step: usize, last_step: usize, value: f64, epochs_done: usize, run: PathBuf },
    /// The requested device cannot be used.
    #[error("{0}")]
    Device(String),
    /// A collective operation between ranks failed.
    #[error("collective {operation}: {problem}")]
    Collective { operation: &'static str, problem: String },
    /// A fused optimiser kernel refused its tensors.
    #[error("optimiser step: {0}")]
    Optimizer(String),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// From the core (metrics, `.npy`, atomic writes), already naming the file.
    #[error(transparent)]
    Core(#[from] calib::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error about `path`.
pub fn file(path: impl Into<PathBuf>, problem: impl std::fmt::Display) -> Error {
    Error::File { path: path.into(), problem: problem.to_string() }
}
