use std::path::PathBuf;

/// What can go wrong when joining, using or launching a process group.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rendezvous or the process group could not be set up.
    #[error("rank {rank} of {world} could not join the {backend} group at {addr}: {problem}")]
    Join { backend: &'static str, rank: usize, world: usize, addr: String, problem: String },
    /// A launcher variable is malformed or inconsistent.
    #[error("{var}={value}: {problem}")]
    Env { var: &'static str, value: String, problem: String },
    /// The NCCL shim library could not be loaded.
    #[error("{}: cannot load the NCCL shim: {problem} (build it with scripts/build-cuda-shims.sh, or set CALIB_NCCL_SHIM)", path.display())]
    Shim { path: PathBuf, problem: String },
    /// Starting or supervising local ranks failed.
    #[error("{0}")]
    Launch(String),
}

pub type Result<T> = std::result::Result<T, Error>;
