//! Running the toolkit's binaries as a user does, from the repository root (recipes name data
//! relative to it): every command goes through `calib`, which hands libtorch commands over to
//! `calib-torch` beside it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use calib_fixtures::{data, shared, workspace};

pub fn root() -> PathBuf {
    workspace()
}

/// `calib ARGS` from the repository root.
pub fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(calib_fixtures::binary("calib"));
    c.current_dir(root()).args(args);
    c
}

pub fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child =
        cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run calib");
    child.stdin.take().expect("piped").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait for calib")
}

pub fn run(args: &[&str]) -> Output {
    cmd(args).output().expect("run calib")
}

/// Runs with `--format json` and returns the JSON, failing the test when the command fails.
pub fn ok(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--format", "json"];
    all.extend(args);
    let o = run(&all);
    assert!(o.status.success(), "calib {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("calib {args:?}: not JSON ({e})"))
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

/// A run's `metrics.jsonl` without its timing fields, which no two runs share.
pub fn epoch_log(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_else(|e| panic!("{}: {e}", run.join("metrics.jsonl").display()))
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            for key in ["seconds", "samples_per_second", "data_wait_seconds", "collective_seconds"] {
                v.as_object_mut().unwrap().remove(key);
            }
            v
        })
        .collect()
}

/// `--set` overrides that shrink the Multi30k recipe to seconds of CPU: 3,000 training pairs, a
/// 600-entry vocabulary, d 64 with 1+1 layers, no kept epochs.
pub const TINY_TRANSLATION: [&str; 7] = [
    "data.limit=3000",
    "data.vocab_size=600",
    "model.d_model=64",
    "model.ffn=128",
    "model.encoder_layers=1",
    "model.decoder_layers=1",
    "train.keep_epochs=0",
];

/// Small real SST inputs for runs that take a second, as `--set` values: the first 100 dev
/// sentences stand in for the dev and test sets, the first 5,000 GloVe rows for the vectors
/// (files written into `dir`).
pub fn small_sst(dir: &Path) -> [String; 3] {
    let head = |file: &str, n: usize, name: &str| {
        let text = std::fs::read_to_string(data(file)).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text.lines().take(n).collect::<Vec<_>>().join("\n") + "\n").unwrap();
        path.display().to_string()
    };
    let dev = head("sst/trees/dev.txt", 100, "dev100.txt");
    let glove = head("glove/glove.6B.50d.subset.txt", 5000, "glove5k.txt");
    [format!("data.valid=\"{dev}\""), format!("data.test=\"{dev}\""), format!("data.glove=\"{glove}\"")]
}
