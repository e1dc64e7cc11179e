//! Liveness, readiness and startup probes: exec, httpGet, tcpSocket and grpc, with upstream's
//! semantics (`pkg/kubelet/prober/`).
//!
//! [`ProbeManager::sync_pod`] starts one worker task per probe of each running container
//! instance. A worker probes on a tokio interval of `periodSeconds` (the first probe right away),
//! skips probes during `initialDelaySeconds`, keeps liveness and readiness idle until the startup
//! probe has succeeded, and applies `successThreshold`/`failureThreshold` to consecutive results.
//! It sends a [`ProbeUpdate`] only when a result is established or changes. A liveness or startup
//! failure (threshold reached) is reported once and then the worker stops: the caller restarts
//! the container and the new instance gets new workers.
//!
//! Not done: upstream's random initial jitter after a kubelet restart, and probe `host` names
//! other than IPs are resolved by the system resolver (as upstream).

pub mod exec;
pub mod grpc;
pub mod http;
pub mod tcp;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::cri::Cri;

/// The User-Agent of HTTP and gRPC probes (upstream `kube-probe/<major>.<minor>`).
pub const USER_AGENT: &str = "kube-probe/1.35";

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// `livenessProbe`: failure restarts the container.
    Liveness,
    /// `readinessProbe`: the container's `ready`.
    Readiness,
    /// `startupProbe`: gates the other two; failure restarts the container.
    Startup,
}

impl ProbeKind {
    /// Upstream's name in messages (`Liveness`, `Readiness`, `Startup`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// A probe result that was established or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeUpdate {
    /// The pod.
    pub pod_uid: String,
    /// The container's name.
    pub container: String,
    /// The CRI id of the container instance probed.
    pub container_id: String,
    /// Which probe.
    pub kind: ProbeKind,
    /// The new result.
    pub success: bool,
    /// For failures upstream's event message (`Liveness probe failed: HTTP probe failed with
    /// statuscode: 500`); empty for successes.
    pub message: String,
}

/// A running container instance, as the pod sync sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningContainer {
    /// The container's name.
    pub name: String,
    /// Its CRI id.
    pub id: String,
    /// When it started.
    pub started_at: SystemTime,
}

/// The outcome of one probe run (upstream `probe.Result` plus its output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Success, with the output.
    Success(String),
    /// Success with a warning (an HTTP redirect to another host was not followed).
    Warning(String),
    /// Failure, with upstream's output text.
    Failure(String),
    /// The probe could not run (bad port name, runtime error): the result is thrown away.
    Unknown(String),
}

/// Everything a handler needs to run one probe.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// The pod's UID.
    pub pod_uid: String,
    /// The container spec.
    pub container: Container,
    /// The CRI id of the container instance.
    pub container_id: String,
    /// Which probe.
    pub kind: ProbeKind,
    /// The probe spec.
    pub probe: Probe,
    /// The pod's IP (the default host of httpGet/tcpSocket, the host of grpc).
    pub pod_ip: Option<IpAddr>,
}

impl ProbeTarget {
    /// `timeoutSeconds` (default 1).
    pub fn timeout(&self) -> Duration {
        secs(self.probe.timeout_seconds, 1)
    }
}

/// Runs one probe; the real one is [`CriProber`], tests pass fakes.
pub trait Prober: Send + Sync + 'static {
    /// Runs the probe of `target` once.
    fn probe<'a>(&'a self, target: &'a ProbeTarget) -> BoxFuture<'a, ProbeOutcome>;
}

/// The real prober: exec through CRI, httpGet, tcpSocket and grpc over the network.
#[derive(Debug, Clone)]
pub struct CriProber {
    cri: Cri,
}

impl CriProber {
    /// A prober running exec probes through `cri`.
    pub fn new(cri: Cri) -> Self {
        CriProber { cri }
    }
}

