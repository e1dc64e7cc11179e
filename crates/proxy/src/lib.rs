//! The service proxy (kube-proxy's role), run by the node agent: Services and EndpointSlices
//! become one nftables table of its own (`table ip r8s`), replaced atomically at start and then
//! changed incrementally, one small transaction per batch of changes. See [`nft`] for the
//! table's design.

pub mod model;
pub mod nft;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use informers::{Event, Informer};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use model::{Ipv4Cidr, PortPlan};
use nft::{Element, Layout, Set};

/// The label tying an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How often the proxy checks that its table is still there (and rebuilds it if not).
const TABLE_CHECK_PERIOD: Duration = Duration::from_secs(60);

/// Errors of the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `nft` failed or could not be run.
    #[error("nft: {0}")]
    Nft(String),
}

/// Proxy configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name (for Local traffic policies).
    pub node_name: String,
    /// The service CIDR: traffic to it that no Service answers is rejected.
    pub service_cidr: Ipv4Cidr,
    /// The cluster (pod) CIDR: ClusterIP traffic from outside it is masqueraded.
    pub cluster_cidr: Ipv4Cidr,
    /// The nftables table (`table ip <name>`).
    pub table: String,
    /// The `nft` command (e.g. `["ip", "netns", "exec", "x", "nft"]` to program another
    /// network namespace).
    pub nft_command: Vec<String>,
}

impl Config {
    /// A configuration with the table `r8s` and the `nft` on the PATH.
    pub fn new(node_name: &str, service_cidr: Ipv4Cidr, cluster_cidr: Ipv4Cidr) -> Config {
        Config {
            node_name: node_name.to_string(),
            service_cidr,
            cluster_cidr,
            table: "r8s".into(),
            nft_command: vec!["nft".into()],
        }
    }

    fn layout(&self) -> Layout {
        Layout {
            table: self.table.clone(),
            service_cidr: self.service_cidr,
            cluster_cidr: self.cluster_cidr,
        }
    }
}

/// Removes the proxy's table (`r8s agent --cleanup`); nothing else on the host is touched.
pub async fn cleanup(config: &Config) -> Result<(), Error> {
    let t = &config.table;
    nft::apply(
        &config.nft_command,
        &format!("add table ip {t}\ndelete table ip {t}\n"),
    )
    .await
}

/// The Services and slices the proxy has seen.
#[derive(Default)]
struct Index {
    services: HashMap<String, Arc<Service>>,
    /// Service key → slice name → slice.
    slices: HashMap<String, BTreeMap<String, Arc<EndpointSlice>>>,
    /// Slice key → the Service key it belongs to.
    slice_service: HashMap<String, String>,
}

impl Index {
    fn plans(&self, key: &str, node: &str) -> Vec<PortPlan> {
        let Some(svc) = self.services.get(key) else {
            return Vec::new();
        };
        let slices = self.slices.get(key);
        model::plan(
            svc,
            slices.into_iter().flat_map(|m| m.values().map(|s| &**s)),
            node,
        )
    }

    /// Records a Service event; returns the key to resync.
    fn service_event(&mut self, ev: Event<Service>) -> String {
        let obj = ev.object().clone();
        let key = informers::key_of(&*obj);
        match ev {
            Event::Deleted(_) => {
                self.services.remove(&key);
            }
            _ => {
                self.services.insert(key.clone(), obj);
            }
        }
        key
    }

    /// Records a slice event; returns the Service keys to resync.
    fn slice_event(&mut self, ev: Event<EndpointSlice>) -> Vec<String> {
        let obj = ev.object().clone();
        let slice_key = informers::key_of(&*obj);
        let name = obj.metadata.name.clone().unwrap_or_default();
        let mut dirty = Vec::new();
        if let Some(old) = self.slice_service.remove(&slice_key) {
            if let Some(m) = self.slices.get_mut(&old) {
                m.remove(&name);
                if m.is_empty() {
                    self.slices.remove(&old);
                }
            }
            dirty.push(old);
        }
        if matches!(ev, Event::Deleted(_)) {
            return dirty;
        }
        let Some(svc) = obj
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            return dirty;
        };
        let ns = obj.metadata.namespace.clone().unwrap_or_default();
        let key = format!("{ns}/{svc}");
        self.slices
            .entry(key.clone())
            .or_default()
            .insert(name, obj);
        self.slice_service.insert(slice_key, key.clone());
        if !dirty.contains(&key) {
            dirty.push(key);
        }
        dirty
    }
}

