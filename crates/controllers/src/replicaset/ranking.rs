//! Which pods to delete first on scale-down: upstream `ActivePodsWithRanks`
//! (`pkg/controller/controller_utils.go`) and `getPodsToDelete`
//! (`pkg/controller/replicaset/replica_set.go`), with the v1.35 default feature gates
//! `PodDeletionCost` and `LogarithmicScaleDown` on.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::util::{is_pod_active, is_pod_ready, pod_condition, pod_node, pod_phase};

/// The annotation lowering a pod's deletion preference (`controller.kubernetes.io/pod-deletion-cost`).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod_phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
}

fn ready_time(pod: &Pod) -> Option<Timestamp> {
    if !is_pod_ready(pod) {
        return None;
    }
    pod_condition(pod, "Ready").and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

fn creation_time(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Upstream `afterOrZero`: whether t1 is after t2, a missing time counting as after any.
fn after_or_zero(t1: Option<Timestamp>, t2: Option<Timestamp>) -> bool {
    match (t1, t2) {
        (Some(a), Some(b)) => a > b,
        (a, _) => a.is_none(),
    }
}

/// Upstream `logarithmicRankDiff`: compares the log2 of the ages (in nanoseconds).
fn log_rank_diff(t1: Timestamp, t2: Timestamp, now: Timestamp) -> i64 {
    let rank = |t: Timestamp| {
        let d = now.as_nanosecond() - t.as_nanosecond();
        if d > 0 {
            // Truncation toward zero, as Go's int64(math.Log2(..)).
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
            let r = (d as f64).log2() as i64;
            r
        } else {
            -1
        }
    };
    rank(t1) - rank(t2)
}

fn max_restarts(pod: &Pod) -> (i32, i32) {
    let Some(st) = pod.status.as_ref() else {
        return (0, 0);
    };
    let regular = st
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
        .max(0);
    let sidecars: HashSet<&str> = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let sidecar = st
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| sidecars.contains(c.name.as_str()))
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
        .max(0);
    (regular, sidecar)
}

/// Upstream `ActivePodsWithRanks.Less`: whether `a` should be deleted before `b`.
fn less(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> bool {
    // 1. Unassigned < assigned.
    let (na, nb) = (pod_node(a), pod_node(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    // 2. Pending < Unknown < Running.
    let (pa, pb) = (phase_ordinal(a), phase_ordinal(b));
    if pa != pb {
        return pa < pb;
    }
    // 3. Not ready < ready.
    let (ra, rb) = (is_pod_ready(a), is_pod_ready(b));
    if ra != rb {
        return !ra;
    }
    // 4. Lower deletion cost < higher.
    let (ca, cb) = (deletion_cost(a), deletion_cost(b));
    if ca != cb {
        return ca < cb;
    }
    // 5. Doubled up (more related pods on the same node) < not doubled up.
    if rank_a != rank_b {
        return rank_a > rank_b;
    }
    let uid_less =
        || a.metadata.uid.as_deref().unwrap_or("") < b.metadata.uid.as_deref().unwrap_or("");
    // 6. Ready for a shorter time < longer (logarithmic buckets).
    if ra && rb {
        let (ta, tb) = (ready_time(a), ready_time(b));
        if ta != tb {
            return match (ta, tb) {
                (Some(x), Some(y)) => {
                    let d = log_rank_diff(x, y, now);
                    if d == 0 { uid_less() } else { d < 0 }
                }
                _ => after_or_zero(ta, tb),
            };
        }
    }
    // 7. More container restarts < fewer (regular containers, then sidecars).
    let (xa, xb) = (max_restarts(a), max_restarts(b));
    if xa.0 != xb.0 {
        return xa.0 > xb.0;
    }
    if xa.1 != xb.1 {
        return xa.1 > xb.1;
    }
    // 8. Newer < older (logarithmic buckets), missing creation time first.
    let (ta, tb) = (creation_time(a), creation_time(b));
    if ta != tb {
        return match (ta, tb) {
            (Some(x), Some(y)) => {
                let d = log_rank_diff(x, y, now);
                if d == 0 { uid_less() } else { d < 0 }
            }
            _ => after_or_zero(ta, tb),
        };
    }
    false
}

/// Upstream `getPodsToDelete`: the `diff` pods of `pods` to delete first, ranking pods that
/// share a node with more `related` pods (pods of every ReplicaSet of the same owner) first.
pub fn pods_to_delete(mut pods: Vec<Arc<Pod>>, related: &[Arc<Pod>], diff: usize) -> Vec<Arc<Pod>> {
    if diff < pods.len() {
        let mut on_node: HashMap<&str, usize> = HashMap::new();
        for p in related {
            if is_pod_active(p) {
                *on_node.entry(pod_node(p)).or_default() += 1;
            }
        }
        let now = Timestamp::now();
        let mut ranked: Vec<(usize, Arc<Pod>)> = pods
            .drain(..)
            .map(|p| (on_node.get(pod_node(&p)).copied().unwrap_or(0), p))
            .collect();
        ranked.sort_by(|(ra, a), (rb, b)| {
            if less(a, *ra, b, *rb, now) {
                Ordering::Less
            } else if less(b, *rb, a, *ra, now) {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        });
        pods = ranked.into_iter().map(|(_, p)| p).collect();
    }
    pods.truncate(diff);
    pods
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    fn pod(name: &str, node: &str, phase: &str, ready: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(name.into()),
                creation_timestamp: Some(Time(Timestamp::now())),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(Timestamp::now())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn names(p: &[Arc<Pod>]) -> Vec<String> {
        p.iter().map(|p| p.metadata.name.clone().unwrap()).collect()
    }

    #[test]
    fn ranks_unassigned_pending_not_ready_first() {
        let pods = vec![
            pod("running-ready", "n1", "Running", true),
            pod("running-notready", "n1", "Running", false),
            pod("unknown", "n1", "Unknown", false),
            pod("pending", "n1", "Pending", false),
            pod("unassigned", "", "Pending", false),
        ];
        let got = pods_to_delete(pods, &[], 4);
        assert_eq!(
            names(&got),
            ["unassigned", "pending", "unknown", "running-notready"]
        );
    }

    #[test]
    fn deletion_cost_and_doubled_up_nodes() {
        let mut cheap = (*pod("cheap", "n1", "Running", true)).clone();
        cheap
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(POD_DELETION_COST.into(), "-5".into());
        let pods = vec![
            pod("alone", "n1", "Running", true),
            pod("crowded", "n2", "Running", true),
            Arc::new(cheap),
        ];
        let related = vec![
            pod("x", "n2", "Running", true),
            pod("y", "n2", "Running", true),
            pod("z", "n1", "Running", true),
        ];
        let got = pods_to_delete(pods, &related, 2);
        assert_eq!(names(&got), ["cheap", "crowded"]);
    }
}
