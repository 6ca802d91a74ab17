//! Giving the operating system back what a large load freed.

/// Return the heap's free pages to the operating system. Loading a model
/// frees far more than it keeps (the ONNX graph built in memory, the
/// tokenizer's parsed JSON), and glibc's allocator holds freed small blocks
/// for reuse, so without this the server's resident memory stays at the
/// load's peak. Elsewhere a no-op.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator kefu
    // runs on; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}
