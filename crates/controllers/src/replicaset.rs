//! The ReplicaSet controller (upstream `pkg/controller/replicaset`, "replicaset-controller"):
//! keeps `spec.replicas` pods of each ReplicaSet, adopting matching orphans and releasing owned
//! pods that no longer match, and reports the counts in the status.
//!
//! As upstream: per-ReplicaSet expectations keep it from acting twice before the informer has
//! seen its own creations and deletions; creations go in slow-start batches (1, 2, 4, …) of at
//! most [`BURST_REPLICAS`] per sync; deletions pick pods by upstream's ranking.

pub mod expectations;
pub mod ranking;
pub mod refmanager;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use informers::workqueue::{Requeue, run_workers};
use informers::{Event, EventType, Informer, Recorder, WorkQueue, key_of};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::{Resource, ResourceExt};

use crate::Context;
use crate::util::{controller_ref, is_pod_active, is_pod_ready, pod_condition, pod_phase};
use expectations::Expectations;
use refmanager::{ClaimError, Owner};

/// The controller's name (event source component).
pub const NAME: &str = "replicaset-controller";
/// Most pods created or deleted per sync (upstream `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// First batch of the slow-start creations (upstream `SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;
/// Concurrent syncs (kube-controller-manager `--concurrent-replicaset-syncs`).
pub const WORKERS: usize = 5;
/// Pod index: the UID of the pod's controller, or [`orphan_key`] of its namespace.
pub const POD_CONTROLLER_UID_INDEX: &str = "r8s/podControllerUID";
/// ReplicaSet index: the UID of the ReplicaSet's controller, or [`orphan_key`].
pub const RS_CONTROLLER_UID_INDEX: &str = "r8s/replicaSetControllerUID";

/// The index value of the objects of `namespace` without a controller.
pub fn orphan_key(namespace: &str) -> String {
    format!("{namespace}/_ORPHAN")
}

fn controller_uid_index<K: Resource>(obj: &K) -> Vec<String> {
    match controller_ref(obj) {
        Some(r) => vec![r.uid.clone()],
        None => vec![orphan_key(obj.meta().namespace.as_deref().unwrap_or(""))],
    }
}

/// Adds [`POD_CONTROLLER_UID_INDEX`] to the pod informer (idempotent).
pub fn add_pod_index(pods: &Informer<Pod>) {
    pods.add_index(
        POD_CONTROLLER_UID_INDEX,
        Arc::new(controller_uid_index::<Pod>),
    );
}

/// Adds [`RS_CONTROLLER_UID_INDEX`] to the ReplicaSet informer (idempotent).
pub fn add_rs_index(rss: &Informer<ReplicaSet>) {
    rss.add_index(
        RS_CONTROLLER_UID_INDEX,
        Arc::new(controller_uid_index::<ReplicaSet>),
    );
}

/// Objects controlled by `uid` plus the orphans of `namespace` (upstream `FilterPodsByOwner`
/// with orphans included).
pub fn owned_and_orphans<K: informers::Object>(
    inf: &Informer<K>,
    index: &str,
    namespace: &str,
    uid: &str,
) -> Vec<Arc<K>> {
    let mut v = inf.by_index(index, uid);
    v.extend(inf.by_index(index, &orphan_key(namespace)));
    v
}

/// A controller's sync error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{}", api_message(.0))]
    Kube(#[from] kube::Error),
    /// Claiming pods failed.
    #[error(transparent)]
    Claim(#[from] ClaimError),
    /// The template has no labels.
    #[error("unable to create pods, no labels")]
    NoLabels,
}

/// The message of an API error as client-go prints it (the Status message).
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

fn is_namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

/// Whether the pod is Ready for at least `min_ready_seconds` (upstream `IsPodAvailable`).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    pod_condition(pod, "Ready")
        .and_then(|c| c.last_transition_time.as_ref())
        .is_some_and(|t| {
            t.0.as_second() + i64::from(min_ready_seconds) < now.as_second()
                || (t.0.as_second() + i64::from(min_ready_seconds) == now.as_second()
                    && t.0.subsec_nanosecond() < now.subsec_nanosecond())
        })
}

