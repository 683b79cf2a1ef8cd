//! Translation as a `calib-train` task: token-count batches of sentence pairs, teacher forcing,
//! and one row of logits per target token with padding dropped, so the shared loop, the core's
//! losses (CE, label smoothing, focal, FLSD) and its metrics apply unchanged.

use crate::batch::token_batches;
use crate::data::Parallel;
pub use crate::decode::Specials;
use crate::transformer::{Config, Transformer};
use anyhow::{Context, Result};
use calib_train::trainer::{Batch, Task};
use std::collections::HashMap;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

pub struct TranslationTask {
    vs: VarStore,
    model: Transformer,
    train: Parallel,
    /// `val`, `test`.
    splits: HashMap<String, Parallel>,
    max_tokens: usize,
    specials: Specials,
    /// Batches of the training set per epoch (the same every epoch: see [`token_batches`]).
    per_epoch: usize,
}

impl TranslationTask {
    /// A fresh model of `config` on `device` (weights from libtorch's generator: seed it first).
    pub fn new(
        config: Config,
        train: Parallel,
        splits: HashMap<String, Parallel>,
        max_tokens: usize,
        specials: Specials,
        device: Device,
    ) -> Result<Self> {
        let vs = VarStore::new(device);
        let model = Transformer::new(&vs.root(), config);
        // Source and target each get EOS (and the target input BOS): one more token per side.
        let per_epoch =
            token_batches(&plus_one(&train.src.lengths()), &plus_one(&train.tgt.lengths()), max_tokens, 0, 0)
                .context("training data")?
                .len();
        for (name, split) in &splits {
            token_batches(&plus_one(&split.src.lengths()), &plus_one(&split.tgt.lengths()), max_tokens, 0, 0)
                .with_context(|| format!("{name} data"))?;
        }
        Ok(Self { vs, model, train, splits, max_tokens, specials, per_epoch })
    }

    pub fn model(&self) -> &Transformer {
        &self.model
    }

    fn batches<'a>(&'a self, data: &'a Parallel, seed: u64, epoch: usize) -> Box<dyn Iterator<Item = Batch> + 'a> {
        let order =
            token_batches(&plus_one(&data.src.lengths()), &plus_one(&data.tgt.lengths()), self.max_tokens, seed, epoch)
                .expect("checked in new");
        Box::new(order.into_iter().map(move |rows| self.batch(data, &rows)))
    }

    /// Source `[B, S]` = tokens + EOS, target input `[B, T]` = BOS + tokens, targets `[B·T]` =
    /// tokens + EOS, all padded.
    fn batch(&self, data: &Parallel, rows: &[usize]) -> Batch {
        let Specials { pad, bos, eos } = self.specials;
        let device = self.vs.device();
        let src_len = rows.iter().map(|&r| data.src.get(r).len() + 1).max().unwrap_or(1);
        let tgt_len = rows.iter().map(|&r| data.tgt.get(r).len() + 1).max().unwrap_or(1);
        let (mut src, mut tgt_in, mut tgt_out) =
            (vec![pad; rows.len() * src_len], vec![pad; rows.len() * tgt_len], vec![pad; rows.len() * tgt_len]);
        for (i, &r) in rows.iter().enumerate() {
            let s = data.src.get(r);
            for (j, &t) in s.iter().enumerate() {
                src[i * src_len + j] = t as i64;
            }
            src[i * src_len + s.len()] = eos;
            let t = data.tgt.get(r);
            tgt_in[i * tgt_len] = bos;
            for (j, &tok) in t.iter().enumerate() {
                tgt_in[i * tgt_len + j + 1] = tok as i64;
                tgt_out[i * tgt_len + j] = tok as i64;
            }
            tgt_out[i * tgt_len + t.len()] = eos;
        }
        let b = rows.len() as i64;
        let tensor = |v: Vec<i64>, w: usize| Tensor::from_slice(&v).view([b, w as i64]).to_device(device);
        Batch {
            inputs: vec![tensor(src, src_len), tensor(tgt_in, tgt_len)],
            targets: Tensor::from_slice(&tgt_out).to_device(device),
        }
    }
}

fn plus_one(lengths: &[usize]) -> Vec<usize> {
    lengths.iter().map(|l| l + 1).collect()
}

impl Task for TranslationTask {
    fn train_batches(&self, epoch: usize, seed: u64) -> Box<dyn Iterator<Item = Batch> + '_> {
        self.batches(&self.train, seed, epoch)
    }

    fn train_batches_per_epoch(&self) -> usize {
        self.per_epoch
    }

    fn eval_batches(&self, split: &str) -> Result<Box<dyn Iterator<Item = Batch> + '_>> {
        let data = self.splits.get(split).with_context(|| format!("this run has no {split} set"))?;
        Ok(self.batches(data, 0, 0))
    }

    fn forward(&self, batch: &Batch, train: bool) -> (Tensor, Tensor) {
        let (src, tgt_in) = (&batch.inputs[0], &batch.inputs[1]);
        let pad = src.eq(self.specials.pad);
        // The data is made with the model's positions in mind (mt's length filter).
        let memory = self.model.encode(src, &pad, train).expect("sources within max_positions");
        let logits = self.model.decode(tgt_in, &memory, &pad, train).expect("targets within max_positions");
        let v = logits.size()[2];
        let keep = batch.targets.ne(self.specials.pad).nonzero().squeeze_dim(1);
        (logits.view([-1, v]).index_select(0, &keep), batch.targets.index_select(0, &keep).to_kind(Kind::Int64))
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn last_layer_weight(&self) -> Option<String> {
        // The output projection is the shared embedding.
        Some("embed".into())
    }
}
