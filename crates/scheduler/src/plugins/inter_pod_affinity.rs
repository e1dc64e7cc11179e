//! InterPodAffinity: required pod affinity and anti-affinity of the incoming pod, and the
//! required anti-affinity of existing pods against it (filter, with counts per topology
//! pair computed once per cycle); preferred terms of both sides (score).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::cache::NodeInfo;
use crate::framework::{FilterResult, MAX_NODE_SCORE, Plugin, Status};
use crate::types::{AffinityTerm, PodInfo, PodMatcher};

/// Upstream `ErrReasonExistingAntiAffinityRulesNotMatch`.
pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// Upstream `ErrReasonAffinityRulesNotMatch`.
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// Upstream `ErrReasonAntiAffinityRulesNotMatch`.
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";

/// Namespace information the terms need.
pub struct Namespaces<'a> {
    /// Labels of the incoming pod's namespace (for existing pods' namespace selectors).
    pub incoming_labels: Option<&'a BTreeMap<String, String>>,
    /// The namespaces a namespace selector selects (for the incoming pod's terms).
    pub select: &'a dyn Fn(&LabelSelector) -> Vec<String>,
}

type Pair<'a> = (&'a str, &'a str);

/// Counts computed once per cycle for the filter.
#[derive(Debug, Default)]
pub struct PreFilterState<'a> {
    /// Topology key → value → existing pods whose required anti-affinity matches the pod.
    existing_anti: HashMap<&'a str, HashMap<&'a str, i64>>,
    affinity_counts: HashMap<Pair<'a>, i64>,
    anti_counts: HashMap<Pair<'a>, i64>,
    affinity_terms: &'a [AffinityTerm],
    anti_terms: &'a [AffinityTerm],
    matches_own_affinity: bool,
}

fn matchers(terms: &[AffinityTerm], ns: &Namespaces<'_>) -> Vec<PodMatcher> {
    terms
        .iter()
        .map(|t| PodMatcher::new(t.scope(ns.select), t.selector.clone()))
        .collect()
}

/// How many pods on `node` match every matcher.
fn count_all(ms: &[PodMatcher], node: &NodeInfo) -> i64 {
    match ms {
        [] => 0,
        [m] => m.count(node, false),
        _ => node
            .pods
            .iter()
            .filter(|p| ms.iter().all(|m| m.matches_pod(p)))
            .count() as i64,
    }
}

/// PreFilter: `None` when neither the pod nor any existing pod has required terms that
/// apply (upstream Skip).
pub fn prefilter<'a>(
    pod: &'a PodInfo,
    nodes: &[&'a NodeInfo],
    ns: &Namespaces<'_>,
) -> Option<PreFilterState<'a>> {
    let any_existing = nodes.iter().any(|n| n.pods_with_required_anti_affinity > 0);
    let aff = pod.affinity.as_deref();
    let (affinity_terms, anti_terms) = aff.map_or((&[][..], &[][..]), |a| {
        (&a.required_affinity[..], &a.required_anti_affinity[..])
    });
    if !any_existing && affinity_terms.is_empty() && anti_terms.is_empty() {
        return None;
    }
    let mut st = PreFilterState {
        affinity_terms,
        anti_terms,
        ..Default::default()
    };
    if any_existing {
        let mut memo: HashMap<usize, Vec<bool>> = HashMap::new();
        for node in nodes {
            let node: &'a NodeInfo = node;
            if node.pods_with_required_anti_affinity == 0 {
                continue;
            }
            let labels = node.labels();
            for (group, count) in &node.affinity_groups {
                if group.required_anti_affinity.is_empty() {
                    continue;
                }
                // Each distinct affinity is matched against the pod once per cycle.
                let matched = memo.entry(Arc::as_ptr(group) as usize).or_insert_with(|| {
                    group
                        .required_anti_affinity
                        .iter()
                        .map(|t| t.matches(&pod.namespace, pod.labels(), ns.incoming_labels))
                        .collect()
                });
                for (t, m) in group.required_anti_affinity.iter().zip(matched.iter()) {
                    if *m && let Some((k, v)) = labels.get_key_value(&t.topology_key) {
                        *st.existing_anti
                            .entry(k.as_str())
                            .or_default()
                            .entry(v.as_str())
                            .or_insert(0) += i64::from(*count);
                    }
                }
            }
        }
    }
    if !affinity_terms.is_empty() || !anti_terms.is_empty() {
        let aff_m = matchers(affinity_terms, ns);
        let anti_m = matchers(anti_terms, ns);
        st.matches_own_affinity = !aff_m.is_empty() && aff_m.iter().all(|m| m.matches_pod(pod));
        for node in nodes {
            let node: &'a NodeInfo = node;
            if node.pods.is_empty() {
                continue;
            }
            let labels = node.labels();
            if !aff_m.is_empty() {
                let n = count_all(&aff_m, node);
                if n > 0 {
                    for t in affinity_terms {
                        if let Some((k, v)) = labels.get_key_value(&t.topology_key) {
                            *st.affinity_counts
                                .entry((k.as_str(), v.as_str()))
                                .or_insert(0) += n;
                        }
                    }
                }
            }
            for (t, m) in anti_terms.iter().zip(&anti_m) {
                let n = m.count(node, false);
                if n > 0
                    && let Some((k, v)) = labels.get_key_value(&t.topology_key)
                {
                    *st.anti_counts.entry((k.as_str(), v.as_str())).or_insert(0) += n;
                }
            }
        }
    }
    Some(st)
}

