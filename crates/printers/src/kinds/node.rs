//! Nodes: port of upstream `printNode`.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Node, NodeAddress};
use serde_json::Value;

use super::{AGE, NAME, col, wide};
use crate::descriptions::{
    NODE_STATUS_ADDRESSES, NODE_SYSTEM_INFO_CONTAINER_RUNTIME_VERSION,
    NODE_SYSTEM_INFO_KERNEL_VERSION, NODE_SYSTEM_INFO_KUBELET_VERSION, NODE_SYSTEM_INFO_OS_IMAGE,
};
use crate::util::{age_of, decode, name_of, s};
use crate::{Column, Printer};

const COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", NODE_SYSTEM_INFO_KUBELET_VERSION),
    wide("Internal-IP", "string", NODE_STATUS_ADDRESSES),
    wide("External-IP", "string", NODE_STATUS_ADDRESSES),
    wide("OS-Image", "string", NODE_SYSTEM_INFO_OS_IMAGE),
    wide("Kernel-Version", "string", NODE_SYSTEM_INFO_KERNEL_VERSION),
    wide(
        "Container-Runtime",
        "string",
        NODE_SYSTEM_INFO_CONTAINER_RUNTIME_VERSION,
    ),
];

const LABEL_NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
const NODE_LABEL_ROLE: &str = "kubernetes.io/role";

pub(crate) struct NodePrinter;

pub(crate) static NODE: NodePrinter = NodePrinter;

/// `findNodeRoles`: sorted roles from `node-role.kubernetes.io/<role>` and
/// `kubernetes.io/role=<role>` labels.
fn find_node_roles(node: &Node) -> Vec<String> {
    let mut roles = BTreeSet::new();
    for (k, v) in node.metadata.labels.iter().flatten() {
        if let Some(role) = k.strip_prefix(LABEL_NODE_ROLE_PREFIX) {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == NODE_LABEL_ROLE && !v.is_empty() {
            roles.insert(v.clone());
        }
    }
    roles.into_iter().collect()
}

fn address_of(addresses: &[NodeAddress], type_: &str) -> String {
    addresses
        .iter()
        .find(|a| a.type_ == type_)
        .map_or_else(|| "<none>".to_string(), |a| a.address.clone())
}

fn or_unknown(v: &str) -> String {
    if v.is_empty() {
        "<unknown>".to_string()
    } else {
        v.to_string()
    }
}

impl Printer for NodePrinter {
    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let node: Node = decode(obj);
        let status = node.status.clone().unwrap_or_default();
        let conditions: HashMap<&str, &str> = status
            .conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        let mut state = Vec::new();
        if let Some(st) = conditions.get("Ready") {
            state.push(if *st == "True" { "Ready" } else { "NotReady" });
        }
        if state.is_empty() {
            state.push("Unknown");
        }
        if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            state.push("SchedulingDisabled");
        }
        let roles = find_node_roles(&node).join(",");
        let roles = if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles
        };
        let info = status.node_info.clone().unwrap_or_default();
        let addresses = status.addresses.clone().unwrap_or_default();
        vec![
            name_of(&node.metadata),
            s(state.join(",")),
            s(roles),
            age_of(&node.metadata, now),
            s(info.kubelet_version.clone()),
            s(address_of(&addresses, "InternalIP")),
            s(address_of(&addresses, "ExternalIP")),
            s(or_unknown(&info.os_image)),
            s(or_unknown(&info.kernel_version)),
            s(or_unknown(&info.container_runtime_version)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cells(obj: Value) -> Vec<Value> {
        NODE.cells(&obj, Utc::now())
    }

    // Cases from upstream TestPrintNodeStatus / TestPrintNodeRole / TestPrintNodeOSImage...
    #[test]
    fn node_status() {
        let cases = [
            (
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                "Ready",
            ),
            (
                json!({"spec": {"unschedulable": true}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                "Ready,SchedulingDisabled",
            ),
            (
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "True"}]}}),
                "Ready",
            ),
            (
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                "NotReady",
            ),
            (
                json!({"spec": {"unschedulable": true}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                "NotReady,SchedulingDisabled",
            ),
            (
                json!({"status": {"conditions": [{"type": "InvalidValue", "status": "True"}]}}),
                "Unknown",
            ),
            (json!({"status": {"conditions": [{}]}}), "Unknown"),
            (
                json!({"spec": {"unschedulable": true}, "status": {"conditions": [{"type": "InvalidValue", "status": "True"}]}}),
                "Unknown,SchedulingDisabled",
            ),
            (
                json!({"spec": {"unschedulable": true}, "status": {"conditions": [{}]}}),
                "Unknown,SchedulingDisabled",
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(cells(obj.clone())[1], json!(want), "{obj}");
        }
    }

    #[test]
    fn node_roles() {
        let cases = [
            (json!({}), "<none>"),
            (json!({"foo": "bar"}), "<none>"),
            (
                json!({"node-role.kubernetes.io/foo": "", "node-role.kubernetes.io/bar": "", "node-role.kubernetes.io/": ""}),
                "bar,foo",
            ),
            (
                json!({"node-role.kubernetes.io/control-plane": ""}),
                "control-plane",
            ),
            (json!({"kubernetes.io/role": "node"}), "node"),
            (json!({"kubernetes.io/role": ""}), "<none>"),
            (
                json!({"kubernetes.io/role": "node", "node-role.kubernetes.io/node": "", "node-role.kubernetes.io/master": ""}),
                "master,node",
            ),
        ];
        for (labels, want) in cases {
            let obj = json!({"metadata": {"name": "n", "labels": labels}});
            assert_eq!(cells(obj)[2], json!(want), "{labels}");
        }
    }

    #[test]
    fn node_wide_columns() {
        let obj = json!({
            "metadata": {"name": "foo1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "status": {
                "nodeInfo": {"kubeletVersion": "v1.35.0", "osImage": "fake-os-image", "kernelVersion": "fake-kernel-version", "containerRuntimeVersion": "foo://1.2.3"},
                "addresses": [{"type": "ExternalIP", "address": "1.1.1.1"}, {"type": "InternalIP", "address": "10.1.1.1"}]
            }
        });
        let c = cells(obj);
        assert_eq!(c[4], json!("v1.35.0"));
        assert_eq!(
            &c[5..],
            &[
                json!("10.1.1.1"),
                json!("1.1.1.1"),
                json!("fake-os-image"),
                json!("fake-kernel-version"),
                json!("foo://1.2.3")
            ]
        );
        let bare = cells(json!({"metadata": {"name": "foo2"}}));
        assert_eq!(
            &bare[4..],
            &[
                json!(""),
                json!("<none>"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<unknown>"),
                json!("<unknown>")
            ]
        );
        assert_eq!(bare[3], json!("<unknown>"));
    }
}
