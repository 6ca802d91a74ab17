//! The model thread and its cheap, cloneable handle.
//!
//! One dedicated OS thread owns the `Encoder`; callers send requests through
//! a bounded channel and get the rows back on a tokio oneshot. The thread
//! drains whatever is waiting into one batch, up to a character budget and a
//! request cap, so concurrent callers share forward passes. A full queue is
//! reported at once as `EncoderError::Busy` (the API's 429) instead of growing
//! without bound. Texts embedded recently are answered from a bounded
//! exact-text cache without queueing: customer traffic repeats itself
//! ("在吗", "退货地址").

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{Encoder, EncoderError, TextKind};

type Reply = Result<Vec<Vec<f32>>, EncoderError>;

/// Texts per encoder call when embedding many (a corpus, a week's questions).
pub const EMBED_CHUNK: usize = 32;

/// Limits of the model thread's queue and batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Requests that may wait for the model thread; one more gets `Busy`.
    pub queue_capacity: usize,
    /// Most requests merged into one batch.
    pub max_batch_requests: usize,
    /// Most characters (summed over all texts) merged into one batch; a cheap
    /// stand-in for a token budget, since tokenising happens on the thread.
    /// A single request larger than this still runs, alone.
    pub max_batch_chars: usize,
    /// Texts whose embeddings are kept for reuse (about 1.5 KB each for
    /// e5-small); 0 turns the cache off.
    pub cache_entries: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self { queue_capacity: 512, max_batch_requests: 32, max_batch_chars: 16_384, cache_entries: 20_000 }
    }
}

type CacheKey = (TextKind, String);

/// Recently embedded texts, in two generations: when the recent one is
/// full it becomes the older one and the previous older one is dropped, so
/// at most `capacity` entries live and a text in use stays (a hit in the
/// older generation moves it back). Per handle, so per model fingerprint.
struct EmbeddingCache {
    half: usize,
    generations: Mutex<[HashMap<CacheKey, Vec<f32>>; 2]>,
}

impl EmbeddingCache {
    fn new(capacity: usize) -> Option<Self> {
        (capacity > 0).then(|| Self { half: capacity.div_ceil(2), generations: Mutex::default() })
    }

    /// Every text's vector, or None when any is missing.
    fn get(&self, texts: &[String], kind: TextKind) -> Option<Vec<Vec<f32>>> {
        let mut generations = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut rows = Vec::with_capacity(texts.len());
        for text in texts {
            let key = (kind, text.clone());
            if let Some(row) = generations[0].get(&key) {
                rows.push(row.clone());
            } else {
                let row = generations[1].remove(&key)?;
                rows.push(row.clone());
                self.insert(&mut generations, key, row);
            }
        }
        Some(rows)
    }

    fn put(&self, texts: &[String], kind: TextKind, rows: &[Vec<f32>]) {
        let mut generations = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (text, row) in texts.iter().zip(rows) {
            self.insert(&mut generations, (kind, text.clone()), row.clone());
        }
    }

    fn insert(&self, generations: &mut [HashMap<CacheKey, Vec<f32>>; 2], key: CacheKey, row: Vec<f32>) {
        if generations[0].len() >= self.half {
            generations[1] = std::mem::take(&mut generations[0]);
        }
        generations[0].insert(key, row);
    }
}

struct Job {
    texts: Vec<String>,
    kind: TextKind,
    reply: oneshot::Sender<Reply>,
}

impl Job {
    fn chars(&self) -> usize {
        self.texts.iter().map(|t| t.chars().count()).sum()
    }
}

/// Cloneable handle to the model thread. The thread stops once every handle
/// is dropped and the queue is drained.
#[derive(Clone)]
pub struct EncoderHandle {
    tx: SyncSender<Job>,
    /// Requests sent and not yet taken by the model thread (the queue depth metric).
    waiting: Arc<AtomicUsize>,
    dim: usize,
    fingerprint: Arc<str>,
    cache: Option<Arc<EmbeddingCache>>,
}

