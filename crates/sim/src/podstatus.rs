//! The status the kubelet reports for a pod (`pkg/kubelet/kubelet_pods.go`
//! `generateAPIPodStatus`, `pkg/kubelet/status/generate.go`), for containers that start at
//! once and stop at once.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus,
    HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Reason of ContainersReady/Ready when a container is not ready.
pub const CONTAINERS_NOT_READY: &str = "ContainersNotReady";
/// Reason of ContainersReady/Ready/Initialized once every container succeeded.
pub const POD_COMPLETED: &str = "PodCompleted";
/// Reason of Ready when a readiness gate is not satisfied.
pub const READINESS_GATES_NOT_READY: &str = "ReadinessGatesNotReady";

/// The conditions the kubelet owns (`kubetypes.PodConditionByKubelet`), in the order the
/// kubelet appends them.
const KUBELET_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// When a container passes its readiness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// At once (no readiness probe, or one without initial delay).
    Immediate,
    /// Never: a readiness probe that runs `false`.
    Never,
    /// After the probe's initial delay.
    After(Duration),
}

/// How the readiness probe of a container behaves in the simulation.
pub fn readiness(c: &Container) -> Readiness {
    let Some(probe) = &c.readiness_probe else {
        return Readiness::Immediate;
    };
    if let Some(cmd) = probe.exec.as_ref().and_then(|e| e.command.as_ref())
        && matches!(
            cmd.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
            ["false"] | ["/bin/false"] | ["/usr/bin/false"]
        )
    {
        return Readiness::Never;
    }
    match probe.initial_delay_seconds {
        Some(s) if s > 0 => Readiness::After(Duration::from_secs(s as u64)),
        _ => Readiness::Immediate,
    }
}

fn is_restartable_init(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The container ID the simulation reports.
pub fn container_id(uid: &str, name: &str) -> String {
    format!("sim://{uid}-{name}")
}

fn find<'a>(list: Option<&'a Vec<ContainerStatus>>, name: &str) -> Option<&'a ContainerStatus> {
    list?.iter().find(|s| s.name == name)
}

fn started_at(current: Option<&ContainerStatus>) -> Option<Time> {
    let state = current?.state.as_ref()?;
    state
        .running
        .as_ref()
        .and_then(|r| r.started_at.clone())
        .or_else(|| state.terminated.as_ref().and_then(|t| t.started_at.clone()))
}

fn base_status(uid: &str, c: &Container) -> ContainerStatus {
    let image = c.image.clone().unwrap_or_default();
    ContainerStatus {
        name: c.name.clone(),
        image_id: format!("sim://{image}"),
        image,
        container_id: Some(container_id(uid, &c.name)),
        restart_count: 0,
        ..Default::default()
    }
}

fn running_container(
    uid: &str,
    c: &Container,
    current: Option<&ContainerStatus>,
    now: Timestamp,
    next_check: &mut Option<Duration>,
) -> ContainerStatus {
    let started = started_at(current).unwrap_or(Time(now));
    let ready = match readiness(c) {
        Readiness::Immediate => true,
        Readiness::Never => false,
        Readiness::After(delay) => {
            let elapsed = now.duration_since(started.0).unsigned_abs();
            if elapsed >= delay {
                true
            } else {
                let left = delay - elapsed;
                *next_check = Some(next_check.map_or(left, |n| n.min(left)));
                false
            }
        }
    };
    ContainerStatus {
        ready,
        started: Some(true),
        state: Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started),
            }),
            ..Default::default()
        }),
        ..base_status(uid, c)
    }
}

fn terminated_container(
    uid: &str,
    c: &Container,
    current: Option<&ContainerStatus>,
    now: Timestamp,
    ready: bool,
) -> ContainerStatus {
    let started = started_at(current).unwrap_or(Time(now));
    let finished = current
        .and_then(|s| s.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.clone())
        .unwrap_or(Time(now));
    ContainerStatus {
        ready,
        started: Some(false),
        state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: Some(container_id(uid, &c.name)),
                exit_code: 0,
                reason: Some("Completed".to_string()),
                started_at: Some(started),
                finished_at: Some(finished),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..base_status(uid, c)
    }
}

