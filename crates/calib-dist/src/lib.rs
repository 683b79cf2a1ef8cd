//! Data-parallel training on PyTorch's own distributed engine: c10d process groups (Gloo between
//! CPU processes, NCCL between GPUs) behind the trainer's [`calib_train::collective::Collective`]
//! seam, and the launcher that starts ranks like `torchrun --standalone`, or joins a group that
//! torchrun or Slurm started.
//!
//! The collectives run in libtorch (through a small C++ shim, `cpp/shim.cpp`), so a rank of ours
//! speaks the same protocol, timeouts and transports as a rank of PyTorch's DDP.

mod error;
mod ffi;
pub mod group;
pub mod launch;

pub use error::{Error, Result};
pub use group::{Backend, ProcessGroup};
pub use launch::Rendezvous;
