//! A revisioned key-value store with etcd's semantics.
//!
//! Every successful write gets a new, globally increasing revision (it becomes the Kubernetes
//! `resourceVersion`). Writes are guarded by the key's mod revision (compare-and-swap), reads can be
//! served at the current or an older revision, watchers receive every change after a revision, and
//! compaction discards history older than a revision (reads or watches from before it fail with
//! [`StoreError::Compacted`]).
//!
//! Layout:
//! - [`Store`]: the trait every backend implements, documented edge case by edge case.
//! - [`sqlite`]: the embedded backend (WAL, group commit).
//! - [`etcd`]: the backend over an etcd v3 cluster (revisions are etcd's revisions).
//! - [`transfer`]: copying every key between stores (migration), snapshot files and restore.
//! - [`conformance`]: the suite every backend must pass, written once.
//! - [`spawn_compactor`] / [`compact_once`]: periodic compaction keeping recent history, for any
//!   backend.

pub mod conformance;
pub mod etcd;
pub mod sqlite;
pub mod transfer;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio_util::sync::CancellationToken;

pub use sqlite::{SqliteOptions, SqliteStore};

/// A store revision. Revision 0 means "no revision" / "before the first write".
pub type Revision = i64;

/// One stored version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, e.g. `/registry/pods/default/nginx`.
    pub key: String,
    /// The value (the JSON of the object).
    pub value: Bytes,
    /// The revision at which this key was created (its current generation).
    pub create_revision: Revision,
    /// The revision of the last write to this key.
    pub mod_revision: Revision,
}

/// The result of a range read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResult {
    /// The matching keys in key order, at most `limit` of them.
    pub kvs: Vec<KeyValue>,
    /// The revision the read was served at.
    pub revision: Revision,
    /// True when more keys matched than `limit` allowed.
    pub more: bool,
}

/// One change seen by a watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A key was created or updated. `prev` is the value before, if the key existed.
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// A key was deleted. `prev` is the last value; `revision` is the deletion's revision.
    Delete { prev: KeyValue, revision: Revision },
}

impl Event {
    /// The revision at which this change happened.
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    /// The key this change concerns.
    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// Errors of the store.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// `create` of a key that exists.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// `update`/`delete` of a key that does not exist.
    #[error("key {0} not found")]
    NotFound(String),
    /// The key's mod revision is not the expected one.
    #[error("key {key} was modified (expected mod revision {expected}, found {actual})")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    /// The requested revision has been compacted away.
    #[error("required revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision is newer than the store's current revision.
    #[error("required revision {requested} is a future revision (current revision {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// The watcher fell too far behind and was cut off; it must re-list.
    #[error("watcher fell behind and was closed")]
    WatcherLagged,
    /// The store is shutting down.
    #[error("store is closed")]
    Closed,
    /// An error of the backend (I/O, database).
    #[error("backend error: {0}")]
    Backend(String),
}

/// Convenience result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stream of watch events, in revision order. It ends with an `Err` if the watcher is cut off.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

