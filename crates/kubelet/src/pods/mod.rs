//! Pod lifecycle: one worker per pod bound to this node (upstream's `podWorkers`), each running
//! [`sync`] whenever the pod, its containers (seen by the relist in [`crate::pleg`]) or its
//! probes change, plus the status it reports.

pub mod runtime;
pub mod spec;
pub mod status;
pub mod sync;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use informers::{Event, Informer, Recorder};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cri::Cri;
use crate::probe::{ProbeKind, ProbeManager, ProbeUpdate};
use crate::volumes::VolumeManager;
use spec::NodeContext;
use status::Waiting;

/// Initial container restart and image pull back-off.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// Maximum back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How often every pod is synced even without a change (volume contents, lost events).
pub const RESYNC: Duration = Duration::from_secs(60);

/// An exponential back-off entry (`flowcontrol.Backoff`).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Current delay.
    pub delay: Duration,
    /// When the entry was last updated.
    pub updated: Instant,
}

/// The agent's bookkeeping for one pod.
#[derive(Debug, Default)]
pub struct PodState {
    /// Why containers wait, by container name.
    pub waiting: HashMap<String, Waiting>,
    /// Restart back-off by container name.
    pub restart_backoff: HashMap<String, Backoff>,
    /// Image pull back-off by image.
    pub pull_backoff: HashMap<String, Backoff>,
    /// Container instances whose liveness (or startup) probe failed: to be restarted.
    pub unhealthy: HashSet<String>,
    /// The status last written, to skip identical writes.
    pub last_status: Option<serde_json::Value>,
    /// Set once the pod's containers were all stopped for termination.
    pub killed: bool,
    /// The pod's container instances last seen: id → (name, log path, running).
    pub instances: HashMap<String, (String, String, bool)>,
    /// The pod's sandbox last seen: id and IP.
    pub sandbox: Option<(String, Option<IpAddr>)>,
}

/// The pieces every worker shares.
pub struct Shared {
    /// The runtime.
    pub cri: Cri,
    /// API client.
    pub client: kube::Client,
    /// Node settings.
    pub ctx: NodeContext,
    /// Volumes.
    pub volumes: VolumeManager,
    /// Probes.
    pub probes: ProbeManager,
    /// ConfigMaps and Secrets.
    pub objects: Arc<Objects>,
    /// Event recorder.
    pub recorder: Recorder,
    /// The pods bound to this node.
    pub pods: Informer<Pod>,
    /// Per-pod bookkeeping, by UID.
    pub states: Mutex<HashMap<String, PodState>>,
    /// Workers by pod UID.
    workers: Mutex<HashMap<String, Arc<Notify>>>,
    /// The host's resolv.conf.
    pub host_resolv: String,
    /// Stops everything.
    pub shutdown: CancellationToken,
}

/// Whether an update changes what the agent acts on (`podsDifferSemantically`: everything but
/// the status and the resource version).
pub fn differs_semantically(old: &Pod, new: &Pod) -> bool {
    let (o, n) = (&old.metadata, &new.metadata);
    old.spec != new.spec
        || o.labels != n.labels
        || o.annotations != n.annotations
        || o.deletion_timestamp != n.deletion_timestamp
        || o.deletion_grace_period_seconds != n.deletion_grace_period_seconds
        || o.uid != n.uid
}

/// ConfigMaps and Secrets from shared informers.
pub struct Objects {
    /// ConfigMaps.
    pub config_maps: Informer<ConfigMap>,
    /// Secrets.
    pub secrets: Informer<Secret>,
}

impl spec::Objects for Objects {
    fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>> {
        self.config_maps.get(namespace, name)
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        self.secrets.get(namespace, name)
    }
}

impl crate::volumes::ObjectSource for Objects {
    fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>> {
        self.config_maps.get(namespace, name)
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        self.secrets.get(namespace, name)
    }
}

