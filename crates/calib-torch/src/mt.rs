//! What `decode`, `bench decode` and the temperature study share: which weights of a run to read,
//! and loading a translation run through `calib_mt::run`.

use anyhow::Result;
use calib_mt::data::Parallel;
use calib_mt::recipe::MtRecipe;
use calib_mt::run::LoadedRun;
use calib_mt::tokenize::Vocab;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Which trained weights a command reads.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The run folder `calib train` wrote.
    #[arg(long)]
    pub run: PathBuf,
    /// `best`, `last`, `averaged` (see `calib average-checkpoints`) or a .safetensors path.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
}

impl RunArgs {
    /// The checkpoint file.
    pub fn file(&self) -> PathBuf {
        if self.checkpoint.ends_with(".safetensors") {
            PathBuf::from(&self.checkpoint)
        } else {
            self.run.join(format!("{}.safetensors", self.checkpoint))
        }
    }
}

/// Loads the translation run of `weights`; `splits` reads evaluation data through its recipe and
/// vocabulary.
pub fn load_run(
    weights: &RunArgs,
    tokenizer: Option<&Path>,
    device: tch::Device,
    splits: impl FnOnce(&MtRecipe, &Vocab) -> calib_mt::run::Result<HashMap<String, Parallel>>,
) -> Result<LoadedRun> {
    Ok(calib_mt::run::load(&weights.run, &weights.file(), tokenizer, device, splits)?)
}
