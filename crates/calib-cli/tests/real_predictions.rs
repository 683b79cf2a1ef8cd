//! The CLI on the real CIFAR-10 predictions in data/ reproduces the figures the PyTorch script that
//! made them printed (data/predictions/README.md).

mod common;
use common::*;

/// (model, error %, NLL, ECE %, T, ECE % after T), as printed by the PyTorch script.
const FIGURES: [(&str, f64, f64, f64, f64, f64); 4] = [
    ("cifar10-resnet18-onecycle30-ce", 10.28, 0.380, 5.30, 1.7, 0.97),
    ("cifar10-resnet18-onecycle30-flsd53", 11.71, 0.361, 5.27, 0.7, 1.01),
    ("cifar10-resnet18-step150-ce", 9.88, 0.452, 6.74, 1.8, 1.92),
    ("cifar10-resnet18-step150-flsd53", 10.24, 0.339, 4.83, 0.7, 2.19),
];

#[test]
fn calibrate_reproduces_the_reference_figures() {
    for (model, error, nll, ece, t, ece_after) in FIGURES {
        let r = json(&[
            "calibrate",
            "--val-logits",
            &predictions(model, "val_logits.npy"),
            "--val-labels",
            &predictions(model, "val_labels.npy"),
            "--logits",
            &predictions(model, "test_logits.npy"),
            "--labels",
            &predictions(model, "test_labels.npy"),
        ]);
        let near = |v: &serde_json::Value, x: f64, tol: f64| (v.as_f64().unwrap() - x).abs() <= tol;
        assert!(near(&r["before"]["error"], error / 100.0, 5e-5), "{model} error {}", r["before"]["error"]);
        assert!(near(&r["before"]["nll"], nll, 5e-4), "{model} nll {}", r["before"]["nll"]);
        assert!(near(&r["before"]["ece"], ece / 100.0, 5e-5), "{model} ece {}", r["before"]["ece"]);
        assert!(near(&r["temperature"], t, 1e-12), "{model} T {}", r["temperature"]);
        assert!(near(&r["after"]["ece"], ece_after / 100.0, 5e-5), "{model} ece after {}", r["after"]["ece"]);
        assert_eq!(r["after"]["error"], r["before"]["error"], "{model}: scaling must not change predictions");
        assert_eq!(r["evaluated_on"], "test");
    }
}

#[test]
fn metrics_json_has_the_documented_keys() {
    let (l, y) = (predictions(FIGURES[2].0, "test_logits.npy"), predictions(FIGURES[2].0, "test_labels.npy"));
    let m = json(&["metrics", "--logits", &l, "--labels", &y, "--bootstrap", "50"]);
    for key in [
        "mode",
        "n",
        "classes",
        "error",
        "top5_error",
        "nll",
        "ece",
        "adaece",
        "classwise_ece",
        "mce",
        "s99_fraction",
        "s99_accuracy",
        "bins",
        "ci",
    ] {
        assert!(m.get(key).is_some(), "missing key {key}");
    }
    assert_eq!(m["mode"], "corrected");
    assert_eq!((m["n"].as_u64(), m["classes"].as_u64()), (Some(10_000), Some(10)));
    assert_eq!(m["bins"].as_array().unwrap().len(), 15);
    let ci = &m["ci"]["ece"];
    assert!(ci["lower"].as_f64() < m["ece"].as_f64() && m["ece"].as_f64() < ci["upper"].as_f64());

    // The f32 paper pipeline gives the same ECE up to float32 rounding.
    let p = json(&["metrics", "--logits", &l, "--labels", &y, "--mode", "paper", "--precision", "f32"]);
    assert_eq!(p["mode"], "paper");
    assert!((p["ece"].as_f64().unwrap() - m["ece"].as_f64().unwrap()).abs() < 1e-5);

    // ECE alone gives the same number as the full suite.
    let e = json(&["metrics", "--logits", &l, "--labels", &y, "--only", "ece"]);
    assert_eq!(e["ece"], m["ece"]);
}

#[test]
fn report_writes_markdown_json_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = path(dir.path(), "qs");
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/predictions");
    let r = json(&["report", "--predictions", data.to_str().unwrap(), "--out", &out, "--bootstrap", "20"]);
    let models = r["models"].as_array().unwrap();
    assert_eq!(models.len(), 4);
    for (m, f) in models.iter().zip(FIGURES) {
        assert_eq!(m["name"], f.0);
        assert!((m["temperature"].as_f64().unwrap() - f.4).abs() < 1e-12);
        for when in ["before", "after"] {
            let svg = std::fs::read_to_string(dir.path().join(format!("qs/plots/{}-{when}.svg", f.0))).unwrap();
            assert!(svg.starts_with("<svg"));
        }
    }
    let md = std::fs::read_to_string(dir.path().join("qs/report.md")).unwrap();
    assert!(md.contains("| cifar10-resnet18-step150-ce") && md.contains("6.74"), "{md}");
    assert!(dir.path().join("qs/report.json").is_file());
}

use std::path::PathBuf;
