//! The Node object of a simulated node, as the kubelet registers it and reports its status
//! (`pkg/kubelet/kubelet_node_status.go`, `pkg/kubelet/nodestatus/setters.go`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeFeatures,
    NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;

use crate::Config;

/// The kubelet version simulated nodes report.
pub const KUBELET_VERSION: &str = "v1.35.0";
/// The container runtime version simulated nodes report.
pub const CONTAINER_RUNTIME_VERSION: &str = "sim://1.0";
/// The annotation that stops a simulated node (`sim.r8s.io/heartbeat=stopped`).
pub const HEARTBEAT_ANNOTATION: &str = "sim.r8s.io/heartbeat";
/// The value of [`HEARTBEAT_ANNOTATION`] that stops a node.
pub const HEARTBEAT_STOPPED: &str = "stopped";

/// The kubelet's port (`daemonEndpoints.kubeletEndpoint.Port`).
const KUBELET_PORT: i32 = 10250;
/// Ephemeral storage capacity of a simulated node.
const EPHEMERAL_STORAGE: &str = "100Gi";

/// The node conditions the kubelet owns, in the order it reports them, with the status,
/// reason and message of a healthy node (`nodestatus.MemoryPressureCondition`, ...).
pub const HEALTHY_CONDITIONS: [(&str, &str, &str, &str); 4] = [
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    (
        "DiskPressure",
        "False",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
    ),
    (
        "PIDPressure",
        "False",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
    ),
    (
        "Ready",
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
    ),
];

/// The name of simulated node `index`: the prefix and the index on 4 digits or more.
pub fn node_name(prefix: &str, index: usize) -> String {
    format!("{prefix}{index:04}")
}

/// The fake InternalIP of simulated node `index`: 10.200.0.1, 10.200.0.2, ... in order.
pub fn internal_ip(index: usize) -> Ipv4Addr {
    let base = u32::from(Ipv4Addr::new(10, 200, 0, 0));
    Ipv4Addr::from(base.wrapping_add(index as u32).wrapping_add(1))
}

/// The labels the kubelet sets on its node, then the configured ones.
pub fn node_labels(config: &Config, name: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
    ]);
    labels.extend(config.labels.clone());
    labels
}

/// A stable pseudo-random 32-hex-digit id derived from a node name (machineID, systemUUID).
fn fake_id(name: &str, salt: u64) -> String {
    // FNV-1a, twice with different seeds: deterministic, no dependency.
    let hash = |seed: u64| {
        name.bytes().fold(seed ^ salt, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "{:016x}{:016x}",
        hash(0xcbf2_9ce4_8422_2325),
        hash(0x8422_2325_cbf2_9ce4)
    )
}

fn uuid_form(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The resources of a simulated node (capacity; allocatable is the same, as nothing is
/// reserved for system daemons on a simulated node).
pub fn resources(config: &Config) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(config.cpu.clone())),
        (
            "ephemeral-storage".to_string(),
            Quantity(EPHEMERAL_STORAGE.to_string()),
        ),
        ("hugepages-1Gi".to_string(), Quantity("0".to_string())),
        ("hugepages-2Mi".to_string(), Quantity("0".to_string())),
        ("memory".to_string(), Quantity(config.memory.clone())),
        ("pods".to_string(), Quantity(config.pods.to_string())),
    ])
}