/// When a Ready pod not yet available becomes available, if it does.
pub fn available_in(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<Duration> {
    if min_ready_seconds <= 0 || !is_pod_ready(pod) || is_pod_available(pod, min_ready_seconds, now)
    {
        return None;
    }
    let t = pod_condition(pod, "Ready")?
        .last_transition_time
        .as_ref()?
        .0;
    let at = t.as_nanosecond() + i128::from(min_ready_seconds) * 1_000_000_000;
    let left = (at - now.as_nanosecond()).max(0);
    Some(Duration::from_nanos(
        u64::try_from(left).unwrap_or(u64::MAX),
    ))
}

/// Whether a pod is terminating: being deleted but not yet Succeeded/Failed (upstream
/// `IsPodTerminating`).
pub fn is_pod_terminating(pod: &Pod) -> bool {
    let phase = pod_phase(pod);
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_some()
}

fn selector_matches(sel: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    // Upstream: a nil selector selects nothing; an empty one everything.
    sel.is_some_and(|s| informers::labels::selector_matches(s, labels))
}

fn empty_labels() -> &'static BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    &EMPTY
}

fn labels_of<K: Resource>(obj: &K) -> &BTreeMap<String, String> {
    obj.meta().labels.as_ref().unwrap_or(empty_labels())
}

/// The pod a controller creates from its template (upstream `GetPodFromTemplate`).
pub fn pod_from_template(
    template: &PodTemplateSpec,
    parent_name: &str,
    controller_ref: OwnerReference,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{parent_name}-")),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

struct Controller {
    client: kube::Client,
    pods: Informer<Pod>,
    rss: Informer<ReplicaSet>,
    queue: WorkQueue<String>,
    expectations: Expectations,
    recorder: Recorder,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let pods = ctx.factory.informer::<Pod>();
    let rss = ctx.factory.informer::<ReplicaSet>();
    let c = Arc::new(Controller::new(
        ctx.client.clone(),
        pods.clone(),
        rss.clone(),
        &ctx.shutdown,
    ));
    let mut rs_events = rss.subscribe();
    let mut pod_events = pods.subscribe();
    let handler = c.clone();
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = rs_events.recv() => match ev {
                    Some(ev) => handler.on_rs(ev),
                    None => return,
                },
                ev = pod_events.recv() => match ev {
                    Some(ev) => handler.on_pod(ev),
                    None => return,
                },
            }
        }
    });
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        _ = async { pods.wait_synced().await; rss.wait_synced().await } => {}
    }
    let w = c.clone();
    run_workers(c.queue.clone(), WORKERS, NAME, move |key: String| {
        let w = w.clone();
        async move { w.sync(&key).await }
    })
    .await;
}

