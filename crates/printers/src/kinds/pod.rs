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
