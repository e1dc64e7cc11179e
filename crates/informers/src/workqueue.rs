//! A de-duplicating work queue, like client-go's rate-limiting workqueue: an item added while
//! it is queued is queued once; an item added while a worker processes it is queued again when
//! the worker is done, so no two workers ever process the same item at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

struct QState<T> {
    queue: VecDeque<T>,
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
}

struct QInner<T> {
    state: Mutex<QState<T>>,
    notify: Notify,
    shutdown: CancellationToken,
}

/// A work queue of keys. Cheap to clone.
pub struct WorkQueue<T> {
    inner: Arc<QInner<T>>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// First retry delay of a failing item (client-go: 5 ms).
pub const BASE_DELAY: Duration = Duration::from_millis(5);
/// Longest retry delay of a failing item (client-go: 1000 s).
pub const MAX_DELAY: Duration = Duration::from_secs(1000);

impl<T: Hash + Eq + Clone + Send + Sync + 'static> WorkQueue<T> {
    /// An empty queue; [`WorkQueue::get`] returns `None` once `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            inner: Arc::new(QInner {
                state: Mutex::new(QState {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    failures: HashMap::new(),
                }),
                notify: Notify::new(),
                shutdown,
            }),
        }
    }

    /// Queues an item (once, however often it is added before a worker takes it).
    pub fn add(&self, item: T) {
        let mut st = self.inner.state.lock();
        if !st.dirty.insert(item.clone()) {
            return;
        }
        if st.processing.contains(&item) {
            return;
        }
        st.queue.push_back(item);
        drop(st);
        self.inner.notify.notify_one();
    }

    /// Queues an item after a delay.
    pub fn add_after(&self, item: T, delay: Duration) {
        if delay.is_zero() {
            self.add(item);
            return;
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = q.inner.shutdown.cancelled() => {}
                _ = tokio::time::sleep(delay) => q.add(item),
            }
        });
    }

    /// Queues an item after its back-off: 5 ms doubling per consecutive failure, up to 1000 s.
    pub fn add_rate_limited(&self, item: T) {
        let n = {
            let mut st = self.inner.state.lock();
            let n = st.failures.entry(item.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let delay = BASE_DELAY
            .checked_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX))
            .unwrap_or(MAX_DELAY)
            .min(MAX_DELAY);
        self.add_after(item, delay);
    }

    /// Forgets the failures of an item (after a success).
    pub fn forget(&self, item: &T) {
        self.inner.state.lock().failures.remove(item);
    }

    /// How many times an item failed in a row.
    pub fn failures(&self, item: &T) -> u32 {
        self.inner
            .state
            .lock()
            .failures
            .get(item)
            .copied()
            .unwrap_or(0)
    }

    /// Number of items waiting.
    pub fn len(&self) -> usize {
        self.inner.state.lock().queue.len()
    }

    /// Whether no item waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the next item, waiting for one; `None` after shutdown. Call [`WorkQueue::done`]
    /// when finished with it.
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = self.inner.notify.notified();
            {
                let mut st = self.inner.state.lock();
                if self.inner.shutdown.is_cancelled() {
                    return None;
                }
                if let Some(item) = st.queue.pop_front() {
                    st.dirty.remove(&item);
                    st.processing.insert(item.clone());
                    let more = !st.queue.is_empty();
                    drop(st);
                    if more {
                        self.inner.notify.notify_one();
                    }
                    return Some(item);
                }
            }
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return None,
                _ = notified => {}
            }
        }
    }

    /// Marks an item processed; if it was added meanwhile, it is queued again.
    pub fn done(&self, item: &T) {
        let mut st = self.inner.state.lock();
        st.processing.remove(item);
        if st.dirty.contains(item) {
            st.queue.push_back(item.clone());
            drop(st);
            self.inner.notify.notify_one();
        }
    }
}

/// What a sync function asks of the queue after it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Nothing: the item is in its desired state.
    No,
    /// Sync it again after this delay.
    After(Duration),
}

/// Runs `workers` workers taking items from `queue` until shutdown. A sync that fails is
/// retried with back-off; one that succeeds is forgotten (and requeued if it asks).
pub async fn run_workers<T, F, Fut, E>(queue: WorkQueue<T>, workers: usize, name: &str, sync: F)
where
    T: Hash + Eq + Clone + Send + Sync + std::fmt::Debug + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Requeue, E>> + Send,
    E: std::fmt::Display,
{
    let sync = Arc::new(sync);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let q = queue.clone();
        let sync = sync.clone();
        let name = name.to_string();
        set.spawn(async move {
            while let Some(item) = q.get().await {
                match sync(item.clone()).await {
                    Ok(r) => {
                        q.forget(&item);
                        if let Requeue::After(d) = r {
                            q.add_after(item.clone(), d);
                        }
                    }
                    Err(e) => {
                        tracing::info!(controller = %name, item = ?item, error = %e, "sync failed; will retry");
                        q.add_rate_limited(item.clone());
                    }
                }
                q.done(&item);
            }
        });
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deduplicates_and_requeues_items_added_while_processing() {
        let q = WorkQueue::new(CancellationToken::new());
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.get().await.unwrap();
        assert_eq!(a, "a");
        q.add("a"); // while processing: not handed out twice
        assert_eq!(q.get().await.unwrap(), "b");
        assert!(q.is_empty());
        q.done(&"a");
        assert_eq!(q.get().await.unwrap(), "a");
    }

    #[tokio::test]
    async fn get_returns_none_after_shutdown() {
        let token = CancellationToken::new();
        let q: WorkQueue<u32> = WorkQueue::new(token.clone());
        let h = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::task::yield_now().await;
        token.cancel();
        assert_eq!(h.await.unwrap(), None);
    }

    #[tokio::test]
    async fn back_off_doubles_per_failure() {
        let q = WorkQueue::new(CancellationToken::new());
        q.add_rate_limited("x"); // 5 ms
        q.add_rate_limited("x"); // 10 ms
        q.add_rate_limited("x"); // 20 ms
        assert_eq!(q.failures(&"x"), 3);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(q.len(), 1);
        let x = q.get().await.unwrap();
        q.done(&x);
        q.forget(&x);
        assert_eq!(q.failures(&"x"), 0);
    }

    #[tokio::test]
    async fn run_workers_retries_failures() {
        let token = CancellationToken::new();
        let q = WorkQueue::new(token.clone());
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        q.add(1u32);
        let c = calls.clone();
        let t = token.clone();
        let runner = tokio::spawn(run_workers(q.clone(), 2, "test", move |_i: u32| {
            let c = c.clone();
            let t = t.clone();
            async move {
                let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n < 2 {
                    Err("not yet")
                } else {
                    t.cancel();
                    Ok(Requeue::No)
                }
            }
        }));
        tokio::time::timeout(Duration::from_secs(5), runner)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