impl Prober for CriProber {
    fn probe<'a>(&'a self, t: &'a ProbeTarget) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let timeout = t.timeout();
            let p = &t.probe;
            let pod_ip = t.pod_ip.map(|ip| ip.to_string());
            if let Some(e) = &p.exec {
                let cmd =
                    exec::expand_command(e.command.as_deref().unwrap_or_default(), &t.container);
                return exec::run_exec(&self.cri, &t.container_id, cmd, timeout).await;
            }
            if let Some(h) = &p.http_get {
                let port = match resolve_port(&h.port, &t.container) {
                    Ok(p) => p,
                    Err(e) => return ProbeOutcome::Unknown(e),
                };
                let Some(host) = h.host.clone().filter(|h| !h.is_empty()).or(pod_ip) else {
                    return ProbeOutcome::Unknown("the pod has no IP yet".into());
                };
                let req = http::HttpRequest {
                    scheme: h.scheme.as_deref().unwrap_or("HTTP").to_lowercase(),
                    host,
                    port,
                    path: h.path.clone().unwrap_or_default(),
                    headers: h
                        .http_headers
                        .iter()
                        .flatten()
                        .map(|hh| (hh.name.clone(), hh.value.clone()))
                        .collect(),
                };
                return http::run_http(&req, timeout).await;
            }
            if let Some(s) = &p.tcp_socket {
                let port = match resolve_port(&s.port, &t.container) {
                    Ok(p) => p,
                    Err(e) => return ProbeOutcome::Unknown(e),
                };
                let Some(host) = s.host.clone().filter(|h| !h.is_empty()).or(pod_ip) else {
                    return ProbeOutcome::Unknown("the pod has no IP yet".into());
                };
                return tcp::run_tcp(&host, port, timeout).await;
            }
            if let Some(g) = &p.grpc {
                let Ok(port) = u16::try_from(g.port) else {
                    return ProbeOutcome::Unknown(format!("invalid port number: {}", g.port));
                };
                let Some(host) = pod_ip else {
                    return ProbeOutcome::Unknown("the pod has no IP yet".into());
                };
                let service = g.service.as_deref().unwrap_or_default();
                return grpc::run_grpc(&host, port, service, timeout).await;
            }
            ProbeOutcome::Unknown("missing probe handler".into())
        })
    }
}

/// Upstream `probe.ResolveContainerPort`: a number, or the name of one of the container's ports
/// (or a number written as a string).
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let n = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            let found = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port);
            match found.or_else(|| name.parse().ok()) {
                Some(n) => n,
                None => {
                    return Err(format!(
                        "couldn't find port: {name} in container {}",
                        container.name
                    ));
                }
            }
        }
    };
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port number: {n}")),
    }
}

/// Go's `time.Duration` `%v` for whole and fractional seconds (`1s`, `1.5s`, `500ms`).
pub(crate) fn go_duration(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    let v = v.filter(|v| *v > 0).unwrap_or(default);
    Duration::from_secs(v as u64)
}

/// The probe settings with upstream's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    initial_delay: Duration,
    period: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

impl Settings {
    fn new(p: &Probe, kind: ProbeKind) -> Self {
        let success = match kind {
            // Must be 1 for liveness and startup (validation); enforce it.
            ProbeKind::Liveness | ProbeKind::Startup => 1,
            ProbeKind::Readiness => p.success_threshold.filter(|v| *v > 0).unwrap_or(1) as u32,
        };
        Settings {
            initial_delay: Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64),
            period: secs(p.period_seconds, 10),
            success_threshold: success,
            failure_threshold: p.failure_threshold.filter(|v| *v > 0).unwrap_or(3) as u32,
        }
    }
}

/// The probe results of one container instance.
#[derive(Debug, Clone)]
struct Results {
    container_id: String,
    has_readiness: bool,
    /// Readiness: `None` until the first result past a threshold.
    ready: Option<bool>,
    /// Startup: `None` until established; irrelevant without a startup probe.
    started: Option<bool>,
    has_startup: bool,
}

impl Results {
    fn is_started(&self) -> bool {
        !self.has_startup || self.started == Some(true)
    }
}

struct Worker {
    container_id: String,
    cancel: CancellationToken,
    trigger: Arc<Notify>,
}

type ContainerKey = (String, String);
type WorkerKey = (String, String, ProbeKind);

#[derive(Default)]
struct State {
    workers: HashMap<WorkerKey, Worker>,
    results: HashMap<ContainerKey, Results>,
}

struct Inner {
    prober: Arc<dyn Prober>,
    updates: tokio::sync::mpsc::UnboundedSender<ProbeUpdate>,
    shutdown: CancellationToken,
    state: Mutex<State>,
}

/// Runs the probes of the node's pods and keeps their results.
#[derive(Clone)]
pub struct ProbeManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProbeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.inner.state.lock();
        f.debug_struct("ProbeManager")
            .field("workers", &s.workers.len())
            .finish_non_exhaustive()
    }
}

impl ProbeManager {
    /// A manager running exec probes through `cri`; results go to `updates`; every worker
    /// stops on `shutdown`.
    pub fn new(
        cri: Cri,
        updates: tokio::sync::mpsc::UnboundedSender<ProbeUpdate>,
        shutdown: CancellationToken,
    ) -> Self {
        Self::with_prober(Arc::new(CriProber::new(cri)), updates, shutdown)
    }

