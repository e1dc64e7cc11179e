//! One pod sync (`SyncPod` / `SyncTerminatingPod` in upstream's kubelet and
//! `kuberuntime_manager.go`): compute what the runtime must do to match the pod, do it, and
//! report the status.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use informers::EventType;
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};

use super::runtime::{Instance, PodRuntime, State, pod_runtime};
use super::spec::{self, ContainerParams, name_of, ns_of, uid_of};
use super::status::{self, Inputs, Waiting};
use super::{BACKOFF_INITIAL, BACKOFF_MAX, Backoff, Shared};
use crate::cri::{CriError, api};
use crate::probe::RunningContainer;

/// Errors of a sync; the worker retries after a short delay.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The runtime failed.
    #[error(transparent)]
    Cri(#[from] CriError),
    /// The API server failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// A local file operation failed.
    #[error("{0}")]
    Io(String),
}

impl From<tonic::Status> for SyncError {
    fn from(s: tonic::Status) -> Self {
        SyncError::Cri(CriError::Status(s))
    }
}

fn pod_desc(pod: &Pod) -> String {
    format!("{}_{}({})", name_of(pod), ns_of(pod), uid_of(pod))
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether the entry is still backing off an event at `since`; if not, doubles it
/// (`flowcontrol.Backoff.IsInBackOffSince` + `Next`).
fn backoff_check(
    map: &mut HashMap<String, Backoff>,
    key: &str,
    since: Instant,
) -> Option<Duration> {
    let now = Instant::now();
    if let Some(b) = map.get(key)
        && now.duration_since(since) < b.delay
    {
        return Some(b.delay - now.duration_since(since));
    }
    let delay = match map.get(key) {
        Some(b) if now.duration_since(b.updated) < 2 * BACKOFF_MAX => {
            (b.delay * 2).min(BACKOFF_MAX)
        }
        _ => BACKOFF_INITIAL,
    };
    map.insert(
        key.to_string(),
        Backoff {
            delay,
            updated: now,
        },
    );
    None
}

fn instant_of(nanos: i64) -> Instant {
    let now_ns = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let ago = Duration::from_nanos(now_ns.saturating_sub(nanos).max(0) as u64);
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

/// Syncs one pod; returns when the worker should sync it again at the latest.
pub async fn sync_pod(sh: &Arc<Shared>, pod: &Arc<Pod>) -> Result<Option<Duration>, SyncError> {
    let uid = uid_of(pod).to_string();
    let rt = pod_runtime(&sh.cri, &uid).await?;
    if pod.metadata.deletion_timestamp.is_some() {
        return terminate(sh, pod, rt).await;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        // Terminal: nothing restarts; free the sandbox (and its IP), keep containers for logs.
        for s in rt.sandboxes.iter().filter(|s| s.ready) {
            stop_sandbox(sh, &s.id).await?;
        }
        sh.probes.remove_pod(&uid);
        return Ok(None);
    }
    let mut requeue: Option<Duration> = None;
    let mut min_requeue = |d: Duration| {
        requeue = Some(requeue.map_or(d, |r: Duration| r.min(d)));
    };

    // Volumes.
    let prepared = match sh.volumes.setup(pod).await {
        Ok(p) => p,
        Err(e) => {
            sh.recorder.event(
                &**pod,
                EventType::Warning,
                "FailedMount",
                format!("MountVolume.SetUp failed: {e}"),
            );
            report_status(sh, pod, &rt, false).await?;
            return Ok(Some(Duration::from_secs(2)));
        }
    };

    // Sandbox.
    let policy = restart_policy(pod).to_string();
    let containers: Vec<Container> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let init_containers: Vec<Container> = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.clone())
        .unwrap_or_default();
    let mut rt = rt;
    let sandbox_ready = rt.latest_sandbox().is_some_and(|s| s.ready);
    if !sandbox_ready {
        let ran_to_completion = policy == "Never"
            && !rt.instances.is_empty()
            && containers
                .iter()
                .all(|c| rt.latest(&c.name).is_some_and(|i| i.state == State::Exited));
        if ran_to_completion {
            report_status(sh, pod, &rt, false).await?;
            return Ok(None);
        }
        let attempt = match rt.latest_sandbox() {
            Some(old) => {
                sh.recorder.event(
                    &**pod,
                    EventType::Normal,
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.",
                );
                for i in rt.running() {
                    stop_container(sh, &i.id, 0).await?;
                }
                for s in &rt.sandboxes {
                    stop_sandbox(sh, &s.id).await?;
                }
                old.attempt + 1
            }
            None => 0,
        };
        let config = spec::sandbox_config(pod, &sh.ctx, attempt, &sh.host_resolv);
        let mut cri = sh.cri.runtime.clone();
        match cri
            .run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
        {
            Ok(_) => {}
            Err(e) => {
                sh.recorder.event(
                    &**pod,
                    EventType::Warning,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {}", e.message()),
                );
                report_status(sh, pod, &rt, false).await?;
                return Ok(Some(Duration::from_secs(5)));
            }
        }
        rt = pod_runtime(&sh.cri, &uid).await?;
    }
    let Some(sandbox) = rt.latest_sandbox().cloned() else {
        return Ok(Some(Duration::from_secs(1)));
    };
    let pod_ip = sandbox.ip;

    // /etc/hosts.
    let hosts_path = sh.pod_dir(&uid).join("etc-hosts");
    if !spec::host_network(pod) {
        let content = spec::hosts_file(pod, pod_ip);
        if tokio::fs::read_to_string(&hosts_path).await.ok().as_deref() != Some(&content) {
            tokio::fs::create_dir_all(sh.pod_dir(&uid))
                .await
                .map_err(|e| SyncError::Io(format!("creating the pod directory: {e}")))?;
            tokio::fs::write(&hosts_path, content)
                .await
                .map_err(|e| SyncError::Io(format!("writing {}: {e}", hosts_path.display())))?;
        }
    }

    let mut changed = false;
    // Init containers, in order: each must succeed before the next starts.
    let mut init_done = true;
    for c in &init_containers {
        match rt.latest(&c.name) {
            Some(i) if i.state == State::Exited && i.exit_code == 0 => continue,
            Some(i) if matches!(i.state, State::Running) => {
                init_done = false;
                break;
            }
            Some(i) if i.state == State::Exited => {
                init_done = false;
                if policy == "Never" {
                    break;
                }
                let attempt = i.attempt + 1;
                let since = instant_of(i.finished_at);
                if let Some(wait) = crash_backoff(sh, pod, c, since) {
                    min_requeue(wait);
                } else {
                    changed |=
                        start_container(sh, pod, c, attempt, &sandbox, &prepared, &hosts_path)
                            .await?;
                }
                break;
            }
            other => {
                init_done = false;
                let attempt = other.map_or(0, |i| i.attempt + 1);
                changed |=
                    start_container(sh, pod, c, attempt, &sandbox, &prepared, &hosts_path).await?;
                break;
            }
        }
    }

    if init_done {
        let unhealthy = sh
            .states
            .lock()
            .get(&uid)
            .map(|s| s.unhealthy.clone())
            .unwrap_or_default();
        for c in &containers {
            let latest = rt.latest(&c.name).cloned();
            match latest {
                None => {
                    changed |=
                        start_container(sh, pod, c, 0, &sandbox, &prepared, &hosts_path).await?;
                }
                Some(i) if i.state == State::Running => {
                    if unhealthy.contains(&i.id) {
                        sh.recorder.event(
                            &**pod,
                            EventType::Normal,
                            "Killing",
                            format!(
                                "Container {} failed liveness probe, will be restarted",
                                c.name
                            ),
                        );
                        kill_container(sh, pod, c, &i).await?;
                        if let Some(st) = sh.states.lock().get_mut(&uid) {
                            st.unhealthy.remove(&i.id);
                        }
                        changed = true;
                        if status::should_restart(&policy, 137) {
                            changed |= start_container(
                                sh,
                                pod,
                                c,
                                i.attempt + 1,
                                &sandbox,
                                &prepared,
                                &hosts_path,
                            )
                            .await?;
                        }
                    }
                }
                Some(i) if i.state == State::Exited || i.state == State::Unknown => {
                    if !status::should_restart(&policy, i.exit_code) {
                        clear_waiting(sh, &uid, &c.name);
                        continue;
                    }
                    let since = instant_of(i.finished_at.max(i.started_at));
                    if let Some(wait) = crash_backoff(sh, pod, c, since) {
                        min_requeue(wait);
                    } else {
                        changed |= start_container(
                            sh,
                            pod,
                            c,
                            i.attempt + 1,
                            &sandbox,
                            &prepared,
                            &hosts_path,
                        )
                        .await?;
                    }
                }
                Some(i) => {
                    // Created but never started (a failed start): remove it and try again.
                    let _ = sh
                        .cri
                        .runtime
                        .clone()
                        .remove_container(api::RemoveContainerRequest {
                            container_id: i.id.clone(),
                        })
                        .await;
                    changed |= start_container(
                        sh,
                        pod,
                        c,
                        i.attempt + 1,
                        &sandbox,
                        &prepared,
                        &hosts_path,
                    )
                    .await?;
                }
            }
        }
    }
    // Containers with a waiting reason (image pull, config errors) are retried after the pod
    // worker back-off (upstream's 10 s), so ErrImagePull shows before ImagePullBackOff.
    if sh
        .states
        .lock()
        .get(&uid)
        .is_some_and(|s| !s.waiting.is_empty())
    {
        min_requeue(Duration::from_secs(10));
    }
    if changed {
        rt = pod_runtime(&sh.cri, &uid).await?;
        gc_instances(sh, &rt).await;
    }
    let running: Vec<RunningContainer> = rt
        .running()
        .map(|i| RunningContainer {
            name: i.name.clone(),
            id: i.id.clone(),
            started_at: SystemTime::UNIX_EPOCH + Duration::from_nanos(i.started_at.max(0) as u64),
        })
        .collect();
    sh.probes.sync_pod(pod, pod_ip, &running);
    if report_status(sh, pod, &rt, false).await? {
        // Terminal now: nothing restarts; free the sandbox (and its IP), keep the containers
        // for their logs.
        sh.probes.remove_pod(&uid);
        for s in rt.sandboxes.iter().filter(|s| s.ready) {
            stop_sandbox(sh, &s.id).await?;
        }
        return Ok(None);
    }
    Ok(requeue)
}

fn clear_waiting(sh: &Shared, uid: &str, name: &str) {
    if let Some(st) = sh.states.lock().get_mut(uid) {
        st.waiting.remove(name);
    }
}

fn set_waiting(sh: &Shared, uid: &str, name: &str, reason: &str, message: String) {
    sh.states
        .lock()
        .entry(uid.to_string())
        .or_default()
        .waiting
        .insert(
            name.to_string(),
            Waiting {
                reason: reason.to_string(),
                message,
            },
        );
}

/// Restart back-off of a crashed container: `Some(remaining)` while it must wait (and the
/// container shows CrashLoopBackOff).
fn crash_backoff(sh: &Shared, pod: &Pod, c: &Container, since: Instant) -> Option<Duration> {
    let uid = uid_of(pod);
    let wait = {
        let mut states = sh.states.lock();
        let st = states.entry(uid.to_string()).or_default();
        backoff_check(&mut st.restart_backoff, &c.name, since).map(|w| {
            let delay = st
                .restart_backoff
                .get(&c.name)
                .map_or(BACKOFF_INITIAL, |b| b.delay);
            (w, delay)
        })
    };
    let (wait, delay) = wait?;
    set_waiting(
        sh,
        uid,
        &c.name,
        "CrashLoopBackOff",
        format!(
            "back-off {} restarting failed container={} pod={}",
            go_duration(delay),
            c.name,
            pod_desc(pod)
        ),
    );
    sh.recorder.event(
        pod,
        EventType::Warning,
        "BackOff",
        format!(
            "Back-off restarting failed container {} in pod {}",
            c.name,
            pod_desc(pod)
        ),
    );
    Some(wait)
}

/// Formats a duration like Go's `time.Duration.String` for whole seconds (`10s`, `2m40s`, `5m0s`).
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Makes sure the image is present, pulling per imagePullPolicy; returns the image to run, or
/// records why not.
async fn ensure_image(sh: &Shared, pod: &Pod, c: &Container) -> Result<Option<String>, SyncError> {
    let uid = uid_of(pod);
    let image = c.image.clone().unwrap_or_default();
    if !spec::valid_image_ref(&image) {
        let msg = format!(
            "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format"
        );
        sh.recorder
            .event(pod, EventType::Warning, "InspectFailed", msg.clone());
        set_waiting(sh, uid, &c.name, "InvalidImageName", msg);
        return Ok(None);
    }
    let tagged = image.contains('@') || {
        let last = image.rsplit('/').next().unwrap_or(&image);
        last.contains(':')
    };
    let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
        if !tagged || image.ends_with(":latest") {
            "Always".to_string()
        } else {
            "IfNotPresent".to_string()
        }
    });
    let mut images = sh.cri.images.clone();
    let present = images
        .image_status(api::ImageStatusRequest {
            image: Some(api::ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await?
        .into_inner()
        .image;
    if let Some(img) = &present
        && policy != "Always"
    {
        let _ = img;
        sh.recorder.event(
            pod,
            EventType::Normal,
            "Pulled",
            format!("Container image \"{image}\" already present on machine"),
        );
        return Ok(Some(image));
    }
    if policy == "Never" {
        let msg = format!("Container image \"{image}\" is not present with pull policy of Never");
        sh.recorder
            .event(pod, EventType::Warning, "ErrImageNeverPull", msg.clone());
        set_waiting(sh, uid, &c.name, "ErrImageNeverPull", msg);
        return Ok(None);
    }
    // Back-off after failed pulls.
    let in_backoff = {
        let mut states = sh.states.lock();
        let st = states.entry(uid.to_string()).or_default();
        st.pull_backoff
            .get(&image)
            .is_some_and(|b| b.updated.elapsed() < b.delay)
    };
    if in_backoff {
        let msg = format!("Back-off pulling image \"{image}\"");
        sh.recorder
            .event(pod, EventType::Normal, "BackOff", msg.clone());
        set_waiting(sh, uid, &c.name, "ImagePullBackOff", msg);
        return Ok(None);
    }
    sh.recorder.event(
        pod,
        EventType::Normal,
        "Pulling",
        format!("Pulling image \"{image}\""),
    );
    let started = Instant::now();
    match images
        .pull_image(api::PullImageRequest {
            image: Some(api::ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        })
        .await
    {
        Ok(r) => {
            let image_ref = r.into_inner().image_ref;
            let secs = started.elapsed().as_secs_f64();
            let size = images
                .image_status(api::ImageStatusRequest {
                    image: Some(api::ImageSpec {
                        image: image.clone(),
                        ..Default::default()
                    }),
                    verbose: false,
                })
                .await
                .ok()
                .and_then(|r| r.into_inner().image)
                .map_or(0, |i| i.size);
            sh.recorder.event(
                pod,
                EventType::Normal,
                "Pulled",
                format!(
                    "Successfully pulled image \"{image}\" in {secs:.3}s ({secs:.3}s including waiting). Image size: {size} bytes."
                ),
            );
            if let Some(st) = sh.states.lock().get_mut(uid) {
                st.pull_backoff.remove(&image);
            }
            let _ = image_ref;
            Ok(Some(image))
        }
        Err(e) => {
            let msg = format!("Failed to pull image \"{image}\": {}", e.message());
            sh.recorder
                .event(pod, EventType::Warning, "Failed", msg.clone());
            sh.recorder
                .event(pod, EventType::Warning, "Failed", "Error: ErrImagePull");
            {
                let mut states = sh.states.lock();
                let st = states.entry(uid.to_string()).or_default();
                let delay = match st.pull_backoff.get(&image) {
                    Some(b) => (b.delay * 2).min(BACKOFF_MAX),
                    None => BACKOFF_INITIAL,
                };
                st.pull_backoff.insert(
                    image.clone(),
                    Backoff {
                        delay,
                        updated: Instant::now(),
                    },
                );
            }
            set_waiting(sh, uid, &c.name, "ErrImagePull", msg);
            Ok(None)
        }
    }
}

/// Creates and starts one container instance; returns whether the runtime changed.
async fn start_container(
    sh: &Shared,
    pod: &Pod,
    c: &Container,
    attempt: u32,
    sandbox: &super::runtime::Sandbox,
    prepared: &HashMap<String, crate::volumes::PreparedVolume>,
    hosts_path: &std::path::Path,
) -> Result<bool, SyncError> {
    let uid = uid_of(pod);
    let Some(image) = ensure_image(sh, pod, c).await? else {
        return Ok(false);
    };
    let envs = match spec::container_env(pod, c, &sh.ctx, sandbox.ip, sh.objects.as_ref()) {
        Ok(e) => e,
        Err(e) => {
            sh.recorder
                .event(pod, EventType::Warning, "Failed", format!("Error: {e}"));
            set_waiting(sh, uid, &c.name, "CreateContainerConfigError", e.0);
            return Ok(false);
        }
    };
    let mut mounts = match sh.volumes.container_mounts(pod, c, prepared) {
        Ok(m) => m,
        Err(e) => {
            sh.recorder
                .event(pod, EventType::Warning, "Failed", format!("Error: {e}"));
            set_waiting(
                sh,
                uid,
                &c.name,
                "CreateContainerConfigError",
                e.to_string(),
            );
            return Ok(false);
        }
    };
    if !spec::host_network(pod) && !mounts.iter().any(|m| m.container_path == "/etc/hosts") {
        mounts.push(api::Mount {
            container_path: "/etc/hosts".into(),
            host_path: hosts_path.display().to_string(),
            ..Default::default()
        });
    }
    let log_dir = spec::log_dir(&sh.ctx, pod);
    let _ = tokio::fs::create_dir_all(log_dir.join(&c.name)).await;
    let config = spec::container_config(
        pod,
        c,
        ContainerParams {
            attempt,
            envs,
            mounts,
            image: &image,
        },
    );
    let sandbox_config = spec::sandbox_config(pod, &sh.ctx, sandbox.attempt, &sh.host_resolv);
    let mut rt = sh.cri.runtime.clone();
    let id = match rt
        .create_container(api::CreateContainerRequest {
            pod_sandbox_id: sandbox.id.clone(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        })
        .await
    {
        Ok(r) => r.into_inner().container_id,
        Err(e) => {
            let msg = e.message().to_string();
            sh.recorder
                .event(pod, EventType::Warning, "Failed", format!("Error: {msg}"));
            set_waiting(sh, uid, &c.name, "CreateContainerError", msg);
            return Ok(false);
        }
    };
    sh.recorder.event(
        pod,
        EventType::Normal,
        "Created",
        format!("Created container: {}", c.name),
    );
    if let Err(e) = rt
        .start_container(api::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
    {
        let msg = e.message().to_string();
        sh.recorder.event(
            pod,
            EventType::Warning,
            "Failed",
            format!("Error: failed to start container \"{}\": {msg}", c.name),
        );
        // The instance stays as an exited container (StartError); restarts back off.
        clear_waiting(sh, uid, &c.name);
        return Ok(true);
    }
    clear_waiting(sh, uid, &c.name);
    sh.recorder.event(
        pod,
        EventType::Normal,
        "Started",
        format!("Started container {}", c.name),
    );
    if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref())
        && let Err(msg) = run_hook(sh, &id, h, sandbox.ip, 30).await
    {
        sh.recorder.event(
            pod,
            EventType::Warning,
            "FailedPostStartHook",
            format!("PostStartHook failed: {msg}"),
        );
        let _ = rt
            .stop_container(api::StopContainerRequest {
                container_id: id,
                timeout: 0,
            })
            .await;
    }
    Ok(true)
}

/// Runs a lifecycle hook (exec, httpGet or sleep).
async fn run_hook(
    sh: &Shared,
    container_id: &str,
    h: &LifecycleHandler,
    pod_ip: Option<IpAddr>,
    timeout_secs: i64,
) -> Result<(), String> {
    if let Some(exec) = &h.exec {
        let r = sh
            .cri
            .runtime
            .clone()
            .exec_sync(api::ExecSyncRequest {
                container_id: container_id.to_string(),
                cmd: exec.command.clone().unwrap_or_default(),
                timeout: timeout_secs,
            })
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner();
        if r.exit_code != 0 {
            return Err(format!(
                "command '{}' exited with {}: {}",
                exec.command.clone().unwrap_or_default().join(" "),
                r.exit_code,
                String::from_utf8_lossy(&r.stderr)
            ));
        }
        return Ok(());
    }
    if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64)).await;
        return Ok(());
    }
    if let Some(g) = &h.http_get {
        let host = g
            .host
            .clone()
            .or(pod_ip.map(|i| i.to_string()))
            .unwrap_or_default();
        let port = match &g.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p) => *p,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(_) => 80,
        };
        let addr = format!("{host}:{port}");
        let path = g.path.clone().unwrap_or_else(|| "/".into());
        let fut = async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(&addr).await?;
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-lifecycle/1.35\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
            let mut buf = vec![0u8; 64];
            let n = s.read(&mut buf).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..n]).to_string())
        };
        return match tokio::time::timeout(Duration::from_secs(timeout_secs.max(1) as u64), fut)
            .await
        {
            Ok(Ok(head))
                if head
                    .split_whitespace()
                    .nth(1)
                    .is_some_and(|c| c.starts_with('2') || c.starts_with('3')) =>
            {
                Ok(())
            }
            Ok(Ok(head)) => Err(format!(
                "HTTP lifecycle hook failed: {}",
                head.lines().next().unwrap_or("")
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timeout".into()),
        };
    }
    Ok(())
}

