//! The EndpointSlice controller (upstream `pkg/controller/endpointslice`,
//! "endpointslice-controller"): for every Service with a selector, discovery.k8s.io/v1
//! EndpointSlices of at most [`MAX_ENDPOINTS_PER_SLICE`] endpoints listing the selected pods
//! that have an IP, with their ready/serving/terminating conditions, node, zone and ports.
//!
//! As upstream: pod events are mapped to the services selecting the pod; work is coalesced per
//! service; the reconciler ([`reconciler`]) keeps endpoints in their slices to minimize churn;
//! the controller's own writes are tracked ([`tracker`]) so their events cause no sync and a
//! stale cache is never acted on; slices changed or deleted by others are put back. Slices of
//! deleted services go with their owner (garbage collector).

pub mod reconciler;
pub mod tracker;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use informers::workqueue::{Requeue, run_workers};
use informers::{Event, EventType, Informer, Recorder, WorkQueue, key_of};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};

use crate::Context;
use crate::endpoints::common::{
    Error, LAST_CHANGE_TRIGGER_TIME, TriggerTimeTracker, add_pod_label_index, api_message,
    format_rfc3339_nano, is_namespace_terminating, is_not_found, selected_pods, service_selector,
    service_type, services_for_pod_event, split_key,
};
use reconciler::{LABEL_MANAGED_BY, Plan};
use tracker::{SliceTracker, service_key_of};

/// The controller's name in kube-controller-manager.
pub const NAME: &str = "endpointslice-controller";
/// The value of the managed-by label of the slices this controller manages (upstream
/// `ControllerName`).
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// The event source component (upstream "endpoint-slice-controller").
pub const COMPONENT: &str = "endpoint-slice-controller";
/// Concurrent syncs (kube-controller-manager `--concurrent-service-endpoint-syncs`).
pub const WORKERS: usize = 5;
/// Most endpoints per slice (kube-controller-manager `--max-endpoints-per-slice`).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Slice index: `namespace/service` of the slices this controller manages.
pub const SLICE_SERVICE_INDEX: &str = "r8s/endpointSliceService";
/// Delay before a sync caused by someone else's slice change (upstream
/// `endpointSliceChangeMinSyncDelay`).
const SLICE_CHANGE_MIN_SYNC_DELAY: Duration = Duration::from_secs(1);
/// Concurrent writes of one sync.
const WRITE_CONCURRENCY: usize = 8;

fn managed_by_controller(slice: &EndpointSlice) -> bool {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_MANAGED_BY))
        .is_some_and(|v| v == CONTROLLER_NAME)
}

/// Adds [`SLICE_SERVICE_INDEX`] to the slice informer (idempotent).
pub fn add_slice_index(slices: &Informer<EndpointSlice>) {
    slices.add_index(
        SLICE_SERVICE_INDEX,
        Arc::new(|s: &EndpointSlice| {
            if managed_by_controller(s) {
                service_key_of(s).into_iter().collect()
            } else {
                Vec::new()
            }
        }),
    );
}

struct Controller {
    client: kube::Client,
    pods: Informer<Pod>,
    services: Informer<Service>,
    slices: Informer<EndpointSlice>,
    nodes: Informer<Node>,
    queue: WorkQueue<String>,
    tracker: SliceTracker,
    triggers: TriggerTimeTracker,
    recorder: Recorder,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let pods = ctx.factory.informer::<Pod>();
    let services = ctx.factory.informer::<Service>();
    let slices = ctx.factory.informer::<EndpointSlice>();
    let nodes = ctx.factory.informer::<Node>();
    add_pod_label_index(&pods);
    add_slice_index(&slices);
    let c = Arc::new(Controller {
        recorder: Recorder::new(ctx.client.clone(), COMPONENT, None, ctx.shutdown.clone()),
        client: ctx.client.clone(),
        pods: pods.clone(),
        services: services.clone(),
        slices: slices.clone(),
        nodes: nodes.clone(),
        queue: WorkQueue::new(ctx.shutdown.clone()),
        tracker: SliceTracker::new(),
        triggers: TriggerTimeTracker::new(),
    });
    let mut svc_events = services.subscribe();
    let mut pod_events = pods.subscribe();
    let mut slice_events = slices.subscribe();
    let handler = c.clone();
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = svc_events.recv() => match ev {
                    Some(ev) => handler.queue.add(key_of(ev.object().as_ref())),
                    None => return,
                },
                ev = pod_events.recv() => match ev {
                    Some(ev) => handler.on_pod(&ev),
                    None => return,
                },
                ev = slice_events.recv() => match ev {
                    Some(ev) => handler.on_slice(&ev),
                    None => return,
                },
            }
        }
    });
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        _ = async {
            pods.wait_synced().await;
            services.wait_synced().await;
            slices.wait_synced().await;
            nodes.wait_synced().await;
        } => {}
    }
    let w = c.clone();
    run_workers(c.queue.clone(), WORKERS, NAME, move |key: String| {
        let w = w.clone();
        async move { w.sync(&key).await }
    })
    .await;
}

impl Controller {
    fn on_pod(&self, ev: &Event<Pod>) {
        for k in services_for_pod_event(&self.services, ev) {
            self.queue.add(k);
        }
    }

    fn queue_for_slice(&self, slice: &EndpointSlice) {
        if let Some(k) = service_key_of(slice) {
            self.queue.add_after(k, SLICE_CHANGE_MIN_SYNC_DELAY);
        }
    }

