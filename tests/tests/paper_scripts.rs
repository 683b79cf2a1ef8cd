//! The reproduction scripts `recipes/DATASET/paper.sh`: every dataset's grid emits a Slurm array
//! whose bounds cover its networks × losses and whose scripts parse, and one grid runs end to
//! end in its short CPU mode (train, evaluate the last epoch, resume, the paper's tables).

use calib_e2e::root;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scripts() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root().join("recipes"))
        .unwrap()
        .map(|d| d.unwrap().path().join("paper.sh"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
}

fn script(path: &Path, args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(path)
        .args(args)
        .current_dir(root())
        .env("CALIB", calib_fixtures::binary("calib"))
        .output()
        .expect("run bash")
}

/// The networks and losses a dataset's script passes on (its `exec` line's quoted lists).
fn grid_of(path: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| l.starts_with("exec ")).expect("exec line");
    let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
    // "$(dirname "$0")/../paper.sh" splits as well: the lists are the last two quoted words before "$@".
    let lists: Vec<&str> = quoted.iter().rev().skip(1).take(2).copied().collect();
    (lists[1].split_whitespace().count(), lists[0].split_whitespace().count())
}

#[test]
fn every_dataset_emits_a_slurm_array_of_its_grid() {
    let datasets = scripts();
    let names: Vec<String> =
        datasets.iter().map(|p| p.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned()).collect();
    for expected in ["cifar10", "cifar100", "tinyimagenet", "20ng", "sst", "multi30k", "wmt14-en-de"] {
        assert!(names.iter().any(|n| n == expected), "no recipes/{expected}/paper.sh");
    }
    let tmp = tempfile::tempdir().unwrap();
    for (path, name) in datasets.iter().zip(&names) {
        let (networks, losses) = grid_of(path);
        let out = tmp.path().join(name);
        let o = script(
            path,
            &["--slurm", "--out", out.to_str().unwrap(), "--partition", "gpu", "--gpus", "1", "--epochs", "3"],
        );
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        let array = std::fs::read_to_string(out.join("slurm/array.sbatch")).unwrap();
        assert!(array.contains(&format!("#SBATCH --array=0-{}\n", networks * losses - 1)), "{name}:\n{array}");
        assert!(array.contains("#SBATCH --gpus=1") && array.contains("--cell \"$SLURM_ARRAY_TASK_ID\""), "{name}");
        assert!(array.contains("--epochs 3"), "{name}: the options reach every task");
        let report = std::fs::read_to_string(out.join("slurm/report.sbatch")).unwrap();
        assert!(report.contains("--report"), "{name}");
        let submit = std::fs::read_to_string(out.join("slurm/submit.sh")).unwrap();
        assert!(submit.contains("--dependency=afterok:"), "{name}");
        for f in ["array.sbatch", "report.sbatch", "submit.sh"] {
            let check = Command::new("bash").arg("-n").arg(out.join("slurm").join(f)).output().unwrap();
            assert!(check.status.success(), "{name}/{f}: {}", String::from_utf8_lossy(&check.stderr));
        }
    }
    // A cell outside the grid and an unknown option are errors, before anything runs.
    let sst = root().join("recipes/sst/paper.sh");
    let o = script(&sst, &["--cell", "9", "--out", tmp.path().join("x").to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("cells 0 to 8"));
    let o = script(&sst, &["--bogus", "1"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unknown option --bogus"));
}

/// SST's grid with two losses, three batches an epoch: both cells train and are evaluated at
/// their last epoch, a rerun of a cell resumes instead of starting over, and the report holds
/// the paper's tables with both columns (J.1 from the per-epoch test probe).
#[test]
fn a_grid_runs_in_its_short_cpu_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sst");
    let args =
        ["--out", out.to_str().unwrap(), "--epochs", "1", "--set", "train.max_batches=3", "--losses", "ce flsd:53"];
    let sst = root().join("recipes/sst/paper.sh");
    let o = script(&sst, &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for cell in ["ce", "flsd-53"] {
        let run = out.join("tree-lstm").join(cell);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
        assert_eq!(report["checkpoint"], "last", "{cell}");
    }
    let table = std::fs::read_to_string(out.join("report/table1-ece.md")).unwrap();
    assert!(table.contains("sst / tree-lstm") && table.contains("CE") && table.contains("FLSD-53"), "{table}");
    assert!(
        out.join("report/table1-ece.tex").is_file()
            && out.join("report/figures/figure4-ece-sst---tree-lstm.png").is_file()
    );
    // The test split was probed each epoch, so J.1 holds test error / ECE at the chosen epochs.
    let j1 = std::fs::read_to_string(out.join("report/tableJ1-checkpoints.md")).unwrap();
    assert!(j1.contains("ECE: ") && j1.contains(" (1) · NLL: ") && !j1.contains("epoch 1"), "{j1}");
    // Cell 1 again: its run is complete, so it resumes (nothing retrained) and is evaluated again.
    let log = std::fs::read_to_string(out.join("tree-lstm/flsd-53/metrics.jsonl")).unwrap();
    let mut again: Vec<&str> = args.to_vec();
    again.extend(["--cell", "1"]);
    let o = script(&sst, &again);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(out.join("tree-lstm/flsd-53/metrics.jsonl")).unwrap(), log);
}

/// Multi30k's grid in a tiny form: the translation cell trains, is evaluated, and runs the
/// temperature study on its recipe's own test and validation pairs, so the report holds Table
/// K.1 and its figure.
#[test]
fn a_translation_grid_studies_the_temperature_for_table_k1() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("multi30k");
    // The first 40 validation and test pairs (the recipe reads them by name from its data folder;
    // an absolute name stands alone), so that evaluation takes seconds in a debug build.
    let mut pairs = Vec::new();
    for (key, file) in [
        ("valid_src", "val.en.gz"),
        ("valid_tgt", "val.de.gz"),
        ("test_src", "test_2016_flickr.en.gz"),
        ("test_tgt", "test_2016_flickr.de.gz"),
    ] {
        let all = calib_mt::corpus::read_lines(&calib_e2e::data("multi30k").join(file), calib_mt::corpus::Empty::Keep)
            .unwrap();
        let path = tmp.path().join(file.trim_end_matches(".gz"));
        std::fs::write(&path, all[..40].join("\n") + "\n").unwrap();
        pairs.push(format!("data.{key}=\"{}\"", path.display()));
    }
    let mut args = vec![
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--losses",
        "ls:0.1",
        "--bootstrap",
        "10",
        "--study-t",
        "0.8,1",
        "--study-limit",
        "5",
    ];
    for set in calib_e2e::TINY_TRANSLATION.into_iter().chain(["train.max_batches=2"]) {
        args.extend(["--set", set]);
    }
    for set in &pairs {
        args.extend(["--set", set.as_str()]);
    }
    let o = script(&root().join("recipes/multi30k/paper.sh"), &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = out.join("transformer-small/ls-0.1");
    let study: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("study-temperature/study.json")).unwrap()).unwrap();
    let ts: Vec<f64> = study["points"].as_array().unwrap().iter().map(|p| p["t"].as_f64().unwrap()).collect();
    assert_eq!(ts, [0.8, 1.0]);
    let k1 = std::fs::read_to_string(out.join("report/tableK1-translation.md")).unwrap();
    assert!(k1.contains("LS-0.1") && k1.contains("BLEU ") && k1.contains(" → "), "{k1}");
    let figures: Vec<String> = std::fs::read_dir(out.join("report/figures"))
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(figures.iter().any(|f| f.starts_with("figureK1-") && f.ends_with(".svg")), "{figures:?}");
}
