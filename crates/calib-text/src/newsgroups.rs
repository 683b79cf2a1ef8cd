//! 20 Newsgroups in Jason Rennie's `bydate` layout (`20news-bydate-train/<group>/<id>` and
//! `20news-bydate-test/<group>/<id>`, the version scikit-learn's `fetch_20newsgroups` uses), read
//! the way the reference Keras code reads its copy, so the paper's preprocessing is what a run
//! gets:
//!
//! - bytes are Latin-1 (each byte is the char U+00XX), with Python's universal newlines (`\r\n`
//!   and a lone `\r` become `\n`), as `open(path, encoding='latin-1')` gives them;
//! - the header is everything up to the first blank line (`\n\n`), dropped only when that blank
//!   line is not at the very start (Keras' `i = t.find('\n\n'); if 0 < i: t = t[i:]`);
//! - optionally, footers and quoted lines are removed as scikit-learn's
//!   `remove=('footers', 'quotes')` does ([`strip_footer`], [`strip_quotes`], in that order);
//! - labels are the group folders in sorted order (20 classes, scikit-learn's target order);
//! - documents are the files whose names are all digits (others are ignored, as Keras does), in
//!   ascending numeric order within a group.
//!
//! The paper's 15,098 / 900 / 3,999 split came from the 19,997-document version; `bydate` has
//! 11,314 training and 7,532 test documents, so [`Newsgroups::read`] holds out a fixed 900
//! training documents for validation ([`permutation`]). Documents without a token after the
//! header (19 in the training folder, 18 of them with nothing but whitespace; 16 in the test
//! folder) are kept: they encode as all padding, as Keras' `pad_sequences` makes of an empty
//! sequence. The reference fits its tokenizer on every text, test included; build the
//! [`Vocabulary`] from [`Newsgroups::train`] alone to keep the validation and test sets unseen.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The training folder under the corpus root.
pub const TRAIN_DIR: &str = "20news-bydate-train";
/// The test folder under the corpus root.
pub const TEST_DIR: &str = "20news-bydate-test";
/// Training documents held out for validation, as in the paper.
pub const VALIDATION_SIZE: usize = 900;
/// The seed of the validation hold-out (ChaCha8; see [`permutation`]).
pub const VALIDATION_SEED: u64 = 2020;
/// The characters Keras' `Tokenizer` replaces by spaces by default.
pub const KERAS_FILTERS: &str = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n";
/// The padding id (never a word).
pub const PAD: i64 = 0;
/// The id of a word outside the vocabulary, when [`Oov::Unknown`] keeps such words.
pub const UNKNOWN: i64 = 1;

#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("{0}")]
    Options(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// How [`Newsgroups::read`] reads and splits the corpus.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// Remove signature blocks (scikit-learn's `remove=('footers',)`; see [`strip_footer`]).
    pub footers: bool,
    /// Remove quoted lines (scikit-learn's `remove=('quotes',)`; see [`strip_quotes`]).
    pub quotes: bool,
    /// Training documents held out for validation.
    pub validation: usize,
    /// The seed of the hold-out.
    pub seed: u64,
}

impl Default for ReadOptions {
    /// The reference preprocessing: headers only, 900 validation documents, [`VALIDATION_SEED`].
    fn default() -> Self {
        Self { footers: false, quotes: false, validation: VALIDATION_SIZE, seed: VALIDATION_SEED }
    }
}

impl ReadOptions {
    pub fn with_footers(mut self, footers: bool) -> Self {
        self.footers = footers;
        self
    }

    pub fn with_quotes(mut self, quotes: bool) -> Self {
        self.quotes = quotes;
        self
    }

    /// `count` documents held out with `seed`.
    pub fn with_validation(mut self, count: usize, seed: u64) -> Self {
        self.validation = count;
        self.seed = seed;
        self
    }
}

/// One post: its class (an index into [`Newsgroups::groups`]), its file and its text after the
/// header (and footer and quotes when asked).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub label: usize,
    pub path: PathBuf,
    pub text: String,
}

