//! Scale check of the simulated nodes against an in-process API server (SQLite in a temp dir):
//! registration time of N nodes, process CPU while they heartbeat, and how fast a burst of
//! pods bound to them becomes Running.
//!
//! `cargo run --release -p sim --example scale -- [nodes] [pods] [cpu-window-seconds]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let nodes = args.first().copied().unwrap_or(5000);
    let pods = args.get(1).copied().unwrap_or(10_000);
    let window = args.get(2).copied().unwrap_or(20) as u64;

    let api = apiserver::inprocess::TempServer::start().await.unwrap();
    let (client, shutdown) = (api.client.clone(), api.shutdown.clone());
    let factory = informers::Factory::new(client.clone(), shutdown.clone());

    let t0 = Instant::now();
    let c0 = cpu_seconds();
    let config = sim::Config {
        nodes,
        ..Default::default()
    };
    let sim = sim::start(client.clone(), factory.clone(), config, shutdown.clone())
        .await
        .unwrap();
    let node_inf = factory.informer::<Node>();
    while node_inf.len() < nodes {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while sim.node_names().iter().any(|n| !sim.is_active(n)) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{nodes} nodes registered in {:.1} s ({:.1} CPU s)",
        t0.elapsed().as_secs_f64(),
        cpu_seconds() - c0
    );

    tokio::time::sleep(Duration::from_secs(12)).await;
    let (c0, t0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(window)).await;
    let pct = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64() * 100.0;
    println!(
        "heartbeats of {nodes} nodes: {pct:.1}% of one core (API server + sim, in one process), RSS {:.0} MiB",
        rss_mib()
    );

    // Pod CIDRs (the node IPAM controller's job), then a burst of bound pods.
    let nodes_api: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..nodes)
        .for_each_concurrent(32, |i| {
            let api = nodes_api.clone();
            let name = sim.node_names()[i].clone();
            async move {
                let cidr = format!("10.{}.{}.0/24", 64 + i / 256, i % 256);
                api.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(
                        serde_json::json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}),
                    ),
                )
                .await
                .unwrap();
            }
        })
        .await;
    let pod_inf = factory.informer::<Pod>();
    pod_inf.wait_synced().await;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (c0, t0) = (cpu_seconds(), Instant::now());
    futures::stream::iter(0..pods)
        .for_each_concurrent(64, |i| {
            let api = pods_api.clone();
            let node = sim.node_names()[i % nodes].clone();
            async move {
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("p-{i}")},
                    "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]},
                }))
                .unwrap();
                api.create(&PostParams::default(), &pod).await.unwrap();
            }
        })
        .await;
    let created = t0.elapsed();
    loop {
        let running = pod_inf
            .list()
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        if running >= pods {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{pods} pods created in {:.1} s, all Running after {:.1} s ({:.1} CPU s), RSS {:.0} MiB",
        created.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        cpu_seconds() - c0,
        rss_mib()
    );
    shutdown.cancel();
}