    /// Upstream `onEndpointSliceAdd/Update/Delete`.
    fn on_slice(&self, ev: &Event<EndpointSlice>) {
        match ev {
            Event::Added(s) => {
                if managed_by_controller(s) && self.tracker.should_sync(s) {
                    self.queue_for_slice(s);
                }
            }
            Event::Updated(old, new) => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                if managed_by_controller(old) != managed_by_controller(new)
                    || service_key_of(old) != service_key_of(new)
                {
                    self.queue_for_slice(old);
                    self.queue_for_slice(new);
                } else if managed_by_controller(new) && self.tracker.should_sync(new) {
                    self.queue_for_slice(new);
                }
            }
            Event::Deleted(s) => {
                if managed_by_controller(s)
                    && self.tracker.has(s)
                    && !self.tracker.handle_deletion(s)
                {
                    self.queue_for_slice(s);
                }
            }
        }
    }

    async fn sync(&self, key: &str) -> Result<Requeue, Error> {
        let (ns, _) = split_key(key);
        let Some(svc) = self.services.get_key(key) else {
            // Its slices go with it (owner references).
            self.triggers.delete_service(key);
            self.tracker.delete_service(key);
            return Ok(Requeue::No);
        };
        if service_type(&svc) == "ExternalName" {
            return Ok(Requeue::No);
        }
        let Some(selector) = service_selector(&svc) else {
            return Ok(Requeue::No);
        };
        let pods = selected_pods(&self.pods, ns, selector);
        let slices: Vec<Arc<EndpointSlice>> = self
            .slices
            .by_index(SLICE_SERVICE_INDEX, key)
            .into_iter()
            .filter(|s| s.metadata.deletion_timestamp.is_none())
            .collect();
        if self.tracker.stale_slices(key, &slices) {
            return Err(Error::Stale(
                "EndpointSlice informer cache is out of date".into(),
            ));
        }
        let trigger = self.triggers.compute(key, &svc, &pods);
        let nodes = &self.nodes;
        let node_of = |name: &str| nodes.get("", name);
        let plan = reconciler::reconcile(
            &svc,
            &pods,
            &slices,
            &node_of,
            MAX_ENDPOINTS_PER_SLICE,
            CONTROLLER_NAME,
        );
        let mut errors = plan.errors.clone();
        if let Err(e) = self.finalize(&svc, plan, trigger).await {
            errors.push(e);
        }
        if errors.is_empty() {
            return Ok(Requeue::No);
        }
        let err = Error::Aggregate(errors);
        self.recorder.event(
            svc.as_ref(),
            EventType::Warning,
            "FailedToUpdateEndpointSlices",
            format!("Error updating Endpoint Slices for Service {key}: {err}"),
        );
        Err(err)
    }

    /// Writes the plan: creations (not for a service being deleted), updates, deletions
    /// (upstream `finalize`); the first failing step's error.
    async fn finalize(
        &self,
        svc: &Service,
        plan: Plan,
        trigger: Option<k8s_openapi::jiff::Timestamp>,
    ) -> Result<(), String> {
        let ns = svc.metadata.namespace.as_deref().unwrap_or("");
        let name = svc.metadata.name.as_deref().unwrap_or("");
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        let pp = PostParams {
            field_manager: Some(NAME.into()),
            ..Default::default()
        };
        let annotate = |mut s: EndpointSlice| {
            let mut a = s.metadata.annotations.take().unwrap_or_default();
            match trigger {
                Some(t) => {
                    a.insert(LAST_CHANGE_TRIGGER_TIME.into(), format_rfc3339_nano(t));
                }
                None => {
                    a.remove(LAST_CHANGE_TRIGGER_TIME);
                }
            }
            s.metadata.annotations = (!a.is_empty()).then_some(a);
            s
        };

        if svc.metadata.deletion_timestamp.is_none() {
            let results: Vec<_> = futures::stream::iter(plan.create.into_iter().map(annotate))
                .map(|s| {
                    let api = api.clone();
                    let pp = pp.clone();
                    async move { api.create(&pp, &s).await }
                })
                .buffer_unordered(WRITE_CONCURRENCY)
                .collect()
                .await;
            for r in results {
                match r {
                    Ok(created) => self.tracker.update(&created),
                    Err(e) if is_namespace_terminating(&e) => return Ok(()),
                    Err(e) => {
                        return Err(format!(
                            "failed to create EndpointSlice for Service {ns}/{name}: {}",
                            api_message(&e)
                        ));
                    }
                }
            }
        }

        let results: Vec<_> = futures::stream::iter(plan.update.into_iter().map(annotate))
            .map(|s| {
                let api = api.clone();
                let pp = pp.clone();
                async move {
                    let n = s.metadata.name.clone().unwrap_or_default();
                    (api.replace(&n, &pp, &s).await, n)
                }
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
        for (r, n) in results {
            match r {
                Ok(updated) => self.tracker.update(&updated),
                Err(e) => {
                    return Err(format!(
                        "failed to update {n} EndpointSlice for Service {ns}/{name}: {}",
                        api_message(&e)
                    ));
                }
            }
        }

        let results: Vec<_> = futures::stream::iter(plan.delete)
            .map(|s| {
                let api = api.clone();
                async move {
                    let n = s.metadata.name.clone().unwrap_or_default();
                    (api.delete(&n, &DeleteParams::default()).await, s)
                }
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
        for (r, s) in results {
            match r {
                Ok(_) => self.tracker.expect_deletion(&s),
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(format!(
                        "failed to delete {} EndpointSlice for Service {ns}/{name}: {}",
                        s.metadata.name.as_deref().unwrap_or(""),
                        api_message(&e)
                    ));
                }
            }
        }
        Ok(())
    }
}
