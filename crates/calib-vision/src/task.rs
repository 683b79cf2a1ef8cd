//! Image classification as a [`calib_train::task::Task`]: batches with the paper's augmentation
//! (random 32 × 32 crop after 4-pixel zero padding, horizontal flip) and per-dataset
//! normalisation, built on the loader thread, fed to one of [`crate::models`].

use crate::models::{self, Arch, Classifier};
use crate::{Error, Images, Result};
use calib_train::classifier;
use calib_train::task::{Batch, Batches, Capabilities, Data, Features, Shard, Task};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tch::nn::VarStore;
use tch::{Device, Tensor};

/// Per-channel mean and standard deviation of a dataset's training images (0–1 scale).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// CIFAR-10 (the statistics the paper's code and the reference predictions use).
    pub const CIFAR10: Self = Self { mean: [0.4914, 0.4822, 0.4465], std: [0.2023, 0.1994, 0.2010] };
    /// CIFAR-100's own statistics (not CIFAR-10's).
    pub const CIFAR100: Self = Self { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762] };
    /// ImageNet's, which the paper's code uses for Tiny-ImageNet.
    pub const IMAGENET: Self = Self { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
}

/// Splits a task evaluates on.
pub struct Splits {
    pub train: Images,
    pub val: Images,
    pub test: Option<Images>,
    /// Out-of-distribution sets, by name (`ood-<name>` splits).
    pub ood: Vec<(String, Images)>,
}

/// Normalised images, indexed NCHW (laid out channels-last when the task asks, see
/// [`ImageTask::channels_last`]), and their labels.
pub struct ImageBatch {
    pub images: Tensor,
    pub labels: Tensor,
}

impl Batch for ImageBatch {
    fn map_tensors(self, f: &mut dyn FnMut(Tensor) -> Tensor) -> Self {
        Self { images: f(self.images), labels: f(self.labels) }
    }
}

/// The images of every split and how to batch them (the loader thread's side).
pub struct ImageData {
    splits: Splits,
    batch_size: usize,
    norm: Normalization,
    augment: bool,
    /// Batches laid out channels-last (NHWC in memory), as the weights are.
    channels_last: bool,
}

impl ImageData {
    pub fn splits(&self) -> &Splits {
        &self.splits
    }

    fn split(&self, name: &str) -> Result<&Images> {
        Ok(match name {
            "train" => &self.splits.train,
            "val" => &self.splits.val,
            "test" => self.splits.test.as_ref().ok_or_else(|| Error::Config("this run has no test set".into()))?,
            _ => match name.strip_prefix("ood-").and_then(|n| self.splits.ood.iter().find(|(o, _)| o == n)) {
                Some((_, images)) => images,
                None => return Err(Error::Config(format!("unknown split {name}"))),
            },
        })
    }

    /// NCHW float batch of `rows`, normalised; with `crops` = Some((dy, dx, flip)) per image, the
    /// image is shifted by (dy − 4, dx − 4) inside a zero-padded frame and optionally mirrored.
    /// Channels-last batches are written in that order here, where the batch is built anyway
    /// (on the loader thread), and viewed as NCHW: the training step copies nothing.
    fn batch(&self, images: &Images, rows: &[usize], crops: Option<&[(usize, usize, bool)]>) -> ImageBatch {
        let (h, w) = (images.height, images.width);
        let plane = h * w;
        let mut data = vec![0f32; rows.len() * 3 * plane];
        let norm = self.norm;
        let at = |c: usize, y: usize, x: usize| match self.channels_last {
            true => (y * w + x) * 3 + c,
            false => c * plane + y * w + x,
        };
        data.par_chunks_mut(3 * plane).enumerate().for_each(|(b, out)| {
            let img = images.image(rows[b]);
            let (dy, dx, flip) = crops.map_or((4, 4, false), |c| c[b]);
            for y in 0..h {
                for x in 0..w {
                    let sx = if flip { w - 1 - x } else { x };
                    let (iy, ix) = (y as isize + dy as isize - 4, sx as isize + dx as isize - 4);
                    let inside = iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w;
                    for c in 0..3 {
                        let v = if inside { img[(iy as usize * w + ix as usize) * 3 + c] as f32 / 255.0 } else { 0.0 };
                        out[at(c, y, x)] = (v - norm.mean[c]) / norm.std[c];
                    }
                }
            }
        });
        let labels: Vec<i64> = rows.iter().map(|&r| images.labels[r]).collect();
        let (n, h, w) = (rows.len() as i64, h as i64, w as i64);
        let images = match self.channels_last {
            true => Tensor::from_slice(&data).view([n, h, w, 3]).permute([0, 3, 1, 2]),
            false => Tensor::from_slice(&data).view([n, 3, h, w]),
        };
        ImageBatch { images, labels: Tensor::from_slice(&labels) }
    }
}

