//! A platform's access token, fetched once for every sender and kept until
//! shortly before it expires. A fetch holds the lock, so concurrent senders
//! that find no valid token wait for one fetch instead of each asking.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// Tokens are renewed this long before the platform says they expire, so a
/// request never leaves with a token that dies on the way.
const EARLY_RENEWAL: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct TokenCache {
    current: Mutex<Option<(String, Instant)>>,
}

impl TokenCache {
    /// The cached token, or a fresh one from `fetch` (token, lifetime).
    pub async fn get<E, F, Fut>(&self, fetch: F) -> Result<String, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, Duration), E>>,
    {
        let mut current = self.current.lock().await;
        if let Some((token, until)) = current.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = fetch().await?;
        let until = Instant::now() + lifetime.saturating_sub(EARLY_RENEWAL).max(Duration::from_secs(1));
        *current = Some((token.clone(), until));
        Ok(token)
    }

    /// Drops `stale` after the platform rejected it; a newer token stays.
    pub async fn invalidate(&self, stale: &str) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|(token, _)| token == stale) {
            *current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn one_fetch_serves_concurrent_senders_until_invalidated() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicUsize::new(0));
        let fetch = |fetches: Arc<AtomicUsize>| async move {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, ()>((format!("token-{n}"), Duration::from_secs(7200)))
        };
        let senders: Vec<_> = (0..10)
            .map(|_| {
                let (cache, fetches) = (cache.clone(), fetches.clone());
                tokio::spawn(async move { cache.get(|| fetch(fetches)).await.unwrap() })
            })
            .collect();
        for sender in senders {
            assert_eq!(sender.await.unwrap(), "token-0");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "one fetch for all senders");
        cache.invalidate("token-other").await;
        assert_eq!(cache.get(|| fetch(fetches.clone())).await.unwrap(), "token-0", "a newer token survives");
        cache.invalidate("token-0").await;
        assert_eq!(cache.get(|| fetch(fetches.clone())).await.unwrap(), "token-1");
    }
}
