//! The 20 Newsgroups reader on the shared `bydate` corpus (read once for all the tests here)
//! and on a small hand-made corpus.

use calib_text::glove::{self, GloveOptions};
use calib_text::newsgroups::{
    self, encode, permutation, tokenize, Document, EncodeOptions, Newsgroups, Oov, ReadOptions, Vocabulary, PAD,
    TEST_DIR, TRAIN_DIR, UNKNOWN, VALIDATION_SEED,
};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn root() -> PathBuf {
    calib_fixtures::data("20ng")
}

fn corpus() -> &'static Newsgroups {
    static CORPUS: OnceLock<Newsgroups> = OnceLock::new();
    CORPUS.get_or_init(|| Newsgroups::read(&root(), &ReadOptions::default()).unwrap())
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

/// (label, numeric id) of a document, its reading-order key.
fn key(d: &Document) -> (usize, u64) {
    (d.label, d.path.file_name().unwrap().to_str().unwrap().parse().unwrap())
}

#[test]
fn the_bydate_split_has_its_counts_and_twenty_sorted_groups() {
    let c = corpus();
    assert_eq!((c.train.len() + c.validation.len(), c.test.len()), (11_314, 7_532));
    assert_eq!((c.train.len(), c.validation.len()), (10_414, 900));
    assert_eq!(c.groups, listing(&root().join(TRAIN_DIR)));
    assert_eq!(c.groups.len(), 20);
    assert_eq!(c.groups[0], "alt.atheism");
    assert_eq!(c.groups[19], "talk.religion.misc");
    for (label, group) in c.groups.iter().enumerate() {
        let count = |docs: &[Document]| docs.iter().filter(|d| d.label == label).count();
        let train = listing(&root().join(TRAIN_DIR).join(group)).len();
        let test = listing(&root().join(TEST_DIR).join(group)).len();
        assert_eq!(count(&c.train) + count(&c.validation), train, "{group}");
        assert_eq!(count(&c.test), test, "{group}");
        if group == "alt.atheism" {
            assert_eq!((train, test), (480, 319));
        }
        if group == "talk.religion.misc" {
            assert_eq!((train, test), (377, 251));
        }
    }
}

#[test]
fn headers_are_stripped_up_to_the_first_blank_line() {
    let path = root().join(TRAIN_DIR).join("alt.atheism/49960");
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.iter().any(|&b| b >= 0x80), "this post has Latin-1 bytes");
    let raw: String = bytes.iter().map(|&b| char::from(b)).collect();
    assert!(raw.starts_with("From: mathew <mathew@mantis.co.uk>\nSubject: Alt.Atheism FAQ: Atheist Resources\n"));
    let body = &raw[raw.find("\n\n").unwrap() + 2..];
    assert!(body.starts_with("Archive-name: atheism/resources\n"));
    let doc = corpus().train.iter().chain(&corpus().validation).find(|d| d.path == path).unwrap();
    assert_eq!(doc.text, body);
    assert_eq!(doc.label, 0);
    assert_eq!(newsgroups::read_document(&path, &ReadOptions::default()).unwrap(), body);
}

#[test]
fn footers_and_quotes_can_go_too() {
    let path = root().join(TRAIN_DIR).join("rec.autos/101551");
    let plain = newsgroups::read_document(&path, &ReadOptions::default()).unwrap();
    let opts = ReadOptions::default().with_footers(true).with_quotes(true);
    let both = newsgroups::read_document(&path, &opts).unwrap();
    assert_eq!(both, newsgroups::strip_quotes(newsgroups::strip_footer(&plain)));
    assert!(both.len() <= plain.len());
    let quoted = corpus().train.iter().filter(|d| d.text.lines().any(|l| l.starts_with('>'))).count();
    assert!(quoted > 1000, "{quoted} training documents quote");
}

#[test]
fn the_validation_hold_out_is_a_fixed_seeded_permutation() {
    let c = corpus();
    let mut all: Vec<&Document> = c.train.iter().chain(&c.validation).collect();
    all.sort_by_key(|d| key(d));
    let perm = permutation(all.len(), VALIDATION_SEED);
    assert_eq!(perm, permutation(11_314, VALIDATION_SEED));
    let mut held: Vec<&Document> = perm[..900].iter().map(|&i| all[i]).collect();
    held.sort_by_key(|d| key(d));
    assert_eq!(held, c.validation.iter().collect::<Vec<_>>());
    // Both parts stay in reading order, and every class is in the validation set.
    assert!(c.train.windows(2).all(|w| key(&w[0]) < key(&w[1])));
    assert!(c.validation.windows(2).all(|w| key(&w[0]) < key(&w[1])));
    assert!((0..20).all(|l| c.validation.iter().any(|d| d.label == l)));
}

#[test]
fn empty_documents_are_kept_and_encode_as_padding() {
    let c = corpus();
    let empty = |docs: &[Document]| docs.iter().filter(|d| tokenize(&d.text).is_empty()).count();
    assert_eq!(empty(&c.train) + empty(&c.validation), 19);
    assert_eq!(empty(&c.test), 16);
    let blank = c.test.iter().find(|d| d.path.ends_with("misc.forsale/76828")).unwrap();
    assert!(blank.text.trim().is_empty());
    let vocab = Vocabulary::build(["some words"], 10);
    let enc = encode(std::slice::from_ref(blank), &vocab, &EncodeOptions::new(5).with_oov(Oov::Unknown));
    assert_eq!(enc.ids, [PAD; 5]);
}

