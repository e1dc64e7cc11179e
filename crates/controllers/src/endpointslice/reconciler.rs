//! The EndpointSlice reconciler (upstream `k8s.io/endpointslice` `Reconciler`), as a pure
//! function from a service, its pods and its existing slices to the slices to create, update
//! and delete. Like upstream it keeps endpoints in the slice they are already in, fills slices
//! that change anyway before touching unchanged ones, packs leftovers into the unchanged slice
//! closest to full, creates slices only for the rest, turns deletions plus creations into
//! updates, and keeps one empty placeholder slice for a service without endpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;

use crate::endpoints::common::{
    IS_HEADLESS_SERVICE, cluster_ip, find_port, is_ipv6, is_service_ip_set, pod_hostname, pod_ips,
    service_port_protocol, should_pod_be_in_endpoints, should_set_hostname,
};
use crate::util::is_pod_ready;

/// Label naming the service of a slice (upstream `discovery.LabelServiceName`).
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Label naming the manager of a slice (upstream `discovery.LabelManagedBy`).
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// Node label of the zone (upstream `v1.LabelTopologyZone`).
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";

/// What a sync must write.
#[derive(Debug, Default)]
pub struct Plan {
    /// New slices (generateName set).
    pub create: Vec<EndpointSlice>,
    /// Changed slices (name and resourceVersion of the existing one).
    pub update: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<Arc<EndpointSlice>>,
    /// Problems that do not stop the sync but make it retry (upstream: pods on unknown nodes).
    pub errors: Vec<String>,
}

/// The address types of a service's slices: from `spec.ipFamilies`; without them (an API
/// server that does not set them), the family of the cluster IP, and IPv4 for a headless
/// service (what the API server of a single-stack IPv4 cluster would have set).
pub fn address_types(svc: &Service) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for f in svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
    {
        match f.as_str() {
            "IPv4" | "IPv6" => {
                set.insert(f.clone());
            }
            _ => {}
        }
    }
    if set.is_empty() {
        let v6 = is_service_ip_set(svc) && is_ipv6(cluster_ip(svc));
        set.insert(if v6 { "IPv6" } else { "IPv4" }.to_string());
    }
    set
}

/// The comparable form of a port list (upstream `PortMapKey`, a hash of the sorted ports).
type PortMapKey = Vec<(String, i32, String, String)>;

fn port_map_key(ports: &[EndpointPort]) -> PortMapKey {
    let mut k: PortMapKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    k.sort();
    k
}

/// The identity of an endpoint (upstream `hashEndpoint`): addresses, hostname, target.
type EndpointKey = (Vec<String>, String, String, String);

fn endpoint_key(ep: &Endpoint) -> EndpointKey {
    let mut addrs = ep.addresses.clone();
    addrs.sort();
    let (ns, name) = ep
        .target_ref
        .as_ref()
        .map_or((String::new(), String::new()), |r| {
            (
                r.namespace.clone().unwrap_or_default(),
                r.name.clone().unwrap_or_default(),
            )
        });
    (addrs, ep.hostname.clone().unwrap_or_default(), ns, name)
}

fn target_without_rv(r: Option<&ObjectReference>) -> Option<ObjectReference> {
    r.map(|r| ObjectReference {
        resource_version: None,
        ..r.clone()
    })
}

/// Whether two endpoints of the same identity are equal in what the identity leaves out
/// (upstream `EndpointsEqualBeyondHash`).
pub fn endpoints_equal_beyond_hash(a: &Endpoint, b: &Endpoint) -> bool {
    let cond = |e: &Endpoint| {
        let c = e.conditions.clone().unwrap_or_default();
        (c.ready, c.serving, c.terminating)
    };
    a.node_name == b.node_name
        && a.zone == b.zone
        && cond(a) == cond(b)
        && target_without_rv(a.target_ref.as_ref()) == target_without_rv(b.target_ref.as_ref())
}

