//! What the API server spends on the writes of one scheduled pod, without the network: an
//! in-process API server over a SQLite store takes `PODS` pods as `bench --controlplane` creates
//! them, then binds each as the scheduler does (`pods/binding`) and records its `Scheduled`
//! Event, then reports it Running as a kubelet does (a strategic merge patch of `pods/status`),
//! 32 requests at a time.
//!
//! ```text
//! cargo run --release -p apiserver --example pod_writes -- [PODS] [STAGES]
//! ```
//!
//! `STAGES` (default `cbes`) picks the stages: c(reate), b(ind), e(vent), s(tatus). It prints
//! the CPU time of the whole process (API server and client) per pod and stage; TLS, HTTP/2 and
//! watchers are not in it. Under `valgrind --tool=callgrind`, the inclusive cost of each handler
//! divided by `PODS` is one write, exact enough to compare two versions.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Event, Namespace, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use store::sqlite::{SqliteOptions, SqliteStore};

#[path = "common/cpu.rs"]
mod cpu;
use cpu::cpu_time;

// The allocator of `r8s`, so that the figures are those of the API server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAMESPACE: &str = "bench";
const CONCURRENCY: usize = 32;

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"bench": "plain"}},
        "spec": {"containers": [{
            "name": "app",
            "image": "registry.example.com/app:1.0",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        }]},
    }))
    .unwrap_or_default()
}

fn node(i: usize) -> String {
    format!("node-{:05}", i % 5000)
}

/// Runs `f` for every pod index, `CONCURRENCY` at a time, and prints its cost per pod.
async fn stage<F, Fut>(label: &str, pods: usize, f: F) -> Result<(), Box<dyn std::error::Error>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let results: Vec<Result<(), kube::Error>> = futures::stream::iter(0..pods)
        .map(f)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    println!(
        "{label:>7}: {pods} in {:.2} s ({:.0}/s), {:.1} µs of CPU each",
        wall.as_secs_f64(),
        pods as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / pods.max(1) as f64
    );
    Ok(())
}

#[tokio::main(worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let pods: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5000);
    let stages = args.next().unwrap_or_else(|| "cbes".to_owned());

    let dir = tempfile::tempdir()?;
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("state.db"), SqliteOptions::default()).await?);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let state = apiserver::inprocess::serve(store, shutdown.clone()).await?;
    let client = apiserver::inprocess::client(state, "admin", &["system:masters"]);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let events: Api<Event> = Api::namespaced(client, NAMESPACE);
    let name = |i: usize| format!("p-{i}");

    // The pods must exist for the other stages.
    stage("create", pods, |i| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &pod(&name(i)))
                .await
                .map(drop)
        }
    })
    .await?;
    if stages.contains('b') {
        stage("bind", pods, |i| {
            let api = api.clone();
            async move {
                let binding = Binding {
                    metadata: ObjectMeta {
                        name: Some(name(i)),
                        namespace: Some(NAMESPACE.to_owned()),
                        ..Default::default()
                    },
                    target: ObjectReference {
                        kind: Some("Node".into()),
                        name: Some(node(i)),
                        ..Default::default()
                    },
                };
                api.create_subresource::<_, serde_json::Value>(
                    "binding",
                    &name(i),
                    &PostParams::default(),
                    &binding,
                )
                .await
                .map(drop)
            }
        })
        .await?;
    }
    if stages.contains('e') {
        stage("event", pods, |i| {
            let events = events.clone();
            async move {
                let now = Time(Timestamp::now());
                let ev = Event {
                    metadata: ObjectMeta {
                        name: Some(format!("{}.{:x}", name(i), now.0.as_nanosecond())),
                        namespace: Some(NAMESPACE.to_owned()),
                        ..Default::default()
                    },
                    involved_object: ObjectReference {
                        kind: Some("Pod".into()),
                        api_version: Some("v1".into()),
                        namespace: Some(NAMESPACE.to_owned()),
                        name: Some(name(i)),
                        uid: Some(format!("00000000-0000-4000-8000-{i:012}")),
                        ..Default::default()
                    },
                    reason: Some("Scheduled".into()),
                    message: Some(format!(
                        "Successfully assigned {NAMESPACE}/{} to {}",
                        name(i),
                        node(i)
                    )),
                    type_: Some("Normal".into()),
                    count: Some(1),
                    first_timestamp: Some(now.clone()),
                    last_timestamp: Some(now),
                    reporting_component: Some("default-scheduler".into()),
                    reporting_instance: Some("default-scheduler".into()),
                    ..Default::default()
                };
                events.create(&PostParams::default(), &ev).await.map(drop)
            }
        })
        .await?;
    }
    if stages.contains('s') {
        stage("status", pods, |i| {
            let api = api.clone();
            async move {
                // As a kubelet sends it: a `Time`, whole seconds.
                let now = serde_json::to_value(Time(Timestamp::now())).unwrap_or_default();
                let cond =
                    |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
                let patch = json!({"status": {
                    "phase": "Running",
                    "hostIP": "10.0.0.1",
                    "hostIPs": [{"ip": "10.0.0.1"}],
                    "podIP": format!("10.42.{}.{}", i / 250 % 250, i % 250 + 2),
                    "podIPs": [{"ip": format!("10.42.{}.{}", i / 250 % 250, i % 250 + 2)}],
                    "startTime": now,
                    "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"),
                        cond("Ready"), cond("ContainersReady")],
                    "containerStatuses": [{
                        "name": "app",
                        "image": "registry.example.com/app:1.0",
                        "imageID": "",
                        "containerID": format!("containerd://{i:064x}"),
                        "ready": true,
                        "started": true,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": now}},
                    }],
                }});
                api.patch_status(&name(i), &PatchParams::default(), &Patch::Strategic(patch))
                    .await
                    .map(drop)
            }
        })
        .await?;
    }
    shutdown.cancel();
    Ok(())
}
