//! The node lifecycle controller (upstream `pkg/controller/nodelifecycle`,
//! "node-lifecycle-controller", events as "node-controller") with taint-based eviction
//! ([`tainteviction`], "taint-eviction-controller", run from here).
//!
//! Every `--node-monitor-period` each node's health is checked: a node whose Ready heartbeat
//! and Lease both went unobserved for `--node-monitor-grace-period` (or
//! `--node-startup-grace-period` if it never posted Ready) gets its Ready, MemoryPressure,
//! DiskPressure and PIDPressure conditions set to Unknown, and its pods marked not Ready.
//! Nodes whose Ready is False/Unknown get the `not-ready`/`unreachable` `NoExecute` taint,
//! applied through a per-zone rate-limited queue (0.1 node/s per healthy zone, none when every
//! zone is fully disrupted, as upstream), removed when Ready again. Condition taints with
//! effect `NoSchedule` follow the node's conditions and `spec.unschedulable` at once.

pub mod tainteviction;
pub mod taints;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use informers::workqueue::{Requeue, run_workers};
use informers::{Event, EventType, Informer, Recorder, WorkQueue};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, ObjectReference, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::Context;
use crate::util::pod_node;
use taints::{
    NO_EXECUTE, NO_SCHEDULE, TAINT_NODE_DISK_PRESSURE, TAINT_NODE_MEMORY_PRESSURE,
    TAINT_NODE_NETWORK_UNAVAILABLE, TAINT_NODE_NOT_READY, TAINT_NODE_PID_PRESSURE,
    TAINT_NODE_UNREACHABLE, TAINT_NODE_UNSCHEDULABLE, swap_taints, taint, taint_exists,
};

/// The controller's name.
pub const NAME: &str = "node-lifecycle-controller";
/// The event source of this controller (upstream `node-controller`).
pub const EVENT_COMPONENT: &str = "node-controller";
/// Pod index: the node a pod is bound to.
pub const POD_NODE_INDEX: &str = "r8s/spec.nodeName";
/// How often the rate-limited `NoExecute` tainting queue is worked (upstream
/// `nodeEvictionPeriod`).
pub const NODE_EVICTION_PERIOD: Duration = Duration::from_millis(100);
/// Nodes tainted per second in a healthy zone (`--node-eviction-rate`).
pub const EVICTION_LIMITER_QPS: f64 = 0.1;
/// Nodes tainted per second in a partially disrupted large zone
/// (`--secondary-node-eviction-rate`).
pub const SECONDARY_EVICTION_LIMITER_QPS: f64 = 0.01;
/// Zones larger than this keep evicting at the secondary rate when partially disrupted
/// (`--large-cluster-size-threshold`).
pub const LARGE_CLUSTER_THRESHOLD: usize = 50;
/// The share of not-Ready nodes that makes a zone partially disrupted
/// (`--unhealthy-zone-threshold`).
pub const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;
/// Concurrent node health checks and `NoSchedule` taint syncs (upstream
/// `nodeUpdateWorkerSize`).
const WORKERS: usize = 8;
/// The namespace of node heartbeat leases.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The label that excludes a node from zone disruption checks.
const LABEL_EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";

/// Adds [`POD_NODE_INDEX`] to the pod informer (idempotent).
pub fn add_pod_node_index(pods: &Informer<Pod>) {
    pods.add_index(
        POD_NODE_INDEX,
        Arc::new(|p: &Pod| {
            let n = pod_node(p);
            if n.is_empty() {
                Vec::new()
            } else {
                vec![n.to_string()]
            }
        }),
    );
}

/// A sync error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// A taint write failed.
    #[error(transparent)]
    Taint(#[from] taints::TaintError),
}

/// The health state of a zone (upstream `ZoneState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    /// Seen for the first time.
    Initial,
    /// Healthy enough.
    Normal,
    /// Every node not Ready.
    FullDisruption,
    /// More than [`UNHEALTHY_ZONE_THRESHOLD`] (and more than 2) nodes not Ready.
    PartialDisruption,
}

/// The state of a zone from the Ready condition statuses of its nodes (upstream
/// `ComputeZoneState`).
pub fn compute_zone_state(ready: &[Option<String>]) -> ZoneState {
    let ready_nodes = ready
        .iter()
        .filter(|s| s.as_deref() == Some("True"))
        .count();
    ZoneCount {
        ready: ready_nodes,
        total: ready.len(),
    }
    .state()
}

/// The nodes of a zone in a monitor pass: how many, and how many of them are Ready (what
/// upstream `ComputeZoneState` counts in its list of Ready conditions).
#[derive(Debug, Clone, Copy, Default)]
struct ZoneCount {
    ready: usize,
    total: usize,
}

impl ZoneCount {
    fn state(self) -> ZoneState {
        let not_ready = self.total - self.ready;
        if self.ready == 0 && not_ready > 0 {
            ZoneState::FullDisruption
        } else if not_ready > 2 && not_ready as f64 / self.total as f64 >= UNHEALTHY_ZONE_THRESHOLD
        {
            ZoneState::PartialDisruption
        } else {
            ZoneState::Normal
        }
    }
}

/// The zone of a node: `region:\0:zone` from the topology labels (upstream `GetZoneKey`).
pub fn zone_key(node: &Node) -> String {
    ZoneKey::of(node).to_key()
}

/// A node's region and zone, borrowed from its labels: counting a monitor pass's nodes by zone
/// builds the [`zone_key`] of each zone once, not of each node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ZoneKey<'a> {
    region: &'a str,
    zone: &'a str,
}

impl<'a> ZoneKey<'a> {
    fn of(node: &'a Node) -> Self {
        Self::and_exclusion(node).0
    }

