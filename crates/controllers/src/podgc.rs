//! The pod garbage collector (upstream `pkg/controller/podgc`,
//! "pod-garbage-collector-controller"). Every [`GC_CHECK_PERIOD`] it force-deletes (grace 0,
//! after marking them Failed):
//! - terminated pods beyond `--terminated-pod-gc-threshold`, evicted then oldest first;
//! - terminating pods on a not-Ready node with the `node.kubernetes.io/out-of-service` taint;
//! - pods bound to a node that no longer exists, once it has been missing for
//!   [`QUARANTINE_TIME`] and a GET confirms it (condition `DisruptionTarget`, reason
//!   `DeletionByPodGC`);
//! - terminating pods never scheduled.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use informers::Informer;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use tokio::time::Instant;

use crate::Context;
use crate::util::{pod_node, pod_phase};

/// The controller's name.
pub const NAME: &str = "pod-garbage-collector-controller";
/// How often pods are collected (upstream `gcCheckPeriod`).
pub const GC_CHECK_PERIOD: Duration = Duration::from_secs(20);
/// How long a node must be missing before its pods are deleted (upstream `quarantineTime`).
pub const QUARANTINE_TIME: Duration = Duration::from_secs(40);
/// `node.kubernetes.io/out-of-service`.
pub const TAINT_NODE_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";
/// Concurrent deletions.
const CONCURRENCY: usize = 16;

/// Timing of the collector (upstream constants; shorter in tests).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How often pods are collected.
    pub check_period: Duration,
    /// How long a node must be missing.
    pub quarantine: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            check_period: GC_CHECK_PERIOD,
            quarantine: QUARANTINE_TIME,
        }
    }
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    run_with(ctx, Timing::default()).await;
}

/// Runs the controller with the given timing until shutdown.
pub async fn run_with(ctx: Arc<Context>, timing: Timing) {
    let pods = ctx.factory.informer::<Pod>();
    let nodes = ctx.factory.informer::<Node>();
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        _ = async { pods.wait_synced().await; nodes.wait_synced().await } => {}
    }
    let mut gc = PodGc {
        client: ctx.client.clone(),
        pods,
        nodes,
        threshold: ctx.config.terminated_pod_gc_threshold,
        timing,
        missing_since: HashMap::new(),
    };
    let mut tick = tokio::time::interval(timing.check_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = tick.tick() => gc.gc().await,
        }
    }
}

struct PodGc {
    client: kube::Client,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    threshold: usize,
    timing: Timing,
    /// Nodes pods are bound to that do not exist, with when they were first found missing
    /// (upstream `nodeQueue`).
    missing_since: HashMap<String, Instant>,
}

fn is_terminated(pod: &Pod) -> bool {
    matches!(pod_phase(pod), "Succeeded" | "Failed")
}

