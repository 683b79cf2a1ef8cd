//! Binarised parallel data read through a vocabulary trained on the real Multi30k text: ids equal
//! encoding sentence by sentence, files of different lengths give both counts, empty and
//! over-long lines are handled as documented, and the vocabulary must hold the specials.

use calib_mt::corpus::{read_lines, Empty};
use calib_mt::data::{self, ReadOptions};
use calib_mt::tokenize::{self, Kind, Vocab};
use std::path::{Path, PathBuf};

fn data(rel: &str) -> PathBuf {
    calib_fixtures::data("multi30k").join(rel)
}

fn vocab(dir: &Path) -> Vocab {
    let text: Vec<String> = read_lines(&data("train.en.gz"), Empty::Keep).unwrap().into_iter().take(3000).collect();
    let tok = tokenize::train(&text, 1000, Kind::Bpe, false, "test").unwrap();
    let path = dir.join("tok.json");
    tokenize::save(&tok, &path).unwrap();
    Vocab::load(&path).unwrap()
}

fn read_opts() -> ReadOptions {
    ReadOptions::new(1000)
}

#[test]
fn multi30k_binarised_equals_sentence_by_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let v = vocab(dir.path());
    assert_eq!((v.pad, v.bos, v.eos), (0, 1, 2));
    let p = data::read(&data("train.en.gz"), &data("train.de.gz"), &v, read_opts()).unwrap();
    // More than one chunk of 32,768 pairs would be read for a bigger corpus; all 29,000 here.
    assert_eq!((p.len(), p.read, p.dropped), (29_000, 29_000, 0));
    let en = read_lines(&data("train.en.gz"), Empty::Keep).unwrap();
    for i in [0, 1, 14_321, 28_999] {
        assert_eq!(p.src.get(i), tokenize::encode(v.tokenizer(), &en[i]).unwrap().as_slice(), "pair {i}");
    }
    assert_eq!(p.src.lengths().iter().sum::<usize>(), p.src.tokens());
    let short =
        data::read(&data("train.en.gz"), &data("train.de.gz"), &v, ReadOptions::new(20).with_limit(Some(500))).unwrap();
    assert_eq!(short.read, 500);
    assert!(short.dropped > 0 && short.len() + short.dropped == 500);
    assert!((0..short.len()).all(|i| short.src.get(i).len() <= 20 && short.tgt.get(i).len() <= 20));
    // The length ratio (on sub-word tokens), as Moses' clean-corpus-n.
    let even = data::read(
        &data("train.en.gz"),
        &data("train.de.gz"),
        &v,
        read_opts().with_max_ratio(Some(2.0)).with_limit(Some(500)),
    )
    .unwrap();
    assert!(even.dropped > 0 && even.len() + even.dropped == 500);
    assert!((0..even.len()).all(|i| {
        let (a, b) = (even.src.get(i).len() as f64, even.tgt.get(i).len() as f64);
        a.max(b) <= 2.0 * a.min(b)
    }));
}

#[test]
fn bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let v = vocab(dir.path());
    let (s, t) = (dir.path().join("a.en"), dir.path().join("a.de"));
    std::fs::write(&s, "a dog\na cat\nthree birds\n").unwrap();
    std::fs::write(&t, "ein Hund\n").unwrap();
    let e = data::read(&s, &t, &v, read_opts()).unwrap_err().to_string();
    assert!(e.contains("a.en has 3 lines") && e.contains("a.de has 1"), "{e}");
    std::fs::write(&t, "ein Hund\n \neine Katze\n").unwrap();
    let e = data::read(&s, &t, &v, read_opts()).unwrap_err().to_string();
    assert!(e.contains("a.de, line 2: empty line"), "{e}");
    std::fs::write(&t, "ein Hund\neine Katze\ndrei Vögel\n").unwrap();
    let e = data::read(&s, &t, &v, ReadOptions::new(1)).unwrap_err().to_string();
    assert!(e.contains("no sentence pairs are left") && e.contains("3 longer than 1 tokens"), "{e}");
    // A vocabulary without the specials translation needs.
    let plain = tokenize::train(&["ein Hund".to_string()], 30, Kind::Bpe, false, "test").unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&plain.to_string(false).unwrap()).unwrap();
    json["added_tokens"] = serde_json::json!([]);
    json["model"]["vocab"].as_object_mut().unwrap().remove("<s>");
    let path = dir.path().join("nospecials.json");
    std::fs::write(&path, json.to_string()).unwrap();
    let e = Vocab::load(&path).err().expect("no <s>").to_string();
    assert!(e.contains("nospecials.json") && e.contains("no <s> token"), "{e}");
}

/// A rank's evaluation batches of the real validation pairs are every world-th of the whole
/// split's token batches, the last one included.
#[cfg(feature = "model")]
#[test]
fn evaluation_shards_take_every_world_th_token_batch() {
    use calib_mt::decode::Specials;
    use calib_mt::task::TranslationData;
    use calib_train::task::{Data, Shard};
    use std::collections::HashMap;

    let dir = tempfile::tempdir().unwrap();
    let v = vocab(dir.path());
    let read = |s: &str, t: &str| data::read(&data(s), &data(t), &v, read_opts().with_limit(Some(300))).unwrap();
    let splits = HashMap::from([("val".to_string(), read("val.en.gz", "val.de.gz"))]);
    let d = TranslationData::new(read("train.en.gz", "train.de.gz"), splits, 512, Specials::from(&v)).unwrap();
    let targets = |shard| -> Vec<Vec<i64>> {
        d.eval_batches("val", shard).unwrap().map(|b| Vec::<i64>::try_from(b.targets).unwrap()).collect()
    };
    let whole = targets(Shard::WHOLE);
    assert!(whole.len() >= 7, "{} batches", whole.len());
    for rank in 0..3 {
        let want: Vec<Vec<i64>> = whole.iter().skip(rank).step_by(3).cloned().collect();
        assert_eq!(targets(Shard::new(rank, 3).unwrap()), want, "rank {rank}");
    }
}
