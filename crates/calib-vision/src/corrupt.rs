//! CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019): reading its distribution format and
//! regenerating its Gaussian-noise corruption, which the paper uses as an OOD set.
//!
//! The published files are `<corruption>.npy` (uint8 `[5 × 10000, 32, 32, 3]`, severities 1–5
//! stacked) and `labels.npy`. They are not obtainable here, but Gaussian noise is pure additive
//! noise: x/255 + N(0, σ), clipped to [0, 1], ×255 and truncated to uint8, with σ = 0.04, 0.06,
//! 0.08, 0.09, 0.10 for severities 1–5 (their `make_cifar_c.py`). [`gaussian_noise`] applies that
//! recipe to the real CIFAR-10 test images with a seeded generator (the published noise itself
//! cannot be reproduced: it came from numpy's global state).

use crate::{input_error, Images, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::Path;

/// σ of the Gaussian-noise corruption by severity 1–5 (on the 0–1 scale).
pub const GAUSSIAN_NOISE_SIGMA: [f64; 5] = [0.04, 0.06, 0.08, 0.09, 0.10];

/// The images corrupted with Gaussian noise at `severity` (1–5); image i's noise comes from its
/// own stream of the seeded generator, so results do not depend on the thread count.
pub fn gaussian_noise(images: &Images, severity: usize, seed: u64) -> Result<Images> {
    if !(1..=5).contains(&severity) {
        return Err(input_error("severity", format!("{severity} is not in 1..=5")));
    }
    let sigma = GAUSSIAN_NOISE_SIGMA[severity - 1];
    let mut out = images.clone();
    let size = images.image_bytes();
    out.pixels.par_chunks_mut(size).enumerate().for_each(|(i, img)| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream((severity as u64) << 32 | i as u64);
        for v in img.iter_mut() {
            // Box–Muller: one standard normal from two uniforms in (0, 1].
            let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            *v = ((*v as f64 / 255.0 + sigma * z).clamp(0.0, 1.0) * 255.0) as u8;
        }
    });
    Ok(out)
}

/// Writes `<dir>/<name>.npy` (severities 1–5 stacked, uint8 NHWC) and `<dir>/labels.npy` (uint8),
/// the published layout.
pub fn write(dir: &Path, name: &str, by_severity: &[Images]) -> Result<()> {
    let first = by_severity.first().ok_or_else(|| input_error(dir, "no images"))?;
    let pixels: Vec<u8> = by_severity.iter().flat_map(|s| s.pixels.iter().copied()).collect();
    let labels: Vec<u8> = by_severity.iter().flat_map(|s| s.labels.iter().map(|&l| l as u8)).collect();
    let n = labels.len();
    let err = crate::Error::Core;
    calib::npy::write(&dir.join(format!("{name}.npy")), &[n, first.height, first.width, 3], &pixels).map_err(err)?;
    calib::npy::write(&dir.join("labels.npy"), &[n], &labels).map_err(err)?;
    Ok(())
}

/// Reads one severity (1–5) of `<corruption>.npy`, with `labels.npy` from the same folder.
pub fn read(path: &Path, severity: usize, classes: Vec<String>) -> Result<Images> {
    let err = crate::Error::Core;
    let (shape, pixels) = calib::npy::read_u8(path).map_err(err)?;
    if shape.len() != 4 || shape[3] != 3 || shape[0] % 5 != 0 {
        return Err(input_error(path, format!("expected uint8 [5·n, height, width, 3], found shape {shape:?}")));
    }
    let labels_path = path.with_file_name("labels.npy");
    let labels = calib::npy::read_labels(&labels_path)?;
    if labels.len() != shape[0] {
        return Err(input_error(
            &labels_path,
            format!("{} labels for {} images in {}", labels.len(), shape[0], path.display()),
        ));
    }
    if !(1..=5).contains(&severity) {
        return Err(input_error(path, format!("severity {severity} is not in 1..=5")));
    }
    let per = shape[0] / 5;
    let size = shape[1] * shape[2] * 3;
    let rows = (severity - 1) * per..severity * per;
    Ok(Images {
        height: shape[1],
        width: shape[2],
        pixels: pixels[rows.start * size..rows.end * size].to_vec(),
        labels: labels[rows].to_vec(),
        classes,
    })
}
