//! Taint-based eviction (upstream `pkg/controller/tainteviction`,
//! "taint-eviction-controller"): a pod on a node with `NoExecute` taints it does not tolerate is
//! deleted at once; one tolerating them for `tolerationSeconds` is deleted when the shortest
//! runs out, unless the taints go away first. Before the deletion the pod gets the
//! `DisruptionTarget` condition (reason `DeletionByTaintManager`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use informers::workqueue::{Requeue, run_workers};
use informers::{Event, EventType, Informer, Recorder, WorkQueue, key_of};
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use parking_lot::Mutex;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::POD_NODE_INDEX;
use super::taints::{matching_tolerations, min_toleration_seconds, no_execute_taints};
use crate::util::pod_node;

/// The controller's name (event source component).
pub const NAME: &str = "taint-eviction-controller";
/// Concurrent deletions (upstream `UpdateWorkerSize`).
const WORKERS: usize = 8;

/// A deletion error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

struct Scheduled {
    id: u64,
    created: Instant,
    timer: AbortHandle,
}

/// The taint eviction controller.
pub struct TaintEviction {
    client: kube::Client,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    scheduled: Mutex<HashMap<String, Scheduled>>,
    next_id: std::sync::atomic::AtomicU64,
    deletions: WorkQueue<String>,
    recorder: Recorder,
    shutdown: CancellationToken,
}

fn no_execute_set(node: &Node) -> Vec<(String, Option<String>)> {
    let mut v: Vec<_> = no_execute_taints(node)
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect();
    v.sort();
    v
}

