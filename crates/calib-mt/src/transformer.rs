//! The Transformer encoder–decoder (Vaswani et al., 2017) on `tch`: shared source/target
//! embeddings tied to the output projection, sinusoidal positions, post-norm (the paper's, and
//! fairseq's default) or pre-norm layers. Presets: `base` (6+6 layers, d 512, ffn 2048, 8 heads,
//! dropout 0.1) and `small` (3+3, d 256, ffn 1024, 4 heads) for CPU runs.

use tch::nn;
use tch::{Kind, Tensor};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub vocab: i64,
    pub d_model: i64,
    pub heads: i64,
    pub ffn: i64,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub dropout: f64,
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
            pre_norm: false,
            max_positions: 1024,
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

/// Multi-head attention with the four projections of `nn.MultiheadAttention` (with biases).
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
        let lin = |n: &str| nn::linear(&p / n, d, d, Default::default());
        Self { q: lin("q"), k: lin("k"), v: lin("v"), out: lin("out"), heads }
    }

    /// `x [B, T, d]` projected by `lin` and split into heads: `[B, H, T, d/H]`.
    fn heads(&self, lin: &nn::Linear, x: &Tensor) -> Tensor {
        let (b, t, d) = x.size3().expect("[B, T, d]");
        x.apply(lin).view([b, t, self.heads, d / self.heads]).transpose(1, 2)
    }

    /// Attention of queries `q [B, H, Tq, dh]` over keys/values `[B, H, Tk, dh]`; `pad [B, Tk]`
    /// is true at padding; `causal` hides later positions. Returns `[B, Tq, d]`.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, pad: Option<&Tensor>, causal: bool, drop: f64) -> Tensor {
        let (b, h, tq, dh) = q.size4().expect("[B, H, T, dh]");
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
        attn.matmul(v).transpose(1, 2).contiguous().view([b, tq, h * dh]).apply(&self.out)
    }

    /// `query [B, Tq, d]` attends to `memory [B, Tk, d]`.
    fn forward(&self, query: &Tensor, memory: &Tensor, pad: Option<&Tensor>, causal: bool, drop: f64) -> Tensor {
        let (q, k, v) = (self.heads(&self.q, query), self.heads(&self.k, memory), self.heads(&self.v, memory));
        self.attend(&q, &k, &v, pad, causal, drop)
    }
}

#[derive(Debug)]
struct FeedForward {
    a: nn::Linear,
    b: nn::Linear,
}