/// The corpus, split three ways; each part in reading order (group, then numeric id).
#[derive(Debug, Clone, PartialEq)]
pub struct Newsgroups {
    /// The group names, sorted: label `i` is `groups[i]`.
    pub groups: Vec<String>,
    pub train: Vec<Document>,
    pub validation: Vec<Document>,
    pub test: Vec<Document>,
}

impl Newsgroups {
    /// Reads `root/20news-bydate-train` and `root/20news-bydate-test` (the same groups in both)
    /// and holds out `options.validation` training documents: those at the first positions of
    /// [`permutation`]`(train, options.seed)`.
    pub fn read(root: &Path, options: &ReadOptions) -> Result<Self> {
        let (groups, train) = read_folder(&root.join(TRAIN_DIR), options)?;
        let (test_groups, test) = read_folder(&root.join(TEST_DIR), options)?;
        if groups != test_groups {
            return Err(Error::File {
                path: root.into(),
                problem: format!("the training groups {groups:?} are not the test groups {test_groups:?}"),
            });
        }
        if options.validation > train.len() {
            return Err(Error::Options(format!(
                "{} validation documents asked for, but there are {} training documents",
                options.validation,
                train.len()
            )));
        }
        let mut held = vec![false; train.len()];
        for &i in &permutation(train.len(), options.seed)[..options.validation] {
            held[i] = true;
        }
        let (validation, train): (Vec<_>, Vec<_>) = train.into_iter().zip(held).partition(|(_, h)| *h);
        let strip = |docs: Vec<(Document, bool)>| docs.into_iter().map(|(d, _)| d).collect();
        Ok(Self { groups, train: strip(train), validation: strip(validation), test })
    }
}

/// The documents of one split folder (`<dir>/<group>/<id>`) and its groups, sorted.
pub fn read_folder(dir: &Path, options: &ReadOptions) -> Result<(Vec<String>, Vec<Document>)> {
    let mut groups = Vec::new();
    for entry in list(dir)? {
        if entry.is_dir() {
            let name = entry.file_name().and_then(|n| n.to_str()).ok_or_else(|| Error::File {
                path: entry.clone(),
                problem: "a group folder whose name is not UTF-8".into(),
            })?;
            groups.push(name.to_string());
        }
    }
    groups.sort();
    if groups.is_empty() {
        return Err(Error::File { path: dir.into(), problem: "no group folders".into() });
    }
    let mut docs = Vec::new();
    for (label, group) in groups.iter().enumerate() {
        let mut files: Vec<(u64, PathBuf)> = list(&dir.join(group))?
            .into_iter()
            .filter_map(|p| {
                let id = p.file_name()?.to_str()?;
                let numeric = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
                Some((id.parse().ok().filter(|_| numeric)?, p))
            })
            .collect();
        files.sort();
        for (_, path) in files {
            let text = read_document(&path, options)?;
            docs.push(Document { label, path, text });
        }
    }
    Ok((groups, docs))
}

fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let err = |e: std::io::Error| Error::File { path: dir.into(), problem: format!("cannot list: {e}") };
    std::fs::read_dir(dir).map_err(err)?.map(|e| e.map(|e| e.path()).map_err(err)).collect()
}

/// One post's text: decoded ([`decode_latin1`]), the header dropped ([`strip_header`]), then
/// the footer and quotes when `options` asks. An empty file is an error: every post of the
/// corpus has at least a header, so one of 0 bytes is a damaged copy (a post whose body is empty
/// is kept, see the module notes).
pub fn read_document(path: &Path, options: &ReadOptions) -> Result<String> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::File { path: path.into(), problem: format!("cannot read: {e}") })?;
    if bytes.is_empty() {
        return Err(Error::File {
            path: path.into(),
            problem: "empty file (0 bytes): a post has at least a header".into(),
        });
    }
    let mut text = strip_header(&decode_latin1(&bytes)).to_string();
    if options.footers {
        text = strip_footer(&text).to_string();
    }
    if options.quotes {
        text = strip_quotes(&text);
    }
    Ok(text)
}

