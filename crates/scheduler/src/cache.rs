//! The scheduler cache (upstream `internal/cache`): one [`NodeInfo`] per node with the pods
//! assigned or assumed to it and their summed requests, and the node order of upstream's
//! node tree (zones interleaved). Owned by the scheduling loop: no locks.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::resources::{Resource, allowed_pods, node_allocatable};
use crate::types::{HostPort, IdMap, PodAffinity, PodInfo};

/// A node and what is scheduled on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// The node (`None` while pods of an unknown node are cached).
    pub node: Option<Arc<Node>>,
    /// `spec.unschedulable`. This and `has_taints` are what the filters read of every node they
    /// visit; kept here, beside the other per-node fields in the cache's array, filtering an
    /// untainted node does not follow the pointer to its `Node` (a cache miss per node).
    pub unschedulable: bool,
    /// Whether `spec.taints` is not empty.
    has_taints: bool,
    /// `status.allocatable`.
    pub allocatable: Resource,
    /// `status.allocatable.pods`.
    pub allowed_pods: i64,
    /// Summed requests of the pods.
    pub requested: Resource,
    /// Summed non-zero CPU requests of the pods (scoring).
    pub non_zero_cpu: i64,
    /// Summed non-zero memory requests of the pods (scoring).
    pub non_zero_memory: i64,
    /// The pods.
    pub pods: Vec<Arc<PodInfo>>,
    /// How many pods have pod affinity or anti-affinity.
    pub pods_with_affinity: u32,
    /// How many pods have required anti-affinity.
    pub pods_with_required_anti_affinity: u32,
    /// How many pods are terminating.
    pub terminating: u32,
    /// Host ports in use.
    pub used_ports: Vec<HostPort>,
    /// Pods per label key (see [`crate::types::label_key`]).
    pub label_counts: IdMap<u32>,
    /// The distinct (interned) pod (anti-)affinities of the pods, with their pod counts.
    pub affinity_groups: Vec<(Arc<PodAffinity>, u32)>,
}

static EMPTY: std::sync::LazyLock<std::collections::BTreeMap<String, String>> =
    std::sync::LazyLock::new(std::collections::BTreeMap::new);

impl NodeInfo {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            node: None,
            unschedulable: false,
            has_taints: false,
            allocatable: Resource::default(),
            allowed_pods: 0,
            requested: Resource::default(),
            non_zero_cpu: 0,
            non_zero_memory: 0,
            pods: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            terminating: 0,
            used_ports: Vec::new(),
            label_counts: IdMap::default(),
            affinity_groups: Vec::new(),
        }
    }

    /// A node info for `node` without pods (tests and callers that build one by hand).
    pub fn for_node(node: Arc<Node>) -> Self {
        let mut ni = Self::new(node.metadata.name.as_deref().unwrap_or_default());
        ni.set_node(node);
        ni
    }

    fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = node_allocatable(&node);
        self.allowed_pods = allowed_pods(&node);
        let spec = node.spec.as_ref();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        self.has_taints = spec
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| !t.is_empty());
        self.node = Some(node);
    }

    fn take_node(&mut self) -> Option<Arc<Node>> {
        self.unschedulable = false;
        self.has_taints = false;
        self.node.take()
    }

    /// The node's labels.
    pub fn labels(&self) -> &std::collections::BTreeMap<String, String> {
        self.node
            .as_ref()
            .and_then(|n| n.metadata.labels.as_ref())
            .unwrap_or(&EMPTY)
    }

    /// The node's taints.
    pub fn taints(&self) -> &[k8s_openapi::api::core::v1::Taint] {
        if !self.has_taints {
            return &[];
        }
        self.node
            .as_ref()
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
    }

    /// Adds a pod.
    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        self.requested.add(&p.res.requests);
        self.non_zero_cpu += p.res.non_zero_cpu;
        self.non_zero_memory += p.res.non_zero_memory;
        if let Some(a) = &p.affinity {
            self.pods_with_affinity += 1;
            match self
                .affinity_groups
                .iter_mut()
                .find(|(g, _)| Arc::ptr_eq(g, a))
            {
                Some((_, n)) => *n += 1,
                None => self.affinity_groups.push((a.clone(), 1)),
            }
        }
        if p.has_required_anti_affinity() {
            self.pods_with_required_anti_affinity += 1;
        }
        if p.terminating {
            self.terminating += 1;
        }
        self.used_ports.extend(p.host_ports.iter().cloned());
        for k in &p.label_keys {
            *self.label_counts.entry(*k).or_insert(0) += 1;
        }
        self.pods.push(p);
    }

    /// Removes the pod with `key`; returns it.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.key == key)?;
        let p = self.pods.swap_remove(i);
        self.requested.sub(&p.res.requests);
        self.non_zero_cpu -= p.res.non_zero_cpu;
        self.non_zero_memory -= p.res.non_zero_memory;
        if let Some(a) = &p.affinity {
            self.pods_with_affinity -= 1;
            if let Some(i) = self
                .affinity_groups
                .iter()
                .position(|(g, _)| Arc::ptr_eq(g, a))
            {
                self.affinity_groups[i].1 -= 1;
                if self.affinity_groups[i].1 == 0 {
                    self.affinity_groups.swap_remove(i);
                }
            }
        }
        if p.has_required_anti_affinity() {
            self.pods_with_required_anti_affinity -= 1;
        }
        if p.terminating {
            self.terminating -= 1;
        }
        for hp in &p.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        for k in &p.label_keys {
            if let Some(c) = self.label_counts.get_mut(k) {
                *c -= 1;
                if *c == 0 {
                    self.label_counts.remove(k);
                }
            }
        }
        Some(p)
    }
}

