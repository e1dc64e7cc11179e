//! Runs the store conformance suite against [`EtcdStore`] on a real etcd (`/usr/bin/etcd`), one
//! etcd process per test (every scenario wants a fresh, never-written store).

mod etcd_support;

use bytes::Bytes;
use etcd_support::Etcd;
use store::conformance;
use store::etcd::EtcdStore;
use store::{KeyValue, RangeResult, Result, Revision, Store, WatchStream};

/// A store together with the etcd it talks to (stopped when the store is dropped), so that
/// [`conformance::run_all`] can make one per scenario.
struct OwnedStore {
    store: EtcdStore,
    _etcd: Etcd,
}

async fn owned(watch_buffer: usize) -> OwnedStore {
    let etcd = Etcd::start().await;
    OwnedStore {
        store: etcd.store(watch_buffer).await,
        _etcd: etcd,
    }
}

#[async_trait::async_trait]
impl Store for OwnedStore {
    async fn current_revision(&self) -> Result<Revision> {
        self.store.current_revision().await
    }
    async fn compacted_revision(&self) -> Result<Revision> {
        self.store.compacted_revision().await
    }
    async fn get(&self, key: &str, at: Option<Revision>) -> Result<(Option<KeyValue>, Revision)> {
        self.store.get(key, at).await
    }
    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: Option<Revision>,
    ) -> Result<RangeResult> {
        self.store.range(prefix, start_after, limit, at).await
    }
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        self.store.create(key, value).await
    }
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        self.store.update(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        self.store.delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.store.watch(prefix, after).await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.store.compact(revision).await
    }
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            // A watch buffer well under `conformance::LAG_WRITES`, for the lag scenario.
            conformance::$name(owned(1024).await).await;
        }
    )*};
}

scenarios!(
    create_and_get,
    create_existing_fails,
    update_compare_and_swap,
    delete_with_and_without_expected_revision,
    revisions_are_global_and_increasing,
    range_prefix_start_after_limit,
    reads_at_old_revisions,
    future_revision_is_rejected,
    watch_replays_history_then_live,
    watch_filters_by_prefix,
    watch_events_carry_previous_values,
    shared_written_bytes_are_the_same_allocation,
    concurrent_writers_get_distinct_revisions,
    compaction,
    slow_watcher_is_cut,
);

/// Every scenario `run_all` knows, so a scenario added to the suite is run here too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_scenarios() {
    conformance::run_all(|| owned(1024)).await;
}