/// Latin-1 bytes as text (byte `b` is the char U+00`b`), with `\r\n` and a lone `\r` read as
/// `\n` (Python's universal newlines).
pub fn decode_latin1(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' => {
                out.push('\n');
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b => out.push(char::from(b)),
        }
        i += 1;
    }
    out
}

/// The text after the first blank line (`\n\n`); the whole text when there is none or it opens
/// the text (Keras: `i = t.find('\n\n'); if 0 < i: t = t[i:]`, which keeps the two newlines; they
/// carry no token).
pub fn strip_header(text: &str) -> &str {
    match text.find("\n\n") {
        Some(i) if i > 0 => &text[i + 2..],
        _ => text,
    }
}

/// Python's `str.isspace` (Unicode whitespace plus the separators U+001C–U+001F).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// scikit-learn's `strip_newsgroup_footer`: drop everything from the last line that is empty
/// or only dashes (after stripping whitespace, of the whitespace-stripped text) on, unless that
/// line is the first, in which case the text is returned unchanged.
pub fn strip_footer(text: &str) -> &str {
    let stripped = text.trim_matches(py_space);
    let mut end = stripped.len();
    // Walk the lines of the stripped text from the last; `start` is where the line begins.
    loop {
        let start = stripped[..end].rfind('\n').map_or(0, |i| i + 1);
        let line = &stripped[start..end];
        if line.trim_matches(py_space).trim_matches('-').is_empty() {
            // A footer separator; lines before it are kept (without the newline ending them).
            return if start > 0 { &stripped[..start - 1] } else { text };
        }
        if start == 0 {
            return text;
        }
        end = start - 1;
    }
}

/// scikit-learn's `strip_newsgroup_quoting`: drop every line that contains `writes in`,
/// `writes:`, `wrote:`, `says:` or `said:`, or starts with `In article`, `Quoted from`, `|` or
/// `>`.
pub fn strip_quotes(text: &str) -> String {
    const ANYWHERE: [&str; 5] = ["writes in", "writes:", "wrote:", "says:", "said:"];
    const START: [&str; 4] = ["In article", "Quoted from", "|", ">"];
    let quoted = |l: &str| ANYWHERE.iter().any(|p| l.contains(p)) || START.iter().any(|p| l.starts_with(p));
    text.split('\n').filter(|l| !quoted(l)).collect::<Vec<_>>().join("\n")
}

/// Keras' `Tokenizer` with its defaults: lowercase, every character of [`KERAS_FILTERS`]
/// replaced by a space, then split. One difference: Keras splits on the space only, so a `\r`
/// or a no-break space stays inside a token; here every Unicode whitespace character separates
/// (and Latin-1 text has no carriage returns left after [`decode_latin1`]).
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut token = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_whitespace() || KERAS_FILTERS.contains(c) {
            if !token.is_empty() {
                tokens.push(std::mem::take(&mut token));
            }
        } else {
            token.push(c);
        }
    }
    if !token.is_empty() {
        tokens.push(token);
    }
    tokens
}

/// A fixed permutation of `0..n`: Fisher–Yates from the last position down, position `i`
/// swapped with `j = ⌊x · (i + 1) / 2⁶⁴⌋` for the next `x = next_u64()` of ChaCha8 seeded with
/// `seed_from_u64(seed)` (a bias below 2⁻⁴⁰ for corpus sizes). Written out instead of
/// `rand`'s `shuffle` so the split does not change with that crate's version.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        p.swap(i, j);
    }
    p
}

/// What becomes of a word outside the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Oov {
    /// Dropped from the sequence (Keras' `Tokenizer` without an `oov_token`, the reference).
    Drop,
    /// Kept as [`UNKNOWN`].
    Unknown,
}

/// Which end of a sequence padding goes to, or truncation takes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The front (Keras' `pad_sequences` default for both: short sequences get leading padding,
    /// long ones keep their last tokens).
    Pre,
    /// The back.
    Post,
}

