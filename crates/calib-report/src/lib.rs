//! Human-facing output of the toolkit: plots (SVG, via plotters) and tables (terminal and
//! Markdown, via comfy-table). Everything is rendered in memory and written atomically.

pub mod plot;
pub mod table;

/// A plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("drawing {what}: {message}")]
    Draw { what: String, message: String },
    #[error(transparent)]
    Write(#[from] calib::Error),
}
