//! PodTopologySpread: `DoNotSchedule` constraints filter nodes whose domain would exceed
//! `maxSkew` (counts precomputed once per cycle over all nodes), `ScheduleAnyway`
//! constraints score. The cluster-level default constraints (system defaulting) are not
//! applied.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::node_affinity::{has_required, required_matches};
use super::taint_toleration::find_untolerated_do_not_schedule;
use crate::cache::{Cache, NodeInfo};
use crate::framework::{FilterResult, MAX_NODE_SCORE, Plugin, Status};
use crate::types::{NsScope, PodInfo, PodMatcher};

/// Upstream `ErrReasonConstraintsNotMatch`.
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
/// Upstream `ErrReasonNodeLabelNotMatch`.
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const HOSTNAME: &str = "kubernetes.io/hostname";

/// A parsed constraint.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// maxSkew.
    pub max_skew: i64,
    /// topologyKey.
    pub topology_key: String,
    /// labelSelector (with matchLabelKeys merged), in the pod's namespace.
    pub matcher: PodMatcher,
    /// minDomains (1 when unset).
    pub min_domains: i64,
    /// nodeAffinityPolicy is Honor (the default).
    pub honor_affinity: bool,
    /// nodeTaintsPolicy is Honor (default Ignore).
    pub honor_taints: bool,
    /// Whether the incoming pod matches its own selector.
    pub self_match: bool,
}

/// The pod's constraints with `whenUnsatisfiable == action`.
pub fn constraints(pod: &PodInfo, action: &str) -> Vec<Constraint> {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in spec.topology_spread_constraints.iter().flatten() {
        if c.when_unsatisfiable != action {
            continue;
        }
        let mut selector: Option<LabelSelector> = c.label_selector.clone();
        if let Some(keys) = c.match_label_keys.as_ref().filter(|k| !k.is_empty()) {
            let labels = pod.labels();
            let extra: Vec<(String, String)> = keys
                .iter()
                .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            if !extra.is_empty() {
                let sel = selector.get_or_insert_with(LabelSelector::default);
                let ml = sel.match_labels.get_or_insert_with(Default::default);
                for (k, v) in extra {
                    ml.insert(k, v);
                }
            }
        }
        let matcher = PodMatcher::new(NsScope::List(vec![pod.namespace.clone()]), selector);
        let self_match = matcher.matches_pod(pod);
        out.push(Constraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            matcher,
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            self_match,
        });
    }
    out
}

fn has_all_keys(node: &NodeInfo, cs: &[Constraint]) -> bool {
    let labels = node.labels();
    cs.iter().all(|c| labels.contains_key(&c.topology_key))
}

/// Whether `node` counts for constraint `c` (upstream `matchNodeInclusionPolicies`);
/// `affinity_ok` is evaluated lazily once per node.
fn included(
    c: &Constraint,
    spec: &PodSpec,
    node: &NodeInfo,
    affinity_ok: &mut Option<bool>,
) -> bool {
    if c.honor_affinity && !*affinity_ok.get_or_insert_with(|| required_matches(spec, node)) {
        return false;
    }
    if c.honor_taints
        && find_untolerated_do_not_schedule(
            node.taints(),
            spec.tolerations.as_deref().unwrap_or_default(),
        )
        .is_some()
    {
        return false;
    }
    true
}

/// Counts computed once per cycle for the filter.
#[derive(Debug)]
pub struct PreFilterState<'a> {
    constraints: Vec<Constraint>,
    /// Matching pods per domain; a domain without an entry has none.
    counts: Vec<HashMap<&'a str, i64>>,
    min: Vec<i64>,
}

