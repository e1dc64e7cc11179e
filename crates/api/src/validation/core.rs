//! Validation of the simpler core/v1 kinds: Namespace, ConfigMap, Secret, ServiceAccount, Node,
//! Event, ResourceQuota, LimitRange and Endpoints (upstream `pkg/apis/core/validation`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    ConfigMap, EndpointAddress, Endpoints, Event, LimitRange, Namespace, Node, ResourceQuota,
    Secret, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::common::{
    core_object_meta, core_object_meta_update, is_overcommit_allowed, is_valid_cidr, is_valid_ip,
    s, validate_container_resource_name, validate_dns1123_label, validate_kube_finalizer_name,
    validate_name, validate_node_taints, validate_non_special_ip, validate_qualified_name,
    validate_quota_resource_name, validate_resource_name, validate_resource_quantity_value,
};
use super::names::{is_config_map_key, is_dns1123_subdomain, is_qualified_name, is_valid_port_num};
use super::objectmeta::{FIELD_IMMUTABLE_ERROR_MSG, NameValidator};
use crate::field::{self, BadValue, ErrorList, Path};
use crate::quantity::parse_quantity;

/// Upstream `core.MaxSecretSize` (1 MiB), also the ConfigMap limit.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

// ---- Namespace ----

/// Validates a Namespace on create (upstream `ValidateNamespace`).
pub fn validate_namespace(ns: &Namespace) -> ErrorList {
    let mut errs = core_object_meta(&ns.metadata, false, NameValidator::Dns1123Label);
    let p = Path::new("spec").child("finalizers");
    for f in ns.spec.iter().flat_map(|s| s.finalizers.iter().flatten()) {
        errs.extend(validate_finalizer_name(f, &p));
    }
    errs
}

fn validate_finalizer_name(value: &str, path: &Path) -> ErrorList {
    let mut errs: ErrorList = is_qualified_name(value)
        .into_iter()
        .map(|m| field::invalid(path, value, &m))
        .collect();
    errs.extend(validate_kube_finalizer_name(value, path));
    errs
}

/// Validates a Namespace update (upstream `ValidateNamespaceUpdate`).
pub fn validate_namespace_update(new: &Namespace, old: &Namespace) -> ErrorList {
    core_object_meta_update(&new.metadata, &old.metadata)
}

/// Validates a Namespace status update (upstream `ValidateNamespaceStatusUpdate`).
pub fn validate_namespace_status_update(new: &Namespace, old: &Namespace) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    let phase = new
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let p = Path::new("status").child("Phase");
    if new.metadata.deletion_timestamp.is_none() {
        if phase != "Active" {
            errs.push(field::invalid(
                &p,
                phase.as_str(),
                "may only be 'Active' if `deletionTimestamp` is empty",
            ));
        }
    } else if phase != "Terminating" {
        errs.push(field::invalid(
            &p,
            phase.as_str(),
            "may only be 'Terminating' if `deletionTimestamp` is not empty",
        ));
    }
    errs
}

/// Validates a Namespace finalize update (upstream `ValidateNamespaceFinalizeUpdate`).
pub fn validate_namespace_finalize_update(new: &Namespace, old: &Namespace) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    let p = Path::new("spec").child("finalizers");
    for (i, f) in new
        .spec
        .iter()
        .flat_map(|s| s.finalizers.iter().flatten())
        .enumerate()
    {
        errs.extend(validate_finalizer_name(f, &p.index(i)));
    }
    errs
}

// ---- ConfigMap ----

