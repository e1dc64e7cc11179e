//! The garbage collector (upstream `pkg/controller/garbagecollector`,
//! "garbage-collector-controller").
//!
//! It discovers every resource that can be listed, watched and deleted (re-discovering every
//! [`RESYNC_PERIOD`]), watches each as metadata only (or through the shared typed informer for
//! kinds other controllers already cache, such as pods), and keeps a compact dependency
//! [`graph`]. As upstream:
//! - an object all of whose owners are gone is deleted (with a UID precondition, honouring its
//!   own orphan/foreground finalizers); one with some owners left loses the dangling
//!   references;
//! - an owner being deleted with the `foregroundDeletion` finalizer has its dependents deleted
//!   and loses the finalizer once no dependent with `blockOwnerDeletion` is left;
//! - an owner being deleted with the `orphan` finalizer has its references removed from its
//!   dependents, then loses the finalizer.
//!
//! Owners only known from references ("virtual" nodes) are checked with a GET first.

pub mod graph;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use informers::workqueue::{Requeue, run_workers};
use informers::{Event, Factory, Object, WorkQueue};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, PartialObjectMeta, Patch, PatchParams,
    Preconditions, PropagationPolicy,
};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::{WatchStreamExt, watcher};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Context;
use graph::{
    Change, FINALIZER_DELETE_DEPENDENTS, FINALIZER_ORPHAN, Graph, Identity, Observed, group_of,
};

/// The controller's name.
pub const NAME: &str = "garbage-collector-controller";
/// How often resources are re-discovered (upstream `--garbage-collector` resync: 30 s).
pub const RESYNC_PERIOD: Duration = Duration::from_secs(30);
/// Concurrent workers of each queue (`--concurrent-gc-syncs`).
const WORKERS: usize = 20;

/// A sync error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// The kind of a reference is not served.
    #[error("unable to get REST mapping for {0}")]
    NoMapping(String),
    /// An object was changed concurrently too many times.
    #[error("too many conflicts updating {0}")]
    Conflicts(String),
}

/// Resources excluded from garbage collection (upstream `ignoredResources`).
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// How a kind maps to a resource.
#[derive(Debug, Clone)]
struct Mapping {
    resource: ApiResource,
    namespaced: bool,
}

#[derive(Default)]
struct RestMapper {
    /// (apiVersion, kind) → mapping.
    exact: HashMap<(String, String), Mapping>,
    /// (group, kind) → preferred mapping.
    by_group_kind: HashMap<(String, String), Mapping>,
}

impl RestMapper {
    fn get(&self, api_version: &str, kind: &str) -> Option<Mapping> {
        self.exact
            .get(&(api_version.to_string(), kind.to_string()))
            .or_else(|| {
                self.by_group_kind
                    .get(&(group_of(api_version).to_string(), kind.to_string()))
            })
            .cloned()
    }
}

struct Gc {
    client: kube::Client,
    graph: Mutex<Graph>,
    mapper: Mutex<RestMapper>,
    changes: mpsc::UnboundedSender<Change>,
    attempt_to_delete: WorkQueue<String>,
    attempt_to_orphan: WorkQueue<String>,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
    let gc = Arc::new(Gc {
        client: ctx.client.clone(),
        graph: Mutex::new(Graph::default()),
        mapper: Mutex::new(RestMapper::default()),
        changes: tx,
        attempt_to_delete: WorkQueue::new(ctx.shutdown.clone()),
        attempt_to_orphan: WorkQueue::new(ctx.shutdown.clone()),
    });
    // The graph builder: one task applies every change in order.
    let builder = gc.clone();
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                _ = shutdown.cancelled() => return,
                c = rx.recv() => match c { Some(c) => c, None => return },
            };
            let act = builder.graph.lock().process(change);
            for uid in act.delete {
                builder.attempt_to_delete.add(uid);
            }
            for uid in act.orphan {
                builder.attempt_to_orphan.add(uid);
            }
        }
    });
    // Discovery and monitors, again every RESYNC_PERIOD.
    let monitors = gc.clone();
    let factory = ctx.factory.clone();
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        let mut running: HashMap<String, CancellationToken> = HashMap::new();
        loop {
            if let Err(e) = monitors
                .sync_monitors(&factory, &mut running, &shutdown)
                .await
            {
                tracing::info!(error = %e, "garbage collector: discovery failed; will retry");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RESYNC_PERIOD) => {}
            }
        }
    });
    let d = gc.clone();
    let deleter = run_workers(
        gc.attempt_to_delete.clone(),
        WORKERS,
        "garbagecollector-attemptToDelete",
        move |uid: String| {
            let d = d.clone();
            async move { d.attempt_to_delete_item(&uid).await }
        },
    );
    let o = gc.clone();
    let orphaner = run_workers(
        gc.attempt_to_orphan.clone(),
        WORKERS,
        "garbagecollector-attemptToOrphan",
        move |uid: String| {
            let o = o.clone();
            async move { o.attempt_to_orphan_item(&uid).await }
        },
    );
    futures::join!(deleter, orphaner);
}

