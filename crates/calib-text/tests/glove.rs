//! The GloVe reader on the shared 50-d subset (59,237 real vectors) and on broken copies.

use calib_text::glove::{self, Embeddings, Error, GloveOptions, Missing};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

fn subset() -> PathBuf {
    calib_fixtures::data("glove/glove.6B.50d.subset.txt")
}

/// The file's rows parsed the naive way: word → values.
fn naive(path: &Path) -> Vec<(String, Vec<f32>)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut f = l.split(' ');
            let word = f.next().unwrap().to_string();
            (word, f.map(|v| v.parse().unwrap()).collect())
        })
        .collect()
}

fn vocab(words: &[&str]) -> HashMap<String, usize> {
    words.iter().enumerate().map(|(i, w)| (w.to_string(), i)).collect()
}

const UNSEEN: &str = "zzqx-not-a-glove-word";

#[test]
fn known_words_get_their_file_vectors_and_unknown_words_count_against_coverage() {
    let rows = naive(&subset());
    assert_eq!(rows.len(), 59_237);
    let want = |w: &str| rows.iter().find(|(x, _)| x == w).unwrap().1.clone();
    let words = ["the", ",", "king", UNSEEN, "queen"];
    let e = glove::read(&subset(), &vocab(&words), words.len(), &GloveOptions::default()).unwrap();
    assert_eq!((e.dim, e.rows, e.vectors.len()), (50, 5, 250));
    assert_eq!(e.row(0)[..3], [0.418, 0.24968, -0.41242]);
    for (i, w) in words.iter().enumerate().filter(|(_, w)| **w != UNSEEN) {
        assert_eq!(e.row(i), want(w), "{w}");
    }
    assert_eq!((e.found, e.vocabulary, e.missing.clone()), (4, 5, vec![3]));
    assert_eq!(e.coverage(), 0.8);
    assert!(e.row(3).iter().all(|&v| v == 0.0));
}

#[test]
fn rows_no_word_maps_to_stay_zero() {
    // Padding and unknown at rows 0 and 1, as a text vocabulary lays them out.
    let v: HashMap<String, usize> = [("the".to_string(), 2), (UNSEEN.to_string(), 3)].into();
    let opts = GloveOptions::new(Missing::Uniform { scale: 0.25, seed: 1 });
    let e = glove::read(&subset(), &v, 4, &opts).unwrap();
    assert!(e.vectors[..100].iter().all(|&v| v == 0.0));
    assert_eq!((e.found, e.vocabulary, e.missing.clone()), (1, 2, vec![3]));
    assert!(e.row(3).iter().all(|&v| v != 0.0));
}

#[test]
fn the_random_fill_is_seeded_and_in_range() {
    let words = ["the", UNSEEN, "of", "qqqq-also-unseen"];
    let read = |seed| {
        let opts = GloveOptions::default().with_missing(Missing::Uniform { scale: 0.1, seed });
        glove::read(&subset(), &vocab(&words), 4, &opts).unwrap()
    };
    let (a, b, c) = (read(7), read(7), read(8));
    assert_eq!(a, b);
    assert_ne!(a.row(1), c.row(1));
    assert_eq!(a.row(0), c.row(0));
    assert_eq!(a.missing, [1, 3]);
    let filled: Vec<f32> = a.row(1).iter().chain(a.row(3)).copied().collect();
    assert!(filled.iter().all(|v| (-0.1..0.1).contains(v)), "{filled:?}");
    assert_ne!(a.row(1), a.row(3));
    let mean = filled.iter().sum::<f32>() / filled.len() as f32;
    assert!(mean.abs() < 0.03, "mean {mean}");
}

#[test]
fn a_gzip_copy_reads_the_same_as_the_plain_file_and_every_word_is_found() {
    let words: Vec<String> = naive(&subset()).into_iter().map(|(w, _)| w).collect();
    let v: HashMap<String, usize> = words.iter().enumerate().map(|(i, w)| (w.clone(), i)).collect();
    assert_eq!(v.len(), 59_237, "the subset has no duplicate words");
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("glove.txt.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&std::fs::read(subset()).unwrap()).unwrap();
    enc.finish().unwrap();
    let plain: Embeddings = glove::read(&subset(), &v, v.len(), &GloveOptions::default()).unwrap();
    let packed = glove::read(&gz, &v, v.len(), &GloveOptions::default()).unwrap();
    assert_eq!(plain, packed);
    assert_eq!((plain.found, plain.coverage()), (59_237, 1.0));
}

fn broken(body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.txt");
    std::fs::write(&path, body).unwrap();
    (dir, path)
}

fn error_of(body: &str) -> (Error, String) {
    let (_dir, path) = broken(body);
    let e = glove::read(&path, &vocab(&["a"]), 1, &GloveOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
    (e, msg)
}

#[test]
fn bad_rows_are_errors_naming_the_file_and_line() {
    let (e, msg) = error_of("a 1 2 3\nb 4 5 6\nc 7 8\nd 1 2 3\n");
    assert!(matches!(e, Error::Line { line: 3, .. }), "{e:?}");
    assert!(msg.contains("line 3") && msg.contains("2 values where line 1 has 3"), "{msg}");
    let (e, msg) = error_of("a 1 2 3\nb 4 x 6\n");
    assert!(matches!(e, Error::Line { line: 2, .. }) && msg.contains("'x', not a finite number"), "{msg}");
    let (e, msg) = error_of("a 1 2 3\nb 4 5 6 7\n");
    assert!(matches!(e, Error::Line { line: 2, .. }) && msg.contains("4 values"), "{msg}");
    let (_, msg) = error_of("a 1 2\n\nb 1 2\n");
    assert!(msg.contains("line 2: empty line"), "{msg}");
    let (_, msg) = error_of("400000 50\na 1 2\n");
    assert!(msg.contains("line 1") && msg.contains("word2vec"), "{msg}");
    let (_, msg) = error_of("a 1 inf\n");
    assert!(msg.contains("line 1") && msg.contains("'inf'"), "{msg}");
    let (_, msg) = error_of("");
    assert!(msg.contains("no vectors"), "{msg}");
}

#[test]
fn the_vocabulary_must_fit_the_matrix() {
    let e = glove::read(&subset(), &vocab(&["the", "of"]), 1, &GloveOptions::default()).unwrap_err();
    assert!(e.to_string().contains("'of' has row 1 but the matrix has 1 rows"), "{e}");
    let shared: HashMap<String, usize> = [("the".into(), 0), ("of".into(), 0)].into();
    let e = glove::read(&subset(), &shared, 1, &GloveOptions::default()).unwrap_err();
    assert_eq!(e, Error::Vocabulary("'of' and 'the' share row 0".into()));
    let e = glove::read(Path::new("/nonexistent/glove.txt"), &vocab(&[]), 0, &GloveOptions::default()).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/glove.txt: cannot open"), "{e}");
}
