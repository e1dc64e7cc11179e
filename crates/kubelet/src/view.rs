//! What the streaming server sees of the pods: containers by name (current or previous
//! instance) with their log files, and pod sandboxes, answered from the pod status and the
//! agent's last view of the runtime, with upstream's messages for containers that have not run.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ContainerStatus;

use crate::pods::Shared;
use crate::server::{ContainerRef, PodView, SandboxRef};

/// The agent's [`PodView`].
pub struct View {
    sh: Arc<Shared>,
}

impl View {
    /// A view over the agent's pods.
    pub fn new(sh: Arc<Shared>) -> View {
        View { sh }
    }
}

fn strip_runtime(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, i)| i)
}

/// The container ID logs are read from (`validateContainerLogStatus`).
pub fn log_container_id(
    status: Option<&ContainerStatus>,
    container: &str,
    pod: &str,
    previous: bool,
) -> Result<String, String> {
    let Some(st) = status else {
        return Err(format!(
            "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
        ));
    };
    let last = st
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.container_id.clone());
    if previous {
        return last.ok_or_else(|| {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        });
    }
    let state = st.state.as_ref();
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        return t
            .container_id
            .clone()
            .or(st.container_id.clone())
            .ok_or_else(|| format!("container \"{container}\" in pod \"{pod}\" is terminated"));
    }
    if state.and_then(|s| s.running.as_ref()).is_some() {
        return st
            .container_id
            .clone()
            .ok_or_else(|| format!("container \"{container}\" in pod \"{pod}\" is not available"));
    }
    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        if let Some(id) = last {
            return Ok(id);
        }
        let reason = w
            .reason
            .clone()
            .unwrap_or_else(|| "ContainerCreating".into());
        let msg = match reason.as_str() {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                format!(
                    "container \"{container}\" in pod \"{pod}\" is waiting to start: trying and failing to pull image"
                )
            }
            "CreateContainerConfigError" | "CreateContainerError" => {
                format!("container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}")
            }
            _ => {
                format!("container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}")
            }
        };
        return Err(msg);
    }
    Err(format!(
        "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
    ))
}

impl PodView for View {
    fn container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<ContainerRef, String> {
        let p = self
            .sh
            .pods
            .get(namespace, pod)
            .ok_or_else(|| format!("pod \"{pod}\" not found"))?;
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let spec = p.spec.as_ref();
        let in_spec = spec.is_some_and(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .any(|c| c.name == container)
        });
        if !in_spec {
            return Err(format!("container {container} is not valid for pod {pod}"));
        }
        let status = p.status.as_ref().and_then(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
                .find(|c| c.name == container)
        });
        let id = log_container_id(status, container, pod, previous)?;
        let id = strip_runtime(&id).to_string();
        let states = self.sh.states.lock();
        let inst = states.get(&uid).and_then(|s| s.instances.get(&id));
        match inst {
            Some((_, log_path, running)) => Ok(ContainerRef {
                id: id.clone(),
                log_path: log_path.into(),
                running: *running,
            }),
            None => Err(format!(
                "container \"{container}\" in pod \"{pod}\" is not available"
            )),
        }
    }

    fn sandbox(&self, namespace: &str, pod: &str) -> Option<SandboxRef> {
        let p = self.sh.pods.get(namespace, pod)?;
        let uid = p.metadata.uid.clone()?;
        let states = self.sh.states.lock();
        let (id, ip) = states.get(&uid)?.sandbox.clone()?;
        Some(SandboxRef { id, ip })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    };

    fn terminated(id: &str) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: Some(id.into()),
                exit_code: 1,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn log_ids_follow_upstream_rules() {
        assert_eq!(
            log_container_id(None, "c", "p", false).unwrap_err(),
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        let running = ContainerStatus {
            name: "c".into(),
            container_id: Some("containerd://b".into()),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            last_state: Some(terminated("containerd://a")),
            ..Default::default()
        };
        assert_eq!(
            log_container_id(Some(&running), "c", "p", false).unwrap(),
            "containerd://b"
        );
        assert_eq!(
            log_container_id(Some(&running), "c", "p", true).unwrap(),
            "containerd://a"
        );
        let crash = ContainerStatus {
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".into()),
                    message: None,
                }),
                ..Default::default()
            }),
            ..running.clone()
        };
        assert_eq!(
            log_container_id(Some(&crash), "c", "p", false).unwrap(),
            "containerd://a"
        );
        let fresh = ContainerStatus {
            last_state: None,
            ..running
        };
        assert_eq!(
            log_container_id(Some(&fresh), "c", "p", true).unwrap_err(),
            "previous terminated container \"c\" in pod \"p\" not found"
        );
        assert_eq!(strip_runtime("containerd://x"), "x");
    }
}