/// A revisioned key-value store with etcd's semantics.
///
/// Keys are UTF-8 strings; ranges are by prefix. All revisions are global: every write
/// (create, update or delete) takes exactly one new revision, strictly greater than every
/// revision before it.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current revision (that of the last write; 0 on an empty new store).
    async fn current_revision(&self) -> Result<Revision>;

    /// The revision up to which history has been compacted (0 if never).
    async fn compacted_revision(&self) -> Result<Revision>;

    /// Reads one key. `at`: `None` reads the latest value; `Some(r)` reads the value as of
    /// revision `r` (`Compacted` if `r` is older than the compacted revision, `FutureRevision` if
    /// newer than the current one). Returns the value (if the key existed at that revision) and the
    /// revision the read was served at.
    async fn get(&self, key: &str, at: Option<Revision>) -> Result<(Option<KeyValue>, Revision)>;

    /// Reads every key starting with `prefix` whose key is strictly greater than `start_after`
    /// (if given), in key order, at most `limit` keys (0 = no limit). `at` as in [`Store::get`].
    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: Option<Revision>,
    ) -> Result<RangeResult>;

    /// Creates a key. Fails with `AlreadyExists` if it exists. Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision>;

    /// Replaces a key's value if its mod revision is `expected` (`Conflict` otherwise,
    /// `NotFound` if the key does not exist). Returns the new revision.
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision>;

    /// Deletes a key, if `expected` is given only when its mod revision is `expected`.
    /// Returns the deletion's revision and the deleted value.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)>;

    /// Watches every key starting with `prefix`, delivering every change with a revision strictly
    /// greater than `after`, in revision order (first the history from the log, then live changes).
    /// `after` may be the current revision or later (only later changes are delivered).
    /// `Compacted` if `after` + 1 is older than the compacted revision (returned by `watch`, or as
    /// the stream's last item if a compaction overtakes a watcher still replaying history). A
    /// watcher that does not keep up is ended with `WatcherLagged`; it never slows down writers.
    /// The stream also ends with `Closed` when the store shuts down.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Discards history older than `revision`: afterwards, reads at and watches from revisions
    /// below it fail with `Compacted` (reading at `revision` itself, and watching with
    /// `after = revision - 1`, still work). The latest value of every live key is kept.
    /// `FutureRevision` if `revision` is newer than the current revision; compacting at or below
    /// the already compacted revision is a no-op.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Whether the live watch event of a `create` or `update` carries the very [`Bytes`] written
    /// (the same allocation), so that a writer can recognise its own version in the watch
    /// without comparing contents. False unless a backend guarantees it.
    fn events_share_written_bytes(&self) -> bool {
        false
    }
}

/// A shared store is a store, so `Arc<dyn Store>` and `Arc<SqliteStore>` can be passed wherever a
/// [`Store`] is expected.
#[async_trait::async_trait]
impl<T: Store + ?Sized> Store for Arc<T> {
    async fn current_revision(&self) -> Result<Revision> {
        (**self).current_revision().await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        (**self).compacted_revision().await
    }

    async fn get(&self, key: &str, at: Option<Revision>) -> Result<(Option<KeyValue>, Revision)> {
        (**self).get(key, at).await
    }

    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: Option<Revision>,
    ) -> Result<RangeResult> {
        (**self).range(prefix, start_after, limit, at).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        (**self).create(key, value).await
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        (**self).update(key, value, expected).await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        (**self).delete(key, expected).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        (**self).watch(prefix, after).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        (**self).compact(revision).await
    }

    fn events_share_written_bytes(&self) -> bool {
        (**self).events_share_written_bytes()
    }
}

/// Spawns a background task that compacts `store` every `interval`, keeping the last
/// `keep_revisions` revisions of history (like the API server's periodic compaction, which runs
/// every 5 minutes). Errors are logged and retried at the next tick. The task ends when `cancel`
/// is cancelled or the store reports [`StoreError::Closed`].
pub fn spawn_compactor<S: Store + ?Sized>(
    store: Arc<S>,
    interval: Duration,
    keep_revisions: Revision,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            match compact_once(&*store, keep_revisions).await {
                Ok(Some(rev)) => tracing::debug!(revision = rev, "compacted store history"),
                Ok(None) => {}
                Err(StoreError::Closed) => return,
                Err(err) => tracing::warn!(error = %err, "store compaction failed"),
            }
        }
    })
}

/// Compacts `store` so that the last `keep_revisions` revisions of history stay readable.
/// Returns the revision compacted to, or `None` if there was nothing to compact.
pub async fn compact_once<S: Store + ?Sized>(
    store: &S,
    keep_revisions: Revision,
) -> Result<Option<Revision>> {
    let current = store.current_revision().await?;
    let target = current - keep_revisions.max(0);
    if target <= store.compacted_revision().await? {
        return Ok(None);
    }
    store.compact(target).await?;
    Ok(Some(target))
}
