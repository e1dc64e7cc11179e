//! Simulated nodes (like kwok): nodes that register, heartbeat and "run" the pods bound to
//! them through the API only, so that the control plane (controllers, scheduler) can be tested
//! and benchmarked at scale without containers.
//!
//! Each simulated node behaves, as seen through the API, like a kubelet v1.35:
//! - it registers its Node (labels, capacity, conditions, addresses, nodeInfo) and reports its
//!   status through `nodes/status` when it changes, every
//!   [`Config::status_report_interval`], and at once when someone else (the node lifecycle
//!   controller) marked it not Ready while it is healthy;
//! - it holds a Lease in `kube-node-lease` renewed every [`Config::renew_interval`] (the
//!   renewals of all nodes spread evenly over the interval);
//! - it sets the pods bound to it Running (pod IPs from the node's `spec.podCIDR`), Ready
//!   unless a readiness probe runs `false`, and on a graceful deletion stops the containers at
//!   once (exit code 0, phase Succeeded) and deletes the pod with grace period 0.
//!
//! A node annotated `sim.r8s.io/heartbeat=stopped` behaves like a dead kubelet: no lease
//! renewal, no status, no pod handling, until the annotation is removed.
//!
//! The whole simulation is a few tasks (one lease scheduler, two work queues), not one task per
//! node: 5,000 nodes and 50,000 pods fit alongside the control plane.

mod ipam;
pub mod node;
pub mod podstatus;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use informers::workqueue::{Requeue, run_workers};
use informers::{Event, Factory, Informer, WorkQueue, key_of};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use node::{HEARTBEAT_ANNOTATION, HEARTBEAT_STOPPED};

/// The namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The name of the pod index (by `spec.nodeName`) this crate adds to the pod informer.
pub const POD_NODE_INDEX: &str = "sim.r8s.io/spec.nodeName";

/// Node registrations and status reports in flight at once.
const NODE_WORKERS: usize = 32;
/// Pod status patches and deletions in flight at once.
const POD_WORKERS: usize = 64;
/// Lease renewals in flight at once (kubelets renew independently; the API server may hold a
/// heartbeat up to 50 ms to share a commit, so 128 keep 5,000 nodes on time with room to spare).
const LEASE_IN_FLIGHT: usize = 128;
/// Shortest period of the lease scheduler's clock.
const MIN_TICK: Duration = Duration::from_millis(10);

/// Settings of the simulated nodes.
#[derive(Debug, Clone)]
pub struct Config {
    /// Number of nodes.
    pub nodes: usize,
    /// Name prefix: node `i` is `<prefix><i on 4 digits or more>` (`sim-0000`, `sim-0001`...).
    pub name_prefix: String,
    /// CPU capacity of each node (a quantity: "32").
    pub cpu: String,
    /// Memory capacity of each node (a quantity: "256Gi").
    pub memory: String,
    /// Pod capacity of each node.
    pub pods: u32,
    /// `spec.leaseDurationSeconds` of the node leases (the kubelet's 40).
    pub lease_duration_seconds: i32,
    /// How often each node renews its lease (the kubelet's 10 s).
    pub renew_interval: Duration,
    /// How often a node reports an unchanged status (the kubelet's 5 min).
    pub status_report_interval: Duration,
    /// Labels added to every node (after the kubelet's well-known ones).
    pub labels: BTreeMap<String, String>,
    /// Whether to play the kubelet for pods bound to the nodes (`false`: nodes and heartbeats
    /// only, as upstream's scheduler_perf runs the scheduler against node objects).
    pub simulate_pods: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            nodes: 1,
            name_prefix: "sim-".to_string(),
            cpu: "32".to_string(),
            memory: "256Gi".to_string(),
            pods: 110,
            lease_duration_seconds: 40,
            renew_interval: Duration::from_secs(10),
            status_report_interval: Duration::from_secs(300),
            labels: BTreeMap::from([("type".to_string(), "sim".to_string())]),
            simulate_pods: true,
        }
    }
}