impl FeedForward {
    fn new(p: nn::Path, d: i64, ffn: i64) -> Self {
        Self {
            a: nn::linear(&p / "a", d, ffn, Default::default()),
            b: nn::linear(&p / "b", ffn, d, Default::default()),
        }
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
        let embed = p.var("embed", &[config.vocab, d], nn::Init::Randn { mean: 0.0, stdev: (d as f64).powf(-0.5) });
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

    fn embedding(&self, tokens: &Tensor, train: bool) -> Tensor {
        let t = tokens.size()[1];
        assert!(
            t <= self.config.max_positions,
            "sequence of {t} tokens exceeds max_positions {}",
            self.config.max_positions
        );
        let x = Tensor::embedding(&self.embed, tokens, -1, false, false) * (self.config.d_model as f64).sqrt();
        (x + self.positions.narrow(0, 0, t).unsqueeze(0)).dropout(self.config.dropout, train)
    }

    /// Encoder states `[B, S, d]` of source tokens `[B, S]`; `pad` `[B, S]` marks padding.
    pub fn encode(&self, src: &Tensor, pad: &Tensor, train: bool) -> Tensor {
        let (pre, drop) = (self.config.pre_norm, if train { self.config.dropout } else { 0.0 });
        let mut x = self.embedding(src, train);
        for l in &self.encoder {
            x = residual(&x, &l.ln1, pre, drop, |h| l.attn.forward(h, h, Some(pad), false, drop));
            x = residual(&x, &l.ln2, pre, drop, |h| l.ffn.forward(h, drop));
        }
        match &self.final_norms {
            Some((enc, _)) => x.apply(enc),
            None => x,
        }
    }

    /// Logits `[B, T, vocab]` for the target prefix `tgt [B, T]` (teacher forcing: position t
    /// sees tokens ≤ t), attending to `memory` with source padding `pad`.
    pub fn decode(&self, tgt: &Tensor, memory: &Tensor, pad: &Tensor, train: bool) -> Tensor {
        let (pre, drop) = (self.config.pre_norm, if train { self.config.dropout } else { 0.0 });
        let mut x = self.embedding(tgt, train);
        for l in &self.decoder {
            x = residual(&x, &l.ln1, pre, drop, |h| l.self_attn.forward(h, h, None, true, drop));
            x = residual(&x, &l.ln2, pre, drop, |h| l.cross.forward(h, memory, Some(pad), false, drop));
            x = residual(&x, &l.ln3, pre, drop, |h| l.ffn.forward(h, drop));
        }
        if let Some((_, dec)) = &self.final_norms {
            x = x.apply(dec);
        }
        x.matmul(&self.embed.transpose(0, 1))
    }

    /// Incremental decoding: the cross-attention keys and values of `memory` for every decoder
    /// layer, computed once; self-attention keys and values are appended step by step.
    pub fn start(&self, memory: &Tensor) -> Cache {
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
        Cache { layers, length: 0 }
    }

    /// Logits `[N, vocab]` of the next token after `tokens [N]` (the previous output of each row),
    /// using and extending `cache`; equal to the last position of [`Transformer::decode`] on the
    /// whole prefix (tested), at the cost of one position.
    pub fn step(&self, tokens: &Tensor, cache: &mut Cache, pad: &Tensor) -> Tensor {
        let (pre, n) = (self.config.pre_norm, tokens.size()[0]);
        let pos = cache.length;
        assert!(pos < self.config.max_positions, "decoding past max_positions {}", self.config.max_positions);
        let emb = Tensor::embedding(&self.embed, &tokens.view([n, 1]), -1, false, false)
            * (self.config.d_model as f64).sqrt();
        let mut x = emb + self.positions.narrow(0, pos, 1).unsqueeze(0);
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
        x.squeeze_dim(1).matmul(&self.embed.transpose(0, 1))
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
    length: i64,
}

impl Cache {
    /// Keeps rows `index [N']` (beam search reorders the cache with the surviving beams).
    pub fn reorder(&mut self, index: &Tensor) {
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
            pre_norm: false,
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
        let mem = t.encode(&src, &pad, false);
        let a = t.decode(&Tensor::from_slice(&[1i64, 8, 9, 10]).view([1, 4]), &mem, &pad, false);
        let b = t.decode(&Tensor::from_slice(&[1i64, 8, 30, 31]).view([1, 4]), &mem, &pad, false);
        // Positions 0 and 1 see only tokens 1, 8: unchanged; position 2 sees the change.
        assert!(a.narrow(1, 0, 2).allclose(&b.narrow(1, 0, 2), 1e-6, 1e-6, false));
        assert!(!a.narrow(1, 2, 1).allclose(&b.narrow(1, 2, 1), 1e-6, 1e-6, false));
        // Other tokens under the padding mask change nothing for the real positions.
        let src2 = Tensor::from_slice(&[5i64, 6, 7, 41, 42]).view([1, 5]);
        let mem2 = t.encode(&src2, &pad, false);
        let c = t.decode(&Tensor::from_slice(&[1i64, 8, 9, 10]).view([1, 4]), &mem2, &pad, false);
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
            let logits = t.decode(&tgt_in, &t.encode(&src, &pad, true), &pad, true);
            let loss = logits.view([-1, 50]).cross_entropy_for_logits(&src.view([-1]));
            opt.backward_step(&loss);
            last = loss.double_value(&[]);
        }
        assert!(last < 0.05, "copy loss {last}");
    }
}
