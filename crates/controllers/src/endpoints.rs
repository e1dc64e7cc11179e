//! The Endpoints controller (upstream `pkg/controller/endpoint`, "endpoints-controller"): for
//! every Service with a selector, an Endpoints object of the same name listing the selected
//! pods that have an IP (ready ones as `addresses`, others as `notReadyAddresses` unless the
//! service publishes not-ready addresses), with the ports each pod offers, packed canonically.
//!
//! As upstream: pod events are mapped to the services selecting the pod (old and new labels);
//! work is coalesced per service in a queue; the Endpoints of a deleted service are deleted, and
//! leftovers without a service are found once at startup; Endpoints of services without a
//! selector are left alone; more than [`MAX_CAPACITY`] addresses are truncated and annotated.
//! Only content changes are written.

pub mod common;
pub mod repack;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use informers::workqueue::{Requeue, run_workers};
use informers::{Event, EventType, Informer, Recorder, WorkQueue, key_of};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use parking_lot::Mutex;

use crate::Context;
use crate::util::is_pod_ready;
use common::{
    Error, IS_HEADLESS_SERVICE, LAST_CHANGE_TRIGGER_TIME, TriggerTimeTracker, add_pod_label_index,
    cluster_ip, find_port, format_rfc3339_nano, is_ipv6, is_namespace_terminating, is_not_found,
    is_service_ip_set, pod_hostname, pod_ips, selected_pods, service_port_protocol,
    service_selector, service_type, services_for_pod_event, should_pod_be_in_endpoints,
    should_set_hostname, split_key,
};
use repack::repack_subsets;

/// The controller's name in kube-controller-manager.
pub const NAME: &str = "endpoints-controller";
/// The event source component (upstream "endpoint-controller").
pub const COMPONENT: &str = "endpoint-controller";
/// Concurrent syncs (kube-controller-manager `--concurrent-endpoint-syncs`).
pub const WORKERS: usize = 5;
/// Most addresses an Endpoints object holds (upstream `maxCapacity`).
pub const MAX_CAPACITY: usize = 1000;
/// Annotation set when addresses were truncated (upstream `v1.EndpointsOverCapacity`).
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Label marking Endpoints this controller manages (upstream `LabelManagedBy`).
pub const LABEL_MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
/// The value of [`LABEL_MANAGED_BY`] (upstream `ControllerName`).
pub const CONTROLLER_NAME: &str = "endpoint-controller";
/// Annotation of leader-election Endpoints, never deleted as leftovers.
const LEADER_ELECTION_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