/// PreFilter: `None` when the pod has no `DoNotSchedule` constraint. `nodes` are all the
/// nodes of `cache`.
pub fn prefilter<'a>(
    pod: &PodInfo,
    nodes: &[&'a NodeInfo],
    cache: &'a Cache,
) -> Option<PreFilterState<'a>> {
    let constraints = constraints(pod, "DoNotSchedule");
    if constraints.is_empty() {
        return None;
    }
    let spec = pod.pod.spec.as_ref()?;
    // Fast path: every node with the topology key is eligible (no node affinity to honor, no
    // taints policy, one key) and the selector is one label: only the nodes with matching
    // pods are visited, through the cache's pod label index.
    let fast = !has_required(spec)
        && constraints.iter().all(|c| {
            !c.honor_taints
                && c.matcher.single_key().is_some()
                && c.topology_key == constraints[0].topology_key
        });
    if fast {
        let mut counts: Vec<HashMap<&'a str, i64>> = Vec::with_capacity(constraints.len());
        let mut domains = Vec::with_capacity(constraints.len());
        for c in &constraints {
            let mut m: HashMap<&'a str, i64> = HashMap::new();
            let key = c.matcher.single_key()?;
            for (slot, n) in cache.nodes_with_pod_label(key) {
                let node: &'a NodeInfo = cache.node(slot);
                if node.node.is_none() {
                    continue;
                }
                if let Some(v) = node.labels().get(&c.topology_key) {
                    let cnt = if node.terminating > 0 {
                        c.matcher.count(node, true)
                    } else {
                        i64::from(n)
                    };
                    *m.entry(v.as_str()).or_insert(0) += cnt;
                }
            }
            counts.push(m);
            domains.push(cache.label_domains(&c.topology_key));
        }
        return Some(finish(constraints, counts, domains));
    }
    let mut counts: Vec<HashMap<&'a str, i64>> = constraints
        .iter()
        .map(|c| {
            HashMap::with_capacity(if c.topology_key == HOSTNAME {
                nodes.len()
            } else {
                0
            })
        })
        .collect();
    for node in nodes {
        let node: &'a NodeInfo = node;
        if !has_all_keys(node, &constraints) {
            continue;
        }
        let mut affinity_ok = None;
        let labels = node.labels();
        for (i, c) in constraints.iter().enumerate() {
            if !included(c, spec, node, &mut affinity_ok) {
                continue;
            }
            let Some(value) = labels.get(&c.topology_key) else {
                continue;
            };
            let n = c.matcher.count(node, true);
            *counts[i].entry(value.as_str()).or_insert(0) += n;
        }
    }
    let domains = counts.iter().map(HashMap::len).collect();
    Some(finish(constraints, counts, domains))
}

/// The global minimum per constraint (upstream critical paths with minDomains).
fn finish<'a>(
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<&'a str, i64>>,
    domains: Vec<usize>,
) -> PreFilterState<'a> {
    let min = constraints
        .iter()
        .zip(&counts)
        .zip(&domains)
        .map(|((c, m), d)| {
            if (*d as i64) < c.min_domains || m.len() < *d {
                0
            } else {
                m.values().copied().min().unwrap_or(i64::from(i32::MAX))
            }
        })
        .collect();
    PreFilterState {
        constraints,
        counts,
        min,
    }
}

/// The filter.
pub fn filter(state: &PreFilterState<'_>, node: &NodeInfo) -> FilterResult {
    let labels = node.labels();
    for (i, c) in state.constraints.iter().enumerate() {
        let Some(value) = labels.get(&c.topology_key) else {
            return Err(Status::unresolvable(
                Plugin::PodTopologySpread,
                ERR_REASON_NODE_LABEL_NOT_MATCH,
            ));
        };
        let matched = state.counts[i].get(value.as_str()).copied().unwrap_or(0);
        let skew = matched + i64::from(c.self_match) - state.min[i];
        if skew > c.max_skew {
            return Err(Status::unschedulable(
                Plugin::PodTopologySpread,
                ERR_REASON_CONSTRAINTS_NOT_MATCH,
            ));
        }
    }
    Ok(())
}