/// Validates a ConfigMap (upstream `ValidateConfigMap`): keys, no key in both `data` and
/// `binaryData`, total size ≤ 1 MiB.
pub fn validate_config_map(cm: &ConfigMap) -> ErrorList {
    let mut errs = core_object_meta(&cm.metadata, true, NameValidator::Dns1123Subdomain);
    let mut total = 0usize;
    let empty_bin = BTreeMap::new();
    let bin = cm.binary_data.as_ref().unwrap_or(&empty_bin);
    for (k, v) in cm.data.iter().flatten() {
        let p = Path::new("data").key(k);
        for m in is_config_map_key(k) {
            errs.push(field::invalid(&p, k, &m));
        }
        if bin.contains_key(k) {
            errs.push(field::invalid(
                &p,
                k,
                "duplicate of key present in binaryData",
            ));
        }
        total += v.len();
    }
    for (k, v) in bin {
        for m in is_config_map_key(k) {
            errs.push(field::invalid(&Path::new("binaryData").key(k), k, &m));
        }
        total += v.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(field::too_long(&Path::new(""), MAX_SECRET_SIZE as i64));
    }
    errs
}

/// Validates a ConfigMap update (upstream `ValidateConfigMapUpdate`).
pub fn validate_config_map_update(new: &ConfigMap, old: &ConfigMap) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    if old.immutable == Some(true) {
        let msg = "field is immutable when `immutable` is set";
        if new.immutable != Some(true) {
            errs.push(field::forbidden(&Path::new("immutable"), msg));
        }
        if new.data != old.data {
            errs.push(field::forbidden(&Path::new("data"), msg));
        }
        if new.binary_data != old.binary_data {
            errs.push(field::forbidden(&Path::new("binaryData"), msg));
        }
    }
    errs.extend(validate_config_map(new));
    errs
}

// ---- Secret ----