struct Controller {
    client: kube::Client,
    pods: Informer<Pod>,
    services: Informer<Service>,
    endpoints: Informer<Endpoints>,
    queue: WorkQueue<String>,
    triggers: TriggerTimeTracker,
    /// Service key → resourceVersion of Endpoints this controller has since replaced: a cache
    /// still holding it is out of date (upstream `staleEndpointsTracker`).
    stale: Mutex<HashMap<String, String>>,
    recorder: Recorder,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let pods = ctx.factory.informer::<Pod>();
    let services = ctx.factory.informer::<Service>();
    let endpoints = ctx.factory.informer::<Endpoints>();
    add_pod_label_index(&pods);
    let c = Arc::new(Controller {
        recorder: Recorder::new(ctx.client.clone(), COMPONENT, None, ctx.shutdown.clone()),
        client: ctx.client.clone(),
        pods: pods.clone(),
        services: services.clone(),
        endpoints: endpoints.clone(),
        queue: WorkQueue::new(ctx.shutdown.clone()),
        triggers: TriggerTimeTracker::new(),
        stale: Mutex::new(HashMap::new()),
    });
    let mut svc_events = services.subscribe();
    let mut pod_events = pods.subscribe();
    let mut ep_events = endpoints.subscribe();
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
                ev = ep_events.recv() => match ev {
                    Some(Event::Deleted(ep)) => handler.queue.add(key_of(ep.as_ref())),
                    Some(_) => {}
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
            endpoints.wait_synced().await;
        } => {}
    }
    c.check_leftover_endpoints();
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

    /// Queues every Endpoints' service once, so Endpoints whose service is gone are deleted
    /// (upstream `checkLeftoverEndpoints`).
    fn check_leftover_endpoints(&self) {
        for ep in self.endpoints.list() {
            let leader = ep
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(LEADER_ELECTION_ANNOTATION));
            if !leader {
                self.queue.add(key_of(ep.as_ref()));
            }
        }
    }

    async fn sync(&self, key: &str) -> Result<Requeue, Error> {
        let (ns, name) = split_key(key);
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), ns);
        let Some(svc) = self.services.get_key(key) else {
            // The service is gone: so are its Endpoints.
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
            self.triggers.delete_service(key);
            self.stale.lock().remove(key);
            return Ok(Requeue::No);
        };
        if service_type(&svc) == "ExternalName" {
            return Ok(Requeue::No);
        }
        let Some(selector) = service_selector(&svc) else {
            // Endpoints of services without a selector are managed by someone else.
            return Ok(Requeue::No);
        };
        let pods = selected_pods(&self.pods, ns, selector);
        let trigger = self.triggers.compute(key, &svc, &pods);
        let subsets = desired_subsets(&svc, &pods);

        let current = self.endpoints.get_key(key);
        if let Some(cur) = &current {
            let rv = cur.metadata.resource_version.clone().unwrap_or_default();
            if self.stale.lock().get(key) == Some(&rv) {
                return Err(Error::Stale(format!(
                    "endpoints informer cache is out of date, resource version {rv} already processed for endpoints {key}"
                )));
            }
        }
        let mut new = match &current {
            Some(cur) => (**cur).clone(),
            None => Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(ns.to_string()),
                    ..Default::default()
                },
                subsets: None,
            },
        };
        let mut subsets = subsets;
        let truncated = truncate_endpoints(&mut subsets);
        let labels = endpoints_labels(&svc);
        if let Some(cur) = &current
            && subsets_equal_ignoring_rv(cur.subsets.as_deref().unwrap_or_default(), &subsets)
            && cur.metadata.labels.clone().unwrap_or_default() == labels
            && cur
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(OVER_CAPACITY))
                == truncated
        {
            return Ok(Requeue::No);
        }
        new.subsets = (!subsets.is_empty()).then_some(subsets);
        new.metadata.labels = Some(labels);
        let mut annotations = new.metadata.annotations.take().unwrap_or_default();
        match trigger {
            Some(t) => {
                annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), format_rfc3339_nano(t));
            }
            None => {
                annotations.remove(LAST_CHANGE_TRIGGER_TIME);
            }
        }
        if truncated {
            annotations.insert(OVER_CAPACITY.into(), "truncated".into());
        } else {
            annotations.remove(OVER_CAPACITY);
        }
        new.metadata.annotations = (!annotations.is_empty()).then_some(annotations);

        let pp = PostParams {
            field_manager: Some(NAME.into()),
            ..Default::default()
        };
        match &current {
            None => match api.create(&pp, &new).await {
                Ok(_) => {}
                Err(e) if is_namespace_terminating(&e) => return Ok(Requeue::No),
                Err(e) => {
                    self.recorder.event(
                        &new,
                        EventType::Warning,
                        "FailedToCreateEndpoint",
                        format!(
                            "Failed to create endpoint for service {ns}/{name}: {}",
                            common::api_message(&e)
                        ),
                    );
                    return Err(e.into());
                }
            },
            Some(cur) => match api.replace(name, &pp, &new).await {
                Ok(updated) => {
                    if updated.metadata.resource_version != cur.metadata.resource_version {
                        self.stale.lock().insert(
                            key.to_string(),
                            cur.metadata.resource_version.clone().unwrap_or_default(),
                        );
                    }
                }
                Err(e) => {
                    self.recorder.event(
                        &new,
                        EventType::Warning,
                        "FailedToUpdateEndpoint",
                        format!(
                            "Failed to update endpoint {ns}/{name}: {}",
                            common::api_message(&e)
                        ),
                    );
                    return Err(e.into());
                }
            },
        }
        Ok(Requeue::No)
    }
}

/// The labels of a service's Endpoints: the service's, plus the headless label for services
/// without a cluster IP, plus [`LABEL_MANAGED_BY`].
pub fn endpoints_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if is_service_ip_set(svc) {
        labels.remove(IS_HEADLESS_SERVICE);
    } else {
        labels.insert(IS_HEADLESS_SERVICE.into(), String::new());
    }
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

/// The address of a pod in a service's Endpoints: the pod IP of the service's (first) IP
/// family (upstream `podToEndpointAddressForService`).
pub fn pod_to_endpoint_address(svc: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let ips = pod_ips(pod);
    let families = svc.spec.as_ref().and_then(|s| s.ip_families.as_ref());
    let want_v6 = match families.and_then(|f| f.first()) {
        Some(f) => f == "IPv6",
        None if is_service_ip_set(svc) => is_ipv6(cluster_ip(svc)),
        None => ips.first().is_some_and(|ip| is_ipv6(ip)),
    };
    let ip = ips.into_iter().find(|ip| is_ipv6(ip) == want_v6)?;
    Some(EndpointAddress {
        ip: ip.to_string(),
        hostname: None,
        node_name: Some(crate::util::pod_node(pod).to_string()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
    })
}

/// The packed subsets of a service over its selected pods.
pub fn desired_subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    let mut subsets = Vec::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(mut epa) = pod_to_endpoint_address(svc, pod) else {
            continue;
        };
        if should_set_hostname(pod, svc) {
            epa.hostname = Some(pod_hostname(pod).to_string());
        }
        let ready = publish || is_pod_ready(pod);
        let subset = |epa: EndpointAddress, port: Option<EndpointPort>| EndpointSubset {
            addresses: ready.then(|| vec![epa.clone()]),
            not_ready_addresses: (!ready).then(|| vec![epa]),
            ports: port.map(|p| vec![p]),
        };
        if ports.is_empty() {
            // Headless services may have no ports.
            if cluster_ip(svc) == "None" {
                subsets.push(subset(epa, None));
            }
            continue;
        }
        for sp in ports {
            let Some(n) = find_port(pod, sp) else {
                continue;
            };
            let port = EndpointPort {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port: n,
                protocol: Some(service_port_protocol(sp)),
                app_protocol: sp.app_protocol.clone(),
            };
            subsets.push(subset(epa.clone(), Some(port)));
        }
    }
    repack_subsets(&subsets)
}

