//! `calib quickstart`.

use super::values;
use super::DeviceArg;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Folder holding cifar10-mini/.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    #[arg(long, default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// Fewer or more epochs than the recipe's 30.
    #[arg(long, value_parser = values::count, allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 1000, value_parser = values::resamples, allow_negative_numbers = true)]
    pub bootstrap: usize,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    #[arg(long)]
    pub quiet: bool,
}
