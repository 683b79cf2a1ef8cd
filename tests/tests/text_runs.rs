//! The text tracks through the binary on the real data of ../shared/data: a short CPU training of
//! the Tree-LSTM on SST and of the Global Pooling CNN on 20 Newsgroups, each far above chance on
//! the real validation set and evaluated into a calibration report; and bad input (trees, GloVe
//! rows, posts, a vocabulary that does not fit the checkpoint) as one-line errors that write
//! nothing.

use calib_e2e::{data, fails, ok, run};
use std::path::{Path, PathBuf};

const SST: &str = "recipes/sst/tree-lstm.toml";
const NG: &str = "recipes/20ng/gp-cnn.toml";

fn last_val_error(run: &Path) -> f64 {
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    last["val"]["error"].as_f64().unwrap()
}

fn rows(npy: &Path) -> usize {
    let text = std::fs::read(npy).unwrap();
    let header = String::from_utf8_lossy(&text[10..128]);
    let shape = header.split("'shape': (").nth(1).unwrap();
    shape.split(',').next().unwrap().trim().parse().unwrap()
}

#[test]
fn tree_lstm_learns_sst_and_reports_at_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sst");
    let o = out.to_str().unwrap();
    // 100 batches of 25 sentences (2,500 of the 6,920), no weight or learning-rate changes.
    let r = ok(&["train", "--recipe", SST, "--out", o, "--epochs", "1", "--set", "train.max_batches=100", "--quiet"]);
    assert_eq!(r["epochs"], 1);
    // Chance is 50 % (the dev set is 444 positive, 428 negative); a minute of training gets to 75 %.
    let error = last_val_error(&out);
    assert!(error < 0.25, "val root error {error}");
    let vocab = std::fs::read_to_string(out.join("vocab.txt")).unwrap();
    assert_eq!(vocab.lines().count(), 17_575, "every word of the three files, lowercased");
    let report = ok(&["eval", "--run", o, "--bootstrap", "50"]);
    let model = &report["models"][0];
    assert!(model["temperature"].as_f64().unwrap() > 0.0, "{report}");
    // Predictions are per sentence (the roots): 872 dev, 1,821 test.
    assert_eq!(rows(&out.join("predictions/val_logits.npy")), 872);
    assert_eq!(rows(&out.join("predictions/test_logits.npy")), 1821);
    assert!(out.join("report.json").is_file());
    // The last and the best weights of one run average (the optimiser state `last` also holds
    // is left out) into a checkpoint that evaluates.
    let avg = tmp.path().join("avg.safetensors");
    let (last, best) = (out.join("last.safetensors"), out.join("best.safetensors"));
    let args = ["average-checkpoints", "--input", last.to_str().unwrap(), "--input", best.to_str().unwrap()];
    let mut all = args.to_vec();
    all.extend(["--out", avg.to_str().unwrap()]);
    ok(&all);
    // Evaluated into another folder (--out), which leaves the run's own evaluation as it was.
    let (kept, elsewhere) = (std::fs::read(out.join("report.json")).unwrap(), tmp.path().join("avg-eval"));
    let kept_logits = std::fs::read(out.join("predictions/test_logits.npy")).unwrap();
    let e = ok(&[
        "eval",
        "--run",
        o,
        "--checkpoint",
        avg.to_str().unwrap(),
        "--bootstrap",
        "10",
        "--out",
        elsewhere.to_str().unwrap(),
    ]);
    assert_eq!(e["checkpoint"], avg.to_str().unwrap());
    assert_eq!(rows(&elsewhere.join("predictions/test_logits.npy")), 1821);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(elsewhere.join("report.json")).unwrap()).unwrap();
    assert_eq!(written["checkpoint"], avg.to_str().unwrap());
    assert_eq!(std::fs::read(out.join("report.json")).unwrap(), kept);
    assert_eq!(std::fs::read(out.join("predictions/test_logits.npy")).unwrap(), kept_logits);

    // A vocabulary that no longer fits the checkpoint: one line naming both, nothing written.
    std::fs::remove_dir_all(out.join("predictions")).unwrap();
    let cut: Vec<&str> = vocab.lines().skip(1).collect();
    std::fs::write(out.join("vocab.txt"), cut.join("\n") + "\n").unwrap();
    fails(&["eval", "--run", o], &["best.safetensors", "embedding has 17576 rows", "vocab.txt gives 17575"]);
    assert!(!out.join("predictions").exists());
}

#[test]
fn global_pooling_cnn_learns_20_newsgroups() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("20ng");
    let o = out.to_str().unwrap();
    // Documents cut to their last 300 ids, 3 epochs of 40 batches of 128.
    let args = ["--epochs", "3", "--set", "train.max_batches=40", "--set", "data.max_len=300", "--quiet"];
    let mut all = vec!["train", "--recipe", NG, "--out", o];
    all.extend(args);
    ok(&all);
    // Chance is 5 % (20 classes); the frozen 50-d GloVe network is at least 4 times that.
    let error = last_val_error(&out);
    assert!(error < 0.8, "val error {error}");
    let report = ok(&["eval", "--run", o, "--bootstrap", "50"]);
    assert!(report["models"][0]["temperature"].as_f64().unwrap() > 0.0);
    assert_eq!(rows(&out.join("predictions/test_logits.npy")), 7532);
}