impl Shared {
    /// Builds the shared state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cri: Cri,
        client: kube::Client,
        ctx: NodeContext,
        objects: Arc<Objects>,
        pods: Informer<Pod>,
        probe_tx: tokio::sync::mpsc::UnboundedSender<ProbeUpdate>,
        shutdown: CancellationToken,
    ) -> Arc<Shared> {
        let recorder = Recorder::new(
            client.clone(),
            "kubelet",
            Some(&ctx.node_name),
            shutdown.clone(),
        );
        let volumes = VolumeManager::new(ctx.pods_dir.clone(), objects.clone());
        let probes = ProbeManager::new(cri.clone(), probe_tx, shutdown.clone());
        Arc::new(Shared {
            cri,
            client,
            volumes,
            probes,
            objects,
            recorder,
            pods,
            states: Mutex::new(HashMap::new()),
            workers: Mutex::new(HashMap::new()),
            host_resolv: spec::read_host_resolv(),
            ctx,
            shutdown,
        })
    }

    /// Wakes the worker of a pod, starting one if needed.
    pub fn wake(self: &Arc<Self>, uid: &str, key: &str) {
        let mut workers = self.workers.lock();
        if let Some(n) = workers.get(uid) {
            n.notify_one();
            return;
        }
        let notify = Arc::new(Notify::new());
        notify.notify_one();
        workers.insert(uid.to_string(), notify.clone());
        drop(workers);
        tokio::spawn(
            self.clone()
                .worker(uid.to_string(), key.to_string(), notify),
        );
    }

    /// Wakes the worker of a pod if it has one.
    pub fn wake_existing(&self, uid: &str) {
        if let Some(n) = self.workers.lock().get(uid) {
            n.notify_one();
        }
    }

    /// Whether a worker runs for the pod.
    pub fn has_worker(&self, uid: &str) -> bool {
        self.workers.lock().contains_key(uid)
    }

    /// The pod with `uid` among the pods bound to this node.
    pub fn pod_by_key(&self, key: &str, uid: &str) -> Option<Arc<Pod>> {
        self.pods
            .get_key(key)
            .filter(|p| p.metadata.uid.as_deref() == Some(uid))
    }

    async fn worker(self: Arc<Self>, uid: String, key: String, notify: Arc<Notify>) {
        let mut next: Option<Duration> = None;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = notify.notified() => {}
                _ = tokio::time::sleep(next.unwrap_or(RESYNC)) => {}
            }
            let pod = self.pod_by_key(&key, &uid);
            let result = match &pod {
                Some(pod) => sync::sync_pod(&self, pod).await,
                None => sync::remove_pod(&self, &uid).await.map(|()| None),
            };
            match result {
                Ok(n) => next = n,
                Err(e) => {
                    tracing::warn!(pod = %key, error = %e, "pod sync failed; retrying");
                    next = Some(Duration::from_secs(2));
                }
            }
            if pod.is_none() {
                // The pod is gone from the API and its containers are cleaned up.
                let mut workers = self.workers.lock();
                if self.pod_by_key(&key, &uid).is_none() {
                    workers.remove(&uid);
                    self.states.lock().remove(&uid);
                    return;
                }
            }
        }
    }

    /// Dispatches pod events to workers.
    pub async fn run_dispatch(
        self: Arc<Self>,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<Event<Pod>>,
    ) {
        loop {
            let ev = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                ev = rx.recv() => ev,
            };
            let Some(ev) = ev else { return };
            let pod = match &ev {
                Event::Added(p) | Event::Updated(_, p) | Event::Deleted(p) => p.clone(),
            };
            let Some(uid) = pod.metadata.uid.clone() else {
                continue;
            };
            let key = informers::key_of(&*pod);
            match ev {
                Event::Deleted(_) => self.wake_existing(&uid),
                // Like upstream's pod config source, status-only updates (most of them the
                // agent's own writes) are not a reason to sync.
                Event::Updated(old, new) if !differs_semantically(&old, &new) => {}
                _ => self.wake(&uid, &key),
            }
        }
    }

    /// Applies probe results: failed liveness marks the container for restart; every change
    /// wakes the pod's worker (readiness goes into the status).
    pub async fn run_probe_updates(
        self: Arc<Self>,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<ProbeUpdate>,
    ) {
        loop {
            let u = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                u = rx.recv() => u,
            };
            let Some(u) = u else { return };
            let pod = self
                .pods
                .list()
                .into_iter()
                .find(|p| p.metadata.uid.as_deref() == Some(u.pod_uid.as_str()));
            if !u.success {
                if let Some(pod) = &pod {
                    self.recorder.event(
                        &**pod,
                        informers::EventType::Warning,
                        "Unhealthy",
                        u.message.clone(),
                    );
                }
                if matches!(u.kind, ProbeKind::Liveness | ProbeKind::Startup) {
                    self.states
                        .lock()
                        .entry(u.pod_uid.clone())
                        .or_default()
                        .unhealthy
                        .insert(u.container_id.clone());
                }
            }
            self.wake_existing(&u.pod_uid);
        }
    }

    /// Wakes the workers of pods in `namespace` (a ConfigMap or Secret there changed).
    pub fn wake_namespace(&self, namespace: &str) {
        for p in self.pods.list_namespace(namespace) {
            if let Some(uid) = p.metadata.uid.as_deref() {
                self.wake_existing(uid);
            }
        }
    }

    /// The pod's IP if its sandbox runs.
    pub fn pod_ip(pod: &Pod) -> Option<IpAddr> {
        pod.status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok())
    }

    /// The pod's directory.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        spec::pod_dir(&self.ctx, uid)
    }
}
