//! What a task gives the shared loop: its data as typed batches, built on a loader thread, and a
//! model that turns a batch into logits `[n, K]` and integer targets `[n]` (translation: one row
//! per target token). Everything after that — losses, metrics, checkpoints — is the same for
//! every task.
//!
//! The data side ([`Data`]) is `Sync` and holds no model tensors, so batches are decoded,
//! augmented and padded on a loader thread while the device runs the previous step; the model
//! side ([`Task`]) stays on the training thread.

use crate::error::{Error, Result};
use tch::nn::VarStore;
use tch::Tensor;

/// A batch of a task, whatever its shape: one image tensor and labels; a source, a shifted target
/// and targets; per-level node and child indices of parse trees with labels and a mask.
pub trait Batch: Send + Sized + 'static {
    /// The batch with every tensor passed through `f`: how the trainer pins host memory and
    /// moves a batch to the device without knowing its fields.
    fn map_tensors(self, f: &mut dyn FnMut(Tensor) -> Tensor) -> Self;
}

/// Batches in the order they are used.
pub type Batches<'a, B> = Box<dyn Iterator<Item = B> + Send + 'a>;

/// The part of the training data one rank of a data-parallel run sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    rank: usize,
    world: usize,
}

impl Shard {
    /// The whole data (one process).
    pub const WHOLE: Shard = Shard { rank: 0, world: 1 };

    pub fn new(rank: usize, world: usize) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(Error::Config(format!("rank {rank} of a world of {world}: need 0 ≤ rank < world")));
        }
        Ok(Self { rank, world })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world(&self) -> usize {
        self.world
    }

    /// This rank's items of a list every rank builds alike: every `world`-th from `rank`, the
    /// tail cut so that every rank gets the same number (ranks step together).
    pub fn take<T>(&self, items: Vec<T>) -> Vec<T> {
        let each = items.len() / self.world;
        items.into_iter().skip(self.rank).step_by(self.world).take(each).collect()
    }

    /// This rank's items of an evaluation list: every `world`-th from `rank`, none cut (the
    /// parts are gathered, not stepped together). Lazy, so a batch built from an item is built
    /// only by the rank that uses it.
    pub fn every<I: IntoIterator>(&self, items: I) -> std::iter::StepBy<std::iter::Skip<I::IntoIter>> {
        items.into_iter().skip(self.rank).step_by(self.world)
    }
}

/// The data of a task: host-side batches (CPU tensors), built where the trainer asks, on a
/// loader thread.
pub trait Data: Sync {
    type Batch: Batch;
    /// The training batches of `epoch` that rank `shard` sees. The order is fixed by
    /// `(seed, epoch)`, so a resumed run sees the same data as an uninterrupted one, and the
    /// ranks' parts are disjoint.
    fn train_batches(&self, epoch: usize, seed: u64, shard: Shard) -> Batches<'_, Self::Batch>;
    /// How many batches [`Data::train_batches`] yields (progress bars, schedules).
    fn train_batches_per_epoch(&self, shard: Shard) -> usize;
    /// Evaluation batches of a split (`train`, `val`, `test`, `ood-…`), in a fixed order: those
    /// of `shard`'s part, every world-th from its rank ([`Shard::every`]; all of them with
    /// [`Shard::WHOLE`]). Only that part is built.
    fn eval_batches(&self, split: &str, shard: Shard) -> Result<Batches<'_, Self::Batch>>;
    /// Whether [`Data::eval_batches`] knows `split`.
    fn has_split(&self, split: &str) -> bool;
    /// Whether `batch_size` is each rank's (token batches: fairseq's `--max-tokens` is per
    /// device) rather than shared out over the ranks (samples: each rank takes its part of every
    /// batch, so `batch_size` must divide by the world size).
    fn batch_size_per_rank(&self) -> bool {
        false
    }
}

/// A model's features and its last linear layer's logits on one batch, in evaluation mode:
/// what the per-sample gradient-norm probe reads.
pub struct Features {
    /// `[n, d]`: what the last linear layer reads.
    pub hidden: Tensor,
    /// `[n, K]`: the last linear layer's output.
    pub logits: Tensor,
    /// `[n]`.
    pub targets: Tensor,
}

/// What a task's model offers the probes. Checked when training starts, so a run never trains an
/// epoch and then fails on a probe its model cannot serve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The var-store name of the last linear layer's weight (the weight-norm probe).
    pub last_layer: Option<String>,
    /// Whether [`Task::features`] answers (the gradient-norm probe).
    pub features: bool,
}

impl Capabilities {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn with_last_layer(mut self, name: impl Into<String>) -> Self {
        self.last_layer = Some(name.into());
        self
    }

    pub fn with_features(mut self) -> Self {
        self.features = true;
        self
    }
}

/// What a task gives the shared loop. Everything ends as logits `[n, K]` and targets `[n]`.
pub trait Task {
    type Batch: Batch;
    type Data: Data<Batch = Self::Batch>;
    fn data(&self) -> &Self::Data;
    /// Logits `[n, K]` and targets `[n]` of a batch already on the device (an error for a batch
    /// the model cannot take, e.g. longer than its positions).
    fn forward(&self, batch: &Self::Batch, train: bool) -> Result<(Tensor, Tensor)>;
    fn var_store(&self) -> &VarStore;
    fn capabilities(&self) -> Capabilities {
        Capabilities::none()
    }
    /// See [`Features`]; called only when [`Task::capabilities`] says `features`.
    fn features(&self, _batch: &Self::Batch) -> Option<Features> {
        None
    }
}

/// A batch that is just tensors in a fixed order (test doubles and simple tasks).
impl Batch for Vec<Tensor> {
    fn map_tensors(self, f: &mut dyn FnMut(Tensor) -> Tensor) -> Self {
        self.into_iter().map(f).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_equal_and_cover_all_but_the_tail() {
        let items: Vec<usize> = (0..11).collect();
        let parts: Vec<Vec<usize>> = (0..3).map(|r| Shard::new(r, 3).unwrap().take(items.clone())).collect();
        assert_eq!(parts, vec![vec![0, 3, 6], vec![1, 4, 7], vec![2, 5, 8]]);
        assert_eq!(Shard::WHOLE.take(items.clone()), items);
        assert!(Shard::new(2, 2).is_err() && Shard::new(0, 0).is_err());
    }

    #[test]
    fn evaluation_parts_keep_the_tail() {
        let parts: Vec<Vec<usize>> = (0..3).map(|r| Shard::new(r, 3).unwrap().every(0..11).collect()).collect();
        assert_eq!(parts, vec![vec![0, 3, 6, 9], vec![1, 4, 7, 10], vec![2, 5, 8]]);
        assert_eq!(Shard::new(1, 4).unwrap().every(vec!["a", "b"]).collect::<Vec<_>>(), vec!["b"]);
    }
}
