//! The embedded SQLite backend.
//!
//! Design:
//! - **Schema.** `log` holds one row per revision (`rev` is the rowid) with the key, the key's
//!   create revision, the revision of the key's previous row (`prev_rev`, 0 for a create), a
//!   `deleted` flag and the value (a tombstone keeps the deleted value, so a delete event can be
//!   rebuilt from its own row). The index `log_key_rev` finds a key's latest row: the key is
//!   live unless that row is a tombstone (compaction never deletes the latest row of a live key,
//!   and deletes a tombstone only with the rows before it). A write thus changes two B-trees, the
//!   log and its index; a separate table of live keys (the schema before) made a third, with a
//!   page to rewrite per written key. `meta` holds the
//!   compacted revision and the progress of the physical compaction.
//! - **Writes (group commit).** One dedicated OS thread owns the only write connection. Callers
//!   send requests over a channel and wait on a oneshot reply. The writer drains every pending
//!   request, applies them all in one `IMMEDIATE` transaction (each checks its own condition and
//!   gets its own revision; a failed condition fails only that request), commits once
//!   (`synchronous=FULL`: one fsync of the WAL), then publishes the events and replies. A write
//!   is therefore durable when it is acknowledged. Writes that arrive often but one at a time
//!   (5,000 kubelets renewing their Leases at evenly spread times) would cost one commit and one
//!   fsync each; writes to keys under [`SqliteOptions::deferrable_prefixes`] (heartbeats) may
//!   instead wait up to [`SqliteOptions::deferred_commit_window`] to share a commit. Any other
//!   request ends the wait at once and commits together with the held writes, so only the
//!   heartbeats themselves are ever delayed. None are deferrable by default.
//! - **Reads.** A small pool of read-only connections, used from `spawn_blocking`. Every read runs
//!   in one read transaction, so the revision it reports matches the data it returns.
//! - **Watch.** History is replayed from `log` page by page; once caught up the watcher subscribes
//!   to the in-memory broadcast fed by the writer, reads the history once more up to a snapshot
//!   revision `R`, and then delivers live events newer than `R` (no gap, no duplicate). The
//!   broadcast is bounded: a watcher that falls more than [`SqliteOptions::watch_buffer`] events
//!   behind ends with [`StoreError::WatcherLagged`]; writers never wait for watchers.
//! - **Compaction.** `compact(rev)` records the compacted revision at once (reads and watches below
//!   it fail from then on), then the writer deletes superseded rows in chunks interleaved with
//!   write batches, so a compaction never blocks writes for long. A row older than `rev` is
//!   deleted when a newer row of the same key older than `rev` exists, and tombstones older than
//!   `rev` are deleted. The row that was current just before `rev` is kept: it is the `prev` of
//!   the first event at or after `rev`. Freed pages are returned with `incremental_vacuum`.
//! - **Checkpoints.** The writer connection has auto-checkpointing off; a separate checkpointer
//!   thread runs passive checkpoints after commits (at most one per
//!   [`SqliteOptions::checkpoint_interval`]), so commits rarely pay for a checkpoint. Once the WAL
//!   exceeds [`SqliteOptions::wal_restart_frames`] the writer completes the checkpoint itself
//!   between two transactions so the WAL starts over (`journal_size_limit` truncates it).
//!
//! Only one process may open a database file at a time.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{Event, KeyValue, RangeResult, Result, Revision, Store, StoreError, WatchStream};

/// Tuning knobs of [`SqliteStore`]. `SqliteOptions::default()` suits production.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Number of read-only connections, which is also the number of reads (and watch history
    /// pages) served at once; further reads wait for a free connection.
    pub read_connections: usize,
    /// How many events the live-event broadcast buffers. A watcher that falls further behind is
    /// ended with [`StoreError::WatcherLagged`].
    pub watch_buffer: usize,
    /// Maximum number of write requests applied in one transaction.
    pub max_batch: usize,
    /// Capacity of the write request queue; callers wait (asynchronously) when it is full.
    pub queue_capacity: usize,
    /// How many history rows one compaction step examines (one step runs between write batches).
    pub compact_chunk: usize,
    /// Minimum time between two WAL checkpoints.
    pub checkpoint_interval: Duration,
    /// Number of history rows per page when a watcher replays history.
    pub watch_page: usize,
    /// WAL size (in pages) above which the writer completes a checkpoint itself so that the WAL
    /// starts over (see the module documentation).
    pub wal_restart_frames: i64,
    /// Key prefixes of deferrable writes (heartbeats): a batch made only of writes to keys under
    /// these prefixes waits up to [`SqliteOptions::deferred_commit_window`] for more requests to
    /// share its commit (and fsync); any other request ends the wait at once. Empty (the
    /// default): every batch commits at once.
    pub deferrable_prefixes: Vec<String>,
    /// How long a batch of deferrable writes may wait for company.
    pub deferred_commit_window: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            read_connections: 4,
            watch_buffer: 4096,
            max_batch: 1024,
            queue_capacity: 4096,
            compact_chunk: 1000,
            checkpoint_interval: Duration::from_millis(100),
            watch_page: 512,
            wal_restart_frames: 1024,
            deferrable_prefixes: Vec::new(),
            deferred_commit_window: Duration::from_millis(20),
        }
    }
}

/// Counters of a [`SqliteStore`], for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqliteStats {
    /// Write transactions committed by the writer (each is one fsync of the WAL).
    pub commits: u64,
    /// Write requests (create/update/delete) processed, successful or not.
    pub writes: u64,
    /// Compaction steps committed.
    pub compaction_steps: u64,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Backend(err.to_string())
    }
}

