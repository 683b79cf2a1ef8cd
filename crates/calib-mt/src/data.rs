//! Binarised parallel data, as fairseq's `fairseq-preprocess` makes it but in memory: sentences
//! are read in chunks, encoded in parallel, and kept as one flat id buffer with offsets. The text
//! of a corpus (WMT14 has 4.5 M pairs) is never held whole; the ids take 4 bytes a token.

use crate::corpus::{self, Empty, Lines};
use crate::tokenize::{self, Vocab};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Corpus(#[from] corpus::Error),
    #[error(transparent)]
    Tokenizer(#[from] tokenize::Error),
    #[error("{path}: no sentence pairs are left (of {read}, {dropped} longer than {max_len} tokens or out of the length ratio)")]
    Empty { path: PathBuf, read: usize, dropped: usize, max_len: usize },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Sentences as token ids: sentence `i` is `ids[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encoded {
    ids: Vec<u32>,
    offsets: Vec<usize>,
}

impl Encoded {
    fn push(&mut self, sentence: &[u32]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.ids.extend_from_slice(sentence);
        self.offsets.push(self.ids.len());
    }

    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> &[u32] {
        &self.ids[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Token counts of every sentence.
    pub fn lengths(&self) -> Vec<usize> {
        self.offsets.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Tokens in all sentences.
    pub fn tokens(&self) -> usize {
        self.ids.len()
    }
}

/// Encoded sentence pairs (without BOS/EOS; the task adds them) and what reading them dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parallel {
    pub src: Encoded,
    pub tgt: Encoded,
    /// Pairs read from the files.
    pub read: usize,
    /// Pairs left out because a side had more than `max_len` tokens, or the sides' lengths
    /// were further apart than `max_ratio`.
    pub dropped: usize,
}

impl Parallel {
    pub fn len(&self) -> usize {
        self.src.len()
    }

    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
    }
}

/// How to read a parallel corpus.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// Pairs with a side longer than this many tokens are dropped (and counted).
    pub max_len: usize,
    /// Pairs whose longer side has more than this many times the tokens of the shorter are
    /// dropped too (Moses' `clean-corpus-n` ratio, on sub-word tokens); None keeps them.
    pub max_ratio: Option<f64>,
    /// Read only the first this many pairs.
    pub limit: Option<usize>,
    /// Empty lines: an error naming the file and line (training data), or kept.
    pub empty: Empty,
}

impl ReadOptions {
    /// Every pair up to `max_len` tokens a side, no ratio filter, no limit, empty lines an error.
    pub fn new(max_len: usize) -> Self {
        Self { max_len, max_ratio: None, limit: None, empty: Empty::Reject }
    }

    pub fn with_max_ratio(mut self, ratio: Option<f64>) -> Self {
        self.max_ratio = ratio;
        self
    }

    pub fn with_limit(mut self, limit: Option<usize>) -> Self {
        self.limit = limit;
        self
    }

    pub fn with_empty(mut self, empty: Empty) -> Self {
        self.empty = empty;
        self
    }
}

const CHUNK: usize = 1 << 15;

/// Reads and encodes `src`/`tgt` (plain text, `.gz`; WMT SGML `.sgm` for test sets) chunk by
/// chunk. The files must have the same number of lines (the error gives both counts).
pub fn read(src: &Path, tgt: &Path, vocab: &Vocab, opts: ReadOptions) -> Result<Parallel> {
    read_chunked(src, tgt, vocab, opts, CHUNK)
}

/// [`read`] with `chunk` pairs encoded at a time.
fn read_chunked(src: &Path, tgt: &Path, vocab: &Vocab, opts: ReadOptions, chunk: usize) -> Result<Parallel> {
    let sgml = |p: &Path| p.extension().is_some_and(|x| x == "sgm");
    if sgml(src) || sgml(tgt) {
        let (s, t) = (corpus::read_segments(src)?, corpus::read_segments(tgt)?);
        if s.len() != t.len() {
            return Err(corpus::Error::Mismatch {
                src: src.into(),
                src_lines: s.len(),
                tgt: tgt.into(),
                tgt_lines: t.len(),
            }
            .into());
        }
        let n = opts.limit.unwrap_or(usize::MAX).min(s.len());
        let mut out = Parallel::default();
        add_chunk(&mut out, &s[..n], &t[..n], vocab, &opts)?;
        return finish(out, src, opts.max_len);
    }
    let (mut s_lines, mut t_lines) = (Lines::open(src, opts.empty)?, Lines::open(tgt, opts.empty)?);
    let mut out = Parallel::default();
    let limit = opts.limit.unwrap_or(usize::MAX);
    loop {
        let (mut s_chunk, mut t_chunk) = (Vec::with_capacity(chunk), Vec::with_capacity(chunk));
        while s_chunk.len() < chunk && out.read + s_chunk.len() < limit {
            match (s_lines.next().transpose()?, t_lines.next().transpose()?) {
                (Some(s), Some(t)) => {
                    s_chunk.push(s);
                    t_chunk.push(t);
                }
                (None, None) => break,
                (s, t) => {
                    // One file ended first: count the rest of the other for the message.
                    let rest = |it: &mut Lines| -> Result<usize> {
                        for line in it.by_ref() {
                            line?;
                        }
                        Ok(it.lines_read())
                    };
                    let src_lines = if s.is_some() { rest(&mut s_lines)? } else { s_lines.lines_read() };
                    let tgt_lines = if t.is_some() { rest(&mut t_lines)? } else { t_lines.lines_read() };
                    return Err(
                        corpus::Error::Mismatch { src: src.into(), src_lines, tgt: tgt.into(), tgt_lines }.into()
                    );
                }
            }
        }
        if s_chunk.is_empty() {
            break;
        }
        let full = s_chunk.len() == chunk;
        add_chunk(&mut out, &s_chunk, &t_chunk, vocab, &opts)?;
        if !full {
            break;
        }
    }
    finish(out, src, opts.max_len)
}

fn add_chunk(out: &mut Parallel, s: &[String], t: &[String], vocab: &Vocab, opts: &ReadOptions) -> Result<()> {
    let (s_ids, t_ids) = rayon::join(|| vocab.encode_batch(s), || vocab.encode_batch(t));
    let (s_ids, t_ids) = (s_ids?, t_ids?);
    out.read += s.len();
    for (a, b) in s_ids.iter().zip(&t_ids) {
        let (short, long) = (a.len().min(b.len()), a.len().max(b.len()));
        let ratio_ok = opts.max_ratio.is_none_or(|r| long as f64 <= r * short.max(1) as f64);
        if long > opts.max_len || !ratio_ok {
            out.dropped += 1;
        } else {
            out.src.push(a);
            out.tgt.push(b);
        }
    }
    Ok(())
}

fn finish(out: Parallel, path: &Path, max_len: usize) -> Result<Parallel> {
    if out.is_empty() {
        return Err(Error::Empty { path: path.into(), read: out.read, dropped: out.dropped, max_len });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunk boundaries change nothing: small chunks (ending exactly at the files' end too, and
    /// cut by a limit) give what one chunk gives, and a length mismatch past a boundary still
    /// reports both counts.
    #[test]
    fn chunks_are_invisible() {
        let dir = tempfile::tempdir().unwrap();
        let (s, t) = (dir.path().join("a.en"), dir.path().join("a.de"));
        let src: Vec<String> = (0..1000).map(|i| format!("a dog number {} runs {}", i, "far ".repeat(i % 7))).collect();
        let tgt: Vec<String> =
            (0..1000).map(|i| format!("ein Hund {} läuft {}", i * 3, "weit ".repeat(i % 5))).collect();
        std::fs::write(&s, src.join("\n") + "\n").unwrap();
        std::fs::write(&t, tgt.join("\n") + "\n").unwrap();
        let mut text = src.clone();
        text.extend(tgt.iter().cloned());
        let tok_path = dir.path().join("tok.json");
        tokenize::save(&tokenize::train(&text, 200, tokenize::Kind::Bpe, false, "test").unwrap(), &tok_path).unwrap();
        let vocab = Vocab::load(&tok_path).unwrap();
        let opts = ReadOptions { max_len: 12, max_ratio: None, limit: None, empty: Empty::Reject };
        let whole = read_chunked(&s, &t, &vocab, opts, 1 << 20).unwrap();
        assert!(whole.dropped > 0 && whole.read == 1000);
        for chunk in [1, 7, 250, 1000] {
            assert_eq!(read_chunked(&s, &t, &vocab, opts, chunk).unwrap(), whole, "chunk {chunk}");
        }
        let limited = ReadOptions { limit: Some(333), ..opts };
        assert_eq!(
            read_chunked(&s, &t, &vocab, limited, 100).unwrap(),
            read_chunked(&s, &t, &vocab, limited, 1 << 20).unwrap()
        );
        std::fs::write(&t, tgt[..600].join("\n") + "\n").unwrap();
        let e = read_chunked(&s, &t, &vocab, opts, 250).unwrap_err().to_string();
        assert!(e.contains("a.en has 1000 lines") && e.contains("a.de has 600"), "{e}");
    }
}