impl EncoderHandle {
    /// Start the model thread for `encoder`.
    pub fn spawn(encoder: Box<dyn Encoder>, opts: BatchOptions) -> Self {
        let dim = encoder.dim();
        let fingerprint: Arc<str> = Arc::from(encoder.fingerprint());
        let (tx, rx) = mpsc::sync_channel(opts.queue_capacity.max(1));
        let waiting = Arc::new(AtomicUsize::new(0));
        let queue = Queue { rx, waiting: waiting.clone() };
        // NOTE: a plain OS thread, not spawn_blocking: inference saturates the
        // CPU for its whole life and must not occupy a tokio blocking slot.
        let started = thread::Builder::new().name("kefu-encoder".into()).spawn(move || run(encoder, queue, opts));
        if let Err(e) = started {
            // The closure, and `rx` with it, is dropped: every call answers
            // `Closed`, which callers report like any other model failure.
            tracing::error!("cannot start the encoder thread: {e}");
        }
        let cache = EmbeddingCache::new(opts.cache_entries).map(Arc::new);
        Self { tx, waiting, dim, fingerprint, cache }
    }

    /// Embed `texts`, waiting asynchronously for the model thread.
    /// Answers `Busy` at once when the queue is full.
    pub async fn embed(&self, texts: Vec<String>, kind: TextKind) -> Reply {
        if let Some(rows) = self.cache.as_ref().and_then(|cache| cache.get(&texts, kind)) {
            return Ok(rows);
        }
        let cached = self.cache.as_ref().map(|_| texts.clone());
        let (reply, rx) = oneshot::channel();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.tx.try_send(Job { texts, kind, reply }).map_err(|e| {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            match e {
                TrySendError::Full(_) => EncoderError::Busy,
                TrySendError::Disconnected(_) => EncoderError::Closed,
            }
        })?;
        let rows = rx.await.map_err(|_| EncoderError::Closed)??;
        self.remember(cached, kind, &rows);
        Ok(rows)
    }

    fn remember(&self, texts: Option<Vec<String>>, kind: TextKind, rows: &[Vec<f32>]) {
        if let (Some(cache), Some(texts)) = (&self.cache, texts) {
            cache.put(&texts, kind, rows);
        }
    }

    /// Embed `texts`, blocking the calling thread; for the CLI and other
    /// non-async callers. Unlike `embed` it waits for queue space instead of
    /// answering `Busy`.
    ///
    /// Must not be called from a thread that is driving a tokio runtime
    /// (tokio panics on blocking receives there); use `embed` in async code.
    pub fn embed_blocking(&self, texts: Vec<String>, kind: TextKind) -> Reply {
        if let Some(rows) = self.cache.as_ref().and_then(|cache| cache.get(&texts, kind)) {
            return Ok(rows);
        }
        let cached = self.cache.as_ref().map(|_| texts.clone());
        let (reply, rx) = oneshot::channel();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.tx.send(Job { texts, kind, reply }).map_err(|_| {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            EncoderError::Closed
        })?;
        let rows = rx.blocking_recv().map_err(|_| EncoderError::Closed)??;
        self.remember(cached, kind, &rows);
        Ok(rows)
    }

    /// Embeds many texts in chunks of [`EMBED_CHUNK`], one after another, so
    /// live requests keep their turn on the model thread; `done(n)` after each
    /// chunk. Texts of like length share a chunk, so little of it is padding
    /// (a fit of the demo corpus embeds 1.3 times faster); rows come back in
    /// the order of `texts`.
    pub async fn embed_all(
        &self,
        texts: &[String],
        kind: TextKind,
        done: impl Fn(usize),
    ) -> Result<Vec<Vec<f32>>, EncoderError> {
        let mut vectors = vec![Vec::new(); texts.len()];
        for chunk in chunks_by_length(texts) {
            let rows = self.embed(chunk.iter().map(|&i| texts[i].clone()).collect(), kind).await?;
            place(&mut vectors, &chunk, rows);
            done(chunk.len());
        }
        Ok(vectors)
    }

    /// [`EncoderHandle::embed_all`] for blocking callers (the CLI, fitting).
    pub fn embed_all_blocking(
        &self,
        texts: &[String],
        kind: TextKind,
        done: impl Fn(usize),
    ) -> Result<Vec<Vec<f32>>, EncoderError> {
        let mut vectors = vec![Vec::new(); texts.len()];
        for chunk in chunks_by_length(texts) {
            let rows = self.embed_blocking(chunk.iter().map(|&i| texts[i].clone()).collect(), kind)?;
            place(&mut vectors, &chunk, rows);
            done(chunk.len());
        }
        Ok(vectors)
    }

