//! The namespace controller (upstream `pkg/controller/namespace`, "namespace-controller"): a
//! namespace being deleted has all its content deleted (every namespaced resource found by
//! discovery, with `deletecollection` or one delete per object), its status conditions report
//! progress as upstream's, and once nothing is left its `kubernetes` finalizer is removed
//! through `namespaces/{name}/finalize`, which lets the API server delete it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use informers::workqueue::{Requeue, run_workers};
use informers::{Event, Informer, WorkQueue};
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::discovery::{Discovery, Scope, verbs};

use crate::Context;

/// The controller's name.
pub const NAME: &str = "namespace-controller";
/// The finalizer this controller owns in `spec.finalizers`.
pub const FINALIZER_KUBERNETES: &str = "kubernetes";
/// Concurrent namespace syncs (`--concurrent-namespace-syncs`).
const WORKERS: usize = 10;
/// How long to wait before looking again at content still being deleted.
const REMAINING_RECHECK: Duration = Duration::from_secs(2);

/// A sync error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// Some content could not be deleted.
    #[error("failed to delete all resource types, {0} remaining: {1}")]
    Content(usize, String),
}

struct Controller {
    client: kube::Client,
    namespaces: Informer<Namespace>,
    queue: WorkQueue<String>,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        namespaces: ctx.factory.informer::<Namespace>(),
        queue: WorkQueue::new(ctx.shutdown.clone()),
    });
    let mut events = c.namespaces.subscribe();
    let queue = c.queue.clone();
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = events.recv() => match ev {
                    Some(Event::Added(ns) | Event::Updated(_, ns)) => {
                        if ns.metadata.deletion_timestamp.is_some() {
                            queue.add(ns.metadata.name.clone().unwrap_or_default());
                        }
                    }
                    Some(Event::Deleted(_)) => {}
                    None => return,
                },
            }
        }
    });
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        _ = c.namespaces.wait_synced() => {}
    }
    let w = c.clone();
    run_workers(c.queue.clone(), WORKERS, NAME, move |name: String| {
        let w = w.clone();
        async move { w.sync(&name).await }
    })
    .await;
}

/// A namespaced resource content can be deleted from.
struct Deletable {
    resource: ApiResource,
    collection: bool,
}

/// What was found in a namespace after a deletion pass.
#[derive(Default)]
struct Remaining {
    /// `resource.group` → count.
    resources: BTreeMap<String, usize>,
    /// finalizer → count.
    finalizers: BTreeMap<String, usize>,
    /// Seconds until pods' grace periods end (upstream `estimateGracefulTermination`).
    estimate: u64,
}

fn condition(type_: &str, bad: bool, reason: (&str, &str), message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: if bad { "True" } else { "False" }.into(),
        reason: Some(if bad { reason.0 } else { reason.1 }.into()),
        message: Some(message),
        last_transition_time: Some(Time(Timestamp::now())),
    }
}

