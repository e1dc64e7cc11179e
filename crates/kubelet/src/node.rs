//! The agent's Node: registration with the machine's capacity, addresses and system info,
//! status reports (`pkg/kubelet/kubelet_node_status.go`, `nodestatus/setters.go`) and the Lease
//! heartbeat in `kube-node-lease` (`pkg/kubelet/nodelease`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

/// The version the agent reports as `kubeletVersion`.
pub const KUBELET_VERSION: &str = "v1.35.0";
/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The kubelet's lease duration.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// Memory the kubelet keeps back from allocatable (upstream's hard eviction threshold
/// `memory.available<100Mi`).
const EVICTION_MEMORY_KI: u64 = 100 * 1024;

/// What the machine has, read once at start.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// Memory in KiB.
    pub memory_ki: u64,
    /// Bytes of the filesystem holding the agent's data.
    pub ephemeral_bytes: u64,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// `/sys/class/dmi/id/product_uuid`, or the machine id.
    pub system_uuid: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_version: String,
    /// `PRETTY_NAME` from `/etc/os-release`.
    pub os_image: String,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Machine {
    /// Reads the machine's facts (blocking file reads; call from `spawn_blocking` or at start).
    pub fn read(data_dir: &Path) -> Machine {
        let meminfo = read_trim("/proc/meminfo");
        let memory_ki = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let ephemeral_bytes = nix::sys::statvfs::statvfs(data_dir)
            .map(|s| s.blocks() * s.fragment_size())
            .unwrap_or(0);
        let os_image = read_trim("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".to_string());
        let machine_id = read_trim("/etc/machine-id");
        let product_uuid = read_trim("/sys/class/dmi/id/product_uuid");
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_ki,
            ephemeral_bytes,
            system_uuid: if product_uuid.is_empty() {
                machine_id.clone()
            } else {
                product_uuid
            },
            machine_id,
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            kernel_version: read_trim("/proc/sys/kernel/osrelease"),
            os_image,
        }
    }

    /// Capacity as the kubelet reports it.
    pub fn capacity(&self, max_pods: u32) -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(self.cpus.to_string())),
            (
                "ephemeral-storage".to_string(),
                Quantity(format!("{}Ki", self.ephemeral_bytes / 1024)),
            ),
            ("hugepages-1Gi".to_string(), Quantity("0".to_string())),
            ("hugepages-2Mi".to_string(), Quantity("0".to_string())),
            (
                "memory".to_string(),
                Quantity(format!("{}Ki", self.memory_ki)),
            ),
            ("pods".to_string(), Quantity(max_pods.to_string())),
        ])
    }

    /// Allocatable: capacity less the hard eviction thresholds (memory 100Mi, nodefs 10%).
    pub fn allocatable(&self, max_pods: u32) -> BTreeMap<String, Quantity> {
        let mut a = self.capacity(max_pods);
        a.insert(
            "memory".to_string(),
            Quantity(format!(
                "{}Ki",
                self.memory_ki.saturating_sub(EVICTION_MEMORY_KI)
            )),
        );
        a.insert(
            "ephemeral-storage".to_string(),
            Quantity((self.ephemeral_bytes / 10 * 9).to_string()),
        );
        a
    }
}

/// The host's primary IPv4 address: the address of the interface holding the default route,
/// else the first non-loopback address, else 127.0.0.1.
pub fn detect_node_ip() -> IpAddr {
    let default_iface = std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|routes| {
            routes.lines().skip(1).find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() > 2 && f[1] == "00000000").then(|| f[0].to_string())
            })
        });
    let addrs: Vec<(String, Ipv4Addr)> = nix::ifaddrs::getifaddrs()
        .map(|it| {
            it.filter_map(|ifa| {
                let ip = ifa.address?.as_sockaddr_in()?.ip();
                Some((ifa.interface_name, ip))
            })
            .collect()
        })
        .unwrap_or_default();
    if let Some(iface) = default_iface
        && let Some((_, ip)) = addrs.iter().find(|(n, _)| *n == iface)
    {
        return IpAddr::V4(*ip);
    }
    addrs
        .iter()
        .map(|(_, ip)| *ip)
        .find(|ip| !ip.is_loopback())
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4)
}