/// The healthy conditions at `now`, keeping each current transition time when the status of
/// the condition does not change (`nodestatus` setters).
pub fn conditions(current: Option<&[NodeCondition]>, now: Timestamp) -> Vec<NodeCondition> {
    HEALTHY_CONDITIONS
        .iter()
        .map(|(type_, status, reason, message)| {
            let transition = current
                .and_then(|cs| cs.iter().find(|c| c.type_ == *type_))
                .filter(|c| c.status == *status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            NodeCondition {
                type_: (*type_).to_string(),
                status: (*status).to_string(),
                reason: Some((*reason).to_string()),
                message: Some((*message).to_string()),
                last_heartbeat_time: Some(Time(now)),
                last_transition_time: Some(transition),
            }
        })
        .collect()
}

/// Whether the kubelet-owned conditions of a node are those of a healthy node (ignoring
/// times), i.e. whether a status report would change nothing but heartbeat times.
pub fn is_healthy(node: &Node) -> bool {
    let Some(conds) = node.status.as_ref().and_then(|s| s.conditions.as_ref()) else {
        return false;
    };
    HEALTHY_CONDITIONS.iter().all(|(type_, status, reason, _)| {
        conds.iter().any(|c| {
            c.type_ == *type_ && c.status == *status && c.reason.as_deref() == Some(reason)
        })
    })
}

/// The whole status of a healthy simulated node at `now`.
pub fn status(
    config: &Config,
    name: &str,
    ip: Ipv4Addr,
    current: Option<&[NodeCondition]>,
    now: Timestamp,
) -> NodeStatus {
    let machine = fake_id(name, 1);
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_string(),
                address: ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".to_string(),
                address: name.to_string(),
            },
        ]),
        allocatable: Some(resources(config)),
        capacity: Some(resources(config)),
        conditions: Some(conditions(current, now)),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: KUBELET_PORT }),
        }),
        features: Some(NodeFeatures {
            supplemental_groups_policy: Some(true),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".to_string(),
            boot_id: uuid_form(&fake_id(name, 3)),
            container_runtime_version: CONTAINER_RUNTIME_VERSION.to_string(),
            kernel_version: "6.8.0-sim".to_string(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.to_string(),
            machine_id: machine,
            operating_system: "linux".to_string(),
            os_image: "r8s simulated node".to_string(),
            system_uuid: uuid_form(&fake_id(name, 2)),
            swap: None,
        }),
        ..Default::default()
    }
}

/// The Node a simulated node registers (with its initial status, as the kubelet does).
pub fn initial_node(config: &Config, name: &str, ip: Ipv4Addr, now: Timestamp) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(node_labels(config, name)),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        spec: None,
        status: Some(status(config, name, ip, None, now)),
    }
}

/// Whether a node carries the annotation that stops it.
pub fn is_stopped_by_annotation(node: &Node) -> bool {
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(HEARTBEAT_ANNOTATION))
        .is_some_and(|v| v == HEARTBEAT_STOPPED)
}

/// The pod CIDR of a node (`spec.podCIDR`), if set and IPv4.
pub fn pod_cidr(node: &Node) -> Option<(Ipv4Addr, u8)> {
    let cidr = node.spec.as_ref()?.pod_cidr.as_deref()?;
    parse_cidr(cidr)
}

/// Parses an IPv4 CIDR `a.b.c.d/n`.
pub fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some((ip, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ips_follow_the_index() {
        assert_eq!(node_name("sim-", 1), "sim-0001");
        assert_eq!(node_name("sim-", 12345), "sim-12345");
        assert_eq!(internal_ip(0), Ipv4Addr::new(10, 200, 0, 1));
        assert_eq!(internal_ip(255), Ipv4Addr::new(10, 200, 1, 0));
    }

    #[test]
    fn conditions_keep_transition_times_of_unchanged_statuses() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let mut first = conditions(None, t0);
        // Someone (the node lifecycle controller) marked Ready Unknown.
        first[3].status = "Unknown".into();
        let next = conditions(Some(&first), t1);
        assert_eq!(next[0].last_transition_time, Some(Time(t0)));
        assert_eq!(next[0].last_heartbeat_time, Some(Time(t1)));
        assert_eq!(next[3].status, "True");
        assert_eq!(next[3].last_transition_time, Some(Time(t1)));
        assert_eq!(next[3].reason.as_deref(), Some("KubeletReady"));
    }

    #[test]
    fn healthy_only_with_all_conditions() {
        let cfg = Config::default();
        let mut node = initial_node(&cfg, "n", internal_ip(0), Timestamp::now());
        assert!(is_healthy(&node));
        let conds = node.status.as_mut().unwrap().conditions.as_mut().unwrap();
        conds[3].status = "Unknown".into();
        assert!(!is_healthy(&node));
    }

    #[test]
    fn fake_ids_are_stable_and_distinct() {
        assert_eq!(fake_id("a", 1), fake_id("a", 1));
        assert_ne!(fake_id("a", 1), fake_id("b", 1));
        assert_eq!(uuid_form(&fake_id("a", 2)).len(), 36);
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_cidr("10.42.3.0/24"),
            Some((Ipv4Addr::new(10, 42, 3, 0), 24))
        );
        assert_eq!(parse_cidr("fd00::/64"), None);
        assert_eq!(parse_cidr("10.0.0.0/33"), None);
    }
}