/// The kinds served by the shared typed informers (watched through them, not again).
fn typed_kind(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("", "Pod")
            | ("", "Node")
            | ("", "Namespace")
            | ("", "Service")
            | ("", "Endpoints")
            | ("", "ServiceAccount")
            | ("apps", "ReplicaSet")
            | ("apps", "Deployment")
            | ("discovery.k8s.io", "EndpointSlice")
            | ("coordination.k8s.io", "Lease")
    )
}

fn observed<K: kube::Resource<DynamicType = ()>>(obj: &K) -> Observed {
    let m = obj.meta();
    Observed::from_meta(
        K::api_version(&()).as_ref().into(),
        K::kind(&()).as_ref().into(),
        m.namespace.as_deref().map(Into::into),
        m,
    )
}

/// Feeds the graph from a shared typed informer.
fn feed_typed<K: Object>(
    factory: &Factory,
    tx: mpsc::UnboundedSender<Change>,
    token: CancellationToken,
) {
    let mut events = factory.informer::<K>().subscribe();
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                _ = token.cancelled() => return,
                ev = events.recv() => match ev { Some(ev) => ev, None => return },
            };
            let change = match ev {
                Event::Added(o) => Change::Upsert(observed(o.as_ref())),
                Event::Updated(old, o) => {
                    let (m, old_m) = (o.meta(), old.meta());
                    if m.deletion_timestamp.is_none() && Observed::same_in_graph(old_m, m) {
                        continue;
                    }
                    Change::Upsert(observed(o.as_ref()))
                }
                Event::Deleted(o) => Change::Delete(observed(o.as_ref())),
            };
            if tx.send(change).is_err() {
                return;
            }
        }
    });
}

fn start_typed(
    factory: &Factory,
    group: &str,
    kind: &str,
    tx: mpsc::UnboundedSender<Change>,
    token: CancellationToken,
) {
    use k8s_openapi::api::{apps, coordination, core, discovery};
    match (group, kind) {
        ("", "Pod") => feed_typed::<core::v1::Pod>(factory, tx, token),
        ("", "Node") => feed_typed::<core::v1::Node>(factory, tx, token),
        ("", "Namespace") => feed_typed::<core::v1::Namespace>(factory, tx, token),
        ("", "Service") => feed_typed::<core::v1::Service>(factory, tx, token),
        ("", "Endpoints") => feed_typed::<core::v1::Endpoints>(factory, tx, token),
        ("", "ServiceAccount") => feed_typed::<core::v1::ServiceAccount>(factory, tx, token),
        ("apps", "ReplicaSet") => feed_typed::<apps::v1::ReplicaSet>(factory, tx, token),
        ("apps", "Deployment") => feed_typed::<apps::v1::Deployment>(factory, tx, token),
        ("discovery.k8s.io", "EndpointSlice") => {
            feed_typed::<discovery::v1::EndpointSlice>(factory, tx, token)
        }
        ("coordination.k8s.io", "Lease") => {
            feed_typed::<coordination::v1::Lease>(factory, tx, token)
        }
        _ => {}
    }
}