#[test]
fn the_training_vocabulary_encodes_every_split() {
    let c = corpus();
    let vocab = Vocabulary::build(c.train.iter().map(|d| d.text.as_str()), 20_000);
    assert_eq!((vocab.words().len(), vocab.rows()), (20_000, 20_002));
    // "'ax" is the famous artefact of uuencoded binaries in comp.os.ms-windows.misc.
    assert_eq!(vocab.words()[..5], ["the", "to", "'ax", "of", "a"]);
    assert_eq!(vocab.id("the"), Some(2));
    let opts = EncodeOptions::default();
    assert_eq!((opts.max_len, opts.oov), (1000, Oov::Drop));
    let train = encode(&c.train, &vocab, &opts);
    assert_eq!((train.len(), train.ids.len()), (10_414, 10_414_000));
    assert!(train.ids.iter().all(|&i| i != UNKNOWN && (0..20_002).contains(&i)));
    assert_eq!(train.labels[0], 0);
    // Pre-padding: a short document's ids end its row; a long one keeps its last 1,000.
    let short = (0..train.len()).find(|&i| train.row(i)[0] == PAD && train.row(i)[999] != PAD).unwrap();
    let ids = vocab.encode(&c.train[short].text, Oov::Drop);
    assert_eq!(train.row(short)[1000 - ids.len()..], ids);
    let long = c.train.iter().position(|d| vocab.encode(&d.text, Oov::Drop).len() > 1000).unwrap();
    let ids = vocab.encode(&c.train[long].text, Oov::Drop);
    assert_eq!(train.row(long), &ids[ids.len() - 1000..]);
    // The GloVe subset was cut to this corpus' frequent words, so it covers most of them.
    let e = glove::read(
        &calib_fixtures::data("glove/glove.6B.50d.subset.txt"),
        vocab.index(),
        vocab.rows(),
        &GloveOptions::default(),
    )
    .unwrap();
    assert_eq!((e.found, e.vocabulary), (17_550, 20_000));
}

#[test]
fn a_known_sentence_tokenises_as_keras_does() {
    let text = "Re: Can't boot DOS 6.0 -- HELP!!! (see <abc@xyz.edu>)\n\tThanks, Bob.";
    let want = ["re", "can't", "boot", "dos", "6", "0", "help", "see", "abc", "xyz", "edu", "thanks", "bob"];
    assert_eq!(tokenize(text), want);
}

/// A two-group corpus in a temporary folder, one document headers-only.
fn tiny() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (split, group, id, body) in [
        (TRAIN_DIR, "b.two", "10", &b"From: x\n\nsecond group text\n"[..]),
        (TRAIN_DIR, "a.one", "9", b"From: x\nSubject: y\n\nnine caf\xe9\n"),
        (TRAIN_DIR, "a.one", "10", b"From: x\nSubject: only headers\n\n"),
        (TRAIN_DIR, "a.one", "README", b"not a document"),
        (TRAIN_DIR, "a.one", "11", b"From: x\r\n\r\nten"),
        (TEST_DIR, "a.one", "1", b"From: x\n\ntest"),
        (TEST_DIR, "b.two", "2", b"From: x\n\ntest two"),
    ] {
        let d = dir.path().join(split).join(group);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(id), body).unwrap();
    }
    dir
}

#[test]
fn a_small_corpus_reads_in_order_with_its_empty_document() {
    let dir = tiny();
    let c = Newsgroups::read(dir.path(), &ReadOptions::default().with_validation(1, 3)).unwrap();
    assert_eq!(c.groups, ["a.one", "b.two"]);
    let mut all: Vec<&Document> = c.train.iter().chain(&c.validation).collect();
    all.sort_by_key(|d| key(d));
    let texts: Vec<&str> = all.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts, ["nine caf\u{e9}\n", "", "ten", "second group text\n"]);
    assert_eq!(c.validation.len(), 1);
    let other = Newsgroups::read(dir.path(), &ReadOptions::default().with_validation(1, 4)).unwrap();
    assert_eq!(Newsgroups::read(dir.path(), &ReadOptions::default().with_validation(1, 3)).unwrap(), c);
    assert_eq!(other.train.len(), 3);
    let e = Newsgroups::read(dir.path(), &ReadOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "900 validation documents asked for, but there are 4 training documents");
    std::fs::create_dir(dir.path().join(TEST_DIR).join("c.three")).unwrap();
    let e = Newsgroups::read(dir.path(), &ReadOptions::default().with_validation(0, 0)).unwrap_err();
    assert!(e.to_string().contains("are not the test groups"), "{e}");
}

#[test]
fn an_empty_file_is_an_error_naming_it() {
    let dir = tiny();
    let path = dir.path().join(TEST_DIR).join("b.two").join("3");
    std::fs::write(&path, b"").unwrap();
    let e = Newsgroups::read(dir.path(), &ReadOptions::default().with_validation(1, 3)).unwrap_err();
    assert_eq!(e.to_string(), format!("{}: empty file (0 bytes): a post has at least a header", path.display()));
}
