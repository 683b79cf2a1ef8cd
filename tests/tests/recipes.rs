//! Every recipe in recipes/ parses and validates (unknown keys, bad names and bad schedules are
//! errors), carries the paper's settings, and runs: one short CPU epoch of each (two small
//! batches, a few validation samples) on real data in the recipe's own format.

use calib_e2e::{data, ok, root, run};
use std::io::Write;
use std::path::{Path, PathBuf};

fn recipes() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(root().join("recipes")).unwrap() {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for f in std::fs::read_dir(&dir).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|x| x == "toml") {
                    found.push(f);
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_recipe_is_valid() {
    let mut n = 0;
    for f in recipes() {
        let text = std::fs::read_to_string(&f).unwrap();
        let v: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(["image", "translation", "text", "tree"].contains(&v["task"].as_str().unwrap()), "{}", f.display());
        // Through the binary's own loader with an impossible data folder: the recipe must pass
        // validation and fail only at reading the data.
        let o = run(&["train", "--recipe", f.to_str().unwrap(), "--data", "/nonexistent-data", "--quiet"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("/nonexistent-data"), "{}: {err}", f.display());
        let dir = f.parent().unwrap();
        let train = v["train"].as_table().unwrap();
        // A `-cpu` recipe keeps the paper's rules on a shorter schedule: its two rate drops at the
        // nearest epochs to 150/350 and 250/350 of its length.
        let cpu = f.file_stem().is_some_and(|s| s.to_string_lossy().ends_with("-cpu"));
        if cpu {
            let epochs = train["epochs"].as_integer().unwrap() as f64;
            let drops: Vec<i64> =
                train["schedule"]["milestones"].as_array().unwrap().iter().map(|m| m.as_integer().unwrap()).collect();
            assert_eq!(drops, [(150.0 * epochs / 350.0).round() as i64, (250.0 * epochs / 350.0).round() as i64]);
            assert_eq!(train["probe_test"].as_bool(), Some(true), "{}", f.display());
        }
        if (dir.ends_with("cifar10") || dir.ends_with("cifar100")) && !cpu {
            assert_eq!(train["epochs"].as_integer(), Some(350), "{}", f.display());
            assert_eq!(train["batch_size"].as_integer(), Some(128));
            assert_eq!(train["schedule"]["milestones"].as_array().unwrap().len(), 2);
            assert_eq!(v["data"]["val_size"].as_integer(), Some(5000));
        }
        if dir.ends_with("cifar10") || dir.ends_with("cifar100") || dir.ends_with("tinyimagenet") {
            // The official loop's reduction per loss and its learning-rate timing; its ResNet-110.
            assert_eq!(train["reduction"].as_str(), Some("official"), "{}", f.display());
            assert_eq!(train["schedule"]["timing"].as_str(), Some("official"), "{}", f.display());
            if f.file_stem().is_some_and(|s| s == "resnet110") {
                assert_eq!(v["model"]["arch"].as_str(), Some("resnet110-official"), "{}", f.display());
            }
        }
        if dir.ends_with("wmt14-en-de") {
            // SPEC.md: Transformer base, Adam (0.9, 0.98, 1e-9), inverse-sqrt with 4,000 warm-up steps, LS 0.1.
            assert_eq!(v["model"]["preset"].as_str(), Some("base"));
            assert_eq!(train["schedule"]["warmup"].as_integer(), Some(4000));
            assert_eq!(train["optimizer"]["beta2"].as_float(), Some(0.98));
            assert_eq!(train["optimizer"]["eps"].as_float(), Some(1e-9));
            assert_eq!(train["loss"].as_str(), Some("ls:0.1"));
        }
        if dir.ends_with("sst") {
            // SPEC.md and the reference: AdaGrad 0.05, weight decay 1e-4, 25 epochs, batch 25,
            // memory 150; the embeddings at 0.1 without decay.
            assert_eq!(train["optimizer"]["kind"].as_str(), Some("ada-grad"));
            assert_eq!(train["optimizer"]["weight_decay"].as_float(), Some(1e-4));
            assert_eq!(train["schedule"]["base"].as_float(), Some(0.05));
            assert_eq!((train["epochs"].as_integer(), train["batch_size"].as_integer()), (Some(25), Some(25)));
            assert_eq!(train["groups"][0]["lr_scale"].as_float(), Some(2.0));
            assert_eq!(v["model"]["memory"].as_integer(), Some(150));
        }
        if dir.ends_with("20ng") {
            // Adam 1e-3 (0.9, 0.999), batch 128, 50 epochs, best validation accuracy, 1,000 ids.
            assert_eq!(train["optimizer"]["kind"].as_str(), Some("adam"));
            assert_eq!(train["schedule"]["base"].as_float(), Some(1e-3));
            assert_eq!((train["epochs"].as_integer(), train["batch_size"].as_integer()), (Some(50), Some(128)));
            assert_eq!(train["select_best_by"].as_str(), Some("error"));
            assert_eq!(v["data"]["max_len"].as_integer(), Some(1000));
            assert_eq!(v["data"]["val_size"].as_integer(), Some(900));
        }
        n += 1;
    }
    assert!(n >= 14, "only {n} recipes");
}

/// A recipe without a `task` key, or with an unknown one, is an error that lists the kinds.
#[test]
fn the_task_kind_is_explicit() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("recipes/quickstart/small-cnn.toml")).unwrap();
    for (name, body, expect) in [
        ("missing.toml", text.replace("task = \"image\"\n", ""), "no `task` key"),
        ("audio.toml", text.replace("task = \"image\"", "task = \"audio\""), "task = \"audio\" is not a kind"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let o = run(&["train", "--recipe", path.to_str().unwrap(), "--quiet"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(name) && err.contains(expect), "{err}");
        assert!(err.contains("\"image\", \"translation\""), "{err}");
    }
}

/// CIFAR-100's binary format (`train.bin`/`test.bin`: coarse label, fine label, 3 × 1024 bytes of
/// R, G, B planes) holding the 20 real lossless CIFAR-100 test images (fine label in the file
/// name; the coarse byte, which the fine-label recipes ignore, is written as 0).
fn cifar100_binary(dir: &Path) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data("cifar100/lossless_samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 20);
    let mut bytes = Vec::new();
    for f in &files {
        let stem = f.file_stem().unwrap().to_str().unwrap();
        let fine: u8 = stem.rsplit('_').next().unwrap().parse().unwrap();
        let img = image::open(f).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (32, 32));
        bytes.extend([0, fine]);
        for c in 0..3 {
            bytes.extend(img.pixels().map(|p| p[c]));
        }
    }
    let out = dir.join("cifar-100-binary");
    std::fs::create_dir_all(&out).unwrap();
    for name in ["train.bin", "test.bin"] {
        std::fs::File::create(out.join(name)).unwrap().write_all(&bytes).unwrap();
    }
}

/// The first `n` lines of a shared corpus file, as a plain file in `dir`.
fn head(dir: &Path, file: &str, n: usize) -> String {
    let text = std::fs::read_to_string(data(file)).unwrap();
    let path = dir.join(Path::new(file).file_name().unwrap());
    std::fs::write(&path, text.lines().take(n).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    path.display().to_string()
}

#[test]
fn every_recipe_runs_a_short_cpu_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    cifar100_binary(tmp.path());
    let shared = data("");
    let mut ran = 0;
    for f in recipes() {
        let dir = f.parent().unwrap().file_name().unwrap().to_str().unwrap().to_string();
        let mut args: Vec<String> =
            ["--epochs", "1", "--set", "train.max_batches=2", "--device", "cpu", "--quiet"].map(String::from).to_vec();
        let mut set = |kv: String| args.extend(["--set".to_string(), kv]);
        match dir.as_str() {
            "cifar10" => {
                set(format!("data.dir=\"{}\"", shared.display()));
                set("data.train=\"cifar10/train_subset\"".into());
                set("data.val_size=16".into());
                set("train.batch_size=8".into());
            }
            "cifar100" => {
                set(format!("data.dir=\"{}\"", tmp.path().display()));
                set("data.val_size=4".into());
                set("train.batch_size=8".into());
            }
            "tinyimagenet" => {
                set(format!("data.dir=\"{}\"", shared.display()));
                set("data.train=\"tinyimagenet/tiny-imagenet-200/train_subset\"".into());
                set("data.val_per_class=1".into());
                set("train.batch_size=8".into());
            }
            "quickstart" => set("train.batch_size=8".into()),
            "multi30k" => {
                set("data.limit=300".into());
                set("data.vocab_size=400".into());
                set("train.batch_size=400".into());
            }
            "wmt14-en-de" => {
                // newstest2014 (the only WMT14 German here) stands in for all three sides.
                let sub = tmp.path().join("wmt14");
                std::fs::create_dir_all(&sub).unwrap();
                let (en, de) = (head(&sub, "wmt14/newstest2014.en", 100), head(&sub, "wmt14/newstest2014.de", 100));
                for side in ["train", "valid", "test"] {
                    set(format!("data.{side}_src=\"{en}\""));
                    set(format!("data.{side}_tgt=\"{de}\""));
                }
                set("data.vocab_size=500".into());
                set("train.batch_size=600".into());
            }
            "sst" => set("train.batch_size=5".into()),
            "20ng" => {
                set("data.max_len=150".into());
                set("train.batch_size=8".into());
            }
            other => panic!("no short mode for recipes/{other}"),
        }
        let out = tmp.path().join(format!("{dir}-{}", f.file_stem().unwrap().to_str().unwrap()));
        let mut all = vec!["train".to_string(), "--recipe".into(), f.display().to_string(), "--out".into()];
        all.push(out.display().to_string());
        all.extend(args);
        let r = ok(&all.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(r["epochs"], 1, "{}", f.display());
        assert!(out.join("last.safetensors").is_file() && out.join("best.safetensors").is_file(), "{}", f.display());
        ran += 1;
    }
    assert!(ran >= 14);
}
