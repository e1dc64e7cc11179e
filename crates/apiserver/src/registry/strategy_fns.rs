//! The per-kind functions the strategies are assembled from: defaulting and validation,
//! delegating to the `api` crate (upstream `pkg/apis/*/v1/defaults.go` and `*/validation`).

use api::field::ErrorList;
use api::{defaults as d, validation as v};
use codec::ordered::{member, value_eq};
use k8s_openapi::api::{apps, coordination, core, discovery, events};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

use super::kinds::{typed, with_typed};
use super::strategy::MetaCheck;

/// Validation of a kind through its typed form.
macro_rules! validators {
    ($($name:ident, $upd:ident: $ty:ty => $val:path, $val_upd:path;)*) => {
        $(
            /// Create validation. No kind's rule reads managedFields (the generic metadata
            /// validation checks them), so they are not decoded.
            pub fn $name(obj: &Value) -> ErrorList {
                api::managed_fields::deserialize_without_managed_fields::<$ty, _>(obj)
                    .map(|t| $val(&t))
                    .unwrap_or_default()
            }
            /// Update validation, then `meta` on the metadata decoded with the objects.
            pub fn $upd(new: &Value, old: &Value, meta: MetaCheck<'_>) -> ErrorList {
                // No update rule looks at the old object's managed fields.
                match (typed::<$ty>(new), api::managed_fields::deserialize_without_managed_fields::<$ty, _>(old).ok()) {
                    (Some(n), Some(o)) => {
                        let mut errs = $val_upd(&n, &o);
                        errs.extend(meta(&n.metadata, &o.metadata));
                        errs
                    }
                    _ => crate::meta_validation::check_json_meta(new, old, meta),
                }
            }
        )*
    };
}

/// Defaulting of a kind through its typed form.
macro_rules! defaulters {
    ($($name:ident: $ty:ty => $f:path;)*) => {
        $(
            pub fn $name(obj: &mut Value) {
                with_typed::<$ty>(obj, $f);
            }
        )*
    };
}

validators! {
    validate_namespace, validate_namespace_update: core::v1::Namespace => v::validate_namespace, v::validate_namespace_update;
    validate_pod, validate_pod_update: core::v1::Pod => v::validate_pod, v::validate_pod_update;
    validate_service, validate_service_update: core::v1::Service => v::validate_service, v::validate_service_update;
    validate_endpoints, validate_endpoints_update: core::v1::Endpoints => v::validate_endpoints, v::validate_endpoints_update;
    validate_configmap, validate_configmap_update: core::v1::ConfigMap => v::validate_config_map, v::validate_config_map_update;
    validate_secret, validate_secret_update: core::v1::Secret => v::validate_secret, v::validate_secret_update;
    validate_serviceaccount, validate_serviceaccount_update: core::v1::ServiceAccount => v::validate_service_account, v::validate_service_account_update;
    validate_node, validate_node_update: core::v1::Node => v::validate_node, v::validate_node_update;
    validate_event, validate_event_update: core::v1::Event => v::validate_event, v::validate_event_update;
    validate_resourcequota, validate_resourcequota_update: core::v1::ResourceQuota => v::validate_resource_quota, v::validate_resource_quota_update;
    validate_limitrange, validate_limitrange_update: core::v1::LimitRange => v::validate_limit_range, v::validate_limit_range_update;
    validate_deployment, validate_deployment_update: apps::v1::Deployment => v::validate_deployment, v::validate_deployment_update;
    validate_replicaset, validate_replicaset_update: apps::v1::ReplicaSet => v::validate_replica_set, v::validate_replica_set_update;
    validate_endpointslice, validate_endpointslice_update: discovery::v1::EndpointSlice => v::validate_endpoint_slice, v::validate_endpoint_slice_update;
}

/// Validates a Lease.
pub fn validate_lease(obj: &Value) -> ErrorList {
    typed::<coordination::v1::Lease>(obj)
        .map(|t| v::validate_lease(&t))
        .unwrap_or_default()
}

