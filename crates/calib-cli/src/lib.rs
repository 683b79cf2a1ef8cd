//! What the `calib` and `calib-torch` binaries share: the command line ([`args`]), loading
//! predictions and printing results.
//!
//! Two binaries, one command line: `calib` needs no libtorch (metrics, temperature scaling, OOD,
//! BLEU, reports start in milliseconds), and hands the commands that compute with tensors
//! (`loss`, `train`, `eval`, `quickstart`, `make-cifar10c`) to `calib-torch`, the sibling binary
//! that links libtorch.

pub mod args;
pub mod input;
pub mod output;
pub mod report;
