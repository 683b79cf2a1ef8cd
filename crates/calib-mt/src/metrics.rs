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
    #[error("unknown tokeniser '{0}' (supported: 13a, intl, none, char, zh)")]
    Tokenizer(String),
    #[error("unknown smoothing '{0}' (expected exp, floor, add-k, none)")]
    Smoothing(String),
    #[error("add-k smoothing needs a whole number k ≥ 0, got {0}")]
    AddK(f64),
}

pub type Result<T> = std::result::Result<T, Error>;

/// sacreBLEU's tokenisers: those `sacrebleu-rs` implements, and `zh` (ported here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokenizer {
    Thirteen,
    Intl,
    None,
    Char,
    Zh,
}

impl std::str::FromStr for Tokenizer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "13a" => Self::Thirteen,
            "intl" => Self::Intl,
            "none" => Self::None,
            "char" => Self::Char,
            "zh" => Self::Zh,
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
            Self::Zh => "zh",
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

/// BLEU settings (sacreBLEU's defaults: 13a, cased, exponential smoothing).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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

impl BleuOptions {
    pub fn with_tokenize(mut self, tokenize: Tokenizer) -> Self {
        self.tokenize = tokenize;
        self
    }

    pub fn with_lowercase(mut self, lowercase: bool) -> Self {
        self.lowercase = lowercase;
        self
    }

    pub fn with_smoothing(mut self, smoothing: Smoothing) -> Self {
        self.smoothing = smoothing;
        self
    }

    pub fn with_effective_order(mut self, effective_order: bool) -> Self {
        self.effective_order = effective_order;
        self
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
        // `zh` segments arrive tokenised (see `prepare`).
        tokenize: if opts.tokenize == Tokenizer::Zh { "none".into() } else { opts.tokenize.name().into() },
        ..Bleu::default()
    }
}

/// The BLEU signature, naming the tokeniser actually used.
fn signature(metric: &Bleu, opts: &BleuOptions, refs: usize) -> String {
    let s = metric.signature(refs as i64);
    if opts.tokenize == Tokenizer::Zh {
        s.replace("|tok:none|", "|tok:zh|")
    } else {
        s
    }
}

/// Segments as `sacrebleu-rs` should see them: unchanged, or for `zh` lowercased (when asked,
/// before tokenising, as sacreBLEU does) and tokenised.
fn prepare<'a>(segments: &'a [String], opts: &BleuOptions) -> std::borrow::Cow<'a, [String]> {
    if opts.tokenize != Tokenizer::Zh {
        return std::borrow::Cow::Borrowed(segments);
    }
    let one = |s: &String| {
        let s = if opts.lowercase { s.to_lowercase() } else { s.clone() };
        tokenize_zh(s.trim_end())
    };
    std::borrow::Cow::Owned(segments.par_iter().map(one).collect())
}

/// Python's `str.isspace`: Unicode white space plus the four information separators U+001C–U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// sacreBLEU 2.6.0's `_is_chinese_char`. Its ranges are compared as Python strings, and two of
/// them were written as five-digit `\u` escapes, which Python reads as a four-digit escape and a
/// digit: `'\u20000' <= c <= '\u2a6d6'` holds for U+2001..=U+2A6D (general punctuation, arrows,
/// mathematical symbols…), `'\u2f800' <= c <= '\u2fa1d'` for U+2F81..=U+2FA1. Kept as it is.
fn is_chinese_char(c: char) -> bool {
    const RANGES: [(char, char); 22] = [
        ('\u{3400}', '\u{4db5}'),
        ('\u{4e00}', '\u{9fa5}'),
        ('\u{9fa6}', '\u{9fbb}'),
        ('\u{f900}', '\u{fa2d}'),
        ('\u{fa30}', '\u{fa6a}'),
        ('\u{fa70}', '\u{fad9}'),
        ('\u{2001}', '\u{2a6d}'),
        ('\u{2f81}', '\u{2fa1}'),
        ('\u{ff00}', '\u{ffef}'),
        ('\u{2e80}', '\u{2eff}'),
        ('\u{3000}', '\u{303f}'),
        ('\u{31c0}', '\u{31ef}'),
        ('\u{2f00}', '\u{2fdf}'),
        ('\u{2ff0}', '\u{2fff}'),
        ('\u{3100}', '\u{312f}'),
        ('\u{31a0}', '\u{31bf}'),
        ('\u{fe10}', '\u{fe1f}'),
        ('\u{fe30}', '\u{fe4f}'),
        ('\u{2600}', '\u{26ff}'),
        ('\u{2700}', '\u{27bf}'),
        ('\u{3200}', '\u{32ff}'),
        ('\u{3300}', '\u{33ff}'),
    ];
    RANGES.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// sacreBLEU's `zh` tokeniser (`TokenizerZh`, which `sacrebleu-rs` lacks): spaces around every
/// Chinese character, then the `13a` regular expressions (`TokenizerRegexp`), then single spaces.
pub fn tokenize_zh(line: &str) -> String {
    static RULES: std::sync::OnceLock<Vec<(regex::Regex, &'static str)>> = std::sync::OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (r"([\x20-\x26\x28-\x2b\x2f\x3a-\x40\x5b-\x60\x7b-\x7e])", " $1 "),
            (r"([^0-9])([\.,])", "$1 $2 "),
            (r"([\.,])([^0-9])", " $1 $2"),
            (r"([0-9])(-)", "$1 $2 "),
        ]
        .into_iter()
        .map(|(re, to)| (regex::Regex::new(re).expect("valid pattern"), to))
        .collect()
    });
    let mut spaced = String::with_capacity(line.len() * 2);
    for c in line.trim_matches(py_space).chars() {
        if is_chinese_char(c) {
            spaced.push(' ');
            spaced.push(c);
            spaced.push(' ');
        } else {
            spaced.push(c);
        }
    }
    for (re, to) in rules {
        spaced = re.replace_all(&spaced, *to).into_owned();
    }
    spaced.split(py_space).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

const CHUNK: usize = 64;

/// Corpus BLEU of `hyps` against reference streams (`refs[r][i]` is the r-th reference of
/// segment i).
pub fn corpus_bleu(hyps: &[String], refs: &[Vec<String>], opts: &BleuOptions) -> Result<BleuResult> {
    check(hyps, refs)?;
    let hyps = prepare(hyps, opts);
    let refs: Vec<_> = refs.iter().map(|r| prepare(r, opts)).collect();
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
        signature: signature(&metric, opts, refs.len()),
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
    let hyps = prepare(hyps, opts);
    let refs: Vec<_> = refs.iter().map(|r| prepare(r, opts)).collect();
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
