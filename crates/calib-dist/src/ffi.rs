//! The shim's C ABI (cpp/shim.cpp) as a table of functions: Gloo's linked into this crate,
//! NCCL's loaded from `libcalib_nccl.so` once CUDA is (it links libtorch_cuda.so, which a CPU
//! machine does not have).

use crate::error::{Error, Result};
use std::ffi::{c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

type Init = unsafe extern "C" fn(
    host: *const c_char,
    port: u16,
    serve: c_int,
    rank: c_int,
    world: c_int,
    timeout_ms: i64,
    device: c_int,
    iface: *const c_char,
    hostname: *const c_char,
    out: *mut *mut c_void,
    err: *mut *mut c_char,
) -> c_int;
type AllReduceSum = unsafe extern "C" fn(group: *mut c_void, tensor: *mut c_void, err: *mut *mut c_char) -> c_int;
type Broadcast =
    unsafe extern "C" fn(group: *mut c_void, tensor: *mut c_void, root: c_int, err: *mut *mut c_char) -> c_int;
type Barrier = unsafe extern "C" fn(group: *mut c_void, err: *mut *mut c_char) -> c_int;
type Destroy = unsafe extern "C" fn(group: *mut c_void, failed: c_int);
type FreeError = unsafe extern "C" fn(err: *mut c_char);

/// One backend's entry points.
pub(crate) struct Api {
    pub init: Init,
    pub all_reduce_sum: AllReduceSum,
    pub broadcast: Broadcast,
    pub barrier: Barrier,
    pub destroy: Destroy,
    free_error: FreeError,
}

extern "C" {
    fn calib_gloo_init(
        host: *const c_char,
        port: u16,
        serve: c_int,
        rank: c_int,
        world: c_int,
        timeout_ms: i64,
        device: c_int,
        iface: *const c_char,
        hostname: *const c_char,
        out: *mut *mut c_void,
        err: *mut *mut c_char,
    ) -> c_int;
    fn calib_gloo_all_reduce_sum(group: *mut c_void, tensor: *mut c_void, err: *mut *mut c_char) -> c_int;
    fn calib_gloo_broadcast(group: *mut c_void, tensor: *mut c_void, root: c_int, err: *mut *mut c_char) -> c_int;
    fn calib_gloo_barrier(group: *mut c_void, err: *mut *mut c_char) -> c_int;
    fn calib_gloo_destroy(group: *mut c_void, failed: c_int);
    fn calib_gloo_free_error(err: *mut c_char);
}

pub(crate) static GLOO: Api = Api {
    init: calib_gloo_init,
    all_reduce_sum: calib_gloo_all_reduce_sum,
    broadcast: calib_gloo_broadcast,
    barrier: calib_gloo_barrier,
    destroy: calib_gloo_destroy,
    free_error: calib_gloo_free_error,
};

impl Api {
    /// Turns a shim status into a result, taking ownership of the message.
    pub fn check(&self, status: c_int, err: *mut c_char) -> std::result::Result<(), String> {
        // SAFETY: `err` is what this backend's shim just set (or null), freed by its own function.
        unsafe { calib_train::shim::take_error(status, err, self.free_error) }
    }
}

/// Where the NCCL shim is looked for: `CALIB_NCCL_SHIM`, else beside the executable.
pub(crate) fn nccl_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CALIB_NCCL_SHIM") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent().unwrap_or(Path::new(".")).join("libcalib_nccl.so")
}

/// The NCCL entry points, loaded once per process (the library stays loaded).
pub(crate) fn nccl() -> Result<&'static Api> {
    static NCCL: OnceLock<std::result::Result<Api, String>> = OnceLock::new();
    let path = nccl_path();
    let api = NCCL.get_or_init(|| load_nccl(&path));
    api.as_ref().map_err(|problem| Error::Shim { path, problem: problem.clone() })
}

fn load_nccl(path: &Path) -> std::result::Result<Api, String> {
    // SAFETY: the library's initialisers are libtorch's and the shim's static objects.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    // The functions live as long as the process: the library is never unloaded.
    let lib: &'static libloading::Library = Box::leak(Box::new(lib));
    // SAFETY: each symbol is declared in cpp/shim.cpp with exactly these signatures.
    unsafe {
        Ok(Api {
            init: *lib.get::<Init>(b"calib_nccl_init\0").map_err(|e| e.to_string())?,
            all_reduce_sum: *lib.get::<AllReduceSum>(b"calib_nccl_all_reduce_sum\0").map_err(|e| e.to_string())?,
            broadcast: *lib.get::<Broadcast>(b"calib_nccl_broadcast\0").map_err(|e| e.to_string())?,
            barrier: *lib.get::<Barrier>(b"calib_nccl_barrier\0").map_err(|e| e.to_string())?,
            destroy: *lib.get::<Destroy>(b"calib_nccl_destroy\0").map_err(|e| e.to_string())?,
            free_error: *lib.get::<FreeError>(b"calib_nccl_free_error\0").map_err(|e| e.to_string())?,
        })
    }
}