/// Whether the runtime is ready to run pods, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Ready condition status.
    pub ready: bool,
    /// The message of a NotReady condition.
    pub message: String,
}

/// The kubelet's conditions at `now`, keeping transition times of unchanged statuses.
pub fn conditions(
    current: Option<&[NodeCondition]>,
    readiness: &Readiness,
    now: Timestamp,
) -> Vec<NodeCondition> {
    let ready_reason = if readiness.ready {
        ("True", "KubeletReady", "kubelet is posting ready status")
    } else {
        ("False", "KubeletNotReady", readiness.message.as_str())
    };
    let wanted = [
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
        ("Ready", ready_reason.0, ready_reason.1, ready_reason.2),
    ];
    wanted
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

/// Everything the agent reports about its node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node name.
    pub name: String,
    /// The node IP.
    pub ip: IpAddr,
    /// The kubelet server port.
    pub port: u16,
    /// Machine facts.
    pub machine: Machine,
    /// `containerd://1.6.20~ds1`.
    pub runtime_version: String,
    /// Maximum pods.
    pub max_pods: u32,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
}

impl NodeInfo {
    /// The well-known labels plus the configured ones.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
            ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ("kubernetes.io/hostname".to_string(), self.name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
        ]);
        labels.extend(self.labels.clone());
        labels
    }

    /// The node status at `now`.
    pub fn status(
        &self,
        current: Option<&[NodeCondition]>,
        readiness: &Readiness,
        now: Timestamp,
    ) -> NodeStatus {
        let m = &self.machine;
        NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".to_string(),
                    address: self.ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".to_string(),
                    address: self.name.clone(),
                },
            ]),
            capacity: Some(m.capacity(self.max_pods)),
            allocatable: Some(m.allocatable(self.max_pods)),
            conditions: Some(conditions(current, readiness, now)),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(self.port),
                }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".to_string(),
                boot_id: m.boot_id.clone(),
                container_runtime_version: self.runtime_version.clone(),
                kernel_version: m.kernel_version.clone(),
                kube_proxy_version: String::new(),
                kubelet_version: KUBELET_VERSION.to_string(),
                machine_id: m.machine_id.clone(),
                operating_system: "linux".to_string(),
                os_image: m.os_image.clone(),
                system_uuid: m.system_uuid.clone(),
                swap: None,
            }),
            ..Default::default()
        }
    }
}

/// Registers the node (or takes over an existing one, restoring well-known labels), returning
/// it.
pub async fn register(
    nodes: &Api<Node>,
    info: &NodeInfo,
    readiness: &Readiness,
) -> Result<Node, kube::Error> {
    let now = Timestamp::now();
    let node = Node {
        metadata: ObjectMeta {
            name: Some(info.name.clone()),
            labels: Some(info.labels()),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        spec: None,
        status: Some(info.status(None, readiness, now)),
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(n) => {
            report_status(nodes, info, None, readiness).await?;
            Ok(n)
        }
        Err(kube::Error::Api(s)) if s.is_already_exists() => {
            let existing = nodes.get(&info.name).await?;
            let labels = existing.metadata.labels.clone().unwrap_or_default();
            let missing: BTreeMap<_, _> = info
                .labels()
                .into_iter()
                .filter(|(k, v)| labels.get(k) != Some(v))
                .collect();
            if !missing.is_empty() {
                let patch = json!({ "metadata": { "labels": missing } });
                nodes
                    .patch(
                        &info.name,
                        &PatchParams::default(),
                        &Patch::Strategic(patch),
                    )
                    .await?;
            }
            let conds = existing
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_deref());
            report_status(nodes, info, conds, readiness).await?;
            Ok(existing)
        }
        Err(e) => Err(e),
    }
}

