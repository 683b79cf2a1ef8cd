//! `host_memory::keep_freed_memory` changes the process's allocator, so it is tested in a process
//! of its own (no other test allocates while the counters are read) and on the main thread, whose
//! arena is the one that grows without bound and the one the trainer's step allocates from (a
//! thread's arena is made of 64 MiB heaps, and glibc maps a larger block for it whatever the
//! setting). `harness = false`: this file is the test's `main`.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
/// Bytes glibc holds in blocks of their own `mmap` (`mallinfo2().hblkhd`).
fn mmapped_bytes() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    unsafe { libc::mallinfo2() }.hblkhd
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
/// Bytes of the arenas' heaps (`mallinfo2().arena`).
fn heap_bytes() -> usize {
    // SAFETY: as above.
    unsafe { libc::mallinfo2() }.arena
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    large_blocks_come_from_the_heap_and_stay_there();
    println!("host_memory: large blocks come from the heap and stay there ... ok");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn large_blocks_come_from_the_heap_and_stay_there() {
    const SIZE: usize = 96 << 20;
    // glibc's default: a block this large is a mapping of its own, returned on free.
    let before = mmapped_bytes();
    // SAFETY: malloc/free pairs of blocks that are never read.
    let p = unsafe { libc::malloc(SIZE) };
    assert!(!p.is_null());
    assert!(mmapped_bytes() >= before + SIZE, "glibc's default should mmap a 96 MiB block");
    unsafe { libc::free(p) };
    assert_eq!(mmapped_bytes(), before);

    calib_train::host_memory::keep_freed_memory();
    let p = unsafe { libc::malloc(SIZE) };
    assert!(!p.is_null());
    assert_eq!(mmapped_bytes(), before, "the block should come from a heap");
    let held = heap_bytes();
    assert!(held >= SIZE);
    unsafe { libc::free(p) };
    assert_eq!(heap_bytes(), held, "freed memory should stay in the process");
}