    /// Length of every returned row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The encoder's weights fingerprint.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.to_string()
    }
}

/// The indices of `texts` in chunks of [`EMBED_CHUNK`], by length in
/// characters (ties in text order, so the chunks are the same every run).
fn chunks_by_length(texts: &[String]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].chars().count());
    order.chunks(EMBED_CHUNK).map(<[usize]>::to_vec).collect()
}

/// Puts the rows embedded for `chunk`'s texts at their indices.
fn place(vectors: &mut [Vec<f32>], chunk: &[usize], rows: Vec<Vec<f32>>) {
    for (&i, row) in chunk.iter().zip(rows) {
        vectors[i] = row;
    }
}

/// The model thread's end of the queue, counting what it takes.
struct Queue {
    rx: Receiver<Job>,
    waiting: Arc<AtomicUsize>,
}

impl Queue {
    fn taken(&self, job: Job) -> Job {
        let before = self.waiting.fetch_sub(1, Ordering::Relaxed);
        crate::telemetry::encoder_queue(before.saturating_sub(1));
        job
    }

    fn recv(&self) -> Option<Job> {
        self.rx.recv().ok().map(|job| self.taken(job))
    }

    fn try_recv(&self) -> Result<Job, TryRecvError> {
        self.rx.try_recv().map(|job| self.taken(job))
    }
}