/// Feeds the graph from a metadata-only watch of one resource.
async fn feed_metadata(
    client: kube::Client,
    ar: ApiResource,
    tx: mpsc::UnboundedSender<Change>,
    token: CancellationToken,
) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &ar);
    let mut cfg = watcher::Config::default().any_semantic();
    cfg.page_size = None;
    let stream = watcher(api, cfg).default_backoff();
    futures::pin_mut!(stream);
    let api_version: Arc<str> = ar.api_version.as_str().into();
    let kind: Arc<str> = ar.kind.as_str().into();
    let to_observed = |o: &PartialObjectMeta<DynamicObject>| {
        Observed::from_meta(
            api_version.clone(),
            kind.clone(),
            o.metadata.namespace.as_deref().map(Into::into),
            &o.metadata,
        )
    };
    let mut listed: Option<HashSet<String>> = None;
    loop {
        let ev = tokio::select! {
            _ = token.cancelled() => return,
            ev = stream.next() => match ev { Some(ev) => ev, None => return },
        };
        let change = match ev {
            Err(e) => {
                tracing::debug!(resource = %ar.plural, error = %e, "garbage collector watch failed; retrying");
                continue;
            }
            Ok(watcher::Event::Init) => {
                listed = Some(HashSet::new());
                continue;
            }
            Ok(watcher::Event::InitApply(o)) => {
                if let (Some(l), Some(uid)) = (listed.as_mut(), o.metadata.uid.clone()) {
                    l.insert(uid);
                }
                Change::Upsert(to_observed(&o))
            }
            Ok(watcher::Event::InitDone) => Change::Resync {
                group: ar.group.clone(),
                kind: ar.kind.clone(),
                uids: listed.take().unwrap_or_default(),
            },
            Ok(watcher::Event::Apply(o)) => Change::Upsert(to_observed(&o)),
            Ok(watcher::Event::Delete(o)) => Change::Delete(to_observed(&o)),
        };
        if tx.send(change).is_err() {
            return;
        }
    }
}

enum Classified {
    Solid,
    Dangling,
    Waiting,
}

