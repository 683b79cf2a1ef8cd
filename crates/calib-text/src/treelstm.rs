//! The binary (N-ary, N = 2) constituency Tree-LSTM of Tai et al. (2015), as the reference
//! implementation (DGL's `tree_lstm` example, which the paper's settings come from) writes it:
//!
//! - a leaf reads its word: `iou = W_iou · dropout(x) + b_iou`, `c = i ⊙ u`;
//! - an inner node reads its children's states `h̃ = [h_l; h_r]`: `iou = U_iou · h̃ + b_iou`,
//!   `[f_l; f_r] = σ(U_f · h̃ + b_f)`, `c = i ⊙ u + f_l ⊙ c_l + f_r ⊙ c_r`;
//! - everywhere `i, o = σ(·)`, `u = tanh(·)`, `h = o ⊙ tanh(c)`, and the classifier reads
//!   `dropout(h)`.
//!
//! Initialisation as the reference: every matrix Xavier-uniform (the embedding excepted: GloVe),
//! `b_iou` zero, the other biases PyTorch's `nn.Linear` default.
//!
//! [`TreeLstm::forward_levels`] computes all nodes of one height across the whole batch with
//! one matrix product per gate block (a tree of depth d costs d steps, whatever the batch);
//! [`TreeLstm::forward_nodes`] is the node-by-node recursion of the same model, for the
//! benchmark and as the check that batching changes nothing.

use crate::sst::Level;
use calib_train::init::{self, Bias, Weight};
use tch::nn;
use tch::{Kind, Tensor};

/// The reference code's rule for every matrix.
const XAVIER: Weight = Weight::Xavier { gain: 1.0 };

#[derive(Debug, Clone, PartialEq)]
pub struct TreeLstmConfig {
    /// Embedding rows and width.
    pub rows: i64,
    pub dim: i64,
    /// Memory (hidden) size: 150 in the paper's setting.
    pub memory: i64,
    pub classes: i64,
    pub dropout: f64,
}

/// The index tensors of one level of a batch (see [`crate::sst::Levels`]).
pub struct LevelIndex {
    pub nodes: Tensor,
    /// Empty at the leaf level.
    pub left: Tensor,
    pub right: Tensor,
}

impl LevelIndex {
    pub fn of(level: &Level) -> Self {
        Self {
            nodes: Tensor::from_slice(&level.nodes),
            left: Tensor::from_slice(&level.left),
            right: Tensor::from_slice(&level.right),
        }
    }
}

pub struct TreeLstm {
    embedding: Tensor,
    w_iou: nn::Linear,
    u_iou: nn::Linear,
    b_iou: Tensor,
    u_f: nn::Linear,
    out: nn::Linear,
    memory: i64,
    dropout: f64,
}

impl TreeLstm {
    pub fn new(p: &nn::Path, config: &TreeLstmConfig, embedding: &Tensor) -> Self {
        let (d, m) = (config.dim, config.memory);
        Self {
            embedding: init::pretrained(p, "embedding", embedding, true),
            w_iou: init::linear(p / "w_iou", d, 3 * m, XAVIER, Bias::None),
            u_iou: init::linear(p / "u_iou", 2 * m, 3 * m, XAVIER, Bias::None),
            b_iou: p.var("b_iou", &[1, 3 * m], nn::Init::Const(0.0)),
            u_f: init::linear(p / "u_f", 2 * m, 2 * m, XAVIER, Bias::Torch),
            out: init::linear(p / "out", m, config.classes, XAVIER, Bias::Torch),
            memory: m,
            dropout: config.dropout,
        }
    }

    /// The var-store name of the classifier's weight (the last layer).
    pub const HEAD: &'static str = "out.weight";

    /// `(c, h)` of nodes from their `iou` pre-activations and the children's carried memory.
    fn cell(&self, iou: Tensor, carried: Option<Tensor>) -> (Tensor, Tensor) {
        let iou = iou + &self.b_iou;
        let parts = iou.chunk(3, 1);
        let (i, o, u) = (parts[0].sigmoid(), parts[1].sigmoid(), parts[2].tanh());
        let c = match carried {
            Some(carried) => i * u + carried,
            None => i * u,
        };
        let h = o * c.tanh();
        (c, h)
    }

    /// The inner nodes' `iou` and the forget-gated memory of their children.
    fn compose(&self, hl: &Tensor, hr: &Tensor, cl: &Tensor, cr: &Tensor) -> (Tensor, Tensor) {
        let h = Tensor::cat(&[hl, hr], 1);
        let f = h.apply(&self.u_f).sigmoid();
        let f = f.chunk(2, 1);
        (h.apply(&self.u_iou), &f[0] * cl + &f[1] * cr)
    }

    fn leaves(&self, words: &Tensor, train: bool) -> (Tensor, Tensor) {
        let x = Tensor::embedding(&self.embedding, words, -1, false, false).dropout(self.dropout, train);
        self.cell(x.apply(&self.w_iou), None)
    }

