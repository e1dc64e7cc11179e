//! NodePorts: a pod's host ports must be free on the node.

use crate::cache::NodeInfo;
use crate::framework::{FilterResult, Plugin, Status};
use crate::types::PodInfo;

/// Upstream `ErrReason`.
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// The filter.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    if pod.host_ports.is_empty() || node.used_ports.is_empty() {
        return Ok(());
    }
    for hp in &pod.host_ports {
        if node.used_ports.iter().any(|u| u.conflicts(hp)) {
            return Err(Status::unschedulable(Plugin::NodePorts, ERR_REASON));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod};
    use k8s_openapi::api::core::v1::{ContainerPort, Pod};
    use std::sync::Arc;

    fn with_port(mut p: Pod, port: i32, ip: Option<&str>, proto: Option<&str>) -> Pod {
        p.spec.as_mut().unwrap().containers[0].ports = Some(vec![ContainerPort {
            container_port: 80,
            host_port: Some(port),
            host_ip: ip.map(Into::into),
            protocol: proto.map(Into::into),
            ..Default::default()
        }]);
        p
    }

    #[test]
    fn conflicting_host_ports() {
        let mut ni = NodeInfo::for_node(Arc::new(node("a", &[], "1", "1Gi", "10")));
        let existing = with_port(pod("e", &[], &[]), 8080, Some("10.0.0.1"), None);
        ni.add_pod(Arc::new(PodInfo::new(Arc::new(existing))));
        let same = PodInfo::new(Arc::new(with_port(pod("p", &[], &[]), 8080, None, None)));
        assert_eq!(filter(&same, &ni).unwrap_err().reasons, vec![ERR_REASON]);
        let udp = PodInfo::new(Arc::new(with_port(
            pod("p", &[], &[]),
            8080,
            None,
            Some("UDP"),
        )));
        assert!(filter(&udp, &ni).is_ok());
        let other_ip = PodInfo::new(Arc::new(with_port(
            pod("p", &[], &[]),
            8080,
            Some("10.0.0.2"),
            None,
        )));
        assert!(filter(&other_ip, &ni).is_ok());
        let other_port = PodInfo::new(Arc::new(with_port(pod("p", &[], &[]), 9090, None, None)));
        assert!(filter(&other_port, &ni).is_ok());
    }
}