/// Errors of the simulation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Every address of a node's pod CIDR is taken.
    #[error("no free pod IP on node {0}")]
    NoPodIp(String),
}

/// The state of one simulated node.
#[derive(Debug, Default)]
struct NodeState {
    /// The Node exists and is ours (created or adopted).
    registered: bool,
    /// The Node was deleted after registration: the node is gone (like a kubelet whose node
    /// object was removed, it does nothing more).
    deleted: bool,
    uid: Option<String>,
    /// The lease as last written (no managedFields), reused for the next renewal.
    lease: Option<Lease>,
    /// A renewal is in flight.
    renewing: bool,
    stopped_by_annotation: bool,
    stopped_by_handle: bool,
    last_report: Option<Instant>,
    ips: ipam::PodIps,
}

impl NodeState {
    fn stopped(&self) -> bool {
        self.stopped_by_annotation || self.stopped_by_handle
    }
    fn active(&self) -> bool {
        self.registered && !self.deleted && !self.stopped()
    }
}

struct Shared {
    config: Config,
    nodes_api: Api<Node>,
    leases_api: Api<Lease>,
    pods_client: Client,
    names: Vec<String>,
    index: HashMap<String, usize>,
    states: Vec<Mutex<NodeState>>,
    node_informer: Informer<Node>,
    /// Only when pods are simulated: without pods to run, the sim does not watch them (as
    /// scheduler_perf's nodes have no kubelet).
    pod_informer: Option<Informer<Pod>>,
    node_queue: WorkQueue<usize>,
    pod_queue: WorkQueue<String>,
    shutdown: CancellationToken,
}

/// A handle on running simulated nodes. Cheap to clone.
#[derive(Clone)]
pub struct Sim {
    shared: Arc<Shared>,
}

impl Sim {
    /// The names of the simulated nodes, in index order.
    pub fn node_names(&self) -> &[String] {
        &self.shared.names
    }

    /// Stops (`false`) or resumes (`true`) the heartbeat of a node, like the annotation
    /// `sim.r8s.io/heartbeat=stopped` (a node is stopped if either says so). Returns whether
    /// the node is one of these.
    pub fn set_heartbeat(&self, node: &str, on: bool) -> bool {
        let Some(&idx) = self.shared.index.get(node) else {
            return false;
        };
        let resumed = {
            let mut st = self.shared.states[idx].lock();
            let was = st.stopped();
            st.stopped_by_handle = !on;
            was && !st.stopped()
        };
        if resumed {
            self.shared.resume(idx);
        }
        true
    }

    /// Whether a node is registered, present and not stopped.
    pub fn is_active(&self, node: &str) -> bool {
        self.shared
            .index
            .get(node)
            .is_some_and(|&i| self.shared.states[i].lock().active())
    }
}

/// Runs the simulated nodes until `shutdown`.
pub async fn run(
    client: Client,
    factory: Arc<Factory>,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let _sim = start(client, factory, config, shutdown.clone()).await?;
    shutdown.cancelled().await;
    Ok(())
}