/// A [`Store`] backed by one SQLite database file (WAL mode, durable group commit).
///
/// Dropping the store stops its writer thread once the queued requests are done; [`Self::close`]
/// does the same and waits for it. Reads and watches still running at that point fail with
/// [`StoreError::Closed`] (watchers first receive every event committed before).
pub struct SqliteStore {
    shared: Arc<Shared>,
    requests: mpsc::Sender<Request>,
    /// The writer thread, woken when a request must not wait (see [`Deferral`]).
    writer: std::thread::Thread,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .field("revision", &self.shared.current.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

/// State shared by the store handle, the writer thread, readers and watchers.
struct Shared {
    path: PathBuf,
    opts: SqliteOptions,
    readers: Mutex<Vec<Connection>>,
    /// Bounds concurrent reads to the pool size, so connections are reused rather than opened.
    read_permits: Arc<tokio::sync::Semaphore>,
    /// The live-event broadcast; `None` once the writer has stopped.
    events: Mutex<Option<broadcast::Sender<Arc<Event>>>>,
    current: AtomicI64,
    compacted: AtomicI64,
    /// Set when the writer has stopped; reads then fail with `Closed`.
    closed: AtomicBool,
    commits: AtomicU64,
    writes: AtomicU64,
    compaction_steps: AtomicU64,
}

enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

impl WriteOp {
    fn key(&self) -> &str {
        match self {
            WriteOp::Create { key, .. }
            | WriteOp::Update { key, .. }
            | WriteOp::Delete { key, .. } => key,
        }
    }
}

enum WriteOutcome {
    Put(Revision),
    Deleted(Revision, KeyValue),
}

/// A request of a batch, without its reply channel.
enum BatchOp {
    Write(WriteOp),
    Compact(Revision),
}

/// The reply channel of a request of a batch.
enum Reply {
    Write(oneshot::Sender<Result<WriteOutcome>>),
    Compact(Revision, oneshot::Sender<Result<()>>),
}

enum Request {
    Write(WriteOp, oneshot::Sender<Result<WriteOutcome>>),
    Compact(Revision, oneshot::Sender<Result<()>>),
    Close(oneshot::Sender<()>),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_rev ON log (key, rev);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('compacted', 0), ('compact_progress', 0);
";

/// The latest row of one key (found through `log_key_rev`): the key is live unless it is a
/// tombstone. Compaction never deletes the latest row of a live key, and deletes a tombstone
/// only with every row before it.
const SELECT_LATEST: &str = "SELECT rev, create_rev, deleted, value FROM log
    WHERE key = ?1 ORDER BY rev DESC LIMIT 1";

/// Databases written before the live keys were read from `log` alone kept them in a table
/// `current` too. The latest `log` row of a live key is never compacted, but the databases
/// where `current` held a copy of each value get a row put back from it should one be missing
/// (`prev_rev` 0: compaction then deletes nothing on its behalf). Then the table goes. Runs
/// once, in one transaction, when the table is found.
const MIGRATE_CURRENT_VALUE: &str = "
INSERT OR IGNORE INTO log (rev, key, create_rev, prev_rev, deleted, value)
    SELECT rev, key, create_rev, 0, 0, value FROM current;
";
const DROP_CURRENT: &str = "DROP TABLE current;";

/// The live version of a key from a row of [`SELECT_LATEST`] (or of the same columns at an
/// older revision): `None` for a tombstone.
fn live_row(key: &str, row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<KeyValue>> {
    if row.get::<_, bool>(2)? {
        return Ok(None);
    }
    Ok(Some(KeyValue {
        key: key.to_owned(),
        mod_revision: row.get(0)?,
        create_revision: row.get(1)?,
        value: Bytes::from(row.get::<_, Vec<u8>>(3)?),
    }))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts the writer thread. An existing
    /// database continues from its last revision with all its data.
    pub async fn open(path: &Path, opts: SqliteOptions) -> Result<Self> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (requests, requests_rx) = mpsc::channel(opts.queue_capacity.max(1));
        let path = path.to_owned();
        let writer = std::thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || writer_main(path, opts, requests_rx, ready_tx))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?
            .thread()
            .clone();
        let shared = ready_rx.await.map_err(|_| StoreError::Closed)??;
        Ok(Self {
            shared,
            requests,
            writer,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Counters of commits and writes since the store was opened.
    pub fn stats(&self) -> SqliteStats {
        SqliteStats {
            commits: self.shared.commits.load(Ordering::Acquire),
            writes: self.shared.writes.load(Ordering::Acquire),
            compaction_steps: self.shared.compaction_steps.load(Ordering::Acquire),
        }
    }

    /// Stops the writer thread after the requests already queued, checkpoints the WAL and waits
    /// until the database is closed. Later writes fail with [`StoreError::Closed`]. Idempotent.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Close(tx)).await.is_ok() {
            self.writer.unpark();
            // An error means the writer is gone already, which is what we wait for.
            let _ = rx.await;
        } else {
            // The writer already stopped taking requests; wait until it has released the
            // broadcast (its last step) so `close` returns only once shut down.
            while self.shared.events.lock().is_some() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome> {
        let (tx, rx) = oneshot::channel();
        let deferrable = is_deferrable(&self.shared.opts.deferrable_prefixes, op.key());
        self.requests
            .send(Request::Write(op, tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        if !deferrable {
            self.writer.unpark();
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        read_blocking(&self.shared, f).await
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.current.load(Ordering::Acquire))
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.shared.compacted.load(Ordering::Acquire))
    }

    async fn get(&self, key: &str, at: Option<Revision>) -> Result<(Option<KeyValue>, Revision)> {
        let key = key.to_owned();
        self.read(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let (current, compacted) = snapshot_revisions(&tx)?;
            let kv = match at {
                None => tx
                    .prepare_cached(SELECT_LATEST)?
                    .query_row(params![key], |row| live_row(&key, row))
                    .optional()?
                    .flatten(),
                Some(rev) => {
                    check_revision(rev, current, compacted)?;
                    tx.prepare_cached(
                        "SELECT rev, create_rev, deleted, value FROM log
                         WHERE key = ?1 AND rev <= ?2 ORDER BY rev DESC LIMIT 1",
                    )?
                    .query_row(params![key, rev], |row| live_row(&key, row))
                    .optional()?
                    .flatten()
                }
            };
            Ok((kv, at.unwrap_or(current)))
        })
        .await
    }

    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: Option<Revision>,
    ) -> Result<RangeResult> {
        let bounds = KeyBounds::new(prefix, start_after);
        self.read(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let (current, compacted) = snapshot_revisions(&tx)?;
            if let Some(rev) = at {
                check_revision(rev, current, compacted)?;
            }
            let wanted = if limit == 0 { usize::MAX } else { limit + 1 };
            let mut kvs = Vec::new();
            match at {
                None => {
                    // The latest row of each key in range, found in the index alone (it
                    // holds `rev`); then only those rows are read from the table.
                    let n = bounds.params().len();
                    let sql = format!(
                        "SELECT l.key, l.rev, l.create_rev, l.value
                         FROM (SELECT key, MAX(rev) AS rev FROM log WHERE {} GROUP BY key) latest
                         JOIN log l ON l.rev = latest.rev
                         WHERE l.deleted = 0 ORDER BY latest.key LIMIT ?{}",
                        bounds.sql("key", 1),
                        n + 1
                    );
                    let mut stmt = tx.prepare_cached(&sql)?;
                    let mut params = bounds.values();
                    // A negative LIMIT means no limit.
                    params.push(rusqlite::types::Value::Integer(
                        i64::try_from(wanted).unwrap_or(-1),
                    ));
                    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                    while let Some(row) = rows.next()? {
                        kvs.push(KeyValue {
                            key: row.get(0)?,
                            mod_revision: row.get(1)?,
                            create_revision: row.get(2)?,
                            value: Bytes::from(row.get::<_, Vec<u8>>(3)?),
                        });
                    }
                }
                Some(rev) => {
                    // The newest row at or before `rev` of every key in range (SQLite takes the
                    // bare columns from the row holding the MAX).
                    let sql = format!(
                        "SELECT key, MAX(rev), create_rev, deleted, value FROM log
                         WHERE {} AND rev <= ?{} GROUP BY key ORDER BY key",
                        bounds.sql("key", 1),
                        bounds.params().len() + 1
                    );
                    let mut stmt = tx.prepare_cached(&sql)?;
                    let mut params = bounds.values();
                    params.push(rusqlite::types::Value::Integer(rev));
                    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                    while kvs.len() < wanted {
                        let Some(row) = rows.next()? else { break };
                        if row.get::<_, bool>(3)? {
                            continue;
                        }
                        kvs.push(KeyValue {
                            key: row.get(0)?,
                            mod_revision: row.get(1)?,
                            create_revision: row.get(2)?,
                            value: Bytes::from(row.get::<_, Vec<u8>>(4)?),
                        });
                    }
                }
            }
            let more = limit != 0 && kvs.len() > limit;
            kvs.truncate(if limit == 0 { kvs.len() } else { limit });
            Ok(RangeResult {
                kvs,
                revision: at.unwrap_or(current),
                more,
            })
        })
        .await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        match self
            .write(WriteOp::Create {
                key: key.to_owned(),
                value,
            })
            .await?
        {
            WriteOutcome::Put(rev) | WriteOutcome::Deleted(rev, _) => Ok(rev),
        }
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        match self
            .write(WriteOp::Update {
                key: key.to_owned(),
                value,
                expected,
            })
            .await?
        {
            WriteOutcome::Put(rev) | WriteOutcome::Deleted(rev, _) => Ok(rev),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        match self
            .write(WriteOp::Delete {
                key: key.to_owned(),
                expected,
            })
            .await?
        {
            WriteOutcome::Deleted(rev, prev) => Ok((rev, prev)),
            WriteOutcome::Put(_) => Err(StoreError::Backend(
                "writer answered a delete with a put".to_owned(),
            )),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let mut state = WatchState {
            shared: self.shared.clone(),
            bounds: KeyBounds::new(prefix, None),
            prefix: prefix.to_owned(),
            cursor: after,
            buf: VecDeque::new(),
            rx: None,
            live: false,
            done: false,
        };
        // The first page is read here so that `Compacted` is reported by `watch` itself. When the
        // history fits in it, the watcher is subscribed and goes live before `watch` returns, so
        // every later write counts against its buffer from now on.
        state.catch_up().await?;
        if state.rx.is_some() {
            state.catch_up().await?;
        }
        Ok(Box::pin(futures::stream::unfold(
            state,
            |mut state| async move {
                let item = state.next_event().await?;
                Some((item, state))
            },
        )))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Compact(revision, tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        self.writer.unpark();
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// The writer moves the written `Bytes` into the event it publishes.
    fn events_share_written_bytes(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Reads

async fn read_blocking<T, F>(shared: &Arc<Shared>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    if shared.closed.load(Ordering::Acquire) {
        return Err(StoreError::Closed);
    }
    // The semaphore is never closed. The permit moves into the blocking task, so it is held
    // until the read is done even if the caller stops waiting.
    let permit = shared
        .read_permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| StoreError::Closed)?;
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let conn = match shared.readers.lock().pop() {
            Some(conn) => conn,
            None => open_reader(&shared.path)?,
        };
        let result = f(&conn);
        let mut pool = shared.readers.lock();
        if pool.len() < shared.opts.read_connections {
            pool.push(conn);
        }
        result
    })
    .await
    .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// The current and compacted revisions as seen by the read transaction on `conn`.
fn snapshot_revisions(conn: &Connection) -> Result<(Revision, Revision)> {
    let current: Revision = conn
        .prepare_cached("SELECT COALESCE(MAX(rev), 0) FROM log")?
        .query_row([], |row| row.get(0))?;
    let compacted: Revision = conn
        .prepare_cached("SELECT value FROM meta WHERE name = 'compacted'")?
        .query_row([], |row| row.get(0))?;
    Ok((current, compacted))
}

fn check_revision(rev: Revision, current: Revision, compacted: Revision) -> Result<()> {
    if rev < compacted {
        return Err(StoreError::Compacted {
            requested: rev,
            compacted,
        });
    }
    if rev > current {
        return Err(StoreError::FutureRevision {
            requested: rev,
            current,
        });
    }
    Ok(())
}

/// The key interval of a prefix read: `[prefix, prefix_end)`, narrowed by `start_after`.
#[derive(Debug, Clone)]
struct KeyBounds {
    /// Lower bound and whether it is exclusive.
    lower: (String, bool),
    /// Exclusive upper bound; `None` when every key above `lower` matches (empty prefix).
    upper: Option<String>,
}

impl KeyBounds {
    fn new(prefix: &str, start_after: Option<&str>) -> Self {
        let lower = match start_after {
            Some(after) if after >= prefix => (after.to_owned(), true),
            _ => (prefix.to_owned(), false),
        };
        Self {
            lower,
            upper: prefix_end(prefix),
        }
    }

    /// The SQL condition on `column`, with parameters numbered from `first`.
    fn sql(&self, column: &str, first: usize) -> String {
        let op = if self.lower.1 { ">" } else { ">=" };
        match self.upper {
            Some(_) => format!("{column} {op} ?{first} AND {column} < ?{}", first + 1),
            None => format!("{column} {op} ?{first}"),
        }
    }

    fn params(&self) -> Vec<String> {
        let mut params = vec![self.lower.0.clone()];
        params.extend(self.upper.clone());
        params
    }

    /// [`Self::params`] as SQL values, ready for more parameters to be appended.
    fn values(&self) -> Vec<rusqlite::types::Value> {
        self.params()
            .into_iter()
            .map(rusqlite::types::Value::Text)
            .collect()
    }
}

/// The smallest string greater than every string starting with `prefix`, if any. UTF-8 byte order
/// is code point order, so incrementing the last incrementable character gives it.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Watch

struct WatchState {
    shared: Arc<Shared>,
    bounds: KeyBounds,
    prefix: String,
    /// Every matching event with a revision up to `cursor` has been queued or delivered.
    cursor: Revision,
    buf: VecDeque<Event>,
    rx: Option<broadcast::Receiver<Arc<Event>>>,
    live: bool,
    done: bool,
}

impl WatchState {
    async fn next_event(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.buf.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            if !self.live {
                if let Err(err) = self.catch_up().await {
                    self.done = true;
                    return Some(Err(err));
                }
                continue;
            }
            let Some(rx) = self.rx.as_mut() else {
                self.done = true;
                return Some(Err(StoreError::Closed));
            };
            match rx.recv().await {
                Ok(event) => {
                    let rev = event.revision();
                    if rev > self.cursor && event.key().starts_with(&self.prefix) {
                        self.cursor = rev;
                        return Some(Ok((*event).clone()));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.done = true;
                    return Some(Err(StoreError::WatcherLagged));
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.done = true;
                    return Some(Err(StoreError::Closed));
                }
            }
        }
    }

    /// Reads one page of history after the cursor. When the page is not full the watcher is caught
    /// up with the page's snapshot: the first time it then subscribes to live events (and reads
    /// once more, to cover what was committed before subscribing), the second time it goes live.
    async fn catch_up(&mut self) -> Result<()> {
        let page = self.shared.opts.watch_page.max(1);
        let (cursor, bounds) = (self.cursor, self.bounds.clone());
        let (events, snapshot) = read_blocking(&self.shared, move |conn| {
            read_history(conn, &bounds, cursor, page)
        })
        .await?;
        let full = events.len() >= page;
        if let Some(last) = events.last() {
            self.cursor = last.revision();
        }
        self.buf.extend(events);
        if !full {
            self.cursor = self.cursor.max(snapshot);
            if self.rx.is_some() {
                self.live = true;
            } else {
                let sender = self.shared.events.lock();
                let Some(sender) = sender.as_ref() else {
                    return Err(StoreError::Closed);
                };
                self.rx = Some(sender.subscribe());
            }
        }
        Ok(())
    }
}

/// Up to `limit` events of keys in `bounds` with revisions after `after`, and the current revision
/// of the snapshot they were read from.
fn read_history(
    conn: &Connection,
    bounds: &KeyBounds,
    after: Revision,
    limit: usize,
) -> Result<(Vec<Event>, Revision)> {
    let tx = conn.unchecked_transaction()?;
    let (current, compacted) = snapshot_revisions(&tx)?;
    if after + 1 < compacted {
        return Err(StoreError::Compacted {
            requested: after + 1,
            compacted,
        });
    }
    // `+l.key` keeps SQLite on the rowid (revision) order instead of the key index.
    let n = bounds.params().len();
    let sql = format!(
        "SELECT l.rev, l.key, l.create_rev, l.prev_rev, l.deleted, l.value,
                p.create_rev, p.deleted, p.value
         FROM log l LEFT JOIN log p ON p.rev = l.prev_rev
         WHERE l.rev > ?{} AND {} ORDER BY l.rev LIMIT ?{}",
        n + 1,
        bounds.sql("+l.key", 1),
        n + 2
    );
    let mut params = bounds.values();
    params.push(rusqlite::types::Value::Integer(after));
    params.push(rusqlite::types::Value::Integer(
        i64::try_from(limit).unwrap_or(i64::MAX),
    ));
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        let rev: Revision = row.get(0)?;
        let key: String = row.get(1)?;
        let create_rev: Revision = row.get(2)?;
        let prev_rev: Revision = row.get(3)?;
        let deleted: bool = row.get(4)?;
        let value = Bytes::from(row.get::<_, Vec<u8>>(5)?);
        let event = if deleted {
            Event::Delete {
                prev: KeyValue {
                    key,
                    value,
                    create_revision: create_rev,
                    mod_revision: prev_rev,
                },
                revision: rev,
            }
        } else {
            let prev_create: Option<Revision> = row.get(6)?;
            let prev_deleted: Option<bool> = row.get(7)?;
            let prev = match (prev_create, prev_deleted) {
                (Some(prev_create), Some(false)) => Some(KeyValue {
                    key: key.clone(),
                    value: Bytes::from(row.get::<_, Vec<u8>>(8)?),
                    create_revision: prev_create,
                    mod_revision: prev_rev,
                }),
                _ => None,
            };
            Event::Put {
                kv: KeyValue {
                    key,
                    value,
                    create_revision: create_rev,
                    mod_revision: rev,
                },
                prev,
            }
        };
        events.push(event);
    }
    Ok((events, current))
}

// ---------------------------------------------------------------------------------------------
// Writer

fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Must precede table creation to take effect on a new database.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "cannot switch the database to WAL mode (journal mode is {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", 16 * 1024 * 1024)?;
    conn.set_prepared_statement_cache_capacity(32);
    conn.execute_batch(SCHEMA)?;
    let has_value: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('current') WHERE name = 'value'",
        [],
        |r| r.get(0),
    )?;
    let has_current: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'current'",
        [],
        |r| r.get(0),
    )?;
    if has_current {
        tracing::info!(path = %path.display(), "sqlite: dropping table current (live keys are read from log)");
        let copy = if has_value { MIGRATE_CURRENT_VALUE } else { "" };
        conn.execute_batch(&format!("BEGIN IMMEDIATE;{copy}{DROP_CURRENT}COMMIT;"))?;
    }
    Ok(conn)
}

fn writer_main(
    path: PathBuf,
    opts: SqliteOptions,
    mut requests: mpsc::Receiver<Request>,
    ready: oneshot::Sender<Result<Arc<Shared>>>,
) {
    let init = (|| -> Result<Writer> {
        let conn = open_writer(&path)?;
        let rev: Revision =
            conn.query_row("SELECT COALESCE(MAX(rev), 0) FROM log", [], |r| r.get(0))?;
        let meta = |name: &str| -> Result<Revision> {
            Ok(
                conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                    r.get(0)
                })?,
            )
        };
        let compacted = meta("compacted")?;
        let progress = meta("compact_progress")?;
        let (events, _) = broadcast::channel(opts.watch_buffer.max(1));
        let shared = Arc::new(Shared {
            path: path.clone(),
            opts: opts.clone(),
            readers: Mutex::new(Vec::new()),
            read_permits: Arc::new(tokio::sync::Semaphore::new(opts.read_connections.max(1))),
            events: Mutex::new(Some(events.clone())),
            current: AtomicI64::new(rev),
            compacted: AtomicI64::new(compacted),
            closed: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            compaction_steps: AtomicU64::new(0),
        });
        let checkpointer = Checkpointer::start(&path, opts.checkpoint_interval)?;
        Ok(Writer {
            conn,
            shared,
            events,
            rev,
            compacted,
            progress,
            vacuum_pending: false,
            compaction_failed: false,
            compact_waiters: Vec::new(),
            checkpointer: Some(checkpointer),
            deferral: Deferral {
                prefixes: opts.deferrable_prefixes.clone(),
                window: opts.deferred_commit_window,
            },
        })
    })();
    let mut writer = match init {
        Ok(writer) => writer,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    if ready.send(Ok(writer.shared.clone())).is_err() {
        return;
    }
    let closers = writer.run(&mut requests);
    writer.shutdown(&mut requests, closers);
}

struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    events: broadcast::Sender<Arc<Event>>,
    /// The last committed revision.
    rev: Revision,
    /// The committed compacted revision.
    compacted: Revision,
    /// Every history row below this revision has been examined by the physical compaction.
    progress: Revision,
    vacuum_pending: bool,
    /// The last compaction step failed; physical compaction resumes with the next `compact`.
    compaction_failed: bool,
    compact_waiters: Vec<(Revision, oneshot::Sender<Result<()>>)>,
    checkpointer: Option<Checkpointer>,
    deferral: Deferral,
}

