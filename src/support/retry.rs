//! Retrying an operation that may pass next time, with a growing wait.

use std::future::Future;
use std::time::Duration;

/// How often and how long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Tries after the first one.
    pub retries: u32,
    /// Wait before the first retry.
    pub first: Duration,
    /// Each further wait is this many times the one before (1: fixed waits).
    pub growth: u32,
}

impl Backoff {
    /// Exponential backoff: `first`, then doubling.
    pub fn doubling(retries: u32, first: Duration) -> Backoff {
        Backoff { retries, first, growth: 2 }
    }

    /// Wait before retry number `retry` (0-based).
    pub fn delay(&self, retry: u32) -> Duration {
        self.first.saturating_mul(self.growth.saturating_pow(retry))
    }
}

/// Runs `attempt` until it succeeds, fails in a way `retryable` rejects, or
/// the retries run out; `before_retry(retry, error, wait)` runs before each
/// wait (to log). Returns the last result.
pub async fn retry<T, E, Fut>(
    backoff: Backoff,
    mut attempt: impl FnMut() -> Fut,
    retryable: impl Fn(&E) -> bool,
    before_retry: impl Fn(u32, &E, Duration),
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut retry = 0;
    loop {
        match attempt().await {
            Err(err) if retry < backoff.retries && retryable(&err) => {
                let wait = backoff.delay(retry);
                before_retry(retry, &err, wait);
                tokio::time::sleep(wait).await;
                retry += 1;
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn delays_double_and_saturate() {
        let b = Backoff::doubling(3, Duration::from_millis(100));
        assert_eq!([0, 1, 2].map(|r| b.delay(r)), [100, 200, 400].map(Duration::from_millis));
        assert_eq!(Backoff::doubling(3, Duration::from_secs(u64::MAX / 2)).delay(40), Duration::MAX);
        assert_eq!(
            Backoff { retries: 1, first: Duration::from_millis(50), growth: 1 }.delay(7),
            Duration::from_millis(50)
        );
    }

    #[tokio::test]
    async fn retries_what_may_pass_and_stops_at_what_cannot() {
        let tries = Cell::new(0);
        let backoff = Backoff::doubling(3, Duration::from_millis(1));
        let passes_third_time = retry(
            backoff,
            || {
                tries.set(tries.get() + 1);
                let n = tries.get();
                async move {
                    if n < 3 {
                        Err("busy")
                    } else {
                        Ok(n)
                    }
                }
            },
            |_| true,
            |_, _, _| {},
        );
        assert_eq!(passes_third_time.await, Ok(3));
        tries.set(0);
        let never: Result<(), &str> = retry(
            backoff,
            || {
                tries.set(tries.get() + 1);
                async { Err("broken") }
            },
            |e| *e != "broken",
            |_, _, _| {},
        )
        .await;
        assert_eq!((never, tries.get()), (Err("broken"), 1));
        tries.set(0);
        let gives_up: Result<(), &str> = retry(
            backoff,
            || {
                tries.set(tries.get() + 1);
                async { Err("busy") }
            },
            |_| true,
            |_, _, _| {},
        )
        .await;
        assert_eq!((gives_up, tries.get()), (Err("busy"), 4));
    }
}
