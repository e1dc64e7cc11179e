//! Behaviour of [`EtcdStore`] beyond the shared conformance suite, on a real etcd
//! (`/usr/bin/etcd`): concurrent compare-and-swap, TLS with client certificates, compactions made
//! by other clients, key prefixes and shutdown.

mod etcd_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_support::{Etcd, client_tls};
use futures::StreamExt;
use store::etcd::{EtcdOptions, EtcdStore, EtcdTls};
use store::{Event, Store, StoreError};
use testsupport::etcd::make_tls;

fn val(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Several tasks increment one counter with read-modify-write guarded by the mod revision: every
/// increment lands exactly once (no lost update) and each success has its own revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_compare_and_swap_loses_no_update() {
    const TASKS: usize = 8;
    const PER_TASK: usize = 25;
    let etcd = Etcd::start().await;
    let store = Arc::new(etcd.store(1024).await);
    store
        .create("/counter", val("0"))
        .await
        .expect("create counter");

    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let (mut revs, mut conflicts) = (Vec::new(), 0usize);
            for _ in 0..PER_TASK {
                loop {
                    let (kv, _) = store.get("/counter", None).await.expect("get");
                    let kv = kv.expect("counter exists");
                    let n: u64 = std::str::from_utf8(&kv.value)
                        .expect("utf-8")
                        .parse()
                        .expect("number");
                    match store
                        .update("/counter", val(&(n + 1).to_string()), kv.mod_revision)
                        .await
                    {
                        Ok(rev) => {
                            revs.push(rev);
                            break;
                        }
                        Err(StoreError::Conflict {
                            expected, actual, ..
                        }) => {
                            assert_eq!(expected, kv.mod_revision);
                            assert!(actual > expected, "a conflict means someone wrote since");
                            conflicts += 1;
                        }
                        Err(err) => panic!("update failed: {err:?}"),
                    }
                }
            }
            (revs, conflicts)
        }));
    }
    let (mut revs, mut conflicts) = (Vec::new(), 0);
    for task in tasks {
        let (r, c) = task.await.expect("task");
        revs.extend(r);
        conflicts += c;
    }
    let total = TASKS * PER_TASK;
    assert_eq!(revs.len(), total);
    assert_eq!(
        revs.iter().collect::<HashSet<_>>().len(),
        total,
        "every successful update has its own revision"
    );
    let (kv, _) = store.get("/counter", None).await.expect("get");
    let kv = kv.expect("counter");
    assert_eq!(kv.value, val(&total.to_string()), "no increment was lost");
    assert_eq!(Some(&kv.mod_revision), revs.iter().max());
    // Only successful writes take revisions: create + one per increment.
    assert_eq!(
        store.current_revision().await.expect("current"),
        kv.create_revision + total as i64
    );
    eprintln!("{conflicts} conflicts retried");
}

/// A store reaches an etcd that serves TLS and requires client certificates; without a client
/// certificate the connection is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = make_tls(dir.path());
    let etcd = Etcd::start_tls(&tls).await;
    assert!(etcd.endpoint.starts_with("https://"));
    // As `r8s server --datastore-endpoint https://... --datastore-cafile ... --datastore-certfile
    // ... --datastore-keyfile ...` configures it.
    let opts = EtcdOptions::from_datastore_flags(
        &etcd.endpoint,
        Some(tls.ca.clone()),
        Some(tls.client_cert.clone()),
        Some(tls.client_key.clone()),
    )
    .expect("valid flags");
    assert_eq!(opts.tls, Some(client_tls(&tls)));

    // etcd may still be starting: retry for a while.
    let mut store = None;
    for _ in 0..100 {
        match EtcdStore::connect(opts.clone()).await {
            Ok(s) => {
                store = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let Some(store) = store else {
        panic!(
            "could not connect over TLS: {:?}\n{}",
            EtcdStore::connect(opts).await.err(),
            etcd.log()
        );
    };
    let rev = store.create("/tls/a", val("x")).await.expect("create");
    let (kv, _) = store.get("/tls/a", None).await.expect("get");
    assert_eq!(kv.map(|kv| kv.mod_revision), Some(rev));

    let no_client_cert = EtcdOptions {
        tls: Some(EtcdTls {
            cert_file: None,
            key_file: None,
            ..client_tls(&tls)
        }),
        connect_timeout: Duration::from_secs(2),
        ..etcd.options()
    };
    let err = EtcdStore::connect(no_client_cert)
        .await
        .expect_err("etcd requires a client certificate");
    assert!(matches!(err, StoreError::Backend(_)), "got {err:?}");

    let half = EtcdOptions {
        tls: Some(EtcdTls {
            key_file: None,
            ..client_tls(&tls)
        }),
        ..etcd.options()
    };
    let err = EtcdStore::connect(half)
        .await
        .expect_err("a certificate without its key");
    assert!(
        err.to_string().contains("key file"),
        "unexpected error {err}"
    );
}

/// Nothing listening: `connect` fails instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_nothing_fails() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let opts = EtcdOptions {
        endpoints: vec![format!("http://127.0.0.1:{port}")],
        connect_timeout: Duration::from_secs(1),
        ..EtcdOptions::default()
    };
    let result = tokio::time::timeout(Duration::from_secs(10), EtcdStore::connect(opts)).await;
    match result {
        Ok(Err(StoreError::Backend(_))) => {}
        other => panic!("expected a backend error, got {other:?}"),
    }
}

