//! Deployments, ReplicaSets, StatefulSets and DaemonSets: ports of upstream
//! `printDeployment`, `printReplicaSet`, `printStatefulSet` and `printDaemonSet`.

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use serde_json::Value;

use super::{AGE, NAME, col, wide};
use crate::descriptions::{
    EXT_DAEMON_SET_SPEC_SELECTOR, EXT_DAEMON_SET_STATUS_AVAILABLE, EXT_DAEMON_SET_STATUS_CURRENT,
    EXT_DAEMON_SET_STATUS_DESIRED, EXT_DAEMON_SET_STATUS_READY, EXT_DAEMON_SET_STATUS_UPDATED,
    EXT_DEPLOYMENT_SPEC_SELECTOR, EXT_DEPLOYMENT_STATUS_AVAILABLE_REPLICAS,
    EXT_DEPLOYMENT_STATUS_UPDATED_REPLICAS, EXT_REPLICA_SET_SPEC_REPLICAS,
    EXT_REPLICA_SET_SPEC_SELECTOR, EXT_REPLICA_SET_STATUS_READY_REPLICAS,
    EXT_REPLICA_SET_STATUS_REPLICAS, POD_SPEC_NODE_SELECTOR,
};
use crate::labels::{format_label_selector, from_optional_label_selector};
use crate::util::{age_of, decode, format_labels, i, name_of, s};
use crate::{Column, Printer};

const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

/// `layoutContainerCells`: container names and images joined by `,`.
fn layout_container_cells(template: Option<&PodTemplateSpec>) -> (Value, Value) {
    let containers: &[Container] = template
        .and_then(|t| t.spec.as_ref())
        .map_or(&[], |s| s.containers.as_slice());
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c.image.as_deref().unwrap_or_default())
        .collect();
    (s(names.join(",")), s(images.join(",")))
}

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col(
        "Up-to-date",
        "string",
        EXT_DEPLOYMENT_STATUS_UPDATED_REPLICAS,
    ),
    col(
        "Available",
        "string",
        EXT_DEPLOYMENT_STATUS_AVAILABLE_REPLICAS,
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", EXT_DEPLOYMENT_SPEC_SELECTOR),
];

pub(crate) struct DeploymentPrinter;

pub(crate) static DEPLOYMENT: DeploymentPrinter = DeploymentPrinter;

impl Printer for DeploymentPrinter {
    fn columns(&self) -> &[Column] {
        DEPLOYMENT_COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let d: Deployment = decode(obj);
        let spec = d.spec.clone().unwrap_or_default();
        let status = d.status.clone().unwrap_or_default();
        // spec.replicas is defaulted to 1 when the object is decoded.
        let desired = spec.replicas.unwrap_or(1);
        let selector = match from_optional_label_selector(Some(&spec.selector)) {
            Ok(sel) => sel.to_string(),
            Err(_) => "<invalid>".to_string(),
        };
        let (names, images) = layout_container_cells(Some(&spec.template));
        vec![
            name_of(&d.metadata),
            s(format!(
                "{}/{}",
                status.ready_replicas.unwrap_or(0),
                desired
            )),
            i(status.updated_replicas.unwrap_or(0)),
            i(status.available_replicas.unwrap_or(0)),
            age_of(&d.metadata, now),
            names,
            images,
            s(selector),
        ]
    }
}

