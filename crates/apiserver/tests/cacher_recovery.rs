//! The watch cache keeps following the store after its watch breaks, even when the re-lists
//! that follow fail for a while (an etcd member going away does both).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use apiserver::cacher::Cacher;
use apiserver::registry::Registry;
use bytes::Bytes;
use futures::StreamExt;
use store::sqlite::{SqliteOptions, SqliteStore};
use store::{Event, KeyValue, RangeResult, Revision, Store, StoreError, WatchStream};
use tokio_util::sync::CancellationToken;

/// A store whose watches can be cut and whose ranges can be made to fail.
struct Flaky {
    inner: SqliteStore,
    /// Set: every open watch ends with an error at its next event.
    cut: Arc<AtomicBool>,
    /// Ranges that fail before they work again.
    failing_ranges: AtomicUsize,
}

#[async_trait::async_trait]
impl Store for Flaky {
    async fn current_revision(&self) -> store::Result<Revision> {
        self.inner.current_revision().await
    }
    async fn compacted_revision(&self) -> store::Result<Revision> {
        self.inner.compacted_revision().await
    }
    async fn get(
        &self,
        key: &str,
        at: Option<Revision>,
    ) -> store::Result<(Option<KeyValue>, Revision)> {
        self.inner.get(key, at).await
    }
    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: Option<Revision>,
    ) -> store::Result<RangeResult> {
        if self
            .failing_ranges
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Backend("no member reachable".into()));
        }
        self.inner.range(prefix, start_after, limit, at).await
    }
    async fn create(&self, key: &str, value: Bytes) -> store::Result<Revision> {
        self.inner.create(key, value).await
    }
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> store::Result<Revision> {
        self.inner.update(key, value, expected).await
    }
    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> store::Result<(Revision, KeyValue)> {
        self.inner.delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, after: Revision) -> store::Result<WatchStream> {
        self.cut.store(false, Ordering::SeqCst);
        let cut = self.cut.clone();
        let inner = self.inner.watch(prefix, after).await?;
        let stream = inner.scan(false, move |ended, ev: store::Result<Event>| {
            let out = if *ended {
                None
            } else if cut.load(Ordering::SeqCst) {
                *ended = true;
                Some(Err(StoreError::Backend("watch stream broken".into())))
            } else {
                Some(ev)
            };
            futures::future::ready(out)
        });
        Ok(Box::pin(stream))
    }
    async fn compact(&self, revision: Revision) -> store::Result<()> {
        self.inner.compact(revision).await
    }
}

fn config_map(name: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "data": {"k": "v"},
        })
        .to_string(),
    )
}

#[tokio::test]
async fn cache_follows_again_after_a_broken_watch_and_failed_relists() {
    let dir = tempfile::tempdir().unwrap();
    let inner = SqliteStore::open(&dir.path().join("db"), SqliteOptions::default())
        .await
        .unwrap();
    let flaky = Arc::new(Flaky {
        inner,
        cut: Arc::new(AtomicBool::new(false)),
        failing_ranges: AtomicUsize::new(0),
    });
    let registry = Arc::new(Registry::builtin());
    let cancel = CancellationToken::new();
    let cacher = Cacher::start(
        flaky.clone(),
        registry.clone(),
        apiserver::handlers::read::extract_fields,
        cancel.clone(),
    )
    .await
    .unwrap();
    let cms = registry.get("", "v1", "configmaps").unwrap();
    let key = |n: &str| cms.key(Some("default"), n);
    let seen = |n: &str| cacher.get(cms, &key(n)).is_some();

    flaky
        .create(&key("before"), config_map("before"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !seen("before") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the cache sees the first object");

    // The watch breaks (at its next event) and the next three re-lists fail.
    flaky.failing_ranges.store(3, Ordering::SeqCst);
    flaky.cut.store(true, Ordering::SeqCst);
    flaky
        .create(&key("during"), config_map("during"))
        .await
        .unwrap();
    flaky
        .create(&key("after"), config_map("after"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !(seen("during") && seen("after")) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the cache catches up once a re-list works");
    assert_eq!(flaky.failing_ranges.load(Ordering::SeqCst), 0);
    // And it follows live changes again.
    flaky
        .create(&key("later"), config_map("later"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !seen("later") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the cache follows the new watch");
    cancel.cancel();
}
