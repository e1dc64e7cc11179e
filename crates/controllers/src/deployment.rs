//! The Deployment controller (upstream `pkg/controller/deployment`, "deployment-controller"):
//! rolls Deployments out through ReplicaSets named `<deployment>-<pod-template-hash>`, with
//! the RollingUpdate (maxSurge/maxUnavailable) and Recreate strategies, proportional scaling,
//! revisions and rollbacks, revision history cleanup, pausing, and the Progressing/Available
//! conditions with the progress deadline.

pub mod util;

use std::sync::Arc;
use std::time::Duration;

use informers::workqueue::{Requeue, run_workers};
use informers::{Event, EventType, Informer, Recorder, WorkQueue, key_of};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::Context;
use crate::replicaset::refmanager::{self, ClaimError, Owner};
use crate::replicaset::{
    POD_CONTROLLER_UID_INDEX, RS_CONTROLLER_UID_INDEX, add_pod_index, add_rs_index, api_message,
    owned_and_orphans,
};
use crate::util::{controller_ref, pod_phase};
use util::*;

/// The controller's name (event source component).
pub const NAME: &str = "deployment-controller";
/// Concurrent syncs (kube-controller-manager `--concurrent-deployment-syncs`).
pub const WORKERS: usize = 5;

/// A sync error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{}", api_message(.0))]
    Kube(#[from] kube::Error),
    /// Claiming ReplicaSets failed.
    #[error(transparent)]
    Claim(#[from] ClaimError),
    /// A hash collision was found; the collision count was raised.
    #[error("hash collision for ReplicaSet {0}: retrying with a new collision count")]
    Collision(String),
}

fn is_api(e: &kube::Error, f: impl Fn(&kube::core::Status) -> bool) -> bool {
    matches!(e, kube::Error::Api(s) if f(s))
}

struct Controller {
    client: kube::Client,
    deployments: Informer<Deployment>,
    rss: Informer<ReplicaSet>,
    pods: Informer<Pod>,
    queue: WorkQueue<String>,
    recorder: Recorder,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let deployments = ctx.factory.informer::<Deployment>();
    let rss = ctx.factory.informer::<ReplicaSet>();
    let pods = ctx.factory.informer::<Pod>();
    add_pod_index(&pods);
    add_rs_index(&rss);
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        deployments: deployments.clone(),
        rss: rss.clone(),
        pods: pods.clone(),
        queue: WorkQueue::new(ctx.shutdown.clone()),
        recorder: Recorder::new(ctx.client.clone(), NAME, None, ctx.shutdown.clone()),
    });
    let mut d_events = deployments.subscribe();
    let mut rs_events = rss.subscribe();
    let mut pod_events = pods.subscribe();
    let h = c.clone();
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = d_events.recv() => match ev {
                    Some(ev) => h.queue.add(key_of(ev.object().as_ref())),
                    None => return,
                },
                ev = rs_events.recv() => match ev {
                    Some(ev) => h.on_rs(ev),
                    None => return,
                },
                ev = pod_events.recv() => match ev {
                    Some(Event::Deleted(p)) => h.on_pod_deleted(&p),
                    Some(_) => {}
                    None => return,
                },
            }
        }
    });
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        _ = async {
            deployments.wait_synced().await;
            rss.wait_synced().await;
            pods.wait_synced().await;
        } => {}
    }
    let w = c.clone();
    run_workers(c.queue.clone(), WORKERS, NAME, move |key: String| {
        let w = w.clone();
        async move { w.sync(&key).await }
    })
    .await;
}

fn selector_of(d: &Deployment) -> Option<&LabelSelector> {
    d.spec.as_ref().map(|s| &s.selector)
}

fn matches(sel: Option<&LabelSelector>, obj: &impl Resource) -> bool {
    static EMPTY: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    sel.is_some_and(|s| {
        !informers::labels::selector_is_empty(s)
            && informers::labels::selector_matches(s, obj.meta().labels.as_ref().unwrap_or(&EMPTY))
    })
}

