//! What every trainer of the toolkit shares, whatever the task: the [`task::Task`] interface with
//! typed batches, the epoch loop ([`trainer::Fit`]) with a loader thread and no host
//! synchronisation inside the step, probes, device selection, mixed precision, the reference
//! code's weight initialisers ([`init`]), optimisers with saveable state, learning-rate
//! schedules, atomic checkpoints that make a killed run resume exactly where it stopped, batching
//! and padding shared by the text domains, recipes, and the [`collective::Collective`] seam for
//! data parallelism.
//!
//! The library never prints: progress reaches the caller through [`observer::Observer`].

pub mod batching;
pub mod checkpoint;
pub mod classifier;
pub mod collective;
pub mod device;
pub mod error;
pub mod fault;
mod fused;
pub mod host_memory;
pub mod init;
pub mod loader;
pub mod memory_format;
pub mod observer;
pub mod optim;
pub mod precision;
pub mod probe;
pub mod recipe;
pub mod run;
pub mod schedule;
pub mod shim;
pub mod step_graph;
pub mod task;
pub mod trainer;

pub use error::{Error, Result};
