//! Pods: port of upstream `printPod`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::{AGE, NAME, col, wide};
use crate::descriptions::{
    POD_SPEC_NODE_NAME, POD_SPEC_READINESS_GATES, POD_STATUS_NOMINATED_NODE_NAME, POD_STATUS_POD_IP,
};
use crate::util::{decode, s, since, to_chrono};
use crate::{Column, Printer};

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", POD_STATUS_POD_IP),
    wide("Node", "string", POD_SPEC_NODE_NAME),
    wide("Nominated Node", "string", POD_STATUS_NOMINATED_NODE_NAME),
    wide("Readiness Gates", "string", POD_SPEC_READINESS_GATES),
];

pub(crate) struct PodPrinter;

pub(crate) static POD: PodPrinter = PodPrinter;

/// `podutil.IsRestartableInitContainer`.
fn is_restartable_init_container(c: Option<&&Container>) -> bool {
    c.and_then(|c| c.restart_policy.as_deref()) == Some("Always")
}

/// Go's `metav1.Time.Before` on possibly-unset (zero) times; `None` is the zero time.
fn before(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> bool {
    match (a, b) {
        (None, Some(b)) => !crate::duration::is_go_zero(&b),
        (Some(a), Some(b)) => a < b,
        (_, None) => false,
    }
}

fn finished_at(t: Option<&Time>) -> Option<DateTime<Utc>> {
    t.and_then(|t| to_chrono(&t.0))
}

fn is_pod_initialized(status: &PodStatus) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Initialized" && c.status == "True")
}

