//! The conformance suite every [`crate::Store`] backend must pass, written once.
//!
//! Each scenario is a public async function taking a fresh, empty store; it panics (with a message
//! saying what was expected) when the store misbehaves, so a backend runs it from
//! `#[tokio::test(flavor = "multi_thread")]` functions, one per scenario:
//!
//! ```no_run
//! # async fn new_store() -> store::SqliteStore { unimplemented!() }
//! #[tokio::test(flavor = "multi_thread")]
//! async fn create_and_get() {
//!     store::conformance::create_and_get(new_store().await).await;
//! }
//! ```
//!
//! [`run_all`] runs every scenario, each on a store from the factory.
//!
//! [`slow_watcher_is_cut`] needs a store whose watch buffer holds fewer than [`LAG_WRITES`]
//! events.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::{Event, KeyValue, Store, StoreError, WatchStream};

/// How many writes [`slow_watcher_is_cut`] makes while its watcher does not read.
pub const LAG_WRITES: usize = 2_000;

/// How long a scenario waits for an expected watch event before failing.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs every scenario, each on a new store made by `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    create_and_get(make().await).await;
    create_existing_fails(make().await).await;
    update_compare_and_swap(make().await).await;
    delete_with_and_without_expected_revision(make().await).await;
    revisions_are_global_and_increasing(make().await).await;
    range_prefix_start_after_limit(make().await).await;
    reads_at_old_revisions(make().await).await;
    future_revision_is_rejected(make().await).await;
    watch_replays_history_then_live(make().await).await;
    watch_filters_by_prefix(make().await).await;
    watch_events_carry_previous_values(make().await).await;
    shared_written_bytes_are_the_same_allocation(make().await).await;
    concurrent_writers_get_distinct_revisions(make().await).await;
    compaction(make().await).await;
    slow_watcher_is_cut(make().await).await;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Unwraps `result`, panicking with `what` and the error.
fn ok<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what}: unexpected error {err:?}"),
    }
}

/// Unwraps the error of `result`, panicking with `what` if it succeeded.
fn err<T: Debug, E>(result: Result<T, E>, what: &str) -> E {
    match result {
        Ok(value) => panic!("{what}: expected an error, got {value:?}"),
        Err(err) => err,
    }
}

fn val(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The next event of `stream`, panicking on timeout, end of stream or error.
async fn next_event(stream: &mut WatchStream, what: &str) -> Event {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(err))) => panic!("{what}: watch failed with {err:?}"),
        Ok(None) => panic!("{what}: watch ended"),
        Err(_) => panic!("{what}: no watch event within {EVENT_TIMEOUT:?}"),
    }
}

/// Asserts that `stream` yields nothing for a short while.
async fn assert_quiet(stream: &mut WatchStream, what: &str) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
        panic!("{what}: expected no watch event, got {item:?}");
    }
}