/// What is in the kernel's table.
#[derive(Default)]
struct Programmed {
    /// Service key → its elements (hairpin ones apart).
    elements: HashMap<String, Vec<Element>>,
    /// Service key → its endpoint IPs (for `hairpin`).
    endpoint_ips: HashMap<String, Vec<Ipv4Addr>>,
    /// Endpoint IP → number of Services using it.
    hairpin_refs: HashMap<Ipv4Addr, usize>,
    /// (set, key) → the Service that holds it (a key belongs to one Service only).
    owners: HashMap<(Set, String), String>,
    /// The selection sets that exist.
    sets: BTreeSet<Set>,
}

/// What a sync changes.
#[derive(Default)]
struct Delta {
    new_sets: Vec<Set>,
    deletes: BTreeMap<Set, Vec<Element>>,
    adds: BTreeMap<Set, Vec<Element>>,
}

impl Delta {
    fn is_empty(&self) -> bool {
        self.new_sets.is_empty() && self.deletes.is_empty() && self.adds.is_empty()
    }

    fn script(&self, layout: &Layout) -> String {
        let mut s = String::new();
        for set in &self.new_sets {
            layout.add_set(&mut s, *set);
        }
        for (set, els) in &self.deletes {
            layout.element_command(&mut s, "delete", *set, els.iter(), false);
        }
        for (set, els) in &self.adds {
            layout.element_command(&mut s, "add", *set, els.iter(), true);
        }
        s
    }
}

impl Programmed {
    /// Releases what `key` had that it no longer wants.
    fn release(&mut self, key: &str, want: &[Element], ips: &[Ipv4Addr], delta: &mut Delta) {
        if let Some(old) = self.elements.get_mut(key) {
            old.retain(|e| {
                if want.contains(e) {
                    return true;
                }
                self.owners.remove(&(e.set, e.key.clone()));
                delta.deletes.entry(e.set).or_default().push(e.clone());
                false
            });
        }
        if let Some(old) = self.endpoint_ips.get_mut(key) {
            old.retain(|ip| {
                if ips.contains(ip) {
                    return true;
                }
                if let Some(n) = self.hairpin_refs.get_mut(ip) {
                    *n -= 1;
                    if *n == 0 {
                        self.hairpin_refs.remove(ip);
                        delta
                            .deletes
                            .entry(Set::Hairpin)
                            .or_default()
                            .push(nft::hairpin(*ip));
                    }
                }
                false
            });
        }
    }

    /// Adds what `key` wants and does not have yet.
    fn acquire(&mut self, key: &str, want: Vec<Element>, ips: Vec<Ipv4Addr>, delta: &mut Delta) {
        let have = self.elements.entry(key.to_string()).or_default();
        for e in want {
            if have.contains(&e) {
                continue;
            }
            match self.owners.get(&(e.set, e.key.clone())) {
                Some(other) if other != key => {
                    tracing::warn!(service = key, held_by = %other, set = %e.set.name(), element = %e.key, "address and port already used by another Service; skipped");
                    continue;
                }
                _ => {}
            }
            if !Layout::is_fixed(&e.set) && self.sets.insert(e.set) {
                delta.new_sets.push(e.set);
            }
            self.owners.insert((e.set, e.key.clone()), key.to_string());
            delta.adds.entry(e.set).or_default().push(e.clone());
            have.push(e);
        }
        if have.is_empty() {
            self.elements.remove(key);
        }
        let have = self.endpoint_ips.entry(key.to_string()).or_default();
        for ip in ips {
            if have.contains(&ip) {
                continue;
            }
            let n = self.hairpin_refs.entry(ip).or_default();
            *n += 1;
            if *n == 1 {
                delta
                    .adds
                    .entry(Set::Hairpin)
                    .or_default()
                    .push(nft::hairpin(ip));
            }
            have.push(ip);
        }
        if have.is_empty() {
            self.endpoint_ips.remove(key);
        }
    }
}

