//! What the `calib` and `calib-torch` binaries share: loading predictions and printing results.
//!
//! Two binaries, one command line: `calib` needs no libtorch (metrics, temperature scaling, OOD,
//! plots start in milliseconds), and hands the commands that compute with tensors (`loss`, and
//! later training and decoding) to `calib-torch`, the sibling binary that links libtorch.

pub mod input;
pub mod output;
pub mod report;
