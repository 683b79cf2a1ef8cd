//! `calib make-cifar10c`.

use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// CIFAR-10 test images: an image folder (`test/<class>/…`), a .tar.gz of one, or `test_batch.bin`.
    #[arg(long)]
    pub test: PathBuf,
    /// Folder for gaussian_noise.npy and labels.npy.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}
