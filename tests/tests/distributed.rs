//! Data-parallel training with real Gloo ranks on loopback, started by `calib train
//! --nproc-per-node N`: the weights equal one process's with the whole batches, a rank killed
//! mid-epoch stops the group with an error and leaves the last checkpoint intact, and the
//! restarted group resumes to the very weights of an uninterrupted one.

use calib_e2e::{cmd, epoch_log as log};
use std::collections::HashMap;
use std::path::Path;
use std::process::Output;
use tch::Tensor;

const SST: &str = "recipes/sst/tree-lstm.toml";

/// The first 100 SST dev sentences as dev and test sets, the first 5,000 GloVe rows; no dropout
/// (each rank draws its own masks, so equal weights need none); 24 sentences a step (whole per
/// rank for 1, 2 and 3 ranks), 4 steps an epoch.
fn settings(dir: &Path) -> Vec<String> {
    let [valid, test, glove] = calib_e2e::small_sst(dir);
    [
        valid,
        test,
        glove,
        "model.dropout=0".into(),
        // SGD with momentum: Adagrad's first steps are ±rate whatever a gradient's size, so
        // rounding in tiny gradients would show as whole steps.
        "train.optimizer={kind=\"sgd\", momentum=0.9}".into(),
        "train.max_batches=4".into(),
    ]
    .into_iter()
    .flat_map(|s| ["--set".to_string(), s])
    .collect()
}

fn train(out: &Path, settings: &[String], extra: &[&str], fault: Option<&str>) -> Output {
    let mut c = cmd(&["train", "--recipe", SST, "--out", out.to_str().unwrap(), "--batch-size", "24"]);
    c.args(settings).args(["--device", "cpu", "--quiet"]).args(extra).env("OMP_NUM_THREADS", "1");
    c.env_remove("CALIB_FAULT").env_remove("RANK").env_remove("WORLD_SIZE").env_remove("SLURM_NTASKS");
    if let Some(f) = fault {
        c.env("CALIB_FAULT", f);
    }
    c.output().unwrap()
}

#[track_caller]
fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn weights(run: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(run.join("last.safetensors")).unwrap().into_iter().collect()
}

#[test]
fn ranks_with_part_batches_end_as_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let s = settings(tmp.path());
    // Rates that train without blowing up (a summed loss over ~500 tree nodes a step needs a
    // small one): a diverging run would magnify rounding into anything.
    for (reduction, rate) in [("sum", 1e-4), ("mean", 0.05)] {
        let mut s = s.clone();
        s.extend(["--set".into(), format!("train.reduction=\"{reduction}\"")]);
        s.extend(["--set".into(), format!("train.schedule.base={rate}")]);
        let one = tmp.path().join(format!("{reduction}-1"));
        ok(&train(&one, &s, &[], None));
        let want = weights(&one);
        let want_log = log(&one);
        // A group of one runs every collective too (as DDP does). Half batches accumulated in
        // pairs make the same steps, alone or on two ranks: `mean` divides by all their rows.
        let half = ["--set", "train.batch_size=12", "--set", "train.accumulate=2", "--set", "train.max_batches=8"];
        let cases: [(&str, Vec<&str>); 5] = [
            ("1", vec!["--nproc-per-node", "1"]),
            ("2", vec!["--nproc-per-node", "2"]),
            ("3", vec!["--nproc-per-node", "3"]),
            ("accumulated", half.to_vec()),
            ("2-accumulated", [&half[..], &["--nproc-per-node", "2"]].concat()),
        ];
        for (n, extra) in cases {
            let run = tmp.path().join(format!("{reduction}-ranks-{n}"));
            ok(&train(&run, &s, &extra, None));
            let got = weights(&run);
            assert_eq!(got.len(), want.len());
            // Weights and optimiser state (momentum buffers), relative to their size: float32
            // sums in another order.
            for (name, w) in &want {
                let g = &got[name];
                let scale = w.abs().max().double_value(&[]).max(1.0);
                let diff = (g - w).abs().max().double_value(&[]) / scale;
                assert!(diff < 1e-5, "{reduction}, {n} ranks: {name} differs by {diff} (relative)");
            }
            // A group logs rank 0's time in the gradient collectives; one process has none.
            let first = |run: &Path| -> serde_json::Value {
                let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
                serde_json::from_str(text.lines().next().unwrap()).unwrap()
            };
            let grouped = n != "accumulated";
            assert_eq!(first(&run)["collective_seconds"].as_f64().is_some_and(|s| s > 0.0), grouped, "{n}");
            assert!(first(&one).get("collective_seconds").is_none());
            // The ranks' shares of the validation set add up to the whole of it.
            let (a, b) = (&log(&run)[0]["val"], &want_log[0]["val"]);
            assert_eq!(a["error"], b["error"], "{reduction}, {n} ranks");
            let (x, y) = (a["nll"].as_f64().unwrap(), b["nll"].as_f64().unwrap());
            assert!((x - y).abs() < 1e-5, "{reduction}, {n} ranks: val NLL {x} vs {y}");
        }
    }
}

