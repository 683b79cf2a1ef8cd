//! Parallel corpora in their distribution formats: plain text with one sentence per line (also
//! gzip-compressed, `.gz`), and WMT SGML test sets (`newstest2014-deen-src.en.sgm`). Every
//! problem names the file and line: invalid UTF-8, files of different lengths, empty lines.

use flate2::read::MultiGzDecoder;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("{path}, line {line}: {problem}")]
    Line { path: PathBuf, line: usize, problem: String },
    #[error("{src} has {src_lines} lines but {tgt} has {tgt_lines}")]
    Mismatch { src: PathBuf, src_lines: usize, tgt: PathBuf, tgt_lines: usize },
}

pub type Result<T> = std::result::Result<T, Error>;

/// What to do with an empty (or whitespace-only) line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Empty {
    /// An error naming the file and line (for test sets, where every line must count).
    Reject,
    /// Keep it (metrics and decoding read segments as they are).
    Keep,
}

fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::File { path: path.into(), problem: format!("cannot open: {e}") })?;
    let reader: Box<dyn Read> =
        if path.extension().is_some_and(|x| x == "gz") { Box::new(MultiGzDecoder::new(file)) } else { Box::new(file) };
    Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
}

/// The lines of a text file (`.gz` decompressed) one at a time, without their line ends (`\n`
/// or `\r\n`): corpora of millions of sentences are never held whole.
pub struct Lines {
    reader: Box<dyn BufRead>,
    path: PathBuf,
    line: usize,
    empty: Empty,
    buf: Vec<u8>,
}

impl Lines {
    pub fn open(path: &Path, empty: Empty) -> Result<Self> {
        Ok(Self { reader: open(path)?, path: path.into(), line: 0, empty, buf: Vec::new() })
    }

    /// Lines read so far.
    pub fn lines_read(&self) -> usize {
        self.line
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Iterator for Lines {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        self.buf.clear();
        let line = self.line + 1;
        let err = |problem: String| Some(Err(Error::Line { path: self.path.clone(), line, problem }));
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => return err(format!("cannot read: {e}")),
        }
        self.line = line;
        if self.buf.ends_with(b"\n") {
            self.buf.pop();
            if self.buf.ends_with(b"\r") {
                self.buf.pop();
            }
        }
        let text = match std::str::from_utf8(&self.buf) {
            Ok(t) => t.to_string(),
            Err(e) => return err(format!("not valid UTF-8 ({e})")),
        };
        if self.empty == Empty::Reject && text.trim().is_empty() {
            return err("empty line".into());
        }
        Some(Ok(text))
    }
}

/// The lines of a text file (`.gz` decompressed), without their line ends (`\n` or `\r\n`).
pub fn read_lines(path: &Path, empty: Empty) -> Result<Vec<String>> {
    Lines::open(path, empty)?.collect()
}

/// Sentences of a test set: a WMT SGML file (`.sgm`) or plain text, every line counted.
pub fn read_segments(path: &Path) -> Result<Vec<String>> {
    if path.extension().is_some_and(|x| x == "sgm") {
        read_sgml(path)
    } else {
        read_lines(path, Empty::Keep)
    }
}

/// Source and target sentences, line by line; the files must have the same number of lines.
pub fn read_parallel(src: &Path, tgt: &Path, empty: Empty) -> Result<Vec<(String, String)>> {
    let (s, t) = (read_lines(src, empty)?, read_lines(tgt, empty)?);
    if s.len() != t.len() {
        return Err(Error::Mismatch { src: src.into(), src_lines: s.len(), tgt: tgt.into(), tgt_lines: t.len() });
    }
    Ok(s.into_iter().zip(t).collect())
}

/// The segments of a WMT SGML file in document order: the text between `<seg …>` and `</seg>`
/// with whitespace runs collapsed and trimmed, as sacreBLEU extracts it (entities are left as
/// they are).
pub fn read_sgml(path: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, line) in read_lines(path, Empty::Keep)?.iter().enumerate() {
        let Some(start) = line.find("<seg") else { continue };
        let rest = &line[start..];
        let open_end = rest.find('>').ok_or_else(|| Error::Line {
            path: path.into(),
            line: i + 1,
            problem: "unterminated <seg> tag".into(),
        })?;
        let body = &rest[open_end + 1..];
        let close = body.rfind("</seg>").ok_or_else(|| Error::Line {
            path: path.into(),
            line: i + 1,
            problem: "<seg> without </seg> on the same line".into(),
        })?;
        out.push(body[..close].split_whitespace().collect::<Vec<_>>().join(" "));
    }
    if out.is_empty() {
        return Err(Error::File { path: path.into(), problem: "no <seg> elements".into() });
    }
    Ok(out)
}

/// Whitespace token counts and their ratio, as fairseq's `--max-source-positions`-style
/// filtering and Moses' `clean-corpus-n` do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LengthFilter {
    pub min_tokens: usize,
    pub max_tokens: usize,
    /// Longer side over shorter side, at most this.
    pub max_ratio: f64,
}

impl LengthFilter {
    pub fn keeps(&self, src: &str, tgt: &str) -> bool {
        let (a, b) = (src.split_whitespace().count(), tgt.split_whitespace().count());
        let (lo, hi) = (a.min(b), a.max(b));
        lo >= self.min_tokens && hi <= self.max_tokens && (lo > 0 && hi as f64 / lo as f64 <= self.max_ratio)
    }

    /// The pairs that pass, and how many were dropped.
    pub fn apply(&self, pairs: Vec<(String, String)>) -> (Vec<(String, String)>, usize) {
        let n = pairs.len();
        let kept: Vec<_> = pairs.into_iter().filter(|(s, t)| self.keeps(s, t)).collect();
        let dropped = n - kept.len();
        (kept, dropped)
    }
}