    /// The zone and whether the node is excluded from disruption checks, in one pass over the
    /// labels: matching a key by its length first reads no other key's text, where each map
    /// lookup compares the text of several (a monitor pass does this for every node, and their
    /// labels are rarely in the cache).
    fn and_exclusion(node: &'a Node) -> (Self, bool) {
        let (mut region, mut zone, mut beta_region, mut beta_zone) = (None, None, None, None);
        let mut excluded = false;
        for (k, v) in node.metadata.labels.iter().flatten() {
            match k.as_str() {
                "topology.kubernetes.io/region" => region = Some(v.as_str()),
                "topology.kubernetes.io/zone" => zone = Some(v.as_str()),
                "failure-domain.beta.kubernetes.io/region" => beta_region = Some(v.as_str()),
                "failure-domain.beta.kubernetes.io/zone" => beta_zone = Some(v.as_str()),
                LABEL_EXCLUDE_DISRUPTION => excluded = true,
                _ => {}
            }
        }
        let key = ZoneKey {
            region: region.or(beta_region).unwrap_or(""),
            zone: zone.or(beta_zone).unwrap_or(""),
        };
        (key, excluded)
    }

    fn to_key(self) -> String {
        if self.region.is_empty() && self.zone.is_empty() {
            String::new()
        } else {
            format!("{}:\x00:{}", self.region, self.zone)
        }
    }
}

/// A token bucket with a burst of 1 (upstream `flowcontrol.NewTokenBucketRateLimiter(qps, 1)`),
/// starting full.
#[derive(Debug)]
struct Bucket {
    qps: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(qps: f64) -> Self {
        Self {
            qps,
            tokens: 1.0,
            last: Instant::now(),
        }
    }
    fn try_accept(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.qps).min(1.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A zone: its state and its rate-limited queue of nodes to taint (upstream
/// `zoneNoExecuteTainter`, a `RateLimitedTimedQueue`).
#[derive(Debug)]
struct Zone {
    state: ZoneState,
    /// `None`: tainting stopped (rate 0).
    limiter: Option<Bucket>,
    queue: VecDeque<String>,
    queued: HashMap<String, Instant>,
}

impl Zone {
    fn new() -> Self {
        Self {
            state: ZoneState::Initial,
            limiter: Some(Bucket::new(EVICTION_LIMITER_QPS)),
            queue: VecDeque::new(),
            queued: HashMap::new(),
        }
    }
    fn swap_limiter(&mut self, qps: f64) {
        if self.limiter.as_ref().map_or(0.0, |b| b.qps) == qps {
            return;
        }
        self.limiter = (qps > 0.0).then(|| Bucket::new(qps));
    }
    fn add(&mut self, name: &str, at: Instant) {
        if self.queued.contains_key(name) {
            return;
        }
        self.queued.insert(name.to_string(), at);
        self.queue.push_back(name.to_string());
    }
    fn remove(&mut self, name: &str) {
        if self.queued.remove(name).is_some() {
            self.queue.retain(|n| n != name);
        }
    }
}

/// What the controller remembers of a node (upstream `nodeHealthData`).
#[derive(Debug, Clone, Copy)]
struct Health {
    /// The `lastHeartbeatTime` of the node's Ready condition when last seen; `None` if the node
    /// had no Ready condition then (of the condition upstream keeps, only this is compared).
    ready: Option<Option<Timestamp>>,
    probe: Instant,
    lease_renew: Option<Timestamp>,
}

struct Controller {
    client: kube::Client,
    nodes: Informer<Node>,
    leases: Informer<Lease>,
    pods: Informer<Pod>,
    monitor_grace: Duration,
    startup_grace: Duration,
    /// Every node seen by a monitor pass (its keys are upstream `knownNodeSet`).
    health: Mutex<HashMap<String, Health>>,
    zones: Mutex<HashMap<String, Zone>>,
    retry: Mutex<HashSet<String>>,
    /// Held by the `NoExecute` tainting pass for its whole run (taint writes included) and by
    /// the switch to full disruption (upstream `evictorLock`, which only guards the queues):
    /// the switch then sees every taint the pass wrote, and the pass cannot write a taint after
    /// the switch removed the taints and stopped tainting.
    evictor: tokio::sync::Mutex<()>,
    no_schedule: WorkQueue<String>,
    recorder: Recorder,
}

/// Runs the controller (and the taint eviction controller) until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let nodes = ctx.factory.informer::<Node>();
    let leases = ctx.factory.informer::<Lease>();
    let pods = ctx.factory.informer::<Pod>();
    let c = Controller::new(&ctx);
    let eviction = tainteviction::TaintEviction::new(
        ctx.client.clone(),
        pods.clone(),
        nodes.clone(),
        ctx.shutdown.clone(),
    );
    tokio::spawn(eviction.run());
    let mut node_events = nodes.subscribe();
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        _ = async { nodes.wait_synced().await; leases.wait_synced().await; pods.wait_synced().await } => {}
    }
    let handler = c.clone();
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = node_events.recv() => match ev {
                    Some(Event::Added(n) | Event::Updated(_, n)) => {
                        handler.zones.lock().entry(zone_key(&n)).or_insert_with(Zone::new);
                        handler.no_schedule.add(n.metadata.name.clone().unwrap_or_default());
                    }
                    Some(Event::Deleted(_)) => {}
                    None => return,
                },
            }
        }
    });
    let monitor = c.clone();
    let period = ctx.config.node_monitor_period;
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => monitor.monitor_node_health().await,
            }
        }
    });
    let tainter = c.clone();
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(NODE_EVICTION_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => tainter.no_execute_tainting_pass().await,
            }
        }
    });
    let w = c.clone();
    run_workers(c.no_schedule.clone(), WORKERS, NAME, move |name: String| {
        let w = w.clone();
        async move { w.no_schedule_tainting_pass(&name).await }
    })
    .await;
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The `Instant` of a wall-clock time in the past.
fn instant_of(t: Timestamp) -> Instant {
    let now = Instant::now();
    let ago = Timestamp::now().duration_since(t);
    match Duration::try_from(ago) {
        Ok(d) => now.checked_sub(d).unwrap_or(now),
        Err(_) => now,
    }
}

