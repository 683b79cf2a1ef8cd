//! `calib-torch train` / `eval` on the real CIFAR-10 subset embedded in data/cifar10-mini: it
//! learns, a killed run resumes to the same result, bad input stops with a clear error.

use calib_e2e::{cmd, fails, ok, run};
use std::path::Path;
use std::time::{Duration, Instant};

const RECIPE: &str = "recipes/quickstart/small-cnn.toml";

fn epochs_done(out: &Path) -> usize {
    std::fs::read_to_string(out.join("state.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["epochs_done"].as_u64())
        .unwrap_or(0) as usize
}

#[test]
fn learns_real_cifar10_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    let r = ok(&[
        "train",
        "--recipe",
        RECIPE,
        "--epochs",
        "8",
        "--set",
        "train.schedule.milestones=[6]",
        "--set",
        "train.probe_grad_norms=300",
        "--out",
        out_s,
        "--device",
        "cpu",
        "--quiet",
    ]);
    assert_eq!(r["epochs"], 8);
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 8);
    // The per-sample gradient-norm probe (Figure 3 b–d) on 300 training images every epoch.
    for line in log.lines() {
        let g = &serde_json::from_str::<serde_json::Value>(line).unwrap()["grad_norms"];
        assert_eq!(g["samples"], 300);
        assert_eq!(g["counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum::<u64>(), 300);
        assert!(g["median"].as_f64().unwrap() > 0.0);
    }
    let e = ok(&[
        "eval",
        "--run",
        out_s,
        "--bootstrap",
        "20",
        "--device",
        "cpu",
        "--ood",
        &format!("tinyimagenet={}", calib_e2e::data("tinyimagenet/tiny-imagenet-200/val/images").display()),
    ]);
    let m = &e["models"][0];
    // Chance is 90 % error; eight epochs on 1,200 real images get well below it.
    let error = m["before"]["error"].as_f64().unwrap();
    assert!(error < 0.72, "test error {error}");
    assert_eq!(m["before"]["n"], 500);
    for f in [
        "predictions/test_logits.npy",
        "predictions/val_labels.npy",
        "report.md",
        "plots/run-before.svg",
        "plots/grad-norms.svg",
        "config.toml",
        "best.safetensors",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    // Tiny-ImageNet's 10,000 validation images, resized from 64×64 to 32×32.
    assert_eq!(e["ood"]["tinyimagenet"]["n"], 10_000);
    assert!(out.join("predictions/ood-tinyimagenet_logits.npy").is_file());
    let auroc = e["ood"]["tinyimagenet"]["before"]["auroc_entropy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auroc));
    // `calib report` on the run's predictions (no libtorch) finds the temperature eval found.
    let report = dir.path().join("report");
    let pred = out.join("predictions");
    let r = ok(&[
        "report",
        "--predictions",
        pred.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
        "--bootstrap",
        "20",
    ]);
    assert_eq!(r["models"][0]["temperature"], m["temperature"]);
    assert!(report.join("report.md").is_file() && report.join("report.json").is_file());
}

/// `calib` without `calib-torch` beside it says how to build it, in one line.
#[test]
fn calib_without_calib_torch_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join("calib");
    std::fs::copy(calib_fixtures::binary("calib"), &alone).unwrap();
    // A workspace build of `calib` may link libtorch (cargo unifies features), found through a
    // relative RUNPATH that the copy loses: point the loader at the project's libtorch.
    let libs = calib_e2e::root().join(".deps/libtorch/lib");
    let o = std::process::Command::new(&alone)
        .args(["train", "--recipe", RECIPE])
        .env("LD_LIBRARY_PATH", libs)
        .output()
        .unwrap();
    calib_e2e::one_line_error(&o, &["calib-torch", "cargo build --release -p calib-torch"]);
}

/// A run killed mid-training and resumed ends exactly like an uninterrupted one (CPU, same seed).
#[test]
fn killed_run_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let (straight, killed) = (dir.path().join("straight"), dir.path().join("killed"));
    let args = |out: &Path| {
        vec!["train", "--recipe", RECIPE, "--epochs", "4", "--out", out.to_str().unwrap(), "--device", "cpu", "--quiet"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let o = cmd(&args(&straight).iter().map(|s| s.as_str()).collect::<Vec<_>>()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut child = cmd(&args(&killed).iter().map(|s| s.as_str()).collect::<Vec<_>>()).spawn().unwrap();
    let start = Instant::now();
    while epochs_done(&killed) < 2 {
        assert!(start.elapsed() < Duration::from_secs(120), "the run never finished epoch 2");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(epochs_done(&killed) < 4, "killed too late to test anything");
    let o = run(&["train", "--resume", "--out", killed.to_str().unwrap(), "--device", "cpu", "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let a = std::fs::read_to_string(straight.join("metrics.jsonl")).unwrap();
    let b = std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap();
    let strip = |t: &str| -> Vec<serde_json::Value> {
        t.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                let o = v.as_object_mut().unwrap();
                o.remove("seconds");
                o.remove("samples_per_second");
                o.remove("data_wait_seconds");
                v
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
    assert_eq!(
        std::fs::read(straight.join("last.safetensors")).unwrap(),
        std::fs::read(killed.join("last.safetensors")).unwrap()
    );
}

#[test]
fn nan_loss_stops_with_the_epoch_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    ok(&["train", "--recipe", RECIPE, "--epochs", "1", "--out", out_s, "--device", "cpu", "--quiet"]);
    let before = std::fs::read(out.join("last.safetensors")).unwrap();
    fails(
        &[
            "train",
            "--resume",
            "--out",
            out_s,
            "--epochs",
            "2",
            "--set",
            "train.schedule.base=1e30",
            "--device",
            "cpu",
            "--quiet",
        ],
        &["epoch 2, step", "the loss is", "after epoch 1, is intact"],
    );
    assert_eq!(std::fs::read(out.join("last.safetensors")).unwrap(), before);
    assert_eq!(epochs_done(&out), 1);
}

/// Killed between writing last.safetensors and state.json: resume trusts the checkpoint.
#[test]
fn resume_reads_the_state_saved_with_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    ok(&["train", "--recipe", RECIPE, "--epochs", "2", "--out", out_s, "--device", "cpu", "--quiet"]);
    let state = out.join("state.json");
    let stale = std::fs::read_to_string(&state).unwrap().replace("\"epochs_done\": 2", "\"epochs_done\": 1");
    std::fs::write(&state, stale).unwrap();
    let r = ok(&["train", "--resume", "--out", out_s, "--device", "cpu", "--quiet"]);
    assert_eq!(r["epochs"], 2, "nothing left to train");
    assert_eq!(std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().count(), 2);
    assert_eq!(epochs_done(&out), 2);
}

#[test]
fn recipe_and_data_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    fails(
        &["train", "--recipe", RECIPE, "--set", "train.epoch=3", "--out", out_s],
        &["small-cnn.toml", "unknown field `epoch`"],
    );
    fails(
        &["train", "--recipe", RECIPE, "--data", "/no/such/folder", "--out", out_s],
        &["/no/such/folder", "does not exist"],
    );
    fails(
        &["train", "--recipe", RECIPE, "--set", "model.arch=\"resnet51\"", "--out", out_s],
        &["unknown model 'resnet51'"],
    );
    assert!(!out.exists(), "a failed run left a folder behind");
    fails(&["train", "--resume", "--out", out_s], &["config.toml", "cannot read"]);
}
