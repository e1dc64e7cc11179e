//! What the runtime holds for a pod (`GetPodStatus`): its sandboxes and every container
//! instance with its state, read from CRI.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::cri::{Cri, CriError, api};
use crate::pods::spec::{ANNOTATION_RESTART_COUNT, LABEL_CONTAINER_NAME, LABEL_POD_UID};

/// One sandbox of a pod.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// CRI id.
    pub id: String,
    /// Attempt number.
    pub attempt: u32,
    /// Whether it is ready (running).
    pub ready: bool,
    /// Its IP.
    pub ip: Option<IpAddr>,
    /// Creation time in nanoseconds.
    pub created_at: i64,
}

/// The state of a container instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited.
    Exited,
    /// Unknown to the runtime.
    Unknown,
}

/// One container instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// CRI id.
    pub id: String,
    /// The container name in the pod spec.
    pub name: String,
    /// The restart count of this instance.
    pub attempt: u32,
    /// The sandbox it runs in.
    pub sandbox_id: String,
    /// State.
    pub state: State,
    /// Times in nanoseconds since the epoch (0 = not yet).
    pub created_at: i64,
    /// Start time.
    pub started_at: i64,
    /// Finish time.
    pub finished_at: i64,
    /// Exit code.
    pub exit_code: i32,
    /// The runtime's reason (`Completed`, `Error`, `OOMKilled`).
    pub reason: String,
    /// The runtime's message.
    pub message: String,
    /// The image as specified.
    pub image: String,
    /// The resolved image (`docker.io/library/nginx@sha256:…`).
    pub image_ref: String,
    /// The absolute log path.
    pub log_path: String,
}

/// A pod's runtime state; instances are sorted newest first.
#[derive(Debug, Clone, Default)]
pub struct PodRuntime {
    /// Sandboxes, newest first.
    pub sandboxes: Vec<Sandbox>,
    /// Container instances, newest first.
    pub instances: Vec<Instance>,
}

impl PodRuntime {
    /// The newest sandbox.
    pub fn latest_sandbox(&self) -> Option<&Sandbox> {
        self.sandboxes.first()
    }

    /// The newest instance of a container.
    pub fn latest(&self, name: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.name == name)
    }

    /// The instance before the newest (for lastState and `logs --previous`).
    pub fn previous(&self, name: &str) -> Option<&Instance> {
        self.instances.iter().filter(|i| i.name == name).nth(1)
    }

    /// Running instances.
    pub fn running(&self) -> impl Iterator<Item = &Instance> {
        self.instances.iter().filter(|i| i.state == State::Running)
    }
}

fn state_of(s: i32) -> State {
    match api::ContainerState::try_from(s) {
        Ok(api::ContainerState::ContainerCreated) => State::Created,
        Ok(api::ContainerState::ContainerRunning) => State::Running,
        Ok(api::ContainerState::ContainerExited) => State::Exited,
        _ => State::Unknown,
    }
}

/// Reads the sandboxes and containers of the pod with `uid`.
pub async fn pod_runtime(cri: &Cri, uid: &str) -> Result<PodRuntime, CriError> {
    let selector = HashMap::from([(LABEL_POD_UID.to_string(), uid.to_string())]);
    let mut rt = cri.runtime.clone();
    let sandboxes = rt
        .list_pod_sandbox(api::ListPodSandboxRequest {
            filter: Some(api::PodSandboxFilter {
                label_selector: selector.clone(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .items;
    let containers = rt
        .list_containers(api::ListContainersRequest {
            filter: Some(api::ContainerFilter {
                label_selector: selector,
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .containers;
    let mut out = PodRuntime::default();
    for s in sandboxes {
        let ready = s.state == api::PodSandboxState::SandboxReady as i32;
        let ip = if ready {
            match rt
                .pod_sandbox_status(api::PodSandboxStatusRequest {
                    pod_sandbox_id: s.id.clone(),
                    verbose: false,
                })
                .await
            {
                Ok(st) => st
                    .into_inner()
                    .status
                    .and_then(|st| st.network)
                    .and_then(|n| n.ip.parse().ok()),
                Err(s) if s.code() == tonic::Code::NotFound => None,
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        out.sandboxes.push(Sandbox {
            attempt: s.metadata.as_ref().map_or(0, |m| m.attempt),
            id: s.id,
            ready,
            ip,
            created_at: s.created_at,
        });
    }
    out.sandboxes
        .sort_by_key(|x| std::cmp::Reverse((x.attempt, x.created_at)));
    for c in containers {
        let st = match rt
            .container_status(api::ContainerStatusRequest {
                container_id: c.id.clone(),
                verbose: false,
            })
            .await
        {
            Ok(r) => r.into_inner().status,
            Err(s) if s.code() == tonic::Code::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let Some(st) = st else { continue };
        let name = c
            .labels
            .get(LABEL_CONTAINER_NAME)
            .cloned()
            .or_else(|| c.metadata.as_ref().map(|m| m.name.clone()))
            .unwrap_or_default();
        let attempt = c
            .annotations
            .get(ANNOTATION_RESTART_COUNT)
            .and_then(|v| v.parse().ok())
            .or_else(|| c.metadata.as_ref().map(|m| m.attempt))
            .unwrap_or(0);
        out.instances.push(Instance {
            id: c.id,
            name,
            attempt,
            sandbox_id: c.pod_sandbox_id,
            state: state_of(st.state),
            created_at: st.created_at,
            started_at: st.started_at,
            finished_at: st.finished_at,
            exit_code: st.exit_code,
            reason: st.reason,
            message: st.message,
            image: st.image.map(|i| i.image).unwrap_or_default(),
            image_ref: st.image_ref,
            log_path: st.log_path,
        });
    }
    out.instances
        .sort_by_key(|x| std::cmp::Reverse((x.attempt, x.created_at)));
    Ok(out)
}
