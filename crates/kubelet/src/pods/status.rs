//! The pod status the agent reports (`generateAPIPodStatus`, `convertToAPIContainerStatuses`,
//! `getPhase` in `pkg/kubelet/kubelet_pods.go`): phase, conditions and container statuses
//! built from the runtime's state, the probes' results and the reasons containers wait.

use std::collections::HashMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::pods::runtime::{Instance, PodRuntime, State};
use crate::pods::spec::qos_class;

/// Why a container is not running, as shown in its waiting state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// `CrashLoopBackOff`, `ErrImagePull`, `ImagePullBackOff`, `CreateContainerConfigError`, ...
    pub reason: String,
    /// The message.
    pub message: String,
}

/// Everything the status is computed from.
pub struct Inputs<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Its runtime state.
    pub runtime: &'a PodRuntime,
    /// Why containers wait, by container name.
    pub waiting: &'a HashMap<String, Waiting>,
    /// Readiness by container name (from the readiness probes).
    pub ready: &'a dyn Fn(&str) -> bool,
    /// Whether the startup probe passed, by container name.
    pub started: &'a dyn Fn(&str) -> bool,
    /// The node IP.
    pub host_ip: IpAddr,
    /// Whether the pod is being terminated by the agent (its containers are stopped on purpose).
    pub terminating: bool,
    /// Now.
    pub now: Timestamp,
}

fn ts(nanos: i64) -> Option<Time> {
    (nanos > 0)
        .then(|| Timestamp::from_nanosecond(i128::from(nanos)).ok())
        .flatten()
        .map(|t| Time(Timestamp::from_second(t.as_second()).unwrap_or(t)))
}

fn container_id(i: &Instance) -> String {
    format!("containerd://{}", i.id)
}

fn terminated(i: &Instance) -> ContainerState {
    let reason = if i.reason.is_empty() {
        if i.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
        .to_string()
    } else {
        i.reason.clone()
    };
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: i.exit_code,
            reason: Some(reason),
            message: (!i.message.is_empty()).then(|| i.message.clone()),
            started_at: ts(i.started_at),
            finished_at: ts(i.finished_at),
            container_id: Some(container_id(i)),
            signal: None,
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }),
        ..Default::default()
    }
}

/// Whether a container that exited with `exit_code` is restarted under the pod's policy.
pub fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

fn container_status(
    inp: &Inputs<'_>,
    c: &Container,
    default_waiting: &str,
    is_init: bool,
) -> ContainerStatus {
    let rt = inp.runtime;
    let latest = rt.latest(&c.name);
    let image = c.image.clone().unwrap_or_default();
    let mut st = ContainerStatus {
        name: c.name.clone(),
        image: image.clone(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        ..Default::default()
    };
    let reason = inp.waiting.get(&c.name);
    let Some(i) = latest else {
        let (r, m) = match reason {
            Some(w) => (w.reason.as_str(), Some(w.message.as_str())),
            None => (default_waiting, None),
        };
        st.state = Some(waiting(r, m));
        return st;
    };
    st.restart_count = i.attempt as i32;
    st.image_id = i.image_ref.clone();
    if !i.image.is_empty() && i.image.contains('/') {
        // The runtime's normalized name when it resolved one (upstream reports the image the
        // runtime ran, e.g. docker.io/library/nginx:latest).
        st.image = i.image.clone();
    }
    st.container_id = Some(container_id(i));
    if let Some(prev) = rt.previous(&c.name) {
        st.last_state = Some(terminated(prev));
    }
    match i.state {
        State::Running => {
            st.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: ts(i.started_at),
                }),
                ..Default::default()
            });
            let started = (inp.started)(&c.name);
            st.started = Some(started);
            st.ready = started && (inp.ready)(&c.name) && !inp.terminating;
        }
        State::Exited | State::Unknown => {
            let policy = restart_policy(inp.pod);
            let restarts = !inp.terminating
                && if is_init {
                    i.exit_code != 0 && policy != "Never"
                } else {
                    should_restart(policy, i.exit_code)
                };
            match (restarts, reason) {
                (true, Some(w)) => {
                    st.last_state = Some(terminated(i));
                    st.state = Some(waiting(&w.reason, Some(&w.message)));
                }
                _ => st.state = Some(terminated(i)),
            }
        }
        State::Created => {
            let (r, m) = match reason {
                Some(w) => (w.reason.as_str(), Some(w.message.as_str())),
                None => (default_waiting, None),
            };
            st.state = Some(waiting(r, m));
        }
    }
    st
}

fn condition(
    old: Option<&PodStatus>,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let transition = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(transition),
        last_probe_time: None,
        observed_generation: None,
    }
}

