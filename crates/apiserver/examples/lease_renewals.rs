//! What the API server spends on node Lease renewals, without the network: an in-process API
//! server over a SQLite store (with the heartbeat commit window of `r8s server`) takes `NODES`
//! Leases, then one round of renewals not measured and `ROUNDS` measured ones, sent as `r8s sim`
//! sends them (a PUT of the last Lease written with a new `renewTime` and no managedFields), 64
//! at a time.
//!
//! ```text
//! cargo run --release -p apiserver --example lease_renewals -- [NODES] [ROUNDS]
//! ```
//!
//! It prints the CPU time of the whole process (API server and client) per renewal; TLS and
//! HTTP/2 are not in it. Under `valgrind --tool=callgrind`, run once with ROUNDS 0 and once with
//! ROUNDS N (500 nodes, 0 and 4 rounds: half a minute): the difference of the instruction counts
//! divided by `NODES * N` is the cost of one renewal, exact enough to compare two versions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use store::sqlite::{SqliteOptions, SqliteStore};

#[path = "common/cpu.rs"]
mod cpu;
use cpu::cpu_time;

const NAMESPACE: &str = "kube-node-lease";

fn lease(i: usize, name: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_owned(),
                kind: "Node".to_owned(),
                name: name.to_owned(),
                uid: format!("00000000-0000-4000-8000-{i:012}"),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.to_owned()),
            lease_duration_seconds: Some(40),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..Default::default()
        }),
    }
}

#[tokio::main(worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let nodes: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);

    let dir = tempfile::tempdir()?;
    let opts = SqliteOptions {
        deferrable_prefixes: vec![format!("/registry/leases/{NAMESPACE}/")],
        deferred_commit_window: Duration::from_millis(100),
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteStore::open(&dir.path().join("state.db"), opts).await?);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let state = apiserver::inprocess::serve(store, shutdown.clone()).await?;
    let client = apiserver::inprocess::client(state, "system:node:sim", &["system:masters"]);
    // The API server's bootstrap creates the namespace.
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);

    let names: Vec<String> = (0..nodes).map(|i| format!("node-{i:05}")).collect();
    let mut leases: Vec<Lease> = futures::stream::iter(names.iter().enumerate())
        .map(|(i, n)| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &lease(i, n)).await }
        })
        .buffered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;

    // One round first, unmeasured: the API server keeps the parsed form of the objects it
    // writes, not of those it creates, so renewals cost what they will from the second on.
    let mut cpu0 = (cpu_time(), Instant::now());
    for round in 0..=rounds {
        if round == 1 {
            cpu0 = (cpu_time(), Instant::now());
        }
        let renewed = futures::stream::iter(leases.into_iter())
            .map(|mut l| {
                let api = api.clone();
                async move {
                    l.metadata.managed_fields = None;
                    if let Some(spec) = l.spec.as_mut() {
                        spec.renew_time = Some(MicroTime(Timestamp::now()));
                    }
                    let name = l.metadata.name.clone().unwrap_or_default();
                    api.replace(&name, &PostParams::default(), &l).await
                }
            })
            .buffered(64)
            .collect::<Vec<_>>()
            .await;
        leases = renewed.into_iter().collect::<Result<_, _>>()?;
    }
    let (cpu, wall) = (cpu_time() - cpu0.0, cpu0.1.elapsed());
    let n = (nodes * rounds).max(1) as f64;
    println!(
        "{} renewals in {:.2} s ({:.0}/s): {:.1} µs of CPU each (API server and client, no TLS)",
        nodes * rounds,
        wall.as_secs_f64(),
        n / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n
    );
    shutdown.cancel();
    Ok(())
}
