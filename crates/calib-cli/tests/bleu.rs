//! `calib bleu` on the real WMT22 files against sacreBLEU 2.6.0's values, and its input checks.

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn wmt(file: &str) -> String {
    calib_fixtures::data("wmt").join(file).to_string_lossy().into_owned()
}

#[test]
fn reproduces_sacrebleu_from_stdin_and_files() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(wmt("expected_sacrebleu_2.6.0.json")).unwrap()).unwrap();
    let system = "generaltest2022.en-de.hyp.OpenNMT.de";
    let e = &expected["results"][system];
    // Two references, hypotheses on standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_calib"))
        .args([
            "bleu",
            "--ref",
            &wmt("generaltest2022.en-de.ref.A.de"),
            "--ref",
            &wmt("generaltest2022.en-de.ref.B.de"),
            "--format",
            "json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&std::fs::read(wmt(system)).unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ab = &e["bleu|13a|AB"];
    for key in ["counts", "totals", "sys_len", "ref_len", "signature"] {
        assert_eq!(r[key], ab[key], "{key}");
    }
    assert!((r["score"].as_f64().unwrap() - ab["score"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(r["precisions"].as_array().unwrap().len(), 4);
    // Lowercased intl tokenisation, chrF++ and TER from a file.
    let lc = json(&[
        "bleu",
        "--hyp",
        &wmt(system),
        "--ref",
        &wmt("generaltest2022.en-de.ref.A.de"),
        "--ref",
        &wmt("generaltest2022.en-de.ref.B.de"),
        "--tokenize",
        "intl",
        "--lowercase",
    ]);
    assert_eq!(lc["counts"], e["bleu|intl-lc|AB"]["counts"]);
    let chrf =
        json(&["bleu", "--metric", "chrf", "--hyp", &wmt(system), "--ref", &wmt("generaltest2022.en-de.ref.A.de")]);
    assert!((chrf["score"].as_f64().unwrap() - e["chrf|A"]["score"].as_f64().unwrap()).abs() < 1e-9);
    let text = calib(&["bleu", "--hyp", &wmt(system), "--ref", &wmt("generaltest2022.en-de.ref.A.de")]);
    assert!(
        text.stdout.starts_with("BLEU = 35.69 ")
            && text.stdout.contains("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"),
        "{}",
        text.stdout
    );
}

#[test]
fn mismatched_counts_and_unknown_tokeniser_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let short = path(dir.path(), "short.de");
    std::fs::write(&short, "eins\nzwei\n").unwrap();
    let o = calib(&["bleu", "--hyp", &short, "--ref", &wmt("generaltest2022.en-de.ref.A.de")]);
    assert!(!o.ok && o.stderr.trim_end().lines().count() == 1, "{}", o.stderr);
    assert!(o.stderr.contains("short.de has 2 lines") && o.stderr.contains("ref.A.de has 2037"), "{}", o.stderr);
    let o = calib(&["bleu", "--hyp", &short, "--ref", &short, "--tokenize", "ja-mecab"]);
    assert!(
        !o.ok && o.stderr.contains("unknown tokeniser 'ja-mecab'") && o.stderr.contains("13a, intl, none, char, zh"),
        "{}",
        o.stderr
    );
    let o = calib(&["bleu", "--hyp", &short, "--ref", &short, "--smooth", "add-k", "--smooth-value", "0.5"]);
    assert!(!o.ok && o.stderr.contains("whole number"), "{}", o.stderr);
}

#[test]
fn tokenizer_train_on_multi30k() {
    let dir = tempfile::tempdir().unwrap();
    let out = path(dir.path(), "tok.json");
    let m = |f: &str| calib_fixtures::data("multi30k").join(f).to_string_lossy().into_owned();
    let r = json(&[
        "tokenizer",
        "train",
        "--input",
        &m("val.en.gz"),
        "--input",
        &m("val.de.gz"),
        "--vocab",
        "1000",
        "--kind",
        "unigram",
        "--out",
        &out,
    ]);
    assert_eq!((r["vocab_size"].as_u64(), r["sentences"].as_u64()), (Some(1000), Some(2028)));
    assert!(std::fs::read_to_string(&out).unwrap().contains("\"Unigram\""));
    let o = calib(&["tokenizer", "train", "--input", &m("val.en.gz"), "--kind", "wordpiece", "--out", &out]);
    assert!(!o.ok && o.stderr.contains("unknown vocabulary kind 'wordpiece'"), "{}", o.stderr);
}
