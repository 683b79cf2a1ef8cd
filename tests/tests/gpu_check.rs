//! `scripts/gpu-check.sh run --dry-run`: every step of the one-call GPU check runs on this CPU
//! with tiny shapes, so the script is known to work before a GPU is lent.

use calib_e2e::root;
use std::process::Command;

#[test]
fn the_gpu_check_runs_dry_on_the_cpu() {
    let out = tempfile::tempdir().unwrap();
    let bin = calib_fixtures::binary("calib-torch").parent().unwrap().to_path_buf();
    let o = Command::new("bash")
        .current_dir(root())
        .args(["scripts/gpu-check.sh", "run", "--dry-run"])
        .env("OUT", out.path())
        .env("CALIB_BIN", &bin)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap_or_default();
    assert!(o.status.success(), "{}\n{summary}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["ok"], true);
    let steps = json["steps"].as_array().unwrap();
    let step =
        |name: &str| steps.iter().find(|s| s["step"] == name).unwrap_or_else(|| panic!("no step {name} in\n{summary}"));
    for name in [
        "loss-vs-cpu",
        "train-steps-vs-cpu",
        "quickstart-fp32",
        "quickstart-bf16",
        "bench-train-small-cnn-fp32",
        "bench-train-transformer-small-bf16",
        "cuda-graph",
        "data-parallel-one-rank",
        "translation",
        "compare-decode",
        "text",
    ] {
        assert_eq!(step(name)["status"], "ok", "{name}");
    }
    // The peer's steps carry the ratio, the loss check its gradient difference.
    assert!(step("compare-train-small-cnn-fp32")["result"]["ratio"].as_f64().unwrap() > 0.0);
    assert!(step("loss-vs-cpu")["result"]["grad_max_abs_diff"].as_f64().unwrap() < 1e-6);
    assert!(summary.starts_with("| step | status | seconds | figure |"), "{summary}");
}
