//! NodeAffinity: `spec.nodeSelector` and required node affinity (filter), preferred node
//! affinity (score); required `matchFields` on `metadata.name` restrict the nodes evaluated
//! (PreFilter result).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, PodSpec};

use crate::cache::NodeInfo;
use crate::framework::{FilterResult, Plugin, Status};

/// Upstream `ErrReasonPod`.
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
/// Upstream `errReasonConflict`.
pub const ERR_REASON_CONFLICT: &str = "pod affinity terms conflict";

/// Whether a node selector requirement matches labels (upstream `labels.Selector` semantics).
pub fn requirement_matches(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let got = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => got.is_some_and(|v| values.contains(v)),
        "NotIn" => got.is_none_or(|v| !values.contains(v)),
        "Exists" => got.is_some(),
        "DoesNotExist" => got.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (got, values) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(b)) => {
                    if r.operator == "Gt" {
                        v > b
                    } else {
                        v < b
                    }
                }
                _ => false,
            }
        }
        _ => false,
    }
}

fn field_matches(r: &NodeSelectorRequirement, node_name: &str) -> bool {
    if r.key != "metadata.name" {
        return false;
    }
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => values.iter().any(|v| v == node_name),
        "NotIn" => !values.iter().any(|v| v == node_name),
        _ => false,
    }
}

/// Whether a node selector term matches; a term without requirements matches nothing.
pub fn term_matches(t: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.labels();
    exprs.iter().all(|r| requirement_matches(r, labels))
        && fields.iter().all(|r| field_matches(r, &node.name))
}

