//! `gamma` and `ood` through the CLI against reference values, and the hand-over of `loss`.

mod common;
use calib::npy;
use common::*;

#[test]
fn gamma_star_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let svg = path(dir.path(), "g.svg");
    let r = json(&["gamma", "--p0", "0.25", "--plot", &svg]);
    assert!((r["gamma_star"].as_f64().unwrap() - 3.0702271).abs() < 1e-7);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("γ = 5"));
    let r = json(&["gamma", "--p0", "0.2"]);
    assert!((r["gamma_star"].as_f64().unwrap() - 4.8505544).abs() < 1e-7);
}

/// The OOD reference cases (official code) through `calib ood` on `.npy` files.
#[test]
fn ood_matches_the_reference_vectors() {
    let file = calib_fixtures::shared("testvectors/ood_auroc.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for case in v["cases"].as_array().unwrap() {
        let k = case["k"].as_u64().unwrap() as usize;
        let flat = |m: &serde_json::Value| -> Vec<f64> {
            m.as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
                .collect()
        };
        let (a, b) = (flat(&case["in_logits"]), flat(&case["ood_logits"]));
        let (pa, pb) = (path(dir.path(), "in.npy"), path(dir.path(), "out.npy"));
        npy::write(pa.as_ref(), &[a.len() / k, k], &a).unwrap();
        npy::write(pb.as_ref(), &[b.len() / k, k], &b).unwrap();
        let mut args = vec!["ood", "--in-logits", &pa, "--out-logits", &pb];
        let t = case["temperature"].as_f64().map(|t| t.to_string());
        if let Some(t) = &t {
            args.extend(["--temperature", t]);
        }
        let r = json(&args);
        let e = &case["expected"]["exact_f64"];
        for key in ["auroc_entropy", "auroc_confidence"] {
            let (ours, exp) = (r[key].as_f64().unwrap(), e[key].as_f64().unwrap());
            assert!((ours - exp).abs() <= 1e-12 * exp, "{} {key}: {ours} vs {exp}", case["name"]);
        }
    }
}

#[test]
fn loss_is_handed_over_to_calib_torch() {
    let dir = tempfile::tempdir().unwrap();
    let (l, y) = (path(dir.path(), "l.npy"), path(dir.path(), "y.npy"));
    npy::write(l.as_ref(), &[1, 2], &[0.0f64, 0.0]).unwrap();
    npy::write(y.as_ref(), &[1], &[0i64]).unwrap();
    let o = calib(&["loss", "--logits", &l, "--labels", &y, "--loss", "ce", "--format", "json"]);
    let sibling = std::path::Path::new(env!("CARGO_BIN_EXE_calib")).with_file_name("calib-torch");
    if sibling.is_file() {
        assert!(o.ok, "{}", o.stderr);
        let r: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        assert!((r["loss"].as_f64().unwrap() - std::f64::consts::LN_2).abs() < 1e-15);
    } else {
        assert!(!o.ok && o.stderr.contains("calib-torch") && o.stderr.contains("not built"), "{}", o.stderr);
    }
}
