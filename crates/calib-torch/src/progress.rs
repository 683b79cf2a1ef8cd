//! The binary's side of training progress: a progress bar per epoch and one line per epoch on
//! stderr (the library reports through `calib_train::observer::Observer` and never prints).

use calib_train::observer::Observer;
use calib_train::run::EpochLog;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;

/// Progress bars and epoch lines, or nothing with `quiet`.
pub struct EpochBars {
    quiet: bool,
    bar: ProgressBar,
    /// `epoch/epochs` of the bar's message.
    epoch: String,
}

impl EpochBars {
    pub fn new(quiet: bool) -> Self {
        Self { quiet, bar: ProgressBar::hidden(), epoch: String::new() }
    }

    /// A note on stderr (what was read, what is trained), unless quiet.
    fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}

impl Observer for EpochBars {
    fn resumed(&mut self, run: &Path, epochs_done: usize) {
        self.note(&format!("resuming {} after epoch {epochs_done}", run.display()));
    }

    fn epoch_started(&mut self, epoch: usize, epochs: usize, batches: usize) {
        if self.quiet {
            return;
        }
        self.bar = ProgressBar::new(batches as u64);
        self.bar.set_style(
            ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} batches, {per_sec}, ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        self.epoch = format!("{epoch}/{epochs}");
        self.bar.set_message(self.epoch.clone());
    }

    fn batch_done(&mut self) {
        self.bar.inc(1);
    }

    fn interval(&mut self, mean_loss: f64) {
        self.bar.set_message(format!("{} loss {mean_loss:.4}", self.epoch));
    }

    fn training_ended(&mut self) {
        self.bar.finish_and_clear();
    }

    fn epoch_finished(&mut self, log: &EpochLog, epochs: usize) {
        self.note(&format!(
            "epoch {}/{epochs}: loss {:.4}, train error {:.2}%, val error {:.2}%, val NLL {:.4}, val ECE {:.2}%, {:.0} samples/s, waited {:.1} s for data",
            log.epoch,
            log.train_loss,
            100.0 * log.train_error,
            100.0 * log.val.error,
            log.val.nll,
            100.0 * log.val.ece,
            log.samples_per_second,
            log.data_wait_seconds
        ));
    }
}