/// The `N` most frequent words of the training texts, by total count (as Keras'
/// `Tokenizer.word_counts`), ties broken by the words' order (Unicode code points; Keras breaks
/// them by first occurrence). Ids: 0 is [`PAD`], 1 is [`UNKNOWN`], the words follow from 2 in
/// frequency order, so an embedding matrix has [`Vocabulary::rows`] = N + 2 rows. (Keras' own
/// `num_words = N` keeps only N − 1 words, its index 0 being reserved.)
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    words: Vec<String>,
    index: HashMap<String, usize>,
}

impl Vocabulary {
    /// The `max_words` most frequent tokens of `texts` (tokenised by [`tokenize`]).
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>, max_words: usize) -> Self {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for text in texts {
            for token in tokenize(text) {
                *counts.entry(token).or_default() += 1;
            }
        }
        let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
        ranked.sort_unstable_by(|(a, x), (b, y)| y.cmp(x).then_with(|| a.cmp(b)));
        ranked.truncate(max_words);
        let words: Vec<String> = ranked.into_iter().map(|(w, _)| w).collect();
        let index = words.iter().enumerate().map(|(i, w)| (w.clone(), i + 2)).collect();
        Self { words, index }
    }

    /// A vocabulary of `words` in id order (word `i` has id `i + 2`): a trained run's, read back.
    pub fn from_words(words: Vec<String>) -> Self {
        let index = words.iter().enumerate().map(|(i, w)| (w.clone(), i + 2)).collect();
        Self { words, index }
    }

    /// The words, most frequent first (word `i` has id `i + 2`).
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Embedding rows: the words plus padding and unknown.
    pub fn rows(&self) -> usize {
        self.words.len() + 2
    }

    pub fn id(&self, word: &str) -> Option<i64> {
        self.index.get(word).map(|&i| i as i64)
    }

    /// Word → row, for [`crate::glove::read`] with `rows = self.rows()`.
    pub fn index(&self) -> &HashMap<String, usize> {
        &self.index
    }

    /// The ids of `text`'s tokens, out-of-vocabulary words per `oov`.
    pub fn encode(&self, text: &str, oov: Oov) -> Vec<i64> {
        tokenize(text)
            .iter()
            .filter_map(|t| match (self.id(t), oov) {
                (Some(id), _) => Some(id),
                (None, Oov::Unknown) => Some(UNKNOWN),
                (None, Oov::Drop) => None,
            })
            .collect()
    }
}

/// Exactly `len` ids: `ids` truncated at `truncating`'s end or padded with [`PAD`] at
/// `padding`'s end (Keras' `pad_sequences`).
pub fn pad(ids: &[i64], len: usize, padding: Side, truncating: Side) -> Vec<i64> {
    let kept = if ids.len() <= len {
        ids
    } else {
        match truncating {
            Side::Pre => &ids[ids.len() - len..],
            Side::Post => &ids[..len],
        }
    };
    let fill = std::iter::repeat_n(PAD, len - kept.len());
    match padding {
        Side::Pre => fill.chain(kept.iter().copied()).collect(),
        Side::Post => kept.iter().copied().chain(fill).collect(),
    }
}

/// How documents become fixed-length id sequences.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EncodeOptions {
    pub max_len: usize,
    pub oov: Oov,
    pub padding: Side,
    pub truncating: Side,
}

impl Default for EncodeOptions {
    /// The reference: 1,000 ids, out-of-vocabulary words dropped, padding and truncation at the
    /// front.
    fn default() -> Self {
        Self { max_len: 1000, oov: Oov::Drop, padding: Side::Pre, truncating: Side::Pre }
    }
}

impl EncodeOptions {
    pub fn new(max_len: usize) -> Self {
        Self { max_len, ..Self::default() }
    }

    pub fn with_oov(mut self, oov: Oov) -> Self {
        self.oov = oov;
        self
    }

    pub fn with_padding(mut self, padding: Side) -> Self {
        self.padding = padding;
        self
    }

    pub fn with_truncating(mut self, truncating: Side) -> Self {
        self.truncating = truncating;
        self
    }
}

/// Documents as a `[n, max_len]` id matrix, row-major, and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<i64>,
    pub labels: Vec<i64>,
    pub max_len: usize,
}

