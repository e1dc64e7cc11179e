//! What the Endpoints and EndpointSlice controllers share (upstream `k8s.io/endpointslice/util`
//! and parts of `pkg/api/v1/pod`): which pods belong in endpoints, port lookup, the pods of a
//! service from the pod cache, the services of a pod, and the last-change trigger time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use informers::Informer;
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use parking_lot::Mutex;

use crate::util::{is_pod_ready, pod_condition, pod_phase};

/// Pod index: `namespace/key=value` for each label of the pod. Lets a service's pods be found
/// from its rarest selector pair instead of scanning the whole namespace.
pub const POD_LABEL_INDEX: &str = "r8s/podLabel";

/// Annotation: when the change that led to this Endpoints/EndpointSlice content happened
/// (upstream `v1.EndpointsLastChangeTriggerTime`).
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Label of Endpoints/EndpointSlices of headless services (upstream `v1.IsHeadlessService`).
pub const IS_HEADLESS_SERVICE: &str = "service.kubernetes.io/headless";

fn label_index_value(namespace: &str, key: &str, value: &str) -> String {
    format!("{namespace}/{key}={value}")
}

/// Adds [`POD_LABEL_INDEX`] to the pod informer (idempotent).
pub fn add_pod_label_index(pods: &Informer<Pod>) {
    pods.add_index(
        POD_LABEL_INDEX,
        Arc::new(|p: &Pod| {
            let ns = p.metadata.namespace.as_deref().unwrap_or("");
            p.metadata
                .labels
                .iter()
                .flatten()
                .map(|(k, v)| label_index_value(ns, k, v))
                .collect()
        }),
    );
}

/// The service's selector, if it selects pods: upstream treats a nil selector as "no
/// selector"; an empty map cannot survive the API round trip (omitempty), so it is none too.
pub fn service_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

/// Whether `labels` satisfy a map selector (every pair present).
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The pods of `namespace` selected by `selector`, looked up through the rarest selector pair
/// of [`POD_LABEL_INDEX`] (which must have been added).
pub fn selected_pods(
    pods: &Informer<Pod>,
    namespace: &str,
    selector: &BTreeMap<String, String>,
) -> Vec<Arc<Pod>> {
    let Some(rarest) = selector
        .iter()
        .map(|(k, v)| label_index_value(namespace, k, v))
        .min_by_key(|iv| pods.count_by_index(POD_LABEL_INDEX, iv))
    else {
        return Vec::new();
    };
    pods.by_index(POD_LABEL_INDEX, &rarest)
        .into_iter()
        .filter(|p| selector_matches(selector, p.metadata.labels.as_ref()))
        .collect()
}

/// Keys (`namespace/name`) of the services of `namespace` whose selector matches `labels`
/// (upstream `getServicesForPod`).
pub fn services_for_labels(
    services: &Informer<Service>,
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> BTreeSet<String> {
    services
        .list_namespace(namespace)
        .into_iter()
        .filter(|s| service_selector(s).is_some_and(|sel| selector_matches(sel, labels)))
        .map(|s| informers::key_of(s.as_ref()))
        .collect()
}

/// Keys of the services whose endpoints a pod event may change (upstream's pod handlers of
/// both endpoint controllers).
pub fn services_for_pod_event(
    services: &Informer<Service>,
    ev: &informers::Event<Pod>,
) -> BTreeSet<String> {
    match ev {
        informers::Event::Added(pod) | informers::Event::Deleted(pod) => services_for_labels(
            services,
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.labels.as_ref(),
        ),
        informers::Event::Updated(old, new) => services_to_update_on_pod_change(services, old, new),
    }
}

/// Whether the pod is Succeeded or Failed.
pub fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(pod_phase(pod), "Succeeded" | "Failed")
}

/// The pod's IPs: `status.podIPs`, or `status.podIP` alone when the list is empty (what the
/// API server's conversion does).
pub fn pod_ips(pod: &Pod) -> Vec<&str> {
    let Some(st) = pod.status.as_ref() else {
        return Vec::new();
    };
    let list: Vec<&str> = st
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .filter(|ip| !ip.is_empty())
        .collect();
    if !list.is_empty() {
        return list;
    }
    st.pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .into_iter()
        .collect()
}

/// Whether the string is an IPv6 address.
pub fn is_ipv6(ip: &str) -> bool {
    ip.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6())
}

