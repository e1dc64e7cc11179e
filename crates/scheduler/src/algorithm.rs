//! One scheduling cycle without I/O (upstream `schedulePod`): PreFilter, Filter over the
//! nodes from where the previous cycle stopped until enough feasible nodes are found, Score,
//! and the choice of the best node (ties broken at random); on failure, the diagnosis that
//! makes the FailedScheduling message, with the message of preemption.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::PodSpec;
use rand::Rng;

use crate::cache::{Cache, NodeInfo};
use crate::framework::{
    Code, FilterResult, NO_NODES_AVAILABLE, Plugin, PluginSet, Status, nodes_available_message,
};
use crate::plugins::inter_pod_affinity::{self, Namespaces};
use crate::plugins::{
    BALANCED_ALLOCATION_WEIGHT, INTER_POD_AFFINITY_WEIGHT, NODE_AFFINITY_WEIGHT,
    NODE_RESOURCES_FIT_WEIGHT, POD_TOPOLOGY_SPREAD_WEIGHT, TAINT_TOLERATION_WEIGHT,
    default_normalize, node_affinity, node_name, node_ports, node_resources, node_unschedulable,
    pod_topology_spread, taint_toleration,
};
use crate::types::PodInfo;

/// Fewest nodes to look for feasible ones (upstream `minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// Smallest adaptive percentage (upstream `minFeasibleNodesPercentageToFind`).
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// Where a pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    /// The node's slot in the cache.
    pub slot: usize,
    /// The node's name.
    pub node_name: String,
    /// Nodes evaluated.
    pub evaluated: usize,
    /// Nodes found feasible.
    pub feasible: usize,
}

/// Why a pod does not fit.
#[derive(Debug, Clone)]
pub struct FitError {
    /// Nodes in the cluster.
    pub num_all_nodes: usize,
    /// The failure of each node that was filtered out.
    pub statuses: Vec<(usize, Status)>,
    /// Reasons of the nodes without a status (excluded by a PreFilter result).
    pub absent_reasons: Vec<String>,
    /// A PreFilter rejection (then no per-node reasons are shown).
    pub prefilter_msg: Option<String>,
    /// The plugins that rejected the pod.
    pub plugins: PluginSet,
    /// The PostFilter (preemption) message.
    pub post_filter_msg: Option<String>,
}

impl FitError {
    /// The message (upstream `FitError.Error()`).
    pub fn message(&self) -> String {
        let mut msg = match &self.prefilter_msg {
            Some(m) => format!("0/{} nodes are available: {m}.", self.num_all_nodes),
            None => {
                let absent: Vec<&str> = self.absent_reasons.iter().map(String::as_str).collect();
                nodes_available_message(
                    self.num_all_nodes,
                    self.statuses.iter().map(|(_, s)| s.reasons.as_slice()),
                    &absent,
                )
            }
        };
        if let Some(p) = &self.post_filter_msg {
            msg.push(' ');
            msg.push_str(p);
        }
        msg
    }
}

/// Why scheduling failed.
#[derive(Debug, Clone)]
pub enum ScheduleError {
    /// The cluster has no node.
    NoNodes,
    /// No node fits.
    Fit(Box<FitError>),
}

impl ScheduleError {
    /// The FailedScheduling message.
    pub fn message(&self) -> String {
        match self {
            ScheduleError::NoNodes => NO_NODES_AVAILABLE.to_string(),
            ScheduleError::Fit(f) => f.message(),
        }
    }

    /// The plugins that rejected the pod (empty: any event may help).
    pub fn plugins(&self) -> PluginSet {
        match self {
            ScheduleError::NoNodes => PluginSet::EMPTY,
            ScheduleError::Fit(f) => f.plugins,
        }
    }
}

/// Upstream `numFeasibleNodesToFind`.
pub fn num_feasible_nodes_to_find(percentage: Option<u32>, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut pct = percentage.map_or(0, |p| p as usize);
    if pct == 0 {
        pct = 50usize.saturating_sub(num_all_nodes / 125);
        if pct < MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND {
            pct = MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND;
        }
    }
    let n = num_all_nodes * pct / 100;
    n.max(MIN_FEASIBLE_NODES_TO_FIND).min(num_all_nodes)
}

/// The per-cycle state of the PreFilter plugins.
struct CycleState<'a> {
    pod: &'a PodInfo,
    spec: &'a PodSpec,
    spread: Option<pod_topology_spread::PreFilterState<'a>>,
    interpod: Option<inter_pod_affinity::PreFilterState<'a>>,
}

