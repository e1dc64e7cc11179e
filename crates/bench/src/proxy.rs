//! The service proxy benchmark (`bench --proxy`): a real `r8s server`, N selector-less
//! Services with an EndpointSlice of E endpoints each written through the API, and the
//! proxy (the same code the node agent runs) programming the real kernel through `nft`, inside
//! a network namespace created for the run (so the host's rules are never touched).
//!
//! Figures:
//! 1. from scratch: proxy start (informers already synced) → the whole table programmed;
//! 2. one endpoint change among the N Services, end to end: the EndpointSlice update sent to
//!    the API server → the proxy reports the new endpoint programmed (API write, watch, diff,
//!    `nft` transaction), over `changes` sequential changes;
//! 3. the proxy's own part of each change (event received → `nft` transaction committed).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::BenchError;
use crate::report::{Figure, Report};
use crate::server::ServerProcess;
use crate::stats::{Summary, ms};

const NS: &str = "bench-proxy";
const NETNS: &str = "r8s-bench-proxy";

/// Sizes of the proxy run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Services (each with one EndpointSlice).
    pub services: usize,
    /// Endpoints per Service.
    pub endpoints: usize,
    /// Sequential endpoint changes measured.
    pub changes: usize,
}

impl Default for Plan {
    /// The sizes: 10,000 Services × 5 endpoints, 100 changes.
    fn default() -> Self {
        Self {
            services: 10_000,
            endpoints: 5,
            changes: 100,
        }
    }
}

fn kube_err(what: &str) -> impl Fn(kube::Error) -> BenchError + '_ {
    move |e| BenchError::Unexpected(format!("{what}: {e}"))
}

/// An endpoint address for service `i`, endpoint `j`, generation `g`.
fn endpoint_ip(i: usize, j: usize, g: usize) -> String {
    let n = (i * 8 + j + g * 100_003) % (250 * 250 * 16);
    format!("10.{}.{}.{}", 42 + n / 62_500, (n / 250) % 250, n % 250 + 2)
}

fn slice_body(i: usize, endpoints: usize, g: usize) -> serde_json::Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": format!("svc-{i}"), "namespace": NS,
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": (0..endpoints).map(|j| json!({
            "addresses": [endpoint_ip(i, j, g)], "conditions": {"ready": true}
        })).collect::<Vec<_>>(),
    })
}

/// Runs the proxy benchmark.
pub async fn run(r8s: &Path, plan: &Plan, progress: &dyn Fn(&str)) -> Result<Report, BenchError> {
    let mut report = Report::default();
    let srv = ServerProcess::start_with_args(r8s, &[]).await?;
    let data = srv.root().join("data");
    let _ = StdCommand::new("ip")
        .args(["netns", "delete", NETNS])
        .stderr(std::process::Stdio::null())
        .status();
    let made = StdCommand::new("ip")
        .args(["netns", "add", NETNS])
        .status()
        .map_err(|e| BenchError::io("ip netns add", e))?;
    if !made.success() {
        srv.stop().await;
        return Err(BenchError::Unexpected(format!(
            "ip netns add {NETNS} failed"
        )));
    }
    let result = async {
        let client = crate::node::client_for(&data).await?;
        measure(client, plan, &mut report, progress).await
    }
    .await;
    let _ = StdCommand::new("ip")
        .args(["netns", "delete", NETNS])
        .status();
    srv.stop().await;
    result?;
    Ok(report)
}