fn put_parts(event: &Event, what: &str) -> (KeyValue, Option<KeyValue>) {
    match event {
        Event::Put { kv, prev } => (kv.clone(), prev.clone()),
        Event::Delete { .. } => panic!("{what}: expected a put, got {event:?}"),
    }
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// `create` returns a new revision; `get` returns the value with create = mod revision, and the
/// current revision; a missing key reads as `None`.
pub async fn create_and_get<S: Store>(store: S) {
    assert_eq!(ok(store.current_revision().await, "current_revision"), 0);
    assert_eq!(
        ok(store.compacted_revision().await, "compacted_revision"),
        0
    );
    let (missing, rev0) = ok(store.get("/k/a", None).await, "get on empty store");
    assert_eq!(missing, None);
    assert_eq!(rev0, 0, "an empty store is at revision 0");

    let rev = ok(store.create("/k/a", val("one")).await, "create");
    assert!(rev > 0, "revisions start above 0, got {rev}");
    assert_eq!(ok(store.current_revision().await, "current_revision"), rev);

    let (kv, served) = ok(store.get("/k/a", None).await, "get");
    assert_eq!(
        kv,
        Some(KeyValue {
            key: "/k/a".to_owned(),
            value: val("one"),
            create_revision: rev,
            mod_revision: rev,
        })
    );
    assert_eq!(served, rev, "get is served at the current revision");

    let (missing, served) = ok(store.get("/k/b", None).await, "get missing");
    assert_eq!(missing, None);
    assert_eq!(served, rev);
    // A key is not a prefix: "/k/a" does not answer for "/k/".
    assert_eq!(ok(store.get("/k/", None).await, "get prefix").0, None);

    // Binary values round-trip.
    let bin = Bytes::from_static(&[0, 159, 146, 150, 255]);
    let rev2 = ok(store.create("/k/bin", bin.clone()).await, "create binary");
    let (kv, _) = ok(store.get("/k/bin", None).await, "get binary");
    assert_eq!(kv.map(|kv| (kv.value, kv.mod_revision)), Some((bin, rev2)));
}

/// `create` of an existing key fails with `AlreadyExists`, changes nothing and takes no revision.
pub async fn create_existing_fails<S: Store>(store: S) {
    let rev = ok(store.create("/k/a", val("one")).await, "create");
    let e = err(store.create("/k/a", val("two")).await, "second create");
    assert_eq!(e, StoreError::AlreadyExists("/k/a".to_owned()));
    assert_eq!(
        ok(store.current_revision().await, "current_revision"),
        rev,
        "a failed write takes no revision"
    );
    let (kv, _) = ok(store.get("/k/a", None).await, "get");
    assert_eq!(kv.map(|kv| kv.value), Some(val("one")));
}

/// `update` succeeds with the current mod revision (keeping the create revision), fails with
/// `Conflict` on a stale one and with `NotFound` on a missing key.
pub async fn update_compare_and_swap<S: Store>(store: S) {
    let created = ok(store.create("/k/a", val("v1")).await, "create");
    let updated = ok(
        store.update("/k/a", val("v2"), created).await,
        "update at the current revision",
    );
    assert!(updated > created);
    let (kv, _) = ok(store.get("/k/a", None).await, "get");
    assert_eq!(
        kv,
        Some(KeyValue {
            key: "/k/a".to_owned(),
            value: val("v2"),
            create_revision: created,
            mod_revision: updated,
        })
    );

    let e = err(
        store.update("/k/a", val("v3"), created).await,
        "update with a stale revision",
    );
    assert_eq!(
        e,
        StoreError::Conflict {
            key: "/k/a".to_owned(),
            expected: created,
            actual: updated,
        }
    );
    let e = err(
        store.update("/k/missing", val("x"), updated).await,
        "update of a missing key",
    );
    assert_eq!(e, StoreError::NotFound("/k/missing".to_owned()));
    assert_eq!(
        ok(store.current_revision().await, "current_revision"),
        updated,
        "failed updates take no revision"
    );
    let (kv, _) = ok(store.get("/k/a", None).await, "get after failed updates");
    assert_eq!(kv.map(|kv| kv.value), Some(val("v2")));

    // Same value again still takes a revision.
    let again = ok(
        store.update("/k/a", val("v2"), updated).await,
        "update with the same value",
    );
    assert!(again > updated);
}

/// `delete` with a wrong expected revision fails with `Conflict`; with the right one or none it
/// returns the deletion revision and the last value; a deleted key is `NotFound`; re-creating it
/// starts a new generation.
pub async fn delete_with_and_without_expected_revision<S: Store>(store: S) {
    let a = ok(store.create("/k/a", val("a")).await, "create a");
    let b = ok(store.create("/k/b", val("b")).await, "create b");

    let e = err(store.delete("/k/a", Some(a + 100)).await, "delete stale");
    assert_eq!(
        e,
        StoreError::Conflict {
            key: "/k/a".to_owned(),
            expected: a + 100,
            actual: a,
        }
    );
    assert_eq!(ok(store.current_revision().await, "current_revision"), b);

    let (rev, prev) = ok(store.delete("/k/a", Some(a)).await, "delete with expected");
    assert!(rev > b);
    assert_eq!(
        prev,
        KeyValue {
            key: "/k/a".to_owned(),
            value: val("a"),
            create_revision: a,
            mod_revision: a,
        }
    );
    assert_eq!(ok(store.current_revision().await, "current_revision"), rev);
    assert_eq!(ok(store.get("/k/a", None).await, "get deleted").0, None);
    assert_eq!(
        err(store.delete("/k/a", None).await, "delete again"),
        StoreError::NotFound("/k/a".to_owned())
    );
    assert_eq!(
        err(store.update("/k/a", val("x"), a).await, "update deleted"),
        StoreError::NotFound("/k/a".to_owned())
    );

    let (rev2, prev) = ok(store.delete("/k/b", None).await, "unconditional delete");
    assert!(rev2 > rev);
    assert_eq!(prev.value, val("b"));
    assert_eq!(prev.mod_revision, b);

    let again = ok(store.create("/k/a", val("new")).await, "re-create");
    assert!(again > rev2);
    let (kv, _) = ok(store.get("/k/a", None).await, "get re-created");
    assert_eq!(
        kv.map(|kv| (kv.create_revision, kv.mod_revision, kv.value)),
        Some((again, again, val("new"))),
        "a re-created key starts a new generation"
    );
}

/// Every write of any key takes one new revision, strictly above all before it.
pub async fn revisions_are_global_and_increasing<S: Store>(store: S) {
    let mut last = ok(store.current_revision().await, "current_revision");
    let mut mod_revs = BTreeMap::new();
    for i in 0..10 {
        let key = format!("/k/{}", i % 3);
        let rev = match mod_revs.get(&key) {
            None => ok(store.create(&key, val("c")).await, "create"),
            Some(&expected) => ok(store.update(&key, val("u"), expected).await, "update"),
        };
        assert!(rev > last, "revision {rev} is not above {last}");
        assert_eq!(ok(store.current_revision().await, "current_revision"), rev);
        mod_revs.insert(key, rev);
        last = rev;
    }
    let (rev, _) = ok(store.delete("/k/0", None).await, "delete");
    assert!(rev > last);
    assert_eq!(ok(store.current_revision().await, "current_revision"), rev);
    for (key, mod_rev) in &mod_revs {
        if key != "/k/0" {
            let (kv, _) = ok(store.get(key, None).await, "get");
            assert_eq!(kv.map(|kv| kv.mod_revision), Some(*mod_rev));
        }
    }
}

/// Range reads: prefix boundaries, key order, `start_after`, `limit` and `more`.
pub async fn range_prefix_start_after_limit<S: Store>(store: S) {
    for key in [
        "/a",
        "/a/3",
        "/a/1",
        "/a/2",
        "/a/10",
        "/ab",
        "/a0",
        "/b/1",
        "/a/\u{e9}",
    ] {
        ok(store.create(key, val(key)).await, "create");
    }
    let current = ok(store.current_revision().await, "current_revision");

    let all = ok(store.range("/a/", None, 0, None).await, "range /a/");
    assert_eq!(
        keys(&all.kvs),
        ["/a/1", "/a/10", "/a/2", "/a/3", "/a/\u{e9}"],
        "keys under the prefix, in key order"
    );
    assert!(!all.more);
    assert_eq!(all.revision, current);
    for kv in &all.kvs {
        assert_eq!(kv.value, val(&kv.key));
    }

    let page = ok(store.range("/a/", None, 2, None).await, "range limit 2");
    assert_eq!(keys(&page.kvs), ["/a/1", "/a/10"]);
    assert!(page.more);
    let page = ok(
        store.range("/a/", Some("/a/10"), 2, None).await,
        "range after /a/10",
    );
    assert_eq!(keys(&page.kvs), ["/a/2", "/a/3"]);
    assert!(page.more);
    let page = ok(
        store.range("/a/", Some("/a/3"), 2, None).await,
        "range after /a/3",
    );
    assert_eq!(keys(&page.kvs), ["/a/\u{e9}"]);
    assert!(!page.more);
    let page = ok(
        store.range("/a/", None, 5, None).await,
        "range limit = count",
    );
    assert_eq!(page.kvs.len(), 5);
    assert!(!page.more, "more is false when exactly limit keys match");
    let page = ok(
        store.range("/a/", Some("/a/\u{e9}"), 0, None).await,
        "range after the last key",
    );
    assert!(page.kvs.is_empty());
    assert!(!page.more);
    let page = ok(
        store.range("/a/", Some("/"), 1, None).await,
        "start_after below the prefix",
    );
    assert_eq!(keys(&page.kvs), ["/a/1"]);

    let everything = ok(store.range("", None, 0, None).await, "range everything");
    assert_eq!(everything.kvs.len(), 9);
    let none = ok(store.range("/zz/", None, 0, None).await, "range nothing");
    assert!(none.kvs.is_empty());
    assert_eq!(none.revision, current);

    ok(store.delete("/a/2", None).await, "delete");
    let all = ok(
        store.range("/a/", None, 0, None).await,
        "range after delete",
    );
    assert_eq!(keys(&all.kvs), ["/a/1", "/a/10", "/a/3", "/a/\u{e9}"]);
    assert_eq!(all.revision, current + 1);

    // Pages count live keys only, and hold the latest values.
    let a1 = all.kvs[0].mod_revision;
    ok(store.update("/a/1", val("/a/1 v2"), a1).await, "update");
    let page = ok(
        store.range("/a/", None, 2, None).await,
        "page over a deletion",
    );
    assert_eq!(keys(&page.kvs), ["/a/1", "/a/10"]);
    assert_eq!(page.kvs[0].value, val("/a/1 v2"));
    assert!(page.kvs[0].mod_revision > a1);
    assert!(page.more);
    let page = ok(
        store.range("/a/", Some("/a/10"), 1, None).await,
        "page starting at a deleted key",
    );
    assert_eq!(keys(&page.kvs), ["/a/3"]);
    assert!(page.more);
    ok(store.create("/a/2", val("again")).await, "re-create");
    let page = ok(
        store.range("/a/", Some("/a/10"), 1, None).await,
        "page with the re-created key",
    );
    assert_eq!(keys(&page.kvs), ["/a/2"]);
    assert_eq!(page.kvs[0].value, val("again"));
}

/// `get` and `range` at an older revision see the data as it was then.
pub async fn reads_at_old_revisions<S: Store>(store: S) {
    let r1 = ok(store.create("/k/a", val("a1")).await, "create a");
    let r2 = ok(store.create("/k/b", val("b1")).await, "create b");
    let r3 = ok(store.update("/k/a", val("a2"), r1).await, "update a");
    let (r4, _) = ok(store.delete("/k/b", None).await, "delete b");
    let r5 = ok(store.create("/k/c", val("c1")).await, "create c");
    let r6 = ok(store.create("/k/b", val("b2")).await, "re-create b");

    let get = |key: &'static str, at| {
        let store = &store;
        async move {
            let (kv, served) = ok(store.get(key, Some(at)).await, "get at revision");
            assert_eq!(
                served, at,
                "a read at a revision is served at that revision"
            );
            kv.map(|kv| (kv.value, kv.create_revision, kv.mod_revision))
        }
    };
    assert_eq!(get("/k/a", r1).await, Some((val("a1"), r1, r1)));
    assert_eq!(get("/k/a", r2).await, Some((val("a1"), r1, r1)));
    assert_eq!(get("/k/a", r3).await, Some((val("a2"), r1, r3)));
    assert_eq!(get("/k/b", r1).await, None, "not yet created");
    assert_eq!(get("/k/b", r3).await, Some((val("b1"), r2, r2)));
    assert_eq!(get("/k/b", r4).await, None, "deleted");
    assert_eq!(get("/k/b", r5).await, None, "still deleted");
    assert_eq!(get("/k/b", r6).await, Some((val("b2"), r6, r6)));
    assert_eq!(get("/k/c", r4).await, None);
    assert_eq!(
        get("/k/a", 0).await,
        None,
        "revision 0 is before everything"
    );

    let range_at = |at| {
        let store = &store;
        async move {
            let res = ok(store.range("/k/", None, 0, Some(at)).await, "range at");
            assert_eq!(res.revision, at);
            res.kvs
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone(), kv.mod_revision))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        range_at(r3).await,
        [
            ("/k/a".to_owned(), val("a2"), r3),
            ("/k/b".to_owned(), val("b1"), r2)
        ]
    );
    assert_eq!(range_at(r4).await, [("/k/a".to_owned(), val("a2"), r3)]);
    assert_eq!(
        range_at(r6).await,
        [
            ("/k/a".to_owned(), val("a2"), r3),
            ("/k/b".to_owned(), val("b2"), r6),
            ("/k/c".to_owned(), val("c1"), r5)
        ]
    );

    let page = ok(
        store.range("/k/", None, 1, Some(r3)).await,
        "range at, limit",
    );
    assert_eq!(keys(&page.kvs), ["/k/a"]);
    assert!(page.more);
    let page = ok(
        store.range("/k/", Some("/k/a"), 1, Some(r3)).await,
        "range at, start_after",
    );
    assert_eq!(keys(&page.kvs), ["/k/b"]);
    assert!(!page.more);
    let page = ok(
        store.range("/k/", None, 1, Some(r4)).await,
        "range at, deleted keys do not count",
    );
    assert_eq!(keys(&page.kvs), ["/k/a"]);
    assert!(!page.more);
}

