//! The Rust side of the project's C++ shims' error protocol (`cpp/guarded.hpp`, shared with
//! calib-dist): a call returns 0, or 1 with a malloc'ed message that the shim's own free function
//! must release.

use std::ffi::{c_char, c_int, CStr};

/// `Ok` for status 0, else the message behind `err`, which is then freed with `free`.
///
/// # Safety
/// `err` is null or a NUL-terminated string the shim allocated and nobody has freed; `free` is
/// that shim's free function.
pub unsafe fn take_error(
    status: c_int,
    err: *mut c_char,
    free: unsafe extern "C" fn(*mut c_char),
) -> Result<(), String> {
    if status == 0 {
        return Ok(());
    }
    if err.is_null() {
        return Err("failed without a message".into());
    }
    // SAFETY: the caller's contract: a live NUL-terminated string, freed once here.
    let text = unsafe { CStr::from_ptr(err) }.to_string_lossy().trim().to_string();
    unsafe { free(err) };
    Err(text)
}
