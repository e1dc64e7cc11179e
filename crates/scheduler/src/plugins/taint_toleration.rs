//! TaintToleration: NoSchedule and NoExecute taints must be tolerated (filter); fewer
//! untolerated PreferNoSchedule taints score higher.

use k8s_openapi::api::core::v1::{PodSpec, Taint, Toleration};

use crate::cache::NodeInfo;
use crate::framework::{FilterResult, Plugin, Status};

/// Whether `t` tolerates `taint` (upstream `Toleration.ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref()
        && !effect.is_empty()
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = t.key.as_deref()
        && !key.is_empty()
        && key != taint.key
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Whether any toleration tolerates `taint`.
pub fn tolerations_tolerate(tols: &[Toleration], taint: &Taint) -> bool {
    tols.iter().any(|t| tolerates(t, taint))
}

/// The first NoSchedule/NoExecute taint not tolerated (upstream
/// `FindMatchingUntoleratedTaint` with `DoNotScheduleTaintsFilterFunc`).
pub fn find_untolerated_do_not_schedule<'a>(
    taints: &'a [Taint],
    tols: &[Toleration],
) -> Option<&'a Taint> {
    taints.iter().find(|t| {
        (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerations_tolerate(tols, t)
    })
}

/// The filter.
pub fn filter(spec: &PodSpec, node: &NodeInfo) -> FilterResult {
    let taints = node.taints();
    if taints.is_empty() {
        return Ok(());
    }
    match find_untolerated_do_not_schedule(taints, spec.tolerations.as_deref().unwrap_or_default())
    {
        None => Ok(()),
        Some(t) => Err(Status::unresolvable(
            Plugin::TaintToleration,
            format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            ),
        )),
    }
}

/// The tolerations that apply to PreferNoSchedule (PreScore).
pub fn prefer_no_schedule_tolerations(spec: &PodSpec) -> Vec<Toleration> {
    spec.tolerations
        .iter()
        .flatten()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .cloned()
        .collect()
}

/// The raw score: the number of untolerated PreferNoSchedule taints (normalized reversed).
pub fn score(tols: &[Toleration], node: &NodeInfo) -> i64 {
    node.taints()
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerations_tolerate(tols, t))
        .count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod, taint, toleration, with_taints, with_tolerations};
    use std::sync::Arc;

    #[test]
    fn toleration_matching() {
        let t = taint("k", "v", "NoSchedule");
        assert!(tolerates(&toleration("k", "Equal", "v", "NoSchedule"), &t));
        assert!(tolerates(&toleration("k", "", "v", ""), &t));
        assert!(tolerates(&toleration("k", "Exists", "", ""), &t));
        assert!(tolerates(&toleration("", "Exists", "", ""), &t));
        assert!(!tolerates(&toleration("k", "Equal", "w", "NoSchedule"), &t));
        assert!(!tolerates(&toleration("k", "Exists", "", "NoExecute"), &t));
        assert!(!tolerates(&toleration("j", "Exists", "", ""), &t));
    }

    #[test]
    fn filter_reports_the_first_untolerated_taint() {
        let n = with_taints(
            node("n", &[], "1", "1Gi", "10"),
            vec![
                taint("soft", "", "PreferNoSchedule"),
                taint("node-role.kubernetes.io/control-plane", "", "NoSchedule"),
            ],
        );
        let ni = NodeInfo::for_node(Arc::new(n));
        let p = pod("p", &[], &[]);
        let err = filter(p.spec.as_ref().unwrap(), &ni).unwrap_err();
        assert_eq!(
            err.reasons,
            vec!["node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"]
        );
        assert_eq!(
            err.code,
            crate::framework::Code::UnschedulableAndUnresolvable
        );
        let p = with_tolerations(
            p,
            vec![toleration(
                "node-role.kubernetes.io/control-plane",
                "Exists",
                "",
                "NoSchedule",
            )],
        );
        assert!(filter(p.spec.as_ref().unwrap(), &ni).is_ok());
        // PreferNoSchedule counts for scoring only.
        assert_eq!(
            score(
                &prefer_no_schedule_tolerations(p.spec.as_ref().unwrap()),
                &ni
            ),
            1
        );
        let p = with_tolerations(
            p,
            vec![toleration("soft", "Exists", "", "PreferNoSchedule")],
        );
        assert_eq!(
            score(
                &prefer_no_schedule_tolerations(p.spec.as_ref().unwrap()),
                &ni
            ),
            0
        );
        let with_value = with_taints(
            node("n", &[], "1", "1Gi", "10"),
            vec![taint("dedicated", "gpu", "NoExecute")],
        );
        let err = filter(
            pod("p", &[], &[]).spec.as_ref().unwrap(),
            &NodeInfo::for_node(Arc::new(with_value)),
        )
        .unwrap_err();
        assert_eq!(
            err.reasons,
            vec!["node(s) had untolerated taint {dedicated: gpu}"]
        );
    }
}