/// Reads at a revision above the current one fail with `FutureRevision`.
pub async fn future_revision_is_rejected<S: Store>(store: S) {
    let rev = ok(store.create("/k/a", val("a")).await, "create");
    let expected = StoreError::FutureRevision {
        requested: rev + 1,
        current: rev,
    };
    assert_eq!(
        err(store.get("/k/a", Some(rev + 1)).await, "get in the future"),
        expected
    );
    assert_eq!(
        err(
            store.range("/k/", None, 0, Some(rev + 1)).await,
            "range in the future"
        ),
        expected
    );
    assert_eq!(
        err(store.compact(rev + 1).await, "compact in the future"),
        expected
    );
    assert!(
        ok(store.get("/k/a", Some(rev)).await, "get at current")
            .0
            .is_some()
    );
}

/// A watch from a revision first replays the history after it, then delivers live changes, in
/// revision order, without gap or duplicate.
pub async fn watch_replays_history_then_live<S: Store>(store: S) {
    let r1 = ok(store.create("/w/a", val("1")).await, "create a");
    let r2 = ok(store.create("/w/b", val("1")).await, "create b");
    let r3 = ok(store.update("/w/a", val("2"), r1).await, "update a");

    let mut watch = ok(store.watch("/w/", r1).await, "watch after r1");
    let e = next_event(&mut watch, "history event 1").await;
    assert_eq!(e.revision(), r2);
    assert_eq!(e.key(), "/w/b");
    let e = next_event(&mut watch, "history event 2").await;
    assert_eq!(e.revision(), r3);
    let (kv, prev) = put_parts(&e, "history update");
    assert_eq!(kv.value, val("2"));
    assert_eq!(kv.create_revision, r1);
    assert_eq!(
        prev.map(|p| (p.value, p.mod_revision)),
        Some((val("1"), r1))
    );
    assert_quiet(&mut watch, "after the history").await;

    // Live events, including ones written concurrently with the watcher.
    let store = Arc::new(store);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..50 {
                revs.push(ok(
                    store.create(&format!("/w/live/{i:03}"), val("x")).await,
                    "live create",
                ));
            }
            revs
        })
    };
    let mut seen = Vec::new();
    for i in 0..50 {
        let e = next_event(&mut watch, "live event").await;
        assert_eq!(e.key(), format!("/w/live/{i:03}"), "live events in order");
        seen.push(e.revision());
    }
    let revs = ok(writer.await, "writer task");
    assert_eq!(seen, revs, "live events carry the write revisions");
    assert_quiet(&mut watch, "after the live events").await;

    // Watching from 0 replays everything; watching from the current revision replays nothing.
    let mut from_zero = ok(store.watch("/w/", 0).await, "watch from 0");
    let mut all = Vec::new();
    for _ in 0..53 {
        all.push(next_event(&mut from_zero, "replay from 0").await.revision());
    }
    assert!(all.windows(2).all(|w| w[0] < w[1]), "in revision order");
    assert_eq!(all[0], r1);
    let current = ok(store.current_revision().await, "current_revision");
    let mut from_now = ok(store.watch("/w/", current).await, "watch from now");
    assert_quiet(&mut from_now, "watch from the current revision").await;
    let r = ok(store.create("/w/z", val("z")).await, "create z");
    assert_eq!(
        next_event(&mut from_now, "live after now").await.revision(),
        r
    );
    assert_eq!(
        next_event(&mut from_zero, "live after replay")
            .await
            .revision(),
        r
    );

    // A watch from a future revision waits for it.
    let mut future = ok(store.watch("/w/", r + 1).await, "watch from the future");
    let r_next = ok(store.create("/w/y", val("y")).await, "create y");
    assert_eq!(
        r_next,
        r + 1,
        "the store was quiet, so this is the next revision"
    );
    let r_after = ok(store.create("/w/x", val("x")).await, "create x");
    assert_eq!(
        next_event(&mut future, "event after the future revision")
            .await
            .revision(),
        r_after
    );
}