impl CycleState<'_> {
    /// Runs the filters in upstream's order; the first failure wins.
    fn filter(&self, node: &NodeInfo) -> FilterResult {
        node_unschedulable::filter(self.spec, node)?;
        node_name::filter(self.spec, node)?;
        taint_toleration::filter(self.spec, node)?;
        node_affinity::filter(self.spec, node)?;
        node_ports::filter(self.pod, node)?;
        node_resources::filter(self.pod, node)?;
        if let Some(s) = &self.spread {
            pod_topology_spread::filter(s, node)?;
        }
        if let Some(s) = &self.interpod {
            inter_pod_affinity::filter(s, node)?;
        }
        Ok(())
    }
}

/// The scheduling algorithm and its state across cycles.
#[derive(Debug)]
pub struct Algorithm {
    /// percentageOfNodesToScore (`None`: adaptive).
    pub percentage: Option<u32>,
    /// Where the next cycle starts filtering.
    pub next_start: usize,
}

static EMPTY_SPEC: std::sync::LazyLock<PodSpec> = std::sync::LazyLock::new(PodSpec::default);

impl Algorithm {
    /// A new algorithm.
    pub fn new(percentage: Option<u32>) -> Self {
        Self {
            percentage,
            next_start: 0,
        }
    }

    /// Finds a node for `pod`.
    pub fn schedule(
        &mut self,
        cache: &mut Cache,
        pod: &PodInfo,
        ns: &Namespaces<'_>,
    ) -> Result<ScheduleResult, ScheduleError> {
        cache.node_order();
        let cache: &Cache = cache;
        let order = cache.order();
        let num_all = order.len();
        if num_all == 0 {
            return Err(ScheduleError::NoNodes);
        }
        let spec = pod.pod.spec.as_ref().unwrap_or(&EMPTY_SPEC);
        let has_spread = spec
            .topology_spread_constraints
            .as_ref()
            .is_some_and(|c| !c.is_empty());
        let needs_all = has_spread || pod.affinity.is_some() || cache.has_affinity_pods();
        let all: Vec<&NodeInfo> = if needs_all {
            order.iter().map(|s| cache.node(*s)).collect()
        } else {
            Vec::new()
        };

        // PreFilter.
        let fail_all = |status: Status| {
            let msg = status.reasons.join(", ");
            let plugins = status.plugin.bit();
            ScheduleError::Fit(Box::new(FitError {
                num_all_nodes: num_all,
                statuses: order.iter().map(|s| (*s, status.clone())).collect(),
                absent_reasons: Vec::new(),
                prefilter_msg: Some(msg),
                plugins,
                post_filter_msg: None,
            }))
        };
        let restricted = match node_affinity::prefilter_node_names(spec) {
            Ok(r) => r,
            Err(status) => return Err(fail_all(status)),
        };
        let state = CycleState {
            pod,
            spec,
            spread: pod_topology_spread::prefilter(pod, &all, cache),
            interpod: inter_pod_affinity::prefilter(pod, &all, ns),
        };

        let subset: Vec<usize>;
        let (nodes, absent_reasons): (&[usize], Vec<String>) = match &restricted {
            None => (order, Vec::new()),
            Some(names) => {
                subset = names
                    .iter()
                    .filter_map(|n| cache.slot_of(n))
                    .filter(|s| cache.node(*s).node.is_some())
                    .collect();
                (
                    &subset,
                    vec![format!(
                        "node(s) didn't satisfy plugin(s) [{}]",
                        Plugin::NodeAffinity.name()
                    )],
                )
            }
        };

        // Filter.
        let n = nodes.len();
        let to_find = num_feasible_nodes_to_find(self.percentage, n);
        let mut feasible: Vec<usize> = Vec::with_capacity(to_find.min(n));
        let mut statuses: Vec<(usize, Status)> = Vec::new();
        let start = if n == 0 { 0 } else { self.next_start % n };
        let mut processed = 0;
        for i in 0..n {
            let slot = nodes[(start + i) % n];
            processed += 1;
            match state.filter(cache.node(slot)) {
                Ok(()) => {
                    feasible.push(slot);
                    if feasible.len() >= to_find {
                        break;
                    }
                }
                Err(s) => statuses.push((slot, s)),
            }
        }
        if n > 0 {
            self.next_start = (start + processed) % n;
        }
        if feasible.is_empty() {
            let mut plugins = PluginSet::EMPTY;
            for (_, s) in &statuses {
                plugins = plugins.union(s.plugin.bit());
            }
            if restricted.is_some() {
                plugins = plugins.union(Plugin::NodeAffinity.bit());
            }
            return Err(ScheduleError::Fit(Box::new(FitError {
                num_all_nodes: num_all,
                statuses,
                absent_reasons,
                prefilter_msg: None,
                plugins,
                post_filter_msg: None,
            })));
        }
        let evaluated = processed;
        if feasible.len() == 1 {
            let slot = feasible[0];
            return Ok(ScheduleResult {
                slot,
                node_name: cache.node(slot).name.clone(),
                evaluated,
                feasible: 1,
            });
        }

        // Score.
        let fnodes: Vec<&NodeInfo> = feasible.iter().map(|s| cache.node(*s)).collect();
        let mut total = vec![0i64; fnodes.len()];
        let mut add = |scores: &[i64], weight: i64| {
            for (t, s) in total.iter_mut().zip(scores) {
                *t += s * weight;
            }
        };
        let tols = taint_toleration::prefer_no_schedule_tolerations(spec);
        let mut s: Vec<i64> = fnodes
            .iter()
            .map(|n| taint_toleration::score(&tols, n))
            .collect();
        default_normalize(&mut s, true);
        add(&s, TAINT_TOLERATION_WEIGHT);
        if node_affinity::has_preferred(spec) {
            let mut s: Vec<i64> = fnodes
                .iter()
                .map(|n| node_affinity::score(spec, n))
                .collect();
            default_normalize(&mut s, false);
            add(&s, NODE_AFFINITY_WEIGHT);
        }
        let s: Vec<i64> = fnodes
            .iter()
            .map(|n| node_resources::least_allocated_score(pod, n))
            .collect();
        add(&s, NODE_RESOURCES_FIT_WEIGHT);
        if has_spread && let Some(s) = pod_topology_spread::scores(pod, &fnodes, &all) {
            add(&s, POD_TOPOLOGY_SPREAD_WEIGHT);
        }
        if needs_all && let Some(s) = inter_pod_affinity::scores(pod, &fnodes, &all, ns) {
            add(&s, INTER_POD_AFFINITY_WEIGHT);
        }
        if !node_resources::balanced_allocation_skips(pod) {
            let s: Vec<i64> = fnodes
                .iter()
                .map(|n| node_resources::balanced_allocation_score(pod, n))
                .collect();
            add(&s, BALANCED_ALLOCATION_WEIGHT);
        }
        // Highest score; ties broken uniformly at random (reservoir sampling, as upstream).
        let mut rng = rand::rng();
        let mut best = 0;
        let mut count = 0u32;
        for (i, t) in total.iter().enumerate() {
            if *t > total[best] {
                best = i;
                count = 1;
            } else if *t == total[best] {
                count += 1;
                if rng.random_range(0..count) == 0 {
                    best = i;
                }
            }
        }
        let slot = feasible[best];
        Ok(ScheduleResult {
            slot,
            node_name: cache.node(slot).name.clone(),
            evaluated,
            feasible: feasible.len(),
        })
    }
}