async fn stop_container(sh: &Shared, id: &str, timeout: i64) -> Result<(), SyncError> {
    match sh
        .cri
        .runtime
        .clone()
        .stop_container(api::StopContainerRequest {
            container_id: id.to_string(),
            timeout,
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn stop_sandbox(sh: &Shared, id: &str) -> Result<(), SyncError> {
    match sh
        .cri
        .runtime
        .clone()
        .stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn grace_of(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or(pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30)
        .max(0)
}

/// Stops a container gracefully: preStop hook, then StopContainer with what is left of the
/// grace period.
async fn kill_container(
    sh: &Shared,
    pod: &Pod,
    c: &Container,
    i: &Instance,
) -> Result<(), SyncError> {
    kill_with_grace(sh, pod, Some(c), i, grace_of(pod)).await
}

async fn kill_with_grace(
    sh: &Shared,
    pod: &Pod,
    c: Option<&Container>,
    i: &Instance,
    grace: i64,
) -> Result<(), SyncError> {
    let started = Instant::now();
    if let Some(h) = c
        .and_then(|c| c.lifecycle.as_ref())
        .and_then(|l| l.pre_stop.as_ref())
        && grace > 0
    {
        let ip = Shared::pod_ip(pod);
        let hook = run_hook(sh, &i.id, h, ip, grace);
        if let Ok(Err(msg)) = tokio::time::timeout(Duration::from_secs(grace as u64), hook).await {
            sh.recorder.event(
                pod,
                EventType::Warning,
                "FailedPreStopHook",
                format!("PreStopHook failed: {msg}"),
            );
        }
    }
    let left = (grace - started.elapsed().as_secs() as i64).max(if grace > 0 { 2 } else { 0 });
    stop_container(sh, &i.id, left).await
}

/// Terminates a pod being deleted: stops its containers within the grace period, reports the
/// final status, deletes the pod object for good and cleans up.
async fn terminate(
    sh: &Arc<Shared>,
    pod: &Arc<Pod>,
    rt: PodRuntime,
) -> Result<Option<Duration>, SyncError> {
    let uid = uid_of(pod).to_string();
    sh.probes.remove_pod(&uid);
    let grace = grace_of(pod);
    let already = sh.states.lock().get(&uid).is_some_and(|s| s.killed);
    if !already {
        let specs: Vec<Container> = pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .cloned()
            .collect();
        let kills = rt.running().map(|i| {
            let c = specs.iter().find(|c| c.name == i.name);
            if let Some(c) = c {
                sh.recorder.event(
                    &**pod,
                    EventType::Normal,
                    "Killing",
                    format!("Stopping container {}", c.name),
                );
            }
            kill_with_grace(sh, pod, c, i, grace)
        });
        for r in futures::future::join_all(kills).await {
            r?;
        }
        for s in &rt.sandboxes {
            stop_sandbox(sh, &s.id).await?;
        }
        sh.states.lock().entry(uid.clone()).or_default().killed = true;
    }
    let rt = pod_runtime(&sh.cri, &uid).await?;
    report_status(sh, pod, &rt, true).await?;
    let api: Api<Pod> = Api::namespaced(sh.client.clone(), ns_of(pod));
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name_of(pod), &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    cleanup(sh, &uid, &rt).await;
    Ok(None)
}

/// The pod is gone from the API: stop and remove whatever is left of it.
pub async fn remove_pod(sh: &Arc<Shared>, uid: &str) -> Result<(), SyncError> {
    sh.probes.remove_pod(uid);
    let rt = pod_runtime(&sh.cri, uid).await?;
    for i in rt.running() {
        stop_container(sh, &i.id, 0).await?;
    }
    for s in &rt.sandboxes {
        stop_sandbox(sh, &s.id).await?;
    }
    cleanup(sh, uid, &rt).await;
    Ok(())
}

/// Removes a stopped pod's sandboxes (and with them its containers), volumes, logs, directory
/// and cgroup.
pub async fn cleanup(sh: &Shared, uid: &str, rt: &PodRuntime) {
    let mut cri = sh.cri.runtime.clone();
    for s in &rt.sandboxes {
        let _ = cri
            .stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            })
            .await;
        if let Err(e) = cri
            .remove_pod_sandbox(api::RemovePodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            })
            .await
            && e.code() != tonic::Code::NotFound
        {
            tracing::warn!(pod = uid, error = %e.message(), "removing a sandbox");
        }
    }
    if let Err(e) = sh.volumes.teardown(uid).await {
        tracing::warn!(pod = uid, error = %e, "tearing down volumes");
    }
    let _ = tokio::fs::remove_dir_all(sh.pod_dir(uid)).await;
    if let Ok(mut rd) = tokio::fs::read_dir(&sh.ctx.pod_log_dir).await {
        while let Ok(Some(e)) = rd.next_entry().await {
            if e.file_name()
                .to_string_lossy()
                .ends_with(&format!("_{uid}"))
            {
                let _ = tokio::fs::remove_dir_all(e.path()).await;
            }
        }
    }
    crate::cgroups::remove_pod(uid).await;
}

/// Removes container instances older than the previous one of each container (upstream's
/// container GC keeps one dead instance per container for `logs --previous`).
async fn gc_instances(sh: &Shared, rt: &PodRuntime) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut cri = sh.cri.runtime.clone();
    for i in &rt.instances {
        let n = seen.entry(i.name.as_str()).or_default();
        *n += 1;
        if *n > 2 && i.state != State::Running {
            let _ = cri
                .remove_container(api::RemoveContainerRequest {
                    container_id: i.id.clone(),
                })
                .await;
        }
    }
}