impl Controller {
    /// Upstream `namespacedResourcesDeleter.Delete`.
    async fn sync(&self, name: &str) -> Result<Requeue, Error> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let Some(ns) = api.get_opt(name).await? else {
            return Ok(Requeue::No);
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(Requeue::No);
        }
        let finalizers = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == FINALIZER_KUBERNETES) {
            return Ok(Requeue::No);
        }
        let (resources, discovery_error) = self.discover().await;
        let mut failures: Vec<String> = Vec::new();
        for r in &resources {
            if let Err(e) = self.delete_collection(name, r).await {
                failures.push(format!("{}.{}: {}", r.resource.plural, r.resource.group, e));
            }
        }
        let remaining = self.remaining(name, &resources).await;
        // Status conditions, as upstream's `updateConditions`.
        let conditions = vec![
            condition(
                "NamespaceDeletionDiscoveryFailure",
                discovery_error.is_some(),
                ("DiscoveryFailed", "ResourcesDiscovered"),
                match &discovery_error {
                    Some(e) => format!("Discovery failed for some groups, 1 failing: {e}"),
                    None => "All resources successfully discovered".into(),
                },
            ),
            condition(
                "NamespaceDeletionGroupVersionParsingFailure",
                false,
                ("GroupVersionParsingFailed", "ParsedGroupVersions"),
                "All legacy kube types successfully parsed".into(),
            ),
            condition(
                "NamespaceDeletionContentFailure",
                !failures.is_empty(),
                ("ContentDeletionFailed", "ContentDeleted"),
                if failures.is_empty() {
                    "All content successfully deleted, may be waiting on finalization".into()
                } else {
                    format!(
                        "Failed to delete all resource types, {} remaining: {}",
                        failures.len(),
                        failures.join(", ")
                    )
                },
            ),
            condition(
                "NamespaceContentRemaining",
                !remaining.resources.is_empty(),
                ("SomeResourcesRemain", "ContentRemoved"),
                if remaining.resources.is_empty() {
                    "All content successfully removed".into()
                } else {
                    let v: Vec<String> = remaining
                        .resources
                        .iter()
                        .map(|(r, n)| format!("{r} has {n} resource instances"))
                        .collect();
                    format!("Some resources are remaining: {}", v.join(", "))
                },
            ),
            condition(
                "NamespaceFinalizersRemaining",
                !remaining.finalizers.is_empty(),
                ("SomeFinalizersRemain", "ContentHasNoFinalizers"),
                if remaining.finalizers.is_empty() {
                    "All content-preserving finalizers finished".into()
                } else {
                    let v: Vec<String> = remaining
                        .finalizers
                        .iter()
                        .map(|(f, n)| format!("{f} in {n} resource instances"))
                        .collect();
                    format!(
                        "Some content in the namespace has finalizers remaining: {}",
                        v.join(", ")
                    )
                },
            ),
        ];
        self.update_conditions(&ns, conditions).await?;
        if let Some(e) = discovery_error {
            return Err(Error::Content(1, e));
        }
        if !failures.is_empty() {
            return Err(Error::Content(failures.len(), failures.join(", ")));
        }
        if !remaining.resources.is_empty() {
            let wait = Duration::from_secs(remaining.estimate).max(REMAINING_RECHECK);
            return Ok(Requeue::After(wait));
        }
        self.finalize(&ns).await?;
        Ok(Requeue::No)
    }

    /// The namespaced resources that can be deleted, and a discovery error if any.
    async fn discover(&self) -> (Vec<Deletable>, Option<String>) {
        let discovery = match Discovery::new(self.client.clone()).run().await {
            Ok(d) => d,
            Err(e) => return (Vec::new(), Some(e.to_string())),
        };
        let mut out = Vec::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::DELETE) {
                    continue;
                }
                let collection = caps.supports_operation(verbs::DELETE_COLLECTION);
                if !collection && !caps.supports_operation(verbs::LIST) {
                    continue;
                }
                out.push(Deletable {
                    resource: ar,
                    collection,
                });
            }
        }
        (out, None)
    }

    /// Upstream `deleteCollection`, or `deleteEachItem` when the resource has no collection
    /// delete.
    async fn delete_collection(&self, ns: &str, r: &Deletable) -> Result<(), kube::Error> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &r.resource);
        let dp = DeleteParams::background();
        if r.collection {
            match api.delete_collection(&dp, &ListParams::default()).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                // Not allowed after all: one by one.
                Err(kube::Error::Api(s)) if s.code == 405 => {}
                Err(e) => return Err(e),
            }
        }
        let list = match api.list_metadata(&ListParams::default()).await {
            Ok(l) => l,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        };
        for item in list.items {
            if item.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = item.metadata.name.unwrap_or_default();
            match api.delete(&name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// What is left in the namespace, with the finalizers that hold it.
    async fn remaining(&self, ns: &str, resources: &[Deletable]) -> Remaining {
        let mut out = Remaining::default();
        let now = Timestamp::now();
        for r in resources {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), ns, &r.resource);
            let Ok(list) = api.list_metadata(&ListParams::default()).await else {
                continue;
            };
            if list.items.is_empty() {
                continue;
            }
            *out.resources
                .entry(format!("{}.{}", r.resource.plural, r.resource.group))
                .or_default() += list.items.len();
            let mut fins = BTreeSet::new();
            for item in &list.items {
                for f in item.metadata.finalizers.iter().flatten() {
                    fins.insert(f.clone());
                    *out.finalizers.entry(f.clone()).or_default() += 1;
                }
                if r.resource.group.is_empty()
                    && r.resource.plural == "pods"
                    && let Some(t) = &item.metadata.deletion_timestamp
                {
                    let left = t.0.as_second() - now.as_second();
                    out.estimate = out.estimate.max(u64::try_from(left).unwrap_or(0));
                }
            }
        }
        out
    }

    async fn update_conditions(
        &self,
        ns: &Namespace,
        mut conditions: Vec<NamespaceCondition>,
    ) -> Result<(), Error> {
        let old = ns
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        // An unchanged condition keeps its transition time (upstream `updateConditions`).
        let mut changed = false;
        for c in &mut conditions {
            match old.iter().find(|o| o.type_ == c.type_) {
                Some(o)
                    if o.status == c.status && o.reason == c.reason && o.message == c.message =>
                {
                    c.last_transition_time = o.last_transition_time.clone();
                }
                _ => changed = true,
            }
        }
        // Conditions of other types stay.
        conditions.extend(
            old.iter()
                .filter(|o| !conditions.iter().any(|c| c.type_ == o.type_))
                .cloned()
                .collect::<Vec<_>>(),
        );
        if !changed {
            return Ok(());
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let name = ns.metadata.name.as_deref().unwrap_or("");
        let patch = serde_json::json!({"status": {"conditions": conditions}});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the `kubernetes` finalizer (upstream `finalizeNamespace`).
    async fn finalize(&self, ns: &Namespace) -> Result<(), Error> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let name = ns.metadata.name.clone().unwrap_or_default();
        let mut ns = ns.clone();
        if let Some(spec) = ns.spec.as_mut() {
            spec.finalizers = Some(
                spec.finalizers
                    .iter()
                    .flatten()
                    .filter(|f| *f != FINALIZER_KUBERNETES)
                    .cloned()
                    .collect(),
            );
        }
        ns.metadata.managed_fields = None;
        match api
            .replace_subresource::<Namespace>("finalize", &name, &PostParams::default(), &ns)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                // No finalize subresource (or the namespace is gone): a plain update.
                match api.replace(&name, &PostParams::default(), &ns).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}
