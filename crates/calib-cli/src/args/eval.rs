//! `calib eval`.

use super::values;
use super::{DeviceArg, RunArgs};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub weights: RunArgs,
    /// Out-of-distribution sets as NAME=PATH (a folder of images, with or without class
    /// sub-folders, or a .tar.gz), resized to the training images' size; repeatable.
    #[arg(long = "ood", value_name = "NAME=PATH")]
    pub ood: Vec<String>,
    #[arg(long, default_value_t = 1000, value_parser = values::resamples, allow_negative_numbers = true)]
    pub bootstrap: usize,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Where predictions/, plots/, report.json and report.md go. The default, the run folder, is
    /// where `calib report RUNS` reads them; another folder keeps that evaluation, e.g. when
    /// evaluating a second checkpoint of the run (the report then names the model after DIR).
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}
