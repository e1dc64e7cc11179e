//! The scheduling loop: informer events update the cache and the queue; each popped pod
//! goes through one scheduling cycle; the chosen node is charged at once (assume) and the
//! binding is posted asynchronously, with bounded concurrency. One task owns the cache and
//! the queue, so they need no locks.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Binding, Namespace, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use informers::{Event, EventType, Informer, Recorder};

use crate::Config;
use crate::algorithm::{Algorithm, ScheduleError, preemption_message};
use crate::cache::Cache;
use crate::framework::{Plugin, PluginSet, truncate_message};
use crate::plugins::inter_pod_affinity::Namespaces;
use crate::queue::{QueuedPod, SchedulingQueue};
use crate::types::{PodInfo, pod_key};

/// Plugins a new assigned pod may help (pod affinity, spreading).
const ASSIGNED_POD_ADD: PluginSet = Plugin::InterPodAffinity
    .bit()
    .union(Plugin::PodTopologySpread.bit());
/// Plugins a deleted (or terminated) assigned pod may help.
const ASSIGNED_POD_DELETE: PluginSet = Plugin::NodeResourcesFit
    .bit()
    .union(Plugin::NodePorts.bit())
    .union(Plugin::InterPodAffinity.bit())
    .union(Plugin::PodTopologySpread.bit());

