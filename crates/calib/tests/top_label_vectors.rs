//! Smooth ECE, the debiased L2 error, ECE_sweep, KS and the Brier score of [`evaluate`] against
//! their references: every `tests/vectors/metrics_*.json` (written by
//! `benches/make_metric_vectors.py` with relplot 1.0.3 and uncertainty-calibration 0.1.4) holds
//! one input and evaluations at a temperature and a bin count. Each value must match to 1e-6
//! from float64 inputs; on the real CIFAR-10 logits in float32, smooth ECE, KS and Brier to 1e-5.

mod common;
use calib::metrics::{evaluate, Options, Report};
use calib::{Real, ScoreKind, Scores};
use serde_json::Value;
use std::path::PathBuf;

fn input(doc: &Value) -> (Vec<f64>, usize, Vec<i64>, ScoreKind) {
    let i = &doc["input"];
    let kind = if i["kind"] == "logits" { ScoreKind::Logits } else { ScoreKind::Probs };
    if let Some(npy) = i.get("npy") {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let values = calib::npy::read_floats(&root.join(npy["values"].as_str().unwrap()), 2, "logits").unwrap();
        let k = values.shape()[1];
        let labels = calib::npy::read_labels(&root.join(npy["labels"].as_str().unwrap())).unwrap();
        return (values.into_real::<f64>(), k, labels, kind);
    }
    let (values, k) = common::matrix(&i["values"]);
    (values, k, common::ints(&i["labels"]), kind)
}

fn report<F: Real>(values: Vec<F>, k: usize, labels: &[i64], kind: ScoreKind, e: &Value) -> Report {
    let mut opts = Options::default().with_bins(e["bins"].as_u64().unwrap() as usize);
    if let Some(t) = e["temperature"].as_f64() {
        opts = opts.with_temperature(t);
    }
    evaluate(&Scores::new(values, k, labels, kind).unwrap(), &opts).unwrap()
}

fn compare(ctx: &str, r: &Report, want: &Value, tolerance: f64, failures: &mut Vec<String>) {
    let got = [
        ("smece", r.smece),
        ("smece_bandwidth", r.smece_bandwidth),
        ("ece_debiased_l2", r.ece_debiased_l2),
        ("ece_sweep", r.ece_sweep),
        ("ece_sweep_bins", r.ece_sweep_bins as f64),
        ("ks", r.ks),
        ("brier", r.brier),
    ];
    for (key, value) in got {
        let expected = want[key].as_f64().unwrap_or_else(|| panic!("{ctx}: no {key}"));
        if (value - expected).abs() > tolerance {
            failures.push(format!("{ctx} {key}: ours {value}, reference {expected}"));
        }
    }
}

#[test]
fn top_label_metrics_equal_their_references() {
    let (mut failures, mut checked) = (Vec::new(), 0);
    for (name, doc) in common::own_vectors("metrics_") {
        let (values, k, labels, kind) = input(&doc);
        for e in doc["evaluations"].as_array().unwrap() {
            let ctx = format!("{name} T={} bins={}", e["temperature"], e["bins"]);
            let r = report(values.clone(), k, &labels, kind, e);
            compare(&ctx, &r, &e["expected"], 1e-6, &mut failures);
            if doc["input"].get("npy").is_some() {
                // In float32 many confidences round to the same value (1.0 above all at T < 1),
                // so the orders and equal-mass cuts that ECE_sweep, the debiased error and the
                // bandwidth's bisection depend on can move: only the smooth values are compared.
                let r32 = report(common::to_f32(&values), k, &labels, kind, e);
                let mut want = e["expected"].clone();
                for key in ["smece_bandwidth", "ece_debiased_l2", "ece_sweep", "ece_sweep_bins"] {
                    want[key] = serde_json::to_value(&r32).unwrap()[key].clone();
                }
                compare(&format!("{ctx} f32"), &r32, &want, 1e-5, &mut failures);
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 25, "only {checked} evaluations checked");
}