/// Patches the node status.
pub async fn report_status(
    nodes: &Api<Node>,
    info: &NodeInfo,
    current: Option<&[NodeCondition]>,
    readiness: &Readiness,
) -> Result<(), kube::Error> {
    let status = info.status(current, readiness, Timestamp::now());
    let patch = json!({ "status": status });
    nodes
        .patch_status(
            &info.name,
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await?;
    Ok(())
}

/// Keeps the node's Lease fresh: get or create it once, then renew it with an update every
/// `interval` (falling back to get/create on conflicts).
pub struct LeaseKeeper {
    api: Api<Lease>,
    name: String,
    node_uid: Option<String>,
    cached: Option<Lease>,
    /// When the lease was last renewed.
    pub last_renewed: Option<Instant>,
}

impl LeaseKeeper {
    /// A keeper for the lease of `node`.
    pub fn new(client: kube::Client, node: &Node) -> LeaseKeeper {
        LeaseKeeper {
            api: Api::namespaced(client, LEASE_NAMESPACE),
            name: node.metadata.name.clone().unwrap_or_default(),
            node_uid: node.metadata.uid.clone(),
            cached: None,
            last_renewed: None,
        }
    }

    fn fresh(&self) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(LEASE_NAMESPACE.to_string()),
                owner_references: self.node_uid.clone().map(|uid| {
                    vec![OwnerReference {
                        api_version: "v1".to_string(),
                        kind: "Node".to_string(),
                        name: self.name.clone(),
                        uid,
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.name.clone()),
                lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                renew_time: Some(MicroTime(Timestamp::now())),
                ..Default::default()
            }),
        }
    }

    /// Renews the lease once.
    pub async fn renew(&mut self) -> Result<(), kube::Error> {
        let lease = match self.cached.take() {
            Some(mut l) => {
                if let Some(spec) = l.spec.as_mut() {
                    spec.renew_time = Some(MicroTime(Timestamp::now()));
                    spec.holder_identity = Some(self.name.clone());
                    spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
                }
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &l)
                    .await
                {
                    Ok(l) => l,
                    Err(_) => self.get_or_create().await?,
                }
            }
            None => self.get_or_create().await?,
        };
        self.cached = Some(lease);
        self.last_renewed = Some(Instant::now());
        Ok(())
    }

    async fn get_or_create(&mut self) -> Result<Lease, kube::Error> {
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = self.fresh();
                match self.api.create(&PostParams::default(), &lease).await {
                    Err(kube::Error::Api(s)) if s.is_already_exists() => {
                        self.api.get(&self.name).await
                    }
                    other => other,
                }
            }
            Some(mut existing) => {
                let fresh = self.fresh();
                existing.metadata.owner_references = fresh.metadata.owner_references;
                existing.spec = fresh.spec;
                existing.metadata.managed_fields = None;
                self.api
                    .replace(&self.name, &PostParams::default(), &existing)
                    .await
            }
        }
    }
}

/// How often the lease is renewed (the kubelet's 10 s: a quarter of the lease duration).
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// How often the full status is reported even when nothing changed (nodeStatusReportFrequency).
pub const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpus: 2,
            memory_ki: 1_000_000,
            ephemeral_bytes: 10 * 1024 * 1024 * 1024,
            machine_id: "m".into(),
            system_uuid: "s".into(),
            boot_id: "b".into(),
            kernel_version: "6.1".into(),
            os_image: "Debian".into(),
        }
    }

    #[test]
    fn allocatable_keeps_back_the_eviction_thresholds() {
        let m = machine();
        let cap = m.capacity(110);
        let alloc = m.allocatable(110);
        assert_eq!(cap["memory"].0, "1000000Ki");
        assert_eq!(alloc["memory"].0, "897600Ki");
        assert_eq!(cap["cpu"].0, "2");
        assert_eq!(alloc["pods"].0, "110");
        assert_eq!(
            alloc["ephemeral-storage"].0,
            ((10u64 << 30) / 10 * 9).to_string()
        );
    }

    #[test]
    fn not_ready_carries_the_reason() {
        let r = Readiness {
            ready: false,
            message: "container runtime network not ready".into(),
        };
        let c = conditions(None, &r, Timestamp::now());
        let ready = c.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("KubeletNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("container runtime network not ready")
        );
    }
}
