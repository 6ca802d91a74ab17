//! What replicas sharing one PostgreSQL tell each other: a committed change
//! live streams show, and a stored correction the live engines must learn,
//! travel as NOTIFY signals; each replica LISTENs and wakes its own
//! watchers. The signals carry no data (readers fetch what is new from the
//! tables), so a missed one costs nothing but time: after a reconnect every
//! watcher is woken once to catch up. One replica at a time retrains, under
//! a session advisory lock that PostgreSQL frees if its holder dies.
//!
//! On SQLite (one machine, one server) the signals stay in the process and
//! the lock is the process's own.

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgListener;
use sqlx::{Any, Executor, Row};

use super::{Backend, Store, StoreError};

/// NOTIFY channels.
const CHANGES: &str = "kefu_changes";
const CORRECTIONS: &str = "kefu_corrections";

/// The advisory lock key of retraining and version switching ("kefu" + 1).
const LEARNING_LOCK: i64 = 0x6b65_6675_0001;

/// How long a lost listener waits before connecting again.
const RECONNECT: Duration = Duration::from_secs(1);

/// Held while this replica retrains or switches versions; dropping it frees the lock.
pub struct ClusterLock {
    /// On PostgreSQL, the session holding the advisory lock; it is closed,
    /// not returned to the pool, so the lock ends with it.
    _session: Option<PoolConnection<Any>>,
}

impl Store {
    /// A counter that moves whenever any replica stores a correction.
    pub fn corrections_changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.corrections.subscribe()
    }

    /// Wakes this replica's watchers of `channel`.
    fn wake(&self, channel: &str) {
        let counter = if channel == CORRECTIONS { &self.corrections } else { &self.changes };
        counter.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn signal(&self, channel: &'static str) {
        self.wake(channel);
        if self.backend == Backend::Postgres {
            let pool = self.pool.clone();
            // NOTE: fire and forget: the change is committed already, and a lost
            // signal only delays other replicas until their next periodic look.
            tokio::spawn(async move {
                if let Err(err) = pool.execute(format!("NOTIFY {channel}").as_str()).await {
                    tracing::warn!(channel, error = %err, "could not signal the other replicas");
                }
            });
        }
    }

    pub(super) fn announce_change(&self) {
        self.signal(CHANGES);
    }

    pub(super) fn announce_correction(&self) {
        self.signal(CORRECTIONS);
    }

    /// Wakes this replica's watchers on the other replicas' signals, for as
    /// long as the process runs. Returns at once on SQLite.
    pub async fn listen_to_replicas(self) {
        let Some(url) = self.url.clone() else { return };
        let wake_all = || [CHANGES, CORRECTIONS].into_iter().for_each(|channel| self.wake(channel));
        loop {
            let listening = async {
                let mut listener = PgListener::connect(&url).await?;
                listener.listen_all([CHANGES, CORRECTIONS]).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = match listening.await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen to the other replicas; trying again");
                    tokio::time::sleep(RECONNECT).await;
                    continue;
                }
            };
            // Whatever was signalled while nobody listened is read now.
            wake_all();
            loop {
                match listener.try_recv().await {
                    Ok(Some(signal)) => self.wake(signal.channel()),
                    // The connection dropped; the next receive reconnects and listens again.
                    Ok(None) => {
                        tracing::warn!("lost the replicas' signals; reconnecting and catching up");
                        tokio::time::sleep(RECONNECT).await;
                        wake_all();
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "the replicas' signals failed; reconnecting");
                        break;
                    }
                }
            }
            tokio::time::sleep(RECONNECT).await;
        }
    }

    /// Takes the learning lock (retrain, promotion, rollback) for this
    /// replica, or `None` when another replica holds it.
    pub async fn try_learning_lock(&self) -> Result<Option<ClusterLock>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(Some(ClusterLock { _session: None }));
        }
        let mut session = self.pool.acquire().await?;
        let taken: bool = sqlx::query("SELECT pg_try_advisory_lock($1) AS taken")
            .bind(LEARNING_LOCK)
            .fetch_one(&mut *session)
            .await?
            .try_get("taken")?;
        if !taken {
            return Ok(None);
        }
        session.close_on_drop();
        Ok(Some(ClusterLock { _session: Some(session) }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_correction_stored_through_one_replica_wakes_the_others() {
        for t in crate::store::testing::test_stores().await {
            let other = t.replica().await;
            let mut corrections = other.corrections_changed();
            if t.backend == "postgres" {
                tokio::spawn(other.clone().listen_to_replicas());
                // The first wake-up is the catch-up after connecting.
                tokio::time::timeout(WAIT, corrections.changed()).await.unwrap().unwrap();
                corrections.borrow_and_update();
            }
            let local = t.store.corrections_changed();
            t.store.add_correction(None, "钱退哪了", "refund_status", None, None, chrono::Utc::now()).await.unwrap();
            assert!(local.has_changed().unwrap(), "{}: this replica's own watchers wake", t.backend);
            if t.backend == "postgres" {
                let woken = tokio::time::timeout(WAIT, corrections.changed()).await;
                assert!(woken.is_ok_and(|r| r.is_ok()), "the other replica hears of it");
            }
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn one_replica_at_a_time_holds_the_learning_lock() {
        for t in crate::store::testing::test_stores().await {
            let other = t.replica().await;
            let held = t.store.try_learning_lock().await.unwrap().expect("free at first");
            if t.backend == "postgres" {
                assert!(other.try_learning_lock().await.unwrap().is_none(), "held by the other replica");
            }
            drop(held);
            // The holder's session closes in the background.
            let mut taken = None;
            for _ in 0..50 {
                taken = other.try_learning_lock().await.unwrap();
                if taken.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(taken.is_some(), "{}: freed when the holder lets go", t.backend);
            drop(taken);
            t.cleanup().await;
        }
    }
}