/// Whether the pod is bound to a node.
pub fn is_assigned(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// Whether the pod has finished (Succeeded or Failed).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether `scheduler_name` schedules the pod (an empty schedulerName is the default one).
pub fn responsible(pod: &Pod, scheduler_name: &str) -> bool {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or("default-scheduler");
    name == scheduler_name
}

fn is_gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

fn node_allocatable(
    n: &Node,
) -> Option<
    &std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
> {
    n.status.as_ref().and_then(|s| s.allocatable.as_ref())
}

fn node_taints(n: &Node) -> &[k8s_openapi::api::core::v1::Taint] {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

/// The plugins a node update may help (upstream's node update event types).
pub fn node_update_plugins(old: &Node, new: &Node) -> PluginSet {
    let mut set = PluginSet::EMPTY;
    if node_allocatable(old) != node_allocatable(new) {
        set = set.union(Plugin::NodeResourcesFit.bit());
    }
    if old.metadata.labels != new.metadata.labels {
        set = set
            .union(Plugin::NodeAffinity.bit())
            .union(Plugin::PodTopologySpread.bit())
            .union(Plugin::InterPodAffinity.bit());
    }
    if node_taints(old) != node_taints(new) {
        set = set
            .union(Plugin::TaintToleration.bit())
            .union(Plugin::PodTopologySpread.bit());
    }
    let unsched = |n: &Node| {
        n.spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false)
    };
    if unsched(old) != unsched(new) {
        set = set
            .union(Plugin::NodeUnschedulable.bit())
            .union(Plugin::TaintToleration.bit());
    }
    set
}

struct BindFailure {
    qp: QueuedPod,
    message: String,
}

pub(crate) struct Scheduler {
    client: kube::Client,
    config: Config,
    cache: Cache,
    queue: SchedulingQueue,
    algo: Algorithm,
    recorder: Recorder,
    pods: Informer<Pod>,
    namespaces: Informer<Namespace>,
    bind_sem: Arc<Semaphore>,
    bind_tx: mpsc::UnboundedSender<BindFailure>,
    moves: PluginSet,
}

fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

pub(crate) async fn run(
    client: kube::Client,
    factory: Arc<informers::Factory>,
    config: Config,
    shutdown: CancellationToken,
) {
    let pods = factory.informer::<Pod>();
    let nodes = factory.informer::<Node>();
    let namespaces = factory.informer::<Namespace>();
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = async { pods.wait_synced().await; nodes.wait_synced().await } => {}
    }
    let mut node_rx = nodes.subscribe();
    let mut pod_rx = pods.subscribe();
    let (bind_tx, mut bind_rx) = mpsc::unbounded_channel();
    let recorder = Recorder::new(client.clone(), "default-scheduler", None, shutdown.clone());
    let mut s = Scheduler {
        client,
        cache: Cache::default(),
        queue: SchedulingQueue::new(config.pod_initial_backoff, config.pod_max_backoff),
        algo: Algorithm::new(config.percentage_of_nodes_to_score),
        recorder,
        pods,
        namespaces,
        bind_sem: Arc::new(Semaphore::new(config.bind_concurrency.max(1))),
        bind_tx,
        moves: PluginSet::EMPTY,
        config,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_flush = Instant::now();
    let mut since_yield = 0u32;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        // Apply every pending event before the next cycle.
        while let Ok(ev) = node_rx.try_recv() {
            s.on_node(ev);
        }
        while let Ok(ev) = pod_rx.try_recv() {
            s.on_pod(ev);
        }
        while let Ok(f) = bind_rx.try_recv() {
            s.on_bind_failure(f);
        }
        let now = Instant::now();
        if !s.moves.is_empty() {
            s.queue.move_for_event(s.moves, now);
            s.moves = PluginSet::EMPTY;
        }
        if now.duration_since(last_flush) >= Duration::from_secs(1) {
            s.queue.flush(now);
            last_flush = now;
        }
        if let Some(qp) = s.queue.pop() {
            s.schedule_one(qp);
            since_yield += 1;
            if since_yield >= 8 {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = node_rx.recv() => match ev {
                Some(ev) => s.on_node(ev),
                None => return,
            },
            ev = pod_rx.recv() => match ev {
                Some(ev) => s.on_pod(ev),
                None => return,
            },
            Some(f) = bind_rx.recv() => s.on_bind_failure(f),
            _ = tick.tick() => {}
        }
    }
}

impl Scheduler {
    fn on_node(&mut self, ev: Event<Node>) {
        match ev {
            Event::Added(n) => {
                self.cache.add_node(n);
                self.moves = PluginSet::ALL;
            }
            Event::Updated(old, new) => {
                let m = node_update_plugins(&old, &new);
                self.cache.add_node(new);
                self.moves = self.moves.union(m);
            }
            Event::Deleted(n) => {
                self.cache
                    .remove_node(n.metadata.name.as_deref().unwrap_or_default());
            }
        }
    }

    fn queue_pending(&mut self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        if self.cache.is_assumed(&key) {
            // Binding in flight: the assumed pod stays as it is.
            return;
        }
        if pod.metadata.deletion_timestamp.is_some()
            || is_terminal(&pod)
            || !responsible(&pod, &self.config.scheduler_name)
            || is_gated(&pod)
        {
            self.queue.delete(&key);
            return;
        }
        self.queue.update(pod, Instant::now());
    }

    fn on_pod(&mut self, ev: Event<Pod>) {
        match ev {
            Event::Added(p) => {
                if is_assigned(&p) {
                    self.queue.delete(&pod_key(&p));
                    if !is_terminal(&p) {
                        self.cache.add_pod(Arc::new(PodInfo::new(p)));
                        self.moves = self.moves.union(ASSIGNED_POD_ADD);
                    }
                } else {
                    self.queue_pending(p);
                }
            }
            Event::Updated(old, new) => {
                if is_assigned(&new) {
                    let key = pod_key(&new);
                    self.queue.delete(&key);
                    if is_terminal(&new) {
                        if self.cache.remove_pod(&key).is_some() {
                            self.moves = self.moves.union(ASSIGNED_POD_DELETE);
                        }
                        return;
                    }
                    let was_assigned = is_assigned(&old) && self.cache.contains_pod(&key);
                    let changed = old.metadata.labels != new.metadata.labels
                        || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
                        || old.spec != new.spec;
                    if was_assigned && !changed && !self.cache.is_assumed(&key) {
                        // Status-only change: the cached info stays, pointing at the new
                        // object (the old one is freed).
                        self.cache.refresh_pod(&key, new);
                        return;
                    }
                    self.cache.add_pod(Arc::new(PodInfo::new(new)));
                    self.moves = self.moves.union(if was_assigned {
                        ASSIGNED_POD_DELETE
                    } else {
                        ASSIGNED_POD_ADD
                    });
                } else {
                    self.queue_pending(new);
                }
            }
            Event::Deleted(p) => {
                let key = pod_key(&p);
                self.queue.delete(&key);
                if (is_assigned(&p) || !self.cache.is_assumed(&key))
                    && self.cache.remove_pod(&key).is_some()
                {
                    self.moves = self.moves.union(ASSIGNED_POD_DELETE);
                }
            }
        }
    }

    fn on_bind_failure(&mut self, f: BindFailure) {
        let BindFailure { mut qp, message } = f;
        self.cache.forget(&qp.key);
        self.moves = self.moves.union(ASSIGNED_POD_DELETE);
        let Some(latest) = self.pods.get_key(&informers::key_of(qp.pod.as_ref())) else {
            return;
        };
        if pod_key(&latest) != qp.key
            || is_assigned(&latest)
            || latest.metadata.deletion_timestamp.is_some()
        {
            return;
        }
        qp.pod = latest.clone();
        self.queue
            .add_failed(qp, PluginSet::EMPTY, true, Instant::now());
        self.report_failure(latest, "SchedulerError", message);
    }

    fn schedule_one(&mut self, qp: QueuedPod) {
        let pod = qp.pod.clone();
        let info = Arc::new(PodInfo::new(pod.clone()));
        let ns_obj = self.namespaces.get("", &info.namespace);
        let ns_labels = ns_obj.as_ref().and_then(|n| n.metadata.labels.as_ref());
        let nsinf = self.namespaces.clone();
        let select = move |sel: &LabelSelector| -> Vec<String> {
            let empty = std::collections::BTreeMap::new();
            nsinf
                .list()
                .iter()
                .filter(|n| {
                    informers::labels::selector_matches(
                        sel,
                        n.metadata.labels.as_ref().unwrap_or(&empty),
                    )
                })
                .filter_map(|n| n.metadata.name.clone())
                .collect()
        };
        let ns = Namespaces {
            incoming_labels: ns_labels,
            select: &select,
        };
        match self.algo.schedule(&mut self.cache, &info, &ns) {
            Ok(r) => {
                self.cache.assume(info, &r.node_name);
                self.bind(qp, r.node_name);
            }
            Err(mut e) => {
                if let ScheduleError::Fit(f) = &mut e {
                    match preemption_message(&self.cache, &info, f) {
                        Ok(m) => f.post_filter_msg = Some(m),
                        Err(node) => {
                            tracing::debug!(pod = %informers::key_of(pod.as_ref()), %node,
                                "preemption would help, but preemption is not implemented");
                        }
                    }
                }
                let message = e.message();
                self.queue
                    .add_failed(qp, e.plugins(), false, Instant::now());
                self.report_failure(pod, "Unschedulable", message);
            }
        }
    }

    fn bind(&self, qp: QueuedPod, node: String) {
        let sem = self.bind_sem.clone();
        let client = self.client.clone();
        let tx = self.bind_tx.clone();
        let rec = self.recorder.clone();
        tokio::spawn(async move {
            let Ok(_permit) = sem.acquire_owned().await else {
                return;
            };
            let pod = qp.pod.clone();
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let binding = Binding {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    uid: pod.metadata.uid.clone(),
                    ..Default::default()
                },
                target: ObjectReference {
                    kind: Some("Node".into()),
                    name: Some(node.clone()),
                    ..Default::default()
                },
            };
            let api: Api<Pod> = Api::namespaced(client, &ns);
            match api
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    &name,
                    &PostParams::default(),
                    &binding,
                )
                .await
            {
                Ok(_) => rec.event(
                    pod.as_ref(),
                    EventType::Normal,
                    "Scheduled",
                    format!("Successfully assigned {ns}/{name} to {node}"),
                ),
                Err(e) => {
                    let message = error_message(&e);
                    tracing::debug!(pod = %format!("{ns}/{name}"), %node, error = %message, "binding failed");
                    let _ = tx.send(BindFailure { qp, message });
                }
            }
        });
    }

    /// Records FailedScheduling and sets the PodScheduled condition (if it changed).
    fn report_failure(&self, pod: Arc<Pod>, reason: &'static str, message: String) {
        let message = truncate_message(&message);
        self.recorder.event(
            pod.as_ref(),
            EventType::Warning,
            "FailedScheduling",
            message.clone(),
        );
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
        if current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message.as_str())
        }) {
            return;
        }
        let transition = match current {
            Some(c) if c.status == "False" => c
                .last_transition_time
                .clone()
                .unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now())),
            _ => Time(k8s_openapi::jiff::Timestamp::now()),
        };
        let mut cond = serde_json::json!({
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": null,
            "lastTransitionTime": transition,
            "reason": reason,
            "message": message,
        });
        if let Some(g) = pod.metadata.generation {
            cond["observedGeneration"] = serde_json::json!(g);
        }
        let patch = serde_json::json!({"status": {"conditions": [cond]}});
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        tokio::spawn(async move {
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                tracing::debug!(pod = %name, error = %e, "updating the PodScheduled condition failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod, taint, with_taints};

    #[test]
    fn node_updates_map_to_the_plugins_they_may_help() {
        let base = node("n", &[("zone", "a")], "4", "8Gi", "110");
        assert!(node_update_plugins(&base, &base).is_empty());
        let mut status_only = base.clone();
        status_only.status.as_mut().unwrap().phase = Some("Running".into());
        assert!(node_update_plugins(&base, &status_only).is_empty());
        let bigger = node("n", &[("zone", "a")], "8", "8Gi", "110");
        assert_eq!(
            node_update_plugins(&base, &bigger),
            Plugin::NodeResourcesFit.bit()
        );
        let tainted = with_taints(base.clone(), vec![taint("k", "", "NoSchedule")]);
        assert!(node_update_plugins(&base, &tainted).intersects(Plugin::TaintToleration.bit()));
        let relabeled = node("n", &[("zone", "b")], "4", "8Gi", "110");
        let m = node_update_plugins(&base, &relabeled);
        assert!(m.intersects(Plugin::NodeAffinity.bit()));
        assert!(!m.intersects(Plugin::NodeResourcesFit.bit()));
        let mut cordoned = base.clone();
        cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
        assert!(node_update_plugins(&base, &cordoned).intersects(Plugin::NodeUnschedulable.bit()));
    }

    #[test]
    fn responsibility_and_pod_states() {
        let mut p = pod("p", &[], &[]);
        assert!(responsible(&p, "default-scheduler"));
        p.spec.as_mut().unwrap().scheduler_name = Some("other".into());
        assert!(!responsible(&p, "default-scheduler"));
        assert!(responsible(&p, "other"));
        assert!(!is_assigned(&p));
        p.spec.as_mut().unwrap().node_name = Some("n".into());
        assert!(is_assigned(&p));
        assert!(!is_terminal(&p));
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        assert!(is_terminal(&p));
        let mut gated = pod("g", &[], &[]);
        gated.spec.as_mut().unwrap().scheduling_gates =
            Some(vec![k8s_openapi::api::core::v1::PodSchedulingGate {
                name: "x".into(),
            }]);
        assert!(is_gated(&gated));
    }
}
