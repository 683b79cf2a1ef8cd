//! BLEU, chrF and TER as sacreBLEU 2.6.0 computes them, through `sacrebleu-rs` (pinned `=0.1.0`),
//! behind a thin wrapper that checks what that crate does not:
//! - stream lengths (its own code panics when hypotheses outnumber references, and silently
//!   ignores extra references);
//! - tokeniser names (it maps any unknown name to 13a without a word);
//! - add-k smoothing values (it truncates a non-integer k).
//!
//! Corpus BLEU is computed in parallel: each chunk's raw sufficient statistics (n-gram matches,
//! totals, lengths; integers, so the sum is exact) are added up and scored once.

use rayon::prelude::*;
use sacrebleu_rs::{compute_bleu, Bleu, Chrf, Ter};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("{hyps} hypotheses but reference stream {stream} has {refs} segments")]
    Length { hyps: usize, stream: usize, refs: usize },
    #[error("no reference stream given")]
    NoReferences,
    #[error("unknown tokeniser '{0}' (supported: 13a, intl, none, char)")]
    Tokenizer(String),
    #[error("unknown smoothing '{0}' (expected exp, floor, add-k, none)")]
    Smoothing(String),
    #[error("add-k smoothing needs a whole number k ≥ 0, got {0}")]
    AddK(f64),
}

pub type Result<T> = std::result::Result<T, Error>;

/// sacreBLEU's tokenisers that `sacrebleu-rs` implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokenizer {
    Thirteen,
    Intl,
    None,
    Char,
}

impl std::str::FromStr for Tokenizer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "13a" => Self::Thirteen,
            "intl" => Self::Intl,
            "none" => Self::None,
            "char" => Self::Char,
            _ => return Err(Error::Tokenizer(s.into())),
        })
    }
}

impl Tokenizer {
    pub fn name(self) -> &'static str {
        match self {
            Self::Thirteen => "13a",
            Self::Intl => "intl",
            Self::None => "none",
            Self::Char => "char",
        }
    }
}

/// BLEU smoothing, as sacreBLEU's `smooth_method` / `smooth_value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Smoothing {
    Exp,
    Floor(f64),
    AddK(u32),
    None,
}

impl Smoothing {
    /// Parses a method name and optional value (sacreBLEU's defaults: floor 0.1, add-k 1).
    pub fn parse(method: &str, value: Option<f64>) -> Result<Self> {
        Ok(match method {
            "exp" => Self::Exp,
            "none" => Self::None,
            "floor" => Self::Floor(value.unwrap_or(0.1)),
            "add-k" => {
                let k = value.unwrap_or(1.0);
                if !(k >= 0.0 && k.fract() == 0.0 && k <= u32::MAX as f64) {
                    return Err(Error::AddK(k));
                }
                Self::AddK(k as u32)
            }
            _ => return Err(Error::Smoothing(method.into())),
        })
    }

    fn method(self) -> (&'static str, Option<f64>) {
        match self {
            Self::Exp => ("exp", None),
            Self::None => ("none", None),
            Self::Floor(v) => ("floor", Some(v)),
            Self::AddK(k) => ("add-k", Some(k as f64)),
        }
    }
}

/// BLEU settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BleuOptions {
    pub tokenize: Tokenizer,
    pub lowercase: bool,
    pub smoothing: Smoothing,
    pub effective_order: bool,
}

impl Default for BleuOptions {
    fn default() -> Self {
        Self { tokenize: Tokenizer::Thirteen, lowercase: false, smoothing: Smoothing::Exp, effective_order: false }
    }
}

/// A BLEU result with sacreBLEU's fields and signature.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BleuResult {
    pub score: f64,
    pub counts: Vec<i64>,
    pub totals: Vec<i64>,
    pub precisions: Vec<f64>,
    pub bp: f64,
    pub sys_len: i64,
    pub ref_len: i64,
    pub signature: String,
    /// sacreBLEU's verbose part: `p1/p2/p3/p4 (BP = … ratio = … hyp_len = … ref_len = …)`.
    pub verbose: String,
}

fn check(hyps: &[String], refs: &[Vec<String>]) -> Result<()> {
    if refs.is_empty() {
        return Err(Error::NoReferences);
    }
    for (stream, r) in refs.iter().enumerate() {
        if r.len() != hyps.len() {
            return Err(Error::Length { hyps: hyps.len(), stream, refs: r.len() });
        }
    }
    Ok(())
}

