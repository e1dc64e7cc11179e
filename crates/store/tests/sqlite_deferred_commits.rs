//! Deferred commits in the SQLite writer: deferrable writes (heartbeats) that arrive often but
//! one at a time share commits, yet every acknowledged write is durable, correctly revisioned,
//! and a failed compare-and-swap fails only itself; other writes are never held back.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use store::{Revision, SqliteOptions, SqliteStore, Store, StoreError};

/// A store where writes under `/w/` are deferrable for up to `window`.
async fn open(path: &Path, window: Duration) -> SqliteStore {
    let opts = SqliteOptions {
        deferrable_prefixes: vec!["/w/".to_owned()],
        deferred_commit_window: window,
        ..SqliteOptions::default()
    };
    SqliteStore::open(path, opts).await.expect("open store")
}

/// What one request of the open-loop schedule was and how it ended.
enum Sent {
    Create(String, Result<Revision, StoreError>),
    StaleUpdate(Result<Revision, StoreError>),
}

/// Issues `n` writes at a steady rate of one per millisecond, each from its own task without
/// waiting for the previous one (like heartbeats of many nodes): creates of distinct keys, and
/// every tenth an update of `/w/stale` with a revision that is out of date.
async fn open_loop(store: &Arc<SqliteStore>, n: usize, stale_expected: Revision) -> Vec<Sent> {
    let mut clock = tokio::time::interval(Duration::from_millis(1));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        clock.tick().await;
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if i % 10 == 9 {
                Sent::StaleUpdate(
                    store
                        .update("/w/stale", Bytes::from(format!("s{i}")), stale_expected)
                        .await,
                )
            } else {
                let key = format!("/w/k{i:04}");
                let result = store.create(&key, Bytes::from(format!("v{i}"))).await;
                Sent::Create(key, result)
            }
        }));
    }
    let mut sent = Vec::with_capacity(n);
    for task in tasks {
        sent.push(task.await.expect("write task"));
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_writes_share_commits_yet_each_is_durable_and_revisioned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = Arc::new(open(&path, Duration::from_millis(10)).await);
    let first = store
        .create("/w/stale", Bytes::from("s"))
        .await
        .expect("create the stale key");
    // Later updates expect `first`; one moves the key on, so every update after it is stale.
    let moved = store
        .update("/w/stale", Bytes::from("moved"), first)
        .await
        .expect("move the stale key on");
    let before = store.stats();

    let sent = open_loop(&store, 400, first).await;

    let after = store.stats();
    let writes = after.writes - before.writes;
    let commits = after.commits - before.commits;
    assert_eq!(writes, 400);
    assert!(
        commits * 3 <= writes,
        "{writes} deferrable writes spread over time took {commits} commits; deferral should \
         gather at least three writes per commit on average"
    );

    // Each acknowledged create has its own revision, the revisions are exactly the ones issued,
    // and each stale update failed alone with a conflict naming the actual revision.
    let mut acked: BTreeMap<Revision, (String, String)> = BTreeMap::new();
    let mut conflicts = 0;
    for (i, s) in sent.into_iter().enumerate() {
        match s {
            Sent::Create(key, result) => {
                let rev = result.unwrap_or_else(|e| panic!("create {key} failed: {e}"));
                let previous = acked.insert(rev, (key, format!("v{i}")));
                assert!(previous.is_none(), "revision {rev} acknowledged twice");
            }
            Sent::StaleUpdate(result) => match result {
                Err(StoreError::Conflict {
                    expected, actual, ..
                }) => {
                    assert_eq!((expected, actual), (first, moved));
                    conflicts += 1;
                }
                other => panic!("a stale update must conflict, got {other:?}"),
            },
        }
    }
    assert_eq!(conflicts, 40);
    assert_eq!(acked.len(), 360);
    let revs: Vec<Revision> = acked.keys().copied().collect();
    let expected: Vec<Revision> = (moved + 1..=moved + 360).collect();
    assert_eq!(
        revs, expected,
        "successful writes get consecutive revisions"
    );
    assert_eq!(
        store.current_revision().await.expect("revision"),
        moved + 360
    );

    // Durable: after closing and reopening, every acknowledged write is there at its revision.
    store.close().await;
    drop(store);
    let store = open(&path, Duration::from_millis(10)).await;
    for (rev, (key, value)) in &acked {
        let (kv, _) = store.get(key, None).await.expect("get");
        let kv = kv.unwrap_or_else(|| panic!("{key} lost after reopening"));
        assert_eq!(kv.mod_revision, *rev, "{key}");
        assert_eq!(kv.create_revision, *rev, "{key}");
        assert_eq!(kv.value, Bytes::from(value.clone()), "{key}");
    }
    let (stale, _) = store.get("/w/stale", None).await.expect("get");
    let stale = stale.expect("the stale key exists");
    assert_eq!(
        (stale.mod_revision, stale.value),
        (moved, Bytes::from("moved"))
    );
    store.close().await;
}

/// Runs 100 creates of keys under `prefix`, one after another (each waits for the previous
/// reply).
async fn serial_creates(store: &SqliteStore, prefix: &str) -> Duration {
    let start = Instant::now();
    for i in 0..100 {
        store
            .create(&format!("{prefix}{i:03}"), Bytes::from("x"))
            .await
            .expect("create");
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_deferrable_writes_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A long window makes a wait on every write obvious: 100 × 50 ms = 5 s.
    let store = open(&dir.path().join("store.db"), Duration::from_millis(50)).await;
    let other = serial_creates(&store, "/other/").await;
    assert!(
        other < Duration::from_millis(2500),
        "100 serial creates outside the deferrable prefixes took {other:?}: they must not wait"
    );
    let deferred = serial_creates(&store, "/w/").await;
    assert!(
        deferred >= Duration::from_millis(100 * 45),
        "100 serial deferrable creates took {deferred:?}: each should have waited ~50 ms"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_write_ends_the_wait_and_shares_the_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(&dir.path().join("store.db"), Duration::from_secs(30)).await);
    let before = store.stats();
    let start = Instant::now();
    let held = {
        let store = store.clone();
        tokio::spawn(async move { store.create("/w/heartbeat", Bytes::from("h")).await })
    };
    // Let the deferrable write reach the writer and start waiting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "the deferrable write is held");
    let other = store
        .create("/other/key", Bytes::from("o"))
        .await
        .expect("create");
    let heartbeat = held.await.expect("task").expect("deferrable create");
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "the held write was released only after {elapsed:?}, not by the other write"
    );
    assert_eq!((heartbeat, other), (heartbeat, heartbeat + 1));
    let after = store.stats();
    assert_eq!(after.writes - before.writes, 2);
    assert_eq!(
        after.commits - before.commits,
        1,
        "both writes share one commit"
    );
    store.close().await;
}
