//! The Transformer encoder–decoder (Vaswani et al., 2017) on `tch`: shared source/target
//! embeddings tied to the output projection, sinusoidal positions, post-norm (the paper's, and
//! fairseq's default) or pre-norm layers. Presets: `base` (6+6 layers, d 512, ffn 2048, 8 heads,
//! dropout 0.1) and `small` (3+3, d 256, ffn 1024, 4 heads) for CPU runs. Attention runs
//! through libtorch's fused `scaled_dot_product_attention`.
//!
//! It starts and drops out as fairseq's `transformer` does (`fairseq/modules/multihead_attention.py`,
//! `transformer_layer.py`, `models/transformer`): the query, key and value projections
//! Xavier-uniform with gain 1/√2 (their biases PyTorch's default), the attention output projection
//! Xavier-uniform with a zero bias, the feed-forward layers PyTorch's `nn.Linear` default, the
//! embedding N(0, d^−½) with the padding row zeroed (and kept out of the lookup's gradient), layer
//! norms 1 and 0. Dropout `dropout` falls on the embeddings and on every sub-layer's output;
//! `attention_dropout` on the attention weights and `activation_dropout` after the feed-forward
//! ReLU are separate, 0 in fairseq's Transformer presets and in ours.

use calib_train::init::{self, Bias, Weight};
use tch::nn;
use tch::{Kind, Tensor};

/// What a caller can get wrong: sequences longer than the model's positions, tensors of the
/// wrong shape or kind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("a sequence of {len} positions exceeds the model's max_positions {max}")]
    TooLong { len: i64, max: i64 },
    #[error("{what} must be {expected}, got a {kind:?} tensor of shape {shape:?}")]
    Shape { what: &'static str, expected: String, kind: Kind, shape: Vec<i64> },
}

/// `Ok` when `t` has kind `kind` (any, if `None`) and shape `shape` (`-1`: any size).
fn check(t: &Tensor, what: &'static str, kind: Option<Kind>, shape: &[i64]) -> Result<(), Error> {
    let got = t.size();
    let fits = got.len() == shape.len() && got.iter().zip(shape).all(|(&g, &s)| s < 0 || g == s);
    if fits && kind.is_none_or(|k| t.kind() == k) {
        return Ok(());
    }
    let dims: Vec<String> = shape.iter().map(|&s| if s < 0 { "_".into() } else { s.to_string() }).collect();
    let expected = match kind {
        Some(k) => format!("a {k:?} tensor of shape [{}]", dims.join(", ")),
        None => format!("a tensor of shape [{}]", dims.join(", ")),
    };
    Err(Error::Shape { what, expected, kind: t.kind(), shape: got })
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub vocab: i64,
    pub d_model: i64,
    pub heads: i64,
    pub ffn: i64,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    /// Dropout on the embeddings and on each sub-layer's output before its residual sum.
    pub dropout: f64,
    /// Dropout on the attention weights (fairseq's `--attention-dropout`).
    #[serde(default)]
    pub attention_dropout: f64,
    /// Dropout after the feed-forward ReLU (fairseq's `--activation-dropout`).
    #[serde(default)]
    pub activation_dropout: f64,
    /// The padding token's id: its embedding row starts at zero and the lookup gives it no
    /// gradient (fairseq's `padding_idx`).
    #[serde(default)]
    pub padding: Option<i64>,
    /// Layer norm before each sub-layer (and a final one) instead of after the residual.
    pub pre_norm: bool,
    pub max_positions: i64,
}

impl Config {
    pub fn base(vocab: i64) -> Self {
        Self {
            vocab,
            d_model: 512,
            heads: 8,
            ffn: 2048,
            encoder_layers: 6,
            decoder_layers: 6,
            dropout: 0.1,
            attention_dropout: 0.0,
            activation_dropout: 0.0,
            padding: None,
            pre_norm: false,
            max_positions: 1024,
        }
    }

    pub fn small(vocab: i64) -> Self {
        Self {
            vocab,
            d_model: 256,
            heads: 4,
            ffn: 1024,
            encoder_layers: 3,
            decoder_layers: 3,
            dropout: 0.1,
            attention_dropout: 0.0,
            activation_dropout: 0.0,
            padding: None,
            pre_norm: false,
            max_positions: 1024,
        }
    }

    /// The dropout rates of a forward pass: the configured ones in training, none otherwise.
    fn drops(&self, train: bool) -> Drops {
        match train {
            true => {
                Drops { residual: self.dropout, attention: self.attention_dropout, activation: self.activation_dropout }
            }
            false => Drops { residual: 0.0, attention: 0.0, activation: 0.0 },
        }
    }

