//! Leases: port of upstream `printLease`.

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use serde_json::Value;

use super::{AGE, NAME, col};
use crate::descriptions::LEASE_SPEC_HOLDER_IDENTITY;
use crate::util::{age_of, decode, name_of, s};
use crate::{Column, Printer};

const LEASE_COLUMNS: &[Column] = &[
    NAME,
    col("Holder", "string", LEASE_SPEC_HOLDER_IDENTITY),
    AGE,
];

pub(crate) struct LeasePrinter;

pub(crate) static LEASE: LeasePrinter = LeasePrinter;

impl Printer for LeasePrinter {
    fn columns(&self) -> &[Column] {
        LEASE_COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let lease: Lease = decode(obj);
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        vec![
            name_of(&lease.metadata),
            s(holder),
            age_of(&lease.metadata, now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leases() {
        let now = Utc::now();
        let l = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "node-1"}, "spec": {"holderIdentity": "node-1"}});
        assert_eq!(
            LEASE.cells(&l, now),
            vec![json!("node-1"), json!("node-1"), json!("<unknown>")]
        );
        let free = json!({"metadata": {"name": "kube-scheduler"}, "spec": {}});
        assert_eq!(LEASE.cells(&free, now)[1], json!(""));
    }
}
