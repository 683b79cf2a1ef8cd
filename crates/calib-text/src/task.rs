//! The text tracks as `calib-train` tasks: fixed-length documents for the Global Pooling CNN, and
//! batches of trees laid out level by level for the Tree-LSTM, whose loss is taken at every
//! labelled node in training and whose evaluation (validation, predictions, reports) reads the
//! roots, the sentences' labels.

use crate::gpcnn::{GlobalPoolingCnn, GpCnnConfig};
use crate::newsgroups::Encoded;
use crate::sst::{Labels, Levels, Tree};
use crate::treelstm::{LevelIndex, TreeLstm, TreeLstmConfig};
use calib_train::classifier;
use calib_train::task::{Batch, Batches, Capabilities, Data, Features, Shard, Task};
use calib_train::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Tensor};

/// Evaluation batches hold this many documents or trees.
const EVAL_BATCH: usize = 100;

/// The epoch's shuffled order of `n` examples, drawn by `(seed, epoch)`, then rank `shard`'s part
/// cut into batches of `batch_size / world` (so the ranks' batches i make up the single
/// process's batch i).
fn epoch_batches(n: usize, batch_size: usize, epoch: usize, seed: u64, shard: Shard) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let bs = (batch_size / shard.world()).max(1);
    shard.take(order).chunks(bs).map(<[usize]>::to_vec).collect()
}

fn per_epoch(n: usize, batch_size: usize, shard: Shard) -> usize {
    (n / shard.world()).div_ceil((batch_size / shard.world()).max(1))
}

fn in_order(n: usize) -> Vec<Vec<usize>> {
    (0..n).collect::<Vec<_>>().chunks(EVAL_BATCH).map(<[usize]>::to_vec).collect()
}

fn unknown_split(split: &str) -> Error {
    Error::Task(format!("this run has no {split} set"))
}

/// Id sequences `[B, L]` and their classes.
pub struct DocBatch {
    pub ids: Tensor,
    pub labels: Tensor,
}

impl Batch for DocBatch {
    fn map_tensors(self, f: &mut dyn FnMut(Tensor) -> Tensor) -> Self {
        Self { ids: f(self.ids), labels: f(self.labels) }
    }
}

/// Encoded documents of every split (the loader thread's side).
pub struct DocData {
    /// `train`, `val` and optionally `test`.
    splits: HashMap<String, Encoded>,
    batch_size: usize,
}

impl DocData {
    pub fn new(splits: HashMap<String, Encoded>, batch_size: usize) -> Self {
        Self { splits, batch_size }
    }

    fn split(&self, name: &str) -> Result<&Encoded> {
        self.splits.get(name).ok_or_else(|| unknown_split(name))
    }

    fn batch(docs: &Encoded, rows: &[usize]) -> DocBatch {
        let mut ids = Vec::with_capacity(rows.len() * docs.max_len);
        for &r in rows {
            ids.extend_from_slice(docs.row(r));
        }
        let labels: Vec<i64> = rows.iter().map(|&r| docs.labels[r]).collect();
        DocBatch {
            ids: Tensor::from_slice(&ids).view([rows.len() as i64, docs.max_len as i64]),
            labels: Tensor::from_slice(&labels),
        }
    }
}

impl Data for DocData {
    type Batch = DocBatch;

    fn train_batches(&self, epoch: usize, seed: u64, shard: Shard) -> Batches<'_, DocBatch> {
        let docs = &self.splits["train"];
        let batches = epoch_batches(docs.len(), self.batch_size, epoch, seed, shard);
        Box::new(batches.into_iter().map(move |rows| Self::batch(docs, &rows)))
    }

    fn train_batches_per_epoch(&self, shard: Shard) -> usize {
        per_epoch(self.splits["train"].len(), self.batch_size, shard)
    }

    fn eval_batches(&self, split: &str, shard: Shard) -> Result<Batches<'_, DocBatch>> {
        let docs = self.split(split)?;
        Ok(Box::new(shard.every(in_order(docs.len())).map(move |rows| Self::batch(docs, &rows))))
    }

    fn has_split(&self, split: &str) -> bool {
        self.splits.contains_key(split)
    }
}

