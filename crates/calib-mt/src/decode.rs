//! Batched beam search with incremental decoding (cached keys and values, reordered with the
//! beams), a temperature that divides the logits before every softmax, fairseq's and GNMT's
//! length penalties, `max_len_a · src_len + max_len_b`, n-best lists and per-token
//! log-probabilities. Beam 1 is greedy search.

use crate::transformer::Transformer;
use tch::{Kind, Tensor};

/// How the final score of a finished hypothesis is normalised by its length (tokens incl. EOS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthPenalty {
    /// fairseq: score / len^α.
    Fairseq,
    /// GNMT (Wu et al., 2016): score / ((5 + len) / 6)^α.
    Gnmt,
}

impl std::str::FromStr for LengthPenalty {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fairseq" => Ok(Self::Fairseq),
            "gnmt" => Ok(Self::Gnmt),
            _ => Err(format!("unknown length penalty '{s}' (expected fairseq, gnmt)")),
        }
    }
}

/// What a caller can get wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("need 1 ≤ nbest ≤ beam (got nbest {nbest}, beam {beam})")]
    Beam { beam: usize, nbest: usize },
    #[error("the temperature must be positive and finite (got {0})")]
    Temperature(f64),
    #[error("max_len_a must be finite and not negative (got {0})")]
    MaxLenA(f64),
    #[error("the source must be a [B, S] Int64 tensor of token ids (got {kind:?} of shape {shape:?})")]
    Source { kind: Kind, shape: Vec<i64> },
    #[error("a source of {len} positions (EOS and padding included) exceeds the model's {max} positions")]
    SourceTooLong { len: i64, max: i64 },
    #[error("source row {row} is all padding")]
    EmptySource { row: usize },
    #[error("{what} id {id} is outside the model's vocabulary of {vocab}")]
    Token { what: &'static str, id: i64, vocab: i64 },
    #[error(transparent)]
    Model(#[from] crate::transformer::Error),
}

/// How to search. The longest output of a source of `l` tokens (EOS included, padding not) is
/// `max_len_a · l + max_len_b` tokens, EOS included, capped at the model's `max_positions`: the
/// decoder reads BOS and every output token but EOS, so BOS and the output tokens (without EOS)
/// never take more than `max_positions` positions.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Search {
    pub beam: usize,
    pub lenpen: f64,
    pub form: LengthPenalty,
    /// Divides the logits before every softmax; positive and finite.
    pub temperature: f64,
    pub max_len_a: f64,
    pub max_len_b: usize,
    /// Hypotheses per sentence, 1 ≤ nbest ≤ beam.
    pub nbest: usize,
    /// Decode step by step with cached keys and values (the default); without, every step runs
    /// the decoder over the whole prefix (the reference the cache is benchmarked against).
    pub incremental: bool,
}

impl Default for Search {
    fn default() -> Self {
        Self {
            beam: 4,
            lenpen: 1.0,
            form: LengthPenalty::Fairseq,
            temperature: 1.0,
            max_len_a: 0.0,
            max_len_b: 200,
            nbest: 1,
            incremental: true,
        }
    }
}

impl Search {
    /// Beam search of width `beam` with the other settings at their defaults (length penalty 1,
    /// fairseq's form, T = 1, output ≤ 200 tokens, 1-best, cached).
    pub fn new(beam: usize) -> Self {
        Self { beam, ..Self::default() }
    }

    /// Length penalty α in `form`.
    pub fn with_lenpen(mut self, alpha: f64, form: LengthPenalty) -> Self {
        self.lenpen = alpha;
        self.form = form;
        self
    }

    pub fn with_temperature(mut self, t: f64) -> Self {
        self.temperature = t;
        self
    }

    /// Longest output: `a · source length + b` tokens (capped at the model's positions).
    pub fn with_max_len(mut self, a: f64, b: usize) -> Self {
        self.max_len_a = a;
        self.max_len_b = b;
        self
    }

    pub fn with_nbest(mut self, nbest: usize) -> Self {
        self.nbest = nbest;
        self
    }

    /// Cached keys and values (true, the default) or the whole prefix every step.
    pub fn with_incremental(mut self, incremental: bool) -> Self {
        self.incremental = incremental;
        self
    }
}

/// One finished translation.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Output tokens, without BOS and EOS.
    pub tokens: Vec<i64>,
    /// Length-normalised score (what the n-best list is sorted by).
    pub score: f64,
    /// log p of every output token, EOS included (at the search temperature).
    pub token_log_probs: Vec<f64>,
}

impl Search {
    fn normalise(&self, sum: f64, len: usize) -> f64 {
        let len = len as f64;
        match self.form {
            LengthPenalty::Fairseq => sum / len.powf(self.lenpen),
            LengthPenalty::Gnmt => sum / ((5.0 + len) / 6.0).powf(self.lenpen),
        }
    }

    /// `Ok` when the beam, n-best, temperature and `max_len_a` are usable.
    pub fn check(&self) -> Result<(), Error> {
        if self.beam == 0 || self.nbest == 0 || self.nbest > self.beam {
            return Err(Error::Beam { beam: self.beam, nbest: self.nbest });
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::Temperature(self.temperature));
        }
        if !(self.max_len_a.is_finite() && self.max_len_a >= 0.0) {
            return Err(Error::MaxLenA(self.max_len_a));
        }
        Ok(())
    }

    /// The longest output (EOS included) of a source of `src_len` tokens: see [`Search`].
    fn max_len(&self, src_len: i64, max_positions: i64) -> usize {
        ((self.max_len_a * src_len as f64) as usize).saturating_add(self.max_len_b).min(max_positions.max(0) as usize)
    }
}