/// Moves queued requests into `batch` until the queue is empty, the batch is full or a `Close`
/// arrives (it goes into `closers`).
fn drain(
    requests: &mut mpsc::Receiver<Request>,
    batch: &mut Vec<Request>,
    closers: &mut Vec<oneshot::Sender<()>>,
    max_batch: usize,
) {
    while closers.is_empty() && batch.len() < max_batch {
        match requests.try_recv() {
            Ok(Request::Close(tx)) => closers.push(tx),
            Ok(req) => batch.push(req),
            Err(_) => break,
        }
    }
}

/// Whether a write to `key` may wait to share a commit.
fn is_deferrable(prefixes: &[String], key: &str) -> bool {
    prefixes.iter().any(|p| key.starts_with(p.as_str()))
}

/// Deferred commits: a batch made only of writes to deferrable keys (heartbeats) waits up to
/// `window` for more requests to share its transaction and fsync. The writer sleeps through the
/// window (deferrable writes only queue up, they do not wake it); any other request wakes it
/// (`SqliteStore` unparks the writer thread after sending one) and the batch commits at once,
/// so only the deferrable writes themselves are ever delayed.
struct Deferral {
    prefixes: Vec<String>,
    window: Duration,
}

impl Deferral {
    fn deferrable(&self, req: &Request) -> bool {
        match req {
            Request::Write(op, _) => is_deferrable(&self.prefixes, op.key()),
            Request::Compact(..) | Request::Close(_) => false,
        }
    }