/// The filter.
pub fn filter(st: &PreFilterState<'_>, node: &NodeInfo) -> FilterResult {
    let labels = node.labels();
    if !st.affinity_terms.is_empty() {
        let mut pods_exist = true;
        for t in st.affinity_terms {
            let Some(v) = labels.get(&t.topology_key) else {
                return Err(Status::unresolvable(
                    Plugin::InterPodAffinity,
                    ERR_REASON_AFFINITY,
                ));
            };
            if st
                .affinity_counts
                .get(&(t.topology_key.as_str(), v.as_str()))
                .copied()
                .unwrap_or(0)
                <= 0
            {
                pods_exist = false;
            }
        }
        // The first pod of a group with affinity to itself may go anywhere.
        if !(pods_exist || st.affinity_counts.is_empty() && st.matches_own_affinity) {
            return Err(Status::unresolvable(
                Plugin::InterPodAffinity,
                ERR_REASON_AFFINITY,
            ));
        }
    }
    for t in st.anti_terms {
        if let Some(v) = labels.get(&t.topology_key)
            && st
                .anti_counts
                .get(&(t.topology_key.as_str(), v.as_str()))
                .copied()
                .unwrap_or(0)
                > 0
        {
            return Err(Status::unschedulable(
                Plugin::InterPodAffinity,
                ERR_REASON_ANTI_AFFINITY,
            ));
        }
    }
    for (k, values) in &st.existing_anti {
        if let Some(v) = labels.get(*k)
            && values.get(v.as_str()).is_some_and(|n| *n > 0)
        {
            return Err(Status::unschedulable(
                Plugin::InterPodAffinity,
                ERR_REASON_EXISTING_ANTI_AFFINITY,
            ));
        }
    }
    Ok(())
}