#[derive(Debug)]
struct PodState {
    slot: usize,
    assumed: bool,
}

/// The zone key of a node (upstream `utilnode.GetZoneKey`): region and zone labels.
fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let get = |k: &str| labels.and_then(|l| l.get(k)).cloned().unwrap_or_default();
    let region = get("topology.kubernetes.io/region");
    let zone = get("topology.kubernetes.io/zone");
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    format!("{region}:\x00:{zone}")
}

/// The cache of nodes and assigned or assumed pods.
#[derive(Debug, Default)]
pub struct Cache {
    slots: Vec<Option<NodeInfo>>,
    free: Vec<usize>,
    by_name: HashMap<String, usize>,
    pods: HashMap<String, PodState>,
    zones: Vec<(String, Vec<usize>)>,
    node_zone: HashMap<usize, String>,
    order: Vec<usize>,
    order_dirty: bool,
    affinity_pods: usize,
    required_anti_affinity_pods: usize,
    interned: HashMap<String, Arc<PodAffinity>>,
    /// Node label key → value → number of nodes.
    label_values: HashMap<String, HashMap<String, u32>>,
    /// Namespaced pod label key (see [`crate::types::label_key`]) → node slot → pods.
    pods_by_label: IdMap<IdMap<u32>>,
}

impl Cache {
    fn slot_for(&mut self, name: &str) -> usize {
        if let Some(s) = self.by_name.get(name) {
            return *s;
        }
        let ni = NodeInfo::new(name);
        let s = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(ni);
                s
            }
            None => {
                self.slots.push(Some(ni));
                self.slots.len() - 1
            }
        };
        self.by_name.insert(name.to_string(), s);
        s
    }

    fn release_if_empty(&mut self, slot: usize) {
        let empty = self.slots[slot]
            .as_ref()
            .is_some_and(|n| n.node.is_none() && n.pods.is_empty());
        if empty && let Some(ni) = self.slots[slot].take() {
            self.by_name.remove(&ni.name);
            self.free.push(slot);
        }
    }

    fn tree_remove(&mut self, slot: usize) {
        let Some(zone) = self.node_zone.remove(&slot) else {
            return;
        };
        if let Some(zi) = self.zones.iter().position(|(z, _)| *z == zone) {
            let list = &mut self.zones[zi].1;
            if let Some(i) = list.iter().position(|s| *s == slot) {
                list.swap_remove(i);
            }
            if list.is_empty() {
                self.zones.remove(zi);
            }
        }
        self.order_dirty = true;
    }

    fn tree_add(&mut self, slot: usize, zone: String) {
        match self.zones.iter_mut().find(|(z, _)| *z == zone) {
            Some((_, list)) => list.push(slot),
            None => self.zones.push((zone.clone(), vec![slot])),
        }
        self.node_zone.insert(slot, zone);
        self.order_dirty = true;
    }

    fn count_labels(&mut self, node: &Node, delta: i32) {
        for (k, v) in node.metadata.labels.iter().flatten() {
            let values = self.label_values.entry(k.clone()).or_default();
            let c = values.entry(v.clone()).or_insert(0);
            *c = c.saturating_add_signed(delta);
            if *c == 0 {
                values.remove(v);
                if values.is_empty() {
                    self.label_values.remove(k);
                }
            }
        }
    }

    /// How many distinct values nodes have for label `key`.
    pub fn label_domains(&self, key: &str) -> usize {
        self.label_values.get(key).map_or(0, HashMap::len)
    }

    /// The slots of the nodes with pods having the namespaced label key `key`, and how many.
    pub fn nodes_with_pod_label(&self, key: u64) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.pods_by_label
            .get(&key)
            .into_iter()
            .flat_map(|m| m.iter().map(|(s, n)| (*s as usize, *n)))
    }

    /// Adds or updates a node.
    pub fn add_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let zone = zone_key(&node);
        let slot = self.slot_for(&name);
        let old = self.slots[slot]
            .as_ref()
            .and_then(|n| n.node.clone())
            .filter(|_| self.node_zone.contains_key(&slot));
        match &old {
            Some(o) if o.metadata.labels == node.metadata.labels => {}
            Some(o) => {
                self.count_labels(o, -1);
                self.count_labels(&node, 1);
            }
            None => self.count_labels(&node, 1),
        }
        match self.node_zone.get(&slot) {
            Some(z) if *z == zone => {}
            Some(_) => {
                self.tree_remove(slot);
                self.tree_add(slot, zone);
            }
            None => self.tree_add(slot, zone),
        }
        if let Some(ni) = self.slots[slot].as_mut() {
            ni.set_node(node);
        }
    }

    /// Removes a node; its pods stay cached until they are deleted.
    pub fn remove_node(&mut self, name: &str) {
        let Some(&slot) = self.by_name.get(name) else {
            return;
        };
        self.tree_remove(slot);
        if let Some(old) = self.slots[slot].as_mut().and_then(NodeInfo::take_node) {
            self.count_labels(&old, -1);
        }
        self.release_if_empty(slot);
    }

    /// The number of nodes.
    pub fn num_nodes(&self) -> usize {
        self.node_zone.len()
    }

    /// The slots of the nodes in node-tree order (zones interleaved).
    pub fn node_order(&mut self) -> &[usize] {
        if self.order_dirty {
            self.order.clear();
            let mut i = 0;
            let total = self.node_zone.len();
            while self.order.len() < total {
                for (_, list) in &self.zones {
                    if let Some(s) = list.get(i) {
                        self.order.push(*s);
                    }
                }
                i += 1;
            }
            self.order_dirty = false;
        }
        &self.order
    }

    /// The node order computed by the last [`Cache::node_order`] call (call that first).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Whether any cached pod has pod affinity or anti-affinity.
    pub fn has_affinity_pods(&self) -> bool {
        self.affinity_pods > 0
    }

    /// Whether any cached pod has required anti-affinity.
    pub fn has_required_anti_affinity_pods(&self) -> bool {
        self.required_anti_affinity_pods > 0
    }

    /// The node info in `slot`.
    pub fn node(&self, slot: usize) -> &NodeInfo {
        self.slots[slot]
            .as_ref()
            .expect("slots in the node order are occupied")
    }

    /// The slot of node `name`.
    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Every node info with a node.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.slots.iter().flatten().filter(|n| n.node.is_some())
    }

    /// Whether the pod with `key` is assumed (scheduled here, binding not yet observed).
    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|p| p.assumed)
    }

    /// Whether the pod with `key` is cached (assigned or assumed).
    pub fn contains_pod(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }

    /// Shares one `Arc<PodAffinity>` between pods with equal (anti-)affinity, so that the
    /// nodes group them and plugins evaluate each distinct affinity once per cycle.
    fn intern(&mut self, p: Arc<PodInfo>) -> Arc<PodInfo> {
        let Some(a) = &p.affinity else {
            return p;
        };
        match self.interned.get(&p.affinity_key) {
            Some(shared) if Arc::ptr_eq(shared, a) => p,
            Some(shared) => {
                let shared = shared.clone();
                let mut info = Arc::unwrap_or_clone(p);
                info.affinity = Some(shared);
                Arc::new(info)
            }
            None => {
                self.interned.insert(p.affinity_key.clone(), a.clone());
                p
            }
        }
    }

    fn release_interned(&mut self, p: &PodInfo) {
        if let Some(a) = &p.affinity
            && Arc::strong_count(a) <= 2
            && self
                .interned
                .get(&p.affinity_key)
                .is_some_and(|s| Arc::ptr_eq(s, a))
        {
            self.interned.remove(&p.affinity_key);
        }
    }

    fn insert(&mut self, p: Arc<PodInfo>, node_name: &str, assumed: bool) {
        let p = self.intern(p);
        let slot = self.slot_for(node_name);
        for k in p.label_keys.iter().step_by(2) {
            *self
                .pods_by_label
                .entry(*k)
                .or_default()
                .entry(slot as u64)
                .or_insert(0) += 1;
        }
        let key = p.key.clone();
        self.affinity_pods += usize::from(p.affinity.is_some());
        self.required_anti_affinity_pods += usize::from(p.has_required_anti_affinity());
        if let Some(ni) = self.slots[slot].as_mut() {
            ni.add_pod(p);
        }
        self.pods.insert(key, PodState { slot, assumed });
    }

    /// Removes a pod (assigned or assumed); returns the node it was on.
    pub fn remove_pod(&mut self, key: &str) -> Option<String> {
        let st = self.pods.remove(key)?;
        let mut removed = None;
        let name = self.slots[st.slot].as_mut().map(|ni| {
            removed = ni.remove_pod(key);
            ni.name.clone()
        });
        if let Some(p) = removed {
            for k in p.label_keys.iter().step_by(2) {
                if let Some(m) = self.pods_by_label.get_mut(k) {
                    if let Some(c) = m.get_mut(&(st.slot as u64)) {
                        *c -= 1;
                        if *c == 0 {
                            m.remove(&(st.slot as u64));
                        }
                    }
                    if m.is_empty() {
                        self.pods_by_label.remove(k);
                    }
                }
            }
            self.affinity_pods -= usize::from(p.affinity.is_some());
            self.required_anti_affinity_pods -= usize::from(p.has_required_anti_affinity());
            self.release_interned(&p);
        }
        self.release_if_empty(st.slot);
        name
    }

    /// Adds or updates an assigned pod (`spec.nodeName` set); confirms an assumed one.
    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        let node = p
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        self.remove_pod(&p.key);
        self.insert(p, &node, false);
    }

    /// Points the cached info of pod `key` at a newer version of the pod whose spec, labels and
    /// deletion state did not change (status updates), so that the old version is freed.
    /// Returns false when the pod is not cached.
    pub fn refresh_pod(&mut self, key: &str, pod: Arc<k8s_openapi::api::core::v1::Pod>) -> bool {
        let Some(st) = self.pods.get(key) else {
            return false;
        };
        let Some(ni) = self.slots[st.slot].as_mut() else {
            return false;
        };
        let Some(p) = ni.pods.iter_mut().find(|p| p.key == key) else {
            return false;
        };
        let mut info = (**p).clone();
        info.pod = pod;
        *p = Arc::new(info);
        true
    }

    /// Charges `p` to node `node_name` before its binding completes.
    pub fn assume(&mut self, p: Arc<PodInfo>, node_name: &str) {
        self.remove_pod(&p.key);
        self.insert(p, node_name, true);
    }

    /// Drops an assumed pod whose binding failed (a confirmed pod is left alone).
    pub fn forget(&mut self, key: &str) {
        if self.is_assumed(key) {
            self.remove_pod(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod};

    fn info(name: &str, node_name: &str, cpu: &str) -> Arc<PodInfo> {
        let mut p = pod(name, &[("app", "a")], &[("cpu", cpu)]);
        p.spec.as_mut().unwrap().node_name = Some(node_name.into());
        Arc::new(PodInfo::new(Arc::new(p)))
    }

    #[test]
    fn pods_charge_their_node_and_assumed_pods_are_confirmed_or_forgotten() {
        let mut c = Cache::default();
        c.add_node(Arc::new(node("n1", &[], "4", "8Gi", "110")));
        c.add_pod(info("a", "n1", "1"));
        let s = c.slot_of("n1").unwrap();
        assert_eq!(c.node(s).requested.milli_cpu, 1000);
        assert_eq!(c.node(s).non_zero_memory, 200 * 1024 * 1024);
        c.assume(info("b", "", "500m"), "n1");
        assert!(c.is_assumed("uid-b"));
        assert_eq!(c.node(s).requested.milli_cpu, 1500);
        // Binding observed: confirmed, counted once.
        c.add_pod(info("b", "n1", "500m"));
        assert!(!c.is_assumed("uid-b"));
        assert_eq!(c.node(s).requested.milli_cpu, 1500);
        assert_eq!(c.node(s).pods.len(), 2);
        c.forget("uid-b");
        assert_eq!(c.node(s).pods.len(), 2, "confirmed pods are not forgotten");
        c.assume(info("c", "", "1"), "n1");
        c.forget("uid-c");
        assert_eq!(c.node(s).requested.milli_cpu, 1500);
        c.remove_pod("uid-a");
        assert_eq!(c.node(s).requested.milli_cpu, 500);
        assert_eq!(c.node(s).label_counts.len(), 4);
    }

    #[test]
    fn the_filters_view_of_a_node_follows_its_updates() {
        let mut c = Cache::default();
        c.add_node(Arc::new(node("n1", &[], "4", "8Gi", "110")));
        let s = c.slot_of("n1").unwrap();
        assert!(!c.node(s).unschedulable);
        assert!(c.node(s).taints().is_empty());
        let mut cordoned = node("n1", &[], "4", "8Gi", "110");
        cordoned.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            unschedulable: Some(true),
            taints: Some(vec![k8s_openapi::api::core::v1::Taint {
                key: "k".into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        c.add_node(Arc::new(cordoned));
        assert!(c.node(s).unschedulable);
        assert_eq!(c.node(s).taints().len(), 1);
        c.add_node(Arc::new(node("n1", &[], "4", "8Gi", "110")));
        assert!(!c.node(s).unschedulable);
        assert!(c.node(s).taints().is_empty());
    }

    #[test]
    fn refresh_swaps_the_pod_object_only() {
        let mut c = Cache::default();
        c.add_node(Arc::new(node("n1", &[], "4", "8Gi", "110")));
        c.add_pod(info("a", "n1", "1"));
        let mut newer = (*info("a", "n1", "1").pod).clone();
        newer.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        assert!(c.refresh_pod("uid-a", Arc::new(newer)));
        let s = c.slot_of("n1").unwrap();
        let p = &c.node(s).pods[0];
        assert_eq!(
            p.pod.status.as_ref().unwrap().phase.as_deref(),
            Some("Running")
        );
        assert_eq!(c.node(s).requested.milli_cpu, 1000);
        assert!(!c.refresh_pod("uid-missing", p.pod.clone()));
    }

    #[test]
    fn label_domains_and_pod_label_index() {
        let mut c = Cache::default();
        c.add_node(Arc::new(node("n1", &[("zone", "a")], "4", "8Gi", "110")));
        c.add_node(Arc::new(node("n2", &[("zone", "b")], "4", "8Gi", "110")));
        assert_eq!(c.label_domains("zone"), 2);
        c.add_node(Arc::new(node("n2", &[("zone", "a")], "4", "8Gi", "110")));
        assert_eq!(c.label_domains("zone"), 1);
        c.add_pod(info("a", "n1", "1"));
        c.add_pod(info("b", "n1", "1"));
        let key = crate::types::label_key(Some("default"), "app", "a");
        let hits: Vec<(usize, u32)> = c.nodes_with_pod_label(key).collect();
        assert_eq!(hits, vec![(c.slot_of("n1").unwrap(), 2)]);
        c.remove_pod("uid-a");
        c.remove_pod("uid-b");
        assert_eq!(c.nodes_with_pod_label(key).count(), 0);
        c.remove_node("n1");
        c.remove_node("n2");
        assert_eq!(c.label_domains("zone"), 0);
    }

    #[test]
    fn pods_of_unknown_nodes_wait_for_their_node() {
        let mut c = Cache::default();
        c.add_pod(info("a", "n1", "1"));
        assert_eq!(c.num_nodes(), 0);
        c.add_node(Arc::new(node("n1", &[], "4", "8Gi", "110")));
        assert_eq!(c.num_nodes(), 1);
        let s = c.slot_of("n1").unwrap();
        assert_eq!(c.node(s).requested.milli_cpu, 1000);
        c.remove_node("n1");
        assert_eq!(c.num_nodes(), 0);
        assert!(c.slot_of("n1").is_some(), "kept for its pod");
        c.remove_pod("uid-a");
        assert!(c.slot_of("n1").is_none());
    }

    #[test]
    fn node_order_interleaves_zones() {
        let mut c = Cache::default();
        for (n, z) in [
            ("a1", "a"),
            ("a2", "a"),
            ("a3", "a"),
            ("b1", "b"),
            ("c1", "c"),
        ] {
            c.add_node(Arc::new(node(
                n,
                &[("topology.kubernetes.io/zone", z)],
                "1",
                "1Gi",
                "10",
            )));
        }
        let names: Vec<String> = c
            .node_order()
            .to_vec()
            .into_iter()
            .map(|s| c.node(s).name.clone())
            .collect();
        assert_eq!(names, vec!["a1", "b1", "c1", "a2", "a3"]);
    }
}
