//! Runs the store conformance suite against [`SqliteStore`], one test per scenario.

use std::sync::atomic::{AtomicUsize, Ordering};

use store::conformance;
use store::{SqliteOptions, SqliteStore};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A store on a new file in `dir`, with a watch buffer small enough for the lag scenario.
async fn new_store(dir: &tempfile::TempDir) -> SqliteStore {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let opts = SqliteOptions {
        watch_buffer: 256,
        // Small pages and chunks exercise paging and multi-step compaction.
        watch_page: 7,
        compact_chunk: 3,
        ..SqliteOptions::default()
    };
    SqliteStore::open(&dir.path().join(format!("store-{n}.db")), opts)
        .await
        .expect("open store")
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let dir = tempfile::tempdir().expect("tempdir");
            conformance::$name(new_store(&dir).await).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_with_default_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = AtomicUsize::new(0);
    conformance::run_all(|| {
        let path = dir.path().join(format!(
            "all-{}.db",
            counter.fetch_add(1, Ordering::Relaxed)
        ));
        async move {
            let opts = SqliteOptions {
                watch_buffer: 512,
                ..SqliteOptions::default()
            };
            SqliteStore::open(&path, opts).await.expect("open store")
        }
    })
    .await;
}
