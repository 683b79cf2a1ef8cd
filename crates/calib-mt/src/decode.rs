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

#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub beam: usize,
    pub lenpen: f64,
    pub form: LengthPenalty,
    pub temperature: f64,
    pub max_len_a: f64,
    pub max_len_b: usize,
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

/// Translates every row of `src [B, S]` (padding `pad_id`); returns each sentence's n-best list,
/// best first.
pub fn beam_search(
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
        let memory = model.encode(src, &pad, false);
        // Every sentence starts with one live beam (the others would duplicate it).
        let rows = Tensor::arange(b, (Kind::Int64, device)).repeat_interleave_self_int(k, Some(0), None);
        let (memory, pad) = (memory.index_select(0, &rows), pad.index_select(0, &rows));
        let mut cache = model.start(&memory);
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
                Some(p) => model.decode(p, &memory, &pad, false).select(1, -1),
                None => model.step(&Tensor::from_slice(&last).to_device(device), &mut cache, &pad),
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
/// order.
pub fn translate(
    model: &Transformer,
    sources: &[Vec<u32>],
    specials: Specials,
    max_tokens: usize,
    cfg: &Search,
    device: tch::Device,
) -> Vec<Vec<Hypothesis>> {
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
        for (&r, hyps) in rows.iter().zip(beam_search(model, &src, specials.pad, specials.bos, specials.eos, cfg)) {
            out[r] = hyps;
        }
        start += rows.len();
    }
    out
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
        use rand::{Rng, SeedableRng};
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = Config {
            vocab: V,
            d_model: 16,
            heads: 2,
            ffn: 32,
            encoder_layers: 1,
            decoder_layers: 2,
            dropout: 0.0,
            pre_norm: false,
            max_positions: 32,
        };
        let t = Transformer::new(&vs.root(), cfg);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut vars: Vec<_> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| {
            for (_, mut v) in vars {
                let n = v.numel();
                let values: Vec<f32> = (0..n).map(|_| rng.random_range(-0.6f32..0.6)).collect();
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
        let mem = t.encode(src, &pad, false);
        let mut toks = vec![BOS];
        toks.extend_from_slice(prefix);
        let logits = t.decode(&Tensor::from_slice(&toks).view([1, -1]), &mem, &pad, false);
        Vec::try_from(logits.get(0).get(toks.len() as i64 - 1).log_softmax(-1, Kind::Double)).unwrap()
    }

    #[test]
    fn cached_steps_equal_the_full_decoder() {
        let (_vs, t) = model(1);
        let s = src();
        let pad = s.eq(PAD);
        let mem = t.encode(&s, &pad, false);
        let prefix = Tensor::from_slice(&[BOS, 5, 6, 3, 4, BOS, 7, 7, 5, 6]).view([2, 5]);
        let full = t.decode(&prefix, &mem, &pad, false);
        let mut cache = t.start(&mem);
        for i in 0..5 {
            let step = t.step(&prefix.select(1, i), &mut cache, &pad);
            assert!(step.allclose(&full.select(1, i), 1e-4, 1e-4, false), "position {i}");
        }
    }

    #[test]
    fn greedy_is_the_argmax_loop() {
        for seed in 0..4 {
            let (_vs, t) = model(seed);
            let s = src();
            let cfg = Search { beam: 1, max_len_b: 6, ..Search::default() };
            let hyps = beam_search(&t, &s, PAD, BOS, EOS, &cfg);
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
            let h = &beam_search(&t, &one, PAD, BOS, EOS, &exhaustive)[0][0];
            assert_eq!(h.tokens, best.1, "seed {seed}");
            // float32 logits: the cached and the full decoder agree to about 1e-6.
            assert!((h.score - best.0).abs() < 1e-4 && (h.token_log_probs.iter().sum::<f64>() - best.0).abs() < 1e-4);
            let greedy = &beam_search(&t, &one, PAD, BOS, EOS, &Search { beam: 1, ..exhaustive.clone() })[0][0];
            greedy_missed |= greedy.tokens != best.1;
        }
        assert!(greedy_missed, "in 20 random models greedy always found the best; the test shows nothing");
    }

    #[test]
    fn nbest_lengths_penalties_and_temperature() {
        let (_vs, t) = model(3);
        let s = src();
        let cfg = Search { beam: 5, nbest: 3, lenpen: 0.6, max_len_b: 8, ..Search::default() };
        let hyps = beam_search(&t, &s, PAD, BOS, EOS, &cfg);
        for n in &hyps {
            assert_eq!(n.len(), 3);
            assert!(n.windows(2).all(|w| w[0].score >= w[1].score));
            for h in n {
                let sum: f64 = h.token_log_probs.iter().sum();
                assert_eq!(h.token_log_probs.len(), h.tokens.len() + 1);
                assert!((h.score - sum / ((h.tokens.len() + 1) as f64).powf(0.6)).abs() < 1e-12);
            }
        }
        let gnmt = beam_search(&t, &s, PAD, BOS, EOS, &Search { form: LengthPenalty::Gnmt, ..cfg.clone() });
        let h = &gnmt[0][0];
        let sum: f64 = h.token_log_probs.iter().sum();
        assert!((h.score - sum / ((5.0 + (h.tokens.len() + 1) as f64) / 6.0).powf(0.6)).abs() < 1e-12);
        // Temperature 1 is no temperature; another one changes the probabilities.
        assert_eq!(beam_search(&t, &s, PAD, BOS, EOS, &Search { temperature: 1.0, ..cfg.clone() }), hyps);
        let hot = beam_search(&t, &s, PAD, BOS, EOS, &Search { temperature: 3.0, ..cfg.clone() });
        assert_ne!(hot[0][0].token_log_probs, hyps[0][0].token_log_probs);
    }

    #[test]
    fn without_the_cache_search_finds_the_same() {
        let (_vs, t) = model(2);
        let cfg = Search { beam: 3, nbest: 2, max_len_b: 7, ..Search::default() };
        let cached = beam_search(&t, &src(), PAD, BOS, EOS, &cfg);
        let full = beam_search(&t, &src(), PAD, BOS, EOS, &Search { incremental: false, ..cfg });
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
            sources.iter().map(|s| translate(&t, std::slice::from_ref(s), sp, 1, &cfg, Device::Cpu)).collect();
        let together = translate(&t, &sources, sp, 100, &cfg, Device::Cpu);
        for (a, b) in one_by_one.iter().zip(&together) {
            assert_eq!(a[0][0].tokens, b[0].tokens);
        }
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
