//! The watch cache keeps the parsed form of versions this server wrote: small ones written by
//! PUT while they are current (Leases), others only among the last written (so memory stays
//! bounded however many pods and Events there are).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use apiserver::cacher::{CachedObject, Cacher};
use apiserver::registry::Registry;
use bytes::Bytes;
use futures::StreamExt;
use store::Store;
use store::sqlite::{SqliteOptions, SqliteStore};
use tokio_util::sync::CancellationToken;

fn config_map(name: &str, size: usize) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"k": "v".repeat(size)},
        })
        .to_string(),
    )
}

#[tokio::test]
async fn large_parsed_forms_are_kept_for_the_last_written_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("db"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    let registry = Arc::new(Registry::builtin());
    let cancel = CancellationToken::new();
    let cacher = Cacher::start(
        store.clone(),
        registry.clone(),
        apiserver::handlers::read::extract_fields,
        cancel.clone(),
    )
    .await
    .unwrap();
    let cms = registry.get("", "v1", "configmaps").unwrap();
    let key = |n: &str| cms.key(Some("default"), n);

    // Small by PUT (kept while current), small otherwise and large (kept among the last
    // written), too large (never).
    let extra = 10;
    let large = CachedObject::KEEP_PARSED_RECENT + extra;
    let mut objects: Vec<(String, Bytes)> = vec![
        ("small-put".into(), config_map("small-put", 100)),
        ("small-created".into(), config_map("small-created", 100)),
        (
            "huge".into(),
            config_map("huge", CachedObject::KEEP_PARSED_RECENT_MAX),
        ),
    ];
    let mut revs = Vec::new();
    for (n, v) in &objects {
        revs.push(store.create(&key(n), v.clone()).await.unwrap());
    }
    objects.extend((0..large).map(|i| {
        let n = format!("large-{i:05}");
        let v = config_map(&n, CachedObject::KEEP_PARSED_MAX);
        (n, v)
    }));
    for chunk in objects[3..].chunks(256) {
        let rs: Vec<_> = futures::stream::iter(chunk)
            .map(|(n, v)| {
                let store = store.clone();
                let k = key(n);
                let v = v.clone();
                async move { store.create(&k, v).await.unwrap() }
            })
            .buffered(256)
            .collect()
            .await;
        revs.extend(rs);
    }
    let last = *revs.iter().max().unwrap();
    tokio::time::timeout(Duration::from_secs(30), cacher.wait_for(last))
        .await
        .unwrap()
        .unwrap();
    // The writer hands over each version's parsed form, in the order written.
    let mut order: Vec<usize> = (0..objects.len()).collect();
    order.sort_by_key(|&i| revs[i]);
    for i in order {
        let (n, v) = &objects[i];
        let cached = cacher.get(cms, &key(n)).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&cached.raw).unwrap();
        cacher.remember_parsed(cms, &key(n), revs[i], v.len(), parsed, n == "small-put");
    }
    let kept = |n: &str| cacher.get(cms, &key(n)).unwrap().parsed.lock().is_some();
    assert!(kept("small-put"));
    assert!(!kept("huge"));
    // Of the others, those written last are kept: the small one created first and the first
    // large ones made room for the rest.
    assert!(!kept("small-created"));
    let mut by_rev: Vec<usize> = (3..objects.len()).collect();
    by_rev.sort_by_key(|&i| revs[i]);
    for (pos, &i) in by_rev.iter().enumerate() {
        assert_eq!(
            kept(&objects[i].0),
            pos >= extra,
            "{} at {pos}",
            objects[i].0
        );
    }
    // The kept form is the object: taking it gives what parsing the bytes gives.
    let cached = cacher
        .get(cms, &key(&format!("large-{:05}", large - 1)))
        .unwrap();
    let want: serde_json::Value = serde_json::from_slice(&cached.raw).unwrap();
    assert_eq!(cached.take_value(), want);
    cancel.cancel();
}