impl Controller {
    fn resolve(&self, ns: &str, r: &OwnerReference) -> Option<Arc<Deployment>> {
        if r.kind != "Deployment" {
            return None;
        }
        let d = self.deployments.get(ns, &r.name)?;
        (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(d)
    }

    fn enqueue_for_rs(&self, rs: &ReplicaSet) {
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        if let Some(r) = controller_ref(rs) {
            if let Some(d) = self.resolve(ns, r) {
                self.queue.add(key_of(d.as_ref()));
            }
            return;
        }
        // An orphan: every Deployment that could adopt it.
        for d in self.deployments.list_namespace(ns) {
            if matches(selector_of(&d), rs) {
                self.queue.add(key_of(d.as_ref()));
            }
        }
    }

    fn on_rs(&self, ev: Event<ReplicaSet>) {
        match ev {
            Event::Added(rs) | Event::Deleted(rs) => self.enqueue_for_rs(&rs),
            Event::Updated(old, cur) => {
                if old.metadata.resource_version == cur.metadata.resource_version {
                    return;
                }
                let (oref, cref) = (controller_ref(old.as_ref()), controller_ref(cur.as_ref()));
                let ns = cur.metadata.namespace.as_deref().unwrap_or("");
                if oref != cref
                    && let Some(r) = oref
                    && let Some(d) = self.resolve(ns, r)
                {
                    self.queue.add(key_of(d.as_ref()));
                }
                if cref.is_some() || old.metadata.labels != cur.metadata.labels || oref != cref {
                    self.enqueue_for_rs(&cur);
                }
            }
        }
    }

    /// A Recreate Deployment waits for the old pods to be gone.
    fn on_pod_deleted(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let Some(r) = controller_ref(pod).filter(|r| r.kind == "ReplicaSet") else {
            return;
        };
        let Some(rs) = self
            .rss
            .get(ns, &r.name)
            .filter(|rs| rs.metadata.uid.as_deref() == Some(r.uid.as_str()))
        else {
            return;
        };
        if let Some(d) = controller_ref(rs.as_ref()).and_then(|r| self.resolve(ns, r))
            && is_recreate(&d)
        {
            self.queue.add(key_of(d.as_ref()));
        }
    }

    async fn sync(&self, key: &str) -> Result<Requeue, Error> {
        let Some(d) = self.deployments.get_key(key) else {
            return Ok(Requeue::No);
        };
        let mut s = Sync {
            c: self,
            d: (*d).clone(),
            api: Api::namespaced(self.client.clone(), &d.namespace().unwrap_or_default()),
            rs_api: Api::namespaced(self.client.clone(), &d.namespace().unwrap_or_default()),
            requeue: Requeue::No,
        };
        s.run().await?;
        Ok(s.requeue)
    }
}

/// One sync of one Deployment.
struct Sync<'a> {
    c: &'a Controller,
    d: Deployment,
    api: Api<Deployment>,
    rs_api: Api<ReplicaSet>,
    requeue: Requeue,
}