/// The Global Pooling CNN on its documents.
pub struct DocTask {
    vs: VarStore,
    model: GlobalPoolingCnn,
    data: DocData,
}

impl DocTask {
    /// A fresh network (weights from libtorch's generator: seed it first) with `embedding`.
    pub fn new(config: &GpCnnConfig, embedding: &Tensor, data: DocData, device: Device) -> Self {
        let vs = VarStore::new(device);
        let model = GlobalPoolingCnn::new(&vs.root(), config, &embedding.to_device(device));
        Self { vs, model, data }
    }
}

impl Task for DocTask {
    type Batch = DocBatch;
    type Data = DocData;

    fn data(&self) -> &DocData {
        &self.data
    }

    fn forward(&self, batch: &DocBatch, train: bool) -> Result<(Tensor, Tensor)> {
        Ok((self.model.forward_t(&batch.ids, train), batch.labels.shallow_clone()))
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::none().with_features();
        match classifier::head_name(&self.vs, &self.model) {
            Some(name) => caps.with_last_layer(name),
            None => caps,
        }
    }

    fn features(&self, batch: &DocBatch) -> Option<Features> {
        Some(classifier::features(&self.model, &batch.ids, &batch.labels))
    }
}

/// A batch of trees for the level-batched Tree-LSTM (see [`Levels`]).
pub struct TreeBatch {
    /// Nodes in the batch.
    pub nodes: i64,
    /// The leaves' word ids, aligned with `levels[0].nodes`.
    pub words: Tensor,
    pub levels: Vec<LevelIndex>,
    /// The nodes that carry a label (binary task: the non-neutral ones), and their labels.
    pub labelled: Tensor,
    pub labels: Tensor,
    /// Each tree's root and the sentence's label.
    pub roots: Tensor,
    pub root_labels: Tensor,
}

impl Batch for TreeBatch {
    fn map_tensors(self, f: &mut dyn FnMut(Tensor) -> Tensor) -> Self {
        let levels = self
            .levels
            .into_iter()
            .map(|l| LevelIndex { nodes: f(l.nodes), left: f(l.left), right: f(l.right) })
            .collect();
        Self {
            nodes: self.nodes,
            words: f(self.words),
            levels,
            labelled: f(self.labelled),
            labels: f(self.labels),
            roots: f(self.roots),
            root_labels: f(self.root_labels),
        }
    }
}

impl TreeBatch {
    /// The layout of `trees` with word ids from `vocab` (lowercased first when `lowercase`;
    /// unknown words get row 0).
    pub fn new(trees: &[&Tree], vocab: &HashMap<String, i64>, lowercase: bool) -> Result<Self> {
        let id = |w: &str| {
            let found = if lowercase { vocab.get(&w.to_lowercase()) } else { vocab.get(w) };
            found.copied().unwrap_or(0)
        };
        let layout = Levels::build(trees, Labels::Binary, id).map_err(|e| Error::Task(e.to_string()))?;
        let labelled: Vec<i64> = (0..layout.len() as i64).filter(|&i| layout.mask[i as usize]).collect();
        let labels: Vec<i64> = labelled.iter().map(|&i| layout.labels[i as usize]).collect();
        let root_labels: Vec<i64> = layout.roots.iter().map(|&r| layout.labels[r as usize]).collect();
        let levels = layout.levels.iter().map(LevelIndex::of).collect();
        Ok(Self {
            nodes: layout.len() as i64,
            words: Tensor::from_slice(&layout.words),
            levels,
            labelled: Tensor::from_slice(&labelled),
            labels: Tensor::from_slice(&labels),
            roots: Tensor::from_slice(&layout.roots),
            root_labels: Tensor::from_slice(&root_labels),
        })
    }
}

/// The binary trees of every split and the vocabulary (the loader thread's side).
pub struct TreeData {
    /// `train`, `val` and optionally `test`; every root is non-neutral.
    splits: HashMap<String, Vec<Tree>>,
    vocab: HashMap<String, i64>,
    lowercase: bool,
    batch_size: usize,
}