/// An unfinished beam: tokens so far, their summed log-probability and each token's.
#[derive(Debug, Clone)]
struct Beam {
    tokens: Vec<i64>,
    sum: f64,
    log_probs: Vec<f64>,
}

impl Beam {
    /// The hypothesis this beam makes when followed by EOS with log-probability `eos_lp`.
    fn finish(&self, eos_lp: f64, cfg: &Search) -> Hypothesis {
        let mut token_log_probs = self.log_probs.clone();
        token_log_probs.push(eos_lp);
        Hypothesis {
            score: cfg.normalise(self.sum + eos_lp, self.tokens.len() + 1),
            tokens: self.tokens.clone(),
            token_log_probs,
        }
    }
}

/// The `m` best of every row of `scores [B, n]` with ties at the cut going to the lower index (the
/// set a stable descending sort would put first; `topk` alone picks among ties at will): values
/// and indices `[B, m]`, in no particular order. `rank [n]` is `n, n - 1, …, 1` (Int64).
fn best(scores: &Tensor, m: i64, rank: &Tensor) -> (Tensor, Tensor) {
    let n = scores.size()[1];
    // The m-th best value of every row: everything above it is in, then the lowest indices at it.
    let cut = scores.topk(m, 1, true, false).0.amin(1, true);
    let above = scores.gt_tensor(&cut).to_kind(Kind::Int64) * (n + 1);
    let key = above + scores.eq_tensor(&cut).to_kind(Kind::Int64) * rank;
    let (_, index) = key.topk(m, 1, true, false);
    (scores.gather(1, &index, false), index)
}