impl Encoded {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn row(&self, i: usize) -> &[i64] {
        &self.ids[i * self.max_len..(i + 1) * self.max_len]
    }
}

/// Every document encoded ([`Vocabulary::encode`]) and padded ([`pad`]).
pub fn encode(docs: &[Document], vocabulary: &Vocabulary, options: &EncodeOptions) -> Encoded {
    let mut ids = Vec::with_capacity(docs.len() * options.max_len);
    for doc in docs {
        let seq = vocabulary.encode(&doc.text, options.oov);
        ids.extend(pad(&seq, options.max_len, options.padding, options.truncating));
    }
    Encoded { ids, labels: docs.iter().map(|d| d.label as i64).collect(), max_len: options.max_len }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_bytes_are_their_code_points_and_newlines_are_universal() {
        assert_eq!(decode_latin1(b"caf\xe9\r\nx\ry\n"), "caf\u{e9}\nx\ny\n");
    }

    #[test]
    fn the_header_ends_at_the_first_blank_line_unless_that_opens_the_text() {
        assert_eq!(strip_header("From: a\nSubject: b\n\nbody\n\nmore"), "body\n\nmore");
        assert_eq!(strip_header("\n\nbody"), "\n\nbody");
        assert_eq!(strip_header("no blank line"), "no blank line");
        assert_eq!(strip_header("From: a\n\n"), "");
    }

    #[test]
    fn footers_go_from_the_last_separator_line_as_in_scikit_learn() {
        assert_eq!(strip_footer("body\nmore\n--\nJohn\n"), "body\nmore");
        assert_eq!(strip_footer("  body\n\nsig  \n"), "body");
        assert_eq!(strip_footer("no footer here"), "no footer here");
        assert_eq!(strip_footer("\nonly first"), "\nonly first");
        assert_eq!(strip_footer(""), "");
    }

    #[test]
    fn quoted_lines_go_as_in_scikit_learn() {
        let text = "In article <x> bob writes:\n> quoted\n| also\nmine\nhe said: no\n  > indented stays";
        assert_eq!(strip_quotes(text), "mine\n  > indented stays");
    }

    #[test]
    fn tokens_are_lowercase_and_split_at_filters_and_whitespace() {
        let tokens = tokenize("Hello, World! It's a (tiny)\ttest--of e-mail: x@y.COM\u{a0}Ünï\r\n");
        let want = ["hello", "world", "it's", "a", "tiny", "test", "of", "e", "mail", "x", "y", "com", "ünï"];
        assert_eq!(tokens, want);
        assert!(tokenize(" .,;\n").is_empty());
    }

    #[test]
    fn padding_and_truncation_follow_pad_sequences() {
        assert_eq!(pad(&[5, 6], 4, Side::Pre, Side::Pre), [0, 0, 5, 6]);
        assert_eq!(pad(&[5, 6], 4, Side::Post, Side::Pre), [5, 6, 0, 0]);
        assert_eq!(pad(&[1, 2, 3, 4, 5], 3, Side::Pre, Side::Pre), [3, 4, 5]);
        assert_eq!(pad(&[1, 2, 3, 4, 5], 3, Side::Pre, Side::Post), [1, 2, 3]);
        assert_eq!(pad(&[], 3, Side::Pre, Side::Pre), [0, 0, 0]);
    }

    #[test]
    fn the_vocabulary_ranks_by_count_then_word() {
        let v = Vocabulary::build(["b a c b", "c d b"], 3);
        assert_eq!(v.words(), ["b", "c", "a"]);
        assert_eq!((v.id("b"), v.id("a"), v.id("d")), (Some(2), Some(4), None));
        assert_eq!(v.rows(), 5);
        assert_eq!(v.encode("B d a", Oov::Drop), [2, 4]);
        assert_eq!(v.encode("B d a", Oov::Unknown), [2, UNKNOWN, 4]);
    }

    #[test]
    fn permutations_are_fixed_by_the_seed() {
        let p = permutation(100, 7);
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(p, permutation(100, 7));
        assert_ne!(p, permutation(100, 8));
        assert_eq!(permutation(0, 1), Vec::<usize>::new());
    }
}
