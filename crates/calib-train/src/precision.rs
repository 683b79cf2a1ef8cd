//! Mixed precision: `torch.autocast` with a chosen dtype. tch exposes only libtorch's default
//! autocast (float16, CUDA), so the two ATen functions that pick the device and dtype are called
//! directly; they are exported by `libtorch_cpu.so` (C++ names, enum arguments passed as their
//! `int8_t` values). bfloat16 needs no loss scaling, which is why it is the mixed precision
//! offered for training.

use serde::{Deserialize, Serialize};

/// Arithmetic of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 throughout.
    #[default]
    Fp32,
    /// Autocast to bfloat16: matrix products and convolutions in bf16, reductions and the loss
    /// in float32 (PyTorch's `torch.autocast(dtype=torch.bfloat16)`).
    Bf16,
}

/// `c10::DeviceType` and `c10::ScalarType` values.
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;
const SCALAR_BFLOAT16: i8 = 15;

extern "C" {
    #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
    fn at_set_autocast_dtype(device: i8, dtype: i8);
    #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
    fn at_get_autocast_dtype(device: i8) -> i8;
    #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
    fn at_set_autocast_enabled(device: i8, enabled: bool);
    #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
    fn at_is_autocast_enabled(device: i8) -> bool;
}

/// Runs `f` with the forward arithmetic of `precision` on `device`, restoring the previous
/// autocast state afterwards (also when `f` panics).
pub fn with<T>(precision: Precision, device: tch::Device, f: impl FnOnce() -> T) -> T {
    if precision == Precision::Fp32 {
        return f();
    }
    let d = if device.is_cuda() { DEVICE_CUDA } else { DEVICE_CPU };
    struct Restore {
        device: i8,
        enabled: bool,
        dtype: i8,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: plain setters of libtorch's thread-local autocast state.
            unsafe {
                at_set_autocast_enabled(self.device, self.enabled);
                at_set_autocast_dtype(self.device, self.dtype);
                torch_sys::at_autocast_decrement_nesting();
                torch_sys::at_autocast_clear_cache();
            }
        }
    }
    // SAFETY: as above; the guard restores the state it read.
    let _restore = unsafe {
        let r = Restore { device: d, enabled: at_is_autocast_enabled(d), dtype: at_get_autocast_dtype(d) };
        at_set_autocast_dtype(d, SCALAR_BFLOAT16);
        at_set_autocast_enabled(d, true);
        torch_sys::at_autocast_increment_nesting();
        r
    };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    /// On the CPU too: a matrix product runs in bfloat16 inside, float32 outside and after.
    #[test]
    fn bf16_autocast_on_cpu() {
        let a = Tensor::ones([4, 8], (Kind::Float, Device::Cpu));
        let b = Tensor::ones([8, 2], (Kind::Float, Device::Cpu));
        let inside = with(Precision::Bf16, Device::Cpu, || a.matmul(&b));
        assert_eq!(inside.kind(), Kind::BFloat16);
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
        assert_eq!(with(Precision::Fp32, Device::Cpu, || a.matmul(&b)).kind(), Kind::Float);
        assert!(!unsafe { at_is_autocast_enabled(DEVICE_CPU) });
    }
}
