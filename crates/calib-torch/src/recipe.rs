//! Recipes: one TOML per dataset × model with the paper's settings (`recipes/…`). Any value can be
//! overridden from the command line (`--set train.epochs=5`, or the named flags), and the
//! resolved recipe is saved as the run's `config.toml`, which is all `eval` and `--resume` need.

use crate::mt::MtRecipe;
use anyhow::{bail, Context, Result};
use calib_train::trainer::TrainConfig;
use calib_vision::cache;
use calib_vision::cifar::Layout;
use calib_vision::corrupt;
use calib_vision::folder::{read_any, read_flat};
use calib_vision::models::Arch;
use calib_vision::split::{holdout, holdout_per_class};
use calib_vision::svhn;
use calib_vision::task::{Normalization, Splits};
use calib_vision::tiny;
use calib_vision::Images;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `cifar10`, `cifar100`, `cifar100-coarse` or `tinyimagenet`: which normalisation and
    /// reader (for `.bin` files, which record layout; for Tiny-ImageNet, `train` is the
    /// `…/tiny-imagenet-200/train` folder and `test` the `…/val` folder).
    pub dataset: String,
    /// Folder the paths below are relative to (`--data` overrides it).
    pub dir: PathBuf,
    /// Training images: an image folder, a `.tar.gz` of one, or CIFAR `.bin` batches
    /// (comma-separated).
    pub train: String,
    /// Test images, same forms.
    pub test: Option<String>,
    /// Images held out of `train` for validation, chosen by numpy's RandomState(split_seed).
    pub val_size: usize,
    /// Instead of `val_size`: hold out this many images of every class (Tiny-ImageNet: 50).
    #[serde(default)]
    pub val_per_class: Option<usize>,
    pub split_seed: u32,
    /// Random crop with padding 4 and horizontal flip during training.
    pub augment: bool,
    /// Keep decoded images in the user's cache folder (see `calib_vision::cache`).
    #[serde(default = "yes")]
    pub cache: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub arch: String,
}

/// A recipe of either track: translation recipes say `task = "translation"`, image recipes
/// have no `task` key.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Image(Box<Recipe>),
    Translation(Box<MtRecipe>),
}

impl Plan {
    /// Reads `path`, applies `key=value` overrides (TOML values; bare words are strings), and
    /// checks every field (unknown keys are errors).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("{}: cannot read the recipe", path.display()))?;
        Self::parse(&text, path, overrides)
    }

    /// [`Plan::load`] from text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Self> {
        let mut value: toml::Table =
            toml::from_str(text).with_context(|| format!("{}: not valid TOML", path.display()))?;
        for o in overrides {
            set(&mut value, o)?;
        }
        let translation = value.contains_key("task");
        let value = toml::Value::Table(value);
        let message = |e: toml::de::Error| anyhow::anyhow!("{}: {}", path.display(), e.message());
        let plan = if translation {
            let r: MtRecipe = value.try_into().map_err(message)?;
            r.validate().with_context(|| format!("{}", path.display()))?;
            Plan::Translation(Box::new(r))
        } else {
            let r: Recipe = value.try_into().map_err(message)?;
            r.validate().with_context(|| format!("{}", path.display()))?;
            Plan::Image(Box::new(r))
        };
        Ok(plan)
    }

    pub fn train(&self) -> &TrainConfig {
        match self {
            Plan::Image(r) => &r.train,
            Plan::Translation(r) => &r.train,
        }
    }
}

