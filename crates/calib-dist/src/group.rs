//! A c10d process group as the trainer's [`Collective`]: tensors are packed into buckets (as
//! DDP's reducer does) so that a step costs a few collectives, not one per parameter.

use crate::error::{Error, Result};
use crate::ffi::{self, Api};
use crate::launch::Rendezvous;
use calib_train::collective::Collective;
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CString};
use tch::{Device, Kind, Tensor};

/// Which c10d backend carries the collectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Between CPU processes (TCP).
    Gloo,
    /// Between GPUs (NVLink, InfiniBand, …); needs the NCCL shim and a CUDA libtorch.
    Nccl,
}

impl Backend {
    /// Gloo for CPU tensors, NCCL for CUDA tensors (as `torch.distributed` picks by default).
    pub fn for_device(device: Device) -> Self {
        if device.is_cuda() {
            Backend::Nccl
        } else {
            Backend::Gloo
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }
}

/// DDP's default bucket size: gradients are reduced 25 MiB at a time.
pub const BUCKET_BYTES: usize = 25 << 20;

/// This process's membership of a group of ranks.
pub struct ProcessGroup {
    api: &'static Api,
    raw: *mut c_void,
    rank: usize,
    world: usize,
    bucket_bytes: usize,
    /// A collective failed: leave the group by aborting it (a peer may be gone).
    failed: Cell<bool>,
}

impl ProcessGroup {
    /// Joins the group `rendezvous` describes; returns once every rank has joined, or fails
    /// after its timeout.
    pub fn join(backend: Backend, rendezvous: &Rendezvous) -> Result<Self> {
        let api = match backend {
            Backend::Gloo => &ffi::GLOO,
            Backend::Nccl => ffi::nccl()?,
        };
        let Rendezvous { master_addr, master_port, rank, world, timeout, agent_store, .. } = rendezvous;
        let fail = |problem: String| Error::Join {
            backend: backend.name(),
            rank: *rank,
            world: *world,
            addr: format!("{master_addr}:{master_port}"),
            problem,
        };
        let cstr = |s: &str| CString::new(s).map_err(|_| fail(format!("{s:?} holds a NUL byte")));
        let host = cstr(master_addr)?;
        // Gloo's own address: the interface asked for (as in PyTorch), loopback for a group on
        // loopback, else what this machine's name resolves to.
        let iface = cstr(&std::env::var("GLOO_SOCKET_IFNAME").unwrap_or_default())?;
        let local = if rendezvous.is_loopback() { "127.0.0.1" } else { "" };
        let hostname = cstr(local)?;
        let (mut raw, mut err): (*mut c_void, *mut c_char) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: valid C strings and out-pointers; the shim catches every C++ exception.
        let status = unsafe {
            (api.init)(
                host.as_ptr(),
                *master_port,
                c_int::from(*rank == 0 && !agent_store),
                *rank as c_int,
                *world as c_int,
                timeout.as_millis().min(i64::MAX as u128) as i64,
                rendezvous.local_rank as c_int,
                iface.as_ptr(),
                hostname.as_ptr(),
                &mut raw,
                &mut err,
            )
        };
        api.check(status, err).map_err(fail)?;
        Ok(Self { api, raw, rank: *rank, world: *world, bucket_bytes: BUCKET_BYTES, failed: Cell::new(false) })
    }

    /// Packs at most this many bytes into one collective.
    pub fn with_bucket_bytes(mut self, bytes: usize) -> Self {
        self.bucket_bytes = bytes.max(1);
        self
    }

    fn fail(&self, operation: &'static str, problem: String) -> calib_train::error::Error {
        self.failed.set(true);
        calib_train::error::Error::Collective {
            operation,
            problem: format!("rank {} of {}: {problem}", self.rank, self.world),
        }
    }

