//! kube-scheduler for r8s.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Scheduler configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The scheduler name pods select with `spec.schedulerName`.
    pub scheduler_name: String,
    /// Percentage of nodes to score; `None` = upstream adaptive.
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Bindings in flight at most.
    pub bind_concurrency: usize,
    /// First back-off of a pod that failed.
    pub pod_initial_backoff: Duration,
    /// Longest back-off.
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

/// Runs the scheduler until `shutdown`.
pub async fn run(
    client: kube::Client,
    factory: Arc<informers::Factory>,
    config: Config,
    shutdown: CancellationToken,
) {
    let _ = (client, factory, config);
    shutdown.cancelled().await;
}
