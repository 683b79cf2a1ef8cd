//! BLEU, chrF and TER on real WMT22 en→de system outputs against the values Python sacreBLEU
//! 2.6.0 gives (../shared/data/wmt/expected_sacrebleu_2.6.0.json): integer statistics and
//! signatures exactly, scores to floating-point rounding.

use calib_mt::metrics::*;
use serde_json::Value;
use std::path::PathBuf;

fn wmt(file: &str) -> PathBuf {
    calib_fixtures::data("wmt").join(file)
}

fn read(file: &str) -> Vec<String> {
    segments(&std::fs::read_to_string(wmt(file)).unwrap())
}

fn close(ours: f64, expected: &Value, what: &str) {
    let e = expected.as_f64().unwrap();
    assert!((ours - e).abs() <= 1e-9 * e.abs().max(1.0), "{what}: ours {ours}, sacreBLEU {e}");
}

#[test]
fn every_expected_value() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(wmt("expected_sacrebleu_2.6.0.json")).unwrap()).unwrap();
    let (a, b) = (read("generaltest2022.en-de.ref.A.de"), read("generaltest2022.en-de.ref.B.de"));
    let mut checked = 0;
    for (system, results) in expected["results"].as_object().unwrap() {
        let hyps = read(system);
        for (config, e) in results.as_object().unwrap() {
            let ctx = format!("{system} {config}");
            let (kind, refs_name) = config.rsplit_once('|').unwrap();
            let refs: Vec<Vec<String>> =
                refs_name.chars().map(|c| if c == 'A' { a.clone() } else { b.clone() }).collect();
            match kind.split_once('|').map_or((kind, ""), |(m, t)| (m, t)) {
                ("bleu", tok) => {
                    let (tok, lc) = tok.strip_suffix("-lc").map_or((tok, false), |t| (t, true));
                    let opts = BleuOptions::default().with_tokenize(tok.parse().unwrap()).with_lowercase(lc);
                    let r = corpus_bleu(&hyps, &refs, &opts).unwrap();
                    close(r.score, &e["score"], &ctx);
                    assert_eq!(serde_json::to_value(&r.counts).unwrap(), e["counts"], "{ctx} counts");
                    assert_eq!(serde_json::to_value(&r.totals).unwrap(), e["totals"], "{ctx} totals");
                    assert_eq!(
                        (r.sys_len, r.ref_len),
                        (e["sys_len"].as_i64().unwrap(), e["ref_len"].as_i64().unwrap()),
                        "{ctx}"
                    );
                    close(r.bp, &e["bp"], &ctx);
                    assert_eq!(r.signature, e["signature"].as_str().unwrap(), "{ctx}");
                }
                ("chrf", _) | ("chrf++", _) => {
                    let r = corpus_chrf(&hyps, &refs, if kind == "chrf++" { 2 } else { 0 }, false).unwrap();
                    close(r.score, &e["score"], &ctx);
                    assert_eq!(r.signature, e["signature"].as_str().unwrap(), "{ctx}");
                }
                ("ter", _) => {
                    let (r, edits, ref_len) = corpus_ter(&hyps, &refs).unwrap();
                    close(r.score, &e["score"], &ctx);
                    assert_eq!(edits, e["num_edits"].as_i64().unwrap(), "{ctx}");
                    close(ref_len, &e["ref_length"], &ctx);
                    assert_eq!(r.signature, e["signature"].as_str().unwrap(), "{ctx}");
                }
                ("sent_bleu_eff", _) | ("sent_bleu_noeff", _) => {
                    let opts = BleuOptions::default().with_effective_order(kind == "sent_bleu_eff");
                    let scores = sentence_bleu(&hyps, &refs, &opts).unwrap();
                    for (i, (s, x)) in scores.iter().zip(e["sent_scores"].as_array().unwrap()).enumerate() {
                        close(*s, x, &format!("{ctx} line {}", i + 1));
                    }
                }
                _ => panic!("unknown expected configuration {config}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 4 * 10, "only {checked} values checked");
}

#[test]
fn wrapper_checks_what_sacrebleu_rs_does_not() {
    let hyps = vec!["a b c".to_string(), "d e".to_string()];
    let refs = vec![vec!["a b c".to_string()]];
    assert_eq!(corpus_bleu(&hyps, &refs, &BleuOptions::default()), Err(Error::Length { hyps: 2, stream: 0, refs: 1 }));
    assert_eq!(corpus_bleu(&hyps, &[], &BleuOptions::default()), Err(Error::NoReferences));
    assert_eq!("ja-mecab".parse::<Tokenizer>(), Err(Error::Tokenizer("ja-mecab".into())));
    assert_eq!("13A".parse::<Tokenizer>(), Err(Error::Tokenizer("13A".into())));
    assert_eq!(Smoothing::parse("add-k", Some(0.5)), Err(Error::AddK(0.5)));
    assert_eq!(Smoothing::parse("add-k", Some(2.0)), Ok(Smoothing::AddK(2)));
    assert!(Smoothing::parse("laplace", None).is_err());
    // Chunked statistics equal one pass, also with add-k smoothing (which adds k per corpus).
    let many: Vec<String> = (0..700).map(|i| format!("w{} x y{}", i % 7, i % 3)).collect();
    let r: Vec<Vec<String>> = vec![(0..700).map(|i| format!("w{} x y{}", i % 5, i % 3)).collect()];
    let opts = BleuOptions::default().with_smoothing(Smoothing::AddK(1));
    let ours = corpus_bleu(&many, &r, &opts).unwrap();
    let one = sacrebleu_rs::Bleu { smooth_method: "add-k".into(), smooth_value: Some(1.0), ..Default::default() }
        .corpus_score(&many, &r);
    assert_eq!((ours.counts, ours.score), (one.counts, one.score));
}

/// `zh` (ported here; `sacrebleu-rs` lacks it) against sacreBLEU 2.6.0 on Chinese and mixed
/// segments (`benches/make_zh_fixture.py`), its range quirks included: “ and — count as Chinese.
#[test]
fn zh_tokeniser_equals_sacrebleu() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zh-expected.json");
    let e: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let strings = |v: &Value| v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect::<Vec<_>>();
    let (hyps, refs) = (strings(&e["hyps"]), strings(&e["refs"]));
    for (s, want) in hyps.iter().chain(&refs).zip(strings(&e["tokenized"])) {
        assert_eq!(tokenize_zh(s), want);
    }
    for case in e["bleu"].as_array().unwrap() {
        let lowercase = case["lowercase"].as_bool().unwrap();
        let opts = BleuOptions::default().with_tokenize("zh".parse().unwrap()).with_lowercase(lowercase);
        let r = corpus_bleu(&hyps, std::slice::from_ref(&refs), &opts).unwrap();
        close(r.score, &case["score"], "zh BLEU");
        assert_eq!(serde_json::to_value(&r.counts).unwrap(), case["counts"]);
        assert_eq!(serde_json::to_value(&r.totals).unwrap(), case["totals"]);
        assert_eq!(r.signature, case["signature"].as_str().unwrap());
    }
}
