//! `calib quickstart`: the README's main job. Trains the small network on the CIFAR-10 subset
//! embedded in `data/cifar10-mini` once with cross-entropy and once with FLSD-53, evaluates both,
//! and prints their calibration side by side (error, NLL, ECE, AdaECE, classwise-ECE before and
//! after temperature scaling, T), with reliability diagrams in `runs/quickstart/plots/`.

use crate::progress::Bars;
use anyhow::{Context, Result};
use calib_cli::output::{emit, Format};
use calib_cli::report;
use calib_train::device::{self, DeviceRequest};
use calib_train::trainer::Fit;
use calib_vision::recipe::Recipe;
use std::path::{Path, PathBuf};

/// The quickstart recipe, built into the binary so it runs from anywhere.
const RECIPE: &str = include_str!("../../../recipes/quickstart/small-cnn.toml");

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Folder holding cifar10-mini/.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    #[arg(long, default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// Fewer or more epochs than the recipe's 30.
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    #[arg(long, value_enum, default_value_t = DeviceRequest::Auto)]
    pub device: DeviceRequest,
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: &Args, format: Format) -> Result<()> {
    let device = device::select(a.device)?;
    let mut runs = Vec::new();
    for loss in ["ce", "flsd:53"] {
        let mut overrides = vec![format!("train.loss=\"{loss}\""), format!("data.dir=\"{}\"", a.data.display())];
        if let Some(e) = a.epochs {
            overrides.push(format!("train.epochs={e}"));
        }
        let recipe = Recipe::parse(RECIPE, Path::new("recipes/quickstart/small-cnn.toml"), &overrides)?;
        let run = a.out.join(loss.replace(':', ""));
        if run.exists() {
            // Only ever delete what a quickstart made: a run folder with its config.
            anyhow::ensure!(
                run.join("config.toml").is_file(),
                "{} exists and is not a previous quickstart run; choose another --out",
                run.display()
            );
            std::fs::remove_dir_all(&run)
                .with_context(|| format!("{}: cannot clear the previous quickstart run", run.display()))?;
        }
        if !a.quiet {
            eprintln!(
                "training {} with {loss} ({} epochs) into {}",
                recipe.model.arch,
                recipe.train.epochs,
                run.display()
            );
        }
        let mut bars = Bars::new(a.quiet);
        calib_vision::run::train(&recipe, &run, device, Fit::new().observer(&mut bars))?;
        runs.push(calib_vision::run::predict(&run, &run.join("best.safetensors"), &[], device)?.dir);
    }
    let (json, table) =
        report::build(&report::Args { data: runs, out: a.out.clone(), bootstrap: a.bootstrap, seed: 0, bins: 15 })?;
    emit(format, &json, || table)
}