/// The conditions the agent owns.
pub const OWNED_CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

/// The pod's phase from its container statuses (`getPhase`).
pub fn phase(pod: &Pod, init: &[ContainerStatus], containers: &[ContainerStatus]) -> &'static str {
    let policy = restart_policy(pod);
    let mut pending_init = false;
    let mut failed_init = false;
    for s in init {
        match s.state.as_ref() {
            Some(ContainerState {
                terminated: Some(t),
                ..
            }) if t.exit_code == 0 => {}
            Some(ContainerState {
                terminated: Some(_),
                ..
            }) => {
                failed_init = true;
            }
            Some(ContainerState {
                waiting: Some(_), ..
            }) if s
                .last_state
                .as_ref()
                .is_some_and(|l| l.terminated.is_some()) =>
            {
                failed_init = true;
                pending_init = true;
            }
            _ => pending_init = true,
        }
    }
    let (mut running, mut waiting_n, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in containers {
        match s.state.as_ref() {
            Some(ContainerState {
                running: Some(_), ..
            }) => running += 1,
            Some(ContainerState {
                terminated: Some(t),
                ..
            }) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            _ => {
                if s.last_state
                    .as_ref()
                    .is_some_and(|l| l.terminated.is_some())
                {
                    stopped += 1;
                } else {
                    waiting_n += 1;
                }
            }
        }
    }
    if failed_init && policy == "Never" {
        return "Failed";
    }
    if pending_init || waiting_n > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if running + stopped == containers.len() {
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

/// The status to report for the pod.
pub fn pod_status(inp: &Inputs<'_>) -> PodStatus {
    let pod = inp.pod;
    let old = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let init_specs: &[Container] = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[]);
    let containers: &[Container] = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
    let init: Vec<ContainerStatus> = init_specs
        .iter()
        .map(|c| container_status(inp, c, "PodInitializing", true))
        .collect();
    let initialized = init.iter().all(|s| {
        s.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0)
    });
    let default_wait = if initialized {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<ContainerStatus> = containers
        .iter()
        .map(|c| container_status(inp, c, default_wait, false))
        .collect();
    let mut phase = phase(pod, &init, &statuses);
    // A pod whose containers the agent stopped for deletion keeps the phase it had.
    if inp.terminating
        && let Some(p) = old.and_then(|s| s.phase.as_deref())
        && matches!(p, "Succeeded" | "Failed")
    {
        phase = if p == "Succeeded" {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let sandbox = inp.runtime.latest_sandbox();
    let pod_ip = if crate::pods::spec::host_network(pod) {
        Some(inp.host_ip.to_string())
    } else {
        sandbox
            .and_then(|s| s.ip)
            .map(|ip| ip.to_string())
            .or_else(|| old.and_then(|s| s.pod_ip.clone()))
    };
    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let incomplete: Vec<&str> = init
        .iter()
        .filter(|s| {
            s.state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .is_none_or(|t| t.exit_code != 0)
        })
        .map(|s| s.name.as_str())
        .collect();
    let now = inp.now;
    let all_ready = unready.is_empty();
    let (ready_reason, ready_message) = if terminal {
        (Some("PodCompleted"), None)
    } else if all_ready {
        (None, None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let init_cond = if terminal && !initialized && init.is_empty() {
        condition(old, "Initialized", true, Some("PodCompleted"), None, now)
    } else if initialized {
        condition(old, "Initialized", true, None, None, now)
    } else {
        condition(
            old,
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
            now,
        )
    };
    let sandbox_ready = sandbox.is_some_and(|s| s.ready);
    let mut conditions = vec![
        condition(
            old,
            "PodReadyToStartContainers",
            sandbox_ready,
            None,
            None,
            now,
        ),
        init_cond,
        condition(
            old,
            "Ready",
            all_ready && !terminal,
            ready_reason,
            ready_message.clone(),
            now,
        ),
        condition(
            old,
            "ContainersReady",
            all_ready && !terminal,
            ready_reason,
            ready_message,
            now,
        ),
    ];
    // Conditions others own (PodScheduled, DisruptionTarget, readiness gates) stay.
    for c in old
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        if !OWNED_CONDITIONS.contains(&c.type_.as_str()) {
            conditions.push(c.clone());
        }
    }
    conditions.sort_by_key(|c| match c.type_.as_str() {
        "PodReadyToStartContainers" => 0,
        "Initialized" => 1,
        "Ready" => 2,
        "ContainersReady" => 3,
        "PodScheduled" => 4,
        _ => 5,
    });
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(inp.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: inp.host_ip.to_string(),
        }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: old.and_then(|s| s.start_time.clone()).or(Some(Time(
            Timestamp::from_second(now.as_second()).unwrap_or(now),
        ))),
        qos_class: Some(qos_class(pod).to_string()),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(statuses),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::runtime::Sandbox;
    use k8s_openapi::api::core::v1::PodSpec;

    fn pod(policy: &str, names: &[&str]) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("p".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                containers: names
                    .iter()
                    .map(|n| Container {
                        name: n.to_string(),
                        image: Some("nginx".into()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn inst(name: &str, attempt: u32, state: State, exit: i32) -> Instance {
        Instance {
            id: format!("{name}{attempt}"),
            name: name.into(),
            attempt,
            sandbox_id: "s".into(),
            state,
            created_at: 1_000_000_000,
            started_at: 2_000_000_000,
            finished_at: if state == State::Exited {
                3_000_000_000
            } else {
                0
            },
            exit_code: exit,
            reason: String::new(),
            message: String::new(),
            image: "docker.io/library/nginx:latest".into(),
            image_ref: "docker.io/library/nginx@sha256:ab".into(),
            log_path: String::new(),
        }
    }

    fn status(p: &Pod, rt: &PodRuntime, waiting_: &HashMap<String, Waiting>) -> PodStatus {
        let yes = |_: &str| true;
        pod_status(&Inputs {
            pod: p,
            runtime: rt,
            waiting: waiting_,
            ready: &yes,
            started: &yes,
            host_ip: "10.0.0.1".parse().unwrap(),
            terminating: false,
            now: Timestamp::now(),
        })
    }

    fn sandbox() -> Sandbox {
        Sandbox {
            id: "s".into(),
            attempt: 0,
            ready: true,
            ip: Some("10.42.0.5".parse().unwrap()),
            created_at: 1,
        }
    }

    #[test]
    fn creating_then_running() {
        let p = pod("Always", &["web"]);
        let rt = PodRuntime::default();
        let s = status(&p, &rt, &HashMap::new());
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ContainerCreating")
        );
        let rt = PodRuntime {
            sandboxes: vec![sandbox()],
            instances: vec![inst("web", 0, State::Running, 0)],
        };
        let s = status(&p, &rt, &HashMap::new());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.42.0.5"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("containerd://web0"));
        assert_eq!(cs.image_id, "docker.io/library/nginx@sha256:ab");
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
    }

    #[test]
    fn crash_loop_shows_waiting_with_last_state_and_restarts() {
        let p = pod("Always", &["web"]);
        let rt = PodRuntime {
            sandboxes: vec![sandbox()],
            instances: vec![
                inst("web", 3, State::Exited, 1),
                inst("web", 2, State::Exited, 1),
            ],
        };
        let w = HashMap::from([(
            "web".to_string(),
            Waiting {
                reason: "CrashLoopBackOff".into(),
                message: "back-off 40s restarting failed container=web pod=p_default(u)".into(),
            },
        )]);
        let s = status(&p, &rt, &w);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.restart_count, 3);
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
        assert!(!cs.ready);
    }

    #[test]
    fn completed_and_failed_pods() {
        let p = pod("Never", &["job"]);
        let rt = PodRuntime {
            sandboxes: vec![sandbox()],
            instances: vec![inst("job", 0, State::Exited, 0)],
        };
        let s = status(&p, &rt, &HashMap::new());
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        let t = s.container_statuses.as_ref().unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .clone()
            .unwrap();
        assert_eq!(t.reason.as_deref(), Some("Completed"));
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
        let rt = PodRuntime {
            sandboxes: vec![sandbox()],
            instances: vec![inst("job", 0, State::Exited, 2)],
        };
        assert_eq!(
            status(&p, &rt, &HashMap::new()).phase.as_deref(),
            Some("Failed")
        );
        let p = pod("OnFailure", &["job"]);
        assert_eq!(
            status(&p, &rt, &HashMap::new()).phase.as_deref(),
            Some("Running")
        );
    }

    #[test]
    fn image_pull_errors_keep_the_pod_pending() {
        let p = pod("Always", &["web"]);
        let w = HashMap::from([(
            "web".to_string(),
            Waiting {
                reason: "ImagePullBackOff".into(),
                message: "Back-off pulling image \"nope\"".into(),
            },
        )]);
        let rt = PodRuntime {
            sandboxes: vec![sandbox()],
            instances: vec![],
        };
        let s = status(&p, &rt, &w);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let cond = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            cond.message.as_deref(),
            Some("containers with unready status: [web]")
        );
    }
}