fn bleu(opts: &BleuOptions, smoothing: Smoothing) -> Bleu {
    let (method, value) = smoothing.method();
    Bleu {
        lowercase: opts.lowercase,
        smooth_method: method.into(),
        smooth_value: value,
        effective_order: opts.effective_order,
        tokenize: opts.tokenize.name().into(),
        ..Bleu::default()
    }
}

const CHUNK: usize = 64;

/// Corpus BLEU of `hyps` against reference streams (`refs[r][i]` is the r-th reference of
/// segment i).
pub fn corpus_bleu(hyps: &[String], refs: &[Vec<String>], opts: &BleuOptions) -> Result<BleuResult> {
    check(hyps, refs)?;
    // Raw statistics per chunk (no smoothing touches them), summed exactly.
    let raw = bleu(opts, Smoothing::None);
    let order = raw.max_ngram_order;
    let stats = (0..hyps.len().div_ceil(CHUNK).max(1))
        .into_par_iter()
        .map(|c| {
            let r = c * CHUNK..((c + 1) * CHUNK).min(hyps.len());
            let streams: Vec<Vec<String>> = refs.iter().map(|s| s[r.clone()].to_vec()).collect();
            let s = raw.corpus_score(&hyps[r], &streams);
            (s.counts, s.totals, s.sys_len, s.ref_len)
        })
        .reduce(
            || (vec![0; order], vec![0; order], 0, 0),
            |mut a, b| {
                a.0.iter_mut().zip(&b.0).for_each(|(x, y)| *x += y);
                a.1.iter_mut().zip(&b.1).for_each(|(x, y)| *x += y);
                (a.0, a.1, a.2 + b.2, a.3 + b.3)
            },
        );
    let metric = bleu(opts, opts.smoothing);
    let (method, value) = opts.smoothing.method();
    let s = compute_bleu(stats.0, stats.1, stats.2, stats.3, method, value, opts.effective_order, order);
    Ok(BleuResult {
        verbose: s.verbose(),
        signature: metric.signature(refs.len() as i64),
        score: s.score,
        counts: s.counts,
        totals: s.totals,
        precisions: s.precisions,
        bp: s.bp,
        sys_len: s.sys_len,
        ref_len: s.ref_len,
    })
}

/// Sentence BLEU of each segment (sacreBLEU recommends `effective_order` here).
pub fn sentence_bleu(hyps: &[String], refs: &[Vec<String>], opts: &BleuOptions) -> Result<Vec<f64>> {
    check(hyps, refs)?;
    let metric = bleu(opts, opts.smoothing);
    Ok(hyps
        .par_iter()
        .enumerate()
        .map(|(i, h)| metric.sentence_score(h, &refs.iter().map(|r| r[i].clone()).collect::<Vec<_>>()).score)
        .collect())
}

/// A chrF or TER result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Score {
    pub name: String,
    pub score: f64,
    pub signature: String,
}

/// chrF (`word_order` 0) or chrF++ (`word_order` 2).
pub fn corpus_chrf(hyps: &[String], refs: &[Vec<String>], word_order: usize, lowercase: bool) -> Result<Score> {
    check(hyps, refs)?;
    let m = Chrf { word_order, lowercase, ..Chrf::default() };
    let s = m.corpus_score(hyps, refs);
    Ok(Score { name: s.name(), score: s.score, signature: m.signature(refs.len() as i64) })
}

/// TER (case-insensitive, tercom tokenisation, as sacreBLEU's default).
pub fn corpus_ter(hyps: &[String], refs: &[Vec<String>]) -> Result<(Score, i64, f64)> {
    check(hyps, refs)?;
    let m = Ter::default();
    let s = m.corpus_score(hyps, refs);
    Ok((
        Score { name: "TER".into(), score: s.score, signature: m.signature(refs.len() as i64) },
        s.num_edits,
        s.ref_length,
    ))
}

/// Splits a text into segments as sacreBLEU reads files: on `\n`, the empty piece after a final
/// newline dropped, nothing else stripped.
pub fn segments(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.split('\n').map(String::from).collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}