/// A watch only sees keys under its prefix.
pub async fn watch_filters_by_prefix<S: Store>(store: S) {
    let start = ok(store.current_revision().await, "current_revision");
    ok(store.create("/p/a/1", val("1")).await, "create");
    ok(store.create("/p/b/1", val("1")).await, "create");
    ok(store.create("/p/a", val("1")).await, "create");
    ok(store.create("/p/ab/1", val("1")).await, "create");
    let mut watch = ok(store.watch("/p/a/", start).await, "watch /p/a/");
    let mut everything = ok(store.watch("", start).await, "watch everything");
    ok(store.create("/p/b/2", val("1")).await, "create");
    ok(store.create("/p/a/2", val("1")).await, "create");
    assert_eq!(next_event(&mut watch, "history").await.key(), "/p/a/1");
    assert_eq!(next_event(&mut watch, "live").await.key(), "/p/a/2");
    assert_quiet(&mut watch, "other prefixes").await;
    for _ in 0..6 {
        next_event(&mut everything, "empty prefix sees every key").await;
    }
    assert_quiet(&mut everything, "nothing more").await;
}

/// Update events carry the previous value; delete events carry the last value and the deletion
/// revision, both from history and live.
pub async fn watch_events_carry_previous_values<S: Store>(store: S) {
    let start = ok(store.current_revision().await, "current_revision");
    let mut live = ok(store.watch("/d/", start).await, "live watch");
    let c = ok(store.create("/d/a", val("v1")).await, "create");
    let u = ok(store.update("/d/a", val("v2"), c).await, "update");
    let (d, _) = ok(store.delete("/d/a", Some(u)).await, "delete");
    let c2 = ok(store.create("/d/a", val("v3")).await, "re-create");
    let mut history = ok(store.watch("/d/", start).await, "history watch");

    for (stream, name) in [(&mut live, "live"), (&mut history, "history")] {
        let e = next_event(stream, name).await;
        let (kv, prev) = put_parts(&e, name);
        assert_eq!((kv.mod_revision, kv.create_revision), (c, c));
        assert_eq!(prev, None, "{name}: a create has no previous value");

        let e = next_event(stream, name).await;
        let (kv, prev) = put_parts(&e, name);
        assert_eq!((kv.mod_revision, kv.create_revision), (u, c));
        assert_eq!(
            prev,
            Some(KeyValue {
                key: "/d/a".to_owned(),
                value: val("v1"),
                create_revision: c,
                mod_revision: c,
            }),
            "{name}: update event"
        );

        let e = next_event(stream, name).await;
        assert_eq!(
            e,
            Event::Delete {
                prev: KeyValue {
                    key: "/d/a".to_owned(),
                    value: val("v2"),
                    create_revision: c,
                    mod_revision: u,
                },
                revision: d,
            },
            "{name}: delete event"
        );
        assert_eq!(e.revision(), d);
        assert_eq!(e.key(), "/d/a");

        let e = next_event(stream, name).await;
        let (kv, prev) = put_parts(&e, name);
        assert_eq!((kv.mod_revision, kv.create_revision), (c2, c2));
        assert_eq!(
            prev, None,
            "{name}: a create after a delete has no previous value"
        );
    }
}