    /// Whether `batch` may wait for company.
    fn should_wait(&self, batch: &[Request]) -> bool {
        !self.window.is_zero() && !batch.is_empty() && batch.iter().all(|r| self.deferrable(r))
    }
}

impl Writer {
    fn compaction_pending(&self) -> bool {
        (self.progress < self.compacted && !self.compaction_failed) || self.vacuum_pending
    }

    /// Serves requests until the channel closes or a `Close` arrives; returns the close waiters.
    fn run(&mut self, requests: &mut mpsc::Receiver<Request>) -> Vec<oneshot::Sender<()>> {
        let max_batch = self.shared.opts.max_batch.max(1);
        loop {
            let first = if self.compaction_pending() {
                match requests.try_recv() {
                    Ok(req) => Some(req),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => return Vec::new(),
                }
            } else {
                match requests.blocking_recv() {
                    Some(req) => Some(req),
                    None => return Vec::new(),
                }
            };
            if let Some(first) = first {
                let mut batch = Vec::new();
                let mut closers = Vec::new();
                match first {
                    Request::Close(tx) => closers.push(tx),
                    req => batch.push(req),
                }
                drain(requests, &mut batch, &mut closers, max_batch);
                if closers.is_empty() && self.deferral.should_wait(&batch) {
                    let deadline = Instant::now() + self.deferral.window;
                    loop {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        std::thread::park_timeout(deadline - now);
                        let before = batch.len();
                        drain(requests, &mut batch, &mut closers, max_batch);
                        // Anything but a heartbeat commits now, with whatever else is queued.
                        if !closers.is_empty()
                            || batch.len() >= max_batch
                            || batch[before..].iter().any(|r| !self.deferral.deferrable(r))
                        {
                            break;
                        }
                    }
                    // What arrived during the last sleep.
                    drain(requests, &mut batch, &mut closers, max_batch);
                }
                if !batch.is_empty() {
                    self.apply_batch(batch);
                }
                if !closers.is_empty() {
                    return closers;
                }
            }
            if self.compaction_pending() {
                self.compact_step();
            }
        }
    }