/// The ports a pod offers for a service (upstream `getEndpointPorts`).
pub fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    if ports.is_empty() && cluster_ip(svc) == "None" {
        return Vec::new();
    }
    ports
        .iter()
        .filter_map(|sp| {
            let n = find_port(pod, sp)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(n),
                protocol: Some(service_port_protocol(sp)),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// The endpoint of a pod for a service and address type (upstream `podToEndpoint`).
pub fn pod_to_endpoint(
    pod: &Pod,
    node: Option<&Node>,
    svc: &Service,
    address_type: &str,
) -> Endpoint {
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let ready = publish || (serving && !terminating);
    let want_v6 = address_type == "IPv6";
    let addresses = pod_ips(pod)
        .into_iter()
        .filter_map(|ip| ip.parse::<std::net::IpAddr>().ok())
        .filter(|ip| ip.is_ipv6() == want_v6)
        .map(|ip| ip.to_string())
        .collect();
    let node_name = crate::util::pod_node(pod);
    let zone = node
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(LABEL_TOPOLOGY_ZONE))
        .filter(|z| !z.is_empty())
        .cloned();
    Endpoint {
        addresses,
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        node_name: (!node_name.is_empty()).then(|| node_name.to_string()),
        zone,
        hostname: should_set_hostname(pod, svc).then(|| pod_hostname(pod).to_string()),
        ..Default::default()
    }
}

fn is_reserved_label(k: &str) -> bool {
    k == LABEL_SERVICE_NAME || k == LABEL_MANAGED_BY || k == IS_HEADLESS_SERVICE
}

/// The labels a slice of `svc` must have, and whether the slice's non-reserved labels differ
/// from the service's (upstream `setEndpointSliceLabels`).
pub fn slice_labels(
    current: Option<&BTreeMap<String, String>>,
    svc: &Service,
    controller_name: &str,
) -> (BTreeMap<String, String>, bool) {
    let cur: BTreeMap<&String, &String> = current
        .into_iter()
        .flatten()
        .filter(|(k, _)| !is_reserved_label(k))
        .collect();
    let mut labels: BTreeMap<String, String> = svc
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| !is_reserved_label(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let changed =
        cur.len() != labels.len() || cur.iter().any(|(k, v)| labels.get(k.as_str()) != Some(*v));
    if !is_service_ip_set(svc) {
        labels.insert(IS_HEADLESS_SERVICE.into(), String::new());
    }
    labels.insert(
        LABEL_SERVICE_NAME.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_MANAGED_BY.into(), controller_name.into());
    (labels, changed)
}

/// The controller reference of a slice to its service.
pub fn service_owner_ref(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether the slice is owned by this service (same UID).
pub fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    let uid = svc.metadata.uid.as_deref().unwrap_or("");
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.kind == "Service" && o.api_version == "v1")
}

/// A new, empty slice of the service (upstream `newEndpointSlice`).
pub fn new_endpoint_slice(
    svc: &Service,
    ports: Vec<EndpointPort>,
    address_type: &str,
    controller_name: &str,
) -> EndpointSlice {
    let (labels, _) = slice_labels(None, svc, controller_name);
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                svc.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![service_owner_ref(svc)]),
            ..Default::default()
        },
        address_type: address_type.to_string(),
        endpoints: Vec::new(),
        ports: Some(ports),
    }
}

/// The slice the remaining `n` endpoints fit in best, if any (upstream `getSliceToFill`).
fn slice_to_fill<'a>(
    candidates: impl Iterator<Item = &'a EndpointSlice>,
    n: usize,
    max: usize,
) -> Option<String> {
    let mut closest_diff = max;
    let mut closest = None;
    for s in candidates {
        let Some(diff) = max.checked_sub(n + s.endpoints.len()) else {
            continue;
        };
        if diff < closest_diff {
            closest_diff = diff;
            closest = s.metadata.name.clone();
            if diff == 0 {
                break;
            }
        }
    }
    closest
}

struct PortMapping {
    create: Vec<EndpointSlice>,
    update: Vec<EndpointSlice>,
    delete: Vec<Arc<EndpointSlice>>,
}

