//! Keeping the server's resident memory bounded under glibc's allocator.
//!
//! Measured with `scripts/bench-memory`: with many concurrent requests, glibc gives
//! each busy thread its own arena (up to eight per core) and keeps what they free, so
//! RSS climbed with concurrency and stayed after the load ended. Fewer arenas and a
//! periodic `malloc_trim` return freed memory to the system.

use std::time::Duration;

/// Arenas glibc may create: enough for the two workers and the blocking threads not to
/// contend much, few enough that freed memory is not scattered over many heaps.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: i32 = 4;

/// Limits glibc's arenas; call before the first threads start.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Returns freed memory to the system every `every`, on a thread of its own.
pub fn trim_periodically(every: Duration) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            // SAFETY: malloc_trim is thread-safe and only releases free memory.
            unsafe {
                libc::malloc_trim(0);
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::warn!(error = %e, "no malloc-trim thread"));
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = every;
}