/// Scores of the feasible nodes (already normalized), or `None` when the pod has no
/// `ScheduleAnyway` constraint (upstream PreScore Skip).
pub fn scores(pod: &PodInfo, feasible: &[&NodeInfo], all: &[&NodeInfo]) -> Option<Vec<i64>> {
    let constraints = constraints(pod, "ScheduleAnyway");
    if constraints.is_empty() || all.is_empty() {
        return None;
    }
    let spec = pod.pod.spec.as_ref()?;
    let ignored: Vec<bool> = feasible
        .iter()
        .map(|n| !has_all_keys(n, &constraints))
        .collect();
    let n_ignored = ignored.iter().filter(|i| **i).count();
    let mut counts: Vec<HashMap<&str, i64>> = vec![HashMap::new(); constraints.len()];
    for (node, ign) in feasible.iter().zip(&ignored) {
        if *ign {
            continue;
        }
        let labels = node.labels();
        for (i, c) in constraints.iter().enumerate() {
            if c.topology_key == HOSTNAME {
                continue;
            }
            if let Some(v) = labels.get(&c.topology_key) {
                counts[i].entry(v.as_str()).or_insert(0);
            }
        }
    }
    let weights: Vec<f64> = constraints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let size = if c.topology_key == HOSTNAME {
                feasible.len() - n_ignored
            } else {
                counts[i].len()
            };
            ((size + 2) as f64).ln()
        })
        .collect();
    if constraints.iter().any(|c| c.topology_key != HOSTNAME) {
        for node in all {
            if !has_all_keys(node, &constraints) {
                continue;
            }
            let mut affinity_ok = None;
            let labels = node.labels();
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key == HOSTNAME || !included(c, spec, node, &mut affinity_ok) {
                    continue;
                }
                let Some(v) = labels.get(&c.topology_key) else {
                    continue;
                };
                if let Some(cnt) = counts[i].get_mut(v.as_str()) {
                    *cnt += c.matcher.count(node, true);
                }
            }
        }
    }
    let mut raw: Vec<i64> = feasible
        .iter()
        .zip(&ignored)
        .map(|(node, ign)| {
            if *ign {
                return 0;
            }
            let labels = node.labels();
            let mut score = 0f64;
            for (i, c) in constraints.iter().enumerate() {
                let Some(v) = labels.get(&c.topology_key) else {
                    continue;
                };
                let cnt = if c.topology_key == HOSTNAME {
                    c.matcher.count(node, true)
                } else {
                    counts[i].get(v.as_str()).copied().unwrap_or(0)
                };
                score += cnt as f64 * weights[i] + (c.max_skew - 1) as f64;
            }
            score.round() as i64
        })
        .collect();
    // NormalizeScore.
    let mut min = i64::MAX;
    let mut max = 0i64;
    for (s, ign) in raw.iter().zip(&ignored) {
        if *ign {
            continue;
        }
        min = min.min(*s);
        max = max.max(*s);
    }
    for (s, ign) in raw.iter_mut().zip(&ignored) {
        if *ign {
            *s = 0;
        } else if max == 0 {
            *s = MAX_NODE_SCORE;
        } else {
            *s = MAX_NODE_SCORE * (max + min - *s) / max;
        }
    }
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{cache_with, labels, node, pod};
    use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
    use std::sync::Arc;

    fn spread(mut p: Pod, key: &str, skew: i32, action: &str, min_domains: Option<i32>) -> Pod {
        let spec = p.spec.as_mut().unwrap();
        spec.topology_spread_constraints
            .get_or_insert_with(Vec::new)
            .push(TopologySpreadConstraint {
                max_skew: skew,
                topology_key: key.into(),
                when_unsatisfiable: action.into(),
                label_selector: Some(LabelSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    match_expressions: None,
                }),
                min_domains,
                ..Default::default()
            });
        p
    }

    fn zone_nodes() -> Vec<k8s_openapi::api::core::v1::Node> {
        vec![
            node("a1", &[("zone", "a")], "8", "8Gi", "110"),
            node("a2", &[("zone", "a")], "8", "8Gi", "110"),
            node("b1", &[("zone", "b")], "8", "8Gi", "110"),
            node("x", &[], "8", "8Gi", "110"),
        ]
    }

    #[test]
    fn do_not_schedule_respects_max_skew() {
        let web = |n: &str| pod(n, &[("app", "web")], &[]);
        let cache = cache_with(
            zone_nodes(),
            vec![
                (web("w1"), "a1"),
                (web("w2"), "a2"),
                (pod("o", &[("app", "db")], &[]), "b1"),
            ],
        );
        let nodes: Vec<&NodeInfo> = cache.nodes().collect();
        let p = PodInfo::new(Arc::new(spread(
            web("new"),
            "zone",
            1,
            "DoNotSchedule",
            None,
        )));
        let st = prefilter(&p, &nodes, &cache).unwrap();
        let by_name = |n: &str| *nodes.iter().find(|x| x.name == n).unwrap();
        // zone a has 2, zone b 0: a → skew 3 > 1.
        assert_eq!(
            filter(&st, by_name("a1")).unwrap_err().reasons,
            vec![ERR_REASON_CONSTRAINTS_NOT_MATCH]
        );
        assert!(filter(&st, by_name("b1")).is_ok());
        let err = filter(&st, by_name("x")).unwrap_err();
        assert_eq!(err.reasons, vec![ERR_REASON_NODE_LABEL_NOT_MATCH]);
        assert_eq!(
            err.code,
            crate::framework::Code::UnschedulableAndUnresolvable
        );
        // minDomains 3 with 2 domains: global minimum is 0, so b (0 + 1 - 0) passes and a fails.
        let p = PodInfo::new(Arc::new(spread(
            web("new"),
            "zone",
            2,
            "DoNotSchedule",
            Some(3),
        )));
        let st = prefilter(&p, &nodes, &cache).unwrap();
        assert!(filter(&st, by_name("a1")).is_err());
        assert!(filter(&st, by_name("b1")).is_ok());
        // Pods of other namespaces and terminating pods do not count.
        let mut other_ns = web("w3");
        other_ns.metadata.namespace = Some("other".into());
        let mut term = web("w4");
        term.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        let cache = cache_with(
            zone_nodes(),
            vec![(other_ns, "b1"), (term, "b1"), (web("w1"), "a1")],
        );
        let nodes: Vec<&NodeInfo> = cache.nodes().collect();
        let p = PodInfo::new(Arc::new(spread(
            web("new"),
            "zone",
            1,
            "DoNotSchedule",
            None,
        )));
        let st = prefilter(&p, &nodes, &cache).unwrap();
        let by_name = |n: &str| *nodes.iter().find(|x| x.name == n).unwrap();
        assert!(filter(&st, by_name("b1")).is_ok());
        assert!(
            filter(&st, by_name("a2")).is_err(),
            "a has 1, b 0: 1+1-0 > 1"
        );
        assert!(prefilter(&PodInfo::new(Arc::new(web("plain"))), &nodes, &cache).is_none());
    }

    #[test]
    fn fast_and_general_paths_agree() {
        let web = |n: &str| pod(n, &[("app", "web"), ("tier", "x")], &[]);
        let mut term = web("t");
        term.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        let cache = cache_with(
            zone_nodes(),
            vec![
                (web("w1"), "a1"),
                (web("w2"), "b1"),
                (web("w3"), "b1"),
                (term, "a2"),
            ],
        );
        let nodes: Vec<&NodeInfo> = cache.nodes().collect();
        let one = PodInfo::new(Arc::new(spread(
            web("new"),
            "zone",
            1,
            "DoNotSchedule",
            None,
        )));
        // Two requirements: the general path.
        let mut two = spread(web("new"), "zone", 1, "DoNotSchedule", None);
        two.spec
            .as_mut()
            .unwrap()
            .topology_spread_constraints
            .as_mut()
            .unwrap()[0]
            .label_selector
            .as_mut()
            .unwrap()
            .match_labels
            .as_mut()
            .unwrap()
            .insert("tier".into(), "x".into());
        let two = PodInfo::new(Arc::new(two));
        let fast = prefilter(&one, &nodes, &cache).unwrap();
        let general = prefilter(&two, &nodes, &cache).unwrap();
        assert_eq!(fast.min, general.min);
        for n in &nodes {
            assert_eq!(
                filter(&fast, n).is_ok(),
                filter(&general, n).is_ok(),
                "{}",
                n.name
            );
        }
        // zone a: 1 (terminating pod skipped), zone b: 2 → only zone a fits.
        let by_name = |n: &str| *nodes.iter().find(|x| x.name == n).unwrap();
        assert!(filter(&fast, by_name("a2")).is_ok());
        assert!(filter(&fast, by_name("b1")).is_err());
        // Hostname spreading: nodes without matching pods make the minimum 0.
        let host = PodInfo::new(Arc::new(spread(
            web("new"),
            HOSTNAME,
            1,
            "DoNotSchedule",
            None,
        )));
        let st = prefilter(&host, &nodes, &cache).unwrap();
        assert_eq!(st.min, vec![0]);
        assert!(filter(&st, by_name("a1")).is_err(), "1 + 1 - 0 > 1");
        assert!(
            filter(&st, by_name("a2")).is_ok(),
            "only a terminating pod there"
        );
        assert!(filter(&st, by_name("x")).is_ok());
    }

    #[test]
    fn schedule_anyway_prefers_emptier_domains() {
        let web = |n: &str| pod(n, &[("app", "web")], &[]);
        let cache = cache_with(zone_nodes(), vec![(web("w1"), "a1"), (web("w2"), "a1")]);
        let nodes: Vec<&NodeInfo> = cache.nodes().collect();
        let p = PodInfo::new(Arc::new(spread(
            web("new"),
            HOSTNAME,
            1,
            "ScheduleAnyway",
            None,
        )));
        let s = scores(&p, &nodes, &nodes).unwrap();
        let score_of = |n: &str| s[nodes.iter().position(|x| x.name == n).unwrap()];
        assert!(score_of("a2") > score_of("a1"));
        assert_eq!(score_of("a2"), MAX_NODE_SCORE);
        assert_eq!(score_of("b1"), score_of("a2"));
        let p = PodInfo::new(Arc::new(spread(
            web("new"),
            "zone",
            1,
            "ScheduleAnyway",
            None,
        )));
        let s = scores(&p, &nodes, &nodes).unwrap();
        let score_of = |n: &str| s[nodes.iter().position(|x| x.name == n).unwrap()];
        assert!(score_of("b1") > score_of("a2"));
        assert_eq!(score_of("x"), 0, "nodes without the key are ignored");
    }
}
