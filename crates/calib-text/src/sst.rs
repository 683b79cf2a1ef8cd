//! The Stanford Sentiment Treebank in the Penn Treebank bracket format of
//! `trainDevTestTrees_PTB` (`(3 (2 It) (4 (2 's) …))`: one sentence a line, a fine-grained
//! label 0–4 on every node), the binary task built on it, and the per-level node lists a
//! level-batched Tree-LSTM runs on. The parser is strict (every problem names the file and line)
//! and a parsed tree prints back as the line it came from, so nothing is lost between the file
//! and the model.

use crate::text;
use std::fmt;
use std::path::{Path, PathBuf};

/// The largest fine-grained label (very positive).
pub const MAX_LABEL: u8 = 4;

#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("{path}, line {line}: {problem}")]
    Line { path: PathBuf, line: usize, problem: String },
    /// A tree of a batch given to [`Levels::build`] with an inner node that does not have two
    /// children.
    #[error("tree {tree} of the batch, node {node}: {children} children where a binary tree has 2")]
    NotBinary { tree: usize, node: usize, children: usize },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A syntax error in one tree: the byte column (1-based) where it was found and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syntax {
    pub column: usize,
    pub problem: String,
}

impl fmt::Display for Syntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.problem)
    }
}

/// What a node holds: a word (a leaf) or its children (indices into [`Tree::nodes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Word(String),
    Children(Vec<usize>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The fine-grained sentiment, 0 (very negative) to 4 (very positive).
    pub label: u8,
    pub content: Content,
}

/// A tree as a flat arena in post-order: every node after its children, the root last, leaves
/// in sentence order. Built only by [`parse`], so that order always holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The root's index (the last node).
    pub fn root(&self) -> usize {
        self.nodes.len() - 1
    }

    /// The root's fine-grained label, the sentence's.
    pub fn label(&self) -> u8 {
        self.nodes[self.root()].label
    }

    /// The words at the leaves, in sentence order.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|n| match &n.content {
            Content::Word(w) => Some(w.as_str()),
            Content::Children(_) => None,
        })
    }

    /// Whether every inner node has exactly two children (the first that does not, if any).
    pub fn first_non_binary(&self) -> Option<(usize, usize)> {
        self.nodes.iter().enumerate().find_map(|(i, n)| match &n.content {
            Content::Children(c) if c.len() != 2 => Some((i, c.len())),
            _ => None,
        })
    }

    /// Height of every node: 0 at the leaves, one more than the highest child above them.
    pub fn heights(&self) -> Vec<usize> {
        let mut h = vec![0; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            if let Content::Children(c) = &n.content {
                h[i] = 1 + c.iter().map(|&k| h[k]).max().unwrap_or(0);
            }
        }
        h
    }
}

/// The bracket form with single spaces, `(label word)` at a leaf and `(label child …)` above:
/// the format of the distributed files, so a parsed line prints back as itself.
impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An explicit stack of (node, children written so far), so deep trees cannot overflow.
        let mut stack = vec![(self.root(), 0usize)];
        while let Some((node, next)) = stack.pop() {
            let n = &self.nodes[node];
            match &n.content {
                Content::Word(w) => write!(f, "({} {w})", n.label)?,
                Content::Children(c) => {
                    if next == 0 {
                        write!(f, "({}", n.label)?;
                    }
                    if next == c.len() {
                        f.write_str(")")?;
                    } else {
                        f.write_str(" ")?;
                        stack.push((node, next + 1));
                        stack.push((c[next], 0));
                    }
                }
            }
        }
        Ok(())
    }
}

