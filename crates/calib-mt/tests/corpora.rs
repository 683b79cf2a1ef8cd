//! Corpus readers on the real Multi30k and newstest2014 files.

use calib_mt::corpus::*;
use std::path::PathBuf;

fn data(rel: &str) -> PathBuf {
    calib_fixtures::data(rel)
}

#[test]
fn multi30k_gz_parallel_text() {
    let pairs = read_parallel(&data("multi30k/train.en.gz"), &data("multi30k/train.de.gz"), Empty::Reject).unwrap();
    assert_eq!(pairs.len(), 29_000);
    assert!(pairs[0].0.starts_with("Two young, White males are outside"), "{}", pairs[0].0);
    let val = read_parallel(&data("multi30k/val.en.gz"), &data("multi30k/val.de.gz"), Empty::Reject).unwrap();
    assert_eq!(val.len(), 1_014);
    let f = LengthFilter { min_tokens: 1, max_tokens: 20, max_ratio: 1.5 };
    let (kept, dropped) = f.apply(pairs);
    assert_eq!(kept.len() + dropped, 29_000);
    assert!(dropped > 0 && kept.iter().all(|(s, t)| f.keeps(s, t)));
}

#[test]
fn newstest2014_sgml_equals_plain_text() {
    for (sgm, txt) in [
        ("wmt14/sgm/newstest2014-deen-src.en.sgm", "wmt14/newstest2014.en"),
        ("wmt14/sgm/newstest2014-deen-ref.de.sgm", "wmt14/newstest2014.de"),
    ] {
        let a = read_sgml(&data(sgm)).unwrap();
        let b = read_lines(&data(txt), Empty::Reject).unwrap();
        assert_eq!(a.len(), 3003);
        assert_eq!(a, b, "{sgm} vs {txt}");
    }
}

#[test]
fn bad_input_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (s, t) = (dir.path().join("a.en"), dir.path().join("a.de"));
    std::fs::write(&s, "one\ntwo\nthree\n").unwrap();
    std::fs::write(&t, "eins\nzwei\n").unwrap();
    let e = read_parallel(&s, &t, Empty::Reject).unwrap_err().to_string();
    assert!(e.contains("a.en has 3 lines") && e.contains("a.de has 2"), "{e}");
    std::fs::write(&t, "eins\n\ndrei\n").unwrap();
    let e = read_parallel(&s, &t, Empty::Reject).unwrap_err().to_string();
    assert!(e.contains("a.de, line 2: empty line"), "{e}");
    std::fs::write(&t, b"eins\nzw\xffei\ndrei\n").unwrap();
    let e = read_lines(&t, Empty::Keep).unwrap_err().to_string();
    assert!(e.contains("a.de, line 2") && e.contains("UTF-8"), "{e}");
    let e = read_lines(&dir.path().join("missing.en"), Empty::Keep).unwrap_err().to_string();
    assert!(e.contains("missing.en") && e.contains("cannot open"), "{e}");
    std::fs::write(&t, "<doc>\n<seg id=\"1\">Hallo\n</doc>\n").unwrap();
    let e = read_sgml(&t).unwrap_err().to_string();
    assert!(e.contains("line 2") && e.contains("</seg>"), "{e}");
}
