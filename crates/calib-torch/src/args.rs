//! The command line is defined in `calib_cli::args` (libtorch-free, shared with `calib`); these
//! convert its values to the libtorch crates' types.

use calib_cli::args::{DeviceArg, PrecisionArg};
use calib_train::device::DeviceRequest;
use calib_train::precision::Precision;

pub fn device(d: DeviceArg) -> DeviceRequest {
    match d {
        DeviceArg::Cpu => DeviceRequest::Cpu,
        DeviceArg::Cuda => DeviceRequest::Cuda,
        DeviceArg::Auto => DeviceRequest::Auto,
    }
}

pub fn precision(p: PrecisionArg) -> Precision {
    match p {
        PrecisionArg::Fp32 => Precision::Fp32,
        PrecisionArg::Bf16 => Precision::Bf16,
    }
}
