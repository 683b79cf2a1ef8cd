//! Every recipe in recipes/ parses and validates (unknown keys, bad names and bad schedules are
//! errors), and carries the paper's settings.

use std::path::Path;
use std::process::Command;

#[test]
fn every_recipe_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes");
    let mut n = 0;
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&f).unwrap();
                let v: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                // Parse through the binary's own loader with an impossible data folder: the recipe must pass
                // validation and fail only at reading the data.
                let o = Command::new(env!("CARGO_BIN_EXE_calib-torch"))
                    .args(["train", "--recipe", f.to_str().unwrap(), "--data", "/nonexistent-data", "--quiet"])
                    .output()
                    .unwrap();
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(err.contains("/nonexistent-data"), "{}: {err}", f.display());
                let train = v["train"].as_table().unwrap();
                if dir.ends_with("cifar10") || dir.ends_with("cifar100") {
                    assert_eq!(train["epochs"].as_integer(), Some(350), "{}", f.display());
                    assert_eq!(train["batch_size"].as_integer(), Some(128));
                    assert_eq!(train["schedule"]["milestones"].as_array().unwrap().len(), 2);
                    assert_eq!(v["data"]["val_size"].as_integer(), Some(5000));
                }
                if dir.ends_with("wmt14-en-de") {
                    // SPEC.md: Transformer base, Adam (0.9, 0.98, 1e-9), inverse-sqrt with 4,000 warm-up steps, LS 0.1.
                    assert_eq!(v["model"]["preset"].as_str(), Some("base"));
                    assert_eq!(train["schedule"]["warmup"].as_integer(), Some(4000));
                    assert_eq!(train["optimizer"]["beta2"].as_float(), Some(0.98));
                    assert_eq!(train["optimizer"]["eps"].as_float(), Some(1e-9));
                    assert_eq!(train["loss"].as_str(), Some("ls:0.1"));
                }
                n += 1;
            }
        }
    }
    assert!(n >= 12, "only {n} recipes");
}