/// The model thread: take one job (blocking), add whatever else is already
/// waiting within the budget, run the batch, repeat until all senders drop.
fn run(encoder: Box<dyn Encoder>, queue: Queue, opts: BatchOptions) {
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(job) => job,
            None => match queue.recv() {
                Some(job) => job,
                None => return,
            },
        };
        let mut chars = first.chars();
        let mut batch = vec![first];
        while batch.len() < opts.max_batch_requests.max(1) {
            match queue.try_recv() {
                Ok(job) => {
                    let c = job.chars();
                    if chars + c > opts.max_batch_chars {
                        carry = Some(job);
                        break;
                    }
                    chars += c;
                    batch.push(job);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        // Clients that gave up (timeout, disconnect) are not worth a pass.
        batch.retain(|job| !job.reply.is_closed());
        let (queries, passages): (Vec<Job>, Vec<Job>) = batch.into_iter().partition(|j| j.kind == TextKind::Query);
        for (jobs, kind) in [(queries, TextKind::Query), (passages, TextKind::Passage)] {
            if !jobs.is_empty() {
                run_group(encoder.as_ref(), jobs, kind);
            }
        }
    }
}

/// Encode the texts of same-kind jobs in one call and split the rows back.
fn run_group(encoder: &dyn Encoder, jobs: Vec<Job>, kind: TextKind) {
    let texts: Vec<&str> = jobs.iter().flat_map(|j| j.texts.iter().map(String::as_str)).collect();
    let started = Instant::now();
    let encoded = encoder.encode(&texts, kind);
    crate::telemetry::encoder_batch(texts.len(), started.elapsed());
    match encoded {
        Ok(rows) => {
            let mut rows = rows.into_iter();
            for job in jobs {
                let mine: Vec<Vec<f32>> = rows.by_ref().take(job.texts.len()).collect();
                // A send error only means the client left meanwhile.
                let _ = job.reply.send(Ok(mine));
            }
        }
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    /// Fake encoder: row = [text length, kind flag]; records batch sizes and
    /// can be slowed down to let a queue build up.
    struct Fake {
        calls: Arc<Mutex<Vec<usize>>>,
        delay: Duration,
        started: Arc<AtomicUsize>,
    }

    impl Encoder for Fake {
        fn dim(&self) -> usize {
            2
        }
        fn fingerprint(&self) -> &str {
            "fake"
        }
        fn encode(&self, texts: &[&str], kind: TextKind) -> Reply {
            self.started.fetch_add(1, Ordering::SeqCst);
            thread::sleep(self.delay);
            self.calls.lock().unwrap().push(texts.len());
            let flag = if kind == TextKind::Query { 1.0 } else { 0.0 };
            Ok(texts.iter().map(|t| vec![t.chars().count() as f32, flag]).collect())
        }
    }

    fn fake(delay_ms: u64) -> (Box<Fake>, Arc<Mutex<Vec<usize>>>, Arc<AtomicUsize>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let started = Arc::new(AtomicUsize::new(0));
        let f = Fake { calls: calls.clone(), delay: Duration::from_millis(delay_ms), started: started.clone() };
        (Box::new(f), calls, started)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_are_batched_and_routed_back() {
        let (enc, calls, started) = fake(50);
        let h = EncoderHandle::spawn(enc, BatchOptions::default());
        assert_eq!((h.dim(), h.fingerprint().as_str()), (2, "fake"));
        // Occupy the thread so the next requests queue up together.
        let blocker = {
            let h = h.clone();
            tokio::spawn(async move { h.embed(vec!["x".into()], TextKind::Query).await })
        };
        while started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut tasks = Vec::new();
        for i in 0..10usize {
            let h = h.clone();
            let kind = if i % 2 == 0 { TextKind::Query } else { TextKind::Passage };
            tasks.push(tokio::spawn(async move { (i, kind, h.embed(vec!["a".repeat(i + 1); 2], kind).await) }));
        }
        for t in tasks {
            let (i, kind, rows) = t.await.unwrap();
            let rows = rows.unwrap();
            let flag = if kind == TextKind::Query { 1.0 } else { 0.0 };
            assert_eq!(rows, vec![vec![(i + 1) as f32, flag]; 2]);
        }
        blocker.await.unwrap().unwrap();
        let calls = calls.lock().unwrap().clone();
        assert!(calls.len() < 11, "requests were not batched: {calls:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_answers_busy() {
        let (enc, _calls, started) = fake(300);
        let opts = BatchOptions { queue_capacity: 1, max_batch_requests: 1, max_batch_chars: 10, cache_entries: 0 };
        let h = EncoderHandle::spawn(enc, opts);
        let first = {
            let h = h.clone();
            tokio::spawn(async move { h.embed(vec!["a".into()], TextKind::Query).await })
        };
        while started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let queued = {
            let h = h.clone();
            tokio::spawn(async move { h.embed(vec!["b".into()], TextKind::Query).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let busy = h.embed(vec!["c".into()], TextKind::Query).await;
        assert!(matches!(busy, Err(EncoderError::Busy)), "{busy:?}");
        assert!(first.await.unwrap().is_ok());
        assert!(queued.await.unwrap().is_ok());
    }

    #[test]
    fn blocking_embed_and_budget_split() {
        let (enc, calls, _) = fake(0);
        let opts = BatchOptions { queue_capacity: 8, max_batch_requests: 8, max_batch_chars: 3, cache_entries: 0 };
        let h = EncoderHandle::spawn(enc, opts);
        let rows = h.embed_blocking(vec!["abcd".into(), "".into()], TextKind::Passage).unwrap();
        assert_eq!(rows, vec![vec![4.0, 0.0], vec![0.0, 0.0]]);
        assert_eq!(calls.lock().unwrap().as_slice(), &[2], "an over-budget request still runs alone");
    }

    #[test]
    fn repeated_texts_come_from_the_bounded_cache() {
        let (enc, calls, _) = fake(0);
        let h = EncoderHandle::spawn(enc, BatchOptions { cache_entries: 4, ..BatchOptions::default() });
        let embed = |texts: &[&str], kind| h.embed_blocking(texts.iter().map(|t| t.to_string()).collect(), kind);
        let first = embed(&["在吗", "退货地址"], TextKind::Query).unwrap();
        assert_eq!(embed(&["在吗", "退货地址"], TextKind::Query).unwrap(), first);
        assert_eq!(calls.lock().unwrap().len(), 1, "a repeat is not encoded again");
        // The kind is part of the key, and a partly known request is encoded whole.
        assert_eq!(embed(&["在吗"], TextKind::Passage).unwrap(), vec![vec![2.0, 0.0]]);
        embed(&["在吗", "new"], TextKind::Query).unwrap();
        assert_eq!(calls.lock().unwrap().len(), 3);
        // Bounded: after many other texts the first ones are encoded again.
        for i in 0..10 {
            embed(&[&format!("text {i}")], TextKind::Query).unwrap();
        }
        let before = calls.lock().unwrap().len();
        embed(&["退货地址"], TextKind::Query).unwrap();
        assert_eq!(calls.lock().unwrap().len(), before + 1, "an old entry was dropped");
        let cache = h.cache.as_ref().unwrap().generations.lock().unwrap();
        assert!(cache[0].len() + cache[1].len() <= 4, "at most cache_entries are kept");
    }
}