/// Whether the node satisfies the pod's nodeSelector and required node affinity (upstream
/// `RequiredNodeAffinity.Match`).
pub fn required_matches(spec: &PodSpec, node: &NodeInfo) -> bool {
    if let Some(sel) = spec.node_selector.as_ref()
        && !sel.is_empty()
    {
        let labels = node.labels();
        if !sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    let Some(required) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    else {
        return true;
    };
    required
        .node_selector_terms
        .iter()
        .any(|t| term_matches(t, node))
}

/// Whether the pod has a nodeSelector or a required node affinity.
pub fn has_required(spec: &PodSpec) -> bool {
    spec.node_selector.as_ref().is_some_and(|s| !s.is_empty())
        || spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .is_some_and(|na| {
                na.required_during_scheduling_ignored_during_execution
                    .is_some()
            })
}

/// The nodes the pod can only go to when every required term names nodes with
/// `matchFields: metadata.name In` (upstream PreFilter result): `Ok(None)` = all nodes,
/// `Err` when the terms conflict.
pub fn prefilter_node_names(spec: &PodSpec) -> Result<Option<BTreeSet<String>>, Status> {
    let Some(required) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    else {
        return Ok(None);
    };
    let mut names: Option<BTreeSet<String>> = None;
    for t in &required.node_selector_terms {
        let mut term_names: Option<BTreeSet<String>> = None;
        for r in t.match_fields.iter().flatten() {
            if r.key == "metadata.name" && r.operator == "In" {
                let s: BTreeSet<String> = r.values.iter().flatten().cloned().collect();
                term_names = Some(match term_names {
                    None => s,
                    Some(prev) => prev.intersection(&s).cloned().collect(),
                });
            }
        }
        let Some(tn) = term_names else {
            return Ok(None);
        };
        names.get_or_insert_with(BTreeSet::new).extend(tn);
    }
    match names {
        Some(n) if n.is_empty() => Err(Status::unresolvable(
            Plugin::NodeAffinity,
            ERR_REASON_CONFLICT,
        )),
        other => Ok(other),
    }
}

/// The filter.
pub fn filter(spec: &PodSpec, node: &NodeInfo) -> FilterResult {
    if required_matches(spec, node) {
        Ok(())
    } else {
        Err(Status::unresolvable(Plugin::NodeAffinity, ERR_REASON_POD))
    }
}

/// Whether the pod has preferred node affinity terms (otherwise the score is skipped).
pub fn has_preferred(spec: &PodSpec) -> bool {
    spec.affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_some_and(|p| !p.is_empty())
}

/// The raw score: the summed weights of the matching preferred terms.
pub fn score(spec: &PodSpec, node: &NodeInfo) -> i64 {
    spec.affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map_or(0, |terms| {
            terms
                .iter()
                .filter(|t| t.weight != 0 && term_matches(&t.preference, node))
                .map(|t| i64::from(t.weight))
                .sum()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{labels, node, pod};
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity, NodeSelector, PreferredSchedulingTerm,
    };
    use std::sync::Arc;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn spec_with(
        required: Vec<NodeSelectorTerm>,
        preferred: Vec<(i32, NodeSelectorTerm)>,
    ) -> PodSpec {
        let mut spec = pod("p", &[], &[]).spec.unwrap();
        spec.affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: (!required.is_empty())
                    .then_some(NodeSelector {
                        node_selector_terms: required,
                    }),
                preferred_during_scheduling_ignored_during_execution: Some(
                    preferred
                        .into_iter()
                        .map(|(weight, preference)| PreferredSchedulingTerm { weight, preference })
                        .collect(),
                ),
            }),
            ..Default::default()
        });
        spec
    }

    fn ni(name: &str, l: &[(&str, &str)]) -> NodeInfo {
        NodeInfo::for_node(Arc::new(node(name, l, "1", "1Gi", "10")))
    }

    #[test]
    fn node_selector_and_required_terms() {
        let mut spec = pod("p", &[], &[]).spec.unwrap();
        spec.node_selector = Some(labels(&[("disk", "ssd")]));
        assert!(filter(&spec, &ni("a", &[("disk", "ssd")])).is_ok());
        let err = filter(&spec, &ni("b", &[("disk", "hdd")])).unwrap_err();
        assert_eq!(err.reasons, vec![ERR_REASON_POD]);

        let term = |rs: Vec<NodeSelectorRequirement>| NodeSelectorTerm {
            match_expressions: Some(rs),
            match_fields: None,
        };
        // Terms are ORed, requirements ANDed.
        let spec = spec_with(
            vec![
                term(vec![
                    req("zone", "In", &["a", "b"]),
                    req("gpu", "DoesNotExist", &[]),
                ]),
                term(vec![req("cores", "Gt", &["16"])]),
            ],
            vec![],
        );
        assert!(filter(&spec, &ni("a", &[("zone", "a")])).is_ok());
        assert!(filter(&spec, &ni("a", &[("zone", "a"), ("gpu", "1")])).is_err());
        assert!(filter(&spec, &ni("a", &[("cores", "32")])).is_ok());
        assert!(filter(&spec, &ni("a", &[("cores", "8")])).is_err());
        assert!(filter(&spec, &ni("a", &[("zone", "c")])).is_err());
        // An empty term matches nothing.
        let spec = spec_with(vec![NodeSelectorTerm::default()], vec![]);
        assert!(filter(&spec, &ni("a", &[])).is_err());
        // NotIn matches a missing label.
        assert!(requirement_matches(
            &req("x", "NotIn", &["1"]),
            &labels(&[])
        ));
    }

    #[test]
    fn match_fields_restrict_nodes() {
        let fields = |names: &[&str]| NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.name", "In", names)]),
        };
        let spec = spec_with(vec![fields(&["n1"]), fields(&["n2"])], vec![]);
        let names = prefilter_node_names(&spec).unwrap().unwrap();
        assert_eq!(names.into_iter().collect::<Vec<_>>(), vec!["n1", "n2"]);
        assert!(filter(&spec, &ni("n1", &[])).is_ok());
        assert!(filter(&spec, &ni("n3", &[])).is_err());
        let conflict = spec_with(
            vec![NodeSelectorTerm {
                match_expressions: None,
                match_fields: Some(vec![
                    req("metadata.name", "In", &["a"]),
                    req("metadata.name", "In", &["b"]),
                ]),
            }],
            vec![],
        );
        assert_eq!(
            prefilter_node_names(&conflict).unwrap_err().reasons,
            vec![ERR_REASON_CONFLICT]
        );
        let mixed = spec_with(
            vec![
                fields(&["n1"]),
                NodeSelectorTerm {
                    match_expressions: Some(vec![req("zone", "Exists", &[])]),
                    match_fields: None,
                },
            ],
            vec![],
        );
        assert!(prefilter_node_names(&mixed).unwrap().is_none());
    }

    #[test]
    fn preferred_terms_sum_weights() {
        let term = |k: &str, v: &str| NodeSelectorTerm {
            match_expressions: Some(vec![req(k, "In", &[v])]),
            match_fields: None,
        };
        let spec = spec_with(
            vec![],
            vec![(5, term("zone", "a")), (3, term("disk", "ssd"))],
        );
        assert!(has_preferred(&spec));
        assert_eq!(score(&spec, &ni("a", &[("zone", "a"), ("disk", "ssd")])), 8);
        assert_eq!(score(&spec, &ni("a", &[("zone", "a")])), 5);
        assert_eq!(score(&spec, &ni("a", &[])), 0);
    }
}