/// A store that says its live events carry the written bytes delivers the same allocation.
pub async fn shared_written_bytes_are_the_same_allocation<S: Store>(store: S) {
    if !store.events_share_written_bytes() {
        return;
    }
    let start = ok(store.current_revision().await, "current_revision");
    let mut live = ok(store.watch("/s/", start).await, "live watch");
    let created = val("v1");
    let c = ok(store.create("/s/a", created.clone()).await, "create");
    let updated = val("v2");
    ok(store.update("/s/a", updated.clone(), c).await, "update");
    for (written, what) in [(created, "create"), (updated, "update")] {
        let e = next_event(&mut live, what).await;
        let (kv, _) = put_parts(&e, what);
        assert_eq!(kv.value, written, "{what}");
        assert_eq!(
            kv.value.as_ptr(),
            written.as_ptr(),
            "{what}: not the same allocation"
        );
    }
}

/// Many tasks writing at once all get distinct revisions, and every write is visible.
pub async fn concurrent_writers_get_distinct_revisions<S: Store>(store: S) {
    const TASKS: usize = 32;
    const PER_TASK: usize = 25;
    let store = Arc::new(store);
    let start = ok(store.current_revision().await, "current_revision");
    let mut watch = ok(store.watch("/c/", start).await, "watch");
    let total = TASKS * (PER_TASK + 1);
    let watcher = tokio::spawn(async move {
        let mut revs = Vec::with_capacity(total);
        for _ in 0..total {
            revs.push(
                next_event(&mut watch, "watch of concurrent writes")
                    .await
                    .revision(),
            );
        }
        revs
    });
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..PER_TASK {
                let key = format!("/c/{t:02}/{i:02}");
                let rev = ok(store.create(&key, val(&key)).await, "concurrent create");
                // Every task also updates its first key, racing on nothing but the revision.
                revs.push(rev);
            }
            let first = format!("/c/{t:02}/00");
            let (kv, _) = ok(store.get(&first, None).await, "get own key");
            let mod_rev = kv.map(|kv| kv.mod_revision).unwrap_or_default();
            revs.push(ok(
                store.update(&first, val("updated"), mod_rev).await,
                "update own key",
            ));
            revs
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let revs = ok(task.await, "writer task");
        assert!(
            revs.windows(2).all(|w| w[0] < w[1]),
            "one task's writes are acknowledged in increasing revisions"
        );
        all.extend(revs);
    }
    let distinct: HashSet<_> = all.iter().copied().collect();
    assert_eq!(distinct.len(), total, "every write got its own revision");
    let max = all.iter().copied().max().unwrap_or_default();
    assert_eq!(ok(store.current_revision().await, "current_revision"), max);

    let listed = ok(store.range("/c/", None, 0, None).await, "range");
    assert_eq!(listed.kvs.len(), TASKS * PER_TASK, "every key is visible");
    assert_eq!(listed.revision, max);
    let updated = listed
        .kvs
        .iter()
        .filter(|kv| kv.value == val("updated"))
        .count();
    assert_eq!(updated, TASKS);

    let watched = ok(watcher.await, "watcher task");
    assert!(
        watched.windows(2).all(|w| w[0] < w[1]),
        "watch events in strictly increasing order"
    );
    let watched_set: HashSet<_> = watched.iter().copied().collect();
    assert_eq!(watched_set, distinct, "the watcher saw every write once");
}

