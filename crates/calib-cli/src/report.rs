//! `calib report`: the calibration report of [`calib_report::report`], or with run folders the
//! paper's tables and figures of [`calib_report::paper`], with progress bars on stderr. Used by `calib report`, `calib eval` and `calib quickstart`.

use crate::args::report::Args;
use crate::output::{emit, Format};
use anyhow::Result;
use calib_report::report::{self, Progress};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;

/// The bootstrap's progress as indicatif bars on stderr (hidden when stderr is not a terminal),
/// one per bootstrap, cleared when it ends.
#[derive(Default)]
pub struct Bars {
    current: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn with(&self, f: impl FnOnce(&mut Option<ProgressBar>)) {
        f(&mut self.current.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl Progress for Bars {
    fn begin(&self, label: &str, resamples: usize) {
        let pb = ProgressBar::new(resamples as u64).with_message(label.to_string());
        pb.set_style(
            ProgressStyle::with_template("{msg:>34} [{bar:30}] {pos}/{len} resamples, {per_sec}, ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        self.with(|c| *c = Some(pb));
    }

    fn advance(&self) {
        self.with(|c| {
            if let Some(pb) = c {
                pb.inc(1);
            }
        });
    }

    fn end(&self) {
        self.with(|c| {
            if let Some(pb) = c.take() {
                pb.finish_and_clear();
            }
        });
    }
}

pub fn run(a: &Args, format: Format) -> Result<()> {
    if !a.runs.is_empty() {
        let r = calib_report::paper::build(&a.paper_options(), &Bars::default())?;
        return emit(format, &serde_json::to_value(&r)?, || r.terminal_text(&a.out));
    }
    let r = report::build(&a.options(), &Bars::default())?;
    emit(format, &r.to_json()?, || r.terminal_text())
}
