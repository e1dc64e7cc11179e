//! NodeUnschedulable: nodes with `spec.unschedulable` reject pods that do not tolerate the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::{PodSpec, Taint};

use super::taint_toleration::tolerations_tolerate;
use crate::cache::NodeInfo;
use crate::framework::{FilterResult, Plugin, Status};

/// Upstream `ErrReasonUnschedulable`.
pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";

/// The filter.
pub fn filter(spec: &PodSpec, node: &NodeInfo) -> FilterResult {
    if !node.unschedulable {
        return Ok(());
    }
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        value: None,
        time_added: None,
    };
    if tolerations_tolerate(spec.tolerations.as_deref().unwrap_or_default(), &taint) {
        return Ok(());
    }
    Err(Status::unresolvable(
        Plugin::NodeUnschedulable,
        ERR_REASON_UNSCHEDULABLE,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod, toleration, with_tolerations};
    use std::sync::Arc;

    #[test]
    fn unschedulable_nodes_need_the_toleration() {
        let mut n = node("n", &[], "1", "1Gi", "10");
        n.spec.as_mut().unwrap().unschedulable = Some(true);
        let ni = NodeInfo::for_node(Arc::new(n));
        let p = pod("p", &[], &[]);
        let err = filter(p.spec.as_ref().unwrap(), &ni).unwrap_err();
        assert_eq!(err.reasons, vec!["node(s) were unschedulable"]);
        let p = with_tolerations(
            p,
            vec![toleration(
                "node.kubernetes.io/unschedulable",
                "Exists",
                "",
                "NoSchedule",
            )],
        );
        assert!(filter(p.spec.as_ref().unwrap(), &ni).is_ok());
        let ok = NodeInfo::for_node(Arc::new(node("m", &[], "1", "1Gi", "10")));
        assert!(filter(pod("p", &[], &[]).spec.as_ref().unwrap(), &ok).is_ok());
    }
}
