//! Bad input: each case is a one-line error naming the file and the problem, a non-zero exit
//! code, and nothing written. (Bad loss names: crates/calib-torch/tests/loss_cli.rs.)

mod common;
use calib::npy;
use common::*;
use std::path::Path;

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    /// A valid 3 × 4 logits file and labels, to be spoiled by each test.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let c = Case { dir };
        npy::write(c.p("l.npy").as_ref(), &[3, 4], &[0.5f32, 1.0, -1.0, 2.0, 0.0, 0.1, 0.2, 0.3, 3.0, 1.0, 0.0, 0.0])
            .unwrap();
        npy::write(c.p("y.npy").as_ref(), &[3], &[3i64, 2, 0]).unwrap();
        c
    }
    fn p(&self, name: &str) -> String {
        path(self.dir.path(), name)
    }
    /// Runs `metrics` with a plot output and `calibrate` with a plot folder on the given files.
    fn fails(&self, logits: &str, labels: &str, expect: &[&str]) {
        let plot = self.p("plot.svg");
        let plots = self.p("plots");
        expect_error(&["metrics", "--logits", logits, "--labels", labels, "--plot", &plot], expect);
        // `--only ece` checks the values in its single pass: the same error.
        for precision in ["f64", "f32"] {
            expect_error(
                &["metrics", "--logits", logits, "--labels", labels, "--only", "ece", "--precision", precision],
                expect,
            );
        }
        expect_error(&["calibrate", "--val-logits", logits, "--val-labels", labels, "--plot-dir", &plots], expect);
        assert!(!Path::new(&plot).exists() && !Path::new(&plots).exists(), "an output was written");
    }
}

#[track_caller]
fn expect_error(args: &[&str], expect: &[&str]) {
    let o = calib(args);
    assert!(!o.ok, "calib {args:?} should fail");
    assert!(o.stdout.is_empty(), "stdout: {}", o.stdout);
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "not one line: {}", o.stderr);
    for e in expect {
        assert!(o.stderr.contains(e), "'{e}' missing from: {}", o.stderr);
    }
}

#[test]
fn wrong_dtype() {
    let c = Case::new();
    npy::write(c.p("int.npy").as_ref(), &[3, 4], &[1i64; 12]).unwrap();
    c.fails(&c.p("int.npy"), &c.p("y.npy"), &["int.npy", "float32 or float64", "<i8"]);
    npy::write(c.p("fy.npy").as_ref(), &[3], &[1.0f32; 3]).unwrap();
    c.fails(&c.p("l.npy"), &c.p("fy.npy"), &["fy.npy", "int32, int64 or uint8"]);
}

#[test]
fn wrong_rank() {
    let c = Case::new();
    npy::write(c.p("flat.npy").as_ref(), &[12], &[0.0f32; 12]).unwrap();
    c.fails(&c.p("flat.npy"), &c.p("y.npy"), &["flat.npy", "2-D", "[12]"]);
}

#[test]
fn row_count_mismatch() {
    let c = Case::new();
    npy::write(c.p("y2.npy").as_ref(), &[2], &[0i64, 1]).unwrap();
    c.fails(&c.p("l.npy"), &c.p("y2.npy"), &["l.npy has 3 rows", "y2.npy has 2 labels"]);
}

#[test]
fn label_out_of_range() {
    let c = Case::new();
    npy::write(c.p("y4.npy").as_ref(), &[3], &[0i64, 4, 1]).unwrap();
    c.fails(&c.p("l.npy"), &c.p("y4.npy"), &["y4.npy", "label 4 at index 1", "outside 0..4"]);
}

#[test]
fn nan_value() {
    let c = Case::new();
    npy::write(c.p("nan.npy").as_ref(), &[3, 4], &[0.0, 0.0, 0.0, 0.0, 0.0, f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        .unwrap();
    c.fails(&c.p("nan.npy"), &c.p("y.npy"), &["nan.npy", "row 1, column 1", "NaN", "not finite"]);
}

#[test]
fn infinite_value() {
    let c = Case::new();
    npy::write(
        c.p("inf.npy").as_ref(),
        &[3, 4],
        &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, f64::INFINITY, 0.0],
    )
    .unwrap();
    c.fails(&c.p("inf.npy"), &c.p("y.npy"), &["inf.npy", "row 2, column 2", "inf", "not finite"]);
}

#[test]
fn empty_file() {
    let c = Case::new();
    std::fs::write(c.p("empty.npy"), b"").unwrap();
    c.fails(&c.p("empty.npy"), &c.p("y.npy"), &["empty.npy", "empty"]);
}

#[test]
fn truncated_npy() {
    let c = Case::new();
    let bytes = std::fs::read(c.p("l.npy")).unwrap();
    std::fs::write(c.p("cut.npy"), &bytes[..bytes.len() - 5]).unwrap();
    c.fails(&c.p("cut.npy"), &c.p("y.npy"), &["cut.npy", "truncated", "[3, 4]"]);
}

#[test]
fn unknown_method_name() {
    let c = Case::new();
    let dir = c.p("plots");
    expect_error(
        &[
            "calibrate",
            "--val-logits",
            &c.p("l.npy"),
            "--val-labels",
            &c.p("y.npy"),
            "--method",
            "lbfgs",
            "--plot-dir",
            &dir,
        ],
        &["unknown method 'lbfgs'", "ece-grid"],
    );
    assert!(!Path::new(&dir).exists());
}

#[test]
fn zero_bins() {
    let c = Case::new();
    let plot = c.p("plot.svg");
    expect_error(
        &["metrics", "--logits", &c.p("l.npy"), "--labels", &c.p("y.npy"), "--bins", "0", "--plot", &plot],
        &["--bins", "0 is outside 1–100000"],
    );
    assert!(!Path::new(&plot).exists());
}

#[test]
fn p0_outside_the_unit_interval() {
    let dir = tempfile::tempdir().unwrap();
    let plot = path(dir.path(), "g.svg");
    for p0 in ["0", "1", "1.5", "-0.2"] {
        expect_error(&["gamma", &format!("--p0={p0}"), "--plot", &plot], &["p0", "between 0 and 1"]);
    }
    assert!(!Path::new(&plot).exists());
}
