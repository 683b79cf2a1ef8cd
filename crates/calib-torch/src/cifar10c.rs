//! `calib make-cifar10c`: regenerates CIFAR-10-C's Gaussian-noise corruption (severities 1–5)
//! from the CIFAR-10 test images, in the published file layout, for use as an OOD set
//! (`calib eval --ood cifar10c=DIR/gaussian_noise.npy@5`).

use anyhow::{Context, Result};
use calib_cli::args::cifar10c::Args;
use calib_cli::output::{emit, Format};
use calib_vision::cifar::Layout;
use calib_vision::corrupt;
use calib_vision::folder::read_any;
use serde_json::json;

pub fn run(a: &Args, format: Format) -> Result<()> {
    let test = read_any(std::slice::from_ref(&a.test), Layout::Cifar10)?;
    let by_severity = (1..=5).map(|s| corrupt::gaussian_noise(&test, s, a.seed)).collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("{}: cannot create", a.out.display()))?;
    corrupt::write(&a.out, "gaussian_noise", &by_severity)?;
    let file = a.out.join("gaussian_noise.npy");
    emit(
        format,
        &json!({"file": file, "images": 5 * test.len(), "severities": 5, "sigma": corrupt::GAUSSIAN_NOISE_SIGMA}),
        || format!("wrote {} ({} images per severity 1–5) and labels.npy", file.display(), test.len()),
    )
}
