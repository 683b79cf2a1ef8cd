//! Image recipes (`task = "image"`): one TOML per dataset × model with the paper's settings
//! (`recipes/cifar10/…`), the data they name read into fixed train/validation/test splits.

use crate::cifar::Layout;
use crate::folder::{read_any, read_flat};
use crate::models::Arch;
use crate::split::{holdout, holdout_per_class};
use crate::task::{Normalization, Splits};
use crate::{cache, corrupt, svhn, tiny, Error, Images, Result};
use calib_train::trainer::TrainConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `task` key of image recipes.
pub const KIND: &str = "image";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Always `image`.
    pub task: String,
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
    /// Weights and inputs in the channels-last (NHWC) layout, which oneDNN's CPU convolutions
    /// and cuDNN's tensor-core kernels work in (docs/performance.md); the same values either way.
    #[serde(default = "yes")]
    pub channels_last: bool,
}

impl calib_train::recipe::Recipe for Recipe {
    const KIND: &'static str = KIND;
    type Error = Error;
    fn task(&self) -> &str {
        &self.task
    }
    fn check(&self) -> Result<()> {
        self.validate()
    }
}

impl Recipe {
    /// Reads a recipe with `key=value` overrides applied (unknown keys are errors).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        Self::from_table(calib_train::recipe::load(path, overrides)?, path)
    }

    /// [`Recipe::load`] from text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Self> {
        Self::from_table(calib_train::recipe::parse(text, path, overrides)?, path)
    }

    /// The recipe of a TOML table (see [`calib_train::recipe`]), checked.
    pub fn from_table(table: toml::Table, path: &Path) -> Result<Self> {
        calib_train::recipe::typed(table, path)
    }

    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        self.arch()?;
        self.normalization()?;
        Ok(())
    }

    pub fn arch(&self) -> Result<Arch> {
        self.model.arch.parse().map_err(Error::Config)
    }

    pub fn normalization(&self) -> Result<Normalization> {
        Ok(match self.data.dataset.as_str() {
            "cifar10" => Normalization::CIFAR10,
            "cifar100" | "cifar100-coarse" => Normalization::CIFAR100,
            "tinyimagenet" => Normalization::IMAGENET,
            other => {
                return Err(Error::Config(format!(
                    "unknown dataset '{other}' (expected cifar10, cifar100, cifar100-coarse, tinyimagenet)"
                )))
            }
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
            let severity =
                severity.map_err(|_| Error::Config(format!("{text}: the severity after '@' must be 1–5")))?;
            return corrupt::read(Path::new(&file), severity, Vec::new());
        }
        if text.ends_with(".npy") {
            return corrupt::read(path, 5, Vec::new());
        }
        if text.ends_with(".mat") {
            return svhn::read_mat(path);
        }
        let has_class_dirs = std::fs::read_dir(path).is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().is_dir())));
        if path.is_dir() && !has_class_dirs {
            return read_flat(path);
        }
        let paths = [path.to_path_buf()];
        cache::cached(&paths, "ood", || read_any(&paths, self.layout()))
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
        read_any(paths, self.layout())
    }

    /// Reads the data and makes the fixed train/validation split.
    pub fn splits(&self) -> Result<Splits> {
        let all = self.read(&self.data.train)?;
        let (train_rows, val_rows) = match self.data.val_per_class {
            Some(k) => holdout_per_class(&all.labels, k, self.data.split_seed),
            None => {
                if self.data.val_size == 0 || self.data.val_size >= all.len() {
                    return Err(Error::Config(format!(
                        "val_size {} must lie between 1 and the {} training images",
                        self.data.val_size,
                        all.len()
                    )));
                }
                holdout(all.len(), self.data.val_size, self.data.split_seed)
            }
        };
        if train_rows.is_empty() || val_rows.is_empty() {
            return Err(Error::Config("the split leaves no training or no validation images".into()));
        }
        let test = self.data.test.as_deref().map(|t| self.read(t)).transpose()?;
        if let Some(t) = &test {
            if t.classes != all.classes {
                return Err(Error::Config(format!(
                    "the test set's classes {:?} differ from the training set's {:?}",
                    t.classes, all.classes
                )));
            }
        }
        Ok(Splits { train: all.select(&train_rows), val: all.select(&val_rows), test, ood: Vec::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The official code holds out `indices[:5000]` of `np.random.seed(1); np.random.shuffle(
    /// list(range(50000)))` over torchvision's CIFAR-10, whose order is the binary batches'
    /// records in file order (`data_batch_1` … `data_batch_5`). Read from those files, our split
    /// picks exactly those records: here 100 records in five batches, each record's first byte its
    /// index, and the 10 held out equal numpy's `sorted(idx[:10])` for `shuffle(list(range(100)))`
    /// under seed 1 (printed by numpy 2.4).
    #[test]
    fn binary_batches_give_the_official_validation_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut names = Vec::new();
        for f in 0..5u8 {
            let mut bytes = Vec::new();
            for r in 0..20u8 {
                let index = f * 20 + r;
                let mut record = vec![0u8; 3073];
                record[0] = index % 10;
                record[1] = index;
                bytes.extend(record);
            }
            let name = format!("data_batch_{}.bin", f + 1);
            std::fs::write(dir.path().join(&name), bytes).unwrap();
            names.push(name);
        }
        let overrides = [
            format!("data.dir={:?}", dir.path().display().to_string()),
            format!("data.train={:?}", names.join(",")),
            "data.test=\"data_batch_5.bin\"".to_string(),
            "data.val_size=10".to_string(),
            "data.cache=false".to_string(),
        ];
        let recipe = Recipe::load(Path::new("../../recipes/cifar10/resnet50.toml"), &overrides).unwrap();
        let splits = recipe.splits().unwrap();
        let held_out: Vec<u8> = (0..splits.val.len()).map(|i| splits.val.image(i)[0]).collect();
        assert_eq!(held_out, [17, 33, 36, 65, 69, 80, 81, 82, 84, 93]);
        assert_eq!(splits.train.len(), 90);
    }
}
