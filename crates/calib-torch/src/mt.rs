//! What `decode`, `bench decode` and the temperature study share: which weights of a run to read,
//! and loading a translation run through `calib_mt::run`.

use anyhow::Result;
pub use calib_cli::args::RunArgs;
use calib_mt::data::Parallel;
use calib_mt::recipe::MtRecipe;
use calib_mt::run::LoadedRun;
use calib_mt::tokenize::Vocab;
use std::collections::HashMap;
use std::path::Path;

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
