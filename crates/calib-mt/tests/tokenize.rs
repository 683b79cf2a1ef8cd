//! Joint vocabularies trained on the real Multi30k training text: decoding restores the
//! validation sentences, saved and loaded files give the same ids, and bad settings are errors.

use calib_mt::corpus::{read_lines, Empty};
use calib_mt::tokenize::{self, Kind, SPECIALS};
use std::path::PathBuf;

fn data(rel: &str) -> PathBuf {
    calib_fixtures::data("multi30k").join(rel)
}

#[test]
fn bpe_and_unigram_round_trip_multi30k() {
    let mut text = read_lines(&data("train.en.gz"), Empty::Keep).unwrap();
    text.extend(read_lines(&data("train.de.gz"), Empty::Keep).unwrap());
    let val: Vec<String> = read_lines(&data("val.de.gz"), Empty::Keep).unwrap().into_iter().take(200).collect();
    let dir = tempfile::tempdir().unwrap();
    for kind in [Kind::Bpe, Kind::Unigram] {
        let tok = tokenize::train(&text, 4000, kind, false, "test").unwrap();
        assert_eq!(tok.get_vocab_size(true), 4000, "{kind:?}");
        for (id, s) in SPECIALS.iter().enumerate() {
            assert_eq!(tok.token_to_id(s), Some(id as u32), "{kind:?} {s}");
        }
        let path = dir.path().join(format!("{kind:?}.json"));
        tokenize::save(&tok, &path).unwrap();
        let back = tokenize::load(&path).unwrap();
        let mut tokens = 0;
        for s in &val {
            let ids = tokenize::encode(&tok, s).unwrap();
            assert_eq!(tokenize::encode(&back, s).unwrap(), ids);
            assert_eq!(tokenize::decode(&back, &ids).unwrap(), *s, "{kind:?}");
            tokens += ids.len();
        }
        // Sub-words: more tokens than words, far fewer than characters.
        let words: usize = val.iter().map(|s| s.split_whitespace().count()).sum();
        assert!(tokens > words && tokens < 2 * words, "{kind:?}: {tokens} tokens for {words} words");
    }
}

#[test]
fn bad_settings() {
    let text = vec!["ein Hund".to_string()];
    assert!("wordpiece".parse::<Kind>().is_err());
    assert!(tokenize::train(&text, 3, Kind::Bpe, false, "test").unwrap_err().to_string().contains("too small"));
    let empty = tokenize::train(&["".to_string(), " ".to_string()], 100, Kind::Bpe, false, "a.en, a.de").unwrap_err();
    assert_eq!(empty.to_string(), "a.en, a.de: no training text (the input is empty or holds only blank lines)");
    let e = tokenize::load(&PathBuf::from("/no/tok.json")).unwrap_err().to_string();
    assert!(e.contains("/no/tok.json"), "{e}");
}
