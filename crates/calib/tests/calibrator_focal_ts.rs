//! Focal temperature scaling against its reference: `tests/vectors/focal_ts.json`
//! (`benches/make_focal_ts_vectors.py`, the formulas of `slavikkom/focal_temperature_scaling`
//! in float64) holds fitting logits and labels, γ, the temperature the reference's grid picks
//! and the calibrated probabilities of held-out logits.

use calib::calibrators::{Calibrator, FitOptions, Fitted, Method, Predictions, Saved};
use calib::ScoreKind;
mod common;

#[test]
fn focal_temperature_scaling_equals_its_reference() {
    let mut checked = 0;
    for (name, doc) in common::own_vectors("focal_ts") {
        for case in doc["cases"].as_array().unwrap() {
            let ctx = format!("{name} {}", case["case"].as_str().unwrap());
            let (fit, k) = common::matrix(&case["fit"]["logits"]);
            let labels: Vec<usize> = common::ints(&case["fit"]["labels"]).iter().map(|&l| l as usize).collect();
            let gamma = case["gamma"].as_f64().unwrap();
            let method: Method = format!("focal-ts:{gamma}").parse().unwrap();
            let x = Predictions::new(fit, k, ScoreKind::Logits).unwrap();
            let fitted = method.fit(&x, &labels, &FitOptions::default()).unwrap();
            let Fitted::FocalTs(f) = &fitted else { panic!("{ctx}: not focal-ts") };
            assert_eq!(f.temperature, case["temperature"].as_f64().unwrap(), "{ctx}: temperature");
            let (held, _) = common::matrix(&case["held_out"]);
            let q = fitted.transform(&Predictions::new(held, k, ScoreKind::Logits).unwrap()).unwrap();
            let (expected, _) = common::matrix(&case["probs"]);
            let worst = q.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-9, "{ctx}: max |ours − reference| = {worst:e}");
            let saved = Saved::new(&method.to_string(), ScoreKind::Logits, fitted.clone());
            assert_eq!(Saved::from_json(&saved.to_json()).unwrap().fitted, fitted, "{ctx}: JSON round trip");
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} cases");
    assert!("focal-ts:-1".parse::<Method>().is_err() && "focal-ts:x".parse::<Method>().is_err());
    assert_eq!("focal-ts".parse::<Method>().unwrap().to_string(), "focal-ts:2");
}