impl Controller {
    fn new(
        client: kube::Client,
        pods: Informer<Pod>,
        rss: Informer<ReplicaSet>,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Self {
        add_pod_index(&pods);
        add_rs_index(&rss);
        Self {
            recorder: Recorder::new(client.clone(), NAME, None, shutdown.clone()),
            client,
            pods,
            rss,
            queue: WorkQueue::new(shutdown.clone()),
            expectations: Expectations::new(),
        }
    }

    fn on_rs(&self, ev: Event<ReplicaSet>) {
        match ev {
            Event::Added(rs) => self.queue.add(key_of(rs.as_ref())),
            Event::Updated(old, new) => {
                if old.metadata.uid != new.metadata.uid {
                    self.expectations.delete(&key_of(old.as_ref()));
                }
                self.queue.add(key_of(new.as_ref()));
            }
            Event::Deleted(rs) => {
                let key = key_of(rs.as_ref());
                self.expectations.delete(&key);
                self.queue.add(key);
            }
        }
    }

    /// The ReplicaSet a controller reference points to, if it exists with that UID.
    fn resolve(&self, namespace: &str, r: &OwnerReference) -> Option<Arc<ReplicaSet>> {
        if r.kind != "ReplicaSet" {
            return None;
        }
        let rs = self.rss.get(namespace, &r.name)?;
        (rs.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(rs)
    }

    /// The ReplicaSets of the pod's namespace whose selector matches it.
    fn matching_rss(&self, pod: &Pod) -> Vec<Arc<ReplicaSet>> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let labels = labels_of(pod);
        if labels.is_empty() {
            return Vec::new();
        }
        self.rss
            .list_namespace(ns)
            .into_iter()
            .filter(|rs| selector_matches(rs.spec.as_ref().map(|s| &s.selector), labels))
            .collect()
    }

    fn on_pod(&self, ev: Event<Pod>) {
        match ev {
            Event::Added(pod) => self.add_pod(&pod),
            Event::Updated(old, cur) => self.update_pod(&old, &cur),
            Event::Deleted(pod) => self.delete_pod(&pod),
        }
    }

    fn add_pod(&self, pod: &Pod) {
        if pod.metadata.deletion_timestamp.is_some() {
            // A pod already being deleted (seen on a restart) is not a creation.
            self.delete_pod(pod);
            return;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        if let Some(r) = controller_ref(pod) {
            if let Some(rs) = self.resolve(ns, r) {
                let key = key_of(rs.as_ref());
                self.expectations.creation_observed(&key);
                self.queue.add(key);
            }
            return;
        }
        for rs in self.matching_rss(pod) {
            self.queue.add(key_of(rs.as_ref()));
        }
    }

    fn update_pod(&self, old: &Pod, cur: &Pod) {
        if old.metadata.resource_version == cur.metadata.resource_version {
            return;
        }
        let label_changed = old.metadata.labels != cur.metadata.labels;
        if cur.metadata.deletion_timestamp.is_some() {
            // A graceful deletion started: replace the pod now, not when it is gone.
            self.delete_pod(cur);
            if label_changed {
                self.delete_pod(old);
            }
            return;
        }
        let ns = cur.metadata.namespace.as_deref().unwrap_or("");
        let cur_ref = controller_ref(cur);
        let old_ref = controller_ref(old);
        let ref_changed = cur_ref != old_ref;
        if ref_changed
            && let Some(r) = old_ref
            && let Some(rs) = self.resolve(ns, r)
        {
            self.queue.add(key_of(rs.as_ref()));
        }
        if let Some(r) = cur_ref {
            if let Some(rs) = self.resolve(ns, r) {
                let key = key_of(rs.as_ref());
                self.queue.add(key.clone());
                let min_ready = rs
                    .spec
                    .as_ref()
                    .and_then(|s| s.min_ready_seconds)
                    .unwrap_or(0);
                if !is_pod_ready(old) && is_pod_ready(cur) && min_ready > 0 {
                    // Re-check availability once minReadySeconds have passed.
                    self.queue.add_after(
                        key,
                        Duration::from_secs(u64::try_from(min_ready).unwrap_or(0) + 1),
                    );
                }
            }
            return;
        }
        if label_changed || ref_changed {
            for rs in self.matching_rss(cur) {
                self.queue.add(key_of(rs.as_ref()));
            }
        }
    }

    fn delete_pod(&self, pod: &Pod) {
        let Some(r) = controller_ref(pod) else {
            return;
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let Some(rs) = self.resolve(ns, r) else {
            return;
        };
        let key = key_of(rs.as_ref());
        self.expectations.deletion_observed(&key, &key_of(pod));
        self.queue.add(key);
    }

    async fn sync(&self, key: &str) -> Result<Requeue, Error> {
        let Some(rs) = self.rss.get_key(key) else {
            self.expectations.delete(key);
            return Ok(Requeue::No);
        };
        let needs_sync = self.expectations.satisfied(key);
        let ns = rs.namespace().unwrap_or_default();
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let selector = rs.spec.as_ref().map(|s| s.selector.clone());
        let all = owned_and_orphans(&self.pods, POD_CONTROLLER_UID_INDEX, &ns, &uid);
        let (active, inactive): (Vec<_>, Vec<_>) = all.into_iter().partition(|p| is_pod_active(p));

        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let owner = Owner::of(rs.as_ref());
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let name = rs.name_any();
        let sel = selector.clone();
        let active = refmanager::claim(
            &pods_api,
            &owner,
            active,
            |p: &Pod| selector_matches(sel.as_ref(), labels_of(p)),
            || async {
                match rs_api.get(&name).await {
                    Ok(fresh) if fresh.metadata.uid.as_deref() != Some(uid.as_str()) => {
                        Err(format!(
                            "original ReplicaSet {ns}/{name} is gone: got uid {}, wanted {uid}",
                            fresh.metadata.uid.clone().unwrap_or_default()
                        ))
                    }
                    Ok(fresh) if fresh.metadata.deletion_timestamp.is_some() => Err(format!(
                        "{ns}/{name} has just been deleted at {}",
                        fresh
                            .metadata
                            .deletion_timestamp
                            .map(|t| t.0.to_string())
                            .unwrap_or_default()
                    )),
                    Ok(_) => Ok(()),
                    Err(e) => Err(api_message(&e)),
                }
            },
        )
        .await?;
        // Terminating pods this ReplicaSet owns (status.terminatingReplicas, the
        // DeploymentReplicaSetTerminatingReplicas gate is beta and on in v1.35).
        let terminating = inactive
            .iter()
            .filter(|p| is_pod_terminating(p))
            .filter(|p| controller_ref(p.as_ref()).is_some_and(|r| r.uid == uid))
            .filter(|p| selector_matches(selector.as_ref(), labels_of(p.as_ref())))
            .count();

        let mut manage_err = None;
        if needs_sync && rs.metadata.deletion_timestamp.is_none() {
            manage_err = self.manage_replicas(&active, &rs, key).await.err();
        }
        let now = Timestamp::now();
        let status = calculate_status(&rs, &active, terminating, manage_err.as_ref(), now);
        let updated = self.update_status(&rs, status).await?;
        if let Some(e) = manage_err {
            return Err(e);
        }
        // Re-sync when the next ready pod becomes available.
        let min_ready = updated
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        if min_ready > 0 {
            let next = active
                .iter()
                .filter_map(|p| available_in(p, min_ready, now))
                .min();
            if let Some(d) = next {
                return Ok(Requeue::After(d + Duration::from_millis(10)));
            }
        }
        Ok(Requeue::No)
    }

    async fn manage_replicas(
        &self,
        pods: &[Arc<Pod>],
        rs: &Arc<ReplicaSet>,
        key: &str,
    ) -> Result<(), Error> {
        let want =
            usize::try_from(rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)).unwrap_or(0);
        let ns = rs.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if pods.len() < want {
            let diff = (want - pods.len()).min(BURST_REPLICAS);
            self.expectations.expect_creations(key, diff);
            let Some(template) = rs.spec.as_ref().and_then(|s| s.template.as_ref()) else {
                for _ in 0..diff {
                    self.expectations.creation_observed(key);
                }
                return Err(Error::NoLabels);
            };
            let pod = pod_from_template(
                template,
                &rs.name_any(),
                Owner::of(rs.as_ref()).controller_ref(),
            );
            let (created, err) = slow_start_batch(diff, SLOW_START_INITIAL_BATCH_SIZE, || {
                self.create_pod(&api, &pod, rs)
            })
            .await;
            // Creations never attempted will never be observed.
            for _ in created..diff {
                self.expectations.creation_observed(key);
            }
            return err.map_or(Ok(()), Err);
        }
        if pods.len() > want {
            let diff = (pods.len() - want).min(BURST_REPLICAS);
            let related = self.indirectly_related_pods(rs);
            let victims = ranking::pods_to_delete(pods.to_vec(), &related, diff);
            self.expectations
                .expect_deletions(key, victims.iter().map(|p| key_of(p.as_ref())).collect());
            let results = join_all(victims.iter().map(|p| {
                let api = api.clone();
                async move {
                    let name = p.name_any();
                    match api.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => {
                            self.recorder.event(
                                rs.as_ref(),
                                EventType::Normal,
                                "SuccessfulDelete",
                                format!("Deleted pod: {name}"),
                            );
                            Ok(())
                        }
                        Err(e) => {
                            // The deletion will never be observed.
                            self.expectations
                                .deletion_observed(key, &key_of(p.as_ref()));
                            if is_not_found(&e) {
                                return Ok(());
                            }
                            self.recorder.event(
                                rs.as_ref(),
                                EventType::Warning,
                                "FailedDelete",
                                format!("Error deleting: {}", api_message(&e)),
                            );
                            Err(Error::Kube(e))
                        }
                    }
                }
            }))
            .await;
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                return Err(e);
            }
        }
        Ok(())
    }

