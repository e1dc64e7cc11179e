//! Resource arithmetic of pods and nodes: upstream's `framework.Resource`,
//! `resource.PodRequests` (sum of containers, max with init containers incl. sidecars,
//! pod-level requests, overhead) and the non-zero requests used for scoring.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity::{parse_milli, parse_value};

/// CPU assumed for a container without a CPU request when scoring (upstream 100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for a container without a memory request when scoring (upstream 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Extended resources, hugepages...: (name, value), sorted by name.
    pub scalar: Vec<(String, i64)>,
}

impl Resource {
    /// Whether every amount is zero.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }

    /// The amount of a scalar resource.
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map_or(0, |i| self.scalar[i].1)
    }

    fn scalar_mut(&mut self, name: &str) -> &mut i64 {
        let i = match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => i,
            Err(i) => {
                self.scalar.insert(i, (name.to_string(), 0));
                i
            }
        };
        &mut self.scalar[i].1
    }

    /// Adds `other`.
    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        for (n, v) in &other.scalar {
            *self.scalar_mut(n) += v;
        }
    }

    /// Subtracts `other`.
    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        for (n, v) in &other.scalar {
            *self.scalar_mut(n) -= v;
        }
    }

    /// Takes the maximum of each amount.
    pub fn max_with(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (n, v) in &other.scalar {
            let s = self.scalar_mut(n);
            *s = (*s).max(*v);
        }
    }

    /// A resource list (`requests`, `allocatable`, `overhead`) as a `Resource`; `pods` is
    /// ignored (see [`allowed_pods`]).
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resource {
        let mut r = Resource::default();
        for (name, q) in list.into_iter().flatten() {
            match name.as_str() {
                "cpu" => r.milli_cpu += parse_milli(&q.0).unwrap_or(0),
                "memory" => r.memory += parse_value(&q.0).unwrap_or(0),
                "ephemeral-storage" => r.ephemeral_storage += parse_value(&q.0).unwrap_or(0),
                "pods" | "storage" => {}
                other => *r.scalar_mut(other) += parse_value(&q.0).unwrap_or(0),
            }
        }
        r
    }
}

/// The requests of a pod (upstream `resource.PodRequests`), and its non-zero CPU and memory
/// requests for scoring (containers without a request count 100m / 200 MiB).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodResources {
    /// Requests, for NodeResourcesFit's filter.
    pub requests: Resource,
    /// Non-zero CPU request (millicores), for scoring.
    pub non_zero_cpu: i64,
    /// Non-zero memory request (bytes), for scoring.
    pub non_zero_memory: i64,
}

fn container_requests(c: &Container, non_zero: bool) -> Resource {
    let reqs = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = Resource::from_list(reqs);
    if non_zero {
        if !reqs.is_some_and(|m| m.contains_key("cpu")) {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !reqs.is_some_and(|m| m.contains_key("memory")) {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

fn aggregate(pod: &Pod, non_zero: bool) -> Resource {
    let Some(spec) = pod.spec.as_ref() else {
        return Resource::default();
    };
    let mut reqs = Resource::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c, non_zero));
    }
    // Init containers run one at a time, each alongside the sidecars started before it.
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            sidecars.add(&r);
            init_max.max_with(&sidecars);
        } else {
            let mut use_ = r;
            use_.add(&sidecars);
            init_max.max_with(&use_);
        }
    }
    reqs.max_with(&init_max);
    // Pod-level requests (cpu, memory, hugepages) replace the containers' aggregate.
    if let Some(pod_reqs) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        for (name, q) in pod_reqs {
            match name.as_str() {
                "cpu" => reqs.milli_cpu = parse_milli(&q.0).unwrap_or(0),
                "memory" => reqs.memory = parse_value(&q.0).unwrap_or(0),
                n if n.starts_with("hugepages-") => {
                    *reqs.scalar_mut(n) = parse_value(&q.0).unwrap_or(0);
                }
                _ => {}
            }
        }
    }
    if let Some(overhead) = spec.overhead.as_ref() {
        reqs.add(&Resource::from_list(Some(overhead)));
    }
    reqs
}

impl PodResources {
    /// Computes the requests of `pod`.
    pub fn of(pod: &Pod) -> PodResources {
        let requests = aggregate(pod, false);
        let nz = aggregate(pod, true);
        PodResources {
            requests,
            non_zero_cpu: nz.milli_cpu,
            non_zero_memory: nz.memory,
        }
    }
}

/// The allocatable resources of a node (`status.allocatable`).
pub fn node_allocatable(node: &Node) -> Resource {
    Resource::from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()))
}

/// The number of pods a node accepts (`status.allocatable.pods`).
pub fn allowed_pods(node: &Node) -> i64 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get("pods"))
        .and_then(|q| parse_value(&q.0))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{container, pod_with};

    #[test]
    fn init_containers_take_the_max_and_overhead_adds() {
        let mut pod = pod_with(vec![
            container(&[("cpu", "2"), ("memory", "1G")]),
            container(&[("cpu", "1"), ("memory", "1G")]),
        ]);
        let spec = pod.spec.as_mut().unwrap();
        spec.init_containers = Some(vec![
            container(&[("cpu", "2"), ("memory", "1G")]),
            container(&[("cpu", "2"), ("memory", "3G")]),
        ]);
        let r = PodResources::of(&pod);
        assert_eq!(r.requests.milli_cpu, 3000);
        assert_eq!(r.requests.memory, 3_000_000_000);
        spec_overhead(&mut pod);
        let r = PodResources::of(&pod);
        assert_eq!(r.requests.milli_cpu, 3250);
    }

    fn spec_overhead(pod: &mut Pod) {
        let mut m = BTreeMap::new();
        m.insert("cpu".to_string(), Quantity("250m".into()));
        pod.spec.as_mut().unwrap().overhead = Some(m);
    }

    #[test]
    fn sidecars_add_to_the_sum() {
        let mut pod = pod_with(vec![container(&[("cpu", "1")])]);
        let mut sidecar = container(&[("cpu", "500m")]);
        sidecar.restart_policy = Some("Always".into());
        pod.spec.as_mut().unwrap().init_containers =
            Some(vec![sidecar, container(&[("cpu", "1200m")])]);
        // max(1 + 0.5, 1.2 + 0.5) = 1.7
        assert_eq!(PodResources::of(&pod).requests.milli_cpu, 1700);
    }

    #[test]
    fn non_zero_defaults_for_missing_requests() {
        let pod = pod_with(vec![container(&[]), container(&[("cpu", "0")])]);
        let r = PodResources::of(&pod);
        assert!(r.requests.is_zero());
        assert_eq!(r.non_zero_cpu, 100);
        assert_eq!(r.non_zero_memory, 2 * DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn scalar_resources() {
        let pod = pod_with(vec![container(&[("example.com/gpu", "2")])]);
        let r = PodResources::of(&pod);
        assert_eq!(r.requests.scalar("example.com/gpu"), 2);
        assert_eq!(r.requests.scalar("other"), 0);
    }
}
