//! The scaling calibrators (vector, matrix, matrix-odir, Dirichlet, ETS, Platt, beta) against
//! scipy: every `tests/vectors/scaling_*.json` (written by `benches/make_scaling_vectors.py`) is
//! fitted with the method its `"method"` names. Our objective on the fitting rows, computed here
//! from the fitted calibrator's outputs and saved parameters, must be at least as low as scipy's
//! optimum (within 1e-9 relative), and the calibrated probabilities of the held-out rows must
//! match scipy's to 1e-5. A case whose objective has no finite optimum (`"finite_optimum": false`:
//! scipy's fit ran into its iteration limit with the weights still growing) must be refused.

use calib::calibrators::{Calibrator, FitOptions, Fitted, Method, Predictions};
mod common;

use calib::ScoreKind;
use serde_json::Value;

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array().expect("numbers").iter().map(|x| x.as_f64().unwrap()).collect()
}

/// The objective the method minimises, at the fitted calibrator: mean NLL (plus the ODIR penalty)
/// or, for ETS, the mean squared error to the one-hot labels.
fn objective(method: &Method, fitted: &Fitted, x: &Predictions, labels: &[usize]) -> f64 {
    let (k, n) = (x.k(), labels.len() as f64);
    let q = fitted.transform(x).unwrap();
    if let Method::Ets = method {
        let se: f64 = q
            .chunks(k)
            .zip(labels)
            .map(|(r, &l)| r.iter().enumerate().map(|(j, p)| (p - if j == l { 1.0 } else { 0.0 }).powi(2)).sum::<f64>())
            .sum();
        return se / q.len() as f64;
    }
    let nll = -q.chunks(k).zip(labels).map(|(r, &l)| r[l].ln()).sum::<f64>() / n;
    let odir = match *method {
        Method::Matrix { odir: Some(p) } => Some(p),
        Method::Dirichlet { lambda, mu } => Some((lambda, mu)),
        _ => None,
    };
    let Some((lambda, mu)) = odir else { return nll };
    let saved = serde_json::to_value(fitted).unwrap();
    let (w, b) = (numbers(&saved["weights"]), numbers(&saved["bias"]));
    let off: f64 = (0..k * k).filter(|i| i / k != i % k).map(|i| w[i] * w[i]).sum();
    let k = k as f64;
    nll + lambda * off / (k * (k - 1.0)) + mu * b.iter().map(|v| v * v).sum::<f64>() / k
}

#[test]
fn scaling_calibrators_reach_scipy_optimum() {
    let (mut report, mut failures) = (Vec::new(), Vec::new());
    for (file, v) in common::own_vectors("scaling_") {
        let method: Method = v["method"].as_str().unwrap().parse().unwrap();
        let kind = match v["kind"].as_str().unwrap() {
            "logits" => ScoreKind::Logits,
            "probs" => ScoreKind::Probs,
            other => panic!("{file}: unknown kind {other}"),
        };
        let (values, k) = common::matrix(&v["fit"]["rows"]);
        let labels: Vec<usize> =
            v["fit"]["labels"].as_array().unwrap().iter().map(|l| l.as_u64().unwrap() as usize).collect();
        let x = Predictions::new(values, k, kind).unwrap();
        let start = std::time::Instant::now();
        let result = method.fit(&x, &labels, &FitOptions::default());
        if v["finite_optimum"] == false {
            match result {
                Err(e) if e.to_string().contains("no finite optimum") => report.push(format!("{file:70} refused: {e}")),
                Err(e) => failures.push(format!("{file}: refused, but not as having no finite optimum: {e}")),
                Ok(_) => failures.push(format!("{file}: fitted, but the objective has no finite optimum")),
            }
            continue;
        }
        let fitted = match result {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        let seconds = start.elapsed().as_secs_f64();

        let ours = objective(&method, &fitted, &x, &labels);
        let scipy = v["objective"].as_f64().unwrap();
        assert!(
            ours <= scipy + 1e-9 * scipy.abs() + 1e-15,
            "{file}: objective {ours:.15e} is above scipy's {scipy:.15e} (relative {:e})",
            (ours - scipy) / scipy
        );

        let (held, _) = common::matrix(&v["held_out"]["rows"]);
        let q = fitted.transform(&Predictions::new(held, k, kind).unwrap()).unwrap();
        let (expected, _) = common::matrix(&v["held_out"]["probs"]);
        let diff = q.iter().zip(&expected).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff <= 1e-5, "{file}: held-out probabilities differ from scipy's by {diff:e}");
        for (i, r) in q.chunks(k).enumerate() {
            assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{file}: held-out row {i} does not sum to 1");
        }

        // Parameters, where stored, in the same (centred) representative.
        let mut param_diff = 0.0f64;
        if let Some(params) = v["parameters"].as_object() {
            let saved = serde_json::to_value(&fitted).unwrap();
            for (name, expected) in params {
                let (ours, exp) = match expected {
                    Value::Array(_) => (numbers(&saved[name]), numbers(expected)),
                    _ => (vec![saved[name].as_f64().unwrap()], vec![expected.as_f64().unwrap()]),
                };
                assert_eq!(ours.len(), exp.len(), "{file}: {name}");
                let scale = exp.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                let d = ours.iter().zip(&exp).fold(0.0f64, |m, (a, b)| m.max((a - b).abs())) / scale;
                param_diff = param_diff.max(d);
            }
        }
        report.push(format!(
            "{file:70} objective {:+.1e} relative, probabilities {diff:.1e}, parameters {param_diff:.1e}, {seconds:.3} s",
            (ours - scipy) / scipy
        ));
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "fits that failed:\n{}", failures.join("\n"));
}
