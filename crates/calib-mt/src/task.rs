//! Translation as a `calib-train` task: token-count batches of sentence pairs, teacher forcing,
//! and one row of logits per target token with padding dropped, so the shared loop, the core's
//! losses (CE, label smoothing, focal, FLSD) and its metrics apply unchanged.

use crate::data::Parallel;
pub use crate::decode::Specials;
use crate::transformer::{Config, Transformer};
use calib_train::batching::{self, token_batches};
use calib_train::task::{Batch, Batches, Capabilities, Data, Shard, Task};
use calib_train::{Error, Result};
use std::collections::HashMap;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Source `[B, S]` = tokens + EOS, target input `[B, T]` = BOS + tokens, targets `[B·T]` =
/// tokens + EOS, all padded.
pub struct PairBatch {
    pub src: Tensor,
    pub tgt_in: Tensor,
    pub targets: Tensor,
}

impl Batch for PairBatch {
    fn map_tensors(self, f: &mut dyn FnMut(Tensor) -> Tensor) -> Self {
        Self { src: f(self.src), tgt_in: f(self.tgt_in), targets: f(self.targets) }
    }
}

/// The sentence pairs of every split and how to batch them (the loader thread's side).
pub struct TranslationData {
    train: Parallel,
    /// `val`, `test`.
    splits: HashMap<String, Parallel>,
    max_tokens: usize,
    specials: Specials,
    /// Batches of the training set per epoch (the same every epoch: see [`token_batches`]).
    per_epoch: usize,
}

fn plus_one(lengths: &[usize]) -> Vec<usize> {
    lengths.iter().map(|l| l + 1).collect()
}

/// Token-count batches of `data` (source and target each get EOS, the target input BOS: one
/// more token per side).
fn order(data: &Parallel, max_tokens: usize, seed: u64, epoch: usize) -> Result<Vec<Vec<usize>>, batching::Error> {
    token_batches(&plus_one(&data.src.lengths()), &plus_one(&data.tgt.lengths()), max_tokens, seed, epoch)
}

impl TranslationData {
    pub fn new(
        train: Parallel,
        splits: HashMap<String, Parallel>,
        max_tokens: usize,
        specials: Specials,
    ) -> Result<Self> {
        let per_epoch = order(&train, max_tokens, 0, 0).map_err(|e| Error::Task(format!("training data: {e}")))?.len();
        for (name, split) in &splits {
            order(split, max_tokens, 0, 0).map_err(|e| Error::Task(format!("{name} data: {e}")))?;
        }
        Ok(Self { train, splits, max_tokens, specials, per_epoch })
    }

    fn batches<'a>(&'a self, data: &'a Parallel, seed: u64, epoch: usize, shard: Shard) -> Batches<'a, PairBatch> {
        let order = order(data, self.max_tokens, seed, epoch).expect("checked in new");
        Box::new(shard.take(order).into_iter().map(move |rows| self.batch(data, &rows)))
    }

    fn batch(&self, data: &Parallel, rows: &[usize]) -> PairBatch {
        let Specials { pad, bos, eos } = self.specials;
        let (mut src, mut tgt_in, mut tgt_out) = (Vec::new(), Vec::new(), Vec::new());
        for &r in rows {
            let s: Vec<i64> = data.src.get(r).iter().map(|&t| t as i64).chain([eos]).collect();
            let t: Vec<i64> = data.tgt.get(r).iter().map(|&t| t as i64).collect();
            src.push(s);
            tgt_in.push(std::iter::once(bos).chain(t.iter().copied()).collect::<Vec<_>>());
            tgt_out.push(t.into_iter().chain([eos]).collect::<Vec<_>>());
        }
        PairBatch {
            src: batching::pad(&src, None, pad),
            tgt_in: batching::pad(&tgt_in, None, pad),
            targets: batching::pad(&tgt_out, None, pad).flatten(0, -1),
        }
    }
}

impl Data for TranslationData {
    type Batch = PairBatch;

    /// Rank r takes every world-th batch of the epoch's list (fairseq's `--max-tokens` is per
    /// device); the tail is cut so that every rank steps the same number of times.
    fn train_batches(&self, epoch: usize, seed: u64, shard: Shard) -> Batches<'_, PairBatch> {
        self.batches(&self.train, seed, epoch, shard)
    }

    fn train_batches_per_epoch(&self, shard: Shard) -> usize {
        self.per_epoch / shard.world()
    }

    fn eval_batches(&self, split: &str, shard: Shard) -> Result<Batches<'_, PairBatch>> {
        let data = match split {
            "train" => &self.train,
            _ => self.splits.get(split).ok_or_else(|| Error::Task(format!("this run has no {split} set")))?,
        };
        let order = order(data, self.max_tokens, 0, 0).expect("checked in new");
        Ok(Box::new(shard.every(order).map(move |rows| self.batch(data, &rows))))
    }

    fn has_split(&self, split: &str) -> bool {
        split == "train" || self.splits.contains_key(split)
    }

    fn batch_size_per_rank(&self) -> bool {
        true
    }
}

pub struct TranslationTask {
    vs: VarStore,
    model: Transformer,
    data: TranslationData,
}

impl TranslationTask {
    /// A fresh model of `config` on `device` (weights from libtorch's generator: seed it first).
    pub fn new(config: Config, data: TranslationData, device: Device) -> Self {
        let vs = VarStore::new(device);
        let model = Transformer::new(&vs.root(), config);
        Self { vs, model, data }
    }

    pub fn model(&self) -> &Transformer {
        &self.model
    }
}

impl Task for TranslationTask {
    type Batch = PairBatch;
    type Data = TranslationData;

    fn data(&self) -> &TranslationData {
        &self.data
    }

    fn forward(&self, batch: &PairBatch, train: bool) -> Result<(Tensor, Tensor)> {
        let pad = batch.src.eq(self.data.specials.pad);
        let too_long = |e: crate::transformer::Error| Error::Task(e.to_string());
        let memory = self.model.encode(&batch.src, &pad, train).map_err(too_long)?;
        let logits = self.model.decode(&batch.tgt_in, &memory, &pad, train).map_err(too_long)?;
        let v = logits.size()[2];
        let keep = batch.targets.ne(self.data.specials.pad).nonzero().squeeze_dim(1);
        Ok((logits.view([-1, v]).index_select(0, &keep), batch.targets.index_select(0, &keep).to_kind(Kind::Int64)))
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn capabilities(&self) -> Capabilities {
        // The output projection is the shared embedding.
        Capabilities::none().with_last_layer("embed")
    }
}