/// One tree in bracket form: `(label word)` or `(label tree tree …)`, labels 0–4, spaces between
/// items (any run of ASCII whitespace), nothing after the root but whitespace. Parentheses
/// inside words are written `-LRB-`/`-RRB-` in the treebank, so `(` and `)` always bracket.
pub fn parse(line: &str) -> std::result::Result<Tree, Syntax> {
    let bytes = line.as_bytes();
    let err = |at: usize, problem: &str| Syntax { column: at + 1, problem: problem.into() };
    let mut nodes: Vec<Node> = Vec::new();
    // Open nodes: label, where the '(' was, children so far, word if a leaf.
    let mut open: Vec<(u8, usize, Vec<usize>, Option<String>)> = Vec::new();
    let mut i = 0;
    let mut done = false;
    let skip_space = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let token_end = |mut i: usize| {
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'(' && bytes[i] != b')' {
            i += 1;
        }
        i
    };
    i = skip_space(i);
    if i == bytes.len() {
        return Err(err(0, "empty tree (a blank line)"));
    }
    while i < bytes.len() {
        if done && !bytes[i].is_ascii_whitespace() {
            return Err(err(
                i,
                if bytes[i] == b')' {
                    "unbalanced parentheses: ')' after the tree closed"
                } else {
                    "trailing text after the tree's closing parenthesis"
                },
            ));
        }
        match bytes[i] {
            b'(' => {
                if let Some((_, _, _, Some(_))) = open.last() {
                    return Err(err(i, "a subtree after a word (a node holds one word or subtrees)"));
                }
                let start = skip_space(i + 1);
                let end = token_end(start);
                if start == end {
                    return Err(err(start, "a node without a label"));
                }
                let label = &line[start..end];
                if !label.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err(start, &format!("label '{label}' is not an integer")));
                }
                let label = match label.parse::<u8>() {
                    Ok(v) if v <= MAX_LABEL => v,
                    _ => return Err(err(start, &format!("label {label} is out of range (0–{MAX_LABEL})"))),
                };
                open.push((label, i, Vec::new(), None));
                i = end;
            }
            b')' => {
                let Some((label, _, children, word)) = open.pop() else {
                    return Err(err(i, "unbalanced parentheses: ')' closes nothing"));
                };
                let content = match (word, children.is_empty()) {
                    (Some(w), _) => Content::Word(w),
                    (None, false) => Content::Children(children),
                    (None, true) => return Err(err(i, "an empty node (a label without a word or subtrees)")),
                };
                nodes.push(Node { label, content });
                let index = nodes.len() - 1;
                match open.last_mut() {
                    Some(parent) => parent.2.push(index),
                    None => done = true,
                }
                i += 1;
            }
            b if b.is_ascii_whitespace() => i = skip_space(i),
            _ => {
                let end = token_end(i);
                let Some(node) = open.last_mut() else {
                    return Err(err(i, "text outside any parentheses"));
                };
                if node.3.is_some() {
                    return Err(err(i, "a second word in a leaf"));
                }
                if !node.2.is_empty() {
                    return Err(err(i, "a word after subtrees (a node holds one word or subtrees)"));
                }
                node.3 = Some(line[i..end].to_string());
                i = end;
            }
        }
    }
    if let Some((_, at, _, _)) = open.last() {
        return Err(err(*at, &format!("unbalanced parentheses: {} left open at the end of the line", open.len())));
    }
    if !done {
        return Err(err(0, "not a tree (no parentheses)"));
    }
    Ok(Tree { nodes })
}

/// Every line of a tree file (`.gz` decompressed) parsed; a blank line, bytes that are not
/// UTF-8 or a syntax error are errors naming the file, line and column.
pub fn read_trees(path: &Path) -> Result<Vec<Tree>> {
    let mut reader =
        text::open(path).map_err(|e| Error::File { path: path.into(), problem: format!("cannot open: {e}") })?;
    let (mut trees, mut buf, mut line) = (Vec::new(), Vec::new(), 0);
    loop {
        let err = |line: usize, problem: String| Error::Line { path: path.into(), line, problem };
        if !text::next_line(&mut *reader, &mut buf).map_err(|e| err(line + 1, format!("cannot read: {e}")))? {
            break;
        }
        line += 1;
        let s = std::str::from_utf8(&buf).map_err(|e| err(line, format!("not valid UTF-8 ({e})")))?;
        trees.push(parse(s).map_err(|e| err(line, e.to_string()))?);
    }
    if trees.is_empty() {
        return Err(Error::File { path: path.into(), problem: "no trees".into() });
    }
    Ok(trees)
}

/// The binary task's label of a fine-grained one: 0–1 negative (0), 3–4 positive (1), 2
/// (neutral) none.
pub fn binary_label(label: u8) -> Option<u8> {
    match label {
        0 | 1 => Some(0),
        3 | 4 => Some(1),
        _ => None,
    }
}

/// The trees of the binary task: those whose root is not neutral (their inner neutral nodes
/// stay, unlabelled; see [`Labels::Binary`]).
pub fn binary_trees(trees: Vec<Tree>) -> Vec<Tree> {
    trees.into_iter().filter(|t| binary_label(t.label()).is_some()).collect()
}

/// Which labels [`Levels::build`] gives the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labels {
    /// The five classes, every node labelled.
    Fine,
    /// [`binary_label`]; neutral nodes are masked out (they carry no loss).
    Binary,
}

/// Nodes of one height across a batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Level {
    /// Batch node indices (see [`Levels`]).
    pub nodes: Vec<i64>,
    /// Their left and right children's batch indices (empty at the leaf level).
    pub left: Vec<i64>,
    pub right: Vec<i64>,
}

