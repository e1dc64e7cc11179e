//! The controllers of r8s, each matching its kube-controller-manager counterpart. They run
//! inside `r8s server` and talk to the API server only through kube-rs, sharing one set of
//! informers ([`informers::Factory`]).
//!
//! Each module exposes `run(ctx)`, which runs its controller until `ctx.shutdown`.

pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod garbagecollector;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;
pub mod serviceaccount;
pub mod servicelb;
pub mod util;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Controller settings (kube-controller-manager's flags of the same names).
#[derive(Debug, Clone)]
pub struct Config {
    /// `--cluster-cidr`: the range node pod CIDRs are carved from.
    pub cluster_cidr: String,
    /// `--node-cidr-mask-size`: the prefix length of each node's pod CIDR.
    pub node_cidr_mask_size: u8,
    /// `--node-monitor-period`: how often node health is checked.
    pub node_monitor_period: Duration,
    /// `--node-monitor-grace-period`: how long a node may go without a heartbeat before its
    /// Ready condition becomes Unknown.
    pub node_monitor_grace_period: Duration,
    /// `--node-startup-grace-period`: the same, for a node that never posted Ready.
    pub node_startup_grace_period: Duration,
    /// `--terminated-pod-gc-threshold`: terminated pods kept before pod GC deletes the oldest.
    pub terminated_pod_gc_threshold: usize,
    /// Controllers not to run, by name (e.g. `replicaset-controller`).
    pub disabled: HashSet<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster_cidr: "10.42.0.0/16".into(),
            node_cidr_mask_size: 24,
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(50),
            node_startup_grace_period: Duration::from_secs(60),
            terminated_pod_gc_threshold: 12500,
            disabled: HashSet::new(),
        }
    }
}

/// What every controller gets.
pub struct Context {
    /// The API client.
    pub client: kube::Client,
    /// Shared informers.
    pub factory: Arc<informers::Factory>,
    /// Settings.
    pub config: Config,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
}

/// The names of all controllers, as kube-controller-manager names them.
pub const CONTROLLERS: &[&str] = &[
    "replicaset-controller",
    "deployment-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "node-ipam-controller",
    "pod-garbage-collector-controller",
    "node-lifecycle-controller",
    "service-lb-controller",
];

/// Starts every controller not disabled; they stop at `ctx.shutdown`.
pub fn start(ctx: Arc<Context>) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for &name in CONTROLLERS {
        if ctx.config.disabled.contains(name) {
            continue;
        }
        let c = ctx.clone();
        match name {
            "replicaset-controller" => set.spawn(replicaset::run(c)),
            "deployment-controller" => set.spawn(deployment::run(c)),
            "garbage-collector-controller" => set.spawn(garbagecollector::run(c)),
            "namespace-controller" => set.spawn(namespace::run(c)),
            "serviceaccount-controller" => set.spawn(serviceaccount::run(c)),
            "endpoints-controller" => set.spawn(endpoints::run(c)),
            "endpointslice-controller" => set.spawn(endpointslice::run(c)),
            "node-ipam-controller" => set.spawn(nodeipam::run(c)),
            "pod-garbage-collector-controller" => set.spawn(podgc::run(c)),
            "node-lifecycle-controller" => set.spawn(nodelifecycle::run(c)),
            "service-lb-controller" => set.spawn(servicelb::run(c)),
            _ => continue,
        };
    }
    set
}