impl Sync<'_> {
    fn replicas(&self) -> i32 {
        d_replicas(&self.d)
    }

    async fn run(&mut self) -> Result<(), Error> {
        let sel = selector_of(&self.d).cloned().unwrap_or_default();
        if informers::labels::selector_is_empty(&sel) {
            self.c.recorder.event(
                &self.d,
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            let generation = self.d.metadata.generation.unwrap_or(0);
            let mut st = self.d.status.clone().unwrap_or_default();
            if st.observed_generation.unwrap_or(0) < generation {
                st.observed_generation = Some(generation);
                self.update_status(st).await?;
            }
            return Ok(());
        }
        let rs_list = self.claim_replica_sets().await?;
        if self.d.metadata.deletion_timestamp.is_some() {
            let (new_rs, old) = self.new_and_old(&rs_list, false).await?;
            return self.sync_deployment_status(&old, new_rs.as_ref()).await;
        }
        self.check_paused_conditions().await?;
        if self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
            return self.sync_scale(&rs_list).await;
        }
        if self.is_scaling_event(&rs_list).await? {
            return self.sync_scale(&rs_list).await;
        }
        if is_recreate(&self.d) {
            self.rollout_recreate(&rs_list).await
        } else {
            self.rollout_rolling(&rs_list).await
        }
    }

    /// Upstream `getReplicaSetsForDeployment`: adopt and release by selector.
    async fn claim_replica_sets(&self) -> Result<Vec<ReplicaSet>, Error> {
        let ns = self.d.namespace().unwrap_or_default();
        let uid = self.d.metadata.uid.clone().unwrap_or_default();
        let candidates = owned_and_orphans(&self.c.rss, RS_CONTROLLER_UID_INDEX, &ns, &uid);
        let owner = Owner::of(&self.d);
        let sel = selector_of(&self.d).cloned();
        let name = self.d.name_any();
        let claimed = refmanager::claim(
            &self.rs_api,
            &owner,
            candidates,
            |rs: &ReplicaSet| matches(sel.as_ref(), rs),
            || async {
                match self.api.get(&name).await {
                    Ok(f) if f.metadata.uid.as_deref() != Some(uid.as_str()) => Err(format!(
                        "original Deployment {ns}/{name} is gone: got uid {}, wanted {uid}",
                        f.metadata.uid.unwrap_or_default()
                    )),
                    Ok(f) if f.metadata.deletion_timestamp.is_some() => {
                        Err(format!("{ns}/{name} has just been deleted"))
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(api_message(&e)),
                }
            },
        )
        .await?;
        Ok(claimed.into_iter().map(|r| (*r).clone()).collect())
    }

    async fn update_status(&mut self, st: DeploymentStatus) -> Result<(), Error> {
        let mut obj = self.d.clone();
        obj.status = Some(st);
        self.d = self
            .api
            .replace_status(&obj.name_any(), &PostParams::default(), &obj)
            .await?;
        Ok(())
    }

    /// Upstream `checkPausedConditions`.
    async fn check_paused_conditions(&mut self) -> Result<(), Error> {
        if progress_deadline(&self.d).is_none() {
            return Ok(());
        }
        let mut st = self.d.status.clone().unwrap_or_default();
        let cond = condition(&st, "Progressing");
        if cond.is_some_and(|c| c.reason.as_deref() == Some(TIMED_OUT_REASON)) {
            return Ok(());
        }
        let paused_exists = cond.is_some_and(|c| c.reason.as_deref() == Some(PAUSED_REASON));
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let c = if paused && !paused_exists {
            new_condition(
                "Progressing",
                "Unknown",
                PAUSED_REASON,
                "Deployment is paused".into(),
            )
        } else if !paused && paused_exists {
            new_condition(
                "Progressing",
                "Unknown",
                RESUMED_REASON,
                "Deployment is resumed".into(),
            )
        } else {
            return Ok(());
        };
        set_condition(&mut st, c);
        self.update_status(st).await
    }

    /// Upstream `isScalingEvent`: an active ReplicaSet was scaled for another size.
    async fn is_scaling_event(&mut self, rs_list: &[ReplicaSet]) -> Result<bool, Error> {
        let (new_rs, old) = self.new_and_old(rs_list, false).await?;
        let r = self.replicas();
        Ok(old
            .iter()
            .chain(new_rs.iter())
            .filter(|rs| rs_replicas(rs) > 0)
            .filter_map(desired_replicas_annotation)
            .any(|desired| desired != r))
    }

    /// Upstream `getAllReplicaSetsAndSyncRevision`: (new, old).
    async fn new_and_old(
        &mut self,
        rs_list: &[ReplicaSet],
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), Error> {
        let template = self
            .d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let mut sorted: Vec<&ReplicaSet> = rs_list.iter().collect();
        sorted.sort_by(|a, b| by_creation(a, b));
        let existing = sorted
            .iter()
            .find(|rs| {
                rs.spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &template))
            })
            .map(|rs| (*rs).clone());
        let old: Vec<ReplicaSet> = rs_list
            .iter()
            .filter(|rs| {
                existing
                    .as_ref()
                    .is_none_or(|e| e.metadata.uid != rs.metadata.uid)
            })
            .cloned()
            .collect();
        let new_rs = self
            .new_replica_set(existing, &old, create, template)
            .await?;
        Ok((new_rs, old))
    }

    /// Upstream `SetDeploymentRevision` + `UpdateStatus`: the revision annotation goes with a
    /// status update (which upstream keeps annotations of, and which does not bump the
    /// generation). The r8s API server drops metadata from status updates: when the
    /// annotation did not stick, it is set with a metadata patch instead.
    async fn set_deployment_revision(&mut self, revision: &str) -> Result<(), Error> {
        let has = |d: &Deployment| {
            d.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION_ANNOTATION))
                .map(String::as_str)
                == Some(revision)
        };
        if has(&self.d) {
            return Ok(());
        }
        let status = self.d.status.clone();
        self.d
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(REVISION_ANNOTATION.into(), revision.into());
        self.update_status(status.clone().unwrap_or_default())
            .await?;
        if !has(&self.d) {
            let patch = json!({"metadata": {"annotations": {REVISION_ANNOTATION: revision}}});
            self.d = self
                .api
                .patch(
                    &self.d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await?;
        }
        Ok(())
    }

    /// Upstream `getNewReplicaSet`.
    async fn new_replica_set(
        &mut self,
        existing: Option<ReplicaSet>,
        old: &[ReplicaSet],
        create: bool,
        template: PodTemplateSpec,
    ) -> Result<Option<ReplicaSet>, Error> {
        let new_revision = max_revision(old) + 1;
        let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if let Some(mut rs) = existing {
            let annotations_updated = set_new_rs_annotations(&self.d, &mut rs, new_revision, true);
            let spec = rs.spec.get_or_insert_default();
            let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0);
            if annotations_updated || min_ready_changed {
                spec.min_ready_seconds = min_ready;
                let updated = self
                    .rs_api
                    .replace(&rs.name_any(), &PostParams::default(), &rs)
                    .await?;
                return Ok(Some(updated));
            }
            let rev = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION_ANNOTATION))
                .cloned()
                .unwrap_or_default();
            self.set_deployment_revision(&rev).await?;
            let mut st = self.d.status.clone().unwrap_or_default();
            if progress_deadline(&self.d).is_some() && condition(&st, "Progressing").is_none() {
                set_condition(
                    &mut st,
                    new_condition(
                        "Progressing",
                        "True",
                        FOUND_NEW_RS_REASON,
                        format!("Found new replica set {:?}", rs.name_any()),
                    ),
                );
                self.update_status(st).await?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&template, collision_count);
        let labels = with_label(
            template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            POD_TEMPLATE_HASH_LABEL,
            &hash,
        );
        let mut new_template = template.clone();
        new_template.metadata.get_or_insert_default().labels = Some(labels.clone());
        let mut selector = selector_of(&self.d).cloned().unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_default()
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let name = format!("{}-{hash}", self.d.name_any());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                owner_references: Some(vec![Owner::of(&self.d).controller_ref()]),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: min_ready,
                selector,
                template: Some(new_template),
            }),
            status: None,
        };
        let mut all: Vec<&ReplicaSet> = old.iter().collect();
        all.push(&rs);
        let new_replicas = self.new_rs_new_replicas(&all, &rs);
        rs.spec.get_or_insert_default().replicas = Some(new_replicas);
        set_new_rs_annotations(&self.d, &mut rs, new_revision, false);
        let mut already_exists = false;
        let created = match self.rs_api.create(&PostParams::default(), &rs).await {
            Ok(c) => c,
            Err(e) if is_api(&e, kube::core::Status::is_already_exists) => {
                already_exists = true;
                let found = match self
                    .c
                    .rss
                    .get(&self.d.namespace().unwrap_or_default(), &name)
                {
                    Some(f) => (*f).clone(),
                    None => self.rs_api.get(&name).await?,
                };
                let ours = controller_ref(&found)
                    .is_some_and(|r| Some(&r.uid) == self.d.metadata.uid.as_ref());
                let same = found
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &template));
                if ours && same {
                    found
                } else {
                    // A hash collision: bump collisionCount and retry.
                    let mut st = self.d.status.clone().unwrap_or_default();
                    st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                    self.update_status(st).await?;
                    return Err(Error::Collision(name));
                }
            }
            Err(e) if is_namespace_terminating(&e) => return Err(e.into()),
            Err(e) => {
                let msg = format!(
                    "Failed to create new replica set {name:?}: {}",
                    api_message(&e)
                );
                if progress_deadline(&self.d).is_some() {
                    let mut st = self.d.status.clone().unwrap_or_default();
                    set_condition(
                        &mut st,
                        new_condition("Progressing", "False", FAILED_RS_CREATE_REASON, msg.clone()),
                    );
                    let _ = self.update_status(st).await;
                }
                self.c
                    .recorder
                    .event(&self.d, EventType::Warning, FAILED_RS_CREATE_REASON, msg);
                return Err(e.into());
            }
        };
        if !already_exists && new_replicas > 0 {
            self.c.recorder.event(
                &self.d,
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled up replica set {} from 0 to {new_replicas}",
                    created.name_any()
                ),
            );
        }
        self.set_deployment_revision(&new_revision.to_string())
            .await?;
        if !already_exists && progress_deadline(&self.d).is_some() {
            let mut st = self.d.status.clone().unwrap_or_default();
            set_condition(
                &mut st,
                new_condition(
                    "Progressing",
                    "True",
                    NEW_RS_REASON,
                    format!("Created new replica set {:?}", created.name_any()),
                ),
            );
            self.update_status(st).await?;
        }
        Ok(Some(created))
    }

    /// Upstream `NewRSNewReplicas`.
    fn new_rs_new_replicas(&self, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> i32 {
        let r = self.replicas();
        if is_recreate(&self.d) {
            return r;
        }
        let current: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
        let max_total = r + max_surge(&self.d);
        let new = rs_replicas(new_rs);
        if current >= max_total {
            return new;
        }
        new + (max_total - current).min(r - new)
    }

    /// Upstream `scaleReplicaSetAndRecordEvent`.
    async fn scale_rs(&self, rs: &mut ReplicaSet, new_scale: i32) -> Result<bool, Error> {
        if rs_replicas(rs) == new_scale {
            return Ok(false);
        }
        self.scale_rs_always(rs, new_scale).await
    }

    /// Upstream `scaleReplicaSet`: sets the size and the replica annotations.
    async fn scale_rs_always(&self, rs: &mut ReplicaSet, new_scale: i32) -> Result<bool, Error> {
        let old_scale = rs_replicas(rs);
        let size_changed = old_scale != new_scale;
        let r = self.replicas();
        let max = r + max_surge(&self.d);
        if !size_changed && !replicas_annotations_need_update(rs, r, max) {
            return Ok(false);
        }
        let mut copy = rs.clone();
        copy.spec.get_or_insert_default().replicas = Some(new_scale);
        set_replicas_annotations(&mut copy, r, max);
        *rs = self
            .rs_api
            .replace(&copy.name_any(), &PostParams::default(), &copy)
            .await?;
        if size_changed {
            let op = if old_scale < new_scale { "up" } else { "down" };
            self.c.recorder.event(
                &self.d,
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled {op} replica set {} from {old_scale} to {new_scale}",
                    rs.name_any()
                ),
            );
        }
        Ok(size_changed)
    }

    /// Upstream `sync`: scaling and paused Deployments.
    async fn sync_scale(&mut self, rs_list: &[ReplicaSet]) -> Result<(), Error> {
        let (mut new_rs, mut old) = self.new_and_old(rs_list, false).await?;
        self.scale(new_rs.as_mut(), &mut old).await?;
        if self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
            self.cleanup(&old).await?;
        }
        self.sync_deployment_status(&old, new_rs.as_ref()).await
    }

    /// Upstream `scale`: proportional scaling of the active ReplicaSets.
    async fn scale(
        &self,
        new_rs: Option<&mut ReplicaSet>,
        old: &mut [ReplicaSet],
    ) -> Result<(), Error> {
        let r = self.replicas();
        // The only active ReplicaSet (or the newest, if none is active) takes everything.
        old.sort_by(|a, b| by_creation(b, a));
        let active_old: Vec<usize> = (0..old.len())
            .filter(|i| rs_replicas(&old[*i]) > 0)
            .collect();
        let new_active = new_rs.as_ref().is_some_and(|n| rs_replicas(n) > 0);
        let n_active = active_old.len() + usize::from(new_active);
        if n_active <= 1 && (new_rs.is_some() || !old.is_empty()) {
            let target: &mut ReplicaSet = match (new_rs, n_active) {
                (Some(n), _) if new_active || n_active == 0 => n,
                (_, 1) => &mut old[active_old[0]],
                (None, _) => &mut old[0],
                (Some(n), _) => n,
            };
            if rs_replicas(target) != r {
                self.scale_rs(target, r).await?;
            }
            return Ok(());
        }
        if n_active == 0 {
            return Ok(());
        }
        if is_saturated(&self.d, new_rs.as_deref()) {
            for i in active_old {
                self.scale_rs(&mut old[i], 0).await?;
            }
            return Ok(());
        }
        if !is_rolling(&self.d) {
            return Ok(());
        }
        // Proportional scaling.
        let mut all: Vec<&mut ReplicaSet> = Vec::new();
        let mut old_iter: Vec<&mut ReplicaSet> =
            old.iter_mut().filter(|rs| rs_replicas(rs) > 0).collect();
        all.append(&mut old_iter);
        if let Some(n) = new_rs
            && rs_replicas(n) > 0
        {
            all.push(n);
        }
        let total: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
        let allowed = if r > 0 { r + max_surge(&self.d) } else { 0 };
        let to_add = allowed - total;
        if to_add > 0 {
            // Larger first; newer first among equals.
            all.sort_by(|a, b| {
                rs_replicas(b)
                    .cmp(&rs_replicas(a))
                    .then_with(|| by_creation(b, a))
            });
        } else if to_add < 0 {
            // Larger first; older first among equals.
            all.sort_by(|a, b| {
                rs_replicas(b)
                    .cmp(&rs_replicas(a))
                    .then_with(|| by_creation(a, b))
            });
        }
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for rs in &all {
            if to_add != 0 {
                let p = rs_proportion(rs, &self.d, to_add, added);
                sizes.push(rs_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(rs_replicas(rs));
            }
        }
        for (i, rs) in all.into_iter().enumerate() {
            if i == 0 && to_add != 0 {
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            self.scale_rs_always(rs, sizes[i]).await?;
        }
        Ok(())
    }

    /// Upstream `cleanupDeployment`: deletes the oldest old ReplicaSets beyond
    /// revisionHistoryLimit that have no pods.
    async fn cleanup(&self, old: &[ReplicaSet]) -> Result<(), Error> {
        let Some(limit) = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .filter(|l| *l != i32::MAX)
        else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = i64::try_from(cleanable.len()).unwrap_or(i64::MAX) - i64::from(limit);
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| {
            revision(a)
                .cmp(&revision(b))
                .then_with(|| by_creation(a, b))
        });
        for rs in cleanable
            .into_iter()
            .take(usize::try_from(diff).unwrap_or(0))
        {
            let st = rs.status.clone().unwrap_or_default();
            if st.replicas != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0)
            {
                continue;
            }
            match self
                .rs_api
                .delete(&rs.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(e) if is_api(&e, kube::core::Status::is_not_found) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Upstream `rolloutRolling`.
    async fn rollout_rolling(&mut self, rs_list: &[ReplicaSet]) -> Result<(), Error> {
        let (new_rs, mut old) = self.new_and_old(rs_list, true).await?;
        let Some(mut new_rs) = new_rs else {
            return self.sync_rollout_status(&old, None).await;
        };
        // Scale up, if we can.
        let r = self.replicas();
        let scaled_up = if rs_replicas(&new_rs) == r {
            false
        } else if rs_replicas(&new_rs) > r {
            self.scale_rs(&mut new_rs, r).await?
        } else {
            let mut all: Vec<&ReplicaSet> = old.iter().collect();
            all.push(&new_rs);
            let n = self.new_rs_new_replicas(&all, &new_rs);
            self.scale_rs(&mut new_rs, n).await?
        };
        if scaled_up {
            return self.sync_rollout_status(&old, Some(&new_rs)).await;
        }
        // Scale down, if we can.
        if self.reconcile_old(&mut old, &new_rs).await? {
            return self.sync_rollout_status(&old, Some(&new_rs)).await;
        }
        let st = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &st) {
            self.cleanup(&old).await?;
        }
        self.sync_rollout_status(&old, Some(&new_rs)).await
    }

    /// Upstream `reconcileOldReplicaSets`, `cleanupUnhealthyReplicas` and
    /// `scaleDownOldReplicaSetsForRollingUpdate`.
    async fn reconcile_old(
        &self,
        old: &mut [ReplicaSet],
        new_rs: &ReplicaSet,
    ) -> Result<bool, Error> {
        let old_pods: i32 = old
            .iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .map(rs_replicas)
            .sum();
        if old_pods == 0 {
            return Ok(false);
        }
        let all_pods = old_pods + rs_replicas(new_rs);
        let max_unavailable = max_unavailable(&self.d);
        let min_available = self.replicas() - max_unavailable;
        let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        old.sort_by(by_creation);
        // Clean up unhealthy replicas first.
        let mut cleaned = 0;
        for rs in old.iter_mut() {
            if cleaned >= max_scaled_down {
                break;
            }
            let (n, avail) = (rs_replicas(rs), rs_available(rs));
            if n == 0 || n == avail {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(n - avail);
            self.scale_rs(rs, n - down).await?;
            cleaned += down;
        }
        // Then scale down healthy ones while availability allows.
        let available = old.iter().map(rs_available).sum::<i32>() + rs_available(new_rs);
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for rs in old.iter_mut() {
                if scaled >= total {
                    break;
                }
                let n = rs_replicas(rs);
                if n == 0 {
                    continue;
                }
                let down = n.min(total - scaled);
                self.scale_rs(rs, n - down).await?;
                scaled += down;
            }
        }
        Ok(cleaned + scaled > 0)
    }

    /// Upstream `rolloutRecreate`.
    async fn rollout_recreate(&mut self, rs_list: &[ReplicaSet]) -> Result<(), Error> {
        let (mut new_rs, mut old) = self.new_and_old(rs_list, false).await?;
        let mut scaled_down = false;
        for rs in old.iter_mut().filter(|rs| rs_replicas(rs) > 0) {
            if self.scale_rs(rs, 0).await? {
                scaled_down = true;
            }
        }
        if scaled_down || self.old_pods_running(new_rs.as_ref(), &old) {
            return self.sync_rollout_status(&old, new_rs.as_ref()).await;
        }
        if new_rs.is_none() {
            let (n, o) = self.new_and_old(rs_list, true).await?;
            new_rs = n;
            old = o;
        }
        if let Some(n) = new_rs.as_mut() {
            let r = self.replicas();
            self.scale_rs(n, r).await?;
        }
        let st = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &st) {
            self.cleanup(&old).await?;
        }
        self.sync_rollout_status(&old, new_rs.as_ref()).await
    }

    /// Upstream `oldPodsRunning`.
    fn old_pods_running(&self, new_rs: Option<&ReplicaSet>, old: &[ReplicaSet]) -> bool {
        if actual_replica_count(old) > 0 {
            return true;
        }
        let sel = selector_of(&self.d);
        old.iter()
            .filter(|rs| new_rs.is_none_or(|n| n.metadata.uid != rs.metadata.uid))
            .flat_map(|rs| {
                self.c.pods.by_index(
                    POD_CONTROLLER_UID_INDEX,
                    rs.metadata.uid.as_deref().unwrap_or(""),
                )
            })
            .filter(|p| matches(sel, p.as_ref()))
            .any(|p| !matches!(pod_phase(&p), "Failed" | "Succeeded"))
    }

    /// Upstream `calculateStatus`.
    fn calculate_status(
        &self,
        old: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> DeploymentStatus {
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs).collect();
        let available = available_replica_count(all.iter().copied());
        let total = replica_count(all.iter().copied());
        let cur = self.d.status.clone().unwrap_or_default();
        let mut st = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: Some(actual_replica_count(all.iter().copied())),
            updated_replicas: Some(actual_replica_count(new_rs)),
            ready_replicas: Some(ready_replica_count(all.iter().copied())),
            available_replicas: Some(available),
            unavailable_replicas: Some((total - available).max(0)),
            terminating_replicas: terminating_replica_count(all.iter().copied()),
            collision_count: cur.collision_count,
            conditions: cur.conditions.clone(),
        };
        if available >= self.replicas() - max_unavailable(&self.d) {
            set_condition(
                &mut st,
                new_condition(
                    "Available",
                    "True",
                    MIN_AVAILABLE_REASON,
                    "Deployment has minimum availability.".into(),
                ),
            );
        } else {
            set_condition(
                &mut st,
                new_condition(
                    "Available",
                    "False",
                    MIN_UNAVAILABLE_REASON,
                    "Deployment does not have minimum availability.".into(),
                ),
            );
        }
        st
    }

    /// Upstream `syncDeploymentStatus`.
    async fn sync_deployment_status(
        &mut self,
        old: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<(), Error> {
        let st = self.calculate_status(old, new_rs);
        if !status_equal(self.d.status.as_ref(), &st) {
            self.update_status(st).await?;
        }
        Ok(())
    }

    /// Upstream `syncRolloutStatus` (progress.go).
    async fn sync_rollout_status(
        &mut self,
        old: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<(), Error> {
        let mut st = self.calculate_status(old, new_rs);
        let deadline = progress_deadline(&self.d);
        if deadline.is_none() {
            remove_condition(&mut st, "Progressing");
        }
        let cur_status = self.d.status.clone().unwrap_or_default();
        let current = condition(&cur_status, "Progressing").cloned();
        let complete_rollout = st.replicas == st.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE_REASON));
        let now = Timestamp::now();
        let name = self.d.name_any();
        if deadline.is_some() && !complete_rollout {
            if deployment_complete(&self.d, &st) {
                let msg = match new_rs {
                    Some(rs) => format!(
                        "ReplicaSet {:?} has successfully progressed.",
                        rs.name_any()
                    ),
                    None => format!("Deployment {name:?} has successfully progressed."),
                };
                set_condition(
                    &mut st,
                    new_condition("Progressing", "True", NEW_RS_AVAILABLE_REASON, msg),
                );
            } else if deployment_progressing(&self.d, &st) {
                let msg = match new_rs {
                    Some(rs) => format!("ReplicaSet {:?} is progressing.", rs.name_any()),
                    None => format!("Deployment {name:?} is progressing."),
                };
                let mut c = new_condition("Progressing", "True", RS_UPDATED_REASON, msg);
                if let Some(cur) = &current {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    remove_condition(&mut st, "Progressing");
                }
                set_condition(&mut st, c);
            } else if deployment_timed_out(&self.d, &st, now) {
                let msg = match new_rs {
                    Some(rs) => {
                        format!("ReplicaSet {:?} has timed out progressing.", rs.name_any())
                    }
                    None => format!("Deployment {name:?} has timed out progressing."),
                };
                set_condition(
                    &mut st,
                    new_condition("Progressing", "False", TIMED_OUT_REASON, msg),
                );
            }
        }
        // ReplicaFailure conditions of the ReplicaSets (the new one's first).
        let failures: Vec<DeploymentCondition> = new_rs
            .into_iter()
            .chain(old.iter())
            .flat_map(|rs| rs.status.iter().flat_map(|s| s.conditions.iter().flatten()))
            .filter(|c| c.type_ == "ReplicaFailure")
            .map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
            .collect();
        match failures.into_iter().next() {
            Some(c) => set_condition(&mut st, c),
            None => remove_condition(&mut st, "ReplicaFailure"),
        }
        if status_equal(self.d.status.as_ref(), &st) {
            self.requeue_stuck(&st, now);
            return Ok(());
        }
        self.update_status(st).await
    }

    /// Upstream `requeueStuckDeployment`: check the progress deadline when it passes.
    fn requeue_stuck(&mut self, st: &DeploymentStatus, now: Timestamp) {
        let Some(deadline) = progress_deadline(&self.d) else {
            return;
        };
        let cur_status = self.d.status.clone().unwrap_or_default();
        let Some(cur) = condition(&cur_status, "Progressing") else {
            return;
        };
        if deployment_complete(&self.d, st) || cur.reason.as_deref() == Some(TIMED_OUT_REASON) {
            return;
        }
        let Some(updated) = cur.last_update_time.as_ref() else {
            return;
        };
        let at = updated.0.as_millisecond() + i64::from(deadline) * 1000;
        let after = at - now.as_millisecond();
        self.requeue = if after < 1000 {
            Requeue::After(Duration::from_millis(100))
        } else {
            // A second more, against clock skew (as upstream).
            Requeue::After(Duration::from_millis(
                u64::try_from(after).unwrap_or(0) + 1000,
            ))
        };
    }
}

fn is_namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

/// Status equality as upstream's `reflect.DeepEqual` (absent and zero counts alike).
fn status_equal(cur: Option<&DeploymentStatus>, new: &DeploymentStatus) -> bool {
    let cur = cur.cloned().unwrap_or_default();
    let z = |v: Option<i32>| v.unwrap_or(0);
    cur.observed_generation.unwrap_or(0) == new.observed_generation.unwrap_or(0)
        && z(cur.replicas) == z(new.replicas)
        && z(cur.updated_replicas) == z(new.updated_replicas)
        && z(cur.ready_replicas) == z(new.ready_replicas)
        && z(cur.available_replicas) == z(new.available_replicas)
        && z(cur.unavailable_replicas) == z(new.unavailable_replicas)
        && cur.terminating_replicas == new.terminating_replicas
        && cur.collision_count == new.collision_count
        && cur.conditions.unwrap_or_default() == new.conditions.clone().unwrap_or_default()
}