/// Compactions made through another store, or directly in etcd, are seen: a new store loads the
/// compacted revision when it connects, and reads below it fail with the right numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactions_by_other_clients() {
    let etcd = Etcd::start().await;
    let a = etcd.store(64).await;
    let mut rev = a.create("/k", val("0")).await.expect("create");
    for i in 1..10 {
        rev = a
            .update("/k", val(&i.to_string()), rev)
            .await
            .expect("update");
    }
    let target = rev - 3;
    a.compact(target).await.expect("compact");

    let b = etcd.store(64).await;
    assert_eq!(b.compacted_revision().await.expect("compacted"), target);
    assert_eq!(
        b.get("/k", Some(target - 1)).await.expect_err("compacted"),
        StoreError::Compacted {
            requested: target - 1,
            compacted: target
        }
    );
    let (kv, served) = b.get("/k", Some(target)).await.expect("read at target");
    assert_eq!(served, target);
    assert_eq!(kv.map(|kv| kv.mod_revision), Some(target));

    // A compaction straight in etcd (at c: reads below c fail, the previous values of the events
    // at c are gone) is the store's compaction at c + 1, learnt from etcd's error.
    let mut raw = etcd_client::Client::connect([etcd.endpoint.as_str()], None)
        .await
        .expect("raw client");
    raw.compact(rev - 1, None).await.expect("raw compaction");
    let err = a
        .get("/k", Some(rev - 2))
        .await
        .expect_err("compacted by etcd");
    assert_eq!(
        err,
        StoreError::Compacted {
            requested: rev - 2,
            compacted: rev
        }
    );
    assert_eq!(a.compacted_revision().await.expect("compacted"), rev);
    let err = b.watch("", rev - 3).await.err();
    assert_eq!(
        err,
        Some(StoreError::Compacted {
            requested: rev - 2,
            compacted: rev
        }),
        "a watch from an etcd-compacted revision"
    );
    let c = etcd.store(64).await;
    assert_eq!(c.compacted_revision().await.expect("compacted"), rev);
}

/// A compaction that overtakes a watcher still replaying history ends its stream with
/// `Compacted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_overtaking_a_watcher() {
    let etcd = Etcd::start().await;
    let store = etcd.store(100_000).await;
    let mut raw = etcd_client::Client::connect([etcd.endpoint.as_str()], None)
        .await
        .expect("raw client");
    let first = store.create("/w/0", val("x")).await.expect("create");
    let mut rev = first;
    // Enough history that etcd has not sent all of it before the compaction.
    for i in 1..3000 {
        rev = store
            .create(&format!("/w/{i}"), val("x"))
            .await
            .expect("create");
    }
    let mut watch = store.watch("/w/", first - 1).await.expect("watch");
    raw.compact(rev, None).await.expect("compaction");
    let mut delivered = 0;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
            Ok(Some(Ok(_))) => delivered += 1,
            Ok(Some(Err(err))) => break Some(err),
            Ok(None) => panic!("watch ended without an error"),
            Err(_) => break None,
        }
    };
    eprintln!("delivered {delivered} events, then {end:?}");
    match end {
        // etcd may have replayed everything before the compaction reached the watcher.
        None => assert_eq!(delivered, 3000, "a watch that was not cut sees everything"),
        Some(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!(compacted, rev + 1);
            assert_eq!(requested, first + delivered);
        }
        Some(err) => panic!("unexpected end {err:?}"),
    }
}