const REPLICA_SET_COLUMNS: &[Column] = &[
    NAME,
    col("Desired", "integer", EXT_REPLICA_SET_SPEC_REPLICAS),
    col("Current", "integer", EXT_REPLICA_SET_STATUS_REPLICAS),
    col("Ready", "integer", EXT_REPLICA_SET_STATUS_READY_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", EXT_REPLICA_SET_SPEC_SELECTOR),
];

pub(crate) struct ReplicaSetPrinter;

pub(crate) static REPLICA_SET: ReplicaSetPrinter = ReplicaSetPrinter;

impl Printer for ReplicaSetPrinter {
    fn columns(&self) -> &[Column] {
        REPLICA_SET_COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let rs: ReplicaSet = decode(obj);
        let spec = rs.spec.clone().unwrap_or_default();
        let status = rs.status.clone().unwrap_or_default();
        let (names, images) = layout_container_cells(spec.template.as_ref());
        vec![
            name_of(&rs.metadata),
            i(spec.replicas.unwrap_or(1)),
            i(status.replicas),
            i(status.ready_replicas.unwrap_or(0)),
            age_of(&rs.metadata, now),
            names,
            images,
            s(format_label_selector(Some(&spec.selector))),
        ]
    }
}

const STATEFUL_SET_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

pub(crate) struct StatefulSetPrinter;

pub(crate) static STATEFUL_SET: StatefulSetPrinter = StatefulSetPrinter;

impl Printer for StatefulSetPrinter {
    fn columns(&self) -> &[Column] {
        STATEFUL_SET_COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let ss: StatefulSet = decode(obj);
        let spec = ss.spec.clone().unwrap_or_default();
        let ready = ss
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        let (names, images) = layout_container_cells(Some(&spec.template));
        vec![
            name_of(&ss.metadata),
            s(format!("{ready}/{}", spec.replicas.unwrap_or(1))),
            age_of(&ss.metadata, now),
            names,
            images,
        ]
    }
}

const DAEMON_SET_COLUMNS: &[Column] = &[
    NAME,
    col("Desired", "integer", EXT_DAEMON_SET_STATUS_DESIRED),
    col("Current", "integer", EXT_DAEMON_SET_STATUS_CURRENT),
    col("Ready", "integer", EXT_DAEMON_SET_STATUS_READY),
    col("Up-to-date", "integer", EXT_DAEMON_SET_STATUS_UPDATED),
    col("Available", "integer", EXT_DAEMON_SET_STATUS_AVAILABLE),
    col("Node Selector", "string", POD_SPEC_NODE_SELECTOR),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", EXT_DAEMON_SET_SPEC_SELECTOR),
];

pub(crate) struct DaemonSetPrinter;

pub(crate) static DAEMON_SET: DaemonSetPrinter = DaemonSetPrinter;

impl Printer for DaemonSetPrinter {
    fn columns(&self) -> &[Column] {
        DAEMON_SET_COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let ds: DaemonSet = decode(obj);
        let spec = ds.spec.clone().unwrap_or_default();
        let status = ds.status.clone().unwrap_or_default();
        let node_selector = spec
            .template
            .spec
            .as_ref()
            .and_then(|p| p.node_selector.as_ref());
        let (names, images) = layout_container_cells(Some(&spec.template));
        vec![
            name_of(&ds.metadata),
            i(status.desired_number_scheduled),
            i(status.current_number_scheduled),
            i(status.number_ready),
            i(status.updated_number_scheduled.unwrap_or(0)),
            i(status.number_available.unwrap_or(0)),
            s(format_labels(node_selector)),
            age_of(&ds.metadata, now),
            names,
            images,
            s(format_label_selector(Some(&spec.selector))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use serde_json::json;

    // Cases from upstream TestPrintDeployment.
    #[test]
    fn deployments() {
        let now = Utc::now();
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "test1", "creationTimestamp": (now - TimeDelta::hours(24 * 365 * 10)).to_rfc3339()},
            "spec": {
                "replicas": 5,
                "selector": {"matchLabels": {"foo": "bar"}},
                "template": {"spec": {"containers": [{"name": "fake-container1", "image": "fake-image1"}, {"name": "fake-container2", "image": "fake-image2"}]}}
            },
            "status": {"replicas": 10, "updatedReplicas": 2, "availableReplicas": 1, "unavailableReplicas": 4}
        });
        assert_eq!(
            DEPLOYMENT.cells(&d, now),
            vec![
                json!("test1"),
                json!("0/5"),
                json!(2),
                json!(1),
                json!("10y"),
                json!("fake-container1,fake-container2"),
                json!("fake-image1,fake-image2"),
                json!("foo=bar"),
            ]
        );
        let exprs = json!({
            "metadata": {"name": "d"},
            "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["b", "a"]}]}, "template": {}},
            "status": {"readyReplicas": 1}
        });
        let c = DEPLOYMENT.cells(&exprs, now);
        assert_eq!(c[1], json!("1/1"));
        assert_eq!(c[7], json!("app in (a,b)"));
        let bad = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "Bogus"}]}, "template": {}}});
        assert_eq!(DEPLOYMENT.cells(&bad, now)[7], json!("<invalid>"));
    }

    // Cases from upstream TestPrintReplicaSet.
    #[test]
    fn replica_sets() {
        let now = Utc::now();
        let rs = json!({
            "metadata": {"name": "test1", "creationTimestamp": (now - TimeDelta::hours(24 * 365 * 10)).to_rfc3339()},
            "spec": {
                "replicas": 5,
                "selector": {"matchLabels": {"foo": "bar"}},
                "template": {"spec": {"containers": [{"name": "fake-container1", "image": "fake-image1"}, {"name": "fake-container2", "image": "fake-image2"}]}}
            },
            "status": {"replicas": 5, "readyReplicas": 2}
        });
        assert_eq!(
            REPLICA_SET.cells(&rs, now),
            vec![
                json!("test1"),
                json!(5),
                json!(5),
                json!(2),
                json!("10y"),
                json!("fake-container1,fake-container2"),
                json!("fake-image1,fake-image2"),
                json!("foo=bar"),
            ]
        );
        let empty = json!({"metadata": {"name": "r"}, "spec": {"selector": {}}});
        assert_eq!(
            REPLICA_SET.cells(&empty, now)[5..],
            [json!(""), json!(""), json!("<none>")]
        );
    }

    #[test]
    fn stateful_and_daemon_sets() {
        let now = Utc::now();
        let ss = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3, "selector": {}, "template": {"spec": {"containers": [{"name": "pg", "image": "postgres"}]}}}, "status": {"replicas": 3, "readyReplicas": 2}});
        assert_eq!(
            STATEFUL_SET.cells(&ss, now),
            vec![
                json!("db"),
                json!("2/3"),
                json!("<unknown>"),
                json!("pg"),
                json!("postgres")
            ]
        );
        let ds = json!({
            "metadata": {"name": "proxy"},
            "spec": {"selector": {"matchLabels": {"k": "p"}}, "template": {"spec": {"nodeSelector": {"os": "linux"}, "containers": [{"name": "p", "image": "proxy:1"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2, "numberMisscheduled": 0}
        });
        assert_eq!(
            DAEMON_SET.cells(&ds, now),
            vec![
                json!("proxy"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("os=linux"),
                json!("<unknown>"),
                json!("p"),
                json!("proxy:1"),
                json!("k=p")
            ]
        );
    }
}
