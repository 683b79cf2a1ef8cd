//! The translation track end to end on real Multi30k (English→German) on CPU: a vocabulary is
//! trained, a small Transformer learns, `decode` translates stdin with beam search well above a
//! copy-the-source baseline, checkpoints average, `eval` writes token-level predictions and the
//! calibration report, the temperature study writes its table, JSON and figure; bad input stops
//! with one clear line.

use calib_e2e::{ok, one_line_error, run, run_with_stdin};
use calib_mt::metrics::{corpus_bleu, BleuOptions};
use std::path::{Path, PathBuf};

fn multi30k(name: &str) -> PathBuf {
    calib_e2e::data("multi30k").join(name)
}

fn lines(path: &Path, n: usize) -> Vec<String> {
    calib_mt::corpus::read_lines(path, calib_mt::corpus::Empty::Keep).unwrap().into_iter().take(n).collect()
}

/// The recipe's settings shrunk to a minute of CPU: 6,000 training pairs, a 1,000-entry
/// vocabulary, d 128 with 2+2 layers, the first 200 test sentences.
fn train(dir: &Path, out: &Path) {
    let test: Vec<String> = ["en", "de"]
        .iter()
        .map(|side| {
            let path = dir.join(format!("test200.{side}"));
            std::fs::write(&path, lines(&multi30k(&format!("test_2016_flickr.{side}.gz")), 200).join("\n") + "\n")
                .unwrap();
            path.display().to_string()
        })
        .collect();
    let sets = [
        "data.limit=6000".to_string(),
        "data.vocab_size=1000".into(),
        "data.max_len=40".into(),
        format!("data.test_src=\"{}\"", test[0]),
        format!("data.test_tgt=\"{}\"", test[1]),
        "model.d_model=128".into(),
        "model.ffn=256".into(),
        "model.encoder_layers=2".into(),
        "model.decoder_layers=2".into(),
        "train.epochs=5".into(),
        "train.keep_epochs=2".into(),
        "train.schedule.warmup=100".into(),
        "train.schedule.peak=2e-3".into(),
    ];
    let mut args = vec!["train", "--recipe", "recipes/multi30k/transformer-small.toml", "--out", out.to_str().unwrap()];
    args.extend(["--device", "cpu", "--quiet"]);
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    let r = ok(&args);
    assert_eq!(r["epochs"], 5);
}

