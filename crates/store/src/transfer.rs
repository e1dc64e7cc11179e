//! Moving a whole datastore: copying every key from one [`Store`] to another (migration between
//! SQLite and etcd), and writing / restoring a snapshot file.
//!
//! Everything is read at one revision (a consistent cut), in pages, and written into a target that
//! must be empty under the prefix. Values are copied byte for byte; the target assigns its own
//! revisions (so resourceVersions change, as they would after an etcd snapshot restore into a new
//! cluster, but every object, uid and label is kept).
//!
//! The snapshot format (`r8s-snapshot/v1`) is JSON lines: a header
//! `{"format":"r8s-snapshot/v1","revision":N,"keys":K}`, then one line per key in key order,
//! `{"key":"/registry/...","value":"<the value as a string>"}` when the value is UTF-8 (the API
//! server's JSON always is), or `{"key":...,"value_base64":"..."}` otherwise.

use base64::Engine as _;
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};

use crate::{Revision, Store, StoreError};

/// The prefix under which the API server keeps every object.
pub const REGISTRY_PREFIX: &str = "/registry/";

/// The `format` of the snapshot header.
pub const SNAPSHOT_FORMAT: &str = "r8s-snapshot/v1";

/// Keys read per range request.
const PAGE: usize = 500;

/// Creates in flight at once on the target (lets SQLite group commits and etcd pipeline).
const CONCURRENT_WRITES: usize = 32;

/// Errors of a copy, snapshot or restore.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The source or target store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing the snapshot file failed.
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The target already holds keys under the prefix.
    #[error("the target datastore is not empty: it already holds {key} (refusing to overwrite)")]
    TargetNotEmpty {
        /// The first key found in the target.
        key: String,
    },
    /// The snapshot file is not a valid `r8s-snapshot/v1` file.
    #[error("invalid snapshot (line {line}): {reason}")]
    InvalidSnapshot {
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Convenience result type of this module.
pub type Result<T, E = TransferError> = std::result::Result<T, E>;

/// What [`copy_all`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyReport {
    /// The number of keys copied.
    pub keys: usize,
    /// The source revision they were read at.
    pub revision: Revision,
}

/// What a snapshot file holds ([`write_snapshot`], [`read_snapshot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The number of keys.
    pub keys: usize,
    /// The source revision they were read at.
    pub revision: Revision,
}

/// Reads every key under `prefix` at one revision, page by page. Returns the keys in key order
/// and the revision.
async fn read_all(from: &dyn Store, prefix: &str) -> Result<(Vec<(String, Bytes)>, Revision)> {
    let mut out = Vec::new();
    let mut at: Option<Revision> = None;
    let mut after: Option<String> = None;
    loop {
        let page = from.range(prefix, after.as_deref(), PAGE, at).await?;
        at = Some(page.revision);
        let more = page.more;
        after = page.kvs.last().map(|kv| kv.key.clone());
        out.extend(page.kvs.into_iter().map(|kv| (kv.key, kv.value)));
        if !more || after.is_none() {
            return Ok((out, page.revision));
        }
    }
}

/// Fails with [`TransferError::TargetNotEmpty`] if `to` holds a key under `prefix`.
async fn ensure_empty(to: &dyn Store, prefix: &str) -> Result<()> {
    let existing = to.range(prefix, None, 1, None).await?;
    match existing.kvs.into_iter().next() {
        Some(kv) => Err(TransferError::TargetNotEmpty { key: kv.key }),
        None => Ok(()),
    }
}

/// Creates every key in `to` (several at once).
async fn create_all(to: &dyn Store, kvs: Vec<(String, Bytes)>) -> Result<()> {
    futures::stream::iter(kvs)
        .map(|(key, value)| async move { to.create(&key, value).await })
        .buffer_unordered(CONCURRENT_WRITES)
        .try_for_each(|_| async { Ok(()) })
        .await?;
    Ok(())
}

/// Copies every key under `prefix` (usually [`REGISTRY_PREFIX`]) of `from`, read at one revision,
/// into `to`, which must hold no key under `prefix` ([`TransferError::TargetNotEmpty`] otherwise,
/// and nothing is written).
pub async fn copy_all(from: &dyn Store, to: &dyn Store, prefix: &str) -> Result<CopyReport> {
    ensure_empty(to, prefix).await?;
    let (kvs, revision) = read_all(from, prefix).await?;
    let keys = kvs.len();
    create_all(to, kvs).await?;
    Ok(CopyReport { keys, revision })
}