/// Stores with different prefixes share one etcd (and its revisions) without seeing each other's
/// keys, in reads and in watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_separate_stores() {
    let etcd = Etcd::start().await;
    let connect = |prefix: &str| {
        EtcdStore::connect(EtcdOptions {
            prefix: prefix.to_owned(),
            ..etcd.options()
        })
    };
    let one = connect("/one").await.expect("connect one");
    let two = connect("/two").await.expect("connect two");
    let mut watch_one = one.watch("", 0).await.expect("watch one");
    let r1 = one
        .create("/registry/a", val("1"))
        .await
        .expect("create one");
    let r2 = two
        .create("/registry/a", val("2"))
        .await
        .expect("create two");
    assert!(r2 > r1, "revisions are shared");
    two.create("/registry/b", val("2"))
        .await
        .expect("create two b");

    let all = one.range("", None, 0, None).await.expect("range one");
    assert_eq!(all.kvs.len(), 1);
    assert_eq!(all.kvs[0].key, "/registry/a");
    assert_eq!(all.kvs[0].value, val("1"));
    assert_eq!(all.revision, r2 + 1);
    assert_eq!(
        two.range("/", None, 0, None)
            .await
            .expect("range")
            .kvs
            .len(),
        2
    );
    let e = watch_one.next().await.expect("event").expect("no error");
    assert!(matches!(&e, Event::Put { kv, prev: None } if kv.key == "/registry/a"));
    let r3 = one.delete("/registry/a", None).await.expect("delete").0;
    let e = watch_one.next().await.expect("event").expect("no error");
    assert_eq!(e.revision(), r3, "the other prefix's writes are not seen");

    let mut raw = etcd_client::Client::connect([etcd.endpoint.as_str()], None)
        .await
        .expect("raw client");
    let keys = raw
        .get("", Some(etcd_client::GetOptions::new().with_all_keys()))
        .await
        .expect("raw range");
    let keys: Vec<_> = keys.kvs().iter().map(|kv| kv.key().to_vec()).collect();
    assert_eq!(
        keys,
        [b"/two/registry/a".to_vec(), b"/two/registry/b".to_vec()]
    );
}

/// `close` ends watches with `Closed` and fails later calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_watches() {
    let etcd = Etcd::start().await;
    let store = etcd.store(64).await;
    let mut watch = store.watch("/", 0).await.expect("watch");
    let rev = store.create("/a", val("1")).await.expect("create");
    let e = watch.next().await.expect("event").expect("no error");
    assert_eq!(e.revision(), rev);
    store.close();
    let end = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("the watch ends");
    assert!(matches!(end, Some(Err(StoreError::Closed))), "got {end:?}");
    assert!(watch.next().await.is_none());
    assert_eq!(store.create("/b", val("1")).await, Err(StoreError::Closed));
    assert_eq!(store.current_revision().await, Err(StoreError::Closed));
}

/// The first write of a fresh etcd is revision 2 (etcd's revision 1 is the empty cluster, which the
/// store reports as 0); a read at 1 reads the empty store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_numbering_is_etcds() {
    let etcd = Etcd::start().await;
    let store = etcd.store(64).await;
    assert_eq!(store.current_revision().await.expect("current"), 0);
    assert_eq!(
        store.get("/a", Some(1)).await.expect_err("future"),
        StoreError::FutureRevision {
            requested: 1,
            current: 0
        }
    );
    let rev = store.create("/a", val("1")).await.expect("create");
    assert_eq!(rev, 2, "etcd's first write");
    let (kv, served) = store.get("/a", Some(1)).await.expect("read at 1");
    assert_eq!((kv, served), (None, 1));
    let mut raw = etcd_client::Client::connect([etcd.endpoint.as_str()], None)
        .await
        .expect("raw client");
    let resp = raw.get("/a", None).await.expect("raw get");
    assert_eq!(resp.kvs()[0].mod_revision(), rev, "the revision is etcd's");
}

/// Values near etcd's 1.5 MiB request limit, and lists and watch replays of many of them (far
/// above gRPC's default 4 MiB message limit), round-trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_lists_and_replays() {
    const KEYS: usize = 12;
    let etcd = Etcd::start().await;
    let store = etcd.store(64).await;
    let value = |i: usize| Bytes::from(vec![b'a' + i as u8; 1_000_000]);
    for i in 0..KEYS {
        store
            .create(&format!("/big/{i:02}"), value(i))
            .await
            .expect("create a 1 MB value");
    }
    let all = store.range("/big/", None, 0, None).await.expect("range");
    assert_eq!(all.kvs.len(), KEYS);
    for (i, kv) in all.kvs.iter().enumerate() {
        assert_eq!(kv.value, value(i));
    }
    let mut watch = store.watch("/big/", 0).await.expect("watch");
    for i in 0..KEYS {
        let e = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("event in time")
            .expect("event")
            .expect("no error");
        assert_eq!(e.key(), format!("/big/{i:02}"));
    }
}