#[test]
fn a_killed_rank_stops_the_group_and_a_restart_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = settings(tmp.path());
    let two = ["--nproc-per-node", "2", "--epochs", "3"];
    let straight = tmp.path().join("straight");
    ok(&train(&straight, &s, &two, None));

    // Rank 1 is killed at its 6th step (epoch 2); rank 0 finds its peer gone and stops.
    let run = tmp.path().join("killed");
    let o = train(&run, &s, &two, Some("batch:6@1"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("rank 1 of 2 failed (signal: 9 (SIGKILL))"), "{err}");
    assert!(err.contains("collective all-reduce: rank 0 of 2:"), "{err}");
    // Epoch 1's checkpoint is intact and nothing half-written is left.
    assert_eq!(log(&run).len(), 1);
    assert_eq!(weights(&run).len(), weights(&straight).len());
    let stale = std::fs::read_dir(&run)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".calib-"));
    assert_eq!(stale.count(), 0);

    let o = cmd(&["train", "--resume", "--out", run.to_str().unwrap(), "--nproc-per-node", "2"])
        .args(["--device", "cpu", "--quiet"])
        .env("OMP_NUM_THREADS", "1")
        .env_remove("CALIB_FAULT")
        .output()
        .unwrap();
    ok(&o);
    assert_eq!(log(&run), log(&straight));
    assert!(
        std::fs::read(run.join("last.safetensors")).unwrap()
            == std::fs::read(straight.join("last.safetensors")).unwrap(),
        "the resumed group's weights differ from the uninterrupted group's"
    );
}

#[test]
fn launcher_variables_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let s = settings(tmp.path());
    let run = tmp.path().join("bad");
    let mut c = cmd(&["train", "--recipe", SST, "--out", run.to_str().unwrap(), "--device", "cpu", "--quiet"]);
    let o = c.args(&s).env("RANK", "2").env("WORLD_SIZE", "2").output().unwrap();
    calib_e2e::one_line_error(&o, &["RANK=2: must be below the world size 2"]);
    let mut c = cmd(&["train", "--recipe", SST, "--out", run.to_str().unwrap(), "--nproc-per-node", "2"]);
    let o = c.args(&s).env("RANK", "0").env("WORLD_SIZE", "2").output().unwrap();
    calib_e2e::one_line_error(&o, &["already a rank"]);
    // A rank whose peers never come stops at its timeout instead of waiting for ever.
    let mut c = cmd(&["train", "--recipe", SST, "--out", run.to_str().unwrap(), "--dist-timeout", "2"]);
    let o = c.args(&s).args(["--device", "cpu"]).env("RANK", "0").env("WORLD_SIZE", "2").env("MASTER_PORT", "29517");
    let o = o.output().unwrap();
    calib_e2e::one_line_error(&o, &["rank 0 of 2 could not join the gloo group at 127.0.0.1:29517"]);
    assert!(!run.join("state.json").exists());
}

/// A translation run on two ranks that trains its own vocabulary: rank 0 trains it, the other
/// rank reads it (two vocabularies of the same size could differ), and token batches are each
/// rank's (fairseq's --max-tokens per GPU), so 2,000 tokens pass the 2-rank divisibility check.
#[test]
fn translation_ranks_share_one_trained_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mt");
    let sets = [
        "data.limit=2000",
        "data.vocab_size=500",
        "data.max_len=30",
        "model.d_model=64",
        "model.ffn=128",
        "model.encoder_layers=1",
        "model.decoder_layers=1",
        "train.max_batches=3",
        "train.keep_epochs=0",
    ];
    let mut c = cmd(&["train", "--recipe", "recipes/multi30k/transformer-small.toml", "--out", out.to_str().unwrap()]);
    c.args(["--epochs", "1", "--batch-size", "1001", "--nproc-per-node", "2", "--device", "cpu", "--quiet"]);
    for s in sets {
        c.args(["--set", s]);
    }
    ok(&c.env("OMP_NUM_THREADS", "1").env_remove("RANK").env_remove("WORLD_SIZE").output().unwrap());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["global_step"], 3);
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("tokenizer.json"), "{config}");
    let vocab: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer.json")).unwrap()).unwrap();
    assert_eq!(vocab["model"]["vocab"].as_object().map(|v| v.len()), Some(500));
}