/// The JSON line of one key.
fn key_line(key: &str, value: &[u8]) -> Value {
    match std::str::from_utf8(value) {
        Ok(text) => json!({ "key": key, "value": text }),
        Err(_) => json!({
            "key": key,
            "value_base64": base64::engine::general_purpose::STANDARD.encode(value),
        }),
    }
}

/// Writes a snapshot of every key under [`REGISTRY_PREFIX`] of `from`, read at one revision, to
/// `w` (see the module documentation for the format), and flushes it.
pub async fn write_snapshot(from: &dyn Store, w: impl AsyncWrite) -> Result<SnapshotInfo> {
    let (kvs, revision) = read_all(from, REGISTRY_PREFIX).await?;
    let mut w = std::pin::pin!(tokio::io::BufWriter::new(w));
    let header = json!({ "format": SNAPSHOT_FORMAT, "revision": revision, "keys": kvs.len() });
    let mut line = header.to_string();
    line.push('\n');
    w.write_all(line.as_bytes()).await?;
    for (key, value) in &kvs {
        let mut line = key_line(key, value).to_string();
        line.push('\n');
        w.write_all(line.as_bytes()).await?;
    }
    w.flush().await?;
    Ok(SnapshotInfo {
        keys: kvs.len(),
        revision,
    })
}

/// Parses one key line of a snapshot.
fn parse_key_line(text: &str, line: usize) -> Result<(String, Bytes)> {
    let invalid = |reason: String| TransferError::InvalidSnapshot { line, reason };
    let value: Value = serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let key = value
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("no \"key\" string".to_owned()))?;
    if !key.starts_with(REGISTRY_PREFIX) {
        return Err(invalid(format!(
            "key {key:?} is not under {REGISTRY_PREFIX}"
        )));
    }
    let bytes = match (value.get("value"), value.get("value_base64")) {
        (Some(Value::String(text)), None) => Bytes::from(text.clone().into_bytes()),
        (None, Some(Value::String(b64))) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(Bytes::from)
            .map_err(|e| invalid(format!("bad value_base64 of {key}: {e}")))?,
        _ => {
            return Err(invalid(format!(
                "{key} needs exactly one of a \"value\" or \"value_base64\" string"
            )));
        }
    };
    Ok((key.to_owned(), bytes))
}

/// Restores a snapshot written by [`write_snapshot`] from `r` into `to`, which must hold no key
/// under [`REGISTRY_PREFIX`] ([`TransferError::TargetNotEmpty`] otherwise). The whole file is read
/// and checked (format, key count, no duplicate keys) before anything is written, so a refused or
/// invalid snapshot writes nothing.
pub async fn read_snapshot(r: impl AsyncRead, to: &dyn Store) -> Result<SnapshotInfo> {
    ensure_empty(to, REGISTRY_PREFIX).await?;
    let reader = std::pin::pin!(BufReader::new(r));
    let mut lines = reader.lines();
    let header_text = lines
        .next_line()
        .await?
        .ok_or_else(|| TransferError::InvalidSnapshot {
            line: 1,
            reason: "empty file".to_owned(),
        })?;
    let invalid_header = |reason: String| TransferError::InvalidSnapshot { line: 1, reason };
    let header: Value = serde_json::from_str(&header_text)
        .map_err(|e| invalid_header(format!("header is not JSON: {e}")))?;
    match header.get("format").and_then(Value::as_str) {
        Some(SNAPSHOT_FORMAT) => {}
        other => {
            return Err(invalid_header(format!(
                "format is {other:?}, expected {SNAPSHOT_FORMAT:?}"
            )));
        }
    }
    let revision = header
        .get("revision")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid_header("no integer \"revision\"".to_owned()))?;
    let expected = header
        .get("keys")
        .and_then(Value::as_u64)
        .and_then(|k| usize::try_from(k).ok())
        .ok_or_else(|| invalid_header("no integer \"keys\"".to_owned()))?;

    let mut kvs = Vec::with_capacity(expected.min(1 << 20));
    let mut seen = std::collections::HashSet::new();
    let mut line = 1;
    while let Some(text) = lines.next_line().await? {
        line += 1;
        if text.trim().is_empty() {
            continue;
        }
        let (key, value) = parse_key_line(&text, line)?;
        if !seen.insert(key.clone()) {
            return Err(TransferError::InvalidSnapshot {
                line,
                reason: format!("duplicate key {key}"),
            });
        }
        kvs.push((key, value));
    }
    if kvs.len() != expected {
        return Err(TransferError::InvalidSnapshot {
            line,
            reason: format!(
                "the header announces {expected} keys but the file holds {} (truncated?)",
                kvs.len()
            ),
        });
    }
    create_all(to, kvs).await?;
    Ok(SnapshotInfo {
        keys: expected,
        revision,
    })
}
