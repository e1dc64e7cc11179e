//! The printers of the built-in kinds, one module per family, and the registry that maps a
//! group/resource to its printer.

mod apps;
mod core;
mod event;
mod misc;
mod node;
mod pod;
mod service;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::descriptions::{OBJECT_META_CREATION_TIMESTAMP, OBJECT_META_NAME};
use crate::util::{decode_meta, s, to_chrono};
use crate::{Column, Printer};

/// The `Name` column every printer starts with.
pub(crate) const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: OBJECT_META_NAME,
    priority: 0,
};

/// The `Age` column.
pub(crate) const AGE: Column = Column {
    name: "Age",
    type_: "string",
    format: "",
    description: OBJECT_META_CREATION_TIMESTAMP,
    priority: 0,
};

/// A default-priority string column.
pub(crate) const fn col(
    name: &'static str,
    type_: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

/// A wide-only (priority 1) column.
pub(crate) const fn wide(
    name: &'static str,
    type_: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 1,
    }
}

/// The default table convertor of `apiserver/pkg/registry/rest/table.go`.
pub(crate) struct DefaultPrinter;

const DEFAULT_COLUMNS: &[Column] = &[
    NAME,
    Column {
        name: "Created At",
        type_: "date",
        format: "",
        description: OBJECT_META_CREATION_TIMESTAMP,
        priority: 0,
    },
];

impl Printer for DefaultPrinter {
    fn columns(&self) -> &[Column] {
        DEFAULT_COLUMNS
    }

    fn cells(&self, obj: &Value, _now: DateTime<Utc>) -> Vec<Value> {
        let meta = decode_meta(obj);
        // `m.GetCreationTimestamp().Time.UTC().Format(time.RFC3339)`; Go's zero time when unset.
        let created = meta
            .creation_timestamp
            .as_ref()
            .and_then(|t| to_chrono(&t.0))
            .map_or_else(
                || "0001-01-01T00:00:00Z".to_string(),
                |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            );
        vec![s(meta.name.unwrap_or_default()), s(created)]
    }
}

static DEFAULT: DefaultPrinter = DefaultPrinter;

pub(crate) fn default_printer() -> &'static dyn Printer {
    &DEFAULT
}

pub(crate) fn printer_for(group: &str, resource: &str) -> &'static dyn Printer {
    match (group, resource) {
        ("", "pods") => &pod::POD,
        ("", "nodes") => &node::NODE,
        ("", "services") => &service::SERVICE,
        ("", "endpoints") => &service::ENDPOINTS,
        ("", "events") => &event::CORE_EVENT,
        ("events.k8s.io", "events") => &event::EVENTS_V1_EVENT,
        ("", "namespaces") => &core::NAMESPACE,
        ("", "configmaps") => &core::CONFIG_MAP,
        ("", "secrets") => &core::SECRET,
        ("", "serviceaccounts") => &core::SERVICE_ACCOUNT,
        ("", "resourcequotas") => &core::RESOURCE_QUOTA,
        ("apps", "deployments") => &apps::DEPLOYMENT,
        ("apps", "replicasets") => &apps::REPLICA_SET,
        ("apps", "statefulsets") => &apps::STATEFUL_SET,
        ("apps", "daemonsets") => &apps::DAEMON_SET,
        ("discovery.k8s.io", "endpointslices") => &service::ENDPOINT_SLICE,
        ("coordination.k8s.io", "leases") => &misc::LEASE,
        _ => &DEFAULT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_printer_prints_name_and_rfc3339_creation() {
        let now = Utc::now();
        let obj = json!({"metadata": {"name": "lr", "creationTimestamp": "2024-05-06T07:08:09Z"}});
        assert_eq!(
            printer_for("", "limitranges").cells(&obj, now),
            vec![json!("lr"), json!("2024-05-06T07:08:09Z")]
        );
        assert_eq!(
            DEFAULT.cells(&json!({}), now),
            vec![json!(""), json!("0001-01-01T00:00:00Z")]
        );
    }

    #[test]
    fn every_printer_has_one_cell_per_column() {
        let now = Utc::now();
        let resources = [
            ("", "pods"),
            ("", "nodes"),
            ("", "services"),
            ("", "endpoints"),
            ("", "events"),
            ("events.k8s.io", "events"),
            ("", "namespaces"),
            ("", "configmaps"),
            ("", "secrets"),
            ("", "serviceaccounts"),
            ("", "resourcequotas"),
            ("", "limitranges"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("discovery.k8s.io", "endpointslices"),
            ("coordination.k8s.io", "leases"),
        ];
        let odd_objects = [
            json!({}),
            json!(null),
            json!([1, 2]),
            json!({"metadata": {"name": 5}, "spec": "x", "status": [1]}),
            json!({"apiVersion": "other/v9", "kind": "Other", "metadata": {"name": "n"}}),
        ];
        for (g, r) in resources {
            let p = printer_for(g, r);
            for obj in &odd_objects {
                assert_eq!(
                    p.cells(obj, now).len(),
                    p.columns().len(),
                    "{g}/{r} with {obj}"
                );
            }
        }
    }
}