impl Data for ImageData {
    type Batch = ImageBatch;

    /// The epoch's order and crops are drawn by `(seed, epoch)` as in one process; rank r takes
    /// every world-th image of that order in batches of `batch_size / world`, so the ranks'
    /// batches i together are the single process's batch i.
    fn train_batches(&self, epoch: usize, seed: u64, shard: Shard) -> Batches<'_, ImageBatch> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(epoch as u64);
        let mut order: Vec<usize> = (0..self.splits.train.len()).collect();
        order.shuffle(&mut rng);
        let crops: Vec<(usize, usize, bool)> =
            order.iter().map(|_| (rng.random_range(0..=8), rng.random_range(0..=8), rng.random_bool(0.5))).collect();
        let (order, crops) = (shard.take(order), shard.take(crops));
        let bs = (self.batch_size / shard.world()).max(1);
        let augment = self.augment;
        Box::new((0..order.len().div_ceil(bs)).map(move |b| {
            let range = b * bs..((b + 1) * bs).min(order.len());
            let crops = augment.then(|| &crops[range.clone()]);
            self.batch(&self.splits.train, &order[range], crops)
        }))
    }

    fn train_batches_per_epoch(&self, shard: Shard) -> usize {
        let bs = (self.batch_size / shard.world()).max(1);
        (self.splits.train.len() / shard.world()).div_ceil(bs)
    }

    fn eval_batches(&self, split: &str, shard: Shard) -> calib_train::Result<Batches<'_, ImageBatch>> {
        let images = self.split(split).map_err(|e| calib_train::Error::Task(e.to_string()))?;
        let bs = self.batch_size.max(256);
        let rows: Vec<usize> = (0..images.len()).collect();
        Ok(Box::new(
            shard
                .every(0..images.len().div_ceil(bs))
                .map(move |b| self.batch(images, &rows[b * bs..((b + 1) * bs).min(images.len())], None)),
        ))
    }

    fn has_split(&self, split: &str) -> bool {
        self.split(split).is_ok()
    }
}

/// An image classifier on its data.
pub struct ImageTask {
    data: ImageData,
    vs: VarStore,
    model: Box<dyn Classifier>,
}

impl ImageTask {
    /// A fresh `arch` on `device` (weights from libtorch's generator: seed it first).
    pub fn new(
        splits: Splits,
        arch: Arch,
        batch_size: usize,
        norm: Normalization,
        augment: bool,
        device: Device,
    ) -> Result<Self> {
        let classes = splits.train.classes.len();
        if splits.train.is_empty() || splits.val.is_empty() {
            return Err(Error::Config("the training and validation splits must not be empty".into()));
        }
        if batch_size == 0 {
            return Err(Error::Config("batch_size must be at least 1".into()));
        }
        for (name, s) in [("val", &splits.val)].into_iter().chain(splits.test.as_ref().map(|t| ("test", t))) {
            if (s.height, s.width) != (splits.train.height, splits.train.width) {
                return Err(Error::Config(format!(
                    "{name} images are {}×{}, training images {}×{}",
                    s.width, s.height, splits.train.width, splits.train.height
                )));
            }
        }
        let vs = VarStore::new(device);
        let model = models::build(arch, &vs.root(), classes as i64);
        let data = ImageData { splits, batch_size, norm, augment, channels_last: false };
        Ok(Self { data, vs, model })
    }

