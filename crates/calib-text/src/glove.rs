//! GloVe word vectors in their text format (`word v1 … vd` a line, space separated, as Stanford
//! distributes them; plain or `.gz`), restricted to a vocabulary. The official files are 1–5 GB,
//! so they are streamed a line at a time and only the vocabulary's rows are kept; every row is
//! still checked (its width and its numbers), so a truncated or corrupt file is an error naming
//! the line instead of a silently short matrix.

use crate::text;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("{path}, line {line}: {problem}")]
    Line { path: PathBuf, line: usize, problem: String },
    /// The vocabulary does not fit the matrix asked for (an index past `rows`, or one index for
    /// two words).
    #[error("vocabulary: {0}")]
    Vocabulary(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a vocabulary word absent from the file gets.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Missing {
    /// A zero vector (what the reference Keras code leaves in its embedding matrix).
    Zero,
    /// Values drawn uniformly from `[-scale, scale)`: ChaCha8 seeded with `seed`, the missing rows
    /// filled in ascending row order, each value from one `next_u32` as
    /// `scale · (2 · (x >> 8) / 2²⁴ − 1)`, so the matrix depends only on the file, the vocabulary
    /// and these two numbers (not on the `rand` crate's version or a hash map's order).
    Uniform { scale: f32, seed: u64 },
}

/// How [`read`] fills what the file does not hold.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GloveOptions {
    pub missing: Missing,
}

impl Default for GloveOptions {
    /// Missing words get zero vectors.
    fn default() -> Self {
        Self { missing: Missing::Zero }
    }
}

impl GloveOptions {
    pub fn new(missing: Missing) -> Self {
        Self { missing }
    }

    pub fn with_missing(mut self, missing: Missing) -> Self {
        self.missing = missing;
        self
    }
}

/// A `[rows, dim]` matrix, row-major, for a vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<f32>,
    pub rows: usize,
    /// The file's dimension (the number of values on its first line).
    pub dim: usize,
    /// Vocabulary words found in the file.
    pub found: usize,
    /// Words in the vocabulary (rows that no word maps to, such as padding, stay zero and are
    /// not counted).
    pub vocabulary: usize,
    /// The rows of the vocabulary words the file lacks, ascending (filled per [`Missing`]).
    pub missing: Vec<usize>,
}

impl Embeddings {
    /// Found words over vocabulary words (1 for an empty vocabulary).
    pub fn coverage(&self) -> f64 {
        if self.vocabulary == 0 {
            1.0
        } else {
            self.found as f64 / self.vocabulary as f64
        }
    }

    pub fn row(&self, index: usize) -> &[f32] {
        &self.vectors[index * self.dim..(index + 1) * self.dim]
    }
}