/// Starts the simulated nodes (registration proceeds in the background) and returns a handle;
/// everything stops at `shutdown`.
pub async fn start(
    client: Client,
    factory: Arc<Factory>,
    config: Config,
    shutdown: CancellationToken,
) -> Result<Sim, Error> {
    if config.renew_interval.is_zero() {
        return Err(Error::Config("renew_interval must be positive".into()));
    }
    if config.lease_duration_seconds <= 0 {
        return Err(Error::Config(
            "lease_duration_seconds must be positive".into(),
        ));
    }
    ensure_lease_namespace(&client).await?;
    let names: Vec<String> = (0..config.nodes)
        .map(|i| node::node_name(&config.name_prefix, i))
        .collect();
    let index = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    let pod_informer = config.simulate_pods.then(|| {
        let informer = factory.informer::<Pod>();
        informer.add_index(
            POD_NODE_INDEX,
            Arc::new(|p: &Pod| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .into_iter()
                    .collect()
            }),
        );
        informer
    });
    let shared = Arc::new(Shared {
        nodes_api: Api::all(client.clone()),
        leases_api: Api::namespaced(client.clone(), LEASE_NAMESPACE),
        pods_client: client,
        states: (0..config.nodes)
            .map(|_| Mutex::new(NodeState::default()))
            .collect(),
        config,
        names,
        index,
        node_informer: factory.informer::<Node>(),
        pod_informer,
        node_queue: WorkQueue::new(shutdown.clone()),
        pod_queue: WorkQueue::new(shutdown.clone()),
        shutdown,
    });
    // Node events first, so that annotations are known before registration.
    let node_events = shared.node_informer.subscribe();
    tokio::spawn(shared.clone().watch_nodes(node_events));
    shared.node_informer.wait_synced().await;
    // Known before any pod is handled: annotations and pod CIDRs of existing nodes, and the
    // IPs of pods running on them (after a restart, a new pod must not get one of those).
    for (idx, name) in shared.names.iter().enumerate() {
        if let Some(n) = shared.node_informer.get("", name) {
            shared.on_node(idx, &n);
        }
    }
    if let Some(pods) = &shared.pod_informer {
        pods.wait_synced().await;
        for p in pods.list() {
            if let Some(idx) = node_of(&p).and_then(|n| shared.idx_of(n)) {
                shared.track_ip(idx, &p);
            }
        }
        tokio::spawn(shared.clone().watch_pods(pods.subscribe()));
    }
    for i in 0..shared.names.len() {
        shared.node_queue.add(i);
    }
    let s = shared.clone();
    tokio::spawn(run_workers(
        shared.node_queue.clone(),
        NODE_WORKERS,
        "sim-nodes",
        move |idx: usize| {
            let s = s.clone();
            async move { s.sync_node(idx).await }
        },
    ));
    if shared.config.simulate_pods {
        let s = shared.clone();
        tokio::spawn(run_workers(
            shared.pod_queue.clone(),
            POD_WORKERS,
            "sim-pods",
            move |key: String| {
                let s = s.clone();
                async move { s.sync_pod(key).await }
            },
        ));
    }
    tokio::spawn(shared.clone().lease_loop());
    Ok(Sim { shared })
}

async fn ensure_lease_namespace(client: &Client) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(LEASE_NAMESPACE.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict())
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// The last renewal slot due after `elapsed`: slot `k` (node `k % n`) is due at
/// `k * period / n`, so the `n` renewals of a period are evenly spread.
fn last_due_slot(elapsed: Duration, period: Duration, n: u128) -> u128 {
    elapsed.as_nanos() * n / period.as_nanos().max(1)
}

impl Shared {
    fn idx_of(&self, node: &str) -> Option<usize> {
        self.index.get(node).copied()
    }

    fn ip_of(&self, idx: usize) -> Ipv4Addr {
        node::internal_ip(idx)
    }

    /// Queues every pod bound to a node.
    fn requeue_pods(&self, idx: usize) {
        let Some(pods) = &self.pod_informer else {
            return;
        };
        for p in pods.by_index(POD_NODE_INDEX, &self.names[idx]) {
            self.pod_queue.add(key_of(p.as_ref()));
        }
    }

    /// A stopped node runs again, like a kubelet that starts: renew its lease and report its
    /// status at once, act on its pods.
    fn resume(self: &Arc<Self>, idx: usize) {
        self.node_queue.add(idx);
        self.requeue_pods(idx);
        if let Some(lease) = self.take_for_renewal(idx) {
            let s = self.clone();
            tokio::spawn(async move {
                s.renew(idx, lease).await;
                s.states[idx].lock().renewing = false;
            });
        }
    }