    /// The network's weights, and the batches it is given, in the channels-last layout (see
    /// [`calib_train::memory_format`]). Call it before training starts.
    pub fn channels_last(mut self, on: bool) -> Self {
        if on && !self.data.channels_last {
            calib_train::memory_format::to_channels_last(&self.vs);
        }
        self.data.channels_last |= on;
        self
    }

    pub fn splits(&self) -> &Splits {
        self.data.splits()
    }
}

impl Task for ImageTask {
    type Batch = ImageBatch;
    type Data = ImageData;

    fn data(&self) -> &ImageData {
        &self.data
    }

    fn forward(&self, batch: &ImageBatch, train: bool) -> calib_train::Result<(Tensor, Tensor)> {
        Ok((self.model.forward_t(&batch.images, train), batch.labels.shallow_clone()))
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::none().with_features();
        match classifier::head_name(&self.vs, self.model.as_ref()) {
            Some(name) => caps.with_last_layer(name),
            None => caps,
        }
    }

    fn features(&self, batch: &ImageBatch) -> Option<Features> {
        Some(classifier::features(self.model.as_ref(), &batch.images, &batch.labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both layouts hold the same normalised, cropped and mirrored values; the channels-last
    /// batch is one in memory as built, with no copy.
    #[test]
    fn channels_last_batches_hold_the_same_values() {
        let images = Images {
            height: 5,
            width: 6,
            pixels: (0..2 * 5 * 6 * 3).map(|i| (i * 7 % 256) as u8).collect(),
            labels: vec![0, 1],
            classes: vec!["a".into(), "b".into()],
        };
        let norm = Normalization { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };
        let data = |channels_last| {
            let splits = Splits { train: images.clone(), val: images.clone(), test: None, ood: Vec::new() };
            ImageData { splits, batch_size: 2, norm, augment: true, channels_last }
        };
        let crops = [(1, 7, true), (4, 4, false)];
        let nchw = data(false).batch(&images, &[1, 0], Some(&crops));
        let nhwc = data(true).batch(&images, &[1, 0], Some(&crops));
        assert!(!calib_train::memory_format::is_channels_last(&nchw.images));
        assert!(calib_train::memory_format::is_channels_last(&nhwc.images));
        assert!(nhwc.images.equal(&nchw.images) && nhwc.labels.equal(&nchw.labels));
    }

    /// A rank's evaluation batches are every world-th of the whole split's, the last short
    /// batch included.
    #[test]
    fn evaluation_shards_take_every_world_th_batch() {
        let n = 600;
        let images = Images {
            height: 2,
            width: 2,
            pixels: (0..n * 2 * 2 * 3).map(|i| (i % 251) as u8).collect(),
            labels: (0..n as i64).map(|i| i % 3).collect(),
            classes: vec!["a".into(), "b".into(), "c".into()],
        };
        let norm = Normalization { mean: [0.5; 3], std: [0.25; 3] };
        let splits = Splits { train: images.clone(), val: images, test: None, ood: Vec::new() };
        let data = ImageData { splits, batch_size: 128, norm, augment: false, channels_last: false };
        let labels = |shard| -> Vec<Vec<i64>> {
            data.eval_batches("val", shard).unwrap().map(|b| Vec::<i64>::try_from(b.labels).unwrap()).collect()
        };
        let whole = labels(Shard::WHOLE);
        assert_eq!(whole.iter().map(Vec::len).collect::<Vec<_>>(), vec![256, 256, 88]);
        assert_eq!(labels(Shard::new(0, 2).unwrap()), vec![whole[0].clone(), whole[2].clone()]);
        assert_eq!(labels(Shard::new(1, 2).unwrap()), vec![whole[1].clone()]);
        assert!(labels(Shard::new(3, 4).unwrap()).is_empty());
    }
}
