//! `calib report`.

use super::values;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Run folders (or folders of them) to turn into the paper's tables and figures: one table per
    /// metric, a row per dataset / network, a column per loss. Without them, the calibration
    /// report of --predictions.
    pub runs: Vec<PathBuf>,
    /// A model folder with val/test logits and labels, or a folder of such folders (repeatable).
    #[arg(long = "predictions", default_value = "data/predictions")]
    pub data: Vec<PathBuf>,
    /// Where report.json, report.md and plots/ go.
    #[arg(long, default_value = "runs/report")]
    pub out: PathBuf,
    /// Bootstrap resamples for the 90 % intervals.
    #[arg(long, default_value_t = 1000, value_parser = values::resamples, allow_negative_numbers = true)]
    pub bootstrap: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 15, value_parser = values::bins, allow_negative_numbers = true)]
    pub bins: usize,
}

impl Args {
    /// The paper report's options (when run folders are given).
    pub fn paper_options(&self) -> calib_report::paper::Options {
        calib_report::paper::Options::new(self.runs.clone(), &self.out)
            .with_bootstrap(self.bootstrap)
            .with_seed(self.seed)
    }

    /// The report library's options.
    pub fn options(&self) -> calib_report::report::Options {
        calib_report::report::Options::new(self.data.clone(), &self.out)
            .with_bootstrap(self.bootstrap)
            .with_seed(self.seed)
            .with_bins(self.bins)
    }
}