/// Upstream `reconcileByPortMapping`.
fn reconcile_by_port_mapping(
    svc: &Service,
    existing: &[Arc<EndpointSlice>],
    mut desired: BTreeMap<EndpointKey, Endpoint>,
    ports: &[EndpointPort],
    address_type: &str,
    max: usize,
    controller_name: &str,
) -> PortMapping {
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut to_update: BTreeSet<String> = BTreeSet::new();
    let mut delete = Vec::new();

    // 1. Keep desired endpoints where they are; drop the others.
    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let mut kept = Vec::with_capacity(slice.endpoints.len());
        let mut updated = false;
        for ep in &slice.endpoints {
            if let Some(want) = desired.remove(&endpoint_key(ep)) {
                if !endpoints_equal_beyond_hash(&want, ep) {
                    updated = true;
                }
                kept.push(want);
            }
        }
        let (labels, labels_changed) =
            slice_labels(slice.metadata.labels.as_ref(), svc, controller_name);
        if updated || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                delete.push(slice.clone());
            } else {
                let mut s = (**slice).clone();
                s.endpoints = kept;
                s.metadata.labels = Some(labels);
                by_name.insert(name.clone(), s);
                to_update.insert(name);
            }
        } else if labels_changed {
            let mut s = (**slice).clone();
            s.metadata.labels = Some(labels);
            by_name.insert(name.clone(), s);
            to_update.insert(name);
        } else {
            by_name.insert(name.clone(), (**slice).clone());
            unchanged.insert(name);
        }
    }

    // 2. Fill the slices changing anyway, fullest first.
    if !desired.is_empty() && !to_update.is_empty() {
        let mut names: Vec<String> = to_update.iter().cloned().collect();
        names.sort_by_key(|n| std::cmp::Reverse(by_name.get(n).map_or(0, |s| s.endpoints.len())));
        for n in names {
            let Some(s) = by_name.get_mut(&n) else {
                continue;
            };
            while s.endpoints.len() < max {
                let Some((_, ep)) = desired.pop_first() else {
                    break;
                };
                s.endpoints.push(ep);
            }
        }
    }

    // 3. The rest: into the unchanged slice that ends closest to full, else new slices.
    let mut create = Vec::new();
    while !desired.is_empty() {
        let mut target: Option<String> = None;
        if desired.len() < max && !unchanged.is_empty() {
            target = slice_to_fill(
                unchanged.iter().filter_map(|n| by_name.get(n)),
                desired.len(),
                max,
            );
        }
        let mut slice = match &target {
            Some(n) => by_name.remove(n).expect("an unchanged slice is in by_name"),
            None => new_endpoint_slice(svc, ports.to_vec(), address_type, controller_name),
        };
        while slice.endpoints.len() < max {
            let Some((_, ep)) = desired.pop_first() else {
                break;
            };
            slice.endpoints.push(ep);
        }
        match target {
            Some(n) => {
                unchanged.remove(&n);
                to_update.insert(n.clone());
                by_name.insert(n, slice);
            }
            None => create.push(slice),
        }
    }

    let update = to_update.iter().filter_map(|n| by_name.remove(n)).collect();
    PortMapping {
        create,
        update,
        delete,
    }
}

/// Whether `slice` is an equivalent of the placeholder (upstream `placeholderSliceCompare`:
/// namespace, labels, owner references, address type, no endpoints, no ports).
fn is_placeholder_like(slice: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    slice.metadata.namespace == placeholder.metadata.namespace
        && slice.metadata.labels.clone().unwrap_or_default()
            == placeholder.metadata.labels.clone().unwrap_or_default()
        && slice.metadata.owner_references.clone().unwrap_or_default()
            == placeholder
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default()
        && slice.address_type == placeholder.address_type
        && slice.endpoints.is_empty()
        && slice.ports.as_ref().is_none_or(Vec::is_empty)
}