/// The node's name (empty if it has none).
fn name_of(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or("")
}

/// Now, to the second (what a `Time` keeps).
fn now_time() -> Time {
    let now = Timestamp::now();
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

fn node_ref(node: &Node) -> ObjectReference {
    ObjectReference {
        kind: Some("Node".into()),
        api_version: Some("v1".into()),
        name: node.metadata.name.clone(),
        uid: node.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Whether the node has the `NoExecute` taint `key` (upstream `TaintExists` with a taint
/// template, without making one).
fn has_no_execute_taint(node: &Node, key: &str) -> bool {
    taints::node_taints(node)
        .iter()
        .any(|t| t.key == key && t.effect == NO_EXECUTE)
}

/// Whether the node has the `NoExecute` unreachable or not-ready taint.
fn has_unreachable_or_not_ready_taint(node: &Node) -> bool {
    has_no_execute_taint(node, TAINT_NODE_UNREACHABLE)
        || has_no_execute_taint(node, TAINT_NODE_NOT_READY)
}

/// The result of a node's check in a monitor pass: its zone and whether its Ready condition
/// (`current`, after the update) is True, unless it is excluded from disruption checks.
fn zone_status<'a>(node: &'a Node, current: Option<&str>) -> Option<(ZoneKey<'a>, bool)> {
    let (zone, excluded) = ZoneKey::and_exclusion(node);
    (!excluded).then_some((zone, current == Some("True")))
}

/// When the node was created (now if unknown).
fn creation_time(node: &Node) -> Time {
    node.metadata
        .creation_timestamp
        .clone()
        .unwrap_or_else(now_time)
}

/// The status of a node's Ready condition in a monitor pass, before any update (see
/// [`Controller::observe_node_health`]).
#[derive(Debug, Clone, Copy)]
struct Observation<'a> {
    /// The status of the Ready condition; Unknown if there is none.
    observed: &'a str,
    /// The status of the Ready condition, if any.
    current: Option<&'a str>,
    /// Neither heartbeat nor lease for longer than the grace period: the conditions are to be
    /// set to Unknown.
    unheard: bool,
}

impl Observation<'_> {
    /// Whether the node is Ready and heard of, and has no `NoExecute` taint to remove: nothing
    /// to write (see [`Controller::check_quiet_node`]).
    fn is_quiet(&self, node: &Node) -> bool {
        !self.unheard && self.current == Some("True") && !has_unreachable_or_not_ready_taint(node)
    }
}

/// The `NoSchedule` taint keys following node conditions (upstream
/// `nodeConditionToTaintKeyStatusMap`).
fn condition_taint(type_: &str, status: &str) -> Option<&'static str> {
    match (type_, status) {
        ("Ready", "False") => Some(TAINT_NODE_NOT_READY),
        ("Ready", "Unknown") => Some(TAINT_NODE_UNREACHABLE),
        ("MemoryPressure", "True") => Some(TAINT_NODE_MEMORY_PRESSURE),
        ("DiskPressure", "True") => Some(TAINT_NODE_DISK_PRESSURE),
        ("NetworkUnavailable", "True") => Some(TAINT_NODE_NETWORK_UNAVAILABLE),
        ("PIDPressure", "True") => Some(TAINT_NODE_PID_PRESSURE),
        _ => None,
    }
}

fn is_condition_taint_key(key: &str) -> bool {
    [
        TAINT_NODE_NOT_READY,
        TAINT_NODE_UNREACHABLE,
        TAINT_NODE_MEMORY_PRESSURE,
        TAINT_NODE_DISK_PRESSURE,
        TAINT_NODE_NETWORK_UNAVAILABLE,
        TAINT_NODE_PID_PRESSURE,
    ]
    .contains(&key)
}

/// The condition taints a node should have and the ones it has that are not wanted (upstream
/// `doNoScheduleTaintingPass` with `TaintSetDiff`).
pub fn no_schedule_diff(node: &Node) -> (Vec<Taint>, Vec<Taint>) {
    let mut want: Vec<Taint> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[])
        .iter()
        .filter_map(|c| condition_taint(&c.type_, &c.status))
        .map(|k| taint(k, NO_SCHEDULE))
        .collect();
    if node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        want.push(taint(TAINT_NODE_UNSCHEDULABLE, NO_SCHEDULE));
    }
    let have: Vec<Taint> = taints::node_taints(node)
        .iter()
        .filter(|t| {
            t.effect == NO_SCHEDULE
                && (t.key == TAINT_NODE_UNSCHEDULABLE || is_condition_taint_key(&t.key))
        })
        .cloned()
        .collect();
    let add = want
        .iter()
        .filter(|t| !taint_exists(&have, t))
        .cloned()
        .collect();
    let del = have
        .iter()
        .filter(|t| !taint_exists(&want, t))
        .cloned()
        .collect();
    (add, del)
}

impl Controller {
    fn new(ctx: &Context) -> Arc<Self> {
        let pods = ctx.factory.informer::<Pod>();
        add_pod_node_index(&pods);
        Arc::new(Controller {
            client: ctx.client.clone(),
            nodes: ctx.factory.informer::<Node>(),
            leases: ctx.factory.informer::<Lease>(),
            pods,
            monitor_grace: ctx.config.node_monitor_grace_period,
            startup_grace: ctx.config.node_startup_grace_period,
            health: Mutex::new(HashMap::new()),
            zones: Mutex::new(HashMap::new()),
            retry: Mutex::new(HashSet::new()),
            evictor: tokio::sync::Mutex::new(()),
            no_schedule: WorkQueue::new(ctx.shutdown.clone()),
            recorder: Recorder::new(
                ctx.client.clone(),
                EVENT_COMPONENT,
                None,
                ctx.shutdown.clone(),
            ),
        })
    }