fn condition(
    pod: &Pod,
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if status { "True" } else { "False" };
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    let transition = current
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(transition),
        observed_generation: pod.metadata.generation,
        last_probe_time: None,
    }
}

/// Go's `%s` of a `[]string`: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

/// The status of a pod whose containers run (init containers completed, sidecars running),
/// and the delay after which a readiness probe still pending passes.
pub fn running(
    pod: &Pod,
    host_ip: Ipv4Addr,
    pod_ip: Ipv4Addr,
    now: Timestamp,
) -> (PodStatus, Option<Duration>) {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let current = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let inits = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let mut next_check = None;
    let init_statuses: Vec<ContainerStatus> = inits
        .iter()
        .map(|c| {
            let cur = find(
                current.and_then(|s| s.init_container_statuses.as_ref()),
                &c.name,
            );
            if is_restartable_init(c) {
                running_container(uid, c, cur, now, &mut next_check)
            } else {
                terminated_container(uid, c, cur, now, true)
            }
        })
        .collect();
    let statuses: Vec<ContainerStatus> = containers
        .iter()
        .map(|c| {
            let cur = find(current.and_then(|s| s.container_statuses.as_ref()), &c.name);
            running_container(uid, c, cur, now, &mut next_check)
        })
        .collect();
    // GenerateContainersReadyCondition: sidecars first, then containers.
    let unready: Vec<&str> = inits
        .iter()
        .zip(&init_statuses)
        .filter(|(c, s)| is_restartable_init(c) && !s.ready)
        .chain(containers.iter().zip(&statuses).filter(|(_, s)| !s.ready))
        .map(|(c, _)| c.name.as_str())
        .collect();
    let containers_ready = if unready.is_empty() {
        condition(pod, "ContainersReady", true, None, None, now)
    } else {
        let message = format!("containers with unready status: {}", go_list(&unready));
        condition(
            pod,
            "ContainersReady",
            false,
            Some(CONTAINERS_NOT_READY),
            Some(message),
            now,
        )
    };
    let ready = if containers_ready.status != "True" {
        condition(
            pod,
            "Ready",
            false,
            containers_ready.reason.as_deref(),
            containers_ready.message.clone(),
            now,
        )
    } else {
        match readiness_gates_message(pod) {
            Some(message) => condition(
                pod,
                "Ready",
                false,
                Some(READINESS_GATES_NOT_READY),
                Some(message),
                now,
            ),
            None => condition(pod, "Ready", true, None, None, now),
        }
    };
    let conditions = vec![
        condition(pod, "PodReadyToStartContainers", true, None, None, now),
        condition(pod, "Initialized", true, None, None, now),
        ready,
        containers_ready,
        condition(pod, "PodScheduled", true, None, None, now),
    ];
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let pod_ip = if host_network { host_ip } else { pod_ip };
    let status = PodStatus {
        phase: Some("Running".to_string()),
        conditions: Some(conditions),
        host_ip: Some(host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: host_ip.to_string(),
        }]),
        pod_ip: Some(pod_ip.to_string()),
        pod_ips: Some(vec![PodIP {
            ip: pod_ip.to_string(),
        }]),
        start_time: current
            .and_then(|s| s.start_time.clone())
            .or(Some(Time(now))),
        container_statuses: Some(statuses),
        init_container_statuses: (!inits.is_empty()).then_some(init_statuses),
        observed_generation: pod.metadata.generation,
        ..Default::default()
    };
    (status, next_check)
}

fn readiness_gates_message(pod: &Pod) -> Option<String> {
    let gates = pod.spec.as_ref()?.readiness_gates.as_ref()?;
    let conds = pod.status.as_ref().and_then(|s| s.conditions.as_deref());
    let messages: Vec<String> = gates
        .iter()
        .filter_map(|g| {
            let c = conds.and_then(|cs| cs.iter().find(|c| c.type_ == g.condition_type));
            match c {
                None => Some(format!(
                    "corresponding condition of pod readiness gate {:?} does not exist.",
                    g.condition_type
                )),
                Some(c) if c.status != "True" => Some(format!(
                    "the status of pod readiness gate {:?} is not \"True\", but {}",
                    g.condition_type, c.status
                )),
                Some(_) => None,
            }
        })
        .collect();
    (!messages.is_empty()).then(|| messages.join(", "))
}