    /// The hidden states `[nodes, memory]` of every node of the batch, level by level: `levels[0]`
    /// are the leaves (with `words` beside them), each later level reads states of lower ones.
    pub fn forward_levels(&self, nodes: i64, words: &Tensor, levels: &[LevelIndex], train: bool) -> Tensor {
        let opts = (Kind::Float, words.device());
        let (mut c, mut h) = (Tensor::zeros([nodes, self.memory], opts), Tensor::zeros([nodes, self.memory], opts));
        for (k, level) in levels.iter().enumerate() {
            let (cl, hl) = if k == 0 {
                self.leaves(words, train)
            } else {
                let pick = |t: &Tensor, i: &Tensor| t.index_select(0, i);
                let (iou, carried) = self.compose(
                    &pick(&h, &level.left),
                    &pick(&h, &level.right),
                    &pick(&c, &level.left),
                    &pick(&c, &level.right),
                );
                self.cell(iou, Some(carried))
            };
            c = c.index_copy(0, &level.nodes, &cl);
            h = h.index_copy(0, &level.nodes, &hl);
        }
        h
    }

    /// The same states computed one node at a time (each a `[1, ·]` product), in node order
    /// within each level: the recursion an unbatched implementation performs.
    pub fn forward_nodes(&self, nodes: i64, words: &Tensor, levels: &[LevelIndex], train: bool) -> Tensor {
        let n = nodes as usize;
        let (mut c, mut h): (Vec<Option<Tensor>>, Vec<Option<Tensor>>) =
            ((0..n).map(|_| None).collect(), (0..n).map(|_| None).collect());
        let ids = |t: &Tensor| Vec::<i64>::try_from(t.to_device(tch::Device::Cpu)).expect("int64 indices");
        for (k, level) in levels.iter().enumerate() {
            let targets = ids(&level.nodes);
            if k == 0 {
                for (j, &node) in targets.iter().enumerate() {
                    let (cj, hj) = self.leaves(&words.narrow(0, j as i64, 1), train);
                    (c[node as usize], h[node as usize]) = (Some(cj), Some(hj));
                }
                continue;
            }
            let (left, right) = (ids(&level.left), ids(&level.right));
            for (j, &node) in targets.iter().enumerate() {
                let get =
                    |v: &[Option<Tensor>], i: i64| v[i as usize].as_ref().expect("children come first").shallow_clone();
                let (l, r) = (left[j], right[j]);
                let (iou, carried) = self.compose(&get(&h, l), &get(&h, r), &get(&c, l), &get(&c, r));
                let (cj, hj) = self.cell(iou, Some(carried));
                (c[node as usize], h[node as usize]) = (Some(cj), Some(hj));
            }
        }
        let rows: Vec<Tensor> = h.into_iter().map(|t| t.expect("every node is on a level")).collect();
        Tensor::cat(&rows, 0)
    }

    /// The class logits of the hidden states `h` (`[n, memory]`).
    pub fn classify(&self, h: &Tensor, train: bool) -> Tensor {
        h.dropout(self.dropout, train).apply(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sst::{parse, Labels, Levels};
    use tch::nn::VarStore;
    use tch::Device;

    fn index(levels: &Levels) -> Vec<LevelIndex> {
        levels.levels.iter().map(LevelIndex::of).collect()
    }

    #[test]
    fn level_batching_equals_the_recursion_and_the_formulas() {
        tch::manual_seed(3);
        let config = TreeLstmConfig { rows: 5, dim: 4, memory: 6, classes: 2, dropout: 0.5 };
        let vs = VarStore::new(Device::Cpu);
        let model = TreeLstm::new(&vs.root(), &config, &Tensor::randn([5, 4], (Kind::Float, Device::Cpu)));
        let a = parse("(3 (2 a) (4 (1 b) (2 c)))").unwrap();
        let b = parse("(1 (1 d) (3 (2 (2 a) (2 b)) (2 c)))").unwrap();
        let ids = |w: &str| i64::from(w.as_bytes()[0] - b'a');
        let levels = Levels::build(&[&a, &b], Labels::Binary, ids).unwrap();
        let (n, words) = (levels.len() as i64, Tensor::from_slice(&levels.words));
        let batched = model.forward_levels(n, &words, &index(&levels), false);
        let recursive = model.forward_nodes(n, &words, &index(&levels), false);
        assert_eq!(batched.size(), [12, 6]);
        assert!(batched.allclose(&recursive, 1e-6, 1e-6, false));
        // Tree a's root by hand from its children's states: node 1 = b (leaf), 2 = c, 3 = (b c),
        // 0 = a, 4 = root (a (b c)).
        let leaf = |w: i64| model.leaves(&Tensor::from_slice(&[w]), false);
        let (ca, ha) = leaf(0);
        let (cb, hb) = leaf(1);
        let (cc, hc) = leaf(2);
        let (iou, carried) = model.compose(&hb, &hc, &cb, &cc);
        let (cbc, hbc) = model.cell(iou, Some(carried));
        let (iou, carried) = model.compose(&ha, &hbc, &ca, &cbc);
        let (_, root) = model.cell(iou, Some(carried));
        assert!(batched.get(4).allclose(&root.squeeze(), 1e-6, 1e-6, false));
        // A parameter count of the reference's layout: W_iou, U_iou, b_iou, U_f (+bias), out.
        let count: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(count, 5 * 4 + 4 * 18 + 12 * 18 + 18 + 12 * 12 + 12 + 6 * 2 + 2);
    }
}
