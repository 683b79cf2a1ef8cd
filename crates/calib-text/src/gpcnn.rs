//! The Global Pooling CNN of the reference 20 Newsgroups code (the Keras
//! `pretrained_word_embeddings` network that Kumar et al.'s MMCE code and the paper use):
//! embedding → 3 × [Conv1d(128, kernel 5) + ReLU], max-pooling (5) after the first two → global
//! max pooling over time → dense 128 + ReLU → dropout → the classes. Valid convolutions and
//! pools, as Keras' defaults; Glorot-uniform kernels and zero biases, Keras' initialisers.

use calib_train::classifier::Classifier;
use calib_train::init::{self, Bias, Weight};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Keras' default kernel initialiser.
const GLOROT: Weight = Weight::Xavier { gain: 1.0 };

/// The network's sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct GpCnnConfig {
    /// Embedding rows (the vocabulary with padding and unknown).
    pub rows: i64,
    /// Embedding width (the GloVe file's).
    pub dim: i64,
    pub classes: i64,
    pub filters: i64,
    pub kernel: i64,
    pub pool: i64,
    pub hidden: i64,
    pub dropout: f64,
    /// Fine-tune the embedding (the reference keeps it frozen).
    pub train_embedding: bool,
}

impl GpCnnConfig {
    /// The reference's layer sizes for `rows × dim` embeddings and `classes` outputs.
    pub fn reference(rows: i64, dim: i64, classes: i64) -> Self {
        Self { rows, dim, classes, filters: 128, kernel: 5, pool: 5, hidden: 128, dropout: 0.5, train_embedding: false }
    }

    /// The shortest document the three valid convolutions and two pools leave a position of.
    pub fn min_len(&self) -> usize {
        let (k, p) = (self.kernel as usize, self.pool as usize);
        // Undo the layers from the last: conv3 needs k positions, each pool p times as many.
        ((k * p + k - 1) * p) + k - 1
    }
}

#[derive(Debug)]
pub struct GlobalPoolingCnn {
    embedding: Tensor,
    convs: Vec<nn::Conv1D>,
    hidden: nn::Linear,
    out: nn::Linear,
    pool: i64,
    dropout: f64,
}

impl GlobalPoolingCnn {
    /// The network under `p`, its embedding copied from `embedding` (`[rows, dim]`).
    pub fn new(p: &nn::Path, config: &GpCnnConfig, embedding: &Tensor) -> Self {
        let embedding = init::pretrained(p, "embedding", embedding, config.train_embedding);
        let convs = (0..3)
            .map(|i| {
                let inputs = if i == 0 { config.dim } else { config.filters };
                let shape = (inputs, config.filters, config.kernel);
                init::conv1d(p / format!("conv{}", i + 1), shape, GLOROT, Bias::Zero)
            })
            .collect();
        Self {
            embedding,
            convs,
            hidden: init::linear(p / "hidden", config.filters, config.hidden, GLOROT, Bias::Zero),
            out: init::linear(p / "out", config.hidden, config.classes, GLOROT, Bias::Zero),
            pool: config.pool,
            dropout: config.dropout,
        }
    }
}

impl ModuleT for GlobalPoolingCnn {
    /// Logits `[B, classes]` of id sequences `[B, L]`.
    fn forward_t(&self, ids: &Tensor, train: bool) -> Tensor {
        self.features_t(ids, train).apply(&self.out)
    }
}

impl Classifier for GlobalPoolingCnn {
    fn features_t(&self, ids: &Tensor, train: bool) -> Tensor {
        let mut x = Tensor::embedding(&self.embedding, ids, -1, false, false).transpose(1, 2);
        for (i, conv) in self.convs.iter().enumerate() {
            x = x.apply(conv).relu();
            if i < 2 {
                x = x.max_pool1d([self.pool], [self.pool], [0], [1], false);
            }
        }
        let pooled = x.amax([2], false);
        pooled.apply(&self.hidden).relu().dropout(self.dropout, train)
    }

    fn head(&self) -> &nn::Linear {
        &self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    #[test]
    fn shapes_lengths_and_a_frozen_embedding() {
        let config = GpCnnConfig::reference(10, 6, 20);
        // 149 ids leave one position after conv3 (149 → 145 → 29 → 25 → 5 → 1); 148 none.
        assert_eq!(config.min_len(), 149);
        let vs = VarStore::new(Device::Cpu);
        let emb = Tensor::randn([10, 6], (Kind::Float, Device::Cpu));
        let net = GlobalPoolingCnn::new(&vs.root(), &config, &emb);
        let ids = Tensor::from_slice(&[3i64; 2 * 149]).view([2, 149]);
        assert_eq!(net.forward_t(&ids, false).size(), [2, 20]);
        let trainable: Vec<String> =
            vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).map(|(n, _)| n).collect();
        assert!(!trainable.contains(&"embedding".to_string()) && trainable.len() == 10, "{trainable:?}");
        assert_eq!(vs.variables().len(), 11);
        // Glorot-uniform: the first convolution's bound is √(6 / (6·5 + 128·5)).
        let w = &vs.variables()["conv1.weight"];
        let bound = (6.0f64 / (30.0 + 640.0)).sqrt();
        assert!(w.abs().max().double_value(&[]) <= bound && w.abs().max().double_value(&[]) > 0.9 * bound);
    }
}