/// A batch of binary trees laid out for a level-batched Tree-LSTM: the trees' nodes numbered
/// one after the other (tree `t`'s node `k` is `offsets[t] + k`), grouped by height so each
/// level needs only states computed at the levels below it. Level 0 holds every leaf, with
/// `words` beside it; level `h` every inner node of height `h` with its two children. Labels and
/// mask are per batch node; evaluation reads the roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Levels {
    pub levels: Vec<Level>,
    /// The leaves' word ids, aligned with `levels[0].nodes`.
    pub words: Vec<i64>,
    /// Per batch node: its label (0 where masked out).
    pub labels: Vec<i64>,
    /// Per batch node: whether it has a label (and so a loss).
    pub mask: Vec<bool>,
    /// Per tree: its root's batch index.
    pub roots: Vec<i64>,
    /// Per tree: its first node's batch index.
    pub offsets: Vec<i64>,
}

impl Levels {
    /// The layout of `trees`, words given ids by `word_id`. Every inner node must have exactly
    /// two children ([`Error::NotBinary`] names the first that does not).
    pub fn build(trees: &[&Tree], labels: Labels, mut word_id: impl FnMut(&str) -> i64) -> Result<Self> {
        let total: usize = trees.iter().map(|t| t.nodes.len()).sum();
        let mut out = Levels {
            levels: Vec::new(),
            words: Vec::new(),
            labels: Vec::with_capacity(total),
            mask: Vec::with_capacity(total),
            roots: Vec::with_capacity(trees.len()),
            offsets: Vec::with_capacity(trees.len()),
        };
        let mut offset = 0;
        for (t, tree) in trees.iter().enumerate() {
            if let Some((node, children)) = tree.first_non_binary() {
                return Err(Error::NotBinary { tree: t, node, children });
            }
            let heights = tree.heights();
            let base = offset as i64;
            for (k, node) in tree.nodes.iter().enumerate() {
                let h = heights[k];
                if out.levels.len() <= h {
                    out.levels.resize_with(h + 1, Level::default);
                }
                let level = &mut out.levels[h];
                level.nodes.push(base + k as i64);
                match &node.content {
                    Content::Word(w) => out.words.push(word_id(w)),
                    Content::Children(c) => {
                        level.left.push(base + c[0] as i64);
                        level.right.push(base + c[1] as i64);
                    }
                }
                let label = match labels {
                    Labels::Fine => Some(node.label),
                    Labels::Binary => binary_label(node.label),
                };
                out.labels.push(label.map_or(0, i64::from));
                out.mask.push(label.is_some());
            }
            out.offsets.push(base);
            out.roots.push(base + tree.root() as i64);
            offset += tree.nodes.len();
        }
        Ok(out)
    }

    /// Nodes in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(line: &str) -> String {
        parse(line).unwrap_err().to_string()
    }

    #[test]
    fn syntax_errors_say_what_and_where() {
        assert!(problem("").contains("empty tree"));
        assert!(problem("(3 (2 a) (2 b)").contains("unbalanced"));
        assert!(problem("(3 (2 a) (2 b)))").contains("unbalanced"));
        assert!(problem("(x (2 a))").contains("'x' is not an integer"));
        assert!(problem("(-1 (2 a))").contains("not an integer"));
        assert!(problem("(5 (2 a))").contains("out of range"));
        assert!(problem("(99999999999999999999 (2 a))").contains("out of range"));
        assert!(problem("(3 (2 a)) junk").contains("trailing"));
        assert!(problem("(3 (2 a)) (2 b)").contains("trailing"));
        assert!(problem("()").contains("without a label"));
        assert!(problem("(2)").contains("empty node"));
        assert!(problem("(2 a b)").contains("second word"));
        assert!(problem("(2 a (2 b))").contains("after a word"));
        assert!(problem("(2 (2 b) a)").contains("after subtrees"));
        assert!(problem("word").contains("outside"));
        assert_eq!(parse("(3 (2 a) (7 b))").unwrap_err().column, 11);
    }

    #[test]
    fn trees_are_post_order_arenas_that_print_back() {
        let line = "(3 (2 a) (4 (1 b) (2 c)))";
        let t = parse(line).unwrap();
        assert_eq!(t.to_string(), line);
        assert_eq!(t.words().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!((t.root(), t.label()), (4, 3));
        assert_eq!(t.heights(), [0, 0, 0, 1, 2]);
        assert_eq!(t.nodes()[4].content, Content::Children(vec![0, 3]));
        assert_eq!(parse("  (2   x ) ").unwrap().to_string(), "(2 x)");
        let deep = format!("{}(2 w){}", "(1 ".repeat(100_000), ")".repeat(100_000));
        let t = parse(&deep).unwrap();
        assert_eq!(t.to_string(), deep);
        assert_eq!(t.first_non_binary(), Some((1, 1)));
    }
}
