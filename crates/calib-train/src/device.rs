//! Device selection. The binary links only libtorch's CPU libraries (see scripts/setup.sh), so
//! CUDA is loaded at run time: `dlopen("libtorch_cuda.so")` registers libtorch's CUDA backend when
//! a CUDA build of libtorch 2.11 is on `LD_LIBRARY_PATH`.

use crate::error::{Error, Result};
use std::ffi::{CStr, CString};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    Cpu,
    Cuda,
    /// CUDA when it can be loaded and a GPU is visible, else CPU.
    Auto,
}

/// Loads libtorch's CUDA backend into the process; the error is dlerror()'s text.
fn load_cuda_backend() -> std::result::Result<(), String> {
    let name = CString::new("libtorch_cuda.so").expect("no NUL");
    // SAFETY: dlopen with a valid C string; the handle is kept for the life of the process
    // (never closed), which is what registering a backend requires.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a thread-local C string or null.
        let msg = unsafe { libc::dlerror() };
        return Err(if msg.is_null() {
            "unknown dlopen error".into()
        } else {
            unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned()
        });
    }
    Ok(())
}

pub fn select(request: DeviceRequest) -> Result<tch::Device> {
    match request {
        DeviceRequest::Cpu => Ok(tch::Device::Cpu),
        DeviceRequest::Cuda | DeviceRequest::Auto => {
            let loaded = load_cuda_backend();
            let available = loaded.is_ok() && tch::Cuda::is_available();
            match (available, request) {
                (true, _) => Ok(tch::Device::Cuda(0)),
                (false, DeviceRequest::Auto) => Ok(tch::Device::Cpu),
                (false, _) => match loaded {
                    Err(e) => Err(Error::Device(format!(
                        "--device cuda: cannot load libtorch_cuda.so ({e}); put a CUDA build of libtorch 2.11 (e.g. the torch wheel's lib/ folder) on LD_LIBRARY_PATH"
                    ))),
                    Ok(()) => Err(Error::Device("--device cuda: libtorch_cuda.so is loaded but no CUDA device is visible".into())),
                },
            }
        }
    }
}