    async fn create_pod(&self, api: &Api<Pod>, pod: &Pod, rs: &ReplicaSet) -> Result<(), Error> {
        if pod.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
            return Err(Error::NoLabels);
        }
        // Only the generated name of the answer is read (the informer brings the pod).
        match informers::write::create(api, &PostParams::default(), pod).await {
            Ok(p) => {
                self.recorder.event(
                    rs,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created pod: {}", p.name()),
                );
                Ok(())
            }
            // Creations fail anyway while the namespace terminates: not an error.
            Err(e) if is_namespace_terminating(&e) => Ok(()),
            Err(e) => {
                self.recorder.event(
                    rs,
                    EventType::Warning,
                    "FailedCreate",
                    format!("Error creating: {}", api_message(&e)),
                );
                Err(Error::Kube(e))
            }
        }
    }

    /// Pods controlled by every ReplicaSet with the same controller as `rs` (upstream
    /// `getIndirectlyRelatedPods`), for ranking pods doubled up on a node.
    fn indirectly_related_pods(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let Some(owner) = controller_ref(rs) else {
            return Vec::new();
        };
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for related in self.rss.by_index(RS_CONTROLLER_UID_INDEX, &owner.uid) {
            let sel = related.spec.as_ref().map(|s| &s.selector);
            let uid = related.metadata.uid.as_deref().unwrap_or("");
            for p in self.pods.by_index(POD_CONTROLLER_UID_INDEX, uid) {
                if selector_matches(sel, labels_of(p.as_ref()))
                    && seen.insert(p.metadata.uid.clone())
                {
                    out.push(p);
                }
            }
        }
        out
    }

    async fn update_status(
        &self,
        rs: &Arc<ReplicaSet>,
        status: ReplicaSetStatus,
    ) -> Result<Arc<ReplicaSet>, Error> {
        let cur = rs.status.clone().unwrap_or_default();
        let generation = rs.metadata.generation.unwrap_or(0);
        if status_counts_equal(&cur, &status)
            && cur.observed_generation.unwrap_or(0) == generation
            && cur.conditions == status.conditions
        {
            return Ok(rs.clone());
        }
        let api: Api<ReplicaSet> =
            Api::namespaced(self.client.clone(), &rs.namespace().unwrap_or_default());
        let mut obj = (**rs).clone();
        let mut status = status;
        status.observed_generation = Some(generation);
        for attempt in 0..2 {
            obj.status = Some(status.clone());
            match api
                .replace_status(&obj.name_any(), &PostParams::default(), &obj)
                .await
            {
                Ok(updated) => return Ok(Arc::new(updated)),
                Err(e) if attempt == 0 && !is_not_found(&e) => {
                    obj = api.get(&obj.name_any()).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(rs.clone())
    }
}

fn status_counts_equal(a: &ReplicaSetStatus, b: &ReplicaSetStatus) -> bool {
    a.replicas == b.replicas
        && a.fully_labeled_replicas.unwrap_or(0) == b.fully_labeled_replicas.unwrap_or(0)
        && a.ready_replicas.unwrap_or(0) == b.ready_replicas.unwrap_or(0)
        && a.available_replicas.unwrap_or(0) == b.available_replicas.unwrap_or(0)
        && a.terminating_replicas == b.terminating_replicas
}

/// Upstream `calculateStatus`.
fn calculate_status(
    rs: &ReplicaSet,
    active: &[Arc<Pod>],
    terminating: usize,
    manage_err: Option<&Error>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let (mut fully, mut ready, mut available) = (0, 0, 0);
    for p in active {
        let labels = labels_of(p.as_ref());
        if template_labels.is_none_or(|t| t.iter().all(|(k, v)| labels.get(k) == Some(v))) {
            fully += 1;
        }
        if is_pod_ready(p) {
            ready += 1;
            if is_pod_available(p, min_ready, now) {
                available += 1;
            }
        }
    }
    let has_failure = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "ReplicaFailure");
    if let Some(err) = manage_err {
        if !has_failure {
            let want = i64::from(spec.and_then(|s| s.replicas).unwrap_or(1));
            let n = i64::try_from(active.len()).unwrap_or(i64::MAX);
            let reason = match n.cmp(&want) {
                std::cmp::Ordering::Less => "FailedCreate",
                std::cmp::Ordering::Greater => "FailedDelete",
                std::cmp::Ordering::Equal => "",
            };
            status
                .conditions
                .get_or_insert_default()
                .push(ReplicaSetCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some(err.to_string()),
                    last_transition_time: Some(Time(now)),
                });
        }
    } else if has_failure {
        let conds: Vec<_> = status
            .conditions
            .take()
            .into_iter()
            .flatten()
            .filter(|c| c.type_ != "ReplicaFailure")
            .collect();
        status.conditions = (!conds.is_empty()).then_some(conds);
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    status.replicas = count(active.len());
    status.fully_labeled_replicas = Some(fully);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.terminating_replicas = Some(count(terminating));
    status
}

/// Upstream `slowStartBatch`: calls `f` `count` times in batches of 1, 2, 4, … (all calls of a
/// batch concurrently), stopping after the first batch with a failure. Returns the number of
/// successes and the first error.
pub async fn slow_start_batch<F, Fut, E>(count: usize, initial: usize, f: F) -> (usize, Option<E>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut remaining = count;
    let mut successes = 0;
    let mut batch = remaining.min(initial);
    while batch > 0 {
        let results = join_all((0..batch).map(|_| f())).await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(()) => successes += 1,
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        if first_err.is_some() {
            return (successes, first_err);
        }
        remaining -= batch;
        batch = (2 * batch).min(remaining);
    }
    (successes, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn slow_start_doubles_and_stops_on_failure() {
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start_batch(10, 1, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<(), ()>(())
        })
        .await;
        assert_eq!((ok, err), (10, None));
        assert_eq!(calls.load(Ordering::SeqCst), 10);

        // Fails from the 4th call: batches 1, 2 succeed, the batch of 4 fails, no more calls.
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start_batch(100, 1, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n >= 3 { Err("quota") } else { Ok(()) }
        })
        .await;
        assert_eq!(err, Some("quota"));
        assert_eq!(ok, 3);
        assert_eq!(calls.load(Ordering::SeqCst), 7);
    }

    /// With an informer that has not yet seen the pods it created, a second sync must not
    /// create them again; once they are observed, syncing resumes.
    #[tokio::test]
    async fn expectations_prevent_acting_on_a_stale_cache() {
        let api = apiserver::inprocess::TempServer::start()
            .await
            .expect("API server");
        let (client, shutdown) = (api.client.clone(), api.shutdown.clone());
        let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
        let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}
                }
            }
        }))
        .expect("rs");
        let rs = rs_api
            .create(&PostParams::default(), &rs)
            .await
            .expect("create");
        // Informers fed by hand: they see only what the test applies.
        let pods = Informer::<Pod>::new();
        let rss = Informer::<ReplicaSet>::new();
        rss.apply(rs);
        let c = Controller::new(client.clone(), pods.clone(), rss, &shutdown);
        let pod_api: Api<Pod> = Api::namespaced(client, "default");
        let count = || async { pod_api.list(&Default::default()).await.expect("list").items };
        c.sync("default/web").await.expect("sync");
        assert_eq!(count().await.len(), 3);
        c.sync("default/web").await.expect("sync");
        assert_eq!(count().await.len(), 3, "created again before observing");
        assert!(!c.expectations.satisfied("default/web"));
        for p in count().await {
            pods.apply(p.clone());
            c.on_pod(Event::Added(Arc::new(p)));
        }
        assert!(c.expectations.satisfied("default/web"));
        // A deletion through the informer: replaced at the next sync.
        let gone = count().await.remove(0);
        pod_api
            .delete(&gone.name_any(), &DeleteParams::default())
            .await
            .expect("delete");
        pods.delete(&gone);
        c.on_pod(Event::Deleted(Arc::new(gone)));
        c.sync("default/web").await.expect("sync");
        assert_eq!(count().await.len(), 3);
        assert_eq!(c.expectations.pending("default/web"), Some((1, 0)));
    }

    #[test]
    fn availability_waits_min_ready_seconds() {
        use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
        let now = Timestamp::now();
        let ready_at = now - k8s_openapi::jiff::SignedDuration::from_secs(5);
        let pod = Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ready_at)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(is_pod_available(&pod, 0, now));
        assert!(is_pod_available(&pod, 4, now));
        assert!(!is_pod_available(&pod, 10, now));
        let left = available_in(&pod, 10, now).unwrap();
        assert!(left > Duration::from_secs(4) && left <= Duration::from_secs(5));
    }
}