/// The status of a pod whose containers stopped on SIGTERM with exit code 0 (a graceful
/// deletion): phase Succeeded, as `getPhase` decides for a terminal pod.
pub fn terminated(pod: &Pod, now: Timestamp) -> PodStatus {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let current = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let inits = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let init_statuses: Vec<ContainerStatus> = inits
        .iter()
        .map(|c| {
            let cur = find(
                current.and_then(|s| s.init_container_statuses.as_ref()),
                &c.name,
            );
            terminated_container(uid, c, cur, now, !is_restartable_init(c))
        })
        .collect();
    let statuses: Vec<ContainerStatus> = containers
        .iter()
        .map(|c| {
            let cur = find(current.and_then(|s| s.container_statuses.as_ref()), &c.name);
            terminated_container(uid, c, cur, now, false)
        })
        .collect();
    let conditions = vec![
        condition(pod, "PodReadyToStartContainers", false, None, None, now),
        condition(pod, "Initialized", true, Some(POD_COMPLETED), None, now),
        condition(pod, "Ready", false, Some(POD_COMPLETED), None, now),
        condition(
            pod,
            "ContainersReady",
            false,
            Some(POD_COMPLETED),
            None,
            now,
        ),
        condition(pod, "PodScheduled", true, None, None, now),
    ];
    PodStatus {
        phase: Some("Succeeded".to_string()),
        conditions: Some(conditions),
        container_statuses: Some(statuses),
        init_container_statuses: (!inits.is_empty()).then_some(init_statuses),
        observed_generation: pod.metadata.generation,
        ..Default::default()
    }
}

/// Whether `current` already says what `desired` says (ignoring times): phase, IPs,
/// container states and readiness, and the kubelet-owned conditions.
pub fn up_to_date(current: Option<&PodStatus>, desired: &PodStatus) -> bool {
    let Some(current) = current else {
        return false;
    };
    if current.phase != desired.phase
        || (desired.pod_ip.is_some() && current.pod_ip != desired.pod_ip)
        || (desired.host_ip.is_some() && current.host_ip != desired.host_ip)
    {
        return false;
    }
    let same_containers = |a: Option<&Vec<ContainerStatus>>, b: Option<&Vec<ContainerStatus>>| {
        let (a, b) = (a.map(Vec::as_slice), b.map(Vec::as_slice));
        let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                let kind = |s: &ContainerStatus| {
                    s.state.as_ref().map(|st| {
                        (
                            st.running.is_some(),
                            st.terminated.as_ref().map(|t| t.exit_code),
                            st.waiting.is_some(),
                        )
                    })
                };
                x.name == y.name
                    && x.ready == y.ready
                    && x.started == y.started
                    && x.container_id == y.container_id
                    && kind(x) == kind(y)
            })
    };
    if !same_containers(
        current.container_statuses.as_ref(),
        desired.container_statuses.as_ref(),
    ) || !same_containers(
        current.init_container_statuses.as_ref(),
        desired.init_container_statuses.as_ref(),
    ) {
        return false;
    }
    let conds = current.conditions.as_deref().unwrap_or_default();
    desired.conditions.iter().flatten().all(|d| {
        conds.iter().any(|c| {
            c.type_ == d.type_
                && c.status == d.status
                && c.reason == d.reason
                && c.message == d.message
        })
    })
}

