//! Fault injection: training runs killed with SIGKILL (`CALIB_FAULT`, see `calib_train::fault`)
//! mid-epoch before their first checkpoint, inside a checkpoint write, between an epoch's log line
//! and its checkpoint, and twice in one run, then continued (`--resume`, or the same command
//! again), end with weights and a log byte-identical to an uninterrupted run's (the log's timing
//! fields aside) and no temporary file left behind; a folder that is not a run takes a run only
//! with `--force`. `scripts/kill-loop.sh` runs the longer loop of kills at random moments.

use calib_e2e::{cmd, epoch_log as log, small_sst as small_inputs};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;

const SST: &str = "recipes/sst/tree-lstm.toml";

fn train(out: &Path, inputs: &[String; 3], fault: Option<&str>, resume: bool) -> Output {
    train_with(out, inputs, fault, resume, &[])
}

fn train_with(out: &Path, inputs: &[String; 3], fault: Option<&str>, resume: bool, extra: &[&str]) -> Output {
    let o = out.to_str().unwrap();
    let mut c = if resume {
        cmd(&["train", "--resume", "--out", o])
    } else {
        let mut c = cmd(&["train", "--recipe", SST, "--out", o, "--epochs", "3", "--set", "train.max_batches=4"]);
        for set in inputs {
            c.args(["--set", set]);
        }
        c
    };
    c.args(["--device", "cpu", "--quiet"]).args(extra).env_remove("CALIB_FAULT");
    if let Some(f) = fault {
        c.env("CALIB_FAULT", f);
    }
    c.output().unwrap()
}

/// A name, the kills in order (the fault, and whether that run was resumed), and whether the run
/// is then continued with `--resume` (or the same command again).
type Scenario = (&'static str, &'static [(&'static str, bool)], bool);

#[test]
fn killed_runs_end_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = small_inputs(tmp.path());
    let straight = tmp.path().join("straight");
    let o = train(&straight, &inputs, None, false);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (want_log, want_weights) = (log(&straight), std::fs::read(straight.join("last.safetensors")).unwrap());
    assert_eq!(want_log.len(), 3);

    let scenarios: [Scenario; 6] = [
        ("mid-epoch, before the first checkpoint, then the same command", &[("batch:2", false)], false),
        ("mid-epoch, before the first checkpoint, then --resume", &[("batch:3", false)], true),
        ("inside the first checkpoint write", &[("checkpoint:1", false)], true),
        ("between epoch 2's log line and its checkpoint", &[("log:2", false)], true),
        ("inside a later checkpoint write", &[("checkpoint:4", false)], true),
        ("twice: after a log line, then mid-epoch of the resumed run", &[("log:1", false), ("batch:3", true)], true),
    ];
    for (i, (name, kills, resume)) in scenarios.into_iter().enumerate() {
        let out = tmp.path().join(format!("killed-{i}"));
        for (fault, resumed) in kills {
            let o = train(&out, &inputs, Some(fault), *resumed);
            assert_eq!(o.status.signal(), Some(9), "{name}: {fault} did not kill the run: {o:?}");
        }
        let o = train(&out, &inputs, None, resume);
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(log(&out), want_log, "{name}: the log differs");
        assert!(std::fs::read(out.join("last.safetensors")).unwrap() == want_weights, "{name}: the weights differ");
        let stale: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".calib-"))
            .collect();
        assert!(stale.is_empty(), "{name}: temporary files left: {stale:?}");
    }

    // A folder that is not a run is refused; with --force the run goes in and the rest stays.
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine\n").unwrap();
    let o = train(&foreign, &inputs, None, false);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a calib run (it holds notes.txt)"), "{o:?}");
    let o = train_with(&foreign, &inputs, None, false, &["--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(log(&foreign), want_log);
    assert_eq!(std::fs::read_to_string(foreign.join("notes.txt")).unwrap(), "mine\n");
}