fn without_rv(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let mut v = subsets.to_vec();
    for s in &mut v {
        for a in s
            .addresses
            .iter_mut()
            .flatten()
            .chain(s.not_ready_addresses.iter_mut().flatten())
        {
            if let Some(r) = a.target_ref.as_mut() {
                r.resource_version = None;
            }
        }
    }
    v
}

/// Subsets equality ignoring the target references' resourceVersions (upstream
/// `endpointSubsetsEqualIgnoreResourceVersion`).
pub fn subsets_equal_ignoring_rv(a: &[EndpointSubset], b: &[EndpointSubset]) -> bool {
    a.len() == b.len() && (a == b || without_rv(a) == without_rv(b))
}

/// Truncates the subsets to [`MAX_CAPACITY`] addresses, ready ones first, each subset keeping
/// its share (rounded up); whether it truncated (upstream `truncateEndpoints`).
pub fn truncate_endpoints(subsets: &mut [EndpointSubset]) -> bool {
    let len = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let total_ready: usize = subsets.iter().map(|s| len(&s.addresses)).sum();
    let total_not_ready: usize = subsets.iter().map(|s| len(&s.not_ready_addresses)).sum();
    if total_ready + total_not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = total_ready > MAX_CAPACITY;
    let (max, num_total) = if truncate_ready {
        (MAX_CAPACITY, total_ready)
    } else {
        (MAX_CAPACITY - total_ready, total_not_ready)
    };
    let mut can_be_added = max;
    for s in subsets.iter_mut() {
        let in_subset = if truncate_ready {
            len(&s.addresses)
        } else {
            len(&s.not_ready_addresses)
        };
        // As upstream, in floating point: ceil(in_subset / num_total * max).
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let share = ((in_subset as f64 / num_total as f64) * max as f64).ceil() as usize;
        let to_be_added = share.min(can_be_added);
        if truncate_ready {
            if let Some(a) = s.addresses.as_mut() {
                a.truncate(to_be_added);
            }
            s.not_ready_addresses = None;
            can_be_added -= len(&s.addresses);
        } else {
            if let Some(a) = s.not_ready_addresses.as_mut() {
                a.truncate(to_be_added);
            }
            can_be_added -= len(&s.not_ready_addresses);
        }
        if s.addresses.as_ref().is_some_and(Vec::is_empty) {
            s.addresses = None;
        }
        if s.not_ready_addresses.as_ref().is_some_and(Vec::is_empty) {
            s.not_ready_addresses = None;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize, base: usize) -> Option<Vec<EndpointAddress>> {
        Some(
            (0..n)
                .map(|i| EndpointAddress {
                    ip: format!("10.{}.{}.{}", base, i / 256, i % 256),
                    ..Default::default()
                })
                .collect(),
        )
    }

    #[test]
    fn truncation_keeps_ready_first_and_proportions() {
        let mut s = vec![
            EndpointSubset {
                addresses: addrs(600, 1),
                not_ready_addresses: addrs(100, 2),
                ports: None,
            },
            EndpointSubset {
                addresses: addrs(300, 3),
                not_ready_addresses: addrs(300, 4),
                ports: None,
            },
        ];
        assert!(truncate_endpoints(&mut s));
        let count = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
        // 900 ready stay; 100 not-ready slots split 100:300 → 25 and 75.
        assert_eq!(count(&s[0].addresses), 600);
        assert_eq!(count(&s[1].addresses), 300);
        assert_eq!(count(&s[0].not_ready_addresses), 25);
        assert_eq!(count(&s[1].not_ready_addresses), 75);

        let mut s = vec![EndpointSubset {
            addresses: addrs(1500, 1),
            not_ready_addresses: addrs(10, 2),
            ports: None,
        }];
        assert!(truncate_endpoints(&mut s));
        assert_eq!(count(&s[0].addresses), 1000);
        assert_eq!(count(&s[0].not_ready_addresses), 0);

        let mut s = vec![EndpointSubset {
            addresses: addrs(1000, 1),
            not_ready_addresses: None,
            ports: None,
        }];
        assert!(!truncate_endpoints(&mut s));
    }
}