/// The message of the preemption PostFilter (upstream DefaultPreemption) for a pod that fits
/// nowhere: which nodes removing lower-priority pods could not help. Returns `None` when
/// preemption would find a candidate node (the pod's FailedScheduling message then has no
/// preemption part), with the candidate's name.
pub fn preemption_message(cache: &Cache, pod: &PodInfo, err: &FitError) -> Result<String, String> {
    let spec = pod.pod.spec.as_ref().unwrap_or(&EMPTY_SPEC);
    if spec.preemption_policy.as_deref() == Some("Never") {
        return Ok("preemption: not eligible due to preemptionPolicy=Never.".to_string());
    }
    let prio = pod.priority();
    let mut statuses: Vec<Vec<Cow<'static, str>>> = Vec::new();
    for (slot, status) in &err.statuses {
        if status.code != Code::Unschedulable {
            continue;
        }
        let node = cache.node(*slot);
        let victims: Vec<&str> = node
            .pods
            .iter()
            .filter(|p| p.priority() < prio)
            .map(|p| p.key.as_str())
            .collect();
        if victims.is_empty() {
            statuses.push(vec!["No preemption victims found for incoming pod".into()]);
            continue;
        }
        let mut without = node.clone();
        for v in victims {
            without.remove_pod(v);
        }
        // Node-local filters (the inter-pod and spread counts are not recomputed).
        let r = node_unschedulable::filter(spec, &without)
            .and_then(|()| taint_toleration::filter(spec, &without))
            .and_then(|()| node_affinity::filter(spec, &without))
            .and_then(|()| node_ports::filter(pod, &without))
            .and_then(|()| node_resources::filter(pod, &without));
        match r {
            Ok(()) => return Err(node.name.clone()),
            Err(s) => statuses.push(s.reasons),
        }
    }
    let msg = nodes_available_message(
        err.num_all_nodes,
        statuses.iter().map(Vec::as_slice),
        &["Preemption is not helpful for scheduling"],
    );
    Ok(format!("preemption: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{cache_with, node, pod};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use std::sync::Arc;

    fn no_ns() -> Namespaces<'static> {
        static SELECT: fn(&LabelSelector) -> Vec<String> = |_| Vec::new();
        Namespaces {
            incoming_labels: None,
            select: &SELECT,
        }
    }

    #[test]
    fn adaptive_percentage_of_nodes() {
        assert_eq!(num_feasible_nodes_to_find(None, 50), 50);
        assert_eq!(num_feasible_nodes_to_find(None, 1000), 420);
        assert_eq!(num_feasible_nodes_to_find(None, 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(None, 10000), 500);
        assert_eq!(num_feasible_nodes_to_find(Some(10), 500), 100);
        assert_eq!(num_feasible_nodes_to_find(Some(100), 5000), 5000);
    }

    #[test]
    fn filtering_resumes_where_the_last_cycle_stopped() {
        let nodes = (0..200)
            .map(|i| node(&format!("n{i}"), &[], "4", "8Gi", "110"))
            .collect();
        let mut cache = cache_with(nodes, vec![]);
        let mut algo = Algorithm::new(None);
        let p = PodInfo::new(Arc::new(pod("p", &[], &[("cpu", "1")])));
        let r = algo.schedule(&mut cache, &p, &no_ns()).unwrap();
        assert_eq!((r.evaluated, r.feasible), (100, 100));
        assert_eq!(algo.next_start, 100);
        let r = algo.schedule(&mut cache, &p, &no_ns()).unwrap();
        assert_eq!(r.evaluated, 100);
        assert_eq!(algo.next_start, 0);
    }

    #[test]
    fn picks_the_least_allocated_node() {
        let mut cache = cache_with(
            vec![
                node("busy", &[], "4", "8Gi", "110"),
                node("idle", &[], "4", "8Gi", "110"),
            ],
            vec![(pod("x", &[], &[("cpu", "3"), ("memory", "4Gi")]), "busy")],
        );
        let p = PodInfo::new(Arc::new(pod("p", &[], &[("cpu", "500m")])));
        for _ in 0..5 {
            let r = Algorithm::new(None)
                .schedule(&mut cache, &p, &no_ns())
                .unwrap();
            assert_eq!(r.node_name, "idle");
        }
    }

    #[test]
    fn node_name_prefilter_and_preemption_messages() {
        let mut cache = cache_with(
            vec![
                node("a", &[], "1", "1Gi", "110"),
                node("b", &[], "1", "1Gi", "110"),
            ],
            vec![(pod("low", &[], &[("cpu", "1")]), "a")],
        );
        // A DaemonSet-style pod bound to node a by matchFields: b is not evaluated.
        let mut p = pod("ds", &[], &[("cpu", "500m")]);
        p.spec.as_mut().unwrap().affinity = Some(serde_json::from_value(serde_json::json!({
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}
            ]}}
        })).unwrap());
        let info = PodInfo::new(Arc::new(p.clone()));
        let Err(ScheduleError::Fit(mut f)) =
            Algorithm::new(None).schedule(&mut cache, &info, &no_ns())
        else {
            panic!("expected a fit error");
        };
        f.post_filter_msg = Some(preemption_message(&cache, &info, &f).unwrap());
        assert_eq!(
            f.message(),
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't satisfy plugin(s) [NodeAffinity]. preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
        );
        // With a higher priority, evicting the low-priority pod would make room.
        p.spec.as_mut().unwrap().priority = Some(1000);
        let info = PodInfo::new(Arc::new(p.clone()));
        assert_eq!(preemption_message(&cache, &info, &f), Err("a".to_string()));
        p.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        let info = PodInfo::new(Arc::new(p));
        assert_eq!(
            preemption_message(&cache, &info, &f).unwrap(),
            "preemption: not eligible due to preemptionPolicy=Never."
        );
    }
}
