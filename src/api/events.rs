//! Server-sent event streams that replay from a cursor: each event's id is
//! its sequence number in the store, so a browser's `EventSource` resumes
//! after a disconnect with `Last-Event-ID` and misses nothing. The store
//! wakes streams after each change in this process; a periodic look covers
//! changes other replicas make.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;

use crate::store::{Store, StoreError};

/// How often a stream looks for changes nobody announced (another replica's).
const POLL: Duration = Duration::from_secs(2);

/// Most entries read at once.
pub(super) const PAGE: i64 = 100;

/// The cursor a client resumes from: `Last-Event-ID` (a reconnecting
/// `EventSource`) first, then the `after` query parameter.
pub(super) fn resume_cursor(headers: &HeaderMap, after: Option<i64>) -> Option<i64> {
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    last_event_id.or(after)
}

/// Streams what `next_page(after)` returns, as `event` events whose id is
/// each item's sequence number, from `after` on, for as long as the client listens.
pub(super) fn follow<T, F, Fut>(
    store: &Store,
    event: &'static str,
    after: i64,
    next_page: F,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    T: Serialize + Send + 'static,
    F: Fn(i64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<(i64, T)>, StoreError>> + Send,
{
    let next_page = std::sync::Arc::new(next_page);
    let state = (store.changes(), after, VecDeque::<(i64, T)>::new());
    let stream = futures_util::stream::unfold(state, move |(mut changes, mut after, mut pending)| {
        let next_page = next_page.clone();
        async move {
            loop {
                if let Some((seq, item)) = pending.pop_front() {
                    let data = serde_json::to_string(&item).unwrap_or_else(|_| "null".into());
                    let sse = Event::default().id(seq.to_string()).event(event).data(data);
                    return Some((Ok(sse), (changes, after, pending)));
                }
                match next_page(after).await {
                    Ok(page) if !page.is_empty() => {
                        after = page.last().map_or(after, |(seq, _)| *seq);
                        pending.extend(page);
                        continue;
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "a live stream could not read the store; it tries again"),
                }
                // Wakes on a change here, or looks again after POLL for other replicas' changes.
                if tokio::time::timeout(POLL, changes.changed()).await.is_ok_and(|r| r.is_err()) {
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
