//! Namespaces, ConfigMaps, Secrets, ServiceAccounts and ResourceQuotas.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ResourceQuota, Secret, ServiceAccount};
use serde_json::Value;

use super::{AGE, NAME, col};
use crate::descriptions::{CONFIG_MAP_DATA, SECRET_DATA, SECRET_TYPE, SERVICE_ACCOUNT_SECRETS};
use crate::util::{age_of, decode, i, name_of, s};
use crate::{Column, Printer};

fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const NAMESPACE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

pub(crate) struct NamespacePrinter;

pub(crate) static NAMESPACE: NamespacePrinter = NamespacePrinter;

impl Printer for NamespacePrinter {
    fn columns(&self) -> &[Column] {
        NAMESPACE_COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let ns: Namespace = decode(obj);
        let phase = ns
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        vec![name_of(&ns.metadata), s(phase), age_of(&ns.metadata, now)]
    }
}

const CONFIG_MAP_COLUMNS: &[Column] = &[NAME, col("Data", "string", CONFIG_MAP_DATA), AGE];

pub(crate) struct ConfigMapPrinter;

pub(crate) static CONFIG_MAP: ConfigMapPrinter = ConfigMapPrinter;

impl Printer for ConfigMapPrinter {
    fn columns(&self) -> &[Column] {
        CONFIG_MAP_COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let cm: ConfigMap = decode(obj);
        let n = cm.data.as_ref().map_or(0, |d| d.len())
            + cm.binary_data.as_ref().map_or(0, |d| d.len());
        vec![
            name_of(&cm.metadata),
            i(len_i64(n)),
            age_of(&cm.metadata, now),
        ]
    }
}

const SECRET_COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", SECRET_TYPE),
    col("Data", "string", SECRET_DATA),
    AGE,
];

pub(crate) struct SecretPrinter;

pub(crate) static SECRET: SecretPrinter = SecretPrinter;

impl Printer for SecretPrinter {
    fn columns(&self) -> &[Column] {
        SECRET_COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let secret: Secret = decode(obj);
        // The internal object merges the write-only stringData into data.
        let keys: BTreeSet<&String> = secret
            .data
            .iter()
            .flat_map(|d| d.keys())
            .chain(secret.string_data.iter().flat_map(|d| d.keys()))
            .collect();
        vec![
            name_of(&secret.metadata),
            s(secret.type_.clone().unwrap_or_default()),
            i(len_i64(keys.len())),
            age_of(&secret.metadata, now),
        ]
    }
}

const SERVICE_ACCOUNT_COLUMNS: &[Column] =
    &[NAME, col("Secrets", "string", SERVICE_ACCOUNT_SECRETS), AGE];

pub(crate) struct ServiceAccountPrinter;

pub(crate) static SERVICE_ACCOUNT: ServiceAccountPrinter = ServiceAccountPrinter;

impl Printer for ServiceAccountPrinter {
    fn columns(&self) -> &[Column] {
        SERVICE_ACCOUNT_COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let sa: ServiceAccount = decode(obj);
        let n = sa.secrets.as_ref().map_or(0, Vec::len);
        vec![
            name_of(&sa.metadata),
            i(len_i64(n)),
            age_of(&sa.metadata, now),
        ]
    }
}

const RESOURCE_QUOTA_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    col(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
    AGE,
];

pub(crate) struct ResourceQuotaPrinter;

pub(crate) static RESOURCE_QUOTA: ResourceQuotaPrinter = ResourceQuotaPrinter;

impl Printer for ResourceQuotaPrinter {
    fn columns(&self) -> &[Column] {
        RESOURCE_QUOTA_COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let rq: ResourceQuota = decode(obj);
        let status = rq.status.clone().unwrap_or_default();
        let hard = status.hard.unwrap_or_default();
        let used = status.used.unwrap_or_default();
        let mut request = Vec::new();
        let mut limit = Vec::new();
        // BTreeMap iteration is sorted by resource name, like SortableResourceNames.
        for (resource, hard_q) in &hard {
            // Go's zero Quantity prints "0".
            let used_q = used.get(resource).map_or("0", |q| q.0.as_str());
            let hard_q = if hard_q.0.is_empty() {
                "0"
            } else {
                hard_q.0.as_str()
            };
            let entry = format!("{resource}: {used_q}/{hard_q}");
            let pieces: Vec<&str> = resource.split('.').collect();
            if pieces.len() > 1 && pieces[0] == "limits" {
                limit.push(entry);
            } else {
                request.push(entry);
            }
        }
        vec![
            name_of(&rq.metadata),
            s(request.join(", ")),
            s(limit.join(", ")),
            age_of(&rq.metadata, now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use serde_json::json;

    fn created(now: DateTime<Utc>, ago: TimeDelta) -> String {
        (now - ago).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    #[test]
    fn namespaces() {
        let now = Utc::now();
        let obj = json!({"metadata": {"name": "default", "creationTimestamp": created(now, TimeDelta::days(10))}, "status": {"phase": "Active"}});
        assert_eq!(
            NAMESPACE.cells(&obj, now),
            vec![json!("default"), json!("Active"), json!("10d")]
        );
        let terminating = json!({"metadata": {"name": "x"}, "status": {"phase": "Terminating"}});
        assert_eq!(
            NAMESPACE.cells(&terminating, now)[1..],
            [json!("Terminating"), json!("<unknown>")]
        );
    }

    #[test]
    fn config_maps_and_secrets() {
        let now = Utc::now();
        let cm = json!({"metadata": {"name": "cm", "creationTimestamp": created(now, TimeDelta::seconds(30))},
                        "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(
            CONFIG_MAP.cells(&cm, now),
            vec![json!("cm"), json!(3), json!("30s")]
        );
        let secret = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls",
                            "data": {"tls.crt": "AA==", "tls.key": "AA=="}, "stringData": {"extra": "x", "tls.crt": "y"}});
        assert_eq!(
            SECRET.cells(&secret, now)[..3],
            [json!("s"), json!("kubernetes.io/tls"), json!(3)]
        );
        let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "t"}]});
        assert_eq!(
            SERVICE_ACCOUNT.cells(&sa, now)[..2],
            [json!("default"), json!(1)]
        );
        let empty_sa = json!({"metadata": {"name": "default"}});
        assert_eq!(SERVICE_ACCOUNT.cells(&empty_sa, now)[1], json!(0));
    }

    // Cases from upstream TestPrintResourceQuota.
    #[test]
    fn resource_quotas() {
        let now = Utc::now();
        let rq = json!({
            "metadata": {"name": "test-resourcequota", "creationTimestamp": created(now, TimeDelta::days(3))},
            "status": {
                "used": {"cpu": "1", "memory": "1Gi", "pods": "1", "services": "1", "limits.cpu": "2", "limits.memory": "4Gi"},
                "hard": {"cpu": "100", "memory": "4Gi", "pods": "10", "services": "10", "limits.cpu": "200", "limits.memory": "8Gi"}
            }
        });
        assert_eq!(
            RESOURCE_QUOTA.cells(&rq, now),
            vec![
                json!("test-resourcequota"),
                json!("cpu: 1/100, memory: 1Gi/4Gi, pods: 1/10, services: 1/10"),
                json!("limits.cpu: 2/200, limits.memory: 4Gi/8Gi"),
                json!("3d"),
            ]
        );
        let partial = json!({"metadata": {"name": "q"}, "status": {"hard": {"pods": "10"}}});
        assert_eq!(
            RESOURCE_QUOTA.cells(&partial, now)[1..3],
            [json!("pods: 0/10"), json!("")]
        );
    }
}
