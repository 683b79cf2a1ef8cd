//! Running the `calib-torch` binary from the repository root in tests (recipes name data
//! relative to it).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_calib-torch"));
    c.current_dir(root()).args(args);
    c
}

pub fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child =
        cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run calib-torch");
    child.stdin.take().expect("piped").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait for calib-torch")
}

pub fn run(args: &[&str]) -> Output {
    cmd(args).output().expect("run calib-torch")
}

/// Runs with `--format json` and returns the JSON, failing the test when the command fails.
pub fn ok(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let o = run(&all);
    assert!(o.status.success(), "calib-torch {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The command failed with one line on stderr holding every `expect`.
#[track_caller]
pub fn one_line_error(o: &Output, expect: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "should fail: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    for e in expect {
        assert!(err.contains(e), "'{e}' missing from: {err}");
    }
}

#[track_caller]
pub fn fails(args: &[&str], expect: &[&str]) {
    one_line_error(&run(args), expect);
}