async fn measure(
    client: Client,
    plan: &Plan,
    report: &mut Report,
    progress: &dyn Fn(&str),
) -> Result<(), BenchError> {
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": NS}}))
            .map_err(|e| BenchError::Unexpected(e.to_string()))?,
    )
    .await
    .map_err(kube_err("creating the namespace"))?;
    let svcs: Api<Service> = Api::namespaced(client.clone(), NS);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    progress(&format!(
        "creating {} Services with {} endpoints each",
        plan.services, plan.endpoints
    ));
    let started = Instant::now();
    let results: Vec<Result<(), BenchError>> = futures::stream::iter(0..plan.services)
        .map(|i| {
            let (svcs, slices) = (svcs.clone(), slices.clone());
            async move {
                let svc: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("svc-{i}")},
                    "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
                }))
                .map_err(|e| BenchError::Unexpected(e.to_string()))?;
                svcs.create(&PostParams::default(), &svc)
                    .await
                    .map_err(kube_err("creating a Service"))?;
                let sl: EndpointSlice = serde_json::from_value(slice_body(i, plan.endpoints, 0))
                    .map_err(|e| BenchError::Unexpected(e.to_string()))?;
                slices
                    .create(&PostParams::default(), &sl)
                    .await
                    .map_err(kube_err("creating an EndpointSlice"))?;
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    report.figures.push(Figure::info(
        format!(
            "create {} Services + EndpointSlices through the API",
            plan.services
        ),
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    ));

    let shutdown = CancellationToken::new();
    let factory = informers::Factory::new(client.clone(), shutdown.clone());
    let svc_inf = factory.informer::<Service>();
    let slice_inf = factory.informer::<EndpointSlice>();
    let listed = Instant::now();
    svc_inf.wait_synced().await;
    slice_inf.wait_synced().await;
    report.figures.push(Figure::info(
        "proxy informers: list of every Service and EndpointSlice",
        format!("{} ms", ms(listed.elapsed())),
    ));
    let mut cfg = proxy::Config::new(
        "bench-node",
        proxy::Ipv4Cidr::parse("10.43.0.0/16").expect("a valid CIDR"),
        proxy::Ipv4Cidr::parse("10.42.0.0/16").expect("a valid CIDR"),
    );
    cfg.nft_command = ["ip", "netns", "exec", NETNS, "nft"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let p = proxy::Proxy::new(cfg);
    let mut info = p.subscribe();
    progress("starting the proxy");
    let started = Instant::now();
    let task = {
        let (p, s, e, c) = (
            p.clone(),
            svc_inf.clone(),
            slice_inf.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move { p.run(s, e, c).await })
    };
    let full = tokio::time::timeout(
        Duration::from_secs(120),
        info.wait_for(|i| i.generation >= 1),
    )
    .await
    .map_err(|_| BenchError::Unexpected("the proxy did not program the table in 120 s".into()))?
    .map_err(|_| BenchError::Unexpected("the proxy stopped".into()))?
    .clone();
    let scratch = started.elapsed();
    report.figures.push(Figure::at_most(
        format!(
            "{} Services × {} endpoints programmed from scratch",
            plan.services, plan.endpoints
        ),
        format!(
            "{} ms (nft transaction {} ms)",
            ms(scratch),
            ms(full.duration)
        ),
        scratch.as_secs_f64(),
        2.0,
        "≤ 2 s",
    ));
    let listing = StdCommand::new("ip")
        .args([
            "netns",
            "exec",
            NETNS,
            "nft",
            "list",
            "map",
            "ip",
            "r8s",
            "ip-backends",
        ])
        .output()
        .map_err(|e| BenchError::io("nft list", e))?;
    let programmed = String::from_utf8_lossy(&listing.stdout)
        .matches(" . 8080")
        .count();
    report.figures.push(Figure::info(
        "endpoint entries in the kernel after the full sync",
        format!("{programmed} (expected {})", plan.services * plan.endpoints),
    ));

    progress(&format!(
        "{} endpoint changes through the API",
        plan.changes
    ));
    let mut e2e = Vec::with_capacity(plan.changes);
    let mut own = Vec::with_capacity(plan.changes);
    let pp = PatchParams::apply("bench").force();
    let mut generations: HashMap<usize, usize> = HashMap::new();
    for k in 0..plan.changes {
        let i = (k * 7919) % plan.services;
        let g = generations.entry(i).or_insert(0);
        *g += 1;
        let body = slice_body(i, plan.endpoints, *g);
        let want: std::net::SocketAddrV4 = format!("{}:8080", endpoint_ip(i, 0, *g))
            .parse()
            .map_err(|e| BenchError::Unexpected(format!("{e}")))?;
        let key = format!("{NS}/svc-{i}");
        let t0 = Instant::now();
        slices
            .patch(&format!("svc-{i}"), &pp, &Patch::Apply(&body))
            .await
            .map_err(kube_err("updating an EndpointSlice"))?;
        let seen = tokio::time::timeout(
            Duration::from_secs(10),
            info.wait_for(|_| p.backends(&key, "http").contains(&want)),
        )
        .await;
        let took = match seen {
            Ok(Ok(i)) => i.took,
            _ => {
                return Err(BenchError::Unexpected(format!(
                    "change {k} of {key} not programmed within 10 s"
                )));
            }
        };
        e2e.push(t0.elapsed());
        own.push(took);
    }
    shutdown.cancel();
    let _ = task.await;
    if let Some(s) = Summary::of(e2e) {
        report.figures.push(Figure::at_most(
            format!(
                "endpoint change → programmed, through the API, among {} Services (p99 of {})",
                plan.services, s.count
            ),
            format!(
                "p50 {} ms, p99 {} ms, max {} ms",
                ms(s.p50),
                ms(s.p99),
                ms(s.max)
            ),
            s.p99.as_secs_f64() * 1000.0,
            200.0,
            "p99 ≤ 200 ms",
        ));
    }
    if let Some(s) = Summary::of(own) {
        report.figures.push(Figure::at_most(
            format!(
                "one change among {} Services applied by the proxy",
                plan.services
            ),
            format!(
                "p50 {} ms, p99 {} ms, max {} ms",
                ms(s.p50),
                ms(s.p99),
                ms(s.max)
            ),
            s.p99.as_secs_f64() * 1000.0,
            50.0,
            "≤ 50 ms",
        ));
    }
    Ok(())
}