/// Whether a pod belongs in Endpoints/EndpointSlices: not terminal, has an IP, and not being
/// deleted unless `include_terminating` (upstream `ShouldPodBeInEndpoints`).
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if is_pod_terminal(pod) || pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// Whether the endpoint gets the pod's hostname: the pod has one and its subdomain is the
/// service (upstream `ShouldSetHostname`).
pub fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let spec = pod.spec.as_ref();
    let hostname = spec.and_then(|s| s.hostname.as_deref()).unwrap_or("");
    let subdomain = spec.and_then(|s| s.subdomain.as_deref()).unwrap_or("");
    !hostname.is_empty()
        && subdomain == svc.metadata.name.as_deref().unwrap_or("")
        && svc.metadata.namespace == pod.metadata.namespace
}

/// The pod's hostname ("" if none).
pub fn pod_hostname(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.hostname.as_deref())
        .unwrap_or("")
}

/// Whether the service has a cluster IP (not headless; upstream `IsServiceIPSet`).
pub fn is_service_ip_set(svc: &Service) -> bool {
    let ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("");
    !ip.is_empty() && ip != "None"
}

/// The service's cluster IP ("" if none).
pub fn cluster_ip(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("")
}

/// The service's type ("ClusterIP" when unset).
pub fn service_type(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP")
}

fn protocol_or_tcp(p: Option<&str>) -> &str {
    p.filter(|p| !p.is_empty()).unwrap_or("TCP")
}

/// The protocol of a service port (TCP when unset, as the API server defaults it).
pub fn service_port_protocol(sp: &ServicePort) -> String {
    protocol_or_tcp(sp.protocol.as_deref()).to_string()
}

/// The container port a service port targets on this pod: a number as is; a name looked up
/// among the named ports (same protocol) of the containers, then of the restartable init
/// containers (sidecars). `None` if the pod has no such port (upstream `FindPort`).
pub fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    let target = sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port));
    match target {
        IntOrString::Int(n) => Some(n),
        IntOrString::String(name) => {
            let spec = pod.spec.as_ref()?;
            let proto = protocol_or_tcp(sp.protocol.as_deref());
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && protocol_or_tcp(p.protocol.as_deref()) == proto
                })
                .map(|p| p.container_port)
        }
    }
}

/// What a pod update means for endpoints (upstream `podEndpointsChanged`): whether the pod's
/// endpoint may have changed, and whether the services it matches may have changed.
pub fn pod_endpoints_changed(old: &Pod, new: &Pod) -> (bool, bool) {
    let spec_host = |p: &Pod| {
        let s = p.spec.as_ref();
        (
            s.and_then(|s| s.hostname.clone()).unwrap_or_default(),
            s.and_then(|s| s.subdomain.clone()).unwrap_or_default(),
        )
    };
    let labels_changed = old.metadata.labels.as_ref().filter(|l| !l.is_empty())
        != new.metadata.labels.as_ref().filter(|l| !l.is_empty())
        || spec_host(old) != spec_host(new);
    let pod_changed = old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
        || is_pod_ready(old) != is_pod_ready(new)
        || pod_ips(old) != pod_ips(new)
        // The node name is set before the pod has an IP upstream; the phase decides
        // terminal pods (upstream relies on the IPs being dropped).
        || crate::util::pod_node(old) != crate::util::pod_node(new)
        || is_pod_terminal(old) != is_pod_terminal(new);
    (pod_changed, labels_changed)
}

/// The services to sync after a pod update (upstream `GetPodUpdateProjectionKey` +
/// `GetServicesToUpdate`): none when nothing relevant changed; when the labels changed, the
/// union (pod changed too) or the symmetric difference of the old and new services.
pub fn services_to_update_on_pod_change(
    services: &Informer<Service>,
    old: &Pod,
    new: &Pod,
) -> BTreeSet<String> {
    if old.metadata.resource_version == new.metadata.resource_version {
        return BTreeSet::new();
    }
    let (pod_changed, labels_changed) = pod_endpoints_changed(old, new);
    if !pod_changed && !labels_changed {
        return BTreeSet::new();
    }
    let ns = new.metadata.namespace.as_deref().unwrap_or("");
    let cur = services_for_labels(services, ns, new.metadata.labels.as_ref());
    if !labels_changed {
        return cur;
    }
    let prev = services_for_labels(services, ns, old.metadata.labels.as_ref());
    if pod_changed {
        cur.union(&prev).cloned().collect()
    } else {
        cur.symmetric_difference(&prev).cloned().collect()
    }
}

#[derive(Default)]
struct ServiceState {
    pod_trigger_times: HashMap<String, Timestamp>,
    last_service_trigger_time: Option<Timestamp>,
}

/// Computes the `endpoints.kubernetes.io/last-change-trigger-time` of a sync (upstream
/// `TriggerTimeTracker`): the earliest pod Ready transition or service creation that is newer
/// than what the previous sync of the service saw.
#[derive(Default)]
pub struct TriggerTimeTracker {
    states: Mutex<HashMap<String, ServiceState>>,
}