/// Upstream `reconcileByAddressType` (without topology hints: hints are removed).
#[allow(clippy::too_many_arguments)]
fn reconcile_by_address_type(
    plan: &mut Plan,
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: &[Arc<EndpointSlice>],
    address_type: &str,
    node_of: &dyn Fn(&str) -> Option<Arc<Node>>,
    max: usize,
    controller_name: &str,
) {
    let mut create = Vec::new();
    let mut update = Vec::new();
    let mut delete = Vec::new();

    let mut existing_by_ports: BTreeMap<PortMapKey, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for s in existing {
        if owned_by(s, svc) {
            existing_by_ports
                .entry(port_map_key(s.ports.as_deref().unwrap_or_default()))
                .or_default()
                .push(s.clone());
        } else {
            delete.push(s.clone());
        }
    }

    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut desired: BTreeMap<PortMapKey, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)> =
        BTreeMap::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let key = port_map_key(&ports);
        let node_name = crate::util::pod_node(pod);
        let node = node_of(node_name);
        if node.is_none() && !publish {
            plan.errors.push(format!(
                "skipping Pod {} for Service {}/{}: Node {} Not Found",
                pod.metadata.name.as_deref().unwrap_or(""),
                svc.metadata.namespace.as_deref().unwrap_or(""),
                svc.metadata.name.as_deref().unwrap_or(""),
                node_name
            ));
            continue;
        }
        let entry = desired
            .entry(key)
            .or_insert_with(|| (ports, BTreeMap::new()));
        let ep = pod_to_endpoint(pod, node.as_deref(), svc, address_type);
        if !ep.addresses.is_empty() {
            entry.1.insert(endpoint_key(&ep), ep);
        }
    }

    for (key, (ports, eps)) in &desired {
        let pm = reconcile_by_port_mapping(
            svc,
            existing_by_ports.get(key).map_or(&[][..], Vec::as_slice),
            eps.clone(),
            ports,
            address_type,
            max,
            controller_name,
        );
        create.extend(pm.create);
        update.extend(pm.update);
        delete.extend(pm.delete);
    }
    for (key, slices) in &existing_by_ports {
        if !desired.contains_key(key) {
            delete.extend(slices.iter().cloned());
        }
    }

    // A service without endpoints keeps one empty placeholder slice.
    if existing.len() == delete.len() && create.is_empty() {
        let placeholder = new_endpoint_slice(svc, Vec::new(), address_type, controller_name);
        if delete.len() == 1 && is_placeholder_like(&delete[0], &placeholder) {
            delete.clear();
        } else {
            create.push(placeholder);
        }
    }

    // No topology hints: remove any left in slices that would otherwise stay unchanged.
    let changed: BTreeSet<Option<String>> = update
        .iter()
        .map(|s: &EndpointSlice| s.metadata.name.clone())
        .chain(delete.iter().map(|s| s.metadata.name.clone()))
        .collect();
    for s in existing {
        if !changed.contains(&s.metadata.name) && s.endpoints.iter().any(|e| e.hints.is_some()) {
            let mut s = (**s).clone();
            for e in &mut s.endpoints {
                e.hints = None;
            }
            update.push(s);
        }
    }

    plan.create.extend(create);
    plan.update.extend(update);
    plan.delete.extend(delete);
}

