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