/// Translates every row of `src [B, S]` (padding `pad_id`, every row with a token that is not
/// padding, `S` at most the model's `max_positions`); returns each sentence's n-best list, best
/// first.
///
/// The search stays on the device: the beams' running log-probabilities are a `[B·k]` tensor,
/// every step scores the `k · vocab` continuations of each sentence there, keeps the best
/// `m = min(2k, k · vocab)` (a beam has one EOS continuation, so the first `k` others are among
/// them) and reorders the cache there; one `[B, 2m + k]` read per step brings those candidates
/// (values and indices) and every beam's EOS log-probability to the host, which keeps the tokens
/// of each beam.
/// Candidates are visited best first, ties to the lower beam then the lower token; an EOS
/// candidate finishes a hypothesis (while fewer than `beam` are finished), the first `beam`
/// others become the next beams.
pub fn beam_search(
    model: &Transformer,
    src: &Tensor,
    pad_id: i64,
    bos: i64,
    eos: i64,
    cfg: &Search,
) -> Result<Vec<Vec<Hypothesis>>, Error> {
    cfg.check()?;
    let (b, width) = match (src.kind(), src.size().as_slice()) {
        (Kind::Int64, &[b, s]) => (b, s),
        (kind, shape) => return Err(Error::Source { kind, shape: shape.to_vec() }),
    };
    let (vocab, positions) = (model.config.vocab, model.config.max_positions);
    if width > positions {
        return Err(Error::SourceTooLong { len: width, max: positions });
    }
    for (what, id) in [("BOS", bos), ("EOS", eos)] {
        if !(0..vocab).contains(&id) {
            return Err(Error::Token { what, id, vocab });
        }
    }
    if b == 0 {
        return Ok(Vec::new());
    }
    if width == 0 {
        return Err(Error::EmptySource { row: 0 });
    }
    tch::no_grad(|| {
        let k = cfg.beam as i64;
        let device = src.device();
        let pad = src.eq(pad_id);
        // Lengths, then the smallest and the largest id (one read).
        let lengths = pad.logical_not().sum_dim_intlist(1, false, Kind::Int64);
        let read = Tensor::cat(&[lengths, src.min().view([1]), src.max().view([1])], 0);
        let mut read = Vec::<i64>::try_from(read.to_device(tch::Device::Cpu)).expect("Int64 on the host");
        let (lo, hi) = (read[b as usize], read[b as usize + 1]);
        for id in [lo, hi] {
            if !(0..vocab).contains(&id) {
                return Err(Error::Token { what: "source token", id, vocab });
            }
        }
        read.truncate(b as usize);
        let src_len = read;
        if let Some(row) = src_len.iter().position(|&l| l == 0) {
            return Err(Error::EmptySource { row });
        }
        let memory = model.encode(src, &pad, false)?;
        // Every sentence starts with one live beam (the others would duplicate it).
        let rows = Tensor::arange(b, (Kind::Int64, device)).repeat_interleave_self_int(k, Some(0), None);
        let (mut memory, mut pad) = (memory.index_select(0, &rows), pad.index_select(0, &rows));
        let mut cache = model.start(&memory)?;
        // Without the cache: the whole prefix of every row, BOS first.
        let mut prefix = (!cfg.incremental).then(|| Tensor::full([b * k, 1], bos, (Kind::Int64, device)));
        let mut beams: Vec<Vec<Beam>> =
            (0..b).map(|_| vec![Beam { tokens: vec![], sum: 0.0, log_probs: vec![] }]).collect();
        let mut finished: Vec<Vec<Hypothesis>> = vec![Vec::new(); b as usize];
        let max_len: Vec<usize> = src_len.iter().map(|&l| cfg.max_len(l, positions)).collect();
        // The sentences still searched, in the order of their rows on the device: a finished
        // sentence leaves the batch (as in fairseq), so a long one does not keep the others'
        // rows computing.
        let mut active: Vec<usize> = (0..b as usize).collect();
        // The running sum of every beam slot of the active sentences; empty slots are -inf, so
        // their candidates never count. Slots with no beam keep decoding a copy of slot 0 (their
        // output is ignored).
        let slot_sums = |beams: &[Vec<Beam>], active: &[usize]| -> Vec<f64> {
            let mut sums = vec![f64::NEG_INFINITY; active.len() * cfg.beam];
            for (c, &s) in active.iter().enumerate() {
                for (j, beam) in beams[s].iter().enumerate() {
                    sums[c * cfg.beam + j] = beam.sum;
                }
            }
            sums
        };
        let mut sums = Tensor::from_slice(&slot_sums(&beams, &active)).to_device(device);
        let mut last = Tensor::full([b * k], bos, (Kind::Int64, device));
        let m = (2 * k).min(k * vocab);
        let rank = Tensor::arange_start_step(k * vocab, 0, -1, (Kind::Int64, device));
        let stride = (2 * m + k) as usize;
        let live = |s: usize, beams: &[Vec<Beam>], finished: &[Vec<Hypothesis>]| {
            finished[s].len() < cfg.beam && !beams[s].is_empty()
        };
        for step in 0.. {
            if active.is_empty() {
                break;
            }
            let n = active.len() as i64;
            let logits = match &prefix {
                Some(p) => model.decode(p, &memory, &pad, false)?.select(1, -1),
                None => model.step(&last, &mut cache, &pad)?,
            };
            let lp = (logits / cfg.temperature).log_softmax(-1, Kind::Double);
            let scores = (&lp + sums.unsqueeze(1)).view([n, k * vocab]);
            let (values, index) = best(&scores, m, &rank);
            let eos_lp = lp.select(1, eos).view([n, k]);
            // The step's one read: [n, 2m + k] (indices below 2^53 are exact in f64).
            let read = Tensor::cat(&[values, index.to_kind(Kind::Double), eos_lp], 1).to_device(tch::Device::Cpu);
            let read = Vec::<f64>::try_from(read.flatten(0, -1)).expect("Double on the host");
            let mut reorder = vec![0f64; (n * k) as usize];
            let mut next = vec![eos as f64; (n * k) as usize];
            for (c, &s) in active.iter().enumerate() {
                let (row0, row) = (c * cfg.beam, &read[c * stride..(c + 1) * stride]);
                let mut new_beams = Vec::new();
                if step + 1 >= max_len[s] {
                    // Out of length: every live beam ends here with EOS.
                    for (j, parent) in beams[s].iter().enumerate() {
                        if finished[s].len() < cfg.beam {
                            finished[s].push(parent.finish(row[2 * m as usize + j], cfg));
                        }
                    }
                } else {
                    // The best candidates, best first (ties: lower beam, then lower token, as
                    // argmax); those of empty slots are -inf.
                    let mut cand: Vec<(f64, i64)> = (0..m as usize)
                        .map(|i| (row[i], row[m as usize + i] as i64))
                        .filter(|&(sum, flat)| sum != f64::NEG_INFINITY && ((flat / vocab) as usize) < beams[s].len())
                        .collect();
                    cand.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    for (sum, flat) in cand {
                        let (j, t) = ((flat / vocab) as usize, flat % vocab);
                        let parent = &beams[s][j];
                        let tok_lp = sum - parent.sum;
                        if t == eos {
                            if finished[s].len() < cfg.beam {
                                finished[s].push(parent.finish(tok_lp, cfg));
                            }
                        } else {
                            let mut tokens = parent.tokens.clone();
                            tokens.push(t);
                            let mut log_probs = parent.log_probs.clone();
                            log_probs.push(tok_lp);
                            new_beams.push((Beam { tokens, sum, log_probs }, j));
                            if new_beams.len() == cfg.beam {
                                break;
                            }
                        }
                    }
                }
                for (slot, (beam, parent)) in new_beams.iter().enumerate() {
                    reorder[row0 + slot] = (row0 + parent) as f64;
                    next[row0 + slot] = *beam.tokens.last().expect("one token") as f64;
                }
                for slot in new_beams.len()..cfg.beam {
                    reorder[row0 + slot] = row0 as f64;
                }
                beams[s] = new_beams.into_iter().map(|(beam, _)| beam).collect();
            }
            // The sentences that go on, and only their rows.
            let kept: Vec<usize> = (0..active.len()).filter(|&c| live(active[c], &beams, &finished)).collect();
            let shrunk = kept.len() < active.len();
            if shrunk {
                let rows = |v: &[f64]| -> Vec<f64> {
                    kept.iter().flat_map(|&c| v[c * cfg.beam..(c + 1) * cfg.beam].to_vec()).collect()
                };
                (reorder, next) = (rows(&reorder), rows(&next));
                active = kept.iter().map(|&c| active[c]).collect();
            }
            if active.is_empty() {
                break;
            }
            let n = active.len() as i64;
            // One write: the reorder, the next tokens and the new sums.
            let mut write = reorder;
            write.extend(next);
            write.extend(slot_sums(&beams, &active));
            let write = Tensor::from_slice(&write).to_device(device).view([3, n * k]);
            let reorder = write.get(0).to_kind(Kind::Int64);
            last = write.get(1).to_kind(Kind::Int64);
            sums = write.get(2);
            // A sentence's rows share its padding and memory, so these change only with the batch.
            if shrunk {
                pad = pad.index_select(0, &reorder);
            }
            match prefix.as_mut() {
                Some(p) => {
                    *p = Tensor::cat(&[p.index_select(0, &reorder), last.view([-1, 1])], 1);
                    if shrunk {
                        memory = memory.index_select(0, &reorder);
                    }
                }
                None => cache.reorder(&reorder),
            }
        }
        Ok(finished
            .into_iter()
            .map(|mut f| {
                f.sort_by(|a, b| b.score.total_cmp(&a.score));
                f.truncate(cfg.nbest);
                f
            })
            .collect())
    })
}

