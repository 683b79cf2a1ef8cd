//! One clap tree: `calib` knows every command's real options (libtorch commands included), and
//! writing into a closed pipe ends it quietly.

mod common;
use calib::npy;
use common::*;
use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn libtorch_commands_show_their_real_options() {
    let train = calib(&["train", "--help"]);
    assert!(train.ok, "{}", train.stderr);
    for flag in ["--recipe", "--resume", "--precision", "--device", "--set"] {
        assert!(train.stdout.contains(flag), "calib train --help lacks {flag}: {}", train.stdout);
    }
    let decode = calib(&["decode", "--help"]);
    assert!(decode.ok && decode.stdout.contains("--beam") && decode.stdout.contains("--nbest"), "{}", decode.stdout);
    let bench = calib(&["bench", "decode", "--help"]);
    assert!(bench.ok && bench.stdout.contains("--max-tokens"), "{}", bench.stdout);
    let study = calib(&["study", "temperature", "--help"]);
    assert!(study.ok && study.stdout.contains("--valid-src"), "{}", study.stdout);
}

/// Bad arguments of a libtorch command fail in `calib` itself, with clap's one-line message and
/// status 2, whether or not `calib-torch` is built.
#[test]
fn bad_arguments_of_libtorch_commands_fail_in_calib() {
    for args in [
        &["train", "--no-such-flag"][..],
        &["train", "--recipe", "r.toml", "--device", "tpu"],
        &["decode", "--run", "r", "--beam", "many"],
        &["eval"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_calib")).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "calib {args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "not one line: {stderr}");
        assert!(stderr.starts_with("error:"), "{stderr}");
        assert!(o.stdout.is_empty());
    }
}

/// `calib metrics … | head -c 10`: the reader goes away with most of the output unwritten, and
/// `calib` stops with status 0 and nothing on stderr (it used to panic, status 101).
#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (l, y) = (path(dir.path(), "l.npy"), path(dir.path(), "y.npy"));
    let (n, k) = (200usize, 3usize);
    let logits: Vec<f64> = (0..n * k).map(|i| ((i * 7919) % 13) as f64 / 3.0).collect();
    let labels: Vec<i64> = (0..n as i64).map(|i| i % k as i64).collect();
    npy::write(l.as_ref(), &[n, k], &logits).unwrap();
    npy::write(y.as_ref(), &[n], &labels).unwrap();
    for format in ["table", "json"] {
        // 20 000 bins: about 1.5 MB of output, far more than a pipe holds.
        let mut child = Command::new(env!("CARGO_BIN_EXE_calib"))
            .args(["metrics", "--logits", &l, "--labels", &y, "--bins", "20000", "--format", format])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = [0u8; 10];
        child.stdout.as_mut().unwrap().read_exact(&mut head).unwrap();
        drop(child.stdout.take());
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let status = child.wait().unwrap();
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{format}: {stderr}");
        assert!(stderr.is_empty(), "{format}: {stderr}");
        assert_eq!(status.code(), Some(0), "{format}: {stderr}");
    }
}

/// `calib --help | true`: help text into a closed pipe ends quietly too.
#[test]
fn help_into_a_closed_pipe_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_calib"))
        .args(["train", "--help"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
