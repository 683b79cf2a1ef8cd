//! `calib quickstart`: the README's main job. Trains the small network on the CIFAR-10 subset
//! embedded in `data/cifar10-mini` once with cross-entropy and once with FLSD-53, evaluates both,
//! and prints their calibration side by side (error, NLL, ECE, AdaECE, classwise-ECE before and
//! after temperature scaling, T), with reliability diagrams in `runs/quickstart/plots/`.

use crate::progress::EpochBars;
use anyhow::{Context, Result};
use calib_cli::args::quickstart::Args;
use calib_cli::output::{emit, Format};
use calib_cli::report::Bars;
use calib_report::report;
use calib_train::device;
use calib_train::trainer::Fit;
use calib_vision::recipe::Recipe;
use std::path::Path;

/// The quickstart recipe, built into the binary so it runs from anywhere.
const RECIPE: &str = include_str!("../../../recipes/quickstart/small-cnn.toml");

pub fn run(a: &Args, format: Format) -> Result<()> {
    let device = device::select(crate::args::device(a.device))?;
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
        let mut bars = EpochBars::new(a.quiet);
        calib_vision::run::train(&recipe, &run, device, Fit::new().observer(&mut bars))?;
        runs.push(calib_vision::run::predict(&run, &run.join("best.safetensors"), &[], &run, device)?.dir);
    }
    let r = report::build(&report::Options::new(runs, &a.out).with_bootstrap(a.bootstrap), &Bars::default())?;
    emit(format, &r.to_json()?, || r.terminal_text())
}