/// Validates a Lease update. A renewal (a node heartbeat, a leader's) changes only the spec:
/// when the metadata is the old object's, which passed these rules when it was written, only
/// the spec's rules run, read from the JSON without decoding either object.
pub fn validate_lease_update(new: &Value, old: &Value, meta: MetaCheck<'_>) -> ErrorList {
    if crate::meta_validation::metadata_unchanged(new, old) {
        let rules = match new.get("spec") {
            None | Some(Value::Null) => Ok(v::LeaseSpecRules::default()),
            Some(spec) => v::LeaseSpecRules::deserialize(spec),
        };
        // The round trip has checked the types already; a failure here takes the full path.
        if let Ok(rules) = rules {
            return v::validate_lease_spec(rules);
        }
    }
    let no_mf =
        api::managed_fields::deserialize_without_managed_fields::<coordination::v1::Lease, _>;
    match (typed::<coordination::v1::Lease>(new), no_mf(old).ok()) {
        (Some(n), Some(o)) => {
            let mut errs = v::validate_lease_update(&n, &o);
            errs.extend(meta(&n.metadata, &o.metadata));
            errs
        }
        _ => crate::meta_validation::check_json_meta(new, old, meta),
    }
}

/// events.k8s.io Events are stored as core Events: validate the served form.
pub fn validate_events_event(obj: &Value) -> ErrorList {
    let served = crate::conversion::core_event_to_events_v1(obj.clone());
    typed::<events::v1::Event>(&served)
        .map(|e| v::validate_events_event(&e))
        .unwrap_or_default()
}

/// Update validation of events.k8s.io Events (served form).
pub fn validate_events_event_update(new: &Value, old: &Value, meta: MetaCheck<'_>) -> ErrorList {
    let n = typed::<events::v1::Event>(&crate::conversion::core_event_to_events_v1(new.clone()));
    let o = typed::<events::v1::Event>(&crate::conversion::core_event_to_events_v1(old.clone()));
    let mut errs = match (n, o) {
        (Some(n), Some(o)) => v::validate_events_event_update(&n, &o),
        _ => Vec::new(),
    };
    errs.extend(crate::meta_validation::check_json_meta(new, old, meta));
    errs
}

/// Status update validation of Deployments.
pub fn validate_deployment_status(new: &Value, old: &Value) -> ErrorList {
    match (
        typed::<apps::v1::Deployment>(new),
        typed::<apps::v1::Deployment>(old),
    ) {
        (Some(n), Some(o)) => v::validate_deployment_status_update(&n, &o),
        _ => Vec::new(),
    }
}

/// Status update validation of ReplicaSets.
pub fn validate_replicaset_status(new: &Value, old: &Value) -> ErrorList {
    match (
        typed::<apps::v1::ReplicaSet>(new),
        typed::<apps::v1::ReplicaSet>(old),
    ) {
        (Some(n), Some(o)) => v::validate_replica_set_status_update(&n, &o),
        _ => Vec::new(),
    }
}

/// Status update validation of Pods. No managedFields tree is decoded (the rules read only the
/// other members of the new object's entries), and the new spec, when it is the old one (a
/// status write keeps the stored spec), is copied rather than decoded a second time.
pub fn validate_pod_status(new: &Value, old: &Value) -> ErrorList {
    use api::managed_fields::deserialize_without_managed_fields as without_managed_fields;
    #[derive(Deserialize)]
    struct MetaAndStatus {
        #[serde(default)]
        metadata: ObjectMeta,
        status: Option<core::v1::PodStatus>,
    }
    let Ok(o) = without_managed_fields::<core::v1::Pod, _>(old) else {
        return Vec::new();
    };
    let same_spec = match (member(new, "spec"), member(old, "spec")) {
        (Some(n), Some(o)) => value_eq(n, o),
        (n, o) => n.is_none() && o.is_none(),
    };
    let n = if same_spec {
        without_managed_fields::<MetaAndStatus, _>(new)
            .ok()
            .map(|m| core::v1::Pod {
                metadata: m.metadata,
                spec: o.spec.clone(),
                status: m.status,
            })
    } else {
        without_managed_fields::<core::v1::Pod, _>(new).ok()
    };
    let (Some(mut n), Ok(entries)) = (n, crate::meta_validation::managed_field_headers(new)) else {
        return Vec::new();
    };
    n.metadata.managed_fields = entries;
    v::validate_pod_status_update(&n, &o)
}

defaulters! {
    default_pod: core::v1::Pod => d::default_pod;
    admit_pod: core::v1::Pod => d::admit_pod;
    default_service: core::v1::Service => d::default_service;
    default_secret: core::v1::Secret => d::default_secret;
    default_node: core::v1::Node => d::default_node;
    default_limitrange: core::v1::LimitRange => d::default_limit_range;
    default_endpoints: core::v1::Endpoints => d::default_endpoints;
    default_deployment: apps::v1::Deployment => d::default_deployment;
    default_replicaset: apps::v1::ReplicaSet => d::default_replica_set;
    default_endpointslice: discovery::v1::EndpointSlice => d::default_endpoint_slice;
}

