//! Behaviour specific to the SQLite backend: durability, group commit, bounded file size,
//! shutdown.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use store::{SqliteOptions, SqliteStore, Store, StoreError};

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default())
        .await
        .expect("open store")
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The database file plus its WAL.
fn total_size(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    file_size(path) + file_size(Path::new(&wal))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_continues_with_all_data_and_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = open(&path).await;
    let a = store
        .create("/k/a", Bytes::from("a1"))
        .await
        .expect("create");
    let a2 = store
        .update("/k/a", Bytes::from("a2"), a)
        .await
        .expect("update");
    let b = store
        .create("/k/b", Bytes::from("b1"))
        .await
        .expect("create");
    let (del, _) = store.delete("/k/b", None).await.expect("delete");
    let c = store
        .create("/k/c", Bytes::from("c1"))
        .await
        .expect("create");
    store.compact(a2).await.expect("compact");
    store.close().await;
    drop(store);

    let store = open(&path).await;
    assert_eq!(store.current_revision().await.expect("rev"), c);
    assert_eq!(store.compacted_revision().await.expect("compacted"), a2);
    let latest = store.range("/k/", None, 0, None).await.expect("range");
    let kvs: Vec<_> = latest
        .kvs
        .iter()
        .map(|kv| {
            (
                kv.key.as_str(),
                kv.value.clone(),
                kv.create_revision,
                kv.mod_revision,
            )
        })
        .collect();
    assert_eq!(
        kvs,
        [
            ("/k/a", Bytes::from("a2"), a, a2),
            ("/k/c", Bytes::from("c1"), c, c)
        ]
    );
    let (old_b, _) = store.get("/k/b", Some(b)).await.expect("get at b");
    assert_eq!(old_b.map(|kv| kv.value), Some(Bytes::from("b1")));
    assert!(matches!(
        store.get("/k/a", Some(a)).await,
        Err(StoreError::Compacted { .. })
    ));
    // History survives the restart: a watch replays it from the file.
    let mut watch = store.watch("/k/", a2).await.expect("watch");
    let revs: Vec<_> = [watch.next().await, watch.next().await, watch.next().await]
        .into_iter()
        .map(|e| e.expect("event").expect("ok event").revision())
        .collect();
    assert_eq!(revs, [b, del, c]);
    let next = store
        .create("/k/d", Bytes::from("d"))
        .await
        .expect("create");
    assert_eq!(next, c + 1, "revisions continue after the last one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_stops_the_writer_and_keeps_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = open(&path).await;
    let rev = store
        .create("/k/a", Bytes::from("a"))
        .await
        .expect("create");
    let mut watch = store.watch("/k/", 0).await.expect("watch");
    drop(store);
    // The watcher gets what was committed, then learns that the store is gone.
    let first = watch.next().await.expect("event").expect("ok event");
    assert_eq!(first.revision(), rev);
    let end = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("the watch ends once the store is dropped");
    assert!(matches!(end, Some(Err(StoreError::Closed))), "got {end:?}");
    assert!(watch.next().await.is_none());

    let store = open(&path).await;
    let (kv, _) = store.get("/k/a", None).await.expect("get");
    assert_eq!(kv.map(|kv| kv.mod_revision), Some(rev));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_rejects_later_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir.path().join("store.db")).await;
    store
        .create("/k/a", Bytes::from("a"))
        .await
        .expect("create");
    store.close().await;
    store.close().await;
    assert_eq!(
        store.create("/k/b", Bytes::from("b")).await,
        Err(StoreError::Closed)
    );
    assert_eq!(store.get("/k/a", None).await, Err(StoreError::Closed));
    assert!(matches!(
        store.watch("/k/", 0).await,
        Err(StoreError::Closed)
    ));
    assert_eq!(store.compact(1).await, Err(StoreError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_batches_concurrent_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(&dir.path().join("store.db")).await);
    let before = store.stats();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create(&format!("/g/{i:03}"), Bytes::from("x"))
                    .await
                    .expect("create")
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let after = store.stats();
    let commits = after.commits - before.commits;
    assert_eq!(after.writes - before.writes, 200);
    assert!(
        commits <= 50,
        "200 concurrent creates took {commits} commits; group commit should batch them"
    );
    assert_eq!(store.current_revision().await.expect("rev"), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_size_stays_bounded_with_periodic_compaction() {
    const KEYS: usize = 20;
    const ROUNDS: usize = 10;
    const UPDATES_PER_KEY: usize = 25;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = Arc::new(open(&path).await);
    let value = Bytes::from(vec![b'v'; 8 * 1024]);
    for k in 0..KEYS {
        store
            .create(&format!("/f/{k}"), value.clone())
            .await
            .expect("create");
    }
    let mut sizes = Vec::new();
    for _ in 0..ROUNDS {
        // Every key rewritten UPDATES_PER_KEY times: 4 MB of history per round.
        let tasks: Vec<_> = (0..KEYS)
            .map(|k| {
                let store = store.clone();
                let value = value.clone();
                tokio::spawn(async move {
                    let key = format!("/f/{k}");
                    for _ in 0..UPDATES_PER_KEY {
                        let (kv, _) = store.get(&key, None).await.expect("get");
                        let rev = kv.expect("key exists").mod_revision;
                        store
                            .update(&key, value.clone(), rev)
                            .await
                            .expect("update");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        let rev = store.current_revision().await.expect("rev");
        store.compact(rev).await.expect("compact");
        sizes.push((file_size(&path), total_size(&path)));
    }
    let history = (KEYS * UPDATES_PER_KEY * ROUNDS * value.len()) as u64;
    // The WAL is reused from its start after checkpoints and truncated to 16 MiB at restart.
    let max_wal = sizes
        .iter()
        .map(|(db, total)| total - db)
        .max()
        .unwrap_or(0);
    assert!(
        max_wal <= 24 << 20,
        "the WAL grew to {max_wal} bytes: (db, db + wal) sizes {sizes:?}"
    );
    // Every key still has its latest value.
    let all = store.range("/f/", None, 0, None).await.expect("range");
    assert_eq!(all.kvs.len(), KEYS);
    // Once closed (and the WAL checkpointed into it), the database holds about one round of
    // history at most: the pages freed by compaction were reused.
    store.close().await;
    let db = file_size(&path);
    assert!(
        db < history / 4,
        "the database ({db} bytes) holds much of the {history} bytes of rewritten history"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_in_chunks_does_not_stall_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = SqliteOptions {
        compact_chunk: 500,
        ..SqliteOptions::default()
    };
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("store.db"), opts)
            .await
            .expect("open"),
    );
    // 20,000 history rows on 100 keys.
    let tasks: Vec<_> = (0..100)
        .map(|k| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("/c/{k}");
                let mut rev = store.create(&key, Bytes::from("0")).await.expect("create");
                for i in 1..200 {
                    rev = store
                        .update(&key, Bytes::from(i.to_string()), rev)
                        .await
                        .expect("update");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let target = store.current_revision().await.expect("rev");
    let compactor = {
        let store = store.clone();
        tokio::spawn(async move { store.compact(target).await })
    };
    let mut worst = Duration::ZERO;
    let mut rev = store.create("/w", Bytes::from("0")).await.expect("create");
    while !compactor.is_finished() {
        let started = std::time::Instant::now();
        rev = store
            .update("/w", Bytes::from("x"), rev)
            .await
            .expect("update");
        worst = worst.max(started.elapsed());
    }
    compactor.await.expect("task").expect("compact");
    assert!(store.stats().compaction_steps >= 20, "{:?}", store.stats());
    assert!(
        worst < Duration::from_millis(500),
        "a write waited {worst:?} during compaction"
    );
    for k in [0, 57, 99] {
        let (kv, _) = store.get(&format!("/c/{k}"), None).await.expect("get");
        assert_eq!(kv.map(|kv| kv.value), Some(Bytes::from("199")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactor_task_keeps_recent_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(&dir.path().join("store.db")).await);
    let mut rev = store.create("/k", Bytes::from("0")).await.expect("create");
    for i in 1..30 {
        rev = store
            .update("/k", Bytes::from(i.to_string()), rev)
            .await
            .expect("update");
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = store::spawn_compactor(store.clone(), Duration::from_millis(20), 10, cancel.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.compacted_revision().await.expect("compacted") != rev - 10 {
        assert!(tokio::time::Instant::now() < deadline, "no compaction");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    task.await.expect("compactor task");
    let (kv, _) = store.get("/k", Some(rev - 10)).await.expect("kept history");
    assert_eq!(kv.map(|kv| kv.mod_revision), Some(rev - 10));
}

/// Environment variable telling [`crash_child`] where its database is.
const CRASH_DB: &str = "STORE_CRASH_TEST_DB";

/// The child side of [`sigkill_loses_no_acknowledged_write`]: writes forever from 8 tasks,
/// printing every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by sigkill_loses_no_acknowledged_write"]
async fn crash_child() {
    let Ok(path) = std::env::var(CRASH_DB) else {
        return;
    };
    let store = Arc::new(open(Path::new(&path)).await);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/crash/{t}/{i}");
                    let rev = store
                        .create(&key, Bytes::from(key.clone()))
                        .await
                        .expect("create");
                    println!("acked {key} {rev}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["crash_child", "--exact", "--ignored", "--nocapture"])
        .env(CRASH_DB, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        if let Some(rest) = line.strip_prefix("acked ") {
            let (key, rev) = rest.split_once(' ').expect("key and revision");
            acked.push((key.to_owned(), rev.parse::<i64>().expect("revision")));
            if acked.len() == 500 {
                // Child::kill sends SIGKILL.
                child.kill().expect("kill child");
                break;
            }
        }
    }
    child.wait().expect("reap child");
    assert_eq!(acked.len(), 500, "the child stopped early");

    let store = open(&path).await;
    for (key, rev) in &acked {
        let (kv, _) = store.get(key, None).await.expect("get");
        assert_eq!(
            kv.map(|kv| kv.mod_revision),
            Some(*rev),
            "acknowledged write of {key} lost"
        );
    }
    let max = acked.iter().map(|(_, rev)| *rev).max().unwrap_or_default();
    assert!(store.current_revision().await.expect("rev") >= max);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_during_history_replay_fails_the_watch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = SqliteOptions {
        watch_page: 10,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir.path().join("store.db"), opts)
        .await
        .expect("open");
    let mut rev = store
        .create("/h/a", Bytes::from("0"))
        .await
        .expect("create");
    for i in 1..100 {
        rev = store
            .update("/h/a", Bytes::from(i.to_string()), rev)
            .await
            .expect("update");
    }
    let mut watch = store.watch("/h/", 0).await.expect("watch");
    let first = watch.next().await.expect("event").expect("ok event");
    assert_eq!(first.revision(), 1);
    store.compact(rev).await.expect("compact");
    // The rest of the first page was read before the compaction; the next page cannot be.
    let mut last = first.revision();
    let end = loop {
        match watch.next().await.expect("the watch ends with an error") {
            Ok(event) => {
                assert_eq!(event.revision(), last + 1, "no gap in the replay");
                last = event.revision();
            }
            Err(err) => break err,
        }
    };
    assert_eq!(
        last, 10,
        "only the page read before the compaction is delivered"
    );
    assert_eq!(
        end,
        StoreError::Compacted {
            requested: 11,
            compacted: rev
        }
    );
    assert!(watch.next().await.is_none());
}