/// Reads the vectors of `vocabulary`'s words (word → row) into a `[rows, dim]` matrix; rows no
/// word maps to (padding, unknown) are zero. The dimension is the number of values on the first
/// line, and every line must have as many: a row of another width, a value that is not a finite
/// number, an empty line or a word2vec-style count header are errors naming the file and line.
/// A word is everything before the first space, compared byte for byte (GloVe 6B is lowercase:
/// lowercase the vocabulary first if its words are not); when a word occurs twice the first row
/// wins. Words that are not UTF-8 cannot be in the vocabulary and are only checked, not stored.
pub fn read(
    path: &Path,
    vocabulary: &HashMap<String, usize>,
    rows: usize,
    options: &GloveOptions,
) -> Result<Embeddings> {
    let mut owner: Vec<Option<&str>> = vec![None; rows];
    for (word, &index) in vocabulary {
        let slot = owner
            .get_mut(index)
            .ok_or_else(|| Error::Vocabulary(format!("'{word}' has row {index} but the matrix has {rows} rows")))?;
        if let Some(other) = slot.replace(word) {
            let (a, b) = if other < word.as_str() { (other, word.as_str()) } else { (word.as_str(), other) };
            return Err(Error::Vocabulary(format!("'{a}' and '{b}' share row {index}")));
        }
    }
    let file_err = |problem: String| Error::File { path: path.into(), problem };
    let mut reader = text::open(path).map_err(|e| file_err(format!("cannot open: {e}")))?;
    let mut buf = Vec::new();
    let mut values = Vec::new();
    let mut vectors = Vec::new();
    let mut seen = vec![false; rows];
    let mut dim = 0;
    let mut line = 0;
    loop {
        let more = text::next_line(&mut *reader, &mut buf).map_err(|e| Error::Line {
            path: path.into(),
            line: line + 1,
            problem: format!("cannot read: {e}"),
        })?;
        if !more {
            break;
        }
        line += 1;
        let err = |problem: String| Error::Line { path: path.into(), line, problem };
        let (word, rest) = split_row(&buf).map_err(err)?;
        values.clear();
        parse_values(rest, &mut values).map_err(err)?;
        if line == 1 {
            if values.len() == 1 && !word.is_empty() && word.iter().all(u8::is_ascii_digit) {
                return Err(err("a word2vec-style header (word count and dimension), not a vector; remove it".into()));
            }
            dim = values.len();
            vectors = vec![0f32; rows * dim];
        } else if values.len() != dim {
            return Err(err(format!("{} values where line 1 has {dim}", values.len())));
        }
        let index = std::str::from_utf8(word).ok().and_then(|w| vocabulary.get(w)).copied();
        if let Some(index) = index.filter(|&i| !seen[i]) {
            seen[index] = true;
            vectors[index * dim..(index + 1) * dim].copy_from_slice(&values);
        }
    }
    if line == 0 {
        return Err(file_err("empty: no vectors, so no dimension".into()));
    }
    let missing: Vec<usize> = (0..rows).filter(|&i| owner[i].is_some() && !seen[i]).collect();
    if let Missing::Uniform { scale, seed } = options.missing {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for &i in &missing {
            for v in &mut vectors[i * dim..(i + 1) * dim] {
                let unit = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
                *v = scale * (2.0 * unit - 1.0);
            }
        }
    }
    Ok(Embeddings {
        vectors,
        rows,
        dim,
        found: vocabulary.len() - missing.len(),
        vocabulary: vocabulary.len(),
        missing,
    })
}

/// The word (before the first space) and the rest, trailing spaces and tabs dropped.
fn split_row(line: &[u8]) -> std::result::Result<(&[u8], &[u8]), String> {
    let end = line.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    let line = &line[..end];
    if line.is_empty() {
        return Err("empty line".into());
    }
    match line.iter().position(|&b| b == b' ') {
        Some(0) => Err("starts with a space (no word)".into()),
        Some(i) => Ok((&line[..i], &line[i + 1..])),
        None => Err("a word without values".into()),
    }
}

fn parse_values(rest: &[u8], out: &mut Vec<f32>) -> std::result::Result<(), String> {
    let rest = std::str::from_utf8(rest).map_err(|_| "values that are not numbers (not even UTF-8)".to_string())?;
    for (i, field) in rest.split_ascii_whitespace().enumerate() {
        match field.parse::<f32>() {
            Ok(v) if v.is_finite() => out.push(v),
            _ => return Err(format!("value {} is '{field}', not a finite number", i + 1)),
        }
    }
    if out.is_empty() {
        return Err("a word without values".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_at_the_first_space_and_ignore_trailing_blanks() {
        assert_eq!(split_row(b"the 1 2 \t").unwrap(), (&b"the"[..], &b"1 2"[..]));
        assert!(split_row(b"   ").is_err());
        assert!(split_row(b" 1 2").is_err());
        assert!(split_row(b"word").is_err());
        let mut v = Vec::new();
        assert!(parse_values(b"1 nan", &mut v).unwrap_err().contains("value 2 is 'nan'"));
    }
}