    fn shutdown(
        mut self,
        requests: &mut mpsc::Receiver<Request>,
        mut closers: Vec<oneshot::Sender<()>>,
    ) {
        requests.close();
        while let Ok(req) = requests.try_recv() {
            match req {
                Request::Write(_, tx) => {
                    let _ = tx.send(Err(StoreError::Closed));
                }
                Request::Compact(_, tx) => {
                    let _ = tx.send(Err(StoreError::Closed));
                }
                Request::Close(tx) => closers.push(tx),
            }
        }
        for (_, tx) in self.compact_waiters.drain(..) {
            let _ = tx.send(Err(StoreError::Closed));
        }
        if let Some(checkpointer) = self.checkpointer.take() {
            checkpointer.stop();
        }
        self.shared.closed.store(true, Ordering::Release);
        self.shared.readers.lock().clear();
        let result = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        if let Err(err) = result {
            tracing::warn!(error = %err, "final WAL checkpoint failed");
        }
        self.shared.events.lock().take();
        drop(self);
        for tx in closers {
            let _ = tx.send(());
        }
    }

    /// Applies every request of `batch` in one transaction and answers them after the commit.
    fn apply_batch(&mut self, batch: Vec<Request>) {
        // Split the requests from their reply channels, so that a database failure in the middle
        // of the batch can still answer every request.
        let mut ops = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for req in batch {
            match req {
                Request::Write(op, reply) => {
                    ops.push(BatchOp::Write(op));
                    replies.push(Reply::Write(reply));
                }
                Request::Compact(target, reply) => {
                    ops.push(BatchOp::Compact(target));
                    replies.push(Reply::Compact(target, reply));
                }
                // `run` never puts a Close in a batch.
                Request::Close(_) => {}
            }
        }
        let writes = ops
            .iter()
            .filter(|op| matches!(op, BatchOp::Write(_)))
            .count();
        self.shared
            .writes
            .fetch_add(writes as u64, Ordering::AcqRel);

        let mut rev = self.rev;
        let mut compacted = self.compacted;
        let mut events = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        let outcome = (|| -> rusqlite::Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for op in ops {
                let result = match op {
                    BatchOp::Write(op) => apply_op(&tx, &mut rev, op)?.map(|(outcome, event)| {
                        events.push(Arc::new(event));
                        Some(outcome)
                    }),
                    BatchOp::Compact(target) if target > rev => Err(StoreError::FutureRevision {
                        requested: target,
                        current: rev,
                    }),
                    BatchOp::Compact(target) => {
                        if target > compacted {
                            tx.prepare_cached(
                                "UPDATE meta SET value = ?1 WHERE name = 'compacted'",
                            )?
                            .execute([target])?;
                            compacted = target;
                        }
                        Ok(None)
                    }
                };
                results.push(result);
            }
            tx.commit()
        })();
        if let Err(err) = outcome {
            tracing::error!(error = %err, "store write transaction failed");
            let err = StoreError::from(err);
            for reply in replies {
                match reply {
                    Reply::Write(tx) => {
                        let _ = tx.send(Err(err.clone()));
                    }
                    Reply::Compact(_, tx) => {
                        let _ = tx.send(Err(err.clone()));
                    }
                }
            }
            return;
        }
        self.rev = rev;
        self.compacted = compacted;
        self.shared.current.store(rev, Ordering::Release);
        self.shared.compacted.store(compacted, Ordering::Release);
        self.shared.commits.fetch_add(1, Ordering::AcqRel);
        for event in events {
            // An error only means that nobody is watching.
            let _ = self.events.send(event);
        }
        for (reply, result) in replies.into_iter().zip(results) {
            match (reply, result) {
                (Reply::Write(tx), Ok(Some(outcome))) => {
                    let _ = tx.send(Ok(outcome));
                }
                (Reply::Write(tx), Ok(None)) => {
                    let _ = tx.send(Err(StoreError::Backend(
                        "write produced no outcome".to_owned(),
                    )));
                }
                (Reply::Write(tx), Err(err)) => {
                    let _ = tx.send(Err(err));
                }
                // Answer once the rows below the target are physically gone.
                (Reply::Compact(target, tx), Ok(_)) if self.progress < target => {
                    // A new request retries a physical compaction that failed.
                    self.compaction_failed = false;
                    self.compact_waiters.push((target, tx));
                }
                (Reply::Compact(_, tx), result) => {
                    let _ = tx.send(result.map(|_| ()));
                }
            }
        }
        self.after_commit();
    }

    /// Lets the WAL be checkpointed, and restarted when it has grown large. The checkpointer
    /// thread copies the WAL into the database concurrently, but under a steady stream of commits
    /// it never catches up with the end of the WAL, which then grows without bound. So once the
    /// WAL is large, the writer finishes the checkpoint itself between two transactions (cheap:
    /// only the frames since the last background checkpoint are left), and its next transaction
    /// starts the WAL over.
    fn after_commit(&mut self) {
        let Some(checkpointer) = &self.checkpointer else {
            return;
        };
        checkpointer.poke();
        if checkpointer.wal_frames.load(Ordering::Acquire) >= self.shared.opts.wal_restart_frames {
            match checkpoint(&self.conn) {
                Ok((true, _)) => checkpointer.wal_frames.store(0, Ordering::Release),
                Ok((false, _)) => {}
                Err(err) => tracing::debug!(error = %err, "writer WAL checkpoint failed"),
            }
        }
    }

    /// One step of physical compaction (or, once done, of freeing pages), in its own transaction.
    fn compact_step(&mut self) {
        let chunk = self.shared.opts.compact_chunk.max(1);
        if self.progress < self.compacted {
            match compact_rows(&mut self.conn, self.progress, self.compacted, chunk) {
                Ok(progress) => {
                    self.progress = progress;
                    self.shared.compaction_steps.fetch_add(1, Ordering::AcqRel);
                    self.shared.commits.fetch_add(1, Ordering::AcqRel);
                    if progress >= self.compacted {
                        self.vacuum_pending = true;
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "store compaction step failed");
                    let err = StoreError::from(err);
                    for (_, reply) in self.compact_waiters.drain(..) {
                        let _ = reply.send(Err(err.clone()));
                    }
                    self.compaction_failed = true;
                    return;
                }
            }
        } else if self.vacuum_pending {
            let pages = i64::try_from(chunk).unwrap_or(i64::MAX);
            let result = incremental_vacuum(&self.conn, pages);
            match result {
                Ok(free) => self.vacuum_pending = free > 0,
                Err(err) => {
                    tracing::warn!(error = %err, "incremental vacuum failed");
                    self.vacuum_pending = false;
                }
            }
        }
        let progress = self.progress;
        let (done, waiting): (Vec<_>, Vec<_>) = self
            .compact_waiters
            .drain(..)
            .partition(|(target, _)| *target <= progress);
        self.compact_waiters = waiting;
        for (_, reply) in done {
            let _ = reply.send(Ok(()));
        }
        self.after_commit();
    }
}