/// Scores of the feasible nodes (already normalized), or `None` when no preferred term
/// applies (upstream PreScore Skip).
pub fn scores(
    pod: &PodInfo,
    feasible: &[&NodeInfo],
    all: &[&NodeInfo],
    ns: &Namespaces<'_>,
) -> Option<Vec<i64>> {
    let aff = pod.affinity.as_deref();
    let pref_aff = aff.map_or(&[][..], |a| &a.preferred_affinity[..]);
    let pref_anti = aff.map_or(&[][..], |a| &a.preferred_anti_affinity[..]);
    let has_constraints = !pref_aff.is_empty() || !pref_anti.is_empty();
    if !has_constraints && !all.iter().any(|n| n.pods_with_affinity > 0) {
        return None;
    }
    let aff_m = matchers(pref_aff, ns);
    let anti_m = matchers(pref_anti, ns);
    let mut topo: HashMap<&str, HashMap<&str, i64>> = HashMap::new();
    let mut memo: HashMap<usize, Vec<(String, i64)>> = HashMap::new();
    for node in all {
        let labels = node.labels();
        if labels.is_empty() {
            continue;
        }
        if !has_constraints && node.pods_with_affinity == 0 {
            continue;
        }
        if has_constraints {
            for (t, m) in pref_aff.iter().zip(&aff_m) {
                let n = m.count(node, false);
                if n > 0
                    && let Some((k, v)) = labels.get_key_value(&t.topology_key)
                {
                    *topo.entry(k).or_default().entry(v).or_insert(0) += n * i64::from(t.weight);
                }
            }
            for (t, m) in pref_anti.iter().zip(&anti_m) {
                let n = m.count(node, false);
                if n > 0
                    && let Some((k, v)) = labels.get_key_value(&t.topology_key)
                {
                    *topo.entry(k).or_default().entry(v).or_insert(0) -= n * i64::from(t.weight);
                }
            }
        }
        if node.pods_with_affinity == 0 {
            continue;
        }
        for (group, count) in &node.affinity_groups {
            // (topology key, weight) of the group's terms that match the pod, once per cycle.
            let contributions = memo.entry(Arc::as_ptr(group) as usize).or_insert_with(|| {
                let mut out: Vec<(String, i64)> = Vec::new();
                let mut apply = |terms: &[AffinityTerm], sign: i64| {
                    for t in terms {
                        if t.matches(&pod.namespace, pod.labels(), ns.incoming_labels) {
                            out.push((t.topology_key.clone(), sign * i64::from(t.weight)));
                        }
                    }
                };
                // Existing pods' required affinity counts with hardPodAffinityWeight 1.
                apply(&group.required_affinity, 1);
                apply(&group.preferred_affinity, 1);
                apply(&group.preferred_anti_affinity, -1);
                out
            });
            for (key, w) in contributions.iter() {
                if let Some((k, v)) = labels.get_key_value(key) {
                    *topo.entry(k).or_default().entry(v).or_insert(0) += w * i64::from(*count);
                }
            }
        }
    }
    if topo.values().all(HashMap::is_empty) {
        return None;
    }
    let raw: Vec<i64> = feasible
        .iter()
        .map(|node| {
            let labels = node.labels();
            topo.iter()
                .map(|(k, vals)| {
                    labels
                        .get(*k)
                        .and_then(|v| vals.get(v.as_str()))
                        .copied()
                        .unwrap_or(0)
                })
                .sum()
        })
        .collect();
    let min = raw.iter().copied().min().unwrap_or(0);
    let max = raw.iter().copied().max().unwrap_or(0);
    let diff = max - min;
    Some(
        raw.into_iter()
            .map(|s| {
                if diff > 0 {
                    (MAX_NODE_SCORE as f64 * ((s - min) as f64 / diff as f64)) as i64
                } else {
                    0
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{cache_with, labels, node, pod};
    use k8s_openapi::api::core::v1::{
        Affinity, Pod, PodAffinity as K8sPodAffinity, PodAffinityTerm, PodAntiAffinity,
        WeightedPodAffinityTerm,
    };

    fn term(app: &str, key: &str) -> PodAffinityTerm {
        PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some(labels(&[("app", app)])),
                match_expressions: None,
            }),
            topology_key: key.into(),
            ..Default::default()
        }
    }

    fn with_affinity(
        mut p: Pod,
        aff: Option<Vec<PodAffinityTerm>>,
        anti: Option<Vec<PodAffinityTerm>>,
    ) -> Pod {
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            pod_affinity: aff.map(|t| K8sPodAffinity {
                required_during_scheduling_ignored_during_execution: Some(t),
                ..Default::default()
            }),
            pod_anti_affinity: anti.map(|t| PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(t),
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    }

    fn nodes() -> Vec<k8s_openapi::api::core::v1::Node> {
        vec![
            node("a1", &[("zone", "a")], "8", "8Gi", "110"),
            node("a2", &[("zone", "a")], "8", "8Gi", "110"),
            node("b1", &[("zone", "b")], "8", "8Gi", "110"),
        ]
    }

    fn no_ns() -> Namespaces<'static> {
        static SELECT: fn(&LabelSelector) -> Vec<String> = |_| Vec::new();
        Namespaces {
            incoming_labels: None,
            select: &SELECT,
        }
    }

    fn check(cache: &crate::cache::Cache, p: &PodInfo) -> Vec<(String, Result<(), Vec<String>>)> {
        let all: Vec<&NodeInfo> = cache.nodes().collect();
        let ns = no_ns();
        let st = prefilter(p, &all, &ns).unwrap();
        let mut out: Vec<(String, Result<(), Vec<String>>)> = all
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    filter(&st, n).map_err(|s| s.reasons.iter().map(|r| r.to_string()).collect()),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn required_affinity_follows_matching_pods_or_allows_the_first() {
        let cache = cache_with(nodes(), vec![(pod("db", &[("app", "db")], &[]), "a1")]);
        let p = PodInfo::new(Arc::new(with_affinity(
            pod("web", &[("app", "web")], &[]),
            Some(vec![term("db", "zone")]),
            None,
        )));
        let r = check(&cache, &p);
        assert!(
            r[0].1.is_ok() && r[1].1.is_ok(),
            "zone a has a db pod: {r:?}"
        );
        assert_eq!(r[2].1, Err(vec![ERR_REASON_AFFINITY.to_string()]));
        // No pod matches anywhere, but the pod matches its own term: allowed anywhere.
        let cache = cache_with(nodes(), vec![]);
        let own = PodInfo::new(Arc::new(with_affinity(
            pod("web", &[("app", "web")], &[]),
            Some(vec![term("web", "zone")]),
            None,
        )));
        assert!(check(&cache, &own).iter().all(|(_, r)| r.is_ok()));
        assert!(check(&cache, &p).iter().all(|(_, r)| r.is_err()));
    }

    #[test]
    fn anti_affinity_both_ways() {
        let existing = with_affinity(
            pod("guard", &[("app", "guard")], &[]),
            None,
            Some(vec![term("web", "zone")]),
        );
        let cache = cache_with(
            nodes(),
            vec![(existing, "a1"), (pod("w", &[("app", "web")], &[]), "b1")],
        );
        // A web pod is kept out of zone a by the guard, and its own anti-affinity to other
        // web pods keeps it out of zone b.
        let p = PodInfo::new(Arc::new(with_affinity(
            pod("web", &[("app", "web")], &[]),
            None,
            Some(vec![term("web", "zone")]),
        )));
        let r = check(&cache, &p);
        assert_eq!(
            r[0].1,
            Err(vec![ERR_REASON_EXISTING_ANTI_AFFINITY.to_string()])
        );
        assert_eq!(
            r[1].1,
            Err(vec![ERR_REASON_EXISTING_ANTI_AFFINITY.to_string()])
        );
        assert_eq!(r[2].1, Err(vec![ERR_REASON_ANTI_AFFINITY.to_string()]));
        // Another namespace is out of the guard's scope.
        let mut other = pod("web", &[("app", "web")], &[]);
        other.metadata.namespace = Some("other".into());
        let r = check(&cache, &PodInfo::new(Arc::new(other)));
        assert!(r.iter().all(|(_, r)| r.is_ok()), "{r:?}");
    }

    #[test]
    fn preferred_terms_score_topology_domains() {
        let cache = cache_with(
            nodes(),
            vec![
                (pod("c1", &[("app", "cache")], &[]), "a1"),
                (pod("c2", &[("app", "cache")], &[]), "a2"),
            ],
        );
        let mut p = pod("web", &[("app", "web")], &[]);
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            pod_affinity: Some(K8sPodAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    WeightedPodAffinityTerm {
                        weight: 10,
                        pod_affinity_term: term("cache", "zone"),
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        });
        let p = PodInfo::new(Arc::new(p));
        let all: Vec<&NodeInfo> = cache.nodes().collect();
        let s = scores(&p, &all, &all, &no_ns()).unwrap();
        let score_of = |n: &str| s[all.iter().position(|x| x.name == n).unwrap()];
        assert_eq!(score_of("a1"), MAX_NODE_SCORE);
        assert_eq!(score_of("a2"), MAX_NODE_SCORE);
        assert_eq!(score_of("b1"), 0);
        // Without preferred terms nor pods with affinity, the score is skipped.
        let plain = PodInfo::new(Arc::new(pod("x", &[], &[])));
        assert!(scores(&plain, &all, &all, &no_ns()).is_none());
    }
}