    async fn no_schedule_tainting_pass(&self, name: &str) -> Result<Requeue, Error> {
        let Some(node) = self.nodes.get("", name) else {
            return Ok(Requeue::No);
        };
        let (add, del) = no_schedule_diff(&node);
        if add.is_empty() && del.is_empty() {
            return Ok(Requeue::No);
        }
        swap_taints(&self.client, &node, &add, &del).await?;
        Ok(Requeue::No)
    }

    /// Upstream `monitorNodeHealth`.
    async fn monitor_node_health(self: &Arc<Self>) {
        let nodes = self.nodes.list();
        let (added, deleted) = {
            // The nodes known are those of the health map: the checks below add every listed
            // node to it, the deletions below remove the others.
            let known = self.health.lock();
            let added: Vec<&Node> = nodes
                .iter()
                .map(|n| n.as_ref())
                .filter(|n| !known.contains_key(name_of(n)))
                .collect();
            // Names are unique: some known nodes are gone only if the known and the added ones
            // are more than the listed ones.
            let mut deleted = Vec::new();
            if known.len() + added.len() > nodes.len() {
                let current: HashSet<&str> = nodes.iter().map(|n| name_of(n)).collect();
                deleted = known
                    .keys()
                    .filter(|k| !current.contains(k.as_str()))
                    .cloned()
                    .collect();
            }
            (added, deleted)
        };
        for n in added {
            let name = name_of(n);
            tracing::debug!(node = name, "Controller observed a new Node");
            self.recorder.event_ref(
                node_ref(n),
                EventType::Normal,
                "RegisteredNode",
                format!("Node {name} event: Registered Node {name} in Controller"),
            );
            self.zones
                .lock()
                .entry(zone_key(n))
                .or_insert_with(Zone::new);
            if let Err(e) = self.mark_node_as_reachable(n).await {
                tracing::warn!(node = name, error = %e, "failed to remove taints from node");
            }
        }
        for name in &deleted {
            tracing::debug!(node = %name, "Controller observed a Node deletion");
            self.recorder.event_ref(
                ObjectReference {
                    kind: Some("Node".into()),
                    api_version: Some("v1".into()),
                    name: Some(name.clone()),
                    ..Default::default()
                },
                EventType::Normal,
                "RemovingNode",
                format!("Node {name} event: Removing Node {name} from Controller"),
            );
            self.health.lock().remove(name);
            self.retry.lock().remove(name);
            for z in self.zones.lock().values_mut() {
                z.remove(name);
            }
        }

        // (A few zones: ordered by their short keys, found without hashing.)
        let mut by_zone: BTreeMap<ZoneKey, ZoneCount> = BTreeMap::new();
        let mut count = |checked| {
            if let Some((zone, ready)) = checked {
                let count = by_zone.entry(zone).or_default();
                count.total += 1;
                count.ready += usize::from(ready);
            }
        };
        // Quiet nodes are done at once; the others, which have API calls to make, `WORKERS` at a
        // time.
        let mut busy = Vec::new();
        for node in &nodes {
            let seen = self.observe_node_health(node);
            if seen.is_quiet(node) {
                count(self.check_quiet_node(node));
            } else {
                busy.push((node.as_ref(), seen));
            }
        }
        // (Not `stream::iter(..).map(..).buffer_unordered(..)`: a closure making futures that
        // borrow the nodes does not make a `Send` future.)
        let mut pending = busy.into_iter();
        let mut checks = FuturesUnordered::new();
        loop {
            while checks.len() < WORKERS
                && let Some((node, seen)) = pending.next()
            {
                checks.push(self.check_node(node, seen));
            }
            let Some(checked) = checks.next().await else {
                break;
            };
            count(checked);
        }
        let zone_counts: HashMap<String, ZoneCount> = by_zone
            .into_iter()
            .map(|(zone, count)| (zone.to_key(), count))
            .collect();
        self.handle_disruption(&zone_counts).await;
    }

