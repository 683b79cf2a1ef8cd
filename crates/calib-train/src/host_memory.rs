//! How freed host memory is kept. glibc hands every block over its mmap threshold (32 MiB at most)
//! to the kernel with its own `mmap`, and `munmap`s it on `free`; it also trims the top of the heap
//! back to the kernel once enough of it is free. A CPU training step allocates and frees the same
//! large tensors every step (Transformer-small's logits at 2,048 tokens × 8,000 entries are 62.5 MiB
//! in f32 and their log-probabilities as much again), so each step faulted those pages back in and
//! the kernel zeroed them: 16 % of a Multi30k step was kernel time (`perf`), mostly
//! `clear_page_erms` and page faults. Keeping freed blocks in the process, as PyTorch's CUDA
//! caching allocator does for device memory, made the Transformer-small step 10–15 % faster
//! (docs/performance.md). The price is that the process keeps its peak host footprint.

/// Tells glibc to serve every block from its heaps and never give freed memory back to the kernel.
/// Does nothing when the user tuned glibc's allocator through `GLIBC_TUNABLES` (their setting wins),
/// or on a C library other than glibc. Call it once, before the first large allocation.
pub fn keep_freed_memory() {
    let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."));
    if !tuned {
        set_glibc_malloc();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_glibc_malloc() {
    // SAFETY: mallopt only sets allocator parameters; it is called before other threads allocate.
    // Blocks that no arena heap can hold still come from the main arena, which grows with brk.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_glibc_malloc() {}
