//! The calibration core shared by every trainer of the toolkit and usable on its own.
//!
//! Everything a task produces ends as logits `[n, K]` and integer targets `[n]`; this crate turns
//! them into gradients (`loss`, on `tch` tensors, behind the default feature `tch`) and into
//! calibration numbers (`metrics`, `temperature`, `bootstrap`, `ood`, `gamma`: pure Rust on
//! slices, no libtorch needed with `default-features = false`).
//!
//! Numbers reproduce the official code of Mukhoti et al. (NeurIPS 2020) in [`metrics::Mode::Paper`],
//! and follow the paper's stated definitions in [`metrics::Mode::Corrected`] (the default).

pub mod atomic;
pub mod binning;
pub mod bootstrap;
pub mod calibrators;
pub mod error;
mod fastmath;
pub mod gamma;
pub mod loss;
pub mod metrics;
pub mod npy;
pub mod ood;
pub mod scores;
mod softmax;
pub mod temperature;
pub mod top_label;
mod values;

pub use binning::Bin;
pub use error::{Error, Result};
pub use metrics::{evaluate, Mode, Options, Report};
pub use scores::{Real, ScoreKind, Scores, Unscanned};
pub use values::Values;