fn is_evicted(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

/// Upstream `byEvictionAndCreationTimestamp`: evicted pods first, then the oldest.
fn eviction_then_age(a: &Pod, b: &Pod) -> Ordering {
    is_evicted(b)
        .cmp(&is_evicted(a))
        .then_with(|| {
            let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(a).cmp(&t(b))
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The terminated pods to delete to keep `threshold` (upstream `gcTerminated`).
pub fn terminated_to_delete(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    let mut terminated: Vec<Arc<Pod>> = pods.iter().filter(|p| is_terminated(p)).cloned().collect();
    if terminated.len() <= threshold {
        return Vec::new();
    }
    let n = terminated.len() - threshold;
    terminated.sort_by(|a, b| eviction_then_age(a, b));
    terminated.truncate(n);
    terminated
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

impl PodGc {
    async fn gc(&mut self) {
        let pods = self.pods.list();
        if self.threshold > 0 {
            let victims = terminated_to_delete(&pods, self.threshold);
            if !victims.is_empty() {
                tracing::info!(count = victims.len(), "Garbage collecting pods");
                self.delete_all(victims, None).await;
            }
        }
        self.gc_terminating(&pods).await;
        self.gc_orphaned(&pods).await;
        self.gc_unscheduled_terminating(&pods).await;
    }

    /// Upstream `gcTerminating`: terminating pods on out-of-service, not-Ready nodes.
    async fn gc_terminating(&self, pods: &[Arc<Pod>]) {
        let victims: Vec<Arc<Pod>> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some() && !pod_node(p).is_empty())
            .filter(|p| {
                self.nodes.get("", pod_node(p)).is_some_and(|n| {
                    !node_ready(&n)
                        && n.spec
                            .as_ref()
                            .and_then(|s| s.taints.as_ref())
                            .is_some_and(|t| t.iter().any(|t| t.key == TAINT_NODE_OUT_OF_SERVICE))
                })
            })
            .cloned()
            .collect();
        if !victims.is_empty() {
            tracing::info!(
                count = victims.len(),
                "Garbage collecting pods that are terminating on node tainted with node.kubernetes.io/out-of-service"
            );
            self.delete_all(victims, None).await;
        }
    }

    /// Upstream `gcOrphaned`: pods bound to nodes missing for the quarantine time and
    /// confirmed absent.
    async fn gc_orphaned(&mut self, pods: &[Arc<Pod>]) {
        let now = Instant::now();
        let mut missing: HashSet<String> = HashSet::new();
        for p in pods {
            let n = pod_node(p);
            if !n.is_empty() && self.nodes.get("", n).is_none() {
                missing.insert(n.to_string());
            }
        }
        self.missing_since.retain(|n, _| missing.contains(n));
        for n in &missing {
            self.missing_since.entry(n.clone()).or_insert(now);
        }
        let due: Vec<String> = self
            .missing_since
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= self.timing.quarantine)
            .map(|(n, _)| n.clone())
            .collect();
        let api: Api<Node> = Api::all(self.client.clone());
        let mut deleted: HashSet<String> = HashSet::new();
        for n in due {
            match api.get_opt(&n).await {
                Ok(None) => {
                    self.missing_since.remove(&n);
                    deleted.insert(n);
                }
                Ok(Some(_)) => {
                    self.missing_since.remove(&n);
                }
                Err(e) => {
                    tracing::info!(node = %n, error = %e, "error while getting node");
                }
            }
        }
        if deleted.is_empty() {
            return;
        }
        let victims: Vec<Arc<Pod>> = pods
            .iter()
            .filter(|p| deleted.contains(pod_node(p)))
            .cloned()
            .collect();
        tracing::info!(
            count = victims.len(),
            "Found orphaned Pods assigned to deleted Nodes, deleting"
        );
        self.delete_all(
            victims,
            Some(("DeletionByPodGC", "PodGC: node no longer exists")),
        )
        .await;
    }

    /// Upstream `gcUnscheduledTerminating`.
    async fn gc_unscheduled_terminating(&self, pods: &[Arc<Pod>]) {
        let victims: Vec<Arc<Pod>> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some() && pod_node(p).is_empty())
            .cloned()
            .collect();
        if !victims.is_empty() {
            self.delete_all(victims, None).await;
        }
    }

    async fn delete_all(&self, pods: Vec<Arc<Pod>>, condition: Option<(&str, &str)>) {
        futures::stream::iter(pods)
            .for_each_concurrent(CONCURRENCY, |p| async move {
                if let Err(e) = self.mark_failed_and_delete(&p, condition).await {
                    tracing::info!(pod = %informers::key_of(p.as_ref()), error = %e, "failed to delete pod");
                }
            })
            .await;
    }

    /// Upstream `markFailedAndDeletePodWithCondition`: the pod is marked Failed (with the
    /// condition) unless terminal, then force-deleted.
    async fn mark_failed_and_delete(
        &self,
        pod: &Pod,
        condition: Option<(&str, &str)>,
    ) -> Result<(), kube::Error> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        tracing::info!(pod = %format!("{ns}/{name}"), "PodGC is force deleting Pod");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        if !is_terminated(pod) {
            let mut status = serde_json::json!({"phase": "Failed"});
            if let Some((reason, message)) = condition {
                status["conditions"] = serde_json::json!([{
                    "type": "DisruptionTarget", "status": "True",
                    "reason": reason, "message": message,
                    "lastTransitionTime": Timestamp::now().to_string(),
                }]);
            }
            let patch =
                serde_json::json!({"metadata": {"uid": pod.metadata.uid}, "status": status});
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pod(name: &str, phase: &str, created: i64, evicted: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "creationTimestamp": Timestamp::from_second(created).unwrap().to_string()},
                "status": {"phase": phase, "reason": if evicted { "Evicted" } else { "" }}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn terminated_pods_beyond_threshold_evicted_then_oldest() {
        let pods = vec![
            pod("new", "Succeeded", 300, false),
            pod("old", "Failed", 100, false),
            pod("running", "Running", 50, false),
            pod("evicted", "Failed", 200, true),
            pod("mid", "Succeeded", 150, false),
        ];
        let names: Vec<String> = terminated_to_delete(&pods, 2)
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["evicted", "old"]);
        assert!(terminated_to_delete(&pods, 4).is_empty());
    }
}