/// Computes the pod's status and writes it if it changed.
async fn report_status(
    sh: &Shared,
    pod: &Pod,
    rt: &PodRuntime,
    terminating: bool,
) -> Result<bool, SyncError> {
    let uid = uid_of(pod).to_string();
    let waiting = {
        let mut states = sh.states.lock();
        let st = states.entry(uid.clone()).or_default();
        st.instances = rt
            .instances
            .iter()
            .map(|i| {
                (
                    i.id.clone(),
                    (
                        i.name.clone(),
                        i.log_path.clone(),
                        i.state == State::Running,
                    ),
                )
            })
            .collect();
        st.sandbox = rt
            .latest_sandbox()
            .filter(|s| s.ready)
            .map(|s| (s.id.clone(), s.ip));
        st.waiting.clone()
    };
    let ready = |name: &str| sh.probes.is_ready(&uid, name);
    let started = |name: &str| sh.probes.is_started(&uid, name);
    let st = status::pod_status(&Inputs {
        pod,
        runtime: rt,
        waiting: &waiting,
        ready: &ready,
        started: &started,
        host_ip: sh.ctx.node_ip,
        terminating,
        now: Timestamp::now(),
    });
    let value = serde_json::to_value(&st).map_err(|e| SyncError::Io(e.to_string()))?;
    let current = pod
        .status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok());
    let terminal = matches!(st.phase.as_deref(), Some("Succeeded" | "Failed"));
    if sh
        .states
        .lock()
        .get(&uid)
        .and_then(|s| s.last_status.as_ref())
        == Some(&value)
        || current.as_ref() == Some(&value)
    {
        sh.states.lock().entry(uid).or_default().last_status = Some(value);
        return Ok(terminal);
    }
    let api: Api<Pod> = Api::namespaced(sh.client.clone(), ns_of(pod));
    let patch = serde_json::json!({ "metadata": { "uid": uid }, "status": value });
    match api
        .patch_status(name_of(pod), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            sh.states.lock().entry(uid).or_default().last_status = Some(value);
            Ok(terminal)
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_and_caps() {
        let mut m = HashMap::new();
        let long_ago = Instant::now() - Duration::from_secs(1000);
        assert_eq!(backoff_check(&mut m, "c", long_ago), None);
        assert_eq!(m["c"].delay, Duration::from_secs(10));
        // A crash just now is inside the 10 s window.
        let w = backoff_check(&mut m, "c", Instant::now()).unwrap();
        assert!(w <= Duration::from_secs(10) && w > Duration::from_secs(9));
        assert_eq!(backoff_check(&mut m, "c", long_ago), None);
        assert_eq!(m["c"].delay, Duration::from_secs(20));
        for _ in 0..10 {
            backoff_check(&mut m, "c", long_ago);
        }
        assert_eq!(m["c"].delay, BACKOFF_MAX);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(160)), "2m40s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
