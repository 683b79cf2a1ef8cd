//! The binning calibrators (histogram, isotonic, BBQ, ENIR) against netcal 1.4.0: every
//! `tests/vectors/netcal_*.json` (written by `benches/make_netcal_vectors.py`) holds fitting rows
//! and labels, held-out rows and, per method, netcal's calibrated probabilities of the held-out
//! rows. Each method is fitted here and must match every probability to 1e-6 (BBQ to 5e-6: its
//! model weights come from netcal's float32 torch sums, whose order depends on the CPU's vector
//! width and threads; ours sums the same float32 terms in f64); every row must sum to 1; the
//! fitted calibrator must survive a JSON round trip unchanged.

use calib::calibrators::{Calibrator, FitOptions, Method, Predictions, Saved};
mod common;

use calib::ScoreKind;

#[test]
fn binning_calibrators_equal_netcal() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, doc) in common::own_vectors("netcal_") {
        let (fit, k) = common::matrix(&doc["fit"]["rows"]);
        let labels: Vec<usize> =
            doc["fit"]["labels"].as_array().unwrap().iter().map(|l| l.as_u64().unwrap() as usize).collect();
        let x = Predictions::new(fit, k, ScoreKind::Probs).unwrap();
        let (held, _) = common::matrix(&doc["held_out"]);
        let h = Predictions::new(held, k, ScoreKind::Probs).unwrap();
        for (method_name, out) in doc["methods"].as_object().unwrap() {
            let method: Method = method_name.parse().unwrap();
            let fitted = match method.fit(&x, &labels, &FitOptions::default()) {
                Ok(f) => f,
                Err(e) => {
                    failures.push(format!("{name} {method_name}: fit failed: {e}"));
                    continue;
                }
            };
            let q = fitted.transform(&h).unwrap();
            let (expected, _) = common::matrix(&out["probs"]);
            let worst = q.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            let tolerance = if matches!(method, Method::Bbq) { 5e-6 } else { 1e-6 };
            if worst > tolerance {
                let at = q.iter().zip(&expected).position(|(a, b)| (a - b).abs() == worst).unwrap();
                failures.push(format!(
                    "{name} {method_name}: max |ours - netcal| = {worst:.3e} at row {} class {} (ours {}, netcal {})",
                    at / k,
                    at % k,
                    q[at],
                    expected[at]
                ));
            }
            for (i, r) in q.chunks(k).enumerate() {
                let s: f64 = r.iter().sum();
                assert!((s - 1.0).abs() < 1e-12, "{name} {method_name}: row {i} sums to {s}");
            }
            let saved = Saved::new(method_name, ScoreKind::Probs, fitted.clone());
            let back = Saved::from_json(&saved.to_json()).unwrap();
            assert_eq!(back.fitted, fitted, "{name} {method_name}: JSON round trip");
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{} of {checked} fits differ from netcal:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 25, "only {checked} method-case pairs checked");
}
