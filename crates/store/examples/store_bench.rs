//! Benchmark of the SQLite store with durable (fsync'd) commits.
//!
//! `cargo run --release -p store --example store_bench [-- DIR]` (default: a temporary directory
//! under the current directory, so the disk is the real one and not a tmpfs).
//!
//! `STORE_BENCH_CHECKPOINT_MS` and `STORE_BENCH_WAL_RESTART_FRAMES` override the corresponding
//! [`SqliteOptions`].
//!
//! Prints: sequential create latency (p50/p99) at an unthrottled rate and paced at 200 writes/s,
//! throughput with 32 concurrent writers, and get latency (p50/p99).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use store::{SqliteOptions, SqliteStore, Store};

/// A typical small Kubernetes object.
const VALUE_SIZE: usize = 1024;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<40} n={:<6} p50={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

/// A numeric tuning override from the environment.
fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = tempfile::Builder::new()
        .prefix("store-bench-")
        .tempdir_in(base)?;
    let path = dir.path().join("bench.db");
    let mut opts = SqliteOptions::default();
    if let Some(ms) = env_u64("STORE_BENCH_CHECKPOINT_MS") {
        opts.checkpoint_interval = Duration::from_millis(ms);
    }
    if let Some(frames) = env_u64("STORE_BENCH_WAL_RESTART_FRAMES") {
        opts.wal_restart_frames = i64::try_from(frames)?;
    }
    println!(
        "checkpoint interval {:?}, WAL restart at {} frames",
        opts.checkpoint_interval, opts.wal_restart_frames
    );
    let store = Arc::new(SqliteStore::open(&path, opts).await?);
    let value = Bytes::from(vec![b'x'; VALUE_SIZE]);
    println!("database: {} ({VALUE_SIZE}-byte values)", path.display());

    // 1. Sequential creates, one at a time, as fast as possible.
    let mut samples = Vec::new();
    for i in 0..2_000 {
        let started = Instant::now();
        store
            .create(&format!("/registry/seq/{i:06}"), value.clone())
            .await?;
        samples.push(started.elapsed());
    }
    report("sequential create (unthrottled)", samples);

    // 2. Sequential creates paced at 200 writes/s.
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(5));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0..1_000 {
        ticker.tick().await;
        let started = Instant::now();
        store
            .create(&format!("/registry/paced/{i:06}"), value.clone())
            .await?;
        samples.push(started.elapsed());
    }
    report("sequential create (200 writes/s)", samples);

    // 3. 32 concurrent writers: creates then updates.
    let writers = 32;
    let per_writer = 500;
    let commits_before = store.stats().commits;
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_writer);
                let mut rev = 0;
                for i in 0..per_writer {
                    let t = Instant::now();
                    // Half creates of new keys, half updates of the writer's own key.
                    if i % 2 == 0 {
                        store
                            .create(&format!("/registry/conc/{w:02}/{i:05}"), value.clone())
                            .await?;
                    } else if rev == 0 {
                        rev = store
                            .create(&format!("/registry/own/{w:02}"), value.clone())
                            .await?;
                    } else {
                        rev = store
                            .update(&format!("/registry/own/{w:02}"), value.clone(), rev)
                            .await?;
                    }
                    latencies.push(t.elapsed());
                }
                Ok::<_, store::StoreError>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    let total = writers * per_writer;
    let commits = store.stats().commits - commits_before;
    println!(
        "{:<40} {total} writes in {:.2} s = {:.0} writes/s ({commits} commits, {:.1} writes/commit)",
        format!("{writers} concurrent writers"),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        total as f64 / commits.max(1) as f64,
    );
    report(
        &format!("  write latency with {writers} writers"),
        latencies,
    );

    // 4. Gets of existing keys, sequential then from 32 tasks.
    let mut samples = Vec::new();
    for i in 0..5_000 {
        let key = format!("/registry/seq/{:06}", (i * 7) % 2_000);
        let started = Instant::now();
        let (kv, _) = store.get(&key, None).await?;
        samples.push(started.elapsed());
        if kv.is_none() {
            return Err(format!("{key} missing").into());
        }
    }
    report("get (sequential)", samples);
    let started = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                for i in 0..500 {
                    let key = format!("/registry/seq/{:06}", (t * 500 + i) % 2_000);
                    let s = Instant::now();
                    store.get(&key, None).await?;
                    samples.push(s.elapsed());
                }
                Ok::<_, store::StoreError>(samples)
            })
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    let elapsed = started.elapsed();
    println!(
        "{:<40} {:.0} gets/s",
        "get (32 concurrent readers)",
        samples.len() as f64 / elapsed.as_secs_f64()
    );
    report("  get latency with 32 readers", samples);

    // 5. A range of 500 keys.
    let mut samples = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let res = store.range("/registry/seq/", None, 500, None).await?;
        samples.push(started.elapsed());
        if res.kvs.len() != 500 {
            return Err("short range".into());
        }
    }
    report("range of 500 keys", samples);

    store.close().await;
    Ok(())
}
