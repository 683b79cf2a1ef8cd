//! What every trainer of the toolkit shares, whatever the task: device selection, mixed precision,
//! optimisers with saveable state, learning-rate schedules, and atomic checkpoints that make a killed run resume
//! exactly where it stopped.

pub mod checkpoint;
pub mod device;
pub mod optim;
pub mod precision;
pub mod schedule;
pub mod trainer;