/// Upstream `Reconcile` + the create-to-update conversion of `finalize`: the writes that make
/// the service's slices (`existing`, excluding slices being deleted) match its `pods`.
pub fn reconcile(
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: &[Arc<EndpointSlice>],
    node_of: &dyn Fn(&str) -> Option<Arc<Node>>,
    max: usize,
    controller_name: &str,
) -> Plan {
    let mut plan = Plan::default();
    let supported = address_types(svc);
    let mut by_type: BTreeMap<String, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    let mut unsupported = Vec::new();
    for s in existing {
        if supported.contains(&s.address_type) {
            by_type
                .entry(s.address_type.clone())
                .or_default()
                .push(s.clone());
        } else {
            unsupported.push(s.clone());
        }
    }
    for t in &supported {
        reconcile_by_address_type(
            &mut plan,
            svc,
            pods,
            by_type.get(t).map_or(&[][..], Vec::as_slice),
            t,
            node_of,
            max,
            controller_name,
        );
    }
    // Creations become updates of slices that would be deleted (same type, owned).
    let mut i = 0;
    while i < plan.delete.len() && !plan.create.is_empty() {
        let old = &plan.delete[i];
        let Some(new) = plan.create.last() else {
            break;
        };
        if old.address_type == new.address_type && owned_by(old, svc) {
            let mut new = plan.create.pop().expect("checked non-empty");
            let old = plan.delete.remove(i);
            new.metadata.name = old.metadata.name.clone();
            new.metadata.generate_name = old.metadata.generate_name.clone();
            new.metadata.resource_version = old.metadata.resource_version.clone();
            new.metadata.uid = old.metadata.uid.clone();
            plan.update.push(new);
        } else {
            i += 1;
        }
    }
    plan.delete.extend(unsupported);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodIP, PodSpec, PodStatus, ServicePort, ServiceSpec};

    fn svc() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("t".into()),
                uid: Some("svc-uid".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.0.10".into()),
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(vec![ServicePort {
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(i: usize) -> Arc<Pod> {
        let ip = format!("10.1.{}.{}", i / 250, i % 250 + 1);
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(format!("p{i}")),
                namespace: Some("t".into()),
                uid: Some(format!("uid{i}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some(ip.clone()),
                pod_ips: Some(vec![PodIP { ip }]),
                ..Default::default()
            }),
        })
    }

    fn node(_: &str) -> Option<Arc<Node>> {
        Some(Arc::new(Node::default()))
    }

    /// Applies a plan as the API server would (names for creations).
    fn apply(existing: &[Arc<EndpointSlice>], plan: Plan) -> Vec<Arc<EndpointSlice>> {
        let mut out: BTreeMap<String, EndpointSlice> = existing
            .iter()
            .map(|s| (s.metadata.name.clone().unwrap_or_default(), (**s).clone()))
            .collect();
        for d in &plan.delete {
            out.remove(d.metadata.name.as_deref().unwrap_or(""));
        }
        for u in plan.update {
            out.insert(u.metadata.name.clone().unwrap_or_default(), u);
        }
        for (i, mut c) in plan.create.into_iter().enumerate() {
            let name = format!("web-new{}-{i}", out.len());
            c.metadata.name = Some(name.clone());
            out.insert(name, c);
        }
        out.into_values().map(Arc::new).collect()
    }

    #[test]
    fn packs_at_most_max_and_keeps_endpoints_in_place() {
        let s = svc();
        let pods: Vec<_> = (0..250).map(pod).collect();
        let plan = reconcile(&s, &pods, &[], &node, 100, "c");
        assert_eq!(plan.create.len(), 3);
        assert!(plan.update.is_empty() && plan.delete.is_empty());
        let slices = apply(&[], plan);
        let sizes: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 250);
        assert!(sizes.iter().all(|n| *n <= 100));

        // Nothing changed: nothing to write.
        let plan = reconcile(&s, &pods, &slices, &node, 100, "c");
        assert!(plan.create.is_empty() && plan.update.is_empty() && plan.delete.is_empty());

        // Ten new pods go into the unchanged slice closest to full (the one of 50).
        let more: Vec<_> = (0..260).map(pod).collect();
        let plan = reconcile(&s, &more, &slices, &node, 100, "c");
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].endpoints.len(), 60);

        // All pods gone: one slice becomes the placeholder, the others are deleted.
        let plan = reconcile(&s, &[], &slices, &node, 100, "c");
        assert!(plan.create.is_empty());
        assert_eq!(plan.delete.len(), 2);
        assert_eq!(plan.update.len(), 1);
        assert!(plan.update[0].endpoints.is_empty());
        let left = apply(&slices, plan);
        assert_eq!(left.len(), 1);
        // The placeholder stays as it is.
        let plan = reconcile(&s, &[], &left, &node, 100, "c");
        assert!(plan.create.is_empty() && plan.update.is_empty() && plan.delete.is_empty());
    }

    #[test]
    fn pods_on_unknown_nodes_are_skipped_with_an_error() {
        let s = svc();
        let plan = reconcile(&s, &[pod(1)], &[], &|_: &str| None, 100, "c");
        assert_eq!(plan.errors.len(), 1);
        assert_eq!(plan.create.len(), 1);
        assert!(plan.create[0].endpoints.is_empty());
    }
}
