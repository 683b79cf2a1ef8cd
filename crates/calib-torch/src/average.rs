//! `calib average-checkpoints`: the element-wise mean of the weights of several checkpoints
//! (fairseq's `scripts/average_checkpoints.py`), by default the last N epochs a run kept
//! (`train.keep_epochs`). Translation models decode better from the average of their last
//! checkpoints than from any one of them.

use anyhow::{bail, Context, Result};
use calib_cli::args::average::Args;
use calib_cli::output::{emit, Format};
use calib_train::checkpoint;
use serde_json::json;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// The `epoch-N.safetensors` files of `run`, by N.
fn epoch_files(run: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(run).with_context(|| format!("{}: cannot read the run folder", run.display()))? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(n) = name.strip_prefix("epoch-").and_then(|r| r.strip_suffix(".safetensors")) {
            if let Ok(n) = n.parse::<usize>() {
                found.push((n, path));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The mean of the tensors of `files` (weights only: the optimiser and run state a
/// `last.safetensors` also holds are skipped); every file must hold the same names and shapes.
pub fn average(files: &[PathBuf]) -> Result<Vec<(String, Tensor)>> {
    let first = files.first().context("no checkpoints to average")?;
    let keep = |name: &str| calib_train::run::is_weight(name);
    let base = checkpoint::load_tensors(first)?;
    let mut names: Vec<String> = base.keys().filter(|n| keep(n)).cloned().collect();
    names.sort();
    let mut sums: Vec<Tensor> = names.iter().map(|n| base[n].to_kind(Kind::Double)).collect();
    for file in &files[1..] {
        let other = checkpoint::load_tensors(file)?;
        let other_names = other.keys().filter(|n| keep(n)).count();
        if other_names != names.len() {
            bail!("{} holds {other_names} weight tensors, {} holds {}", file.display(), first.display(), names.len());
        }
        for (name, sum) in names.iter().zip(sums.iter_mut()) {
            let t =
                other.get(name).with_context(|| format!("{}: no tensor {name} (another model?)", file.display()))?;
            if t.size() != sum.size() {
                bail!("{}: {name} has shape {:?}, {} has {:?}", file.display(), t.size(), first.display(), sum.size());
            }
            *sum += t.to_kind(Kind::Double);
        }
    }
    let n = files.len() as f64;
    Ok(names
        .into_iter()
        .zip(sums)
        .map(|(name, sum)| {
            let kind = base[&name].kind();
            (name, (sum / n).to_kind(kind))
        })
        .collect())
}

pub fn run(a: &Args, format: Format) -> Result<()> {
    let (files, out) = match &a.run {
        Some(run) => {
            anyhow::ensure!(a.last > 0, "--last must be at least 1");
            let found = epoch_files(run)?;
            if found.len() < a.last {
                bail!(
                    "{} keeps {} epoch checkpoints, fewer than --last {} (train with --set train.keep_epochs={})",
                    run.display(),
                    found.len(),
                    a.last,
                    a.last
                );
            }
            let files: Vec<PathBuf> = found[found.len() - a.last..].iter().map(|(_, p)| p.clone()).collect();
            (files, a.out.clone().unwrap_or_else(|| run.join("averaged.safetensors")))
        }
        None => {
            let out = a.out.clone().context("with --input files, give --out FILE")?;
            (a.inputs.clone(), out)
        }
    };
    let averaged = average(&files)?;
    checkpoint::save_tensors(&out, &averaged)?;
    let json = json!({"out": out, "inputs": files, "tensors": averaged.len()});
    emit(format, &json, || format!("averaged {} checkpoints into {}", files.len(), out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `last.safetensors` holds optimiser (`optim.*`) and run (`run.*`) state next to the
    /// weights: only the weights are averaged.
    #[test]
    fn only_weights_are_averaged() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = [1.0f32, 3.0]
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let path = dir.path().join(format!("{i}.safetensors"));
                let named = vec![
                    ("fc.weight".to_string(), Tensor::from_slice(&[v, 2.0 * v])),
                    ("optim.fc.weight.a".to_string(), Tensor::from_slice(&[v])),
                    ("optim.steps".to_string(), Tensor::from_slice(&[7i64])),
                    ("run.epochs_done".to_string(), Tensor::from_slice(&[3i64])),
                ];
                checkpoint::save_tensors(&path, &named).unwrap();
                path
            })
            .collect();
        let averaged = average(&files).unwrap();
        let names: Vec<&str> = averaged.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["fc.weight"]);
        assert_eq!(Vec::<f32>::try_from(&averaged[0].1).unwrap(), vec![2.0, 4.0]);
    }
}