impl Recipe {
    /// An image recipe (see [`Plan::load`]).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        match Plan::load(path, overrides)? {
            Plan::Image(r) => Ok(*r),
            Plan::Translation(_) => bail!("{}: a translation recipe where an image recipe is needed", path.display()),
        }
    }

    /// [`Recipe::load`] from text.
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Self> {
        match Plan::parse(text, path, overrides)? {
            Plan::Image(r) => Ok(*r),
            Plan::Translation(_) => bail!("{}: a translation recipe where an image recipe is needed", path.display()),
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        self.arch()?;
        self.normalization()?;
        Ok(())
    }

    pub fn arch(&self) -> Result<Arch> {
        self.model.arch.parse().map_err(anyhow::Error::msg)
    }

    pub fn normalization(&self) -> Result<Normalization> {
        Ok(match self.data.dataset.as_str() {
            "cifar10" => Normalization::CIFAR10,
            "cifar100" | "cifar100-coarse" => Normalization::CIFAR100,
            "tinyimagenet" => Normalization::IMAGENET,
            other => bail!("unknown dataset '{other}' (expected cifar10, cifar100, cifar100-coarse, tinyimagenet)"),
        })
    }

    fn layout(&self) -> Layout {
        match self.data.dataset.as_str() {
            "cifar100" => Layout::Cifar100Fine,
            "cifar100-coarse" => Layout::Cifar100Coarse,
            _ => Layout::Cifar10,
        }
    }

    /// Reads an out-of-distribution set: a folder of images (flat, or with class folders), a
    /// `.tar.gz`, CIFAR `.bin` batches, SVHN's `test_32x32.mat`, or a CIFAR-10-C
    /// `<corruption>.npy` (severity 5, or `<corruption>.npy@3`); relative paths are taken from
    /// the current folder.
    pub fn read_ood(&self, path: &Path) -> Result<Images> {
        let text = path.to_string_lossy();
        if let Some((file, severity)) = text.rsplit_once(".npy@").map(|(f, s)| (format!("{f}.npy"), s.parse::<usize>()))
        {
            let severity = severity.with_context(|| format!("{text}: the severity after '@' must be 1–5"))?;
            return Ok(corrupt::read(Path::new(&file), severity, Vec::new())?);
        }
        if text.ends_with(".npy") {
            return Ok(corrupt::read(path, 5, Vec::new())?);
        }
        if text.ends_with(".mat") {
            return Ok(svhn::read_mat(path)?);
        }
        let has_class_dirs = std::fs::read_dir(path).is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().is_dir())));
        if path.is_dir() && !has_class_dirs {
            return Ok(read_flat(path)?);
        }
        let paths = [path.to_path_buf()];
        Ok(cache::cached(&paths, "ood", || read_any(&paths, self.layout()))?)
    }

    fn read(&self, spec: &str) -> Result<Images> {
        let paths: Vec<PathBuf> = spec.split(',').map(|p| self.data.dir.join(p.trim())).collect();
        self.read_paths(&paths)
    }

    fn read_paths(&self, paths: &[PathBuf]) -> Result<Images> {
        if self.data.cache {
            return cache::cached(paths, &self.data.dataset, || self.decode_paths(paths));
        }
        self.decode_paths(paths)
    }

    fn decode_paths(&self, paths: &[PathBuf]) -> Result<Images> {
        let first = &paths[0];
        if self.data.dataset == "tinyimagenet" && first.is_dir() {
            let root = first.parent().unwrap_or(Path::new("."));
            return Ok(if first.file_name().is_some_and(|f| f == "val") {
                tiny::read_val(root)?
            } else {
                tiny::read_train(root, first)?
            });
        }
        Ok(read_any(paths, self.layout())?)
    }

    /// Reads the data and makes the fixed train/validation split.
    pub fn splits(&self) -> Result<Splits> {
        let all = self.read(&self.data.train)?;
        let (train_rows, val_rows) = match self.data.val_per_class {
            Some(k) => holdout_per_class(&all.labels, k, self.data.split_seed),
            None => {
                if self.data.val_size == 0 || self.data.val_size >= all.len() {
                    bail!("val_size {} must lie between 1 and the {} training images", self.data.val_size, all.len());
                }
                holdout(all.len(), self.data.val_size, self.data.split_seed)
            }
        };
        if train_rows.is_empty() || val_rows.is_empty() {
            bail!("the split leaves no training or no validation images");
        }
        let test = self.data.test.as_deref().map(|t| self.read(t)).transpose()?;
        if let Some(t) = &test {
            if t.classes != all.classes {
                bail!("the test set's classes {:?} differ from the training set's {:?}", t.classes, all.classes);
            }
        }
        Ok(Splits { train: all.select(&train_rows), val: all.select(&val_rows), test, ood: Vec::new() })
    }
}

/// Applies one `a.b.c=value` override.
fn set(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment.split_once('=').with_context(|| format!("override '{assignment}' is not KEY=VALUE"))?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    let mut node = table;
    for p in &parts[..parts.len() - 1] {
        node = node
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .with_context(|| format!("override '{assignment}': '{p}' is not a table"))?;
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}