impl TaintEviction {
    /// A controller over the shared informers (the pod informer must have [`POD_NODE_INDEX`]).
    pub fn new(
        client: kube::Client,
        pods: Informer<Pod>,
        nodes: Informer<Node>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            recorder: Recorder::new(client.clone(), NAME, None, shutdown.clone()),
            client,
            pods,
            nodes,
            scheduled: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(0),
            deletions: WorkQueue::new(shutdown.clone()),
            shutdown,
        })
    }

    /// Runs until shutdown.
    pub async fn run(self: Arc<Self>) {
        let mut pod_events = self.pods.subscribe();
        let mut node_events = self.nodes.subscribe();
        tokio::select! {
            _ = self.shutdown.cancelled() => return,
            _ = async { self.pods.wait_synced().await; self.nodes.wait_synced().await } => {}
        }
        let handler = self.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    ev = node_events.recv() => match ev {
                        Some(ev) => handler.on_node(ev),
                        None => return,
                    },
                    ev = pod_events.recv() => match ev {
                        Some(ev) => handler.on_pod(ev),
                        None => return,
                    },
                }
            }
        });
        let w = self.clone();
        run_workers(self.deletions.clone(), WORKERS, NAME, move |key: String| {
            let w = w.clone();
            async move { w.delete_pod(&key).await }
        })
        .await;
    }

    fn on_node(self: &Arc<Self>, ev: Event<Node>) {
        let (name, taints) = match &ev {
            Event::Added(n) => {
                let t = no_execute_taints(n);
                if t.is_empty() {
                    return;
                }
                (n.metadata.name.clone().unwrap_or_default(), t)
            }
            Event::Updated(old, new) => {
                if no_execute_set(old) == no_execute_set(new) {
                    return;
                }
                (
                    new.metadata.name.clone().unwrap_or_default(),
                    no_execute_taints(new),
                )
            }
            Event::Deleted(n) => (n.metadata.name.clone().unwrap_or_default(), Vec::new()),
        };
        let now = Instant::now();
        for pod in self.pods.by_index(POD_NODE_INDEX, &name) {
            self.process_pod(&pod, &taints, now);
        }
    }

    fn on_pod(self: &Arc<Self>, ev: Event<Pod>) {
        match ev {
            Event::Added(p) => {
                if pod_node(&p).is_empty() {
                    return;
                }
                let Some(node) = self.nodes.get("", pod_node(&p)) else {
                    return;
                };
                let taints = no_execute_taints(&node);
                if taints.is_empty() {
                    return;
                }
                self.process_pod(&p, &taints, Instant::now());
            }
            Event::Updated(old, new) => {
                let same_tolerations = old.spec.as_ref().map(|s| &s.tolerations)
                    == new.spec.as_ref().map(|s| &s.tolerations);
                if same_tolerations && pod_node(&old) == pod_node(&new) {
                    return;
                }
                let taints = self
                    .nodes
                    .get("", pod_node(&new))
                    .map(|n| no_execute_taints(&n))
                    .unwrap_or_default();
                self.process_pod(&new, &taints, Instant::now());
            }
            Event::Deleted(p) => self.cancel(&key_of(p.as_ref()), false),
        }
    }

    /// Upstream `processPodOnNode`.
    fn process_pod(self: &Arc<Self>, pod: &Pod, taints: &[Taint], now: Instant) {
        let key = key_of(pod);
        if taints.is_empty() {
            self.cancel(&key, true);
            return;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            // Already going away; a deletion would change nothing.
            self.cancel(&key, false);
            return;
        }
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or(&[]);
        let (all, used) = matching_tolerations(taints, tolerations);
        if !all {
            tracing::debug!(pod = %key, "not all taints are tolerated after update for pod on node");
            self.cancel(&key, true);
            self.schedule(key, now, now);
            return;
        }
        let Some(secs) = min_toleration_seconds(&used) else {
            tracing::debug!(pod = %key, "new tolerations for pod tolerate forever");
            self.cancel(&key, true);
            return;
        };
        let wait = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        let mut created = now;
        let trigger = now + wait;
        let existing = self.scheduled.lock().get(&key).map(|s| s.created);
        if let Some(c) = existing {
            created = c;
            if c + wait < trigger {
                return;
            }
            self.cancel(&key, true);
        }
        self.schedule(key, created, created + wait);
    }

    fn schedule(self: &Arc<Self>, key: String, created: Instant, fire: Instant) {
        let q = self.deletions.clone();
        let this = Arc::downgrade(self);
        let k = key.clone();
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let timer = tokio::spawn(async move {
            tokio::time::sleep_until(fire).await;
            if let Some(this) = this.upgrade() {
                let mut s = this.scheduled.lock();
                if s.get(&k).is_some_and(|e| e.id == id) {
                    s.remove(&k);
                }
            }
            q.add(k);
        })
        .abort_handle();
        if let Some(old) = self
            .scheduled
            .lock()
            .insert(key, Scheduled { id, created, timer })
        {
            old.timer.abort();
        }
    }

    /// Upstream `cancelWorkWithEvent`.
    fn cancel(&self, key: &str, event: bool) {
        let Some(s) = self.scheduled.lock().remove(key) else {
            return;
        };
        s.timer.abort();
        if event
            && let Some((ns, name)) = key.split_once('/')
            && let Some(pod) = self.pods.get(ns, name)
        {
            self.recorder.event(
                pod.as_ref(),
                EventType::Normal,
                "TaintManagerEviction",
                format!("Cancelling deletion of Pod {key}"),
            );
        }
    }

    /// Upstream `deletePodHandler` + `addConditionAndDeletePod`.
    async fn delete_pod(&self, key: &str) -> Result<Requeue, Error> {
        let Some((ns, name)) = key.split_once('/') else {
            return Ok(Requeue::No);
        };
        let Some(pod) = self.pods.get(ns, name) else {
            return Ok(Requeue::No);
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::No);
        }
        self.recorder.event(
            pod.as_ref(),
            EventType::Normal,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {key}"),
        );
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let has_condition = crate::util::pod_condition(&pod, "DisruptionTarget").is_some_and(|c| {
            c.status == "True" && c.reason.as_deref() == Some("DeletionByTaintManager")
        });
        if !has_condition {
            let patch = serde_json::json!({
                "metadata": {"uid": pod.metadata.uid},
                "status": {"conditions": [{
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "DeletionByTaintManager",
                    "message": "Taint manager: deleting due to NoExecute taint",
                    "lastTransitionTime": Timestamp::now().to_string(),
                }]}
            });
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Requeue::No),
                Err(e) => return Err(e.into()),
            }
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => Ok(Requeue::No),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(Requeue::No),
            Err(e) => Err(e.into()),
        }
    }
}