/// After `compact(r)`: reads below `r` and watches from before `r` fail with `Compacted`; reads at
/// and after `r` (and the latest values) are intact, including the previous values of the events
/// from `r` on.
pub async fn compaction<S: Store>(store: S) {
    let a1 = ok(store.create("/x/a", val("a1")).await, "create a");
    let b1 = ok(store.create("/x/b", val("b1")).await, "create b");
    let mut a = a1;
    for i in 2..=5 {
        a = ok(
            store.update("/x/a", val(&format!("a{i}")), a).await,
            "update a",
        );
    }
    let (d1, _) = ok(store.delete("/x/b", None).await, "delete b");
    let gone = ok(store.create("/x/gone", val("g")).await, "create gone");
    let (gone_del, _) = ok(store.delete("/x/gone", None).await, "delete gone");
    let keep = ok(store.create("/x/keep", val("k1")).await, "create keep");
    let target = ok(
        store.update("/x/a", val("a6"), a).await,
        "update a at target",
    );
    let after = ok(
        store.update("/x/keep", val("k2"), keep).await,
        "update keep",
    );

    ok(store.compact(target).await, "compact");
    assert_eq!(
        ok(store.compacted_revision().await, "compacted_revision"),
        target
    );

    let compacted = |requested| StoreError::Compacted {
        requested,
        compacted: target,
    };
    assert_eq!(
        err(store.get("/x/a", Some(target - 1)).await, "get below"),
        compacted(target - 1)
    );
    assert_eq!(
        err(store.get("/x/a", Some(a1)).await, "get far below"),
        compacted(a1)
    );
    assert_eq!(
        err(store.range("/x/", None, 0, Some(b1)).await, "range below"),
        compacted(b1)
    );
    assert_eq!(
        err(
            store
                .watch("/x/", target - 2)
                .await
                .map(|_| "a watch stream"),
            "watch from below"
        ),
        compacted(target - 1)
    );

    // At and after the compacted revision everything is intact.
    let (kv, _) = ok(store.get("/x/a", Some(target)).await, "get at target");
    assert_eq!(
        kv.map(|kv| (kv.value, kv.mod_revision)),
        Some((val("a6"), target))
    );
    let (kv, _) = ok(
        store.get("/x/keep", Some(target)).await,
        "get keep at target",
    );
    assert_eq!(
        kv.map(|kv| (kv.value, kv.mod_revision)),
        Some((val("k1"), keep))
    );
    assert_eq!(
        ok(store.get("/x/b", Some(target)).await, "get b at target").0,
        None
    );
    assert!(d1 < target && gone_del < target && gone < target);
    let at_target = ok(
        store.range("/x/", None, 0, Some(target)).await,
        "range at target",
    );
    assert_eq!(keys(&at_target.kvs), ["/x/a", "/x/keep"]);
    let latest = ok(store.range("/x/", None, 0, None).await, "range latest");
    assert_eq!(
        latest
            .kvs
            .iter()
            .map(|kv| (
                kv.key.as_str(),
                kv.value.clone(),
                kv.create_revision,
                kv.mod_revision
            ))
            .collect::<Vec<_>>(),
        [
            ("/x/a", val("a6"), a1, target),
            ("/x/keep", val("k2"), keep, after)
        ]
    );

    // A watch from just before the compacted revision still gets full events.
    let mut watch = ok(
        store.watch("/x/", target - 1).await,
        "watch from target - 1",
    );
    let e = next_event(&mut watch, "event at target").await;
    let (kv, prev) = put_parts(&e, "event at target");
    assert_eq!(kv.mod_revision, target);
    assert_eq!(
        prev.map(|p| (p.value, p.mod_revision)),
        Some((val("a5"), a)),
        "the previous value of the first event after compaction survives"
    );
    let e = next_event(&mut watch, "event after target").await;
    let (_, prev) = put_parts(&e, "event after target");
    assert_eq!(prev.map(|p| p.mod_revision), Some(keep));

    // Compacting again at or below is a no-op; writes go on.
    ok(store.compact(target).await, "compact again");
    ok(store.compact(a1).await, "compact below");
    assert_eq!(
        ok(store.compacted_revision().await, "compacted_revision"),
        target
    );
    let next = ok(
        store.update("/x/a", val("a7"), target).await,
        "update after compaction",
    );
    assert!(next > after);
    ok(store.compact(next).await, "compact to the current revision");
    let (kv, _) = ok(store.get("/x/a", None).await, "get after full compaction");
    assert_eq!(kv.map(|kv| kv.value), Some(val("a7")));
    let (kv, _) = ok(store.get("/x/keep", Some(next)).await, "get keep at last");
    assert_eq!(kv.map(|kv| kv.mod_revision), Some(after));
}