    pub fn preset(name: &str, vocab: i64) -> Result<Self, String> {
        match name {
            "base" => Ok(Self::base(vocab)),
            "small" => Ok(Self::small(vocab)),
            _ => Err(format!("unknown Transformer preset '{name}' (expected base, small)")),
        }
    }
}

/// The three dropout rates of one forward pass.
#[derive(Debug, Clone, Copy)]
struct Drops {
    residual: f64,
    attention: f64,
    activation: f64,
}

/// Multi-head attention with the four projections of `nn.MultiheadAttention` (with biases),
/// initialised as fairseq's `MultiheadAttention.reset_parameters`.
#[derive(Debug)]
struct Attention {
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    out: nn::Linear,
    heads: i64,
}

impl Attention {
    fn new(p: nn::Path, d: i64, heads: i64) -> Self {
        let qkv = |n: &str| init::linear(&p / n, d, d, Weight::Xavier { gain: 0.5f64.sqrt() }, Bias::Torch);
        let out = init::linear(&p / "out", d, d, Weight::Xavier { gain: 1.0 }, Bias::Zero);
        Self { q: qkv("q"), k: qkv("k"), v: qkv("v"), out, heads }
    }

    /// `x [B, T, d]` projected by `lin` and split into heads: `[B, H, T, d/H]`.
    fn heads(&self, lin: &nn::Linear, x: &Tensor) -> Tensor {
        let (b, t, d) = x.size3().expect("[B, T, d]");
        x.apply(lin).view([b, t, self.heads, d / self.heads]).transpose(1, 2)
    }

    /// Attention of queries `q [B, H, Tq, dh]` over keys/values `[B, H, Tk, dh]`; `pad [B, Tk]`
    /// is true at padding; `causal` hides later positions; `drop` is the dropout on the attention
    /// weights (zero outside training). Returns `[B, Tq, d]`.
    ///
    /// Through libtorch's fused `scaled_dot_product_attention` (the explicit softmax of
    /// [`attend_explicit`] gives the same to 1e-5, tested). No query row is ever fully masked, which
    /// would give NaN: padding is only ever on keys and every source keeps at least EOS, and a
    /// causal query always sees its own position.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, pad: Option<&Tensor>, causal: bool, drop: f64) -> Tensor {
        let (b, h, tq, dh) = q.size4().expect("[B, H, T, dh]");
        #[cfg(test)]
        if EXPLICIT.with(|e| e.get()) {
            let ctx = attend_explicit(q, k, v, pad, causal, drop);
            return ctx.transpose(1, 2).contiguous().view([b, tq, h * dh]).apply(&self.out);
        }
        let tk = k.size()[2];
        // A boolean mask in SDPA is true where a query may attend (the opposite of `pad`).
        let keep = pad.map(|pad| pad.logical_not().view([b, 1, 1, tk]).expand([b, h, tq, tk], false));
        let (mask, is_causal) = match (keep, causal) {
            (Some(keep), true) => {
                (Some(keep.logical_and(&Tensor::ones([tq, tk], (Kind::Bool, q.device())).tril(0))), false)
            }
            (keep, causal) => (keep, causal),
        };
        let ctx = Tensor::scaled_dot_product_attention(q, k, v, mask, drop, is_causal, None, false);
        ctx.transpose(1, 2).contiguous().view([b, tq, h * dh]).apply(&self.out)
    }

    /// `query [B, Tq, d]` attends to `memory [B, Tk, d]`.
    fn forward(&self, query: &Tensor, memory: &Tensor, pad: Option<&Tensor>, causal: bool, drop: f64) -> Tensor {
        let (q, k, v) = (self.heads(&self.q, query), self.heads(&self.k, memory), self.heads(&self.v, memory));
        self.attend(&q, &k, &v, pad, causal, drop)
    }
}

