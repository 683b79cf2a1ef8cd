//! The SST reader on the three real tree files and on broken copies; the Tree-LSTM level layout
//! on a hand-written batch.

use calib_text::sst::{self, binary_trees, read_trees, Error, Labels, Level, Levels, Tree};
use std::path::PathBuf;

fn file(split: &str) -> PathBuf {
    calib_fixtures::data(&format!("sst/trees/{split}.txt"))
}

fn histogram(trees: &[Tree]) -> [usize; 5] {
    let mut h = [0; 5];
    for t in trees {
        h[t.label() as usize] += 1;
    }
    h
}

#[test]
fn the_splits_have_the_published_sizes_all_and_binary() {
    let sizes: Vec<(usize, usize)> = ["train", "dev", "test"]
        .iter()
        .map(|s| {
            let trees = read_trees(&file(s)).unwrap();
            let all = trees.len();
            (all, binary_trees(trees).len())
        })
        .collect();
    assert_eq!(sizes, [(8_544, 6_920), (1_101, 872), (2_210, 1_821)]);
    assert_eq!(sizes.iter().map(|s| s.0).sum::<usize>(), 11_855);
    assert_eq!(histogram(&read_trees(&file("train")).unwrap()), [1092, 2218, 1624, 2322, 1288]);
    assert_eq!(histogram(&read_trees(&file("test")).unwrap()), [279, 633, 389, 510, 399]);
}

#[test]
fn every_real_line_prints_back_exactly() {
    for split in ["train", "dev", "test"] {
        let text = std::fs::read_to_string(file(split)).unwrap();
        let trees = read_trees(&file(split)).unwrap();
        assert_eq!(text.lines().count(), trees.len());
        for (i, (line, tree)) in text.lines().zip(&trees).enumerate() {
            assert_eq!(tree.to_string(), line, "{split} line {}", i + 1);
        }
    }
}

#[test]
fn every_real_tree_is_binary_and_lays_out_in_levels() {
    let first = read_trees(&file("train")).unwrap();
    let words: Vec<&str> = first[0].words().collect();
    assert_eq!(words[..5], ["The", "Rock", "is", "destined", "to"]);
    assert_eq!(first[0].label(), 3);
    for split in ["train", "dev", "test"] {
        let trees = read_trees(&file(split)).unwrap();
        for (i, t) in trees.iter().enumerate() {
            assert_eq!(t.first_non_binary(), None, "{split} line {}", i + 1);
        }
        let batch: Vec<&Tree> = trees.iter().collect();
        let levels = Levels::build(&batch, Labels::Binary, |w| w.len() as i64).unwrap();
        let nodes: usize = trees.iter().map(|t| t.nodes().len()).sum();
        let leaves: usize = trees.iter().map(|t| t.words().count()).sum();
        assert_eq!(levels.len(), nodes);
        assert_eq!(levels.words.len(), leaves);
        // A binary tree with n leaves has n - 1 inner nodes.
        assert_eq!(nodes, 2 * leaves - trees.len());
        let listed: usize = levels.levels.iter().map(|l| l.nodes.len()).sum();
        assert_eq!(listed, nodes);
        // Children are always computed at a lower level than their parent.
        let mut level_of = vec![usize::MAX; nodes];
        for (h, l) in levels.levels.iter().enumerate() {
            for &n in &l.nodes {
                level_of[n as usize] = h;
            }
            for (&a, &b) in l.left.iter().zip(&l.right) {
                assert!(level_of[a as usize] < h && level_of[b as usize] < h);
            }
        }
    }
}