impl TriggerTimeTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// The trigger time of this sync of service `key` over its selected `pods`, if any; records
    /// the state for the next sync.
    pub fn compute(&self, key: &str, svc: &Service, pods: &[Arc<Pod>]) -> Option<Timestamp> {
        let previous = self.states.lock().remove(key).unwrap_or_default();
        let mut state = ServiceState::default();
        let mut min: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| min = Some(min.map_or(t, |m| m.min(t)));
        for pod in pods {
            let Some(t) = pod_condition(pod, "Ready").and_then(|c| c.last_transition_time.as_ref())
            else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if previous
                .pod_trigger_times
                .get(&name)
                .is_none_or(|p| t.0 > *p)
            {
                consider(t.0);
            }
            state.pod_trigger_times.insert(name, t.0);
        }
        let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(c) = created
            && previous.last_service_trigger_time.is_none_or(|p| c > p)
        {
            consider(c);
        }
        state.last_service_trigger_time = created;
        self.states.lock().insert(key.to_string(), state);
        min
    }

    /// Forgets a deleted service.
    pub fn delete_service(&self, key: &str) {
        self.states.lock().remove(key);
    }
}

/// A timestamp as Go's `time.RFC3339Nano` in UTC (fraction without trailing zeros).
pub fn format_rfc3339_nano(t: Timestamp) -> String {
    let secs = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.subsec_nanosecond();
    if nanos == 0 {
        return format!("{secs}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{secs}.{}Z", frac.trim_end_matches('0'))
}

/// Splits `namespace/name`.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// A sync error of the Endpoints or EndpointSlice controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{}", api_message(.0))]
    Kube(#[from] kube::Error),
    /// The cache has not yet seen this controller's own last write.
    #[error("{0}")]
    Stale(String),
    /// Several steps failed (upstream `utilerrors.NewAggregate`).
    #[error("{}", aggregate_message(.0))]
    Aggregate(Vec<String>),
}

fn aggregate_message(errs: &[String]) -> String {
    match errs {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The message of an API error as client-go prints it (the Status message).
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

/// Whether the API answered 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

/// Whether a create failed because the namespace is being deleted (upstream
/// `HasStatusCause(err, NamespaceTerminatingCause)`).
pub fn is_namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, PodStatus};

    fn pod_with_ports(ports: &[(&str, i32, Option<&str>)]) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(
                        ports
                            .iter()
                            .map(|(n, p, proto)| ContainerPort {
                                name: Some((*n).into()),
                                container_port: *p,
                                protocol: proto.map(Into::into),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn find_port_resolves_numbers_and_names_by_protocol() {
        let pod = pod_with_ports(&[("http", 8080, None), ("dns", 53, Some("UDP"))]);
        let sp = |t: IntOrString, proto: Option<&str>| ServicePort {
            port: 80,
            target_port: Some(t),
            protocol: proto.map(Into::into),
            ..Default::default()
        };
        assert_eq!(
            find_port(&pod, &sp(IntOrString::Int(9000), None)),
            Some(9000)
        );
        assert_eq!(
            find_port(&pod, &sp(IntOrString::String("http".into()), Some("TCP"))),
            Some(8080)
        );
        assert_eq!(
            find_port(&pod, &sp(IntOrString::String("dns".into()), Some("TCP"))),
            None
        );
        assert_eq!(
            find_port(&pod, &sp(IntOrString::String("dns".into()), Some("UDP"))),
            Some(53)
        );
        assert_eq!(
            find_port(&pod, &sp(IntOrString::String("nope".into()), None)),
            None
        );
    }

    #[test]
    fn pods_without_ip_or_terminal_are_not_in_endpoints() {
        let mut pod = Pod::default();
        assert!(!should_pod_be_in_endpoints(&pod, true));
        pod.status = Some(PodStatus {
            pod_ip: Some("10.0.0.1".into()),
            phase: Some("Running".into()),
            ..Default::default()
        });
        assert!(should_pod_be_in_endpoints(&pod, false));
        pod.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
        );
        assert!(!should_pod_be_in_endpoints(&pod, false));
        assert!(should_pod_be_in_endpoints(&pod, true));
        if let Some(s) = pod.status.as_mut() {
            s.phase = Some("Succeeded".into());
        }
        assert!(!should_pod_be_in_endpoints(&pod, true));
    }

    #[test]
    fn rfc3339_nano_trims_the_fraction() {
        let t: Timestamp = "2024-05-01T10:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(format_rfc3339_nano(t), "2024-05-01T10:00:00Z");
        let t: Timestamp = "2024-05-01T10:00:00.120Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(format_rfc3339_nano(t), "2024-05-01T10:00:00.12Z");
    }
}
