//! How training reports progress: the library never prints; the binary implements [`Observer`]
//! (progress bars, one line per epoch), a test or another program can log or ignore it.

use crate::run::EpochLog;
use std::path::Path;

/// Callbacks of a training run, called on rank 0 only. Every method has a silent default.
pub trait Observer {
    /// A run continues from its checkpoint after `epochs_done` epochs.
    fn resumed(&mut self, _run: &Path, _epochs_done: usize) {}
    /// Epoch `epoch` (1-based) of `epochs` starts with `batches` training batches.
    fn epoch_started(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    /// One more training batch is done.
    fn batch_done(&mut self) {}
    /// The mean training loss over the batches since the last report (read once per interval,
    /// so the device is not synchronised every step).
    fn interval(&mut self, _mean_loss: f64) {}
    /// An epoch's training ended (evaluation and checkpointing follow).
    fn training_ended(&mut self) {}
    /// An epoch is logged and checkpointed.
    fn epoch_finished(&mut self, _log: &EpochLog, _epochs: usize) {}
}

/// Reports nothing.
pub struct Silent;

impl Observer for Silent {}