/// Applies one write. The outer error is a database failure (it fails the whole batch); the inner
/// one is the request's own failure (its condition did not hold).
fn apply_op(
    tx: &Connection,
    rev: &mut Revision,
    op: WriteOp,
) -> rusqlite::Result<Result<(WriteOutcome, Event)>> {
    let key = op.key();
    let current = tx
        .prepare_cached(SELECT_LATEST)?
        .query_row([key], |row| live_row(key, row))
        .optional()?
        .flatten();
    let next = *rev + 1;
    let insert_log = |key: &str, create: Revision, prev: Revision, deleted: bool, value: &[u8]| {
        tx.prepare_cached(
            "INSERT INTO log (rev, key, create_rev, prev_rev, deleted, value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![next, key, create, prev, deleted, value])
    };
    match op {
        WriteOp::Create { key, value } => {
            if current.is_some() {
                return Ok(Err(StoreError::AlreadyExists(key)));
            }
            insert_log(&key, next, 0, false, &value)?;
            *rev = next;
            let kv = KeyValue {
                key,
                value,
                create_revision: next,
                mod_revision: next,
            };
            Ok(Ok((WriteOutcome::Put(next), Event::Put { kv, prev: None })))
        }
        WriteOp::Update {
            key,
            value,
            expected,
        } => {
            let Some(prev) = current else {
                return Ok(Err(StoreError::NotFound(key)));
            };
            if prev.mod_revision != expected {
                return Ok(Err(StoreError::Conflict {
                    key,
                    expected,
                    actual: prev.mod_revision,
                }));
            }
            insert_log(&key, prev.create_revision, prev.mod_revision, false, &value)?;
            *rev = next;
            let kv = KeyValue {
                key,
                value,
                create_revision: prev.create_revision,
                mod_revision: next,
            };
            Ok(Ok((
                WriteOutcome::Put(next),
                Event::Put {
                    kv,
                    prev: Some(prev),
                },
            )))
        }
        WriteOp::Delete { key, expected } => {
            let Some(prev) = current else {
                return Ok(Err(StoreError::NotFound(key)));
            };
            if let Some(expected) = expected
                && prev.mod_revision != expected
            {
                return Ok(Err(StoreError::Conflict {
                    key,
                    expected,
                    actual: prev.mod_revision,
                }));
            }
            insert_log(
                &key,
                prev.create_revision,
                prev.mod_revision,
                true,
                &prev.value,
            )?;
            *rev = next;
            Ok(Ok((
                WriteOutcome::Deleted(next, prev.clone()),
                Event::Delete {
                    prev,
                    revision: next,
                },
            )))
        }
    }
}

/// Examines up to `chunk` history rows in `[from, target)`: the previous row of each is superseded
/// (by a row older than `target`) and deleted, and so is each tombstone. Returns the new progress.
fn compact_rows(
    conn: &mut Connection,
    from: Revision,
    target: Revision,
    chunk: usize,
) -> rusqlite::Result<Revision> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rows: Vec<(Revision, Revision, bool)> = tx
        .prepare_cached(
            "SELECT rev, prev_rev, deleted FROM log WHERE rev >= ?1 AND rev < ?2
             ORDER BY rev LIMIT ?3",
        )?
        .query_map(
            params![from, target, i64::try_from(chunk).unwrap_or(i64::MAX)],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    {
        let mut delete = tx.prepare_cached("DELETE FROM log WHERE rev = ?1")?;
        for &(rev, prev_rev, deleted) in &rows {
            if prev_rev > 0 {
                delete.execute([prev_rev])?;
            }
            if deleted {
                delete.execute([rev])?;
            }
        }
    }
    let progress = match rows.last() {
        Some(&(last, _, _)) if rows.len() >= chunk => last + 1,
        _ => target,
    };
    tx.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'compact_progress'")?
        .execute([progress])?;
    tx.commit()?;
    Ok(progress)
}

/// Frees up to `pages` free pages (every step of the pragma frees one); returns how many free pages
/// remain.
fn incremental_vacuum(conn: &Connection, pages: i64) -> rusqlite::Result<i64> {
    // PRAGMA arguments cannot be bound parameters; `pages` is a number.
    let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    drop(rows);
    conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))
}

