//! `calib-torch loss` (what `calib loss` runs): values, gradients, bad input, device errors.

use calib::npy;
use std::path::Path;
use std::process::Command;

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_calib-torch")).args(args).output().expect("run calib-torch");
    Output {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let o = run(&all);
    assert!(o.ok, "calib-torch {args:?} failed: {}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap()
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

/// One sample, K = 2, logits (0, 0), label 0.
fn tiny(dir: &Path) -> (String, String) {
    let (l, y) = (path(dir, "l.npy"), path(dir, "y.npy"));
    npy::write(l.as_ref(), &[1, 2], &[0.0f64, 0.0]).unwrap();
    npy::write(y.as_ref(), &[1], &[0i64]).unwrap();
    (l, y)
}

#[test]
fn loss_writes_the_gradient() {
    let dir = tempfile::tempdir().unwrap();
    let (l, y) = tiny(dir.path());
    let g = path(dir.path(), "g.npy");
    // CE = ln 2, gradient (p − onehot) = (−0.5, 0.5).
    let r = json(&["loss", "--logits", &l, "--labels", &y, "--loss", "ce", "--grad-out", &g]);
    assert!((r["loss"].as_f64().unwrap() - std::f64::consts::LN_2).abs() < 1e-15);
    assert_eq!(r["reduction"], "sum");
    let grad = npy::read_floats(g.as_ref(), 2, "gradient").unwrap();
    assert_eq!(grad.into_real::<f64>(), vec![-0.5, 0.5]);
    // Focal loss with γ = 2 at p = 1/2: (1/2)² · ln 2.
    let r = json(&["loss", "--logits", &l, "--labels", &y, "--loss", "focal:2"]);
    assert!((r["loss"].as_f64().unwrap() - 0.25 * std::f64::consts::LN_2).abs() < 1e-15);
}

#[test]
fn cuda_request_without_cuda_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (l, y) = tiny(dir.path());
    let auto = json(&["loss", "--logits", &l, "--labels", &y, "--loss", "ce", "--device", "auto"]);
    let o = run(&["loss", "--logits", &l, "--labels", &y, "--loss", "ce", "--device", "cuda"]);
    if auto["device"] == "Cpu" {
        assert!(!o.ok);
        assert!(o.stderr.contains("--device cuda") && o.stderr.contains("libtorch_cuda.so"), "{}", o.stderr);
    } else {
        assert!(o.ok, "CUDA is available, so --device cuda must work: {}", o.stderr);
    }
}

#[test]
fn real_predictions_mean_cross_entropy_is_the_nll() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/predictions/cifar10-resnet18-step150-ce");
    let (l, y) = (root.join("test_logits.npy"), root.join("test_labels.npy"));
    let r = json(&[
        "loss",
        "--logits",
        l.to_str().unwrap(),
        "--labels",
        y.to_str().unwrap(),
        "--loss",
        "ce",
        "--reduction",
        "mean",
    ]);
    // The figure the PyTorch script printed for this model (data/predictions/README.md).
    assert!((r["loss"].as_f64().unwrap() - 0.452).abs() < 5e-4);
}

#[test]
fn bad_input_is_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (l, y) = tiny(dir.path());
    let g = path(dir.path(), "g.npy");
    let cases: [(&[&str], &[&str]); 3] = [
        (&["--loss", "focal-ish:3"], &["unknown loss 'focal-ish:3'", "flsd:53"]),
        (&["--loss", "ce", "--reduction", "avg"], &["unknown reduction 'avg'"]),
        (&["--loss", "flsd:0.5=3,0.2=5"], &["thresholds must increase"]),
    ];
    for (extra, expect) in cases {
        let mut args = vec!["loss", "--logits", &l, "--labels", &y, "--grad-out", &g];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(!o.ok && o.stdout.is_empty());
        assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
        for e in expect {
            assert!(o.stderr.contains(e), "'{e}' missing from {}", o.stderr);
        }
        assert!(!Path::new(&g).exists());
    }
}