#[test]
fn levels_of_a_small_batch() {
    let a = sst::parse("(3 (2 a) (4 (1 b) (2 c)))").unwrap();
    let b = sst::parse("(1 (0 x) (3 y))").unwrap();
    let ids = |w: &str| (w.as_bytes()[0] - b'a') as i64;
    let lv = Levels::build(&[&a, &b], Labels::Binary, ids).unwrap();
    let level = |nodes: &[i64], left: &[i64], right: &[i64]| Level {
        nodes: nodes.to_vec(),
        left: left.to_vec(),
        right: right.to_vec(),
    };
    assert_eq!(
        lv.levels,
        [level(&[0, 1, 2, 5, 6], &[], &[]), level(&[3, 7], &[1, 5], &[2, 6]), level(&[4], &[0], &[3])]
    );
    assert_eq!(lv.words, [0, 1, 2, 23, 24]);
    assert_eq!(lv.labels, [0, 0, 0, 1, 1, 0, 1, 0]);
    assert_eq!(lv.mask, [false, true, false, true, true, true, true, true]);
    assert_eq!((lv.roots.clone(), lv.offsets.clone()), (vec![4, 7], vec![0, 5]));
    let fine = Levels::build(&[&a, &b], Labels::Fine, ids).unwrap();
    assert_eq!(fine.labels, [2, 1, 2, 4, 3, 0, 3, 1]);
    assert!(fine.mask.iter().all(|&m| m));
    assert_eq!(fine.levels, lv.levels);
}

#[test]
fn a_batch_with_a_non_binary_node_is_an_error() {
    let ok = sst::parse("(2 (2 a) (2 b))").unwrap();
    let unary = sst::parse("(2 (2 a) (3 (1 b)))").unwrap();
    let wide = sst::parse("(2 (2 a) (2 b) (2 c))").unwrap();
    let e = Levels::build(&[&ok, &unary], Labels::Fine, |_| 0).unwrap_err();
    assert_eq!(e, Error::NotBinary { tree: 1, node: 2, children: 1 });
    let e = Levels::build(&[&wide], Labels::Fine, |_| 0).unwrap_err();
    assert_eq!(e.to_string(), "tree 0 of the batch, node 3: 3 children where a binary tree has 2");
}

fn error_of(body: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trees.txt");
    std::fs::write(&path, body).unwrap();
    let msg = read_trees(&path).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{}, line 2: ", path.display())), "{msg}");
    msg
}

#[test]
fn bad_lines_are_errors_naming_the_file_and_line() {
    let good = b"(3 (2 a) (4 b))\n";
    let with = |bad: &[u8]| [&good[..], bad, b"\n", &good[..]].concat();
    assert!(error_of(&with(b"(3 (2 a) (4 b)")).contains("unbalanced"));
    assert!(error_of(&with(b"(3 (2 a) (4 b)))")).contains("unbalanced"));
    assert!(error_of(&with(b"(3 (2 a) (x b))")).contains("column 11: label 'x' is not an integer"));
    assert!(error_of(&with(b"(3 (2 a) (7 b))")).contains("out of range"));
    assert!(error_of(&with(b"")).contains("empty tree"));
    assert!(error_of(&with(b"()")).contains("without a label"));
    assert!(error_of(&with(b"(3 (2 a) (4 b)) x")).contains("trailing"));
    assert!(error_of(&with(b"(3 (2 caf\xe9) (4 b))")).contains("not valid UTF-8"));
    let e = read_trees(&calib_fixtures::data("sst/trees/missing.txt")).unwrap_err();
    assert!(matches!(e, Error::File { .. }) && e.to_string().contains("cannot open"), "{e}");
}

#[test]
fn crlf_line_ends_and_gzip_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let crlf = dir.path().join("crlf.txt");
    std::fs::write(&crlf, "(3 (2 a) (4 b))\r\n(1 (1 c) (2 d))\r\n").unwrap();
    let trees = read_trees(&crlf).unwrap();
    assert_eq!(trees.iter().map(Tree::to_string).collect::<Vec<_>>(), ["(3 (2 a) (4 b))", "(1 (1 c) (2 d))"]);
    let gz = dir.path().join("dev.txt.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut std::fs::File::open(file("dev")).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    assert_eq!(read_trees(&gz).unwrap(), read_trees(&file("dev")).unwrap());
}
