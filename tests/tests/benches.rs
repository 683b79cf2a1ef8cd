//! The training benchmark and its PyTorch peer on tiny shapes: `calib bench train` steps every
//! network of the paper, and `benches/compare_train.py` (in the benchmark environment that
//! `benches/setup-python.sh` makes) runs both sides with equal parameter counts.

use calib_e2e::{ok, root};
use std::process::Command;

/// The networks with their parameter counts at 10 classes (PyTorch's own counts, see
/// calib-vision's model tests; the small CNN's from the PyTorch peer's 106,372 at 100 classes),
/// and the Transformers at a 1,000-entry vocabulary (the PyTorch peer counts 5,555,200 at 100
/// entries and 60,522,496 at 32,000: d 256 and 512 per entry).
const NETWORKS: [(&str, i64); 9] = [
    ("small-cnn", 94_762),
    ("resnet18", 11_173_962),
    ("resnet50", 23_520_842),
    ("resnet110", 1_727_962),
    ("resnet110-official", 45_864_522),
    ("wrn-26-10", 36_481_434),
    ("densenet121", 6_956_298),
    ("transformer-small", 5_785_600),
    ("transformer-base", 44_650_496),
];

#[test]
fn bench_train_steps_every_network() {
    for (model, params) in NETWORKS {
        let transformer = model.starts_with("transformer");
        let mut args = vec!["bench", "train", "--model", model, "--steps", "1", "--warmup", "1", "--device", "cpu"];
        args.extend(if transformer {
            ["--tokens", "64", "--length", "16", "--classes", "1000"]
        } else {
            ["--batch-size", "2", "--length", "32", "--classes", "10"]
        });
        let r = ok(&args);
        assert_eq!(r["model"], model);
        assert_eq!(r["parameters"], params, "{model}");
        assert_eq!(r["samples_per_step"], if transformer { 64 } else { 2 }, "{model}");
        assert_eq!(r["unit"], if transformer { "target tokens" } else { "images" });
        assert!(r["samples_per_second"].as_f64().unwrap() > 0.0 && r["step_ms"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn compare_train_sets_pytorch_beside_us() {
    let python = root().join(".deps/bench-venv/bin/python");
    assert!(python.is_file(), "{} is missing: run bash benches/setup-python.sh", python.display());
    let calib = calib_fixtures::binary("calib");
    // As shipped (ours channels-last, PyTorch NCHW), then each side set up as the other.
    let swapped = ["--ours-layout", "nchw", "--peer-layout", "channels-last", "--ours-malloc", "glibc"];
    for (extra, layouts) in [
        (&["--model", "small-cnn", "--batch-size", "4"][..], (true, "nchw")),
        (&["--model", "small-cnn", "--batch-size", "4", "--peer-malloc", "keep"][..], (true, "nchw")),
        (&[&["--model", "small-cnn", "--batch-size", "4"][..], &swapped].concat()[..], (false, "channels-last")),
        (&["--model", "transformer-small", "--tokens", "64", "--classes", "500"], (false, "nchw")),
    ] {
        let o = Command::new(&python)
            .current_dir(root())
            .arg("benches/compare_train.py")
            .arg("--calib")
            .arg(&calib)
            .args(extra)
            .args(["--steps", "1", "--warmup", "1"])
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&o.stderr));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["ours"]["parameters"], r["pytorch"]["parameters"]);
        assert_eq!(r["ours"]["threads"], 1);
        assert_eq!(r["pytorch"]["threads"], 1);
        let ratio = r["ratio"].as_f64().unwrap();
        let want =
            r["ours"]["samples_per_second"].as_f64().unwrap() / r["pytorch"]["samples_per_second"].as_f64().unwrap();
        assert!((ratio - want).abs() < 1e-9 && ratio > 0.0);
        assert_eq!((r["ours"]["channels_last"].as_bool().unwrap(), r["pytorch"]["layout"].as_str().unwrap()), layouts);
    }
}

/// A small Multi30k run exported to Hugging Face Marian decodes the first test sentences to the
/// very same translations, greedy and with beam 4, and both speeds are reported.
#[test]
fn compare_decode_finds_the_same_translations_as_hugging_face() {
    let python = root().join(".deps/bench-venv/bin/python");
    assert!(python.is_file(), "{} is missing: run bash benches/setup-python.sh", python.display());
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("mt");
    let mut args = vec!["train", "--recipe", "recipes/multi30k/transformer-small.toml", "--out", run.to_str().unwrap()];
    args.extend(["--epochs", "1", "--device", "cpu", "--quiet"]);
    for set in calib_e2e::TINY_TRANSLATION {
        args.extend(["--set", set]);
    }
    ok(&args);
    let src = calib_e2e::data("multi30k/test_2016_flickr.en.gz");
    let o = Command::new(&python)
        .current_dir(root())
        .arg("benches/compare_decode.py")
        .arg("--calib")
        .arg(calib_fixtures::binary("calib"))
        .args(["--run", run.to_str().unwrap(), "--src", src.to_str().unwrap(), "--limit", "8", "--beam", "4"])
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for search in ["greedy", "beam4"] {
        assert_eq!(r[search]["identical_translations"], 8, "{search}: {r}");
        assert!(r[search]["ours_sentences_per_second"].as_f64().unwrap() > 0.0);
        assert!(r[search]["hf_tokens_per_second"].as_f64().unwrap() > 0.0);
    }
}
