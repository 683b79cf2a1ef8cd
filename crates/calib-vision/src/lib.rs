//! Image datasets in their distribution formats, decoded into one contiguous `u8` array.
//!
//! Readers: CIFAR-10/100 binary batches, image folders `<root>/<class>/*.{jpg,png}`, the same
//! layout inside a `.tar.gz` (how the shared CIFAR-10 training set is packed), and Tiny-ImageNet. Decoding runs in
//! parallel. `models` holds the paper's networks on `tch`.

pub mod cache;
pub mod cifar;
pub mod corrupt;
pub mod folder;
pub mod images;
pub mod models;
pub mod recipe;
pub mod run;
pub mod split;
pub mod svhn;
pub mod task;
pub mod tiny;

pub use images::Images;

/// What can go wrong reading a dataset; every variant names the file or folder at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {problem}")]
    Input { path: String, problem: String },
    /// A recipe or argument is invalid, or the data does not fit it.
    #[error("{0}")]
    Config(String),
    /// From the core (`.npy` files), already naming the file.
    #[error(transparent)]
    Core(#[from] calib::Error),
    /// From the trainer (checkpoints, training, devices).
    #[error(transparent)]
    Train(#[from] calib_train::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn input_error(path: impl AsRef<std::path::Path>, problem: impl Into<String>) -> Error {
    Error::Input { path: path.as_ref().display().to_string(), problem: problem.into() }
}