/// Runs a passive checkpoint; returns whether it backfilled the whole WAL, and the WAL's frames.
fn checkpoint(conn: &Connection) -> rusqlite::Result<(bool, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        let busy: i64 = row.get(0)?;
        let log: i64 = row.get(1)?;
        let done: i64 = row.get(2)?;
        Ok((busy == 0 && log == done, log))
    })
}

/// A thread running passive WAL checkpoints on its own connection, at most once per interval,
/// when the writer pokes it after commits.
struct Checkpointer {
    poke: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
    /// WAL frames found by the last background checkpoint.
    wal_frames: Arc<AtomicI64>,
}

impl Checkpointer {
    fn start(path: &Path, interval: Duration) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let (poke, pokes) = std::sync::mpsc::sync_channel::<()>(1);
        let wal_frames = Arc::new(AtomicI64::new(0));
        let frames = wal_frames.clone();
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".to_owned())
            .spawn(move || {
                while pokes.recv().is_ok() {
                    match checkpoint(&conn) {
                        Ok((_, log)) => frames.store(log, Ordering::Release),
                        Err(err) => tracing::debug!(error = %err, "WAL checkpoint failed"),
                    }
                    std::thread::sleep(interval);
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self {
            poke,
            thread,
            wal_frames,
        })
    }

    fn poke(&self) {
        // Full means a checkpoint is already due.
        let _ = self.poke.try_send(());
    }

    fn stop(self) {
        drop(self.poke);
        if self.thread.join().is_err() {
            tracing::error!("WAL checkpoint thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_vacuum_frees_pages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open_writer(&dir.path().join("db")).expect("open");
        conn.execute_batch(
            "CREATE TABLE junk (v BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
             INSERT INTO junk SELECT zeroblob(8000) FROM n; \
             DELETE FROM junk;",
        )
        .expect("fill and empty a table");
        let free: i64 = conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .expect("freelist");
        assert!(free > 100, "freed pages: {free}");
        let left = incremental_vacuum(&conn, 50).expect("vacuum step");
        assert_eq!(left, free - 50);
        assert_eq!(incremental_vacuum(&conn, i64::MAX).expect("vacuum"), 0);
    }

    #[test]
    fn writer_connection_is_durable_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open_writer(&dir.path().join("db")).expect("open");
        let pragma = |name: &str| -> String {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| {
                r.get::<_, rusqlite::types::Value>(0)
            })
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .expect("pragma")
        };
        assert_eq!(pragma("journal_mode"), "wal");
        assert_eq!(
            pragma("synchronous"),
            "2",
            "FULL: the WAL is synced at every commit"
        );
        assert_eq!(pragma("auto_vacuum"), "2", "INCREMENTAL");
        assert_eq!(pragma("wal_autocheckpoint"), "0");
    }

    /// Creates a database of an older schema: `log` and `meta` as now, and a table `current`
    /// with `current_columns`; then runs `rows` (SQL inserts).
    fn old_schema(path: &Path, current_columns: &str, rows: &str) {
        let conn = Connection::open(path).expect("open");
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE log (rev INTEGER PRIMARY KEY, key TEXT NOT NULL,
                 create_rev INTEGER NOT NULL, prev_rev INTEGER NOT NULL,
                 deleted INTEGER NOT NULL, value BLOB NOT NULL);
             CREATE INDEX log_key_rev ON log (key, rev);
             CREATE TABLE current ({current_columns}) WITHOUT ROWID;
             CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO meta VALUES ('compacted', 0), ('compact_progress', 0);
             {rows}"
        ))
        .expect("old schema");
    }

    /// A database of the schema where `current` held a copy of each value opens with every key
    /// readable, keeps working, and no longer has the table.
    #[tokio::test]
    async fn a_database_with_values_in_current_is_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        old_schema(
            &path,
            "key TEXT PRIMARY KEY, rev INTEGER NOT NULL, create_rev INTEGER NOT NULL,
             value BLOB NOT NULL",
            "INSERT INTO log VALUES (1, '/a', 1, 0, 0, x'31'), (2, '/a', 1, 1, 0, x'32'),
                 (3, '/gone', 3, 0, 0, x'33'), (4, '/gone', 3, 3, 1, x'33');
             INSERT INTO current VALUES ('/a', 2, 1, x'32'), ('/lost', 5, 5, x'35');",
        );
        let store = SqliteStore::open(&path, SqliteOptions::default())
            .await
            .expect("open migrates");
        let (a, _) = store.get("/a", None).await.expect("get /a");
        let a = a.expect("/a is live");
        assert_eq!(
            (&a.value[..], a.mod_revision, a.create_revision),
            (&b"2"[..], 2, 1)
        );
        // A key whose latest row had gone from the log is put back from its copy.
        let (lost, _) = store.get("/lost", None).await.expect("get /lost");
        assert_eq!(lost.expect("/lost is live").value, Bytes::from_static(b"5"));
        assert!(store.get("/gone", None).await.expect("get").0.is_none());
        let listed = store.range("/", None, 0, None).await.expect("range");
        let keys: Vec<_> = listed.kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/a", "/lost"]);
        assert_eq!(store.current_revision().await.expect("rev"), 5);
        let rev = store
            .update("/a", Bytes::from_static(b"6"), 2)
            .await
            .expect("update after the migration");
        assert_eq!(rev, 6);
        assert_eq!(
            store
                .get("/a", Some(2))
                .await
                .expect("history")
                .0
                .map(|kv| kv.value),
            Some(Bytes::from_static(b"2"))
        );
        store.close().await;
        assert!(!has_table(&path, "current"), "the table is dropped");
    }

    fn has_table(path: &Path, name: &str) -> bool {
        let conn = Connection::open(path).expect("reopen");
        conn.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .expect("schema")
    }

    /// A database of the schema with a table `current` of live keys (without values) opens with
    /// the same live keys, and the table is dropped.
    #[tokio::test]
    async fn a_database_with_a_table_of_live_keys_is_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        old_schema(
            &path,
            "key TEXT PRIMARY KEY, rev INTEGER NOT NULL, create_rev INTEGER NOT NULL",
            "INSERT INTO log VALUES (1, '/a', 1, 0, 0, x'31'), (2, '/a', 1, 1, 0, x'32'),
                 (3, '/gone', 3, 0, 0, x'33'), (4, '/gone', 3, 3, 1, x'33'),
                 (5, '/b', 5, 0, 0, x'35');
             INSERT INTO current VALUES ('/a', 2, 1), ('/b', 5, 5);",
        );
        let store = SqliteStore::open(&path, SqliteOptions::default())
            .await
            .expect("open migrates");
        let listed = store.range("/", None, 0, None).await.expect("range");
        let live: Vec<_> = listed
            .kvs
            .iter()
            .map(|kv| {
                (
                    kv.key.as_str(),
                    kv.mod_revision,
                    kv.create_revision,
                    &kv.value[..],
                )
            })
            .collect();
        assert_eq!(live, [("/a", 2, 1, &b"2"[..]), ("/b", 5, 5, &b"5"[..])]);
        assert!(store.get("/gone", None).await.expect("get").0.is_none());
        assert_eq!(
            store
                .create("/gone", Bytes::from_static(b"6"))
                .await
                .expect("re-create"),
            6
        );
        store.close().await;
        assert!(!has_table(&path, "current"), "the table is dropped");
    }

    #[test]
    fn prefix_end_increments_last_char() {
        assert_eq!(prefix_end("/a/").as_deref(), Some("/a0"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
    }

    #[test]
    fn key_bounds_pick_the_tighter_lower_bound() {
        let b = KeyBounds::new("/p/", Some("/p/b"));
        assert_eq!(b.sql("key", 1), "key > ?1 AND key < ?2");
        assert_eq!(b.params(), vec!["/p/b".to_owned(), "/p0".to_owned()]);
        let b = KeyBounds::new("/p/", Some("/a"));
        assert_eq!(b.sql("key", 3), "key >= ?3 AND key < ?4");
        assert_eq!(b.params()[0], "/p/");
        let b = KeyBounds::new("", None);
        assert_eq!(b.sql("key", 1), "key >= ?1");
    }
}
