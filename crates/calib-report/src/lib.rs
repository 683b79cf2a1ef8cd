//! Human-facing output of the toolkit: plots (SVG, via plotters), tables (terminal and
//! Markdown, via comfy-table), the calibration report of saved predictions ([`report`]) and the
//! paper's tables and figures from run folders ([`paper`]).
//! Everything is rendered in memory and written atomically; nothing is printed.

pub mod paper;
pub mod plot;
pub mod report;
pub mod table;

/// A plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("drawing {what}: {message}")]
    Draw { what: String, message: String },
    #[error(transparent)]
    Write(#[from] calib::Error),
}