fn has_pod_ready_condition(conditions: &[PodCondition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The first pod IP as the internal object has it: v1 `podIP` wins over `podIPs[0]`.
pub(crate) fn first_pod_ip(status: &PodStatus) -> String {
    match status.pod_ip.as_deref() {
        Some(ip) if !ip.is_empty() => ip.to_string(),
        _ => status
            .pod_ips
            .iter()
            .flatten()
            .next()
            .map(|ip| ip.ip.clone())
            .unwrap_or_default(),
    }
}

impl Printer for PodPrinter {
    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let pod: Pod = decode(obj);
        let spec = pod.spec.unwrap_or_default();
        let status = pod.status.unwrap_or_default();
        let conditions = status.conditions.clone().unwrap_or_default();

        let mut restarts: i64 = 0;
        let mut restartable_init_restarts: i64 = 0;
        let mut total_containers = spec.containers.len();
        let mut ready_containers = 0usize;
        let mut last_restart: Option<DateTime<Utc>> = None;
        let mut last_restartable_init_restart: Option<DateTime<Utc>> = None;

        let phase = status.phase.clone().unwrap_or_default();
        let mut reason = match status.reason.as_deref() {
            Some(r) if !r.is_empty() => r.to_string(),
            _ => phase.clone(),
        };

        // If the pod carries {type:PodScheduled, reason:SchedulingGated}, report that.
        if conditions
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
        {
            reason = "SchedulingGated".to_string();
        }

        let init_specs = spec.init_containers.clone().unwrap_or_default();
        let init_containers: HashMap<&str, &Container> =
            init_specs.iter().map(|c| (c.name.as_str(), c)).collect();
        for c in &init_specs {
            if c.restart_policy.as_deref() == Some("Always") {
                total_containers += 1;
            }
        }

        let mut initializing = false;
        for (i, container) in status.init_container_statuses.iter().flatten().enumerate() {
            let restartable =
                is_restartable_init_container(init_containers.get(container.name.as_str()));
            restarts += i64::from(container.restart_count);
            let last_terminated = container
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref());
            if let Some(t) = last_terminated {
                let finished = finished_at(t.finished_at.as_ref());
                if before(last_restart, finished) {
                    last_restart = finished;
                }
            }
            if restartable {
                restartable_init_restarts += i64::from(container.restart_count);
                if let Some(t) = last_terminated {
                    let finished = finished_at(t.finished_at.as_ref());
                    if before(last_restartable_init_restart, finished) {
                        last_restartable_init_restart = finished;
                    }
                }
            }
            let state = container.state.clone().unwrap_or_default();
            match (&state.terminated, &state.waiting) {
                (Some(t), _) if t.exit_code == 0 => continue,
                _ if restartable && container.started == Some(true) => {
                    if container.ready {
                        ready_containers += 1;
                    }
                    continue;
                }
                (Some(t), _) => {
                    // Initialization failed.
                    reason = match t.reason.as_deref() {
                        Some(r) if !r.is_empty() => format!("Init:{r}"),
                        _ if t.signal.unwrap_or(0) != 0 => {
                            format!("Init:Signal:{}", t.signal.unwrap_or(0))
                        }
                        _ => format!("Init:ExitCode:{}", t.exit_code),
                    };
                    initializing = true;
                }
                (None, Some(w))
                    if w.reason
                        .as_deref()
                        .is_some_and(|r| !r.is_empty() && r != "PodInitializing") =>
                {
                    reason = format!("Init:{}", w.reason.as_deref().unwrap_or_default());
                    initializing = true;
                }
                _ => {
                    reason = format!("Init:{}/{}", i, init_specs.len());
                    initializing = true;
                }
            }
            break;
        }

        if !initializing || is_pod_initialized(&status) {
            restarts = restartable_init_restarts;
            last_restart = last_restartable_init_restart;
            let mut has_running = false;
            for container in status.container_statuses.iter().flatten().rev() {
                restarts += i64::from(container.restart_count);
                if let Some(t) = container
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                {
                    let finished = finished_at(t.finished_at.as_ref());
                    if before(last_restart, finished) {
                        last_restart = finished;
                    }
                }
                let state = container.state.clone().unwrap_or_default();
                let waiting_reason = state
                    .waiting
                    .as_ref()
                    .and_then(|w| w.reason.as_deref())
                    .filter(|r| !r.is_empty());
                if let Some(r) = waiting_reason {
                    reason = r.to_string();
                } else if let Some(t) = &state.terminated {
                    reason = match t.reason.as_deref() {
                        Some(r) if !r.is_empty() => r.to_string(),
                        _ if t.signal.unwrap_or(0) != 0 => {
                            format!("Signal:{}", t.signal.unwrap_or(0))
                        }
                        _ => format!("ExitCode:{}", t.exit_code),
                    };
                } else if container.ready && state.running.is_some() {
                    has_running = true;
                    ready_containers += 1;
                }
            }

            // Change the pod status back to "Running" if there is at least one container
            // still reporting as "Running".
            if reason == "Completed" && has_running {
                reason = if has_pod_ready_condition(&conditions) {
                    "Running".to_string()
                } else {
                    "NotReady".to_string()
                };
            }
        }

        let deleting = pod.metadata.deletion_timestamp.is_some();
        if deleting && status.reason.as_deref() == Some("NodeLost") {
            reason = "Unknown".to_string();
        } else if deleting && phase != "Failed" && phase != "Succeeded" {
            reason = "Terminating".to_string();
        }

        let restarts_str = match last_restart {
            Some(t) if restarts != 0 && !crate::duration::is_go_zero(&t) => {
                format!(
                    "{restarts} ({} ago)",
                    crate::duration::human_duration(now.signed_duration_since(t))
                )
            }
            _ => restarts.to_string(),
        };

        let node_name = spec.node_name.clone().filter(|n| !n.is_empty());
        let nominated = status.nominated_node_name.clone().filter(|n| !n.is_empty());
        let pod_ip = Some(first_pod_ip(&status)).filter(|ip| !ip.is_empty());
        let readiness_gates = match spec.readiness_gates.as_deref() {
            Some(gates) if !gates.is_empty() => {
                let true_conditions = gates
                    .iter()
                    .filter(|g| {
                        conditions
                            .iter()
                            .find(|c| c.type_ == g.condition_type)
                            .is_some_and(|c| c.status == "True")
                    })
                    .count();
                format!("{true_conditions}/{}", gates.len())
            }
            _ => "<none>".to_string(),
        };

        vec![
            s(pod.metadata.name.clone().unwrap_or_default()),
            s(format!("{ready_containers}/{total_containers}")),
            s(reason),
            s(restarts_str),
            s(since(pod.metadata.creation_timestamp.as_ref(), now)),
            s(pod_ip.unwrap_or_else(|| "<none>".to_string())),
            s(node_name.unwrap_or_else(|| "<none>".to_string())),
            s(nominated.unwrap_or_else(|| "<none>".to_string())),
            s(readiness_gates),
        ]
    }

    fn conditions(&self, obj: &Value) -> Vec<Value> {
        let phase = obj
            .get("status")
            .and_then(|s| s.get("phase"))
            .and_then(Value::as_str);
        match phase {
            Some("Succeeded") => vec![json!({
                "type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."
            })],
            Some("Failed") => vec![json!({
                "type": "Completed", "status": "True", "reason": "Failed",
                "message": "The pod failed."
            })],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use serde_json::json;

    fn ago(now: DateTime<Utc>, d: TimeDelta) -> String {
        (now - d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    fn pod(meta: Value, spec: Value, status: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status})
    }

    fn two() -> Value {
        json!([{}, {}])
    }

    fn one() -> Value {
        json!([{}])
    }

    fn running(ready: bool, restarts: i32) -> Value {
        json!({"ready": ready, "restartCount": restarts, "state": {"running": {}}})
    }

    fn with_last_termination(mut status: Value, finished: String) -> Value {
        status["lastState"] = json!({"terminated": {"exitCode": 0, "finishedAt": finished}});
        status
    }

    fn first5(v: Vec<Value>) -> Vec<Value> {
        v.into_iter().take(5).collect()
    }

    fn row(cells: [&str; 5]) -> Vec<Value> {
        cells.iter().map(|c| json!(c)).collect()
    }

    // Cases from upstream TestPrintPod.
    #[test]
    fn print_pod() {
        let now = Utc::now();
        let s10 = ago(now, TimeDelta::seconds(10));
        let deleted = json!({"name": "x", "deletionTimestamp": s10});
        let cases: Vec<(Value, [&str; 5])> = vec![
            (
                pod(
                    json!({"name": "test1"}),
                    json!({"containers": two()}),
                    json!({
                        "phase": "podPhase",
                        "containerStatuses": [running(true, 3), {"restartCount": 3}]
                    }),
                ),
                ["test1", "1/2", "podPhase", "6", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test2"}),
                    json!({"containers": two()}),
                    json!({
                        "phase": "podPhase",
                        "containerStatuses": [running(true, 3), {"state": {"waiting": {"reason": "ContainerWaitingReason"}}, "restartCount": 3}]
                    }),
                ),
                ["test2", "1/2", "ContainerWaitingReason", "6", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test3"}),
                    json!({"containers": two()}),
                    json!({
                        "phase": "podPhase",
                        "containerStatuses": [
                            {"state": {"waiting": {"reason": "ContainerWaitingReason"}}, "restartCount": 3},
                            {"state": {"terminated": {"reason": "ContainerTerminatedReason", "exitCode": 0}}, "restartCount": 3}
                        ]
                    }),
                ),
                ["test3", "0/2", "ContainerWaitingReason", "6", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test4"}),
                    json!({"containers": two()}),
                    json!({
                        "phase": "podPhase",
                        "containerStatuses": [running(true, 3), {"ready": true, "restartCount": 3}]
                    }),
                ),
                ["test4", "1/2", "podPhase", "6", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test5"}),
                    json!({"containers": two()}),
                    json!({
                        "reason": "podReason", "phase": "podPhase",
                        "containerStatuses": [running(true, 3), {"ready": true, "restartCount": 3}]
                    }),
                ),
                ["test5", "1/2", "podReason", "6", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test6"}),
                    json!({"containers": two()}),
                    json!({
                        "phase": "Running", "reason": "",
                        "containerStatuses": [
                            {"ready": true, "restartCount": 3, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                            running(true, 3)
                        ]
                    }),
                ),
                ["test6", "1/2", "NotReady", "6", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test6"}),
                    json!({"containers": two()}),
                    json!({
                        "phase": "Running", "reason": "",
                        "containerStatuses": [
                            {"ready": true, "restartCount": 3, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                            running(true, 3)
                        ],
                        "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": ago(now, TimeDelta::zero())}]
                    }),
                ),
                ["test6", "1/2", "Running", "6", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test7"}),
                    json!({"initContainers": one(), "containers": one()}),
                    json!({
                        "phase": "podPhase",
                        "initContainerStatuses": [with_last_termination(running(false, 3), s10.clone())],
                        "containerStatuses": [{"ready": false, "restartCount": 0, "state": {"waiting": {}}}]
                    }),
                ),
                ["test7", "0/1", "Init:0/1", "3 (10s ago)", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test8"}),
                    json!({"initContainers": two(), "containers": one()}),
                    json!({
                        "phase": "podPhase",
                        "initContainerStatuses": [
                            with_last_termination(running(false, 3), s10.clone()),
                            {"ready": false, "state": {"waiting": {}}}
                        ],
                        "containerStatuses": [{"ready": false, "state": {"waiting": {}}}]
                    }),
                ),
                ["test8", "0/1", "Init:0/2", "3 (10s ago)", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test9"}),
                    json!({"initContainers": two(), "containers": one()}),
                    json!({
                        "phase": "podPhase",
                        "initContainerStatuses": [
                            {"ready": false, "state": {"terminated": {"exitCode": 0}}},
                            with_last_termination(running(false, 3), s10.clone())
                        ],
                        "containerStatuses": [{"ready": false, "state": {"waiting": {}}}]
                    }),
                ),
                ["test9", "0/1", "Init:1/2", "3 (10s ago)", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test10"}),
                    json!({"initContainers": two(), "containers": one()}),
                    json!({
                        "phase": "podPhase",
                        "initContainerStatuses": [
                            with_last_termination(json!({"ready": false, "restartCount": 2, "state": {"terminated": {"exitCode": 0}}}), ago(now, TimeDelta::minutes(2))),
                            with_last_termination(running(false, 3), s10.clone())
                        ],
                        "containerStatuses": [{"ready": false, "state": {"waiting": {}}}]
                    }),
                ),
                ["test10", "0/1", "Init:1/2", "5 (10s ago)", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test11"}),
                    json!({"initContainers": one(), "containers": one()}),
                    json!({
                        "phase": "Running",
                        "initContainerStatuses": [
                            with_last_termination(json!({"ready": false, "restartCount": 2, "state": {"terminated": {"exitCode": 0}}}), ago(now, TimeDelta::minutes(2)))
                        ],
                        "containerStatuses": [with_last_termination(running(false, 4), ago(now, TimeDelta::seconds(20)))]
                    }),
                ),
                ["test11", "0/1", "Running", "4 (20s ago)", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test12"}),
                    json!({"containers": one()}),
                    json!({
                        "phase": "Running",
                        "containerStatuses": [with_last_termination(running(true, 3), ago(now, TimeDelta::days(5)))]
                    }),
                ),
                ["test12", "1/1", "Running", "3 (5d ago)", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test13"}),
                    json!({"containers": two()}),
                    json!({
                        "phase": "Running",
                        "containerStatuses": [running(true, 0), with_last_termination(running(true, 3), ago(now, TimeDelta::days(10)))]
                    }),
                ),
                ["test13", "2/2", "Running", "3 (10d ago)", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test14"}),
                    json!({"containers": two()}),
                    json!({
                        "phase": "Running",
                        "containerStatuses": [
                            with_last_termination(running(true, 6), ago(now, TimeDelta::days(5))),
                            with_last_termination(running(true, 3), ago(now, TimeDelta::days(20)))
                        ]
                    }),
                ),
                ["test14", "2/2", "Running", "9 (5d ago)", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test15"}),
                    json!({"containers": two()}),
                    json!({
                        "phase": "podPhase",
                        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]
                    }),
                ),
                ["test15", "0/2", "SchedulingGated", "0", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test16"}),
                    json!({"containers": one()}),
                    json!({
                        "phase": "Succeeded",
                        "containerStatuses": [{"ready": false, "restartCount": 0, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]
                    }),
                ),
                ["test16", "0/1", "Completed", "0", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test17"}),
                    json!({"containers": one()}),
                    json!({
                        "phase": "Failed",
                        "containerStatuses": [{"ready": false, "restartCount": 0, "state": {"terminated": {"reason": "Error", "exitCode": 1}}}]
                    }),
                ),
                ["test17", "0/1", "Error", "0", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test18", "deletionTimestamp": s10}),
                    json!({"containers": one()}),
                    json!({
                        "phase": "Succeeded",
                        "containerStatuses": [{"ready": false, "restartCount": 0, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]
                    }),
                ),
                ["test18", "0/1", "Completed", "0", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test19", "deletionTimestamp": s10}),
                    json!({"containers": one()}),
                    json!({
                        "phase": "Running",
                        "containerStatuses": [{"ready": false, "restartCount": 0, "state": {"running": {}}}]
                    }),
                ),
                ["test19", "0/1", "Terminating", "0", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test20", "deletionTimestamp": s10}),
                    json!({"containers": one()}),
                    json!({"phase": "Pending"}),
                ),
                ["test20", "0/1", "Terminating", "0", "<unknown>"],
            ),
            // Beyond upstream's table: NodeLost, signals, exit codes, init failures.
            (
                pod(
                    json!({"name": "lost", "deletionTimestamp": s10}),
                    json!({"containers": one()}),
                    json!({"phase": "Running", "reason": "NodeLost"}),
                ),
                ["lost", "0/1", "Unknown", "0", "<unknown>"],
            ),
            (
                pod(
                    deleted.clone(),
                    json!({"containers": one()}),
                    json!({"phase": "Failed"}),
                ),
                ["x", "0/1", "Failed", "0", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "sig"}),
                    json!({"containers": one()}),
                    json!({
                        "phase": "Running", "containerStatuses": [{"state": {"terminated": {"exitCode": 137, "signal": 9}}}]
                    }),
                ),
                ["sig", "0/1", "Signal:9", "0", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "code"}),
                    json!({"containers": one()}),
                    json!({
                        "phase": "Running", "containerStatuses": [{"state": {"terminated": {"exitCode": 2}}}]
                    }),
                ),
                ["code", "0/1", "ExitCode:2", "0", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "crash"}),
                    json!({"containers": one()}),
                    json!({
                        "phase": "Running", "containerStatuses": [{"restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(now, TimeDelta::seconds(190))}}}]
                    }),
                ),
                [
                    "crash",
                    "0/1",
                    "CrashLoopBackOff",
                    "2 (3m10s ago)",
                    "<unknown>",
                ],
            ),
            (
                pod(
                    json!({"name": "initfail"}),
                    json!({"initContainers": one(), "containers": one()}),
                    json!({
                        "phase": "Pending", "initContainerStatuses": [{"state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]
                    }),
                ),
                ["initfail", "0/1", "Init:Error", "0", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "initsig"}),
                    json!({"initContainers": one(), "containers": one()}),
                    json!({
                        "phase": "Pending", "initContainerStatuses": [{"state": {"terminated": {"exitCode": 1, "signal": 15}}}]
                    }),
                ),
                ["initsig", "0/1", "Init:Signal:15", "0", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "initcode"}),
                    json!({"initContainers": one(), "containers": one()}),
                    json!({
                        "phase": "Pending", "initContainerStatuses": [{"state": {"terminated": {"exitCode": 3}}}]
                    }),
                ),
                ["initcode", "0/1", "Init:ExitCode:3", "0", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "initwait"}),
                    json!({"initContainers": one(), "containers": one()}),
                    json!({
                        "phase": "Pending", "initContainerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]
                    }),
                ),
                ["initwait", "0/1", "Init:ImagePullBackOff", "0", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "podinit"}),
                    json!({"initContainers": one(), "containers": one()}),
                    json!({
                        "phase": "Pending", "initContainerStatuses": [{"state": {"waiting": {"reason": "PodInitializing"}}}]
                    }),
                ),
                ["podinit", "0/1", "Init:0/1", "0", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "creating", "creationTimestamp": ago(now, TimeDelta::seconds(5))}),
                    json!({"containers": one()}),
                    json!({
                        "phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]
                    }),
                ),
                ["creating", "0/1", "ContainerCreating", "0", "5s"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(first5(POD.cells(&obj, now)), row(want), "{obj}");
        }
    }

    // Cases from upstream TestPrintPodWithRestartableInitContainer.
    #[test]
    fn print_pod_with_restartable_init_containers() {
        let now = Utc::now();
        let s10 = ago(now, TimeDelta::seconds(10));
        let sidecars = json!([
            {"name": "restartable-init-1", "restartPolicy": "Always"},
            {"name": "restartable-init-2", "restartPolicy": "Always"}
        ]);
        let cases: Vec<(Value, [&str; 5])> = vec![
            (
                pod(
                    json!({"name": "test1"}),
                    json!({"initContainers": sidecars, "containers": one()}),
                    json!({
                        "phase": "Pending",
                        "initContainerStatuses": [
                            {"name": "restartable-init-1", "ready": false, "restartCount": 3, "state": {"running": {}}, "started": false,
                             "lastState": {"terminated": {"exitCode": 0, "finishedAt": s10}}},
                            {"name": "restartable-init-2", "ready": false, "state": {"waiting": {}}, "started": false}
                        ],
                        "containerStatuses": [{"ready": false, "restartCount": 0, "state": {"waiting": {}}}],
                        "conditions": [{"type": "Initialized", "status": "False"}]
                    }),
                ),
                ["test1", "0/3", "Init:0/2", "3 (10s ago)", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test1"}),
                    json!({"initContainers": sidecars, "containers": one()}),
                    json!({
                        "phase": "Pending",
                        "initContainerStatuses": [
                            {"name": "restartable-init-1", "ready": false, "restartCount": 3, "state": {"running": {}}, "started": true,
                             "lastState": {"terminated": {"exitCode": 0, "finishedAt": s10}}},
                            {"name": "restartable-init-2", "ready": false, "state": {"running": {}}, "started": false}
                        ],
                        "containerStatuses": [{"ready": false, "restartCount": 0, "state": {"waiting": {}}}],
                        "conditions": [{"type": "Initialized", "status": "False"}]
                    }),
                ),
                ["test1", "0/3", "Init:1/2", "3 (10s ago)", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test2"}),
                    json!({"initContainers": sidecars, "containers": one()}),
                    json!({
                        "phase": "Running",
                        "initContainerStatuses": [
                            {"name": "restartable-init-1", "ready": false, "restartCount": 3, "state": {"running": {}}, "started": true,
                             "lastState": {"terminated": {"exitCode": 0, "finishedAt": s10}}},
                            {"name": "restartable-init-2", "ready": false, "state": {"running": {}}, "started": true}
                        ],
                        "containerStatuses": [with_last_termination(running(true, 4), ago(now, TimeDelta::seconds(20)))],
                        "conditions": [{"type": "Initialized", "status": "True"}]
                    }),
                ),
                ["test2", "1/3", "Running", "7 (10s ago)", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test3"}),
                    json!({"initContainers": sidecars, "containers": one()}),
                    json!({
                        "phase": "Succeeded",
                        "initContainerStatuses": [
                            {"name": "restartable-init-1", "ready": false, "restartCount": 3, "state": {"terminated": {"reason": "Error", "exitCode": 137}}, "started": false,
                             "lastState": {"terminated": {"exitCode": 0, "finishedAt": s10}}},
                            {"name": "restartable-init-2", "ready": false, "state": {"terminated": {"reason": "Error", "exitCode": 137}}, "started": false}
                        ],
                        "containerStatuses": [with_last_termination(
                            json!({"ready": false, "restartCount": 4, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}),
                            ago(now, TimeDelta::seconds(20)))],
                        "conditions": [{"type": "Initialized", "status": "True"}]
                    }),
                ),
                ["test3", "0/3", "Completed", "7 (10s ago)", "<unknown>"],
            ),
            (
                pod(
                    json!({"name": "test4"}),
                    json!({
                        "initContainers": [{"name": "init1", "image": "initimage"}, {"name": "sidecar1", "image": "sidecarimage", "restartPolicy": "Always"}],
                        "containers": [{"name": "container1", "image": "containerimage"}]
                    }),
                    json!({
                        "phase": "Running",
                        "initContainerStatuses": [{"name": "initinvalid"}, {"name": "init1"}, {"name": "sidecar1"}],
                        "containerStatuses": [{"name": "containerinvalid"}, {"name": "container1"}]
                    }),
                ),
                ["test4", "0/2", "Init:0/2", "0", "<unknown>"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(first5(POD.cells(&obj, now)), row(want), "{obj}");
        }
    }

    // Cases from upstream TestPrintPodwide.
    #[test]
    fn print_pod_wide() {
        let now = Utc::now();
        let gates = json!([{"conditionType": "condition1"}, {"conditionType": "condition2"}, {"conditionType": "condition3"}]);
        let conditions = json!([{"type": "condition1", "status": "False"}, {"type": "condition2", "status": "True"}]);
        let p = pod(
            json!({"name": "test1"}),
            json!({"containers": two(), "nodeName": "test1", "readinessGates": gates}),
            json!({
                "conditions": conditions, "phase": "podPhase", "podIPs": [{"ip": "1.1.1.1"}, {"ip": "2001:db8::"}],
                "containerStatuses": [running(true, 3), {"restartCount": 3}], "nominatedNodeName": "node1"
            }),
        );
        assert_eq!(
            POD.cells(&p, now),
            vec![
                json!("test1"),
                json!("1/2"),
                json!("podPhase"),
                json!("6"),
                json!("<unknown>"),
                json!("1.1.1.1"),
                json!("test1"),
                json!("node1"),
                json!("1/3")
            ]
        );
        let p = pod(
            json!({"name": "test2"}),
            json!({"containers": two(), "nodeName": ""}),
            json!({
                "phase": "podPhase",
                "containerStatuses": [running(true, 3), {"state": {"waiting": {"reason": "ContainerWaitingReason"}}, "restartCount": 3}]
            }),
        );
        assert_eq!(
            POD.cells(&p, now)[5..],
            [
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        // v1 podIP alone (no podIPs) is what the internal object uses.
        let p = pod(
            json!({"name": "t"}),
            json!({"containers": one()}),
            json!({"podIP": "10.0.0.9"}),
        );
        assert_eq!(POD.cells(&p, now)[5], json!("10.0.0.9"));
    }

    // Cases from upstream TestPrintPodConditions.
    #[test]
    fn print_pod_conditions() {
        let running_pod = pod(
            json!({"name": "test1"}),
            json!({"containers": two()}),
            json!({"phase": "Running"}),
        );
        assert!(POD.conditions(&running_pod).is_empty());
        let succeeded = pod(
            json!({"name": "test1"}),
            json!({"containers": two()}),
            json!({"phase": "Succeeded"}),
        );
        assert_eq!(
            POD.conditions(&succeeded),
            vec![
                json!({"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."})
            ]
        );
        let failed = pod(
            json!({"name": "test2"}),
            json!({"containers": two()}),
            json!({"phase": "Failed"}),
        );
        assert_eq!(
            POD.conditions(&failed),
            vec![
                json!({"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."})
            ]
        );
    }
}