    /// Runs `op` on each bucket of `tensors` in place: a lone contiguous tensor as it is,
    /// several packed into one flat tensor and unpacked after.
    fn bucketed(
        &self,
        operation: &'static str,
        tensors: &mut [Tensor],
        op: impl Fn(*mut c_void, *mut *mut c_char) -> c_int,
    ) -> calib_train::error::Result<()> {
        for range in buckets(tensors, self.bucket_bytes) {
            let part = &mut tensors[range];
            let mut flat = if part.len() == 1 && part[0].is_contiguous() {
                part[0].shallow_clone()
            } else {
                Tensor::cat(&part.iter().map(|t| t.reshape([-1])).collect::<Vec<_>>(), 0)
            };
            let mut err: *mut c_char = std::ptr::null_mut();
            let status = op(flat.as_mut_ptr() as *mut c_void, &mut err);
            self.api.check(status, err).map_err(|p| self.fail(operation, p))?;
            if part.len() > 1 || !part[0].is_contiguous() {
                tch::no_grad(|| {
                    let mut at = 0i64;
                    for t in part.iter_mut() {
                        let n = t.numel() as i64;
                        t.copy_(&flat.narrow(0, at, n).view_(t.size()));
                        at += n;
                    }
                });
            }
        }
        Ok(())
    }
}

/// Consecutive runs of tensors that share a kind and a device, each at most `bytes` (a tensor
/// larger than that is a bucket of its own).
fn buckets(tensors: &[Tensor], bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0usize;
    let key = |t: &Tensor| (t.kind(), t.device());
    for (i, t) in tensors.iter().enumerate() {
        let b = t.numel() * element_bytes(t.kind());
        if i > start && (key(t) != key(&tensors[start]) || size + b > bytes) {
            out.push(start..i);
            start = i;
            size = 0;
        }
        size += b;
    }
    if start < tensors.len() {
        out.push(start..tensors.len());
    }
    out
}

fn element_bytes(kind: Kind) -> usize {
    match kind {
        Kind::Double | Kind::Int64 | Kind::ComplexFloat => 8,
        Kind::Float | Kind::Int => 4,
        Kind::Half | Kind::BFloat16 | Kind::Int16 => 2,
        Kind::ComplexDouble => 16,
        _ => 1,
    }
}

impl Collective for ProcessGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&self, tensors: &mut [Tensor]) -> calib_train::error::Result<()> {
        // SAFETY (both closures): `raw` is this group's live handle and `t` a live at::Tensor.
        self.bucketed("all-reduce", tensors, |t, err| unsafe { (self.api.all_reduce_sum)(self.raw, t, err) })
    }

    fn broadcast(&self, tensors: &mut [Tensor], root: usize) -> calib_train::error::Result<()> {
        if root >= self.world {
            return Err(self.fail("broadcast", format!("root {root} ≥ world {}", self.world)));
        }
        self.bucketed("broadcast", tensors, |t, err| unsafe { (self.api.broadcast)(self.raw, t, root as c_int, err) })
    }

    fn communicates(&self) -> bool {
        true
    }

    fn barrier(&self) -> calib_train::error::Result<()> {
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: `raw` is this group's live handle.
        let status = unsafe { (self.api.barrier)(self.raw, &mut err) };
        self.api.check(status, err).map_err(|p| self.fail("barrier", p))
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `raw` came from init and is destroyed once.
        unsafe { (self.api.destroy)(self.raw, c_int::from(self.failed.get())) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_nccl_shim_is_a_clear_error() {
        std::env::set_var("CALIB_NCCL_SHIM", "/nonexistent/libcalib_nccl.so");
        let rv = Rendezvous {
            master_addr: "127.0.0.1".into(),
            master_port: 1,
            rank: 0,
            world: 1,
            local_rank: 0,
            timeout: std::time::Duration::from_secs(1),
            agent_store: false,
        };
        let e = ProcessGroup::join(Backend::Nccl, &rv).err().expect("no shim there").to_string();
        assert!(e.starts_with("/nonexistent/libcalib_nccl.so: cannot load the NCCL shim: "), "{e}");
        assert!(e.ends_with("(build it with scripts/build-cuda-shims.sh, or set CALIB_NCCL_SHIM)"), "{e}");
    }

    #[test]
    fn buckets_split_by_size_and_kind() {
        let f = |n: i64| Tensor::zeros([n], (Kind::Float, Device::Cpu));
        let d = |n: i64| Tensor::zeros([n], (Kind::Double, Device::Cpu));
        let ts = [f(2), f(2), f(3), d(1), d(1), f(10), f(1)];
        // 16 bytes a bucket: [2,2] floats fill one, the 3 starts the next, the doubles another,
        // the 10 floats (40 bytes) stand alone.
        assert_eq!(buckets(&ts, 16), vec![0..2, 2..3, 3..5, 5..6, 6..7]);
        assert_eq!(buckets(&ts, 1 << 20), vec![0..3, 3..5, 5..7]);
        assert!(buckets(&[], 16).is_empty());
    }
}