/// What one Service should have in the table.
struct Desired {
    key: String,
    plans: Vec<PortPlan>,
    elements: Vec<Element>,
    ips: Vec<Ipv4Addr>,
}

impl Desired {
    fn of(index: &Index, key: &str, node: &str) -> Desired {
        let plans = index.plans(key, node);
        Desired {
            key: key.to_string(),
            elements: nft::elements(&plans),
            ips: nft::endpoint_ips(&plans),
            plans,
        }
    }
}

/// Figures of the last sync, for benchmarks and logs.
#[derive(Debug, Clone, Default)]
pub struct SyncInfo {
    /// Syncs applied so far.
    pub generation: u64,
    /// Whether the last one rebuilt the whole table.
    pub full: bool,
    /// Services changed by the last sync.
    pub services: usize,
    /// Time the last `nft` run took.
    pub duration: Duration,
    /// Time from the first change of the batch reaching the proxy to the table holding it.
    pub took: Duration,
}

struct Shared {
    /// Service key → the plans in the kernel.
    plans: Mutex<HashMap<String, Vec<PortPlan>>>,
    info: watch::Sender<SyncInfo>,
}

/// The proxy. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    config: Arc<Config>,
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy that programs nothing until [`Proxy::run`].
    pub fn new(config: Config) -> Proxy {
        Proxy {
            config: Arc::new(config),
            shared: Arc::new(Shared {
                plans: Mutex::new(HashMap::new()),
                info: watch::channel(SyncInfo::default()).0,
            }),
        }
    }

    /// Follows the syncs.
    pub fn subscribe(&self) -> watch::Receiver<SyncInfo> {
        self.shared.info.subscribe()
    }

    /// The endpoints programmed for the port `port` (its name, "" if unnamed) of the Service
    /// `namespace/name`.
    pub fn backends(&self, service: &str, port: &str) -> Vec<SocketAddrV4> {
        self.shared
            .plans
            .lock()
            .get(service)
            .and_then(|ps| ps.iter().find(|p| p.name == port))
            .map(|p| p.internal.clone())
            .unwrap_or_default()
    }

    /// Programs the table from the informers until `shutdown`; the table stays in place
    /// afterwards (connections keep working across agent restarts, like kube-proxy).
    pub async fn run(
        &self,
        services: Informer<Service>,
        slices: Informer<EndpointSlice>,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let mut svc_rx = services.subscribe();
        let mut slice_rx = slices.subscribe();
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = async { services.wait_synced().await; slices.wait_synced().await } => {}
        }
        let mut index = Index::default();
        drain(&mut index, &mut svc_rx, &mut slice_rx, &mut BTreeSet::new());
        let mut programmed = self.full_sync(&index).await;
        let mut check = tokio::time::interval(TABLE_CHECK_PERIOD);
        check.tick().await;
        loop {
            let mut dirty = BTreeSet::new();
            let received;
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                ev = svc_rx.recv() => match ev {
                    Some(ev) => {
                        received = Instant::now();
                        dirty.insert(index.service_event(ev));
                    }
                    None => return Ok(()),
                },
                ev = slice_rx.recv() => match ev {
                    Some(ev) => {
                        received = Instant::now();
                        dirty.extend(index.slice_event(ev));
                    }
                    None => return Ok(()),
                },
                _ = check.tick() => {
                    if programmed.is_none() || !self.table_exists().await {
                        programmed = self.full_sync(&index).await;
                    }
                    continue;
                }
            }
            drain(&mut index, &mut svc_rx, &mut slice_rx, &mut dirty);
            match programmed.as_mut() {
                Some(p) => {
                    if !self.sync(&index, p, &dirty, received).await {
                        programmed = self.full_sync(&index).await;
                    }
                }
                None => programmed = self.full_sync(&index).await,
            }
        }
    }

    async fn table_exists(&self) -> bool {
        let Some((prog, args)) = self.config.nft_command.split_first() else {
            return false;
        };
        let out = tokio::process::Command::new(prog)
            .args(args)
            .args(["list", "tables", "ip"])
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == format!("table ip {}", self.config.table)),
            _ => false,
        }
    }

    /// Applies the changes of the `dirty` Services; false if nft refused them.
    async fn sync(
        &self,
        index: &Index,
        p: &mut Programmed,
        dirty: &BTreeSet<String>,
        received: Instant,
    ) -> bool {
        let node = &self.config.node_name;
        let mut delta = Delta::default();
        let wanted: Vec<Desired> = dirty
            .iter()
            .map(|key| Desired::of(index, key, node))
            .collect();
        // Releases first, so a key moving between Services in one batch is not refused.
        for d in &wanted {
            p.release(&d.key, &d.elements, &d.ips, &mut delta);
        }
        let mut plans_out = Vec::with_capacity(wanted.len());
        for d in wanted {
            p.acquire(&d.key, d.elements, d.ips, &mut delta);
            plans_out.push((d.key, d.plans));
        }
        let started = Instant::now();
        if !delta.is_empty() {
            let script = delta.script(&self.config.layout());
            if let Err(e) = nft::apply(&self.config.nft_command, &script).await {
                tracing::warn!(error = %e, "incremental nftables update refused; rebuilding the table");
                return false;
            }
        }
        self.publish(
            plans_out,
            false,
            dirty.len(),
            started.elapsed(),
            received.elapsed(),
        );
        true
    }

    /// Rebuilds the whole table from `index`; None if nft refused it (retried later).
    async fn full_sync(&self, index: &Index) -> Option<Programmed> {
        let begun = Instant::now();
        let node = &self.config.node_name;
        let mut p = Programmed::default();
        let mut delta = Delta::default();
        let mut keys: Vec<&String> = index.services.keys().collect();
        keys.sort();
        let mut plans_out = Vec::with_capacity(keys.len());
        for key in keys {
            let d = Desired::of(index, key, node);
            p.acquire(&d.key, d.elements, d.ips, &mut delta);
            plans_out.push((d.key, d.plans));
        }
        let mut sets: Vec<Set> = Layout::fixed_sets().to_vec();
        sets.extend(p.sets.iter().copied());
        let script = self
            .config
            .layout()
            .full(sets.iter(), delta.adds.values().flat_map(|v| v.iter()));
        let started = Instant::now();
        if let Err(e) = nft::apply(&self.config.nft_command, &script).await {
            tracing::error!(error = %e, "programming the service proxy's nftables table failed");
            return None;
        }
        let n = plans_out.len();
        self.shared.plans.lock().clear();
        self.publish(plans_out, true, n, started.elapsed(), begun.elapsed());
        tracing::info!(services = n, took_ms = started.elapsed().as_millis() as u64, table = %self.config.table, "service proxy table programmed");
        Some(p)
    }

    fn publish(
        &self,
        plans: Vec<(String, Vec<PortPlan>)>,
        full: bool,
        n: usize,
        nft_time: Duration,
        took: Duration,
    ) {
        {
            let mut m = self.shared.plans.lock();
            for (k, ps) in plans {
                if ps.is_empty() {
                    m.remove(&k);
                } else {
                    m.insert(k, ps);
                }
            }
        }
        self.shared.info.send_modify(|i| {
            i.generation += 1;
            i.full = full;
            i.services = n;
            i.duration = nft_time;
            i.took = took;
        });
    }
}

/// Takes every event already queued.
fn drain(
    index: &mut Index,
    svc_rx: &mut mpsc::UnboundedReceiver<Event<Service>>,
    slice_rx: &mut mpsc::UnboundedReceiver<Event<EndpointSlice>>,
    dirty: &mut BTreeSet<String>,
) {
    while let Ok(ev) = svc_rx.try_recv() {
        dirty.insert(index.service_event(ev));
    }
    while let Ok(ev) = slice_rx.try_recv() {
        dirty.extend(index.slice_event(ev));
    }
}