impl Gc {
    /// Upstream `resyncMonitors`: discovers the deletable resources and starts a monitor for
    /// each new one (stopping those of resources gone).
    async fn sync_monitors(
        &self,
        factory: &Factory,
        running: &mut HashMap<String, CancellationToken>,
        shutdown: &CancellationToken,
    ) -> Result<(), Error> {
        let discovery = Discovery::new(self.client.clone()).run().await?;
        let mut mapper = RestMapper::default();
        let mut wanted: HashMap<String, ApiResource> = HashMap::new();
        for group in discovery.groups() {
            let preferred = group.preferred_version_or_latest().to_string();
            for version in group.versions() {
                for (ar, caps) in group.versioned_resources(version) {
                    let m = Mapping {
                        resource: ar.clone(),
                        namespaced: caps.scope == Scope::Namespaced,
                    };
                    mapper
                        .exact
                        .insert((ar.api_version.clone(), ar.kind.clone()), m.clone());
                    if version == preferred {
                        mapper
                            .by_group_kind
                            .insert((ar.group.clone(), ar.kind.clone()), m);
                        let deletable = caps.supports_operation(verbs::LIST)
                            && caps.supports_operation(verbs::WATCH)
                            && caps.supports_operation(verbs::DELETE);
                        if deletable && !IGNORED.contains(&(ar.group.as_str(), ar.plural.as_str()))
                        {
                            wanted.insert(format!("{}/{}", ar.group, ar.plural), ar);
                        }
                    }
                }
            }
        }
        *self.mapper.lock() = mapper;
        running.retain(|k, token| {
            let keep = wanted.contains_key(k);
            if !keep {
                token.cancel();
            }
            keep
        });
        for (key, ar) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            let token = shutdown.child_token();
            if typed_kind(&ar.group, &ar.kind) {
                start_typed(
                    factory,
                    &ar.group,
                    &ar.kind,
                    self.changes.clone(),
                    token.clone(),
                );
            } else {
                tokio::spawn(feed_metadata(
                    self.client.clone(),
                    ar,
                    self.changes.clone(),
                    token.clone(),
                ));
            }
            running.insert(key, token);
        }
        Ok(())
    }

    fn api_for(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(Api<DynamicObject>, bool), Error> {
        let m = self
            .mapper
            .lock()
            .get(api_version, kind)
            .ok_or_else(|| Error::NoMapping(format!("{api_version}, Kind={kind}")))?;
        let api = match (m.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &m.resource),
            _ => Api::all_with(self.client.clone(), &m.resource),
        };
        Ok((api, m.namespaced))
    }

    fn identity_api(&self, id: &Identity) -> Result<Api<DynamicObject>, Error> {
        Ok(self
            .api_for(&id.api_version, &id.kind, id.namespace.as_deref())?
            .0)
    }

    /// Upstream `attemptToDeleteItem`.
    async fn attempt_to_delete_item(&self, uid: &str) -> Result<Requeue, Error> {
        let Some(node) = self.graph.lock().get(uid).cloned() else {
            return Ok(Requeue::No);
        };
        if node.being_deleted && !node.deleting_dependents {
            return Ok(Requeue::No);
        }
        let api = self.identity_api(&node.identity)?;
        let latest = match api.get_metadata_opt(&node.identity.name).await? {
            Some(l) if l.metadata.uid.as_deref() == Some(uid) => l,
            _ => {
                // It does not exist (any more): a virtual delete event for the graph.
                let _ = self
                    .changes
                    .send(Change::VirtualDelete(node.identity.clone()));
                return Ok(Requeue::No);
            }
        };
        if node.virtual_ {
            // It exists; wait until its monitor sees it.
            return Ok(Requeue::After(Duration::from_secs(1)));
        }
        if node.deleting_dependents {
            return self.process_deleting_dependents(uid, &node.identity).await;
        }
        let owners = latest.metadata.owner_references.clone().unwrap_or_default();
        if owners.is_empty() {
            return Ok(Requeue::No);
        }
        let ns = node.identity.namespace.as_deref();
        let mut solid = Vec::new();
        let mut dangling = Vec::new();
        let mut waiting = Vec::new();
        for r in &owners {
            match self.classify(r, ns).await? {
                Classified::Solid => solid.push(r.uid.clone()),
                Classified::Dangling => dangling.push(r.uid.clone()),
                Classified::Waiting => waiting.push(r.uid.clone()),
            }
        }
        let has_finalizer = |f: &str| {
            latest
                .metadata
                .finalizers
                .as_ref()
                .is_some_and(|v| v.iter().any(|x| x == f))
        };
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(Requeue::No);
            }
            // Some owner remains: only the dangling and waiting references go.
            let drop: HashSet<String> = dangling.into_iter().chain(waiting).collect();
            self.remove_owner_refs(&api, &node.identity, &drop).await?;
            return Ok(Requeue::No);
        }
        if !waiting.is_empty() && !node.dependents.is_empty() {
            let deps_deleting = node.dependents.iter().any(|d| {
                self.graph
                    .lock()
                    .get(d)
                    .is_some_and(|n| n.deleting_dependents)
            });
            if deps_deleting {
                // Break a potential cycle: our references stop blocking.
                self.unblock_owner_refs(&api, &node.identity).await?;
            }
            self.delete_object(&api, &node.identity, PropagationPolicy::Foreground)
                .await?;
            return Ok(Requeue::No);
        }
        let policy = if has_finalizer(FINALIZER_ORPHAN) {
            PropagationPolicy::Orphan
        } else if has_finalizer(FINALIZER_DELETE_DEPENDENTS) {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        tracing::debug!(item = ?node.identity, ?policy, "deleting item");
        self.delete_object(&api, &node.identity, policy).await?;
        Ok(Requeue::No)
    }

    /// Upstream `isDangling` + `classifyReferences` for one reference.
    async fn classify(&self, r: &OwnerReference, ns: Option<&str>) -> Result<Classified, Error> {
        if self.graph.lock().is_absent(&r.uid) {
            return Ok(Classified::Dangling);
        }
        let (api, namespaced) = self.api_for(&r.api_version, &r.kind, ns)?;
        if namespaced && ns.is_none() {
            // A cluster-scoped object cannot have a namespaced owner.
            return Ok(Classified::Solid);
        }
        match api.get_metadata_opt(&r.name).await? {
            Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                let waiting = o.metadata.deletion_timestamp.is_some()
                    && o.metadata
                        .finalizers
                        .as_ref()
                        .is_some_and(|f| f.iter().any(|x| x == FINALIZER_DELETE_DEPENDENTS));
                Ok(if waiting {
                    Classified::Waiting
                } else {
                    Classified::Solid
                })
            }
            _ => {
                self.graph.lock().add_absent(&r.uid);
                Ok(Classified::Dangling)
            }
        }
    }

    async fn delete_object(
        &self,
        api: &Api<DynamicObject>,
        id: &Identity,
        policy: PropagationPolicy,
    ) -> Result<(), Error> {
        let dp = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(id.uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&id.name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Rewrites the owner references of an object (read, change, write with its
    /// resourceVersion; again on a conflict). `f` returns `None` when nothing changes.
    async fn update_owner_refs(
        &self,
        api: &Api<DynamicObject>,
        id: &Identity,
        f: impl Fn(&[OwnerReference]) -> Option<Vec<OwnerReference>>,
    ) -> Result<(), Error> {
        for _ in 0..5 {
            let Some(cur) = api.get_metadata_opt(&id.name).await? else {
                return Ok(());
            };
            if cur.metadata.uid.as_deref() != Some(&*id.uid) {
                return Ok(());
            }
            let refs = cur.metadata.owner_references.clone().unwrap_or_default();
            let Some(next) = f(&refs) else {
                return Ok(());
            };
            let next = if next.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::to_value(&next).unwrap_or(serde_json::Value::Null)
            };
            let patch = serde_json::json!({"metadata": {
                "ownerReferences": next,
                "resourceVersion": cur.metadata.resource_version,
                "uid": id.uid,
            }});
            match api
                .patch_metadata(&id.name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflicts(id.name.to_string()))
    }

    async fn remove_owner_refs(
        &self,
        api: &Api<DynamicObject>,
        id: &Identity,
        uids: &HashSet<String>,
    ) -> Result<(), Error> {
        self.update_owner_refs(api, id, |refs| {
            refs.iter().any(|r| uids.contains(&r.uid)).then(|| {
                refs.iter()
                    .filter(|r| !uids.contains(&r.uid))
                    .cloned()
                    .collect()
            })
        })
        .await
    }

    async fn unblock_owner_refs(
        &self,
        api: &Api<DynamicObject>,
        id: &Identity,
    ) -> Result<(), Error> {
        self.update_owner_refs(api, id, |refs| {
            refs.iter()
                .any(|r| r.block_owner_deletion == Some(true))
                .then(|| {
                    refs.iter()
                        .map(|r| OwnerReference {
                            block_owner_deletion: r.block_owner_deletion.map(|_| false),
                            ..r.clone()
                        })
                        .collect()
                })
        })
        .await
    }

    /// Upstream `processDeletingDependentsItem`.
    async fn process_deleting_dependents(
        &self,
        uid: &str,
        id: &Identity,
    ) -> Result<Requeue, Error> {
        let blocking = self.graph.lock().blocking_dependents(uid);
        if blocking.is_empty() {
            self.remove_finalizer(id, FINALIZER_DELETE_DEPENDENTS)
                .await?;
            return Ok(Requeue::No);
        }
        for (dep, deleting) in blocking {
            if !deleting {
                self.attempt_to_delete.add(dep);
            }
        }
        Ok(Requeue::No)
    }

    /// Removes a finalizer from an object (upstream `removeFinalizer`).
    async fn remove_finalizer(&self, id: &Identity, finalizer: &str) -> Result<(), Error> {
        let api = self.identity_api(id)?;
        for _ in 0..5 {
            let Some(cur) = api.get_metadata_opt(&id.name).await? else {
                return Ok(());
            };
            if cur.metadata.uid.as_deref() != Some(&*id.uid) {
                return Ok(());
            }
            let finalizers = cur.metadata.finalizers.clone().unwrap_or_default();
            if !finalizers.iter().any(|f| f == finalizer) {
                return Ok(());
            }
            let next: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
            let patch = serde_json::json!({"metadata": {
                "finalizers": if next.is_empty() { serde_json::Value::Null } else { serde_json::json!(next) },
                "resourceVersion": cur.metadata.resource_version,
            }});
            match api
                .patch_metadata(&id.name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflicts(id.name.to_string()))
    }

    /// Upstream `attemptToOrphanWorker`: removes the owner's references from its dependents,
    /// then its `orphan` finalizer.
    async fn attempt_to_orphan_item(&self, uid: &str) -> Result<Requeue, Error> {
        let (id, dependents) = {
            let g = self.graph.lock();
            let Some(n) = g.get(uid) else {
                return Ok(Requeue::No);
            };
            let deps: Vec<Identity> = n
                .dependents
                .iter()
                .filter_map(|d| g.get(d).map(|x| x.identity.clone()))
                .collect();
            (n.identity.clone(), deps)
        };
        let owner: HashSet<String> = [uid.to_string()].into_iter().collect();
        let results: Vec<Result<(), Error>> = futures::stream::iter(dependents)
            .map(|d| {
                let owner = &owner;
                async move {
                    let api = self.identity_api(&d)?;
                    self.remove_owner_refs(&api, &d, owner).await
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect::<Result<(), _>>()?;
        self.remove_finalizer(&id, FINALIZER_ORPHAN).await?;
        Ok(Requeue::No)
    }
}