impl TreeData {
    /// Checks every tree once (binary, a labelled root), so batches built later cannot fail.
    pub fn new(
        splits: HashMap<String, Vec<Tree>>,
        vocab: HashMap<String, i64>,
        lowercase: bool,
        batch_size: usize,
    ) -> Result<Self> {
        for (name, trees) in &splits {
            for (i, tree) in trees.iter().enumerate() {
                if let Some((node, children)) = tree.first_non_binary() {
                    return Err(Error::Task(format!(
                        "{name} tree {}: node {node} has {children} children where a binary tree has 2",
                        i + 1
                    )));
                }
                if crate::sst::binary_label(tree.label()).is_none() {
                    return Err(Error::Task(format!("{name} tree {}: a neutral root has no binary label", i + 1)));
                }
            }
        }
        Ok(Self { splits, vocab, lowercase, batch_size })
    }

    fn split(&self, name: &str) -> Result<&[Tree]> {
        self.splits.get(name).map(Vec::as_slice).ok_or_else(|| unknown_split(name))
    }

    fn batch(&self, trees: &[Tree], rows: &[usize]) -> TreeBatch {
        let picked: Vec<&Tree> = rows.iter().map(|&r| &trees[r]).collect();
        TreeBatch::new(&picked, &self.vocab, self.lowercase).expect("trees checked in TreeData::new")
    }
}

impl Data for TreeData {
    type Batch = TreeBatch;

    fn train_batches(&self, epoch: usize, seed: u64, shard: Shard) -> Batches<'_, TreeBatch> {
        let trees = &self.splits["train"];
        let batches = epoch_batches(trees.len(), self.batch_size, epoch, seed, shard);
        Box::new(batches.into_iter().map(move |rows| self.batch(trees, &rows)))
    }

    fn train_batches_per_epoch(&self, shard: Shard) -> usize {
        per_epoch(self.splits["train"].len(), self.batch_size, shard)
    }

    fn eval_batches(&self, split: &str, shard: Shard) -> Result<Batches<'_, TreeBatch>> {
        let trees = self.split(split)?;
        Ok(Box::new(shard.every(in_order(trees.len())).map(move |rows| self.batch(trees, &rows))))
    }

    fn has_split(&self, split: &str) -> bool {
        self.splits.contains_key(split)
    }
}

/// The Tree-LSTM on its trees.
pub struct TreeTask {
    vs: VarStore,
    model: TreeLstm,
    data: TreeData,
}

impl TreeTask {
    pub fn new(config: &TreeLstmConfig, embedding: &Tensor, data: TreeData, device: Device) -> Self {
        let vs = VarStore::new(device);
        let model = TreeLstm::new(&vs.root(), config, &embedding.to_device(device));
        Self { vs, model, data }
    }

    pub fn model(&self) -> &TreeLstm {
        &self.model
    }
}

impl Task for TreeTask {
    type Batch = TreeBatch;
    type Data = TreeData;

    fn data(&self) -> &TreeData {
        &self.data
    }

    /// Training: the logits and labels of every labelled node. Evaluation: the roots only.
    fn forward(&self, batch: &TreeBatch, train: bool) -> Result<(Tensor, Tensor)> {
        let h = self.model.forward_levels(batch.nodes, &batch.words, &batch.levels, train);
        let (rows, labels) = if train { (&batch.labelled, &batch.labels) } else { (&batch.roots, &batch.root_labels) };
        Ok((self.model.classify(&h.index_select(0, rows), train), labels.shallow_clone()))
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::none().with_last_layer(TreeLstm::HEAD).with_features()
    }

    /// The roots' states and logits.
    fn features(&self, batch: &TreeBatch) -> Option<Features> {
        let h =
            self.model.forward_levels(batch.nodes, &batch.words, &batch.levels, false).index_select(0, &batch.roots);
        let logits = self.model.classify(&h, false);
        Some(Features { hidden: h, logits, targets: batch.root_labels.shallow_clone() })
    }
}
