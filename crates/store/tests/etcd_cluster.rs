//! The etcd store on a 3-member etcd cluster (`/usr/bin/etcd`) while a member is down: reads,
//! writes and an open watch go on without losing or repeating an event, when the stopped member
//! is a follower, the leader, or a member that hangs (SIGSTOP) without closing its connections.

mod etcd_support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_support::EtcdCluster;
use futures::StreamExt;
use store::etcd::EtcdStore;
use store::{Event, Revision, Store, WatchStream};

/// What a write did, as the watch must report it: (revision, key, value or `None` for a delete).
type Change = (Revision, String, Option<String>);

fn change_of(event: &Event) -> Change {
    match event {
        Event::Put { kv, .. } => (
            kv.mod_revision,
            kv.key.clone(),
            Some(String::from_utf8_lossy(&kv.value).into_owned()),
        ),
        Event::Delete { prev, revision } => (*revision, prev.key.clone(), None),
    }
}

/// Creates, updates, reads back and deletes a few keys named after `tag`, each write within
/// `limit`; returns the changes in order.
async fn writes(store: &EtcdStore, tag: &str, limit: Duration) -> Vec<Change> {
    let mut changes = Vec::new();
    for k in 0..4 {
        let key = format!("/t/{tag}-{k}");
        let (v1, v2) = (format!("{tag}-{k}-1"), format!("{tag}-{k}-2"));
        let started = Instant::now();
        let r1 = store
            .create(&key, Bytes::from(v1.clone()))
            .await
            .unwrap_or_else(|e| panic!("create {key}: {e}"));
        assert!(
            started.elapsed() < limit,
            "create {key} took {:?}",
            started.elapsed()
        );
        changes.push((r1, key.clone(), Some(v1.clone())));
        let (got, _) = store.get(&key, None).await.expect("get");
        assert_eq!(got.map(|kv| kv.value), Some(Bytes::from(v1.clone())));
        let r2 = store
            .update(&key, Bytes::from(v2.clone()), r1)
            .await
            .unwrap_or_else(|e| panic!("update {key}: {e}"));
        assert!(r2 > r1);
        changes.push((r2, key.clone(), Some(v2.clone())));
        // A read at the older revision still sees the first value.
        let (old, _) = store.get(&key, Some(r1)).await.expect("get at r1");
        assert_eq!(old.map(|kv| kv.value), Some(Bytes::from(v1)));
        if k % 2 == 0 {
            let (r3, prev) = store
                .delete(&key, Some(r2))
                .await
                .unwrap_or_else(|e| panic!("delete {key}: {e}"));
            assert_eq!(prev.value, Bytes::from(v2));
            changes.push((r3, key, None));
        }
    }
    let listed = store.range(&format!("/t/{tag}-"), None, 0, None).await;
    let keys: Vec<String> = listed
        .expect("range")
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, [format!("/t/{tag}-1"), format!("/t/{tag}-3")]);
    changes
}

/// Reads `want.len()` events from `watch` (within `within`), checks they are exactly `want`,
/// and that no other event follows.
async fn expect_events(watch: &mut WatchStream, want: &[Change], within: Duration) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while got.len() < want.len() {
        match tokio::time::timeout_at(deadline, watch.next()).await {
            Ok(Some(Ok(event))) => got.push(change_of(&event)),
            Ok(Some(Err(e))) => panic!("the watch ended with {e} after {got:#?}"),
            Ok(None) => panic!("the watch ended after {got:#?}"),
            Err(_) => panic!(
                "{} of {} events within {within:?}:\n got {got:#?}\nwant {want:#?}",
                got.len(),
                want.len()
            ),
        }
    }
    assert_eq!(got, want, "the watch's events");
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(300), watch.next()).await {
        panic!("an event too many: {extra:?}");
    }
}

/// Stops member `victim` (the leader or a follower) of a 3-member cluster while a store using it
/// first reads, writes and watches; then starts it again.
async fn member_down_and_back(stop_leader: bool) {
    let cluster = EtcdCluster::start(3).await;
    let leader = cluster.wait_leader().await;
    let victim = if stop_leader {
        leader
    } else {
        (leader + 1) % cluster.len()
    };
    // The store sends everything to the victim until it is gone.
    let store = cluster.store_from(victim).await;
    let from = store.current_revision().await.expect("revision");
    let mut watch = store.watch("/t/", from).await.expect("watch");
    let mut want = writes(&store, "before", Duration::from_secs(5)).await;
    expect_events(&mut watch, &want, Duration::from_secs(10)).await;

    cluster.stop(victim).await;
    let stopped = Instant::now();
    // Every request goes through, without waiting out a deadline.
    let down = writes(&store, "down", Duration::from_secs(5)).await;
    eprintln!(
        "writes with member {victim} down took {:?}",
        stopped.elapsed()
    );
    expect_events(&mut watch, &down, Duration::from_secs(20)).await;
    want.extend(down);
    if stop_leader {
        let new_leader = cluster.wait_leader().await;
        assert_ne!(new_leader, victim);
    }

    cluster.restart(victim).await;
    let back = writes(&store, "back", Duration::from_secs(5)).await;
    expect_events(&mut watch, &back, Duration::from_secs(20)).await;
    want.extend(back);

    // The restarted member caught up: a store on it alone replays the same history.
    let only = EtcdStore::connect(store::etcd::EtcdOptions {
        endpoints: vec![cluster.endpoint(victim)],
        ..store::etcd::EtcdOptions::default()
    })
    .await
    .expect("connect to the restarted member");
    let mut replay = only.watch("/t/", from).await.expect("watch");
    expect_events(&mut replay, &want, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_down_and_back() {
    member_down_and_back(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_down_and_back() {
    member_down_and_back(true).await;
}

/// A member that hangs (SIGSTOP: its connections stay open, nothing answers): the store's reads
/// move to another member after their share of the deadline, and its quiet watch is opened
/// again elsewhere, missing nothing written meanwhile through another store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_member() {
    let cluster = EtcdCluster::start(3).await;
    let leader = cluster.wait_leader().await;
    let victim = (leader + 1) % cluster.len();
    let other = (victim + 1) % cluster.len();
    let store = cluster.store_from(victim).await;
    let writer = cluster.store_from(other).await;
    let from = store.current_revision().await.expect("revision");
    let mut watch = store.watch("/t/", from).await.expect("watch");

    cluster.pause_member(victim);
    let hung = Instant::now();
    let mut want = Vec::new();
    for k in 0..3 {
        let key = format!("/t/hung-{k}");
        let rev = writer
            .create(&key, Bytes::from(key.clone()))
            .await
            .expect("create through another member");
        want.push((rev, key.clone(), Some(key)));
    }
    // The read waits half its deadline on the hung member, then goes to the next one.
    let (got, _) = store.get("/t/hung-2", None).await.expect("get");
    assert_eq!(got.map(|kv| kv.value), Some(Bytes::from("/t/hung-2")));
    eprintln!("read with member {victim} hung took {:?}", hung.elapsed());
    expect_events(&mut watch, &want, Duration::from_secs(20)).await;
    eprintln!("watch resumed {:?} after the hang", hung.elapsed());
    // Writes go to the member that answered last.
    let rev = store
        .create("/t/after", Bytes::from("after"))
        .await
        .expect("create after the hang");
    expect_events(
        &mut watch,
        &[(rev, "/t/after".to_owned(), Some("after".to_owned()))],
        Duration::from_secs(10),
    )
    .await;
    cluster.resume_member(victim);
}
