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
                n += 1;
            }
        }
    }
    assert!(n >= 10, "only {n} recipes");
}