/// Whether a condition type is one the kubelet owns.
pub fn owned_by_kubelet(type_: &str) -> bool {
    KUBELET_CONDITIONS.contains(&type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ExecAction, PodSpec, Probe};
    use kube::api::ObjectMeta;

    fn container(name: &str, probe: Option<Probe>) -> Container {
        Container {
            name: name.into(),
            image: Some("nginx".into()),
            readiness_probe: probe,
            ..Default::default()
        }
    }

    fn exec(cmd: &[&str], delay: Option<i32>) -> Probe {
        Probe {
            exec: Some(ExecAction {
                command: Some(cmd.iter().map(|s| s.to_string()).collect()),
            }),
            initial_delay_seconds: delay,
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers,
                node_name: Some("sim-0000".into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    const HOST: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
    const IP: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 2);

    #[test]
    fn running_pod_is_ready_with_kubelet_fields() {
        let p = pod(vec![container("web", None)]);
        let (s, next) = running(&p, HOST, IP, Timestamp::now());
        assert_eq!(next, None);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.42.0.2"));
        assert_eq!(s.host_ip.as_deref(), Some("10.200.0.1"));
        let types: Vec<_> = s
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, KUBELET_CONDITIONS);
        assert!(s.conditions.iter().flatten().all(|c| c.status == "True"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("sim://u1-web"));
        assert_eq!(cs.image_id, "sim://nginx");
        assert!(cs.state.as_ref().unwrap().running.is_some());
        assert!(up_to_date(Some(&s), &s));
    }

    #[test]
    fn false_probe_never_ready_with_upstream_message() {
        let p = pod(vec![
            container("a", Some(exec(&["/bin/false"], None))),
            container("b", None),
            container("c", Some(exec(&["false"], Some(5)))),
        ]);
        let (s, _) = running(&p, HOST, IP, Timestamp::now());
        let ready = cond(&s, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [a c]")
        );
        assert_eq!(cond(&s, "ContainersReady").status, "False");
        assert_eq!(s.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn delayed_probe_becomes_ready_after_initial_delay() {
        let mut p = pod(vec![container("a", Some(exec(&["cat", "/ok"], Some(10))))]);
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let (s, next) = running(&p, HOST, IP, t0);
        assert_eq!(next, Some(Duration::from_secs(10)));
        assert_eq!(cond(&s, "Ready").status, "False");
        p.status = Some(s.clone());
        let later = Timestamp::from_second(1_000_011).unwrap();
        let (s2, next) = running(&p, HOST, IP, later);
        assert_eq!(next, None);
        assert_eq!(cond(&s2, "Ready").status, "True");
        assert!(!up_to_date(Some(&s), &s2));
        // Transition times of unchanged conditions are kept.
        assert_eq!(
            cond(&s2, "PodScheduled").last_transition_time,
            cond(&s, "PodScheduled").last_transition_time
        );
    }

    #[test]
    fn terminated_pod_succeeded() {
        let mut p = pod(vec![container("a", None)]);
        let (s, _) = running(&p, HOST, IP, Timestamp::now());
        p.status = Some(s);
        let t = terminated(&p, Timestamp::now());
        assert_eq!(t.phase.as_deref(), Some("Succeeded"));
        let cs = &t.container_statuses.as_ref().unwrap()[0];
        let term = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(term.exit_code, 0);
        assert_eq!(term.reason.as_deref(), Some("Completed"));
        assert!(cs.state.as_ref().unwrap().running.is_none());
        assert_eq!(cond(&t, "Ready").reason.as_deref(), Some("PodCompleted"));
    }

    #[test]
    fn init_containers_completed_and_sidecars_running() {
        let mut p = pod(vec![container("main", None)]);
        let spec = p.spec.as_mut().unwrap();
        spec.init_containers = Some(vec![
            container("setup", None),
            Container {
                restart_policy: Some("Always".into()),
                ..container("proxy", Some(exec(&["false"], None)))
            },
        ]);
        let (s, _) = running(&p, HOST, IP, Timestamp::now());
        let inits = s.init_container_statuses.as_ref().unwrap();
        assert!(inits[0].state.as_ref().unwrap().terminated.is_some());
        assert!(inits[0].ready);
        assert!(inits[1].state.as_ref().unwrap().running.is_some());
        assert_eq!(
            cond(&s, "ContainersReady").message.as_deref(),
            Some("containers with unready status: [proxy]")
        );
    }

    #[test]
    fn readiness_gates_keep_ready_false() {
        let mut p = pod(vec![container("a", None)]);
        p.spec.as_mut().unwrap().readiness_gates =
            Some(vec![k8s_openapi::api::core::v1::PodReadinessGate {
                condition_type: "example.com/lb".into(),
            }]);
        let (s, _) = running(&p, HOST, IP, Timestamp::now());
        let ready = cond(&s, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some(READINESS_GATES_NOT_READY));
        assert_eq!(
            ready.message.as_deref(),
            Some(
                "corresponding condition of pod readiness gate \"example.com/lb\" does not exist."
            )
        );
        assert_eq!(cond(&s, "ContainersReady").status, "True");
    }
}
