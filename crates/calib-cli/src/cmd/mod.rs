//! One module per subcommand.

pub mod bench;
pub mod bleu;
pub mod calibrate;
pub mod gamma;
pub mod metrics;
pub mod ood;
pub mod tokenizer;
pub mod torch;

use calib::metrics::{Mode, Options};
use calib_cli::input::Precision;

/// Settings shared by every command that computes metrics.
#[derive(clap::Args, Debug, Clone)]
pub struct MetricSettings {
    /// Number of bins for ECE, AdaECE, classwise-ECE and MCE.
    #[arg(long, default_value_t = 15)]
    pub bins: usize,
    /// `corrected` (the paper's stated definitions) or `paper` (the official code, quirks included).
    #[arg(long, default_value = "corrected")]
    pub mode: String,
    /// Arithmetic: f64, or f32 to reproduce the official float32 PyTorch pipeline.
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    pub precision: Precision,
}

impl MetricSettings {
    pub fn options(&self, temperature: Option<f64>) -> anyhow::Result<Options> {
        let opts = Options { bins: self.bins, mode: self.mode.parse::<Mode>()?, temperature };
        opts.validate()?;
        Ok(opts)
    }
}

/// Bootstrap settings shared by `metrics` and `ood`.
#[derive(clap::Args, Debug, Clone)]
pub struct BootstrapSettings {
    /// Percentile confidence intervals from this many resamples (0: none).
    #[arg(long, default_value_t = 0)]
    pub bootstrap: usize,
    /// Two-sided coverage of the intervals.
    #[arg(long, default_value_t = 0.9)]
    pub level: f64,
    /// Seed of the resampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl BootstrapSettings {
    pub fn settings(&self) -> Option<calib::bootstrap::Settings> {
        (self.bootstrap > 0).then_some(calib::bootstrap::Settings {
            resamples: self.bootstrap,
            level: self.level,
            seed: self.seed,
        })
    }
}
