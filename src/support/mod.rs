//! Small helpers without domain words, each written once: atomic file and
//! folder replacement, retry with backoff, nearest-rank percentiles, vector
//! arithmetic, the one timestamp format and progress bars.

pub mod fs;
pub mod percentile;
pub mod progress;
pub mod retry;
pub mod time;
pub mod vector;