/// Pods start Pending with their QoS class (upstream `podStrategy.PrepareForCreate`).
pub fn prepare_pod_create(obj: &mut Value) {
    let qos = pod_qos_class(obj);
    obj["status"] = serde_json::json!({"phase": "Pending", "qosClass": qos});
}

/// Status starts empty for workload controllers (upstream `PrepareForCreate` of deployments
/// and replicasets).
pub fn clear_status(obj: &mut Value) {
    obj["status"] = serde_json::json!({});
}

/// Upstream `qos.GetPodQOS`: Guaranteed when every container has equal cpu and memory requests
/// and limits, BestEffort when none has any, Burstable otherwise.
pub fn pod_qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        for r in ["cpu", "memory"] {
            let rq = req.and_then(|m| m.get(r)).and_then(Value::as_str);
            let lm = lim.and_then(|m| m.get(r)).and_then(Value::as_str);
            if rq.is_some() || lm.is_some() {
                any = true;
            }
            let same = match (rq, lm) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(a), Some(b)) => match (
                    api::quantity::parse_quantity(a),
                    api::quantity::parse_quantity(b),
                ) {
                    (Ok(a), Ok(b)) => a.cmp_to(b) == std::cmp::Ordering::Equal,
                    _ => a == b,
                },
            };
            if !same {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A Service update keeps the values allocated for it that the client omitted and drops
/// those its new type does not use (upstream `patchAllocatedValues`,
/// `dropTypeDependentFields`, `NormalizeClusterIPs`).
pub fn prepare_service_update(new: &mut Value, old: &Value) {
    crate::service_alloc::prepare_service_update(new, old);
}

/// Namespaces start Active with the `kubernetes` finalizer (upstream
/// `namespaceStrategy.PrepareForCreate`).
pub fn prepare_namespace_create(obj: &mut Value) {
    obj["spec"] = serde_json::json!({"finalizers": ["kubernetes"]});
    obj["status"] = serde_json::json!({"phase": "Active"});
}

/// Only `namespaces/finalize` changes `spec.finalizers` (upstream
/// `namespaceStrategy.PrepareForUpdate`).
pub fn prepare_namespace_update(new: &mut Value, old: &Value) {
    match old.pointer("/spec/finalizers") {
        Some(f) => new["spec"] = serde_json::json!({"finalizers": f}),
        None => {
            if let Some(o) = new.as_object_mut() {
                o.remove("spec");
            }
        }
    }
}

/// Namespaces carry the `kubernetes.io/metadata.name` label (upstream defaulting).
pub fn default_namespace(obj: &mut Value) {
    if let Some(name) = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        let m = crate::object::meta_mut(obj);
        let labels = m.entry("labels").or_insert_with(|| serde_json::json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert("kubernetes.io/metadata.name".into(), Value::String(name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    #[test]
    fn defaults_are_applied_through_the_typed_form() {
        let mut pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","creationTimestamp":"2026-11-26T15:14:56Z","uid":"u","generation":1},
            "spec":{"containers":[{"name":"c","image":"busybox","ports":[{"containerPort":80}]}]}});
        default_pod(&mut pod);
        admit_pod(&mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always", "{pod}");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod_qos_class(&pod), "BestEffort");
        pod["spec"]["containers"][0]["resources"] = json!({"limits":{"cpu":"1","memory":"1Gi"}});
        assert_eq!(pod_qos_class(&pod), "Guaranteed");
        pod["spec"]["containers"][0]["resources"] =
            json!({"requests":{"cpu":"500m"},"limits":{"cpu":"1"}});
        assert_eq!(pod_qos_class(&pod), "Burstable");
    }

    /// Pod status validation without the managedFields trees and the repeated spec finds
    /// exactly the errors of validating both objects decoded whole.
    #[test]
    fn pod_status_validation_finds_what_full_decoding_finds() {
        let old = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "u", "resourceVersion": "5",
                "creationTimestamp": "2026-11-26T15:14:56Z",
                "managedFields": [{"manager": "m", "operation": "Update", "apiVersion": "v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:containers": {}}}}]},
            "spec": {"nodeName": "n1", "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running", "qosClass": "BestEffort",
                "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}]}});
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = old.clone();
            f(&mut v);
            v
        };
        let cases = [
            with(&|_| {}),
            with(&|p| p["status"]["phase"] = json!("Succeeded")),
            with(&|p| p["status"]["qosClass"] = json!("Guaranteed")),
            with(&|p| {
                p["status"]["conditions"] = json!([{"type": "no good/x/y", "status": "True"}])
            }),
            with(&|p| {
                p["status"]["containerStatuses"][0]["state"] =
                    json!({"running": {"startedAt": "2026-11-26T15:15:00Z"}})
            }),
            with(&|p| p["spec"]["nodeName"] = json!("n2")),
            with(&|p| p["metadata"]["managedFields"][0]["operation"] = json!("Bogus")),
            with(&|p| p["metadata"]["managedFields"][0]["manager"] = json!("m".repeat(129))),
            with(&|p| p["metadata"]["labels"] = json!({"a": "b"})),
        ];
        let mut found = 0;
        for new in &cases {
            let full = match (typed::<core::v1::Pod>(new), typed::<core::v1::Pod>(&old)) {
                (Some(n), Some(o)) => v::validate_pod_status_update(&n, &o),
                _ => panic!("undecodable case {new}"),
            };
            let errs = |e: &ErrorList| e.iter().map(|e| e.body()).collect::<Vec<_>>();
            assert_eq!(errs(&validate_pod_status(new, &old)), errs(&full), "{new}");
            found += usize::from(!full.is_empty());
        }
        assert!(found >= 5, "the cases find errors: {found}");
    }

    fn lease(meta: Value, spec: Value) -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec})
    }

    /// The renewal shortcut finds exactly the errors of the full validation, and takes the
    /// full path (with the metadata check) whenever the metadata changed.
    #[test]
    fn lease_renewals_are_validated_like_any_update() {
        let old_meta = json!({"name": "n1", "namespace": "kube-node-lease", "uid": "u1",
            "resourceVersion": "7", "creationTimestamp": "2026-11-26T15:14:56Z",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u0"}],
            "managedFields": [{"manager": "sim", "operation": "Update", "apiVersion": "coordination.k8s.io/v1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:renewTime": {}}}}]});
        let old = lease(
            old_meta.clone(),
            json!({"holderIdentity": "n1", "leaseDurationSeconds": 40}),
        );
        let specs = [
            json!({"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": "2026-11-26T15:15:06.000000Z"}),
            json!({"leaseDurationSeconds": 0, "leaseTransitions": -1}),
            json!({"strategy": "Newest", "preferredHolder": "x"}),
            json!({"preferredHolder": "x"}),
            json!({"strategy": "OldestEmulationVersion", "preferredHolder": "x"}),
            json!(null),
        ];
        let mut rv_only = old_meta.clone();
        rv_only["resourceVersion"] = json!("8");
        let mut without_mf = rv_only.clone();
        without_mf
            .as_object_mut()
            .expect("object")
            .remove("managedFields");
        let mut labelled = rv_only.clone();
        labelled["labels"] = json!({"a": "b"});
        let mut no_rv = without_mf.clone();
        no_rv
            .as_object_mut()
            .expect("object")
            .remove("resourceVersion");
        let mut other_mf = rv_only.clone();
        other_mf["managedFields"][0]["operation"] = json!("Bogus");
        let mut lost_owner = without_mf.clone();
        lost_owner
            .as_object_mut()
            .expect("object")
            .remove("ownerReferences");
        for (meta, unchanged) in [
            (rv_only, true),
            (without_mf, true),
            (labelled, false),
            (no_rv, false),
            (other_mf, false),
            (lost_owner, false),
        ] {
            for spec in &specs {
                let new = lease(meta.clone(), spec.clone());
                assert_eq!(
                    crate::meta_validation::metadata_unchanged(&new, &old),
                    unchanged,
                    "{meta}"
                );
                let checked = std::cell::Cell::new(false);
                let check = |_: &ObjectMeta, _: &ObjectMeta| {
                    checked.set(true);
                    ErrorList::new()
                };
                let got = validate_lease_update(&new, &old, &check);
                assert_eq!(checked.get(), !unchanged, "{meta}");
                let n: coordination::v1::Lease = typed(&new).expect("typed");
                let o: coordination::v1::Lease = typed(&old).expect("typed");
                let mut full = v::validate_lease_update(&n, &o);
                // Errors the shortcut cannot see are metadata errors, which only changed
                // metadata can bring.
                if unchanged {
                    assert!(
                        full.iter().all(|e| e.field.starts_with("spec.")),
                        "{full:?}"
                    );
                }
                full.retain(|e| !unchanged || e.field.starts_with("spec."));
                assert_eq!(got, full, "{meta} {spec}");
            }
        }
    }
}