    /// A manager with another prober (tests).
    pub fn with_prober(
        prober: Arc<dyn Prober>,
        updates: tokio::sync::mpsc::UnboundedSender<ProbeUpdate>,
        shutdown: CancellationToken,
    ) -> Self {
        ProbeManager {
            inner: Arc::new(Inner {
                prober,
                updates,
                shutdown,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Called on every pod sync with the pod and its running containers: starts workers for new
    /// container instances, stops workers of containers that are gone or restarted (new id).
    /// While the pod is being deleted, liveness and startup probes are not run (as upstream).
    pub fn sync_pod(&self, pod: &Pod, pod_ip: Option<IpAddr>, running: &[RunningContainer]) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let spec = pod.spec.as_ref();
        let containers: Vec<&Container> = spec
            .map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .collect()
            })
            .unwrap_or_default();
        let mut state = self.inner.state.lock();
        let state = &mut *state;

        // Stop workers (and forget results) of containers not running as that instance.
        let current = |name: &str| running.iter().find(|r| r.name == name).map(|r| &r.id);
        state.workers.retain(|(pod_uid, name, kind), w| {
            let keep = pod_uid != &uid
                || (current(name) == Some(&w.container_id)
                    && !(terminating && *kind != ProbeKind::Readiness));
            if !keep {
                w.cancel.cancel();
            }
            keep
        });
        state
            .results
            .retain(|(pod_uid, name), r| pod_uid != &uid || current(name) == Some(&r.container_id));

        for rc in running {
            let Some(c) = containers.iter().find(|c| c.name == rc.name) else {
                continue;
            };
            let key = (uid.clone(), rc.name.clone());
            state.results.entry(key).or_insert_with(|| Results {
                container_id: rc.id.clone(),
                has_readiness: c.readiness_probe.is_some(),
                ready: None,
                started: None,
                has_startup: c.startup_probe.is_some(),
            });
            for (kind, probe) in [
                (ProbeKind::Startup, &c.startup_probe),
                (ProbeKind::Liveness, &c.liveness_probe),
                (ProbeKind::Readiness, &c.readiness_probe),
            ] {
                let Some(probe) = probe else { continue };
                if terminating && kind != ProbeKind::Readiness {
                    continue;
                }
                let wkey = (uid.clone(), rc.name.clone(), kind);
                if state.workers.contains_key(&wkey) {
                    continue;
                }
                let cancel = self.inner.shutdown.child_token();
                let trigger = Arc::new(Notify::new());
                state.workers.insert(
                    wkey,
                    Worker {
                        container_id: rc.id.clone(),
                        cancel: cancel.clone(),
                        trigger: trigger.clone(),
                    },
                );
                let target = ProbeTarget {
                    pod_uid: uid.clone(),
                    container: (*c).clone(),
                    container_id: rc.id.clone(),
                    kind,
                    probe: probe.clone(),
                    pod_ip,
                };
                let elapsed = SystemTime::now()
                    .duration_since(rc.started_at)
                    .unwrap_or_default();
                let inner = self.inner.clone();
                tokio::spawn(async move {
                    run_worker(inner, target, elapsed, cancel.clone(), trigger).await;
                    // Marks the worker as finished (it stays registered for this instance).
                    cancel.cancel();
                });
            }
        }
    }

    /// Stops every worker of the pod and forgets its results.
    pub fn remove_pod(&self, pod_uid: &str) {
        let mut state = self.inner.state.lock();
        state.workers.retain(|(uid, _, _), w| {
            if uid == pod_uid {
                w.cancel.cancel();
                false
            } else {
                true
            }
        });
        state.results.retain(|(uid, _), _| uid != pod_uid);
    }

    /// Whether the container is ready: it runs (was passed to [`sync_pod`](Self::sync_pod)),
    /// has started, and its readiness probe succeeded (false until proven; true without a
    /// readiness probe).
    pub fn is_ready(&self, pod_uid: &str, container: &str) -> bool {
        let state = self.inner.state.lock();
        state
            .results
            .get(&(pod_uid.to_string(), container.to_string()))
            .is_some_and(|r| r.is_started() && (!r.has_readiness || r.ready == Some(true)))
    }

    /// Whether the container has started: it runs and its startup probe succeeded (true without
    /// a startup probe).
    pub fn is_started(&self, pod_uid: &str, container: &str) -> bool {
        let state = self.inner.state.lock();
        state
            .results
            .get(&(pod_uid.to_string(), container.to_string()))
            .is_some_and(Results::is_started)
    }

    /// The number of probe workers still running (not stopped, finished or on hold).
    pub fn worker_count(&self) -> usize {
        self.inner
            .state
            .lock()
            .workers
            .values()
            .filter(|w| !w.cancel.is_cancelled())
            .count()
    }
}

impl Inner {
    /// Whether the container instance has started (its startup probe succeeded).
    fn started(&self, t: &ProbeTarget) -> bool {
        let state = self.state.lock();
        state
            .results
            .get(&(t.pod_uid.clone(), t.container.name.clone()))
            .is_some_and(|r| r.container_id == t.container_id && r.is_started())
    }