/// Validates a Secret (upstream `ValidateSecret`): keys, total data size ≤ 1 MiB, and the
/// keys each well-known type requires.
pub fn validate_secret(secret: &Secret) -> ErrorList {
    let mut errs = core_object_meta(&secret.metadata, true, NameValidator::Dns1123Subdomain);
    let data_path = Path::new("data");
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let mut total = 0usize;
    for (k, v) in data {
        for m in is_config_map_key(k) {
            errs.push(field::invalid(&data_path.key(k), k, &m));
        }
        total += v.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(field::too_long(&data_path, MAX_SECRET_SIZE as i64));
    }
    let json_check = |errs: &mut ErrorList, key: &str| match data.get(key) {
        None => errs.push(field::required(&data_path.key(key), "")),
        Some(v) => {
            if let Err(e) =
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&v.0)
            {
                errs.push(field::invalid(
                    &data_path.key(key),
                    "<secret contents redacted>",
                    &e.to_string(),
                ));
            }
        }
    };
    match s(&secret.type_) {
        "kubernetes.io/service-account-token" => {
            let name = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .map(String::as_str)
                .unwrap_or("");
            if name.is_empty() {
                errs.push(field::required(
                    &Path::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => json_check(&mut errs, ".dockercfg"),
        "kubernetes.io/dockerconfigjson" => json_check(&mut errs, ".dockerconfigjson"),
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            errs.push(field::required(&data_path.key("username"), ""));
            errs.push(field::required(&data_path.key("password"), ""));
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            errs.push(field::required(&data_path.key("ssh-privatekey"), ""));
        }
        "kubernetes.io/tls" => {
            if !data.contains_key("tls.crt") {
                errs.push(field::required(&data_path.key("tls.crt"), ""));
            }
            if !data.contains_key("tls.key") {
                errs.push(field::required(&data_path.key("tls.key"), ""));
            }
        }
        _ => {}
    }
    errs
}

/// Validates a Secret update (upstream `ValidateSecretUpdate`): type immutable, immutable
/// secrets keep their data.
pub fn validate_secret_update(new: &Secret, old: &Secret) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    if new.type_ != old.type_ {
        errs.push(field::invalid(
            &Path::new("type"),
            s(&new.type_),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    if old.immutable == Some(true) {
        let msg = "field is immutable when `immutable` is set";
        if new.immutable != Some(true) {
            errs.push(field::forbidden(&Path::new("immutable"), msg));
        }
        if new.data != old.data {
            errs.push(field::forbidden(&Path::new("data"), msg));
        }
    }
    errs.extend(validate_secret(new));
    errs
}

// ---- ServiceAccount ----

/// Validates a ServiceAccount (upstream `ValidateServiceAccount`).
pub fn validate_service_account(sa: &ServiceAccount) -> ErrorList {
    core_object_meta(&sa.metadata, true, NameValidator::Dns1123Subdomain)
}

/// Validates a ServiceAccount update (upstream `ValidateServiceAccountUpdate`).
pub fn validate_service_account_update(new: &ServiceAccount, old: &ServiceAccount) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    errs.extend(validate_service_account(new));
    errs
}

// ---- Node ----

/// Validates a Node on create (upstream `ValidateNode`).
pub fn validate_node(node: &Node) -> ErrorList {
    let mut errs = core_object_meta(&node.metadata, false, NameValidator::Dns1123Subdomain);
    let spec = node.spec.clone().unwrap_or_default();
    if let Some(t) = spec.taints.as_deref()
        && !t.is_empty()
    {
        errs.extend(validate_node_taints(
            t,
            &Path::new("metadata").child("taints"),
        ));
    }
    errs.extend(validate_node_resources(node));
    let cidrs = spec.pod_cidrs.as_deref().unwrap_or(&[]);
    let p = Path::new("spec").child("podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        errs.extend(is_valid_cidr(&p.index(i), c));
    }
    if cidrs.len() > 1 {
        let v4 = cidrs.iter().filter(|c| !c.contains(':')).count();
        let v6 = cidrs.len() - v4;
        if v4 == 0 || v6 == 0 || cidrs.len() > 2 {
            errs.push(field::invalid(
                &p,
                BadValue::json(cidrs),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, c) in cidrs.iter().enumerate() {
            if !seen.insert(c) {
                errs.push(field::duplicate(&p.index(i), c.as_str()));
            }
        }
    }
    errs
}

fn validate_node_resources(node: &Node) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(status) = &node.status else {
        return errs;
    };
    for (field_name, list) in [
        ("capacity", status.capacity.as_ref()),
        ("allocatable", status.allocatable.as_ref()),
    ] {
        for (k, v) in list.into_iter().flatten() {
            errs.extend(validate_resource_quantity_value(
                k,
                v,
                &Path::new("status").child(field_name).child(k),
            ));
        }
    }
    errs
}

/// Validates a Node update (upstream `ValidateNodeUpdate`): podCIDRs and providerID may only be
/// set once.
pub fn validate_node_update(new: &Node, old: &Node) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    errs.extend(validate_node_resources(new));
    let mut seen = Vec::new();
    for (i, a) in new
        .status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .enumerate()
    {
        if seen.contains(&a) {
            errs.push(field::duplicate(
                &Path::new("status").child("addresses").index(i),
                BadValue::json(a),
            ));
        }
        seen.push(a);
    }
    let ns = new.spec.clone().unwrap_or_default();
    let os = old.spec.clone().unwrap_or_default();
    let old_cidrs = os.pod_cidrs.unwrap_or_default();
    let new_cidrs = ns.pod_cidrs.clone().unwrap_or_default();
    if !old_cidrs.is_empty() {
        let msg = "node updates may not change podCIDR except from \"\" to valid";
        if old_cidrs.len() != new_cidrs.len() {
            errs.push(field::forbidden(&Path::new("spec").child("podCIDRs"), msg));
        } else {
            for (o, n) in old_cidrs.iter().zip(&new_cidrs) {
                if o != n {
                    errs.push(field::forbidden(&Path::new("spec").child("podCIDRs"), msg));
                }
            }
        }
    }
    let opid = s(&os.provider_id);
    if !opid.is_empty() && opid != s(&ns.provider_id) {
        errs.push(field::forbidden(
            &Path::new("spec").child("providerID"),
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    if let Some(t) = ns.taints.as_deref()
        && !t.is_empty()
    {
        errs.extend(validate_node_taints(
            t,
            &Path::new("metadata").child("taints"),
        ));
    }
    if ns.external_id != os.external_id {
        errs.push(field::forbidden(
            &Path::new("spec").child("externalID"),
            "may not be updated",
        ));
    }
    errs
}

// ---- Event (core/v1) ----

const REPORTING_INSTANCE_LENGTH_LIMIT: usize = 128;
const ACTION_LENGTH_LIMIT: usize = 128;
const REASON_LENGTH_LIMIT: usize = 128;
const NOTE_LENGTH_LIMIT: usize = 1024;

/// The fields of an event shared by core/v1 and events.k8s.io/v1, under the internal names
/// upstream validates with.
pub(crate) struct EventView<'a> {
    pub namespace: &'a str,
    pub involved_namespace: &'a str,
    pub event_time_set: bool,
    pub reporting_controller: &'a str,
    pub reporting_instance: &'a str,
    pub action: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
}

/// Upstream `legacyValidateEvent`; `core_v1` selects the `reportingComponent` field name.
pub(crate) fn legacy_validate_event(ev: &EventView<'_>, core_v1: bool) -> ErrorList {
    let mut errs = ErrorList::new();
    let rc_field = if core_v1 {
        "reportingComponent"
    } else {
        "reportingController"
    };
    let inv_ns = Path::new("involvedObject").child("namespace");
    if !ev.event_time_set {
        if ev.involved_namespace.is_empty() {
            if !ev.namespace.is_empty() && ev.namespace != "default" {
                errs.push(field::invalid(
                    &inv_ns,
                    ev.involved_namespace,
                    "does not match event.namespace",
                ));
            }
        } else if ev.namespace != ev.involved_namespace {
            errs.push(field::invalid(
                &inv_ns,
                ev.involved_namespace,
                "does not match event.namespace",
            ));
        }
    } else {
        if ev.involved_namespace.is_empty()
            && ev.namespace != "default"
            && ev.namespace != "kube-system"
        {
            errs.push(field::invalid(
                &inv_ns,
                ev.involved_namespace,
                "does not match event.namespace",
            ));
        }
        if ev.reporting_controller.is_empty() {
            errs.push(field::required(&Path::new(rc_field), ""));
        }
        errs.extend(validate_qualified_name(
            ev.reporting_controller,
            &Path::new(rc_field),
        ));
        for (name, value, limit, required) in [
            (
                "reportingInstance",
                ev.reporting_instance,
                REPORTING_INSTANCE_LENGTH_LIMIT,
                true,
            ),
            ("action", ev.action, ACTION_LENGTH_LIMIT, true),
            ("reason", ev.reason, REASON_LENGTH_LIMIT, true),
            ("message", ev.message, NOTE_LENGTH_LIMIT, false),
        ] {
            if required && value.is_empty() {
                errs.push(field::required(&Path::new(name), ""));
            }
            if value.len() > limit {
                errs.push(field::invalid(
                    &Path::new(name),
                    "",
                    &format!("can have at most {limit} characters"),
                ));
            }
        }
    }
    for m in is_dns1123_subdomain(ev.namespace) {
        errs.push(field::invalid(&Path::new("namespace"), ev.namespace, &m));
    }
    errs
}

fn core_event_view(e: &Event) -> EventView<'_> {
    EventView {
        namespace: s(&e.metadata.namespace),
        involved_namespace: s(&e.involved_object.namespace),
        event_time_set: e.event_time.is_some(),
        reporting_controller: s(&e.reporting_component),
        reporting_instance: s(&e.reporting_instance),
        action: s(&e.action),
        reason: s(&e.reason),
        message: s(&e.message),
    }
}

/// Validates a core/v1 Event on create (upstream `ValidateEventCreate` for `v1`: legacy
/// validation only).
pub fn validate_event(e: &Event) -> ErrorList {
    legacy_validate_event(&core_event_view(e), true)
}

/// Validates a core/v1 Event update (upstream `ValidateEventUpdate` for `v1`).
pub fn validate_event_update(new: &Event, _old: &Event) -> ErrorList {
    legacy_validate_event(&core_event_view(new), true)
}

// ---- ResourceQuota ----

const QUOTA_SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
    "VolumeAttributesClass",
];

fn validate_quota_list(list: Option<&BTreeMap<String, Quantity>>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (k, v) in list.into_iter().flatten() {
        let p = path.key(k);
        errs.extend(validate_quota_resource_name(k, &p));
        errs.extend(validate_resource_quantity_value(k, v, &p));
    }
    errs
}

/// Validates a ResourceQuota (upstream `ValidateResourceQuota`).
pub fn validate_resource_quota(rq: &ResourceQuota) -> ErrorList {
    let mut errs = core_object_meta(&rq.metadata, true, NameValidator::Dns1123Subdomain);
    errs.extend(validate_resource_quota_spec(rq));
    if let Some(st) = &rq.status {
        errs.extend(validate_quota_list(
            st.hard.as_ref(),
            &Path::new("status").child("hard"),
        ));
        errs.extend(validate_quota_list(
            st.used.as_ref(),
            &Path::new("status").child("used"),
        ));
    }
    errs
}

fn validate_resource_quota_spec(rq: &ResourceQuota) -> ErrorList {
    let spec = rq.spec.clone().unwrap_or_default();
    let sp = Path::new("spec");
    let mut errs = validate_quota_list(spec.hard.as_ref(), &sp.child("hard"));
    let scopes = spec.scopes.clone().unwrap_or_default();
    let conflicting = |set: &BTreeSet<&str>| {
        (set.contains("BestEffort") && set.contains("NotBestEffort"))
            || (set.contains("Terminating") && set.contains("NotTerminating"))
    };
    if !scopes.is_empty() {
        let p = sp.child("scopes");
        let mut set = BTreeSet::new();
        for sc in &scopes {
            if !QUOTA_SCOPES.contains(&sc.as_str()) {
                errs.push(field::invalid(
                    &p,
                    BadValue::json(&scopes),
                    "unsupported scope",
                ));
            }
            set.insert(sc.as_str());
        }
        if conflicting(&set) {
            errs.push(field::invalid(
                &p,
                BadValue::json(&scopes),
                "conflicting scopes",
            ));
        }
    }
    if let Some(sel) = &spec.scope_selector {
        let p = sp.child("scopeSelector").child("matchExpressions");
        let mut set = BTreeSet::new();
        for req in sel.match_expressions.iter().flatten() {
            if !QUOTA_SCOPES.contains(&req.scope_name.as_str()) {
                errs.push(field::invalid(
                    &p.child("scopeName"),
                    req.scope_name.as_str(),
                    "unsupported scope",
                ));
            }
            if matches!(
                req.scope_name.as_str(),
                "BestEffort"
                    | "NotBestEffort"
                    | "Terminating"
                    | "NotTerminating"
                    | "CrossNamespacePodAffinity"
            ) && req.operator != "Exists"
            {
                errs.push(field::invalid(
                    &p.child("operator"),
                    req.operator.as_str(),
                    "must be 'Exists' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity",
                ));
            }
            let values = req.values.as_deref().unwrap_or(&[]);
            match req.operator.as_str() {
                "In" | "NotIn" => {
                    if values.is_empty() {
                        errs.push(field::required(
                            &p.child("values"),
                            "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
                        ));
                    }
                }
                "Exists" | "DoesNotExist" => {
                    if !values.is_empty() {
                        errs.push(field::invalid(
                            &p.child("values"),
                            BadValue::json(values),
                            "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
                        ));
                    }
                }
                other => errs.push(field::invalid(
                    &p.child("operator"),
                    other,
                    "not a valid selector operator",
                )),
            }
            set.insert(req.scope_name.as_str());
        }
        if conflicting(&set) {
            errs.push(field::invalid(
                &p,
                BadValue::json(&spec.scopes),
                "conflicting scopes",
            ));
        }
    }
    errs
}

/// Validates a ResourceQuota update (upstream `ValidateResourceQuotaUpdate`): scopes immutable.
pub fn validate_resource_quota_update(new: &ResourceQuota, old: &ResourceQuota) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    errs.extend(validate_resource_quota_spec(new));
    let scopes = |rq: &ResourceQuota| -> BTreeSet<String> {
        rq.spec
            .iter()
            .flat_map(|s| s.scopes.iter().flatten().cloned())
            .collect()
    };
    if scopes(new) != scopes(old) {
        errs.push(field::invalid(
            &Path::new("spec").child("scopes"),
            BadValue::json(&new.spec.as_ref().and_then(|s| s.scopes.clone())),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    errs
}

/// Validates a ResourceQuota status update (upstream `ValidateResourceQuotaStatusUpdate`).
pub fn validate_resource_quota_status_update(
    new: &ResourceQuota,
    old: &ResourceQuota,
) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    if s(&new.metadata.resource_version).is_empty() {
        errs.push(field::required(&Path::new("resourceVersion"), ""));
    }
    if let Some(st) = &new.status {
        errs.extend(validate_quota_list(
            st.hard.as_ref(),
            &Path::new("status").child("hard"),
        ));
        errs.extend(validate_quota_list(
            st.used.as_ref(),
            &Path::new("status").child("used"),
        ));
    }
    errs
}

// ---- LimitRange ----

const STANDARD_LIMIT_TYPES: &[&str] = &["Pod", "Container", "PersistentVolumeClaim"];

/// Validates a LimitRange (upstream `ValidateLimitRange`).
pub fn validate_limit_range(lr: &LimitRange) -> ErrorList {
    let mut errs = core_object_meta(&lr.metadata, true, NameValidator::Dns1123Subdomain);
    let base = Path::new("spec").child("limits");
    let mut types = BTreeSet::new();
    let limits = lr
        .spec
        .as_ref()
        .map(|s| s.limits.clone())
        .unwrap_or_default();
    for (i, limit) in limits.iter().enumerate() {
        let ip = base.index(i);
        let t = limit.type_.as_str();
        let tp = ip.child("type");
        let qn: ErrorList = is_qualified_name(t)
            .into_iter()
            .map(|m| field::invalid(&tp, t, &m))
            .collect();
        if qn.is_empty() {
            if !t.contains('/') && !STANDARD_LIMIT_TYPES.contains(&t) {
                errs.push(field::invalid(
                    &tp,
                    t,
                    "must be a standard limit type or fully qualified",
                ));
            }
        } else {
            errs.extend(qn);
        }
        if !types.insert(t) {
            errs.push(field::duplicate(&tp, t));
        }
        let name_check = |k: &str, p: &Path| {
            if t == "Pod" || t == "Container" {
                validate_container_resource_name(k, p)
            } else {
                validate_resource_name(k, p)
            }
        };
        let mut keys = BTreeSet::new();
        let empty = BTreeMap::new();
        let max = limit.max.as_ref().unwrap_or(&empty);
        let min = limit.min.as_ref().unwrap_or(&empty);
        let def = limit.default.as_ref().unwrap_or(&empty);
        let def_req = limit.default_request.as_ref().unwrap_or(&empty);
        let ratio = limit.max_limit_request_ratio.as_ref().unwrap_or(&empty);
        for k in max.keys() {
            errs.extend(name_check(k, &ip.child("max").key(k)));
            keys.insert(k.clone());
        }
        for k in min.keys() {
            errs.extend(name_check(k, &ip.child("min").key(k)));
            keys.insert(k.clone());
        }
        if t == "Pod" {
            if !def.is_empty() {
                errs.push(field::forbidden(
                    &ip.child("default"),
                    "may not be specified when `type` is 'Pod'",
                ));
            }
            if !def_req.is_empty() {
                errs.push(field::forbidden(
                    &ip.child("defaultRequest"),
                    "may not be specified when `type` is 'Pod'",
                ));
            }
        } else {
            for k in def.keys() {
                errs.extend(name_check(k, &ip.child("default").key(k)));
                keys.insert(k.clone());
            }
            for k in def_req.keys() {
                errs.extend(name_check(k, &ip.child("defaultRequest").key(k)));
                keys.insert(k.clone());
            }
        }
        if t == "PersistentVolumeClaim"
            && !min.contains_key("storage")
            && !max.contains_key("storage")
        {
            errs.push(field::required(
                &ip.child("limits"),
                "either minimum or maximum storage value is required, but neither was provided",
            ));
        }
        for k in ratio.keys() {
            errs.extend(name_check(k, &ip.child("maxLimitRequestRatio").key(k)));
            keys.insert(k.clone());
        }
        let (def, def_req) = if t == "Pod" {
            (&empty, &empty)
        } else {
            (def, def_req)
        };
        for k in &keys {
            let q = |m: &BTreeMap<String, Quantity>| {
                m.get(k)
                    .and_then(|v| parse_quantity(&v.0).ok().map(|p| (p, v.0.clone())))
            };
            let (mn, mx, d, dr, r) = (q(min), q(max), q(def), q(def_req), q(ratio));
            if let (Some((a, as_)), Some((b, bs))) = (&mn, &mx)
                && a > b
            {
                errs.push(field::invalid(
                    &ip.child("min").key(k),
                    as_.as_str(),
                    &format!("min value {as_} is greater than max value {bs}"),
                ));
            }
            if let (Some((a, as_)), Some((b, bs))) = (&mn, &dr)
                && a > b
            {
                errs.push(field::invalid(
                    &ip.child("defaultRequest").key(k),
                    bs.as_str(),
                    &format!("min value {as_} is greater than default request value {bs}"),
                ));
            }
            if let (Some((a, as_)), Some((b, bs))) = (&dr, &mx)
                && a > b
            {
                errs.push(field::invalid(
                    &ip.child("defaultRequest").key(k),
                    as_.as_str(),
                    &format!("default request value {as_} is greater than max value {bs}"),
                ));
            }
            if let (Some((a, as_)), Some((b, bs))) = (&dr, &d)
                && a > b
            {
                errs.push(field::invalid(
                    &ip.child("defaultRequest").key(k),
                    as_.as_str(),
                    &format!(
                        "default request value {as_} is greater than default limit value {bs}"
                    ),
                ));
            }
            if let (Some((a, as_)), Some((b, bs))) = (&mn, &d)
                && a > b
            {
                errs.push(field::invalid(
                    &ip.child("default").key(k),
                    as_.as_str(),
                    &format!("min value {as_} is greater than default value {bs}"),
                ));
            }
            if let (Some((a, as_)), Some((b, bs))) = (&d, &mx)
                && a > b
            {
                errs.push(field::invalid(
                    &ip.child("default").key(k),
                    bs.as_str(),
                    &format!("default value {as_} is greater than max value {bs}"),
                ));
            }
            if let Some((rv, rs)) = &r
                && rv.nanos() < 1_000_000_000
            {
                errs.push(field::invalid(
                    &ip.child("maxLimitRequestRatio").key(k),
                    rs.as_str(),
                    &format!("ratio {rs} is less than 1"),
                ));
            }
            if let (Some((rv, rs)), Some((a, _)), Some((b, _))) = (&r, &mn, &mx) {
                let limit = b.milli_value() as f64 / a.milli_value() as f64;
                if (rv.milli_value() as f64 / 1000.0) > limit {
                    errs.push(field::invalid(
                        &ip.child("maxLimitRequestRatio").key(k),
                        rs.as_str(),
                        &format!("ratio {rs} is greater than max/min = {limit:.6}"),
                    ));
                }
            }
            if !is_overcommit_allowed(k)
                && let (Some((a, as_)), Some((b, bs))) = (&d, &dr)
                && a != b
            {
                errs.push(field::invalid(
                    &ip.child("defaultRequest").key(k),
                    bs.as_str(),
                    &format!("default value {as_} must equal to defaultRequest value {bs} in {k}"),
                ));
            }
        }
    }
    errs
}

/// Validates a LimitRange update (upstream: metadata update plus full validation).
pub fn validate_limit_range_update(new: &LimitRange, old: &LimitRange) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    errs.extend(validate_limit_range(new));
    errs
}

// ---- Endpoints ----

/// Validates Endpoints (upstream `ValidateEndpoints`).
pub fn validate_endpoints(ep: &Endpoints) -> ErrorList {
    let mut errs = core_object_meta(&ep.metadata, true, NameValidator::Dns1123Subdomain);
    let base = Path::new("subsets");
    for (i, ss) in ep.subsets.iter().flatten().enumerate() {
        let ip = base.index(i);
        let addrs = ss.addresses.as_deref().unwrap_or(&[]);
        let not_ready = ss.not_ready_addresses.as_deref().unwrap_or(&[]);
        if addrs.is_empty() && not_ready.is_empty() {
            errs.push(field::required(
                &ip,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (j, a) in addrs.iter().enumerate() {
            errs.extend(validate_endpoint_address(
                a,
                &ip.child("addresses").index(j),
            ));
        }
        for (j, a) in not_ready.iter().enumerate() {
            errs.extend(validate_endpoint_address(
                a,
                &ip.child("notReadyAddresses").index(j),
            ));
        }
        let ports = ss.ports.as_deref().unwrap_or(&[]);
        for (j, port) in ports.iter().enumerate() {
            let pp = ip.child("ports").index(j);
            let name = s(&port.name);
            if ports.len() > 1 && name.is_empty() {
                errs.push(field::required(&pp.child("name"), ""));
            } else if !name.is_empty() {
                errs.extend(validate_dns1123_label(name, &pp.child("name")));
            }
            for m in is_valid_port_num(i64::from(port.port)) {
                errs.push(field::invalid(&pp.child("port"), port.port, &m));
            }
            let proto = s(&port.protocol);
            if proto.is_empty() {
                errs.push(field::required(&pp.child("protocol"), ""));
            } else if !["SCTP", "TCP", "UDP"].contains(&proto) {
                errs.push(field::not_supported(
                    &pp.child("protocol"),
                    proto,
                    &["SCTP", "TCP", "UDP"],
                ));
            }
            if let Some(ap) = &port.app_protocol {
                errs.extend(validate_qualified_name(ap, &pp.child("appProtocol")));
            }
        }
    }
    errs
}

fn validate_endpoint_address(a: &EndpointAddress, path: &Path) -> ErrorList {
    let mut errs = is_valid_ip(&path.child("ip"), &a.ip);
    let hostname = s(&a.hostname);
    if !hostname.is_empty() {
        errs.extend(validate_dns1123_label(hostname, &path.child("hostname")));
    }
    if let Some(n) = &a.node_name {
        errs.extend(validate_name(
            NameValidator::Dns1123Subdomain,
            n,
            &path.child("nodeName"),
        ));
    }
    errs.extend(validate_non_special_ip(&a.ip, &path.child("ip")));
    errs
}

/// Validates an Endpoints update (upstream `ValidateEndpointsUpdate`).
pub fn validate_endpoints_update(new: &Endpoints, old: &Endpoints) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    errs.extend(validate_endpoints(new));
    errs
}
