//! Small helpers without domain words, each written once: atomic file and
//! folder replacement, retry with backoff, nearest-rank percentiles, vector
//! arithmetic, the one timestamp format, progress bars, a constant-time
//! comparison of secrets, and handing freed memory back to the system.

pub mod fs;
pub mod memory;
pub mod percentile;
pub mod progress;
pub mod retry;
pub mod time;
pub mod vector;

/// Compares two secrets (MACs, signatures) in time independent of where they differ.
pub fn same_secret(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && expected.bytes().zip(given.bytes()).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
}