    /// One node of a monitor pass, after [`Controller::observe_node_health`]: its zone and
    /// whether it is Ready now, unless it is excluded from disruption checks or its health could
    /// not be updated.
    async fn check_node<'a>(
        &self,
        node: &'a Node,
        seen: Observation<'a>,
    ) -> Option<(ZoneKey<'a>, bool)> {
        let name = name_of(node);
        let (observed, current) = match self.try_update_node_health(node, seen).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(node = %name, error = %e, "Update health of Node from Controller error; skipping - no pods will be evicted");
                return None;
            }
        };
        let out = zone_status(node, current);
        let Some(current) = current else {
            return out;
        };
        if let Err(e) = self.process_taint_base_eviction(node, observed).await {
            tracing::info!(node = %name, error = %e, "failed to update the NoExecute taints");
        }
        let needs_retry = self.retry.lock().contains(name);
        let transition = current != "True" && observed == "True";
        if transition {
            self.recorder.event_ref(
                node_ref(node),
                EventType::Normal,
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            );
        }
        if (transition || (needs_retry && observed != "True"))
            && let Err(e) = self.mark_pods_not_ready(name).await
        {
            tracing::info!(node = %name, error = %e, "unable to mark all pods NotReady on node; queuing for retry");
            self.retry.lock().insert(name.to_string());
            return out;
        }
        if needs_retry {
            self.retry.lock().remove(name);
        }
        out
    }

    /// What [`Controller::check_node`] does for a quiet node: Ready, heard of, without a
    /// `NoExecute` taint to remove. That is no API call, so no future either (the steady state
    /// of every node).
    fn check_quiet_node<'a>(&self, node: &'a Node) -> Option<(ZoneKey<'a>, bool)> {
        // `process_taint_base_eviction` with Ready True: no taint to remove.
        self.forget_tainting(node);
        // Ready: not a transition, no pods to mark not Ready.
        let mut retry = self.retry.lock();
        // (`remove` would hash the name even in an empty set.)
        if !retry.is_empty() {
            retry.remove(name_of(node));
        }
        zone_status(node, Some("True"))
    }

    /// The first part of upstream `tryUpdateNodeHealth`: updates what is remembered of the node
    /// from its Ready condition and its Lease.
    fn observe_node_health<'a>(&self, node: &'a Node) -> Observation<'a> {
        let name = name_of(node);
        let now = Instant::now();
        let current_ready = condition(node, "Ready");
        let renew = self
            .leases
            .get(LEASE_NAMESPACE, name)
            .and_then(|l| Some(l.spec.as_ref()?.renew_time.as_ref()?.0));
        let mut map = self.health.lock();
        let saved = map.get_mut(name);
        let lease_renew = saved.as_ref().and_then(|h| h.lease_renew);
        let (mut health, grace) = match current_ready {
            None => {
                let probe = saved
                    .as_ref()
                    .map_or_else(|| instant_of(creation_time(node).0), |h| h.probe);
                let health = Health {
                    ready: None,
                    probe,
                    lease_renew,
                };
                (health, self.startup_grace)
            }
            Some(c) => {
                let heartbeat = Some(c.last_heartbeat_time.as_ref().map(|t| t.0));
                let health = match saved.as_deref() {
                    // The same heartbeat as last time: nothing happened.
                    Some(h) if h.ready == heartbeat => *h,
                    _ => Health {
                        ready: heartbeat,
                        probe: now,
                        lease_renew,
                    },
                };
                (health, self.monitor_grace)
            }
        };
        // A renewed lease is a heartbeat too.
        if let Some(r) = renew
            && health.lease_renew.is_none_or(|saved| saved < r)
        {
            health.lease_renew = Some(r);
            health.probe = now;
        }
        match saved {
            Some(h) => *h = health,
            None => {
                map.insert(name.to_string(), health);
            }
        }
        Observation {
            observed: current_ready.map_or("Unknown", |c| c.status.as_str()),
            current: current_ready.map(|c| c.status.as_str()),
            unheard: now > health.probe + grace,
        }
    }

    /// The rest of upstream `tryUpdateNodeHealth`: a node unheard of for longer than its grace
    /// period gets its conditions set to Unknown. Returns the status of the observed Ready
    /// condition and that of the current one (after the update).
    async fn try_update_node_health<'a>(
        &self,
        node: &'a Node,
        seen: Observation<'a>,
    ) -> Result<(&'a str, Option<&'a str>), Error> {
        let Observation {
            observed, current, ..
        } = seen;
        if !seen.unheard {
            return Ok((observed, current));
        }
        let name = name_of(node);
        let created = || creation_time(node);
        // Neither heartbeat nor lease for longer than the grace period: Unknown.
        let now_t = now_time();
        let mut changed = Vec::new();
        for type_ in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
            match condition(node, type_) {
                None => changed.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: Some(created()),
                    last_transition_time: Some(now_t.clone()),
                }),
                Some(c) if c.status != "Unknown" => changed.push(NodeCondition {
                    status: "Unknown".into(),
                    reason: Some("NodeStatusUnknown".into()),
                    message: Some("Kubelet stopped posting node status.".into()),
                    last_transition_time: Some(now_t.clone()),
                    ..c.clone()
                }),
                Some(_) => {}
            }
        }
        let Some(new_ready) = changed.iter().find(|c| c.type_ == "Ready") else {
            return Ok((observed, current));
        };
        let heartbeat = new_ready.last_heartbeat_time.as_ref().map(|t| t.0);
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "status": {"conditions": changed},
        });
        // Boxed: a rare write, whose large future stays out of that of each node's check.
        Box::pin(api.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))).await?;
        tracing::info!(node = %name, "node stopped posting status; conditions set to Unknown");
        if let Some(h) = self.health.lock().get_mut(name) {
            h.ready = Some(heartbeat);
        }
        Ok((observed, Some("Unknown")))
    }

    /// Upstream `processTaintBaseEviction`, from the status of the observed Ready condition.
    async fn process_taint_base_eviction(&self, node: &Node, observed: &str) -> Result<(), Error> {
        match observed {
            "False" => {
                if has_no_execute_taint(node, TAINT_NODE_UNREACHABLE) {
                    let add = taint(TAINT_NODE_NOT_READY, NO_EXECUTE);
                    let remove = taint(TAINT_NODE_UNREACHABLE, NO_EXECUTE);
                    self.swap_taints(node, &[add], &[remove]).await?;
                } else {
                    self.mark_for_tainting(node);
                }
            }
            "Unknown" => {
                if has_no_execute_taint(node, TAINT_NODE_NOT_READY) {
                    let add = taint(TAINT_NODE_UNREACHABLE, NO_EXECUTE);
                    let remove = taint(TAINT_NODE_NOT_READY, NO_EXECUTE);
                    self.swap_taints(node, &[add], &[remove]).await?;
                } else {
                    self.mark_for_tainting(node);
                }
            }
            "True" => {
                self.mark_node_as_reachable(node).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// [`swap_taints`], boxed: a rare write, whose large future stays out of that of each
    /// node's check.
    async fn swap_taints(&self, node: &Node, add: &[Taint], remove: &[Taint]) -> Result<(), Error> {
        Box::pin(swap_taints(&self.client, node, add, remove)).await?;
        Ok(())
    }

    /// Takes the node off its zone's tainting queue.
    fn forget_tainting(&self, node: &Node) {
        let mut zones = self.zones.lock();
        // Nothing queued (the steady state): no zone key to build.
        if zones.values().any(|z| !z.queued.is_empty())
            && let Some(z) = zones.get_mut(&zone_key(node))
        {
            z.remove(name_of(node));
        }
    }

    fn mark_for_tainting(&self, node: &Node) {
        let name = node.metadata.name.as_deref().unwrap_or("");
        self.zones
            .lock()
            .entry(zone_key(node))
            .or_insert_with(Zone::new)
            .add(name, Instant::now());
    }

    /// Removes the `NoExecute` not-ready/unreachable taints and forgets a queued tainting
    /// (upstream `markNodeAsReachable`).
    async fn mark_node_as_reachable(&self, node: &Node) -> Result<(), Error> {
        self.forget_tainting(node);
        if has_unreachable_or_not_ready_taint(node) {
            let remove = [
                taint(TAINT_NODE_UNREACHABLE, NO_EXECUTE),
                taint(TAINT_NODE_NOT_READY, NO_EXECUTE),
            ];
            self.swap_taints(node, &[], &remove).await?;
        }
        Ok(())
    }

    /// Upstream `doNoExecuteTaintingPass`: taints the queued nodes each zone's limiter allows.
    async fn no_execute_tainting_pass(&self) {
        // Until the taints are written: see `evictor`.
        let _evictor = self.evictor.lock().await;
        let now = Instant::now();
        let due: Vec<(String, String)> = {
            let mut zones = self.zones.lock();
            let mut due = Vec::new();
            for (zone, z) in zones.iter_mut() {
                while let Some(head) = z.queue.front().cloned() {
                    let Some(limiter) = z.limiter.as_mut() else {
                        break;
                    };
                    if z.queued.get(&head).is_some_and(|at| *at > now) {
                        break;
                    }
                    if !limiter.try_accept() {
                        break;
                    }
                    z.queue.pop_front();
                    z.queued.remove(&head);
                    due.push((zone.clone(), head));
                }
            }
            due
        };
        for (zone, name) in due {
            let Some(node) = self.nodes.get("", &name) else {
                continue;
            };
            let Some(ready) = condition(&node, "Ready") else {
                continue;
            };
            let not_ready = taint(TAINT_NODE_NOT_READY, NO_EXECUTE);
            let unreachable = taint(TAINT_NODE_UNREACHABLE, NO_EXECUTE);
            let (add, remove) = match ready.status.as_str() {
                "False" => (not_ready, unreachable),
                "Unknown" => (unreachable, not_ready),
                // Ready again: nothing to taint.
                _ => continue,
            };
            if let Err(e) = swap_taints(&self.client, &node, &[add], &[remove]).await {
                tracing::info!(node = %name, error = %e, "failed to taint node; will retry");
                if let Some(z) = self.zones.lock().get_mut(&zone) {
                    z.add(&name, Instant::now() + Duration::from_millis(50));
                }
            }
        }
    }

    /// Upstream `handleDisruption`.
    async fn handle_disruption(&self, zone_conditions: &HashMap<String, ZoneCount>) {
        let mut new_states = HashMap::new();
        let mut all_are_fully = true;
        {
            let mut zones = self.zones.lock();
            for (k, v) in zone_conditions {
                let s = v.state();
                if s != ZoneState::FullDisruption {
                    all_are_fully = false;
                }
                new_states.insert(k.clone(), s);
                zones.entry(k.clone()).or_insert_with(Zone::new);
            }
        }
        let all_was_fully = {
            let mut zones = self.zones.lock();
            zones.retain(|k, _| zone_conditions.contains_key(k));
            zones.values().all(|z| z.state == ZoneState::FullDisruption)
        };
        if all_are_fully && all_was_fully {
            return;
        }
        if all_are_fully {
            tracing::info!(
                "Controller detected that all Nodes are not-Ready. Entering master disruption mode"
            );
            self.enter_full_disruption().await;
            return;
        }
        if all_was_fully {
            tracing::info!(
                "Controller detected that some Nodes are Ready. Exiting master disruption mode"
            );
            let now = Instant::now();
            for h in self.health.lock().values_mut() {
                h.probe = now;
            }
            let mut zones = self.zones.lock();
            for (k, z) in zones.iter_mut() {
                let s = new_states.get(k).copied().unwrap_or(ZoneState::Normal);
                set_limiter(z, zone_conditions.get(k).map_or(0, |c| c.total), s);
                z.state = s;
            }
            return;
        }
        let mut zones = self.zones.lock();
        for (k, z) in zones.iter_mut() {
            let s = new_states.get(k).copied().unwrap_or(ZoneState::Normal);
            if z.state == s {
                continue;
            }
            tracing::info!(zone = %k, state = ?s, "Controller detected that zone is now in new state");
            set_limiter(z, zone_conditions.get(k).map_or(0, |c| c.total), s);
            z.state = s;
        }
    }

    /// The switch to full disruption: removes the `NoExecute` not-ready/unreachable taints of
    /// every node, forgets the queued taintings (upstream `markNodeAsReachable` for each node)
    /// and stops tainting (every limiter to 0).
    ///
    /// Upstream removes the taints seen in the monitor pass's node list. A taint the tainting
    /// pass wrote during this monitor pass (a node queued while its zone was still Normal, e.g.
    /// the first of two nodes to go down, one pass before the other) is not in that list, nor
    /// yet in the informer, and would stay for the whole disruption, evicting the node's pods.
    /// So the tainting pass is excluded while switching (it cannot write a taint before or
    /// after the removal, see `evictor`) and the taints are read from a fresh list (from the
    /// informer if that fails).
    async fn enter_full_disruption(&self) {
        let _evictor = self.evictor.lock().await;
        let api: Api<Node> = Api::all(self.client.clone());
        let fresh: Vec<Arc<Node>> = match api.list(&Default::default()).await {
            Ok(list) => list.items.into_iter().map(Arc::new).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "failed to list nodes; removing the taints seen in the informer");
                self.nodes.list()
            }
        };
        for n in &fresh {
            if let Err(e) = self.mark_node_as_reachable(n).await {
                tracing::warn!(node = ?n.metadata.name, error = %e, "failed to remove taints from node");
            }
        }
        for z in self.zones.lock().values_mut() {
            z.queue.clear();
            z.queued.clear();
            z.swap_limiter(0.0);
            z.state = ZoneState::FullDisruption;
        }
    }

    /// Sets the Ready condition of the node's pods to False (upstream `MarkPodsNotReady`).
    async fn mark_pods_not_ready(&self, node: &str) -> Result<(), Error> {
        let pods = self.pods.by_index(POD_NODE_INDEX, node);
        let now = now_time();
        let results: Vec<Result<(), kube::Error>> = futures::stream::iter(pods)
            .map(|pod| {
                let client = self.client.clone();
                let recorder = self.recorder.clone();
                let now = now.clone();
                async move {
                    if pod_node(&pod) != node {
                        return Ok(());
                    }
                    let Some(ready) = crate::util::pod_condition(&pod, "Ready") else {
                        return Ok(());
                    };
                    if ready.status == "False" {
                        return Ok(());
                    }
                    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
                    let name = pod.metadata.name.as_deref().unwrap_or("");
                    let api: Api<Pod> = Api::namespaced(client, ns);
                    let patch = serde_json::json!({"status": {"conditions": [{
                        "type": "Ready", "status": "False", "lastTransitionTime": now,
                    }]}});
                    match api
                        .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
                        .await
                    {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                        Err(e) => return Err(e),
                    }
                    recorder.event(
                        pod.as_ref(),
                        EventType::Warning,
                        "NodeNotReady",
                        "Node is not ready",
                    );
                    Ok(())
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect::<Result<(), _>>()?;
        Ok(())
    }
}

/// Upstream `setLimiterInZone`.
fn set_limiter(z: &mut Zone, size: usize, state: ZoneState) {
    match state {
        ZoneState::Normal | ZoneState::Initial | ZoneState::FullDisruption => {
            z.swap_limiter(EVICTION_LIMITER_QPS)
        }
        ZoneState::PartialDisruption => z.swap_limiter(if size > LARGE_CLUSTER_THRESHOLD {
            SECONDARY_EVICTION_LIMITER_QPS
        } else {
            0.0
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|x| Some((*x).to_string())).collect()
    }

    #[test]
    fn zone_states() {
        assert_eq!(
            compute_zone_state(&s(&["Unknown", "False"])),
            ZoneState::FullDisruption
        );
        assert_eq!(
            compute_zone_state(&s(&["True", "Unknown"])),
            ZoneState::Normal
        );
        assert_eq!(
            compute_zone_state(&s(&["True", "Unknown", "Unknown", "False"])),
            ZoneState::PartialDisruption
        );
        assert_eq!(compute_zone_state(&[None]), ZoneState::FullDisruption);
    }

    #[test]
    fn bucket_allows_one_then_waits() {
        let mut b = Bucket::new(0.1);
        assert!(b.try_accept());
        assert!(!b.try_accept());
    }

    #[test]
    fn no_schedule_taints_follow_conditions() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": true, "taints": [
                {"key": TAINT_NODE_DISK_PRESSURE, "effect": "NoSchedule"},
                {"key": "user", "effect": "NoSchedule"},
            ]},
            "status": {"conditions": [
                {"type": "Ready", "status": "Unknown"},
                {"type": "MemoryPressure", "status": "True"},
                {"type": "DiskPressure", "status": "False"},
            ]}
        }))
        .unwrap();
        let (add, del) = no_schedule_diff(&node);
        let keys: Vec<&str> = add.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                TAINT_NODE_UNREACHABLE,
                TAINT_NODE_MEMORY_PRESSURE,
                TAINT_NODE_UNSCHEDULABLE
            ]
        );
        assert_eq!(del.len(), 1);
        assert_eq!(del[0].key, TAINT_NODE_DISK_PRESSURE);
    }

    /// A controller over a fresh API server with two nodes whose Ready is Unknown (as after
    /// their heartbeats stopped), their informer synced.
    async fn down_nodes() -> (apiserver::inprocess::TempServer, Arc<Controller>) {
        two_nodes(serde_json::json!(
            {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}
        ))
        .await
    }

    /// A controller over a fresh API server with nodes `a` and `b` whose only condition is
    /// `ready`, once its informer shows that condition on both.
    async fn two_nodes(
        ready: serde_json::Value,
    ) -> (apiserver::inprocess::TempServer, Arc<Controller>) {
        let api = apiserver::inprocess::TempServer::start().await.unwrap();
        let ctx = Context {
            client: api.client.clone(),
            factory: informers::Factory::new(api.client.clone(), api.shutdown.clone()),
            config: crate::Config::default(),
            shutdown: api.shutdown.clone(),
        };
        let nodes: Api<Node> = Api::all(api.client.clone());
        for name in ["a", "b"] {
            nodes
                .create(
                    &Default::default(),
                    &serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
                        .unwrap(),
                )
                .await
                .unwrap();
            let patch = serde_json::json!({"status": {"conditions": [ready.clone()]}});
            nodes
                .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
                .unwrap();
        }
        let c = Controller::new(&ctx);
        c.nodes.wait_synced().await;
        let status = ready["status"].as_str().unwrap_or_default().to_owned();
        for _ in 0..100 {
            let shows = |n: &str| {
                c.nodes
                    .get("", n)
                    .is_some_and(|n| condition(&n, "Ready").is_some_and(|c| c.status == status))
            };
            if shows("a") && shows("b") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (api, c)
    }

    async fn unreachable_tainted(c: &Controller, name: &str) -> bool {
        let api: Api<Node> = Api::all(c.client.clone());
        taint_exists(
            taints::node_taints(&api.get(name).await.unwrap()),
            &taint(TAINT_NODE_UNREACHABLE, NO_EXECUTE),
        )
    }

    fn conditions(v: &[&str]) -> HashMap<String, ZoneCount> {
        let count = ZoneCount {
            ready: v.iter().filter(|s| **s == "True").count(),
            total: v.len(),
        };
        HashMap::from([(String::new(), count)])
    }

    /// `a` went down one monitor pass before `b`: queued while the zone was Normal, it is
    /// tainted after that pass listed the nodes, and `b` going down in the same pass switches to
    /// full disruption. The switch must remove the taint it did not see in its list.
    #[tokio::test]
    async fn taint_written_during_the_switching_pass_is_removed() {
        let (_api, c) = down_nodes().await;
        // The pass before: `b` still Ready, the zone Normal.
        c.handle_disruption(&conditions(&["Unknown", "True"])).await;
        let a = c.nodes.get("", "a").unwrap();
        c.mark_for_tainting(&a);
        // The tainting pass taints `a` (after the switching monitor pass listed the nodes), then
        // that pass sees `b` down too and switches.
        c.no_execute_tainting_pass().await;
        assert!(unreachable_tainted(&c, "a").await, "setup: a tainted");
        c.handle_disruption(&conditions(&["Unknown", "Unknown"]))
            .await;
        assert!(
            !unreachable_tainted(&c, "a").await,
            "a tainted in full disruption"
        );
        // Nodes still queued by the monitor passes of the disruption are not tainted.
        c.mark_for_tainting(&a);
        c.mark_for_tainting(&c.nodes.get("", "b").unwrap());
        c.no_execute_tainting_pass().await;
        assert!(!unreachable_tainted(&c, "a").await);
        assert!(!unreachable_tainted(&c, "b").await);
    }

    /// The same with the taint write still in flight when the switch runs: the switch waits
    /// for it and removes the taint; the queued tainting is not done after the switch.
    #[tokio::test]
    async fn taint_in_flight_during_the_switch_is_removed() {
        let (_api, c) = down_nodes().await;
        c.handle_disruption(&conditions(&["Unknown", "True"])).await;
        c.mark_for_tainting(&c.nodes.get("", "a").unwrap());
        // Polled first: the tainting pass takes `a` off the queue and starts writing the taint.
        let all_down = conditions(&["Unknown", "Unknown"]);
        tokio::join!(c.no_execute_tainting_pass(), c.handle_disruption(&all_down),);
        assert!(
            !unreachable_tainted(&c, "a").await,
            "a tainted in full disruption"
        );
        // Switched first: the queued tainting is forgotten.
        let (_api, c) = down_nodes().await;
        c.handle_disruption(&conditions(&["Unknown", "True"])).await;
        c.mark_for_tainting(&c.nodes.get("", "a").unwrap());
        tokio::join!(c.handle_disruption(&all_down), c.no_execute_tainting_pass(),);
        c.no_execute_tainting_pass().await;
        assert!(
            !unreachable_tainted(&c, "a").await,
            "a tainted in full disruption"
        );
    }

    /// A pass over Ready nodes (the quiet path): a node queued for tainting that is Ready again
    /// leaves the queue untainted, the zone is Normal; a deleted node is forgotten.
    #[tokio::test]
    async fn ready_nodes_leave_the_tainting_queue_and_deleted_ones_are_forgotten() {
        let now = Timestamp::now().to_string();
        let (_api, c) = two_nodes(serde_json::json!(
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "lastHeartbeatTime": now, "lastTransitionTime": now}
        ))
        .await;
        // The first pass registers the nodes (and takes them off the queues).
        c.monitor_node_health().await;
        c.mark_for_tainting(&c.nodes.get("", "a").unwrap());
        c.monitor_node_health().await;
        {
            let zones = c.zones.lock();
            let zone = zones.get("").unwrap();
            assert!(zone.queued.is_empty() && zone.queue.is_empty());
            assert_eq!(zone.state, ZoneState::Normal);
        }
        assert!(!unreachable_tainted(&c, "a").await);
        assert_eq!(c.health.lock().len(), 2);

        c.nodes.delete(&c.nodes.get("", "b").unwrap());
        c.monitor_node_health().await;
        let known: Vec<String> = c.health.lock().keys().cloned().collect();
        assert_eq!(known, ["a"]);
        // Known again if it comes back.
        c.nodes.apply(Node {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("b".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        c.monitor_node_health().await;
        assert!(c.health.lock().contains_key("b"));
    }

    #[test]
    fn zone_keys() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n", "labels": {"topology.kubernetes.io/zone": "z1", "topology.kubernetes.io/region": "r"}}
        }))
        .unwrap();
        assert_eq!(zone_key(&node), "r:\x00:z1");
        assert_eq!(zone_key(&Node::default()), "");
        let with = |labels: serde_json::Value| -> Node {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "n", "labels": labels}}))
                .unwrap()
        };
        // The beta labels count only without the GA ones.
        let beta = with(serde_json::json!({
            "failure-domain.beta.kubernetes.io/zone": "bz",
            "failure-domain.beta.kubernetes.io/region": "br",
            "topology.kubernetes.io/zone": "z",
            "kubernetes.io/hostname": "n",
        }));
        assert_eq!(zone_key(&beta), "br:\x00:z");
        assert_eq!(
            zone_status(&beta, Some("True")),
            Some((ZoneKey::of(&beta), true))
        );
        assert_eq!(
            zone_status(&beta, Some("False")),
            Some((ZoneKey::of(&beta), false))
        );
        let excluded = with(serde_json::json!({
            "node.kubernetes.io/exclude-disruption": "",
            "topology.kubernetes.io/zone": "z",
        }));
        assert_eq!(zone_key(&excluded), ":\x00:z");
        assert_eq!(zone_status(&excluded, Some("True")), None);
        assert_eq!(zone_status(&node, None), Some((ZoneKey::of(&node), false)));
    }
}