/// The special ids decoding and batching need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Specials {
    pub pad: i64,
    pub bos: i64,
    pub eos: i64,
}

impl From<&crate::tokenize::Vocab> for Specials {
    fn from(v: &crate::tokenize::Vocab) -> Self {
        Self { pad: v.pad as i64, bos: v.bos as i64, eos: v.eos as i64 }
    }
}

/// Translates many sentences (token ids, without EOS): sorted by length, cut into batches of at
/// most `max_tokens` source tokens (EOS and padding included), searched, and returned in input
/// order. Errors: those of [`beam_search`] (a source of `max_positions` tokens or more, with EOS
/// more than the model takes, among them).
pub fn translate(
    model: &Transformer,
    sources: &[Vec<u32>],
    specials: Specials,
    max_tokens: usize,
    cfg: &Search,
    device: tch::Device,
) -> Result<Vec<Vec<Hypothesis>>, Error> {
    cfg.check()?;
    let mut order: Vec<usize> = (0..sources.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sources[i].len()));
    let mut out = vec![Vec::new(); sources.len()];
    let mut start = 0;
    while start < order.len() {
        // Sorted longest first, so the first sentence of a batch sets its width.
        let width = sources[order[start]].len() + 1;
        let fit = (max_tokens / width).max(1);
        let rows = &order[start..(start + fit).min(order.len())];
        let mut src = vec![specials.pad; rows.len() * width];
        for (i, &r) in rows.iter().enumerate() {
            for (j, &t) in sources[r].iter().enumerate() {
                src[i * width + j] = t as i64;
            }
            src[i * width + sources[r].len()] = specials.eos;
        }
        let src = Tensor::from_slice(&src).view([rows.len() as i64, width as i64]).to_device(device);
        for (&r, hyps) in rows.iter().zip(beam_search(model, &src, specials.pad, specials.bos, specials.eos, cfg)?) {
            out[r] = hyps;
        }
        start += rows.len();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformer::Config;
    use tch::{nn, Device};

    const PAD: i64 = 0;
    const BOS: i64 = 1;
    const EOS: i64 = 2;
    const V: i64 = 8;

    /// A small random model. Its weights come from a seeded generator of our own (libtorch's is
    /// global, and tests run in parallel), scaled up so the distributions are peaked enough for
    /// search to matter.
    fn model(seed: u64) -> (nn::VarStore, Transformer) {
        model_with(seed, V, false, 0.6)
    }

    /// A model of `vocab` tokens with weights uniform in ±`scale`.
    fn model_with(seed: u64, vocab: i64, pre_norm: bool, scale: f32) -> (nn::VarStore, Transformer) {
        use rand::{Rng, SeedableRng};
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = Config {
            vocab,
            d_model: 16,
            heads: 2,
            ffn: 32,
            encoder_layers: 1,
            decoder_layers: 2,
            dropout: 0.0,
            attention_dropout: 0.0,
            activation_dropout: 0.0,
            padding: None,
            pre_norm,
            max_positions: 32,
        };
        let t = Transformer::new(&vs.root(), cfg);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut vars: Vec<_> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| {
            for (_, mut v) in vars {
                let n = v.numel();
                let values: Vec<f32> = (0..n).map(|_| scale * rng.random_range(-1f32..1.0)).collect();
                v.copy_(&Tensor::from_slice(&values).view(v.size().as_slice()));
            }
        });
        (vs, t)
    }

    fn src() -> Tensor {
        Tensor::from_slice(&[3i64, 4, 5, 6, 7, 3, PAD, PAD]).view([2, 4])
    }

    /// log p(next | prefix) by the full (non-incremental) decoder.
    fn full_log_probs(t: &Transformer, src: &Tensor, prefix: &[i64]) -> Vec<f64> {
        let pad = src.eq(PAD);
        let mem = t.encode(src, &pad, false).unwrap();
        let mut toks = vec![BOS];
        toks.extend_from_slice(prefix);
        let logits = t.decode(&Tensor::from_slice(&toks).view([1, -1]), &mem, &pad, false).unwrap();
        Vec::try_from(logits.get(0).get(toks.len() as i64 - 1).log_softmax(-1, Kind::Double)).unwrap()
    }

    #[test]
    fn cached_steps_equal_the_full_decoder() {
        let (_vs, t) = model(1);
        let s = src();
        let pad = s.eq(PAD);
        let mem = t.encode(&s, &pad, false).unwrap();
        let prefix = Tensor::from_slice(&[BOS, 5, 6, 3, 4, BOS, 7, 7, 5, 6]).view([2, 5]);
        let full = t.decode(&prefix, &mem, &pad, false).unwrap();
        let mut cache = t.start(&mem).unwrap();
        for i in 0..5 {
            let step = t.step(&prefix.select(1, i), &mut cache, &pad).unwrap();
            assert!(step.allclose(&full.select(1, i), 1e-4, 1e-4, false), "position {i}");
        }
    }

    #[test]
    fn greedy_is_the_argmax_loop() {
        for seed in 0..4 {
            let (_vs, t) = model(seed);
            let s = src();
            let cfg = Search { beam: 1, max_len_b: 6, ..Search::default() };
            let hyps = beam_search(&t, &s, PAD, BOS, EOS, &cfg).unwrap();
            for (row, h) in hyps.iter().enumerate() {
                let one = s.narrow(0, row as i64, 1);
                let mut out = Vec::new();
                loop {
                    let lp = full_log_probs(&t, &one, &out);
                    let best = (0..V as usize).fold(0, |b, i| if lp[i] > lp[b] { i } else { b }) as i64;
                    if best == EOS || out.len() + 1 >= 6 {
                        break;
                    }
                    out.push(best);
                }
                assert_eq!(h[0].tokens, out, "seed {seed} row {row}");
            }
        }
    }

    /// With a beam wide enough to keep every prefix, search is exhaustive; greedy is not.
    #[test]
    fn wide_beam_finds_the_exhaustive_best_and_greedy_can_miss_it() {
        let mut greedy_missed = false;
        for seed in 0..20 {
            let (_vs, t) = model(seed);
            let one = src().narrow(0, 0, 1);
            // All sequences of at most two tokens, then EOS (max length 3 forces it).
            let mut best = (f64::NEG_INFINITY, vec![]);
            let lp0 = full_log_probs(&t, &one, &[]);
            best = best.max_by_score(lp0[EOS as usize], vec![]);
            for a in (0..V).filter(|&a| a != EOS) {
                let lp1 = full_log_probs(&t, &one, &[a]);
                best = best.max_by_score(lp0[a as usize] + lp1[EOS as usize], vec![a]);
                for b in (0..V).filter(|&b| b != EOS) {
                    let lp2 = full_log_probs(&t, &one, &[a, b]);
                    best = best.max_by_score(lp0[a as usize] + lp1[b as usize] + lp2[EOS as usize], vec![a, b]);
                }
            }
            let exhaustive = Search { beam: 64, lenpen: 0.0, max_len_b: 3, ..Search::default() };
            let h = &beam_search(&t, &one, PAD, BOS, EOS, &exhaustive).unwrap()[0][0];
            assert_eq!(h.tokens, best.1, "seed {seed}");
            // float32 logits: the cached and the full decoder agree to about 1e-6.
            assert!((h.score - best.0).abs() < 1e-4 && (h.token_log_probs.iter().sum::<f64>() - best.0).abs() < 1e-4);
            let greedy =
                &beam_search(&t, &one, PAD, BOS, EOS, &Search { beam: 1, ..exhaustive.clone() }).unwrap()[0][0];
            greedy_missed |= greedy.tokens != best.1;
        }
        assert!(greedy_missed, "in 20 random models greedy always found the best; the test shows nothing");
    }

    #[test]
    fn nbest_lengths_penalties_and_temperature() {
        let (_vs, t) = model(3);
        let s = src();
        let cfg = Search { beam: 5, nbest: 3, lenpen: 0.6, max_len_b: 8, ..Search::default() };
        let hyps = beam_search(&t, &s, PAD, BOS, EOS, &cfg).unwrap();
        for n in &hyps {
            assert_eq!(n.len(), 3);
            assert!(n.windows(2).all(|w| w[0].score >= w[1].score));
            for h in n {
                let sum: f64 = h.token_log_probs.iter().sum();
                assert_eq!(h.token_log_probs.len(), h.tokens.len() + 1);
                assert!((h.score - sum / ((h.tokens.len() + 1) as f64).powf(0.6)).abs() < 1e-12);
            }
        }
        let gnmt = beam_search(&t, &s, PAD, BOS, EOS, &Search { form: LengthPenalty::Gnmt, ..cfg.clone() }).unwrap();
        let h = &gnmt[0][0];
        let sum: f64 = h.token_log_probs.iter().sum();
        assert!((h.score - sum / ((5.0 + (h.tokens.len() + 1) as f64) / 6.0).powf(0.6)).abs() < 1e-12);
        // Temperature 1 is no temperature; another one changes the probabilities.
        assert_eq!(beam_search(&t, &s, PAD, BOS, EOS, &Search { temperature: 1.0, ..cfg.clone() }).unwrap(), hyps);
        let hot = beam_search(&t, &s, PAD, BOS, EOS, &Search { temperature: 3.0, ..cfg.clone() }).unwrap();
        assert_ne!(hot[0][0].token_log_probs, hyps[0][0].token_log_probs);
    }

    #[test]
    fn without_the_cache_search_finds_the_same() {
        let (_vs, t) = model(2);
        let cfg = Search { beam: 3, nbest: 2, max_len_b: 7, ..Search::default() };
        let cached = beam_search(&t, &src(), PAD, BOS, EOS, &cfg).unwrap();
        let full = beam_search(&t, &src(), PAD, BOS, EOS, &Search { incremental: false, ..cfg }).unwrap();
        for (a, b) in cached.iter().flatten().zip(full.iter().flatten()) {
            assert_eq!(a.tokens, b.tokens);
            assert!((a.score - b.score).abs() < 1e-4);
        }
    }

    #[test]
    fn translate_returns_input_order_whatever_the_batches() {
        let (_vs, t) = model(4);
        let sources: Vec<Vec<u32>> = vec![vec![3], vec![4, 5, 6, 7, 3], vec![6, 6], vec![7, 3, 4]];
        let sp = Specials { pad: PAD, bos: BOS, eos: EOS };
        let cfg = Search { beam: 2, max_len_b: 6, ..Search::default() };
        let one_by_one: Vec<_> =
            sources.iter().map(|s| translate(&t, std::slice::from_ref(s), sp, 1, &cfg, Device::Cpu).unwrap()).collect();
        let together = translate(&t, &sources, sp, 100, &cfg, Device::Cpu).unwrap();
        for (a, b) in one_by_one.iter().zip(&together) {
            assert_eq!(a[0][0].tokens, b[0].tokens);
        }
    }

    /// The search as it was before it moved to the device (the whole `[B·k, V]` log-probabilities
    /// on the host every step, every candidate sorted there): the reference of
    /// `device_search_equals_the_host_search`.
    fn host_beam_search(
        model: &Transformer,
        src: &Tensor,
        pad_id: i64,
        bos: i64,
        eos: i64,
        cfg: &Search,
    ) -> Vec<Vec<Hypothesis>> {
        assert!(cfg.beam >= 1 && cfg.nbest >= 1 && cfg.nbest <= cfg.beam, "need 1 ≤ nbest ≤ beam");
        assert!(cfg.temperature > 0.0, "temperature must be positive");
        tch::no_grad(|| {
            let (b, _) = src.size2().expect("[B, S]");
            let k = cfg.beam as i64;
            let device = src.device();
            let pad = src.eq(pad_id);
            let src_len: Vec<i64> =
                Vec::try_from(pad.logical_not().sum_dim_intlist(1, false, Kind::Int64)).expect("lengths");
            let memory = model.encode(src, &pad, false).unwrap();
            // Every sentence starts with one live beam (the others would duplicate it).
            let rows = Tensor::arange(b, (Kind::Int64, device)).repeat_interleave_self_int(k, Some(0), None);
            let (memory, pad) = (memory.index_select(0, &rows), pad.index_select(0, &rows));
            let mut cache = model.start(&memory).unwrap();
            // Without the cache: the whole prefix of every row, BOS first.
            let mut prefix = (!cfg.incremental).then(|| Tensor::full([b * k, 1], bos, (Kind::Int64, device)));
            let mut beams: Vec<Vec<Beam>> =
                (0..b).map(|_| vec![Beam { tokens: vec![], sum: 0.0, log_probs: vec![] }]).collect();
            let mut finished: Vec<Vec<Hypothesis>> = vec![Vec::new(); b as usize];
            // Rows whose beam slot is empty keep decoding a copy of slot 0 (their output is ignored).
            let max_len: Vec<usize> =
                src_len.iter().map(|&l| (cfg.max_len_a * l as f64) as usize + cfg.max_len_b).collect();
            let mut last = vec![bos; (b * k) as usize];
            for step in 0.. {
                let live: Vec<usize> =
                    (0..b as usize).filter(|&s| finished[s].len() < cfg.beam && !beams[s].is_empty()).collect();
                if live.is_empty() {
                    break;
                }
                let logits = match &prefix {
                    Some(p) => model.decode(p, &memory, &pad, false).unwrap().select(1, -1),
                    None => model.step(&Tensor::from_slice(&last).to_device(device), &mut cache, &pad).unwrap(),
                };
                let lp = (logits / cfg.temperature).log_softmax(-1, Kind::Double).to_device(tch::Device::Cpu);
                let vocab = lp.size()[1];
                let lp: Vec<f64> = Vec::try_from(lp.flatten(0, -1)).expect("log-probs");
                let mut reorder = vec![0i64; (b * k) as usize];
                let mut next = vec![eos; (b * k) as usize];
                for s in 0..b as usize {
                    let row0 = s * cfg.beam;
                    let mut new_beams = Vec::new();
                    if live.contains(&s) {
                        let row = |j: usize| (row0 + j) * vocab as usize;
                        if step + 1 >= max_len[s] {
                            // Out of length: every live beam ends here with EOS.
                            for (j, parent) in beams[s].iter().enumerate() {
                                if finished[s].len() < cfg.beam {
                                    finished[s].push(parent.finish(lp[row(j) + eos as usize], cfg));
                                }
                            }
                        } else {
                            // Candidates: every live beam × every token, best first (ties: lower
                            // beam, then lower token, as argmax).
                            let mut cand: Vec<(f64, usize, i64)> = Vec::with_capacity(beams[s].len() * vocab as usize);
                            for (j, beam) in beams[s].iter().enumerate() {
                                cand.extend((0..vocab).map(|t| (beam.sum + lp[row(j) + t as usize], j, t)));
                            }
                            cand.sort_by(|a, b| b.0.total_cmp(&a.0));
                            for (sum, j, t) in cand {
                                let parent = &beams[s][j];
                                let tok_lp = sum - parent.sum;
                                if t == eos {
                                    if finished[s].len() < cfg.beam {
                                        finished[s].push(parent.finish(tok_lp, cfg));
                                    }
                                } else {
                                    let mut tokens = parent.tokens.clone();
                                    tokens.push(t);
                                    let mut log_probs = parent.log_probs.clone();
                                    log_probs.push(tok_lp);
                                    new_beams.push((Beam { tokens, sum, log_probs }, j));
                                    if new_beams.len() == cfg.beam {
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    for (slot, (beam, parent)) in new_beams.iter().enumerate() {
                        reorder[row0 + slot] = (row0 + parent) as i64;
                        next[row0 + slot] = *beam.tokens.last().expect("one token");
                    }
                    for slot in new_beams.len()..cfg.beam {
                        reorder[row0 + slot] = row0 as i64;
                    }
                    beams[s] = new_beams.into_iter().map(|(beam, _)| beam).collect();
                }
                let reorder = Tensor::from_slice(&reorder).to_device(device);
                match prefix.as_mut() {
                    Some(p) => {
                        let tokens = Tensor::from_slice(&next).to_device(device).view([-1, 1]);
                        *p = Tensor::cat(&[p.index_select(0, &reorder), tokens], 1);
                    }
                    None => cache.reorder(&reorder),
                }
                last = next;
            }
            finished
                .into_iter()
                .map(|mut f| {
                    f.sort_by(|a, b| b.score.total_cmp(&a.score));
                    f.truncate(cfg.nbest);
                    f
                })
                .collect()
        })
    }

    /// `B` random sources of 1 to 6 tokens (with EOS last), padded.
    fn random_sources(seed: u64, b: usize, vocab: i64) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let lens: Vec<usize> = (0..b).map(|_| rng.random_range(1..=6)).collect();
        let width = *lens.iter().max().unwrap();
        let mut ids = vec![PAD; b * width];
        for (r, &l) in lens.iter().enumerate() {
            for j in 0..l - 1 {
                ids[r * width + j] = rng.random_range(3..vocab);
            }
            ids[r * width + l - 1] = EOS;
        }
        Tensor::from_slice(&ids).view([b as i64, width as i64])
    }

    /// The same tokens, and scores equal up to float32 rounding: the device search drops
    /// finished sentences from its batch, and libtorch's float32 kernels round a row's logits
    /// differently in batches of other sizes (by about 1e-8).
    fn assert_same(new: &[Vec<Hypothesis>], old: &[Vec<Hypothesis>], what: &str) {
        assert_eq!(new.len(), old.len(), "{what}");
        for (s, (n, o)) in new.iter().zip(old).enumerate() {
            assert_eq!(n.len(), o.len(), "{what}, sentence {s}");
            for (a, b) in n.iter().zip(o) {
                assert_eq!(a.tokens, b.tokens, "{what}, sentence {s}");
                assert!((a.score - b.score).abs() <= 1e-6, "{what}, sentence {s}: {} vs {}", a.score, b.score);
                assert_eq!(a.token_log_probs.len(), b.token_log_probs.len());
                for (x, y) in a.token_log_probs.iter().zip(&b.token_log_probs) {
                    assert!((x - y).abs() <= 1e-6, "{what}, sentence {s}");
                }
            }
        }
    }

    #[test]
    fn device_search_equals_the_host_search() {
        let mut case = 0;
        for seed in 0..4 {
            // Vocabularies of 8 (k · V can be below 2k at the first step) and 13 tokens, post- and pre-norm.
            let (_vs, t) = model_with(100 + seed, if seed % 2 == 0 { V } else { 13 }, seed >= 2, 0.6);
            let src = random_sources(seed, 3, t.config.vocab);
            for beam in 1..=6 {
                for incremental in [true, false] {
                    case += 1;
                    let cfg = Search {
                        beam,
                        nbest: 1 + case % beam,
                        lenpen: [0.0, 0.6, 1.0][case % 3],
                        form: if case % 2 == 0 { LengthPenalty::Fairseq } else { LengthPenalty::Gnmt },
                        temperature: [1.0, 0.5, 2.5, 1.3][case % 4],
                        max_len_a: [0.0, 1.2][case % 2],
                        max_len_b: 3 + case % 6,
                        incremental,
                    };
                    let new = beam_search(&t, &src, PAD, BOS, EOS, &cfg).unwrap();
                    let old = host_beam_search(&t, &src, PAD, BOS, EOS, &cfg);
                    assert_same(&new, &old, &format!("seed {seed}, {cfg:?}"));
                }
            }
        }
    }

    /// Exact ties (all-zero weights: every token equally likely; duplicated embeddings: pairs of
    /// tokens) go the way the host's stable sort sent them: lower beam, then lower token.
    #[test]
    fn ties_break_as_on_the_host() {
        for (seed, scale) in [(0, 0.0), (1, 0.6), (2, 0.6)] {
            let (vs, t) = model_with(seed, V, false, scale);
            tch::no_grad(|| {
                let embed = vs.variables()["embed"].shallow_clone();
                for (from, to) in [(3, 4), (5, 6), (5, 7)] {
                    let row = embed.get(from).copy();
                    embed.get(to).copy_(&row);
                }
            });
            let src = random_sources(seed, 3, V);
            for beam in 1..=6 {
                for incremental in [true, false] {
                    let cfg = Search { beam, nbest: beam, max_len_b: 5, incremental, ..Search::default() };
                    let new = beam_search(&t, &src, PAD, BOS, EOS, &cfg).unwrap();
                    assert_same(
                        &new,
                        &host_beam_search(&t, &src, PAD, BOS, EOS, &cfg),
                        &format!("seed {seed}, beam {beam}"),
                    );
                }
            }
        }
    }

    /// A model that never says EOS: the last decoder layer's norm gives the same state whatever
    /// the input, and EOS's embedding points away from it.
    fn endless(seed: u64) -> (nn::VarStore, Transformer) {
        let (vs, t) = model_with(seed, V, false, 0.6);
        let vars = vs.variables();
        tch::no_grad(|| {
            let _ = vars["decoder.1.ln3.weight"].shallow_clone().fill_(0.0);
            let _ = vars["decoder.1.ln3.bias"].shallow_clone().fill_(1.0);
            let _ = vars["embed"].get(EOS).fill_(-10.0);
        });
        (vs, t)
    }

    #[test]
    fn output_length_is_capped_at_the_model_positions() {
        let (_vs, t) = endless(5);
        let max = t.config.max_positions as usize;
        // max_positions - 1 tokens and EOS: the longest source the model takes.
        let source: Vec<u32> = (0..max - 1).map(|i| 3 + (i % 5) as u32).collect();
        let sp = Specials { pad: PAD, bos: BOS, eos: EOS };
        for incremental in [true, false] {
            for beam in [1, 3] {
                let cfg = Search { beam, nbest: beam, max_len_a: 1.2, incremental, ..Search::default() };
                let hyps = translate(&t, std::slice::from_ref(&source), sp, 1000, &cfg, Device::Cpu).unwrap();
                assert_eq!(hyps[0].len(), beam);
                for h in &hyps[0] {
                    // BOS and the output tokens fill the positions; EOS was forced.
                    assert_eq!(h.tokens.len() + 1, max, "incremental {incremental}, beam {beam}");
                    assert!(!h.tokens.contains(&EOS));
                    assert_eq!(h.token_log_probs.len(), max);
                }
            }
        }
        // Short sources keep max_len_a · len + max_len_b.
        let cfg = Search { beam: 2, max_len_a: 1.0, max_len_b: 3, ..Search::default() };
        let hyps = translate(&t, &[vec![3, 4]], sp, 1000, &cfg, Device::Cpu).unwrap();
        assert_eq!(hyps[0][0].tokens.len(), 3 + 3 - 1);
    }

    #[test]
    fn caller_errors_are_errors() {
        let (_vs, t) = model(0);
        let s = src();
        let search = |cfg: &Search| beam_search(&t, &s, PAD, BOS, EOS, cfg).unwrap_err();
        let d = Search::default();
        assert_eq!(search(&Search { nbest: 0, ..d.clone() }), Error::Beam { beam: 4, nbest: 0 });
        assert_eq!(search(&Search { nbest: 5, ..d.clone() }), Error::Beam { beam: 4, nbest: 5 });
        assert_eq!(search(&Search { beam: 0, ..d.clone() }), Error::Beam { beam: 0, nbest: 1 });
        assert_eq!(search(&Search { temperature: 0.0, ..d.clone() }), Error::Temperature(0.0));
        assert!(matches!(search(&Search { temperature: f64::NAN, ..d.clone() }), Error::Temperature(_)));
        assert_eq!(search(&Search { max_len_a: -1.0, ..d.clone() }), Error::MaxLenA(-1.0));
        assert_eq!(
            search(&Search { nbest: 5, ..d.clone() }).to_string(),
            "need 1 ≤ nbest ≤ beam (got nbest 5, beam 4)"
        );
        // Sources: too long, not [B, S] Int64, ids outside the vocabulary, all padding.
        let long = Tensor::full([2, 33], 3, (Kind::Int64, Device::Cpu));
        let err = beam_search(&t, &long, PAD, BOS, EOS, &d).unwrap_err();
        assert_eq!(err, Error::SourceTooLong { len: 33, max: 32 });
        assert_eq!(
            err.to_string(),
            "a source of 33 positions (EOS and padding included) exceeds the model's 32 positions"
        );
        let sp = Specials { pad: PAD, bos: BOS, eos: EOS };
        let too_long = vec![vec![3u32; 10], vec![4u32; 32]];
        assert_eq!(
            translate(&t, &too_long, sp, 1000, &d, Device::Cpu).unwrap_err(),
            Error::SourceTooLong { len: 33, max: 32 }
        );
        assert!(matches!(beam_search(&t, &s.view([-1]), PAD, BOS, EOS, &d), Err(Error::Source { .. })));
        assert!(matches!(beam_search(&t, &s.to_kind(Kind::Float), PAD, BOS, EOS, &d), Err(Error::Source { .. })));
        let odd = Tensor::from_slice(&[3i64, V, EOS]).view([1, 3]);
        assert_eq!(
            beam_search(&t, &odd, PAD, BOS, EOS, &d).unwrap_err(),
            Error::Token { what: "source token", id: V, vocab: V }
        );
        assert_eq!(
            beam_search(&t, &s, PAD, V + 1, EOS, &d).unwrap_err(),
            Error::Token { what: "BOS", id: V + 1, vocab: V }
        );
        assert_eq!(beam_search(&t, &s, PAD, BOS, -1, &d).unwrap_err(), Error::Token { what: "EOS", id: -1, vocab: V });
        let empty = Tensor::from_slice(&[3i64, EOS, PAD, PAD]).view([2, 2]);
        assert_eq!(beam_search(&t, &empty, PAD, BOS, EOS, &d).unwrap_err(), Error::EmptySource { row: 1 });
        assert_eq!(
            translate(&t, &[vec![3]], sp, 10, &Search { nbest: 9, ..d }, Device::Cpu).unwrap_err(),
            Error::Beam { beam: 4, nbest: 9 }
        );
    }

    trait MaxByScore {
        fn max_by_score(self, score: f64, tokens: Vec<i64>) -> Self;
    }
    impl MaxByScore for (f64, Vec<i64>) {
        fn max_by_score(self, score: f64, tokens: Vec<i64>) -> Self {
            if score > self.0 {
                (score, tokens)
            } else {
                self
            }
        }
    }
}
