//! kube-scheduler for r8s: watches pods and nodes through the shared informers, keeps a
//! scheduling queue (activeQ by priority, backoffQ, unschedulable pods moved back on cluster
//! events) and a cache of nodes with their assigned and assumed pods, runs the default
//! filter and score plugins of upstream kube-scheduler v1.35 (NodeUnschedulable, NodeName,
//! TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit, PodTopologySpread,
//! InterPodAffinity; LeastAllocated, BalancedAllocation), binds asynchronously, and reports
//! `Scheduled` / `FailedScheduling` events and the PodScheduled condition with upstream's
//! messages.
//!
//! Start with [`run`]. The plugins are pure functions in [`plugins`]; one scheduling cycle
//! without I/O is [`algorithm::Algorithm::schedule`].

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub mod algorithm;
pub mod cache;
pub mod framework;
pub mod plugins;
pub mod quantity;
pub mod queue;
pub mod resources;
mod scheduler;
pub mod types;

#[cfg(test)]
mod testutil;

pub use scheduler::{is_assigned, is_terminal, node_update_plugins, responsible};

/// Scheduler configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The name pods select with `spec.schedulerName` ("default-scheduler").
    pub scheduler_name: String,
    /// percentageOfNodesToScore; `None` is upstream's adaptive percentage (50% minus 1% per
    /// 125 nodes, at least 5%, at least 100 nodes).
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Bindings in flight at most.
    pub bind_concurrency: usize,
    /// Back-off after the first failed attempt (1 s), doubled per attempt.
    pub pod_initial_backoff: Duration,
    /// Longest back-off (10 s).
    pub pod_max_backoff: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            scheduler_name: "default-scheduler".to_string(),
            percentage_of_nodes_to_score: None,
            bind_concurrency: 64,
            pod_initial_backoff: Duration::from_secs(1),
            pod_max_backoff: Duration::from_secs(10),
        }
    }
}

/// Runs the scheduler until `shutdown`: waits for the pod and node informers of `factory`
/// to sync, then schedules every pending pod whose `schedulerName` is
/// `config.scheduler_name`.
pub async fn run(
    client: kube::Client,
    factory: Arc<informers::Factory>,
    config: Config,
    shutdown: CancellationToken,
) {
    scheduler::run(client, factory, config, shutdown).await;
}