    async fn watch_nodes(
        self: Arc<Self>,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<Event<Node>>,
    ) {
        loop {
            let ev = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                ev = rx.recv() => match ev { Some(ev) => ev, None => return },
            };
            match ev {
                Event::Added(n) | Event::Updated(_, n) => {
                    if let Some(idx) = self.idx_of(n.name_any().as_str()) {
                        self.on_node(idx, &n);
                    }
                }
                Event::Deleted(n) => {
                    if let Some(idx) = self.idx_of(n.name_any().as_str()) {
                        let mut st = self.states[idx].lock();
                        if st.registered && st.uid == n.metadata.uid {
                            tracing::info!(node = %self.names[idx], "simulated node deleted; it stops");
                            st.deleted = true;
                            st.registered = false;
                            st.lease = None;
                        }
                    }
                }
            }
        }
    }

    fn on_node(self: &Arc<Self>, idx: usize, n: &Node) {
        let (resumed, cidr_arrived, unhealthy) = {
            let mut st = self.states[idx].lock();
            if st.deleted {
                // Recreated by someone else: adopt it again.
                st.deleted = false;
                st.registered = true;
                st.uid = n.metadata.uid.clone();
            } else if st.registered && st.uid != n.metadata.uid {
                st.uid = n.metadata.uid.clone();
            }
            let was_stopped = st.stopped();
            st.stopped_by_annotation = node::is_stopped_by_annotation(n);
            let had_range = st.ips.has_range();
            if let Some((net, prefix)) = node::pod_cidr(n) {
                st.ips.set_range(net, prefix);
            }
            (
                was_stopped && !st.stopped(),
                !had_range && st.ips.has_range(),
                st.active() && !node::is_healthy(n),
            )
        };
        if resumed {
            self.resume(idx);
        } else {
            if unhealthy {
                self.node_queue.add(idx);
            }
            if cidr_arrived {
                self.requeue_pods(idx);
            }
        }
    }

    async fn watch_pods(self: Arc<Self>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Event<Pod>>) {
        loop {
            let ev = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                ev = rx.recv() => match ev { Some(ev) => ev, None => return },
            };
            match ev {
                Event::Added(p) | Event::Updated(_, p) => self.on_pod(&p),
                Event::Deleted(p) => {
                    if let Some(idx) = node_of(&p).and_then(|n| self.idx_of(n)) {
                        let uid = p.metadata.uid.as_deref().unwrap_or_default();
                        self.states[idx].lock().ips.release(uid);
                    }
                }
            }
        }
    }

    /// Keeps the pod IPs of a node current: a live pod's IP is taken, a terminal pod's freed.
    fn track_ip(&self, idx: usize, p: &Pod) {
        let uid = p.metadata.uid.as_deref().unwrap_or_default();
        let host_network = p
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let mut st = self.states[idx].lock();
        if is_terminal(p) {
            st.ips.release(uid);
        } else if !host_network
            && let Some(ip) = p
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok())
        {
            st.ips.record(uid, ip);
        }
    }

    fn on_pod(&self, p: &Pod) {
        let Some(idx) = node_of(p).and_then(|n| self.idx_of(n)) else {
            return;
        };
        self.track_ip(idx, p);
        let settled = p.metadata.deletion_timestamp.is_none()
            && (is_terminal(p)
                || p.status.as_ref().is_some_and(|s| {
                    s.phase.as_deref() == Some("Running")
                        && s.conditions
                            .iter()
                            .flatten()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                }));
        if !settled {
            self.pod_queue.add(key_of(p));
        }
    }

    // ---- nodes ----

    async fn sync_node(self: Arc<Self>, idx: usize) -> Result<Requeue, Error> {
        let (registered, active) = {
            let st = self.states[idx].lock();
            if st.deleted || st.stopped() {
                return Ok(Requeue::No);
            }
            (st.registered, st.active())
        };
        if !registered {
            self.register(idx).await?;
            self.requeue_pods(idx);
            return Ok(Requeue::No);
        }
        if active {
            self.report_status(idx).await?;
        }
        Ok(Requeue::No)
    }

    /// Creates the Node (or adopts an existing one), then its Lease.
    async fn register(&self, idx: usize) -> Result<(), Error> {
        let name = &self.names[idx];
        let now = Timestamp::now();
        let initial = node::initial_node(&self.config, name, self.ip_of(idx), now);
        let node = match self
            .nodes_api
            .create(&PostParams::default(), &initial)
            .await
        {
            Ok(created) => {
                if created
                    .status
                    .as_ref()
                    .is_none_or(|s| s.node_info.is_none())
                {
                    // The status was not kept on create: set it through the subresource.
                    self.patch_node_status(idx, None).await?;
                }
                created
            }
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                let existing = self.nodes_api.get(name).await?;
                // Like the kubelet (updateDefaultLabels): restore missing well-known labels.
                let want = node::node_labels(&self.config, name);
                let labels = existing.metadata.labels.clone().unwrap_or_default();
                let missing: BTreeMap<_, _> = want
                    .into_iter()
                    .filter(|(k, v)| labels.get(k) != Some(v))
                    .collect();
                if !missing.is_empty() {
                    let patch = json!({ "metadata": { "labels": missing } });
                    self.nodes_api
                        .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
                        .await?;
                }
                let conds = existing
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_deref());
                self.patch_node_status(idx, conds).await?;
                existing
            }
            Err(e) => return Err(e.into()),
        };
        {
            let mut st = self.states[idx].lock();
            st.uid = node.metadata.uid.clone();
            st.registered = true;
            st.deleted = false;
            st.last_report = Some(Instant::now());
            if let Some((net, prefix)) = node::pod_cidr(&node) {
                st.ips.set_range(net, prefix);
            }
        }
        self.ensure_lease(idx).await?;
        tracing::debug!(node = %name, "simulated node registered");
        Ok(())
    }

    async fn patch_node_status(
        &self,
        idx: usize,
        current: Option<&[k8s_openapi::api::core::v1::NodeCondition]>,
    ) -> Result<(), kube::Error> {
        let name = &self.names[idx];
        let status = node::status(
            &self.config,
            name,
            self.ip_of(idx),
            current,
            Timestamp::now(),
        );
        let patch = json!({ "status": status });
        informers::write::patch_status(
            &self.nodes_api,
            name,
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await?;
        self.states[idx].lock().last_report = Some(Instant::now());
        Ok(())
    }

    /// Reports the node status if it changed (someone marked the node not Ready) or the report
    /// interval passed.
    async fn report_status(&self, idx: usize) -> Result<(), Error> {
        let name = &self.names[idx];
        let Some(cached) = self.node_informer.get("", name) else {
            return Ok(());
        };
        let due = self.states[idx]
            .lock()
            .last_report
            .is_none_or(|t| t.elapsed() >= self.config.status_report_interval);
        if !due && node::is_healthy(&cached) {
            return Ok(());
        }
        let conds = cached.status.as_ref().and_then(|s| s.conditions.as_deref());
        match self.patch_node_status(idx, conds).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    // ---- leases ----

    fn new_lease(&self, idx: usize, uid: Option<String>) -> Lease {
        let name = &self.names[idx];
        Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(LEASE_NAMESPACE.to_string()),
                owner_references: uid.map(|uid| {
                    vec![OwnerReference {
                        api_version: "v1".to_string(),
                        kind: "Node".to_string(),
                        name: name.clone(),
                        uid,
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(name.clone()),
                lease_duration_seconds: Some(self.config.lease_duration_seconds),
                renew_time: Some(MicroTime(Timestamp::now())),
                ..Default::default()
            }),
        }
    }

    fn store_lease(&self, idx: usize, mut lease: Lease) {
        lease.metadata.managed_fields = None;
        self.states[idx].lock().lease = Some(lease);
    }

    /// Gets or creates the lease of a node (the kubelet's `ensureLease`), with its owner
    /// reference to the current Node.
    async fn ensure_lease(&self, idx: usize) -> Result<(), Error> {
        let name = &self.names[idx];
        let uid = self.states[idx].lock().uid.clone();
        match self.leases_api.get_opt(name).await? {
            None => {
                let lease = self.new_lease(idx, uid);
                match self.leases_api.create(&PostParams::default(), &lease).await {
                    Ok(l) => self.store_lease(idx, l),
                    Err(kube::Error::Api(s)) if s.is_already_exists() => {
                        let l = self.leases_api.get(name).await?;
                        self.store_lease(idx, l);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Some(mut existing) => {
                let owned = existing
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "Node" && Some(&o.uid) == uid.as_ref());
                if !owned {
                    let fresh = self.new_lease(idx, uid);
                    existing.metadata.owner_references = fresh.metadata.owner_references;
                    existing.spec = fresh.spec;
                    existing.metadata.managed_fields = None;
                    existing = self
                        .leases_api
                        .replace(name, &PostParams::default(), &existing)
                        .await?;
                }
                self.store_lease(idx, existing);
            }
        }
        Ok(())
    }

    /// Renews a lease: an update of the lease last written (no GET), as the kubelet's
    /// `nodelease` controller does; a conflict or a missing lease falls back to
    /// [`Shared::ensure_lease`].
    async fn renew(&self, idx: usize, cached: Option<Lease>) {
        let name = &self.names[idx];
        let result = match cached {
            Some(mut lease) => {
                if let Some(spec) = lease.spec.as_mut() {
                    spec.renew_time = Some(MicroTime(Timestamp::now()));
                    spec.holder_identity = Some(name.clone());
                    spec.lease_duration_seconds = Some(self.config.lease_duration_seconds);
                }
                match self
                    .leases_api
                    .replace(name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(l) => {
                        self.store_lease(idx, l);
                        Ok(())
                    }
                    Err(e) if is_conflict(&e) || is_not_found(&e) => {
                        self.states[idx].lock().lease = None;
                        self.ensure_lease(idx).await
                    }
                    Err(e) => Err(e.into()),
                }
            }
            None => self.ensure_lease(idx).await,
        };
        if let Err(e) = result {
            tracing::debug!(node = %name, error = %e, "lease renewal failed");
        }
    }

    /// One scheduler for every lease: node `i` renews at `start + i * interval / n + k *
    /// interval`, so renewals are spread evenly; at most [`LEASE_IN_FLIGHT`] at once.
    async fn lease_loop(self: Arc<Self>) {
        let n = self.names.len() as u128;
        if n == 0 {
            return;
        }
        let period = self.config.renew_interval;
        let tick = (period / self.names.len() as u32).max(MIN_TICK);
        let mut clock = tokio::time::interval(tick);
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let permits = Arc::new(Semaphore::new(LEASE_IN_FLIGHT));
        let start = Instant::now();
        let mut next_slot: u128 = 0;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = clock.tick() => {}
            }
            let due = last_due_slot(start.elapsed(), period, n);
            if due >= next_slot + n {
                // Fell behind by a whole round: skip to the present.
                next_slot = due + 1 - n;
            }
            while next_slot <= due {
                let idx = (next_slot % n) as usize;
                next_slot += 1;
                let Some(lease) = self.take_for_renewal(idx) else {
                    continue;
                };
                let permit = tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                };
                let s = self.clone();
                tokio::spawn(async move {
                    s.renew(idx, lease).await;
                    s.states[idx].lock().renewing = false;
                    drop(permit);
                });
            }
        }
    }

    /// At a node's slot: whether to renew (and the cached lease), and whether its status is
    /// due (queued to the node workers).
    fn take_for_renewal(&self, idx: usize) -> Option<Option<Lease>> {
        let (lease, status_due) = {
            let mut st = self.states[idx].lock();
            if !st.active() || st.renewing {
                return None;
            }
            st.renewing = true;
            let due = st
                .last_report
                .is_none_or(|t| t.elapsed() >= self.config.status_report_interval);
            (st.lease.clone(), due)
        };
        if status_due
            || self
                .node_informer
                .get("", &self.names[idx])
                .is_some_and(|n| !node::is_healthy(&n))
        {
            self.node_queue.add(idx);
        }
        Some(lease)
    }

    // ---- pods ----

    async fn sync_pod(self: Arc<Self>, key: String) -> Result<Requeue, Error> {
        let Some(pod) = self.pod_informer.as_ref().and_then(|p| p.get_key(&key)) else {
            return Ok(Requeue::No);
        };
        let Some(idx) = node_of(&pod).and_then(|n| self.idx_of(n)) else {
            return Ok(Requeue::No);
        };
        if !self.states[idx].lock().active() {
            // A dead kubelet does nothing; resuming queues the pods again.
            return Ok(Requeue::No);
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(
            self.pods_client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.name_any();
        if pod.metadata.deletion_timestamp.is_some() {
            return self.terminate(&api, &pod, idx).await;
        }
        if is_terminal(&pod) {
            return Ok(Requeue::No);
        }
        let host_ip = self.ip_of(idx);
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let current_ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        let pod_ip = if host_network {
            host_ip
        } else if let Some(ip) = current_ip {
            // Pod IPs never change.
            ip
        } else {
            let mut st = self.states[idx].lock();
            if !st.ips.has_range() {
                // Wait for the node IPAM controller: the podCIDR arrival queues the pod again.
                return Ok(Requeue::No);
            }
            match st.ips.allocate(&uid) {
                Some(ip) => ip,
                None => return Err(Error::NoPodIp(self.names[idx].clone())),
            }
        };
        let (status, next_check) = podstatus::running(&pod, host_ip, pod_ip, Timestamp::now());
        if !podstatus::up_to_date(pod.status.as_ref(), &status) {
            let patch = json!({ "metadata": { "uid": uid }, "status": status });
            match informers::write::patch_status(
                &api,
                &name,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) || is_conflict(&e) => return Ok(Requeue::No),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(match next_check {
            // The prober would see the container ready at its first run after the delay.
            Some(d) => Requeue::After(d + Duration::from_millis(50)),
            None => Requeue::No,
        })
    }

    /// Graceful deletion: the containers stop at once (exit code 0), the pod is reported
    /// Succeeded, then deleted with grace period 0 and a UID precondition (the kubelet's
    /// status manager once the pod is terminal).
    async fn terminate(&self, api: &Api<Pod>, pod: &Pod, idx: usize) -> Result<Requeue, Error> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let name = pod.name_any();
        let started = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| !cs.is_empty());
        if started && !is_terminal(pod) {
            let status = podstatus::terminated(pod, Timestamp::now());
            let patch = json!({ "metadata": { "uid": uid }, "status": status });
            match informers::write::patch_status(
                api,
                &name,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) || is_conflict(&e) => return Ok(Requeue::No),
                Err(e) => return Err(e.into()),
            }
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) || is_conflict(&e) => {}
            Err(e) => return Err(e.into()),
        }
        self.states[idx].lock().ips.release(&uid);
        Ok(Requeue::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_slots_are_spread_over_the_interval() {
        let period = Duration::from_secs(10);
        let ms = Duration::from_millis;
        // 4 nodes: one renewal every 2.5 s.
        assert_eq!(last_due_slot(ms(0), period, 4), 0);
        assert_eq!(last_due_slot(ms(2_499), period, 4), 0);
        assert_eq!(last_due_slot(ms(2_500), period, 4), 1);
        assert_eq!(last_due_slot(ms(9_999), period, 4), 3);
        assert_eq!(last_due_slot(ms(10_000), period, 4), 4); // node 0 again
        // 5,000 nodes: 500 renewals per second, 5 per 10 ms tick.
        assert_eq!(last_due_slot(ms(10), period, 5_000), 5);
        assert_eq!(last_due_slot(ms(1_000), period, 5_000), 500);
    }

    #[test]
    fn default_config_is_the_kubelets() {
        let c = Config::default();
        assert_eq!(c.lease_duration_seconds, 40);
        assert_eq!(c.renew_interval, Duration::from_secs(10));
        assert_eq!(c.status_report_interval, Duration::from_secs(300));
        assert_eq!(
            (c.cpu.as_str(), c.memory.as_str(), c.pods),
            ("32", "256Gi", 110)
        );
        assert_eq!(node::node_name(&c.name_prefix, 7), "sim-0007");
    }
}