#[test]
fn multi30k_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    train(dir.path(), &out);
    assert!(out.join("tokenizer.json").is_file());
    // It learns: validation NLL per target token falls epoch after epoch.
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let nll: Vec<f64> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["val"]["nll"].as_f64().unwrap())
        .collect();
    assert!(nll.windows(2).all(|w| w[1] < w[0]), "validation NLL {nll:?}");
    assert!(nll[4] < 4.5, "validation NLL {nll:?}");

    // calib decode: stdin to stdout, input order, beam search.
    let src = lines(&multi30k("test_2016_flickr.en.gz"), 200);
    let refs = vec![lines(&multi30k("test_2016_flickr.de.gz"), 200)];
    let o = run_with_stdin(&["decode", "--run", out_s, "--beam", "4", "--device", "cpu"], &(src.join("\n") + "\n"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hyps_text = String::from_utf8(o.stdout).unwrap();
    let hyps: Vec<String> = hyps_text.lines().map(String::from).collect();
    assert_eq!(hyps.len(), 200);
    let bleu = corpus_bleu(&hyps, &refs, &BleuOptions::default()).unwrap().score;
    // `calib bleu` scores the decoded text as the library does.
    let ref_file = dir.path().join("ref200.de");
    std::fs::write(&ref_file, refs[0].join("\n") + "\n").unwrap();
    let o = run_with_stdin(&["--format", "json", "bleu", "--ref", ref_file.to_str().unwrap()], &hyps_text);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let scored: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!((scored["score"].as_f64().unwrap() - bleu).abs() < 1e-9, "{scored}");
    // The trivial baseline: the English source copied as the "translation".
    let copy = corpus_bleu(&src, &refs, &BleuOptions::default()).unwrap().score;
    assert!(bleu > 2.0 && bleu > 10.0 * copy, "BLEU {bleu} against the copy baseline's {copy}");

    // Sentence 1 alone gives the same translation as inside the batch (input order kept).
    let first = run_with_stdin(&["decode", "--run", out_s, "--device", "cpu", "--quiet"], &format!("{}\n", src[0]));
    assert_eq!(String::from_utf8(first.stdout).unwrap().trim_end(), hyps[0]);
    // n-best with scores: 2 lines per sentence, text, score and one log-probability per token + EOS.
    let o = run_with_stdin(
        &["decode", "--run", out_s, "--nbest", "2", "--scores", "--device", "cpu", "--quiet"],
        &format!("{}\n{}\n", src[0], src[1]),
    );
    let text = String::from_utf8(o.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0][0], hyps[0]);
    let (s0, s1): (f64, f64) = (rows[0][1].parse().unwrap(), rows[1][1].parse().unwrap());
    assert!(s0 >= s1);
    assert!(rows[0][2].split(' ').all(|lp| lp.parse::<f64>().unwrap() <= 0.0));
    // Without the cache, the same translations.
    let o = run_with_stdin(
        &["decode", "--run", out_s, "--no-cache", "--device", "cpu", "--quiet"],
        &(src[..20].join("\n") + "\n"),
    );
    let uncached: Vec<String> = String::from_utf8(o.stdout).unwrap().lines().map(String::from).collect();
    assert_eq!(uncached, hyps[..20]);

    // calib bench decode: with and without the cache, the same translations.
    let test_en = dir.path().join("test200.en");
    let test_de = dir.path().join("test200.de");
    let b = ok(&[
        "bench",
        "decode",
        "--run",
        out_s,
        "--src",
        test_en.to_str().unwrap(),
        "--limit",
        "20",
        "--device",
        "cpu",
    ]);
    assert_eq!((b["sentences"].as_u64(), b["identical_translations"].as_u64()), (Some(20), Some(20)));

    // Averaging the two kept epochs, and decoding from the average.
    let avg = ok(&["average-checkpoints", "--run", out_s, "--last", "2"]);
    assert_eq!(avg["inputs"].as_array().unwrap().len(), 2);
    let o = run_with_stdin(
        &["decode", "--run", out_s, "--checkpoint", "averaged", "--device", "cpu", "--quiet"],
        &(src[..5].join("\n") + "\n"),
    );
    assert!(o.status.success() && String::from_utf8(o.stdout).unwrap().lines().count() == 5);

    // Token-level predictions and the calibration report.
    let e = ok(&["eval", "--run", out_s, "--bootstrap", "10", "--device", "cpu"]);
    let m = &e["models"][0];
    let n = m["before"]["n"].as_u64().unwrap();
    // One row per reference target token (sub-words plus EOS) of the 200 test sentences.
    let tok = calib_mt::tokenize::Vocab::load(&out.join("tokenizer.json")).unwrap();
    let tokens: usize = tok.encode_batch(&refs[0]).unwrap().iter().map(|t| t.len() + 1).sum();
    assert_eq!(n as usize, tokens);
    assert_eq!(m["before"]["classes"], 1000);
    assert!(out.join("predictions/test_logits.npy").is_file() && out.join("report.md").is_file());

    // The temperature study.
    let s = ok(&[
        "study",
        "temperature",
        "--run",
        out_s,
        "--src",
        test_en.to_str().unwrap(),
        "--ref",
        test_de.to_str().unwrap(),
        "--valid-src",
        multi30k("val.en.gz").to_str().unwrap(),
        "--valid-ref",
        multi30k("val.de.gz").to_str().unwrap(),
        "--t",
        "0.7,1,1.5",
        "--limit",
        "60",
        "--device",
        "cpu",
        "--quiet",
    ]);
    let points = s["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    let min_ece = points.iter().map(|p| p["val_ece"].as_f64().unwrap()).fold(f64::INFINITY, f64::min);
    assert_eq!(s["chosen_by_val_ece"]["val_ece"].as_f64().unwrap(), min_ece);
    // NLL is a proper score: its curve is not flat, and T = 1 is where the model was trained.
    assert!(points.iter().all(|p| p["bleu"].as_f64().unwrap() > 0.0));
    for f in ["study.json", "study.md", "temperature.svg"] {
        assert!(out.join("study-temperature").join(f).is_file(), "{f}");
    }
    // Without the data arguments the study reads the run's recipe's test and validation pairs:
    // the same first 60 test sentences and validation set, so the same point at T = 1.
    let other = dir.path().join("study-defaults");
    let d = ok(&[
        "study",
        "temperature",
        "--run",
        out_s,
        "--t",
        "1",
        "--limit",
        "60",
        "--out",
        other.to_str().unwrap(),
        "--device",
        "cpu",
        "--quiet",
    ]);
    let at_one = points.iter().find(|p| p["t"] == 1.0).unwrap();
    assert_eq!(&d["points"][0]["bleu"], &at_one["bleu"]);
    assert_eq!(&d["points"][0]["val_ece"], &at_one["val_ece"]);

    // Bad input.
    let o =
        run_with_stdin(&["decode", "--run", out_s, "--device", "cpu"], &format!("a dog\n{}\n", "dog ".repeat(1100)));
    one_line_error(&o, &["stdin, line 2", "more than the 1023"]);
    let other = dir.path().join("other.json");
    let tok2 = calib_mt::tokenize::train(
        &lines(&multi30k("train.de.gz"), 500),
        300,
        calib_mt::tokenize::Kind::Bpe,
        false,
        "train.de.gz",
    )
    .unwrap();
    calib_mt::tokenize::save(&tok2, &other).unwrap();
    let o = run_with_stdin(
        &["decode", "--run", out_s, "--tokenizer", other.to_str().unwrap(), "--device", "cpu"],
        "a dog\n",
    );
    one_line_error(&o, &["other.json", "does not match the vocabulary the run was trained with"]);
    let o = run(&["decode", "--run", out_s, "--nbest", "5", "--beam", "2"]);
    one_line_error(&o, &["--nbest"]);
}

#[test]
fn bad_corpora_stop_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let (s, t) = (dir.path().join("a.en"), dir.path().join("a.de"));
    std::fs::write(&s, "a dog\na cat\nthree birds\n").unwrap();
    std::fs::write(&t, "ein Hund\neine Katze\n").unwrap();
    let out = dir.path().join("run");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "train".to_string(),
            "--recipe".into(),
            "recipes/multi30k/transformer-small.toml".into(),
            "--out".into(),
            out.display().to_string(),
            "--quiet".into(),
            "--set".into(),
            format!("data.train_src=\"{}\"", s.display()),
            "--set".into(),
            format!("data.train_tgt=\"{}\"", t.display()),
            "--set".into(),
            "data.vocab_size=60".into(),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let o = run(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    one_line_error(&o, &["a.en has 3 lines", "a.de has 2"]);
    assert!(!out.join("state.json").exists());
    std::fs::write(&t, "ein Hund\n\ndrei Vögel\n").unwrap();
    let o = run(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    one_line_error(&o, &["a.de, line 2: empty line"]);
    let o = run(&args(&["--set", "model.max_positions=8", "--set", "data.max_len=100"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    one_line_error(&o, &["data.max_len 100 needs 101 positions"]);
}