#[cfg(test)]
thread_local! {
    /// Tests switch [`Attention::attend`] to [`attend_explicit`] on their own thread.
    static EXPLICIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The explicit attention `softmax(q kᵀ / √dh + masks) v` the fused kernel replaces (kept as the
/// reference it is tested against): `[B, H, Tq, dh]`, before the output projection.
#[cfg(test)]
fn attend_explicit(q: &Tensor, k: &Tensor, v: &Tensor, pad: Option<&Tensor>, causal: bool, drop: f64) -> Tensor {
    let (b, _, tq, dh) = q.size4().expect("[B, H, T, dh]");
    let tk = k.size()[2];
    let mut scores = q.matmul(&k.transpose(-2, -1)) / (dh as f64).sqrt();
    if let Some(pad) = pad {
        scores = scores.masked_fill(&pad.view([b, 1, 1, tk]), f64::NEG_INFINITY);
    }
    if causal {
        let future = Tensor::ones([tq, tk], (Kind::Bool, q.device())).triu(1);
        scores = scores.masked_fill(&future, f64::NEG_INFINITY);
    }
    let attn = scores.softmax(-1, scores.kind()).dropout(drop, drop > 0.0);
    attn.matmul(v)
}

#[derive(Debug)]
struct FeedForward {
    a: nn::Linear,
    b: nn::Linear,
}

impl FeedForward {
    fn new(p: nn::Path, d: i64, ffn: i64) -> Self {
        Self { a: init::torch_linear(&p / "a", d, ffn), b: init::torch_linear(&p / "b", ffn, d) }
    }
    fn forward(&self, x: &Tensor, drop: f64) -> Tensor {
        x.apply(&self.a).relu().dropout(drop, drop > 0.0).apply(&self.b)
    }
}

/// A residual sub-layer with its layer norm, before (pre-norm) or after (post-norm).
fn residual(x: &Tensor, norm: &nn::LayerNorm, pre: bool, drop: f64, f: impl FnOnce(&Tensor) -> Tensor) -> Tensor {
    if pre {
        x + f(&x.apply(norm)).dropout(drop, drop > 0.0)
    } else {
        (x + f(x).dropout(drop, drop > 0.0)).apply(norm)
    }
}

fn layer_norm(p: nn::Path, d: i64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![d], Default::default())
}

#[derive(Debug)]
struct EncoderLayer {
    attn: Attention,
    ln1: nn::LayerNorm,
    ffn: FeedForward,
    ln2: nn::LayerNorm,
}

#[derive(Debug)]
struct DecoderLayer {
    self_attn: Attention,
    ln1: nn::LayerNorm,
    cross: Attention,
    ln2: nn::LayerNorm,
    ffn: FeedForward,
    ln3: nn::LayerNorm,
}

#[derive(Debug)]
pub struct Transformer {
    pub config: Config,
    /// `[vocab, d]`, shared by source, target and the output projection.
    embed: Tensor,
    positions: Tensor,
    encoder: Vec<EncoderLayer>,
    decoder: Vec<DecoderLayer>,
    /// Final layer norms (pre-norm only).
    final_norms: Option<(nn::LayerNorm, nn::LayerNorm)>,
}

/// Vaswani et al.'s sinusoids: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(…).
fn sinusoids(n: i64, d: i64) -> Tensor {
    let mut pe = vec![0f32; (n * d) as usize];
    for pos in 0..n {
        for i in (0..d).step_by(2) {
            let angle = pos as f64 / 10000f64.powf(i as f64 / d as f64);
            pe[(pos * d + i) as usize] = angle.sin() as f32;
            if i + 1 < d {
                pe[(pos * d + i + 1) as usize] = angle.cos() as f32;
            }
        }
    }
    Tensor::from_slice(&pe).view([n, d])
}

impl Transformer {
    pub fn new(p: &nn::Path, config: Config) -> Self {
        let d = config.d_model;
        let embed = init::embedding(p, "embed", (config.vocab, d), config.padding);
        let encoder = (0..config.encoder_layers)
            .map(|l| {
                let q = p / "encoder" / l;
                EncoderLayer {
                    attn: Attention::new(&q / "attn", d, config.heads),
                    ln1: layer_norm(&q / "ln1", d),
                    ffn: FeedForward::new(&q / "ffn", d, config.ffn),
                    ln2: layer_norm(&q / "ln2", d),
                }
            })
            .collect();
        let decoder = (0..config.decoder_layers)
            .map(|l| {
                let q = p / "decoder" / l;
                DecoderLayer {
                    self_attn: Attention::new(&q / "self_attn", d, config.heads),
                    ln1: layer_norm(&q / "ln1", d),
                    cross: Attention::new(&q / "cross", d, config.heads),
                    ln2: layer_norm(&q / "ln2", d),
                    ffn: FeedForward::new(&q / "ffn", d, config.ffn),
                    ln3: layer_norm(&q / "ln3", d),
                }
            })
            .collect();
        let final_norms =
            config.pre_norm.then(|| (layer_norm(p / "encoder_norm", d), layer_norm(p / "decoder_norm", d)));
        let positions = sinusoids(config.max_positions, d).to_device(p.device());
        Self { config, embed, positions, encoder, decoder, final_norms }
    }

    /// `Ok` when a sequence of `len` positions fits the model.
    pub fn check_length(&self, len: i64) -> Result<(), Error> {
        match len <= self.config.max_positions {
            true => Ok(()),
            false => Err(Error::TooLong { len, max: self.config.max_positions }),
        }
    }

    /// Token ids embedded and scaled by √d; the padding row gets no gradient.
    fn lookup(&self, tokens: &Tensor) -> Tensor {
        Tensor::embedding(&self.embed, tokens, self.config.padding.unwrap_or(-1), false, false)
            * (self.config.d_model as f64).sqrt()
    }

    /// Token ids `[B, T]` (checked by the caller) embedded, scaled and positioned.
    fn embedding(&self, tokens: &Tensor, train: bool) -> Result<Tensor, Error> {
        let t = tokens.size()[1];
        self.check_length(t)?;
        let x = self.lookup(tokens);
        Ok((x + self.positions.narrow(0, 0, t).unsqueeze(0)).dropout(self.config.dropout, train))
    }

    /// `Ok` when `memory` is `[B, S, d]` and `pad` `[B, S]`.
    fn check_memory(&self, memory: &Tensor, pad: &Tensor) -> Result<(), Error> {
        check(memory, "memory", None, &[-1, -1, self.config.d_model])?;
        let (b, s) = (memory.size()[0], memory.size()[1]);
        check(pad, "the padding mask", Some(Kind::Bool), &[b, s])
    }

    /// Encoder states `[B, S, d]` of source tokens `[B, S]`; `pad` `[B, S]` marks padding (every
    /// row needs a token that is not padding). Errors: a source longer than `max_positions`,
    /// tensors of other shapes or kinds.
    pub fn encode(&self, src: &Tensor, pad: &Tensor, train: bool) -> Result<Tensor, Error> {
        check(src, "the source", Some(Kind::Int64), &[-1, -1])?;
        check(pad, "the padding mask", Some(Kind::Bool), &src.size())?;
        let (pre, d) = (self.config.pre_norm, self.config.drops(train));
        let mut x = self.embedding(src, train)?;
        for l in &self.encoder {
            x = residual(&x, &l.ln1, pre, d.residual, |h| l.attn.forward(h, h, Some(pad), false, d.attention));
            x = residual(&x, &l.ln2, pre, d.residual, |h| l.ffn.forward(h, d.activation));
        }
        Ok(match &self.final_norms {
            Some((enc, _)) => x.apply(enc),
            None => x,
        })
    }

    /// Logits `[B, T, vocab]` for the target prefix `tgt [B, T]` (teacher forcing: position t
    /// sees tokens ≤ t), attending to `memory` with source padding `pad`. Errors: a prefix longer
    /// than `max_positions`, tensors of other shapes or kinds.
    pub fn decode(&self, tgt: &Tensor, memory: &Tensor, pad: &Tensor, train: bool) -> Result<Tensor, Error> {
        self.check_memory(memory, pad)?;
        check(tgt, "the target prefix", Some(Kind::Int64), &[memory.size()[0], -1])?;
        let (pre, d) = (self.config.pre_norm, self.config.drops(train));
        let mut x = self.embedding(tgt, train)?;
        for l in &self.decoder {
            x = residual(&x, &l.ln1, pre, d.residual, |h| l.self_attn.forward(h, h, None, true, d.attention));
            x = residual(&x, &l.ln2, pre, d.residual, |h| l.cross.forward(h, memory, Some(pad), false, d.attention));
            x = residual(&x, &l.ln3, pre, d.residual, |h| l.ffn.forward(h, d.activation));
        }
        if let Some((_, dec)) = &self.final_norms {
            x = x.apply(dec);
        }
        Ok(x.matmul(&self.embed.transpose(0, 1)))
    }

    /// Incremental decoding: the cross-attention keys and values of `memory [N, S, d]` for every
    /// decoder layer, computed once; self-attention keys and values are appended step by step.
    pub fn start(&self, memory: &Tensor) -> Result<Cache, Error> {
        check(memory, "memory", None, &[-1, -1, self.config.d_model])?;
        let layers = self
            .decoder
            .iter()
            .map(|l| LayerCache {
                cross_k: l.cross.heads(&l.cross.k, memory),
                cross_v: l.cross.heads(&l.cross.v, memory),
                self_k: None,
                self_v: None,
            })
            .collect();
        Ok(Cache { layers, length: 0, rows: memory.size()[0], source: memory.size()[1] })
    }

    /// Logits `[N, vocab]` of the next token after `tokens [N]` (the previous output of each row),
    /// using and extending `cache`; equal to the last position of [`Transformer::decode`] on the
    /// whole prefix (tested), at the cost of one position. Errors: a step past `max_positions`
    /// (the cache is left as it was), tensors of other shapes or kinds than the cache's.
    pub fn step(&self, tokens: &Tensor, cache: &mut Cache, pad: &Tensor) -> Result<Tensor, Error> {
        check(tokens, "the step's tokens", Some(Kind::Int64), &[cache.rows])?;
        check(pad, "the padding mask", Some(Kind::Bool), &[cache.rows, cache.source])?;
        let (pre, n) = (self.config.pre_norm, cache.rows);
        let pos = cache.length;
        self.check_length(pos + 1)?;
        let mut x = self.lookup(&tokens.view([n, 1])) + self.positions.narrow(0, pos, 1).unsqueeze(0);
        for (l, c) in self.decoder.iter().zip(cache.layers.iter_mut()) {
            x = residual(&x, &l.ln1, pre, 0.0, |h| {
                let (k, v) = (l.self_attn.heads(&l.self_attn.k, h), l.self_attn.heads(&l.self_attn.v, h));
                let k = match c.self_k.take() {
                    Some(old) => Tensor::cat(&[old, k], 2),
                    None => k,
                };
                let v = match c.self_v.take() {
                    Some(old) => Tensor::cat(&[old, v], 2),
                    None => v,
                };
                let q = l.self_attn.heads(&l.self_attn.q, h);
                let out = l.self_attn.attend(&q, &k, &v, None, false, 0.0);
                c.self_k = Some(k);
                c.self_v = Some(v);
                out
            });
            x = residual(&x, &l.ln2, pre, 0.0, |h| {
                let q = l.cross.heads(&l.cross.q, h);
                l.cross.attend(&q, &c.cross_k, &c.cross_v, Some(pad), false, 0.0)
            });
            x = residual(&x, &l.ln3, pre, 0.0, |h| l.ffn.forward(h, 0.0));
        }
        if let Some((_, dec)) = &self.final_norms {
            x = x.apply(dec);
        }
        cache.length += 1;
        Ok(x.squeeze_dim(1).matmul(&self.embed.transpose(0, 1)))
    }
}

/// Cached keys and values of one decoder layer, `[N, H, T, dh]`.
#[derive(Debug)]
struct LayerCache {
    cross_k: Tensor,
    cross_v: Tensor,
    self_k: Option<Tensor>,
    self_v: Option<Tensor>,
}

/// The decoder state of incremental decoding (see [`Transformer::step`]).
#[derive(Debug)]
pub struct Cache {
    layers: Vec<LayerCache>,
    /// Positions decoded so far.
    length: i64,
    /// `N` and the source length `S`.
    rows: i64,
    source: i64,
}

impl Cache {
    /// Keeps rows `index [N']` (beam search reorders the cache with the surviving beams).
    pub fn reorder(&mut self, index: &Tensor) {
        self.rows = index.numel() as i64;
        for c in &mut self.layers {
            c.cross_k = c.cross_k.index_select(0, index);
            c.cross_v = c.cross_v.index_select(0, index);
            c.self_k = c.self_k.as_ref().map(|t| t.index_select(0, index));
            c.self_v = c.self_v.as_ref().map(|t| t.index_select(0, index));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::OptimizerConfig;
    use tch::Device;

    fn count(config: Config) -> i64 {
        let vs = nn::VarStore::new(Device::Cpu);
        let _t = Transformer::new(&vs.root(), config);
        vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }

    /// torch.nn.Transformer(512, 8, 6, 6, 2048) has 44,140,544 parameters including its two final
    /// layer norms; plus the shared 32,000 × 512 embedding. Post-norm (fairseq) has no final norms.
    #[test]
    fn parameter_counts_match_pytorch() {
        assert_eq!(count(Config { pre_norm: true, ..Config::base(32000) }), 44_140_544 + 32000 * 512);
        assert_eq!(count(Config::base(32000)), 44_140_544 - 2 * 2 * 512 + 32000 * 512);
        assert_eq!(count(Config { pre_norm: true, ..Config::small(8000) }), 5_530_624 + 8000 * 256);
    }

    fn tiny() -> (nn::VarStore, Transformer) {
        tiny_with(false)
    }

    fn tiny_with(pre_norm: bool) -> (nn::VarStore, Transformer) {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = Config {
            vocab: 50,
            d_model: 32,
            heads: 4,
            ffn: 64,
            encoder_layers: 2,
            decoder_layers: 2,
            dropout: 0.0,
            attention_dropout: 0.0,
            activation_dropout: 0.0,
            padding: None,
            pre_norm,
            max_positions: 64,
        };
        let t = Transformer::new(&vs.root(), cfg);
        (vs, t)
    }

    #[test]
    fn decoder_is_causal_and_padding_is_ignored() {
        let (_vs, t) = tiny();
        let src = Tensor::from_slice(&[5i64, 6, 7, 0, 0]).view([1, 5]);
        let pad = src.eq(0);
        let mem = t.encode(&src, &pad, false).unwrap();
        let a = t.decode(&Tensor::from_slice(&[1i64, 8, 9, 10]).view([1, 4]), &mem, &pad, false).unwrap();
        let b = t.decode(&Tensor::from_slice(&[1i64, 8, 30, 31]).view([1, 4]), &mem, &pad, false).unwrap();
        // Positions 0 and 1 see only tokens 1, 8: unchanged; position 2 sees the change.
        assert!(a.narrow(1, 0, 2).allclose(&b.narrow(1, 0, 2), 1e-6, 1e-6, false));
        assert!(!a.narrow(1, 2, 1).allclose(&b.narrow(1, 2, 1), 1e-6, 1e-6, false));
        // Other tokens under the padding mask change nothing for the real positions.
        let src2 = Tensor::from_slice(&[5i64, 6, 7, 41, 42]).view([1, 5]);
        let mem2 = t.encode(&src2, &pad, false).unwrap();
        let c = t.decode(&Tensor::from_slice(&[1i64, 8, 9, 10]).view([1, 4]), &mem2, &pad, false).unwrap();
        assert!(a.allclose(&c, 1e-5, 1e-5, false));
        assert_eq!(a.size(), vec![1, 4, 50]);
    }

    #[test]
    fn learns_to_copy() {
        let (vs, t) = tiny();
        let mut opt = nn::Adam::default().build(&vs, 3e-3).unwrap();
        let src = Tensor::from_slice(&[11i64, 12, 13, 14, 15, 16, 21, 22, 23, 24, 25, 26]).view([2, 6]);
        let pad = src.eq(0);
        let tgt_in = Tensor::cat(&[Tensor::ones([2, 1], (Kind::Int64, Device::Cpu)), src.narrow(1, 0, 5)], 1);
        let mut last = f64::INFINITY;
        for _ in 0..150 {
            let logits = t.decode(&tgt_in, &t.encode(&src, &pad, true).unwrap(), &pad, true).unwrap();
            let loss = logits.view([-1, 50]).cross_entropy_for_logits(&src.view([-1]));
            opt.backward_step(&loss);
            last = loss.double_value(&[]);
        }
        assert!(last < 0.05, "copy loss {last}");
    }

    /// `f` with [`Attention::attend`] on the explicit implementation (on this thread only).
    fn explicit<T>(f: impl FnOnce() -> T) -> T {
        EXPLICIT.with(|e| e.set(true));
        let out = f();
        EXPLICIT.with(|e| e.set(false));
        out
    }

    fn close(a: &Tensor, b: &Tensor) -> bool {
        a.size() == b.size() && a.allclose(b, 1e-5, 1e-5, false)
    }

    #[test]
    fn fused_attention_equals_the_explicit_one() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let att = Attention::new(vs.root() / "a", 16, 4);
        let x = Tensor::randn([3, 5, 16], (Kind::Float, Device::Cpu));
        let mem = Tensor::randn([3, 7, 16], (Kind::Float, Device::Cpu));
        // Padding on keys only; every row keeps its first position.
        let pad5 = Tensor::from_slice(&[
            false, false, false, false, false, false, false, true, true, true, false, true, true, true, true,
        ])
        .view([3, 5]);
        let pad7 =
            Tensor::from_slice(&[0i64, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]).view([3, 7]).eq(1);
        let cases: [(&Tensor, Option<&Tensor>, bool); 5] = [
            (&x, Some(&pad5), false),   // encoder self-attention with padding
            (&x, None, true),           // decoder causal self-attention
            (&mem, Some(&pad7), false), // cross-attention
            (&x, Some(&pad5), true),    // both masks at once
            (&mem, None, false),
        ];
        for (i, (kv, pad, causal)) in cases.into_iter().enumerate() {
            let fused = att.forward(&x, kv, pad, causal, 0.0);
            let reference = explicit(|| att.forward(&x, kv, pad, causal, 0.0));
            assert!(fused.isfinite().all().int64_value(&[]) == 1, "case {i}: not finite");
            assert!(close(&fused, &reference), "case {i}");
        }
        // One query over cached keys (the incremental step), with and without padding.
        let q1 = x.narrow(1, 2, 1);
        for pad in [None, Some(&pad7)] {
            assert!(close(
                &att.forward(&q1, &mem, pad, false, 0.0),
                &explicit(|| att.forward(&q1, &mem, pad, false, 0.0))
            ));
        }
    }

    #[test]
    fn fused_model_equals_the_explicit_one_including_the_cache() {
        for pre_norm in [false, true] {
            let (_vs, t) = tiny_with(pre_norm);
            let src = Tensor::from_slice(&[5i64, 6, 7, 0, 0, 8, 9, 10, 11, 12]).view([2, 5]);
            let pad = src.eq(0);
            let tgt = Tensor::from_slice(&[1i64, 8, 9, 10, 1, 30, 31, 32]).view([2, 4]);
            let run = || {
                let mem = t.encode(&src, &pad, false).unwrap();
                let full = t.decode(&tgt, &mem, &pad, false).unwrap();
                let mut cache = t.start(&mem).unwrap();
                let steps: Vec<Tensor> = (0..4).map(|i| t.step(&tgt.select(1, i), &mut cache, &pad).unwrap()).collect();
                (mem, full, Tensor::stack(&steps, 1))
            };
            let (mem, full, steps) = run();
            let (mem_e, full_e, steps_e) = explicit(run);
            assert!(close(&mem, &mem_e), "pre_norm {pre_norm}: encoder");
            assert!(close(&full, &full_e), "pre_norm {pre_norm}: decoder");
            assert!(close(&steps, &steps_e), "pre_norm {pre_norm}: cached steps");
            assert!(close(&steps, &full), "pre_norm {pre_norm}: cached steps against the full decoder");
        }
    }

    #[test]
    fn attention_dropout_applies_in_training_only() {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let att = Attention::new(vs.root() / "a", 16, 4);
        let x = Tensor::randn([2, 6, 16], (Kind::Float, Device::Cpu));
        let pad = Tensor::from_slice(&[0i64, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]).view([2, 6]).eq(1);
        let plain = att.forward(&x, &x, Some(&pad), false, 0.0);
        let dropped = att.forward(&x, &x, Some(&pad), false, 0.5);
        assert!(dropped.isfinite().all().int64_value(&[]) == 1);
        assert!(!close(&plain, &dropped), "dropout 0.5 changed nothing");
        // The model passes the attention dropout only in training.
        let (_vs, t) = tiny_with(false);
        let t = Transformer { config: Config { dropout: 0.5, ..t.config.clone() }, ..t };
        let src = Tensor::from_slice(&[5i64, 6, 7, 0]).view([1, 4]);
        let pad = src.eq(0);
        let eval = t.encode(&src, &pad, false).unwrap();
        assert!(close(&eval, &t.encode(&src, &pad, false).unwrap()));
        assert!(!close(&eval, &t.encode(&src, &pad, true).unwrap()));
    }

    /// Each rate where fairseq puts it: with the other two at zero, training differs from
    /// evaluation for each of them alone, and not at all when all three are zero.
    #[test]
    fn each_dropout_rate_acts_alone() {
        let (_vs, t) = tiny_with(false);
        let src = Tensor::from_slice(&[5i64, 6, 7, 8]).view([1, 4]);
        let pad = src.eq(0);
        let eval = t.encode(&src, &pad, false).unwrap();
        let base = Config { dropout: 0.0, attention_dropout: 0.0, activation_dropout: 0.0, ..t.config.clone() };
        let t = Transformer { config: base.clone(), ..t };
        assert!(close(&eval, &t.encode(&src, &pad, true).unwrap()), "no dropout: training = evaluation");
        let mut t = t;
        for (i, rates) in [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5]].into_iter().enumerate() {
            t.config =
                Config { dropout: rates[0], attention_dropout: rates[1], activation_dropout: rates[2], ..base.clone() };
            assert!(!close(&eval, &t.encode(&src, &pad, true).unwrap()), "rate {i} changed nothing");
            assert!(close(&eval, &t.encode(&src, &pad, false).unwrap()), "rate {i} acts in evaluation");
        }
    }

    /// fairseq's initialisation, layer type by layer type, on the base model: q/k/v
    /// Xavier-uniform with gain 1/√2, the output projection Xavier-uniform with bias 0, the
    /// feed-forward layers PyTorch's U(±1/√fan_in), layer norms 1 and 0, the embedding N(0, d^−½)
    /// with its padding row zero and without gradient from the lookup.
    #[test]
    fn starts_as_fairseq_does() {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let t = Transformer::new(&vs.root(), Config { padding: Some(1), ..Config::base(4000) });
        let d = 512f64;
        let sqrt3 = 3f64.sqrt();
        let vars = vs.variables();
        let pooled = |suffixes: &[&str], std: f64, bound: Option<f64>| {
            let (mut sq, mut n, mut max) = (0.0, 0i64, 0f64);
            for (name, v) in &vars {
                if suffixes.iter().any(|s| name.ends_with(s)) {
                    let v = v.to_kind(Kind::Double);
                    sq += v.square().sum(Kind::Double).double_value(&[]);
                    n += v.numel() as i64;
                    max = max.max(v.abs().max().double_value(&[]));
                }
            }
            assert!(n > 0, "{suffixes:?}: no such parameter");
            let s = (sq / n as f64).sqrt();
            assert!((s / std - 1.0).abs() < 0.01, "{suffixes:?}: std {s} vs {std}");
            if let Some(b) = bound {
                assert!(max <= b * (1.0 + 1e-6) && max > 0.99 * b, "{suffixes:?}: max {max} vs {b}");
            }
        };
        let qkv = 0.5f64.sqrt() * (6.0 / (2.0 * d)).sqrt();
        pooled(&["q.weight", "k.weight", "v.weight"], qkv / sqrt3, Some(qkv));
        let out = (6.0 / (2.0 * d)).sqrt();
        pooled(&["out.weight"], out / sqrt3, Some(out));
        pooled(&["ffn.a.weight", "ffn.a.bias"], 1.0 / (3.0 * d).sqrt(), Some(1.0 / d.sqrt()));
        pooled(&["ffn.b.weight"], 1.0 / (3.0 * 2048.0f64).sqrt(), Some(1.0 / 2048f64.sqrt()));
        for (name, v) in &vars {
            let (lo, hi) = (v.min().double_value(&[]), v.max().double_value(&[]));
            if name.ends_with("out.bias") || (name.contains("ln") && name.ends_with("bias")) {
                assert!(lo == 0.0 && hi == 0.0, "{name}: [{lo}, {hi}]");
            }
            if name.contains("ln") && name.ends_with("weight") {
                assert!(lo == 1.0 && hi == 1.0, "{name}: [{lo}, {hi}]");
            }
        }
        assert_eq!(t.embed.get(1).abs().max().double_value(&[]), 0.0);
        let rows = Tensor::cat(&[t.embed.narrow(0, 0, 1), t.embed.narrow(0, 2, 3998)], 0);
        let s = rows.to_kind(Kind::Double).std(true).double_value(&[]);
        assert!((s * d.sqrt() - 1.0).abs() < 0.01, "embedding std {s}");
        // The lookup gives the padding row no gradient (the encoder never reaches the tied output).
        // One feature of the output, not the sum of all: a layer-normed row sums to its bias, whatever the input.
        let src = Tensor::from_slice(&[5i64, 6, 1, 1]).view([1, 4]);
        t.encode(&src, &src.eq(-1), false).unwrap().narrow(2, 0, 1).sum(Kind::Float).backward();
        let g = t.embed.grad();
        assert_eq!(g.get(1).abs().max().double_value(&[]), 0.0);
        let g5 = g.get(5).abs().max().double_value(&[]);
        assert!(g5 > 1e-3, "gradient of a used row: {g5}");
    }

    #[test]
    fn caller_errors_are_errors() {
        let (_vs, t) = tiny();
        let long = Tensor::ones([1, 65], (Kind::Int64, Device::Cpu));
        let pad = long.eq(0);
        assert_eq!(t.encode(&long, &pad, false).unwrap_err(), Error::TooLong { len: 65, max: 64 });
        let src = Tensor::ones([2, 3], (Kind::Int64, Device::Cpu));
        let pad = src.eq(0);
        let mem = t.encode(&src, &pad, false).unwrap();
        let tgt = Tensor::ones([2, 65], (Kind::Int64, Device::Cpu));
        assert_eq!(t.decode(&tgt, &mem, &pad, false).unwrap_err(), Error::TooLong { len: 65, max: 64 });
        assert!(matches!(t.encode(&src.view([-1]), &pad, false), Err(Error::Shape { .. })));
        assert!(matches!(t.encode(&src.to_kind(Kind::Float), &pad, false), Err(Error::Shape { .. })));
        assert!(matches!(t.decode(&tgt.narrow(0, 0, 1), &mem, &pad, false), Err(Error::Shape { .. })));
        let mut cache = t.start(&mem).unwrap();
        let step = Tensor::ones([2], (Kind::Int64, Device::Cpu));
        for _ in 0..64 {
            let _ = t.step(&step, &mut cache, &pad).unwrap();
        }
        assert_eq!(t.step(&step, &mut cache, &pad).unwrap_err(), Error::TooLong { len: 65, max: 64 });
        assert!(matches!(t.step(&step.narrow(0, 0, 1), &mut cache, &pad), Err(Error::Shape { .. })));
        let e = t.encode(&long, &long.eq(0), false).unwrap_err().to_string();
        assert_eq!(e, "a sequence of 65 positions exceeds the model's max_positions 64");
    }
}