    /// Records an established result; returns whether it is new or changed.
    fn set_result(&self, t: &ProbeTarget, success: bool) -> bool {
        let mut state = self.state.lock();
        let key = (t.pod_uid.clone(), t.container.name.clone());
        let Some(r) = state.results.get_mut(&key) else {
            return false;
        };
        if r.container_id != t.container_id {
            return false;
        }
        let changed = match t.kind {
            ProbeKind::Readiness => r.ready.replace(success) != Some(success),
            ProbeKind::Startup => r.started.replace(success) != Some(success),
            // Liveness starts as success: only a failure is news (and ends the worker).
            ProbeKind::Liveness => !success,
        };
        if t.kind == ProbeKind::Startup && success {
            // Run liveness and readiness right away instead of at their next tick.
            for kind in [ProbeKind::Liveness, ProbeKind::Readiness] {
                if let Some(w) =
                    state
                        .workers
                        .get(&(t.pod_uid.clone(), t.container.name.clone(), kind))
                {
                    w.trigger.notify_one();
                }
            }
        }
        changed
    }
}

/// One probe of one container instance, until cancelled or (liveness/startup) failed.
async fn run_worker(
    inner: Arc<Inner>,
    target: ProbeTarget,
    running_for: Duration,
    cancel: CancellationToken,
    trigger: Arc<Notify>,
) {
    let settings = Settings::new(&target.probe, target.kind);
    // When initialDelaySeconds is over, on tokio's clock.
    let probing_from = Instant::now() + settings.initial_delay.saturating_sub(running_for);
    let mut ticker = tokio::time::interval(settings.period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last: Option<bool> = None;
    let mut run: u32 = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
            // Probe now, and the next regular probe a period later.
            _ = trigger.notified() => ticker.reset(),
        }
        // A trigger that raced with the tick is served by this probe.
        let _ = futures::FutureExt::now_or_never(trigger.notified());
        if Instant::now() < probing_from {
            continue;
        }
        let started = inner.started(&target);
        match target.kind {
            // Done once started; a new instance gets a new worker.
            ProbeKind::Startup if started => return,
            ProbeKind::Liveness | ProbeKind::Readiness if !started => continue,
            _ => {}
        }
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            o = inner.prober.probe(&target) => o,
        };
        let (success, output) = match outcome {
            ProbeOutcome::Success(o) => (true, o),
            ProbeOutcome::Warning(o) => {
                tracing::info!(
                    pod = target.pod_uid,
                    container = target.container.name,
                    probe = target.kind.as_str(),
                    output = o,
                    "probe warning"
                );
                (true, o)
            }
            ProbeOutcome::Failure(o) => (false, o),
            ProbeOutcome::Unknown(e) => {
                tracing::warn!(
                    pod = target.pod_uid,
                    container = target.container.name,
                    probe = target.kind.as_str(),
                    error = e,
                    "probe errored"
                );
                continue;
            }
        };
        if last == Some(success) {
            run = run.saturating_add(1);
        } else {
            last = Some(success);
            run = 1;
        }
        let threshold = if success {
            settings.success_threshold
        } else {
            settings.failure_threshold
        };
        if run < threshold {
            continue;
        }
        if inner.set_result(&target, success) {
            let message = if success {
                String::new()
            } else {
                format!("{} probe failed: {output}", target.kind.as_str())
            };
            let _ = inner.updates.send(ProbeUpdate {
                pod_uid: target.pod_uid.clone(),
                container: target.container.name.clone(),
                container_id: target.container_id.clone(),
                kind: target.kind,
                success,
                message,
            });
        }
        if !success && matches!(target.kind, ProbeKind::Liveness | ProbeKind::Startup) {
            // On hold until the container is restarted (a new instance, a new worker).
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn settings_defaults() {
        let s = Settings::new(&Probe::default(), ProbeKind::Readiness);
        assert_eq!(s.period, Duration::from_secs(10));
        assert_eq!(s.failure_threshold, 3);
        assert_eq!(s.success_threshold, 1);
        let p = Probe {
            success_threshold: Some(3),
            ..Default::default()
        };
        assert_eq!(Settings::new(&p, ProbeKind::Liveness).success_threshold, 1);
    }

    #[test]
    fn resolves_ports() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "ports": [{"name": "http", "containerPort": 8080}]
        }))
        .expect("valid container");
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::String("81".into()), &c), Ok(81));
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert!(resolve_port(&IntOrString::String("nope".into()), &c).is_err());
        assert!(resolve_port(&IntOrString::Int(70000), &c).is_err());
    }
}
