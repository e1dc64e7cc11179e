//! NodeName: a pod with `spec.nodeName` fits only that node.

use k8s_openapi::api::core::v1::PodSpec;

use crate::cache::NodeInfo;
use crate::framework::{FilterResult, Plugin, Status};

/// Upstream `ErrReason`.
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

/// The filter.
pub fn filter(spec: &PodSpec, node: &NodeInfo) -> FilterResult {
    match spec.node_name.as_deref() {
        Some(n) if !n.is_empty() && n != node.name => {
            Err(Status::unresolvable(Plugin::NodeName, ERR_REASON))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod};
    use std::sync::Arc;

    #[test]
    fn only_the_named_node() {
        let ni = NodeInfo::for_node(Arc::new(node("a", &[], "1", "1Gi", "10")));
        let mut p = pod("p", &[], &[]);
        assert!(filter(p.spec.as_ref().unwrap(), &ni).is_ok());
        p.spec.as_mut().unwrap().node_name = Some("b".into());
        assert_eq!(
            filter(p.spec.as_ref().unwrap(), &ni).unwrap_err().reasons,
            vec![ERR_REASON]
        );
        p.spec.as_mut().unwrap().node_name = Some("a".into());
        assert!(filter(p.spec.as_ref().unwrap(), &ni).is_ok());
    }
}