/// A copy of the SST files with `train.txt`'s line `line` (1-based) replaced by `bytes`.
fn broken_sst(dir: &Path, line: usize, bytes: &[u8]) -> PathBuf {
    let trees = dir.join("trees");
    std::fs::create_dir_all(&trees).unwrap();
    for f in ["dev.txt", "test.txt"] {
        std::fs::copy(data(&format!("sst/trees/{f}")), trees.join(f)).unwrap();
    }
    let text = std::fs::read(data("sst/trees/train.txt")).unwrap();
    let mut out = Vec::new();
    for (i, l) in text.split(|&b| b == b'\n').enumerate().take(200) {
        out.extend_from_slice(if i + 1 == line { bytes } else { l });
        out.push(b'\n');
    }
    std::fs::write(trees.join("train.txt"), out).unwrap();
    trees
}

#[test]
fn bad_trees_are_one_line_errors_with_the_line_and_write_nothing() {
    for (bytes, expect) in [
        (&b"(3 (2 a) (2 b)"[..], "unbalanced"),
        (b"(x (2 a) (2 b))", "'x' is not an integer"),
        (b"(7 (2 a) (2 b))", "out of range"),
        (b"", "empty tree"),
        (b"(3 (2 caf\xe9) (2 b))", "not valid UTF-8"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let trees = broken_sst(tmp.path(), 17, bytes);
        let out = tmp.path().join("run");
        let at = format!("{}, line 17", trees.join("train.txt").display());
        fails(
            &["train", "--recipe", SST, "--data", trees.to_str().unwrap(), "--out", out.to_str().unwrap()],
            &[&at, expect],
        );
        assert!(!out.exists(), "{expect}: the run folder was created");
    }
}

#[test]
fn a_glove_row_of_the_wrong_width_names_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(data("glove/glove.6B.50d.subset.txt")).unwrap();
    let mut lines: Vec<String> = text.lines().take(1000).map(String::from).collect();
    lines[41] = lines[41].rsplit_once(' ').unwrap().0.to_string();
    let glove = tmp.path().join("glove.txt");
    std::fs::write(&glove, lines.join("\n") + "\n").unwrap();
    let out = tmp.path().join("run");
    let set = format!("data.glove=\"{}\"", glove.display());
    let at = format!("{}, line 42", glove.display());
    fails(
        &["train", "--recipe", SST, "--set", &set, "--out", out.to_str().unwrap(), "--quiet"],
        &[&at, "49 values where line 1 has 50"],
    );
    assert!(!out.exists());
}

#[test]
fn an_empty_post_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("20ng");
    for split in ["20news-bydate-train", "20news-bydate-test"] {
        for group in ["alt.atheism", "sci.space"] {
            let from = data(&format!("20ng/{split}/{group}"));
            let to = root.join(split).join(group);
            std::fs::create_dir_all(&to).unwrap();
            let mut files: Vec<PathBuf> = std::fs::read_dir(&from).unwrap().map(|e| e.unwrap().path()).collect();
            files.sort();
            for f in files.iter().take(40) {
                std::fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
            }
        }
    }
    let empty = root.join("20news-bydate-test/sci.space/99999");
    std::fs::write(&empty, b"").unwrap();
    let out = tmp.path().join("run");
    let o = run(&[
        "train",
        "--recipe",
        NG,
        "--data",
        root.to_str().unwrap(),
        "--set",
        "data.val_size=10",
        "--out",
        out.to_str().unwrap(),
    ]);
    calib_e2e::one_line_error(&o, &[&empty.display().to_string(), "empty file"]);
    assert!(!out.exists());
}

/// Every loss of the core trains the Tree-LSTM at the node level (FLSD's γ chosen per node) and
/// the Global Pooling CNN: two batches each, a finite logged loss.
#[test]
fn every_loss_trains_both_text_models() {
    let tmp = tempfile::tempdir().unwrap();
    for loss in
        ["ce", "focal:3", "flsd:53", "flsd-auto:0.2", "flsc:531", "ls:0.05", "brier", "mmce:2", "mmce-unweighted:2"]
    {
        for (name, recipe, extra) in [("sst", SST, "train.batch_size=5"), ("20ng", NG, "data.max_len=150")] {
            let out = tmp.path().join(format!("{name}-{}", loss.replace(':', "_")));
            let o = out.to_str().unwrap();
            let args = ["--epochs", "1", "--set", "train.max_batches=2", "--set", extra, "--loss", loss, "--quiet"];
            let mut all = vec!["train", "--recipe", recipe, "--out", o];
            all.extend(args);
            ok(&all);
            let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
            let epoch: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
            assert!(epoch["train_loss"].as_f64().is_some_and(f64::is_finite), "{loss} on {recipe}: {epoch}");
        }
    }
}
