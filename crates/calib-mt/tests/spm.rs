//! sentencepiece models (unigram and BPE, trained by the sentencepiece library on real Multi30k
//! text, `benches/make_spm_fixture.py`) loaded without the library: the ids equal the library's
//! on 300 real validation sentences and on tricky text (NFKC, repeated spaces, unknown scripts).

use calib_mt::tokenize::{self, Vocab};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

#[test]
fn ids_equal_sentencepiece() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("spm-expected.json")).unwrap()).unwrap();
    let sentences: Vec<String> =
        expected["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    for (name, case) in expected["models"].as_object().unwrap() {
        let tok = tokenize::load(&fixture(name)).unwrap();
        let size = case["size"].as_u64().unwrap() as usize;
        // sentencepiece has no padding piece by default: <pad> comes after its pieces.
        assert_eq!(tok.get_vocab_size(true), size + 1, "{name}");
        let v = Vocab::load(&fixture(name)).unwrap();
        assert_eq!(
            (v.pad as usize, v.bos as u64, v.eos as u64),
            (size, case["bos"].as_u64().unwrap(), case["eos"].as_u64().unwrap())
        );
        let mut mismatches = Vec::new();
        for (i, s) in sentences.iter().enumerate() {
            let want: Vec<u32> =
                case["ids"][i].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
            let got = tokenize::encode(&tok, s).unwrap();
            if got != want {
                mismatches.push(format!("{s:?}: {got:?} vs {want:?}"));
            } else if !want.contains(&0) {
                // Decoding restores sentencepiece's decoding (without unknown pieces).
                assert_eq!(tokenize::decode(&tok, &got).unwrap(), case["decoded"][i].as_str().unwrap(), "{name}");
            }
        }
        assert!(
            mismatches.is_empty(),
            "{name}: {} of {} differ:\n{}",
            mismatches.len(),
            sentences.len(),
            mismatches.join("\n")
        );
    }
}

#[test]
fn not_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.model");
    std::fs::write(&path, b"\x0a\xff\xff\xff").unwrap();
    let e = tokenize::load(&path).unwrap_err().to_string();
    assert!(e.contains("broken.model") && e.contains("not a sentencepiece model"), "{e}");
}