/// A watcher that does not read while [`LAG_WRITES`] writes happen is ended with
/// `WatcherLagged` (after the events it had buffered), and the writers are not slowed down by it.
/// The store's watch buffer must be smaller than [`LAG_WRITES`] events.
pub async fn slow_watcher_is_cut<S: Store>(store: S) {
    let store = Arc::new(store);
    let start = ok(store.current_revision().await, "current_revision");
    let mut slow = ok(store.watch("/s/", start).await, "slow watch");
    let mut fast = ok(store.watch("/s/", start).await, "fast watch");
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < LAG_WRITES {
            next_event(&mut fast, "a watcher that keeps up").await;
            n += 1;
        }
    });

    let writes = async {
        let mut tasks = Vec::new();
        for t in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in (t..LAG_WRITES).step_by(16) {
                    ok(
                        store.create(&format!("/s/{i:05}"), val("x")).await,
                        "create",
                    );
                }
            }));
        }
        for task in tasks {
            ok(task.await, "writer task");
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), writes)
        .await
        .is_err()
    {
        panic!("writers were blocked (a watcher that does not read must not slow them down)");
    }
    ok(
        tokio::time::timeout(EVENT_TIMEOUT, reader).await,
        "the watcher that reads sees every write",
    )
    .unwrap_or_else(|e| panic!("reader task failed: {e}"));

    let mut delivered = 0;
    let outcome = loop {
        match tokio::time::timeout(EVENT_TIMEOUT, slow.next()).await {
            Ok(Some(Ok(_))) => delivered += 1,
            Ok(Some(Err(e))) => break e,
            Ok(None) => panic!("the slow watcher ended without an error after {delivered} events"),
            Err(_) => panic!("the slow watcher was not cut (got {delivered} events, then nothing)"),
        }
    };
    assert_eq!(outcome, StoreError::WatcherLagged);
    assert!(
        delivered < LAG_WRITES,
        "the slow watcher cannot have seen every event"
    );
    let end = tokio::time::timeout(EVENT_TIMEOUT, slow.next()).await;
    assert!(
        matches!(end, Ok(None)),
        "the stream ends after WatcherLagged, got {end:?}"
    );
    let listed = ok(store.range("/s/", None, 0, None).await, "range");
    assert_eq!(listed.kvs.len(), LAG_WRITES);
}
