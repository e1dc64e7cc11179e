//! Registration of every built-in kind: one entry each, plus its strategy.

use std::sync::Arc;

use k8s_openapi::api::{apps, coordination, core, discovery, events};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::same::serializes_to;
use super::strategy::{MetaCheck, Strategy, StrategyCtx};
use super::{ResourceInfo, Subresource};
use api::field::ErrorList;

/// Deserializes into `T` and serializes back, which drops unknown fields and normalizes the
/// object exactly as a typed decode does upstream. `None` when that gives back `v` itself (the
/// usual case), which is found without building the copy.
pub fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Option<Value>, String> {
    // Deserializing from a borrowed Value avoids a deep copy of the object.
    let typed = T::deserialize(v).map_err(|e| e.to_string())?;
    if serializes_to(&typed, v) {
        return Ok(None);
    }
    serde_json::to_value(typed)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Applies a typed function to a JSON object in place (no-op if the object does not decode,
/// which the round trip has already excluded).
pub fn with_typed<T: DeserializeOwned + Serialize>(v: &mut Value, f: impl FnOnce(&mut T)) {
    if let Ok(mut typed) = T::deserialize(&*v) {
        f(&mut typed);
        if serializes_to(&typed, v) {
            return;
        }
        if let Ok(new) = serde_json::to_value(typed) {
            *v = new;
        }
    }
}

/// Decodes a JSON object into `T` for validation.
pub fn typed<T: DeserializeOwned>(v: &Value) -> Option<T> {
    T::deserialize(v).ok()
}

type DefaultFn = fn(&mut Value);
type PrepareUpdateFn = fn(&mut Value, &Value);
type ValidateFn = fn(&Value) -> ErrorList;
/// See [`Strategy::is_normal_form`].
type NormalFn = fn(&Value) -> bool;
type ValidateUpdateFn = fn(&Value, &Value) -> ErrorList;
type ValidateUpdateMetaFn = fn(&Value, &Value, MetaCheck<'_>) -> ErrorList;

/// A strategy assembled from per-kind functions.
pub struct KindStrategy {
    generation: bool,
    status: bool,
    create_on_update: bool,
    default: Option<DefaultFn>,
    on_create: Option<DefaultFn>,
    admit: Option<DefaultFn>,
    on_update: Option<PrepareUpdateFn>,
    validate: Option<ValidateFn>,
    validate_update: Option<ValidateUpdateMetaFn>,
    validate_status: Option<ValidateUpdateFn>,
    normal: Option<NormalFn>,
    graceful: bool,
}

impl KindStrategy {
    const fn new() -> KindStrategy {
        KindStrategy {
            generation: false,
            status: false,
            create_on_update: false,
            default: None,
            on_create: None,
            admit: None,
            on_update: None,
            validate: None,
            validate_update: None,
            validate_status: None,
            normal: None,
            graceful: false,
        }
    }
    const fn generation(mut self) -> Self {
        self.generation = true;
        self
    }
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn create_on_update(mut self) -> Self {
        self.create_on_update = true;
        self
    }
    const fn graceful(mut self) -> Self {
        self.graceful = true;
        self
    }
    const fn defaults(mut self, f: DefaultFn) -> Self {
        self.default = Some(f);
        self
    }
    const fn on_create(mut self, f: DefaultFn) -> Self {
        self.on_create = Some(f);
        self
    }
    const fn admit(mut self, f: DefaultFn) -> Self {
        self.admit = Some(f);
        self
    }
    const fn on_update(mut self, f: PrepareUpdateFn) -> Self {
        self.on_update = Some(f);
        self
    }
    const fn validate(mut self, v: ValidateFn, u: ValidateUpdateMetaFn) -> Self {
        self.validate = Some(v);
        self.validate_update = Some(u);
        self
    }
    const fn validate_status(mut self, s: ValidateUpdateFn) -> Self {
        self.validate_status = Some(s);
        self
    }
    const fn normal(mut self, f: NormalFn) -> Self {
        self.normal = Some(f);
        self
    }
}

impl Strategy for KindStrategy {
    fn tracks_generation(&self) -> bool {
        self.generation
    }
    fn has_status_subresource(&self) -> bool {
        self.status
    }
    fn default_fields(&self, obj: &mut Value) {
        if let Some(d) = self.default {
            d(obj);
        }
    }
    fn admit(&self, obj: &mut Value) {
        if let Some(a) = self.admit {
            a(obj);
        }
    }
    fn prepare_for_create(&self, obj: &mut Value, _ctx: StrategyCtx<'_>) {
        if let Some(f) = self.on_create {
            f(obj);
        }
    }
    fn validate(&self, obj: &Value) -> ErrorList {
        self.validate.map(|v| v(obj)).unwrap_or_default()
    }
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        if let Some(f) = self.on_update {
            f(new, old);
        }
        if let Some(d) = self.default {
            d(new);
        }
    }
    fn validate_update(&self, new: &Value, old: &Value, meta: MetaCheck<'_>) -> ErrorList {
        match self.validate_update {
            Some(v) => v(new, old, meta),
            None => crate::meta_validation::check_json_meta(new, old, meta),
        }
    }
    fn validate_status_update(&self, new: &Value, old: &Value) -> ErrorList {
        self.validate_status
            .map(|v| v(new, old))
            .unwrap_or_default()
    }
    fn allow_create_on_update(&self) -> bool {
        self.create_on_update
    }
    fn is_normal_form(&self, obj: &Value) -> bool {
        self.normal.is_some_and(|f| f(obj))
    }
    fn graceful_delete(&self, obj: &Value, requested: Option<i64>) -> Option<i64> {
        if !self.graceful {
            return None;
        }
        // Pods: unscheduled or already finished pods go at once (upstream
        // `podStrategy.CheckGracefulDelete`).
        let node = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let phase = obj
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node.is_empty() || phase == "Failed" || phase == "Succeeded" {
            return Some(0);
        }
        let spec_grace = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        Some(requested.unwrap_or(spec_grace).max(0))
    }
}

macro_rules! kind {
    ($ty:ty, $group:expr, $version:expr, $resource:expr, $singular:expr, $kind:expr, $ns:expr,
     short: [$($short:expr),*], cat: [$($cat:expr),*], sub: [$($sub:expr),*], key: $key:expr, $strategy:expr) => {
        ResourceInfo {
            group: $group,
            version: $version,
            group_version: if $group.is_empty() {
                $version
            } else {
                concat!($group, "/", $version)
            },
            resource: $resource,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            subresources: &[$($sub),*],
            key_prefix: $key,
            strategy: Arc::new($strategy),
            round_trip: round_trip::<$ty>,
        }
    };
}

/// Every built-in kind.
pub fn all() -> Vec<ResourceInfo> {
    use super::strategy_fns as f;
    use Subresource::*;
    vec![
        kind!(core::v1::Namespace, "", "v1", "namespaces", "namespace", "Namespace", false,
            short: ["ns"], cat: [], sub: [Status, Finalize], key: "/registry/namespaces",
            KindStrategy::new().status().on_create(f::prepare_namespace_create).on_update(f::prepare_namespace_update).defaults(f::default_namespace).validate(f::validate_namespace, f::validate_namespace_update)),
        kind!(core::v1::Pod, "", "v1", "pods", "pod", "Pod", true,
            short: ["po"], cat: ["all"], sub: [Status, Binding, Eviction, Attach, Exec, Log, PortForward], key: "/registry/pods",
            KindStrategy::new().generation().status().graceful().on_create(f::prepare_pod_create).admit(f::admit_pod).defaults(f::default_pod).validate(f::validate_pod, f::validate_pod_update).validate_status(f::validate_pod_status)),
        kind!(core::v1::Service, "", "v1", "services", "service", "Service", true,
            short: ["svc"], cat: ["all"], sub: [Status], key: "/registry/services/specs",
            KindStrategy::new().status().on_update(f::prepare_service_update).defaults(f::default_service).validate(f::validate_service, f::validate_service_update)),
        kind!(core::v1::Endpoints, "", "v1", "endpoints", "endpoints", "Endpoints", true,
            short: ["ep"], cat: [], sub: [], key: "/registry/services/endpoints",
            KindStrategy::new().create_on_update().defaults(f::default_endpoints).validate(f::validate_endpoints, f::validate_endpoints_update)),
        kind!(core::v1::ConfigMap, "", "v1", "configmaps", "configmap", "ConfigMap", true,
            short: ["cm"], cat: [], sub: [], key: "/registry/configmaps",
            KindStrategy::new().validate(f::validate_configmap, f::validate_configmap_update)),
        kind!(core::v1::Secret, "", "v1", "secrets", "secret", "Secret", true,
            short: [], cat: [], sub: [], key: "/registry/secrets",
            KindStrategy::new().defaults(f::default_secret).validate(f::validate_secret, f::validate_secret_update)),
        kind!(core::v1::ServiceAccount, "", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true,
            short: ["sa"], cat: [], sub: [], key: "/registry/serviceaccounts",
            KindStrategy::new().validate(f::validate_serviceaccount, f::validate_serviceaccount_update)),
        kind!(core::v1::Node, "", "v1", "nodes", "node", "Node", false,
            short: ["no"], cat: [], sub: [Status, Proxy], key: "/registry/minions",
            KindStrategy::new().status().defaults(f::default_node).validate(f::validate_node, f::validate_node_update)),
        kind!(core::v1::Event, "", "v1", "events", "event", "Event", true,
            short: ["ev"], cat: [], sub: [], key: "/registry/events",
            KindStrategy::new().validate(f::validate_event, f::validate_event_update)),
        kind!(core::v1::ResourceQuota, "", "v1", "resourcequotas", "resourcequota", "ResourceQuota", true,
            short: ["quota"], cat: [], sub: [Status], key: "/registry/resourcequotas",
            KindStrategy::new().status().validate(f::validate_resourcequota, f::validate_resourcequota_update)),
        kind!(core::v1::LimitRange, "", "v1", "limitranges", "limitrange", "LimitRange", true,
            short: ["limits"], cat: [], sub: [], key: "/registry/limitranges",
            KindStrategy::new().defaults(f::default_limitrange).validate(f::validate_limitrange, f::validate_limitrange_update)),
        kind!(apps::v1::Deployment, "apps", "v1", "deployments", "deployment", "Deployment", true,
            short: ["deploy"], cat: ["all"], sub: [Status, Scale], key: "/registry/deployments",
            KindStrategy::new().generation().status().on_create(f::clear_status).defaults(f::default_deployment).validate(f::validate_deployment, f::validate_deployment_update).validate_status(f::validate_deployment_status)),
        kind!(apps::v1::ReplicaSet, "apps", "v1", "replicasets", "replicaset", "ReplicaSet", true,
            short: ["rs"], cat: ["all"], sub: [Status, Scale], key: "/registry/replicasets",
            KindStrategy::new().generation().status().on_create(f::clear_status).defaults(f::default_replicaset).validate(f::validate_replicaset, f::validate_replicaset_update).validate_status(f::validate_replicaset_status)),
        kind!(discovery::v1::EndpointSlice, "discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", true,
            short: [], cat: [], sub: [], key: "/registry/endpointslices",
            KindStrategy::new().generation().defaults(f::default_endpointslice).validate(f::validate_endpointslice, f::validate_endpointslice_update)),
        kind!(coordination::v1::Lease, "coordination.k8s.io", "v1", "leases", "lease", "Lease", true,
            short: [], cat: [], sub: [], key: "/registry/leases",
            KindStrategy::new().normal(super::normal::lease).validate(f::validate_lease, f::validate_lease_update)),
        kind!(events::v1::Event, "events.k8s.io", "v1", "events", "event", "Event", true,
            short: ["ev"], cat: [], sub: [], key: "/registry/events",
            KindStrategy::new().validate(f::validate_events_event, f::validate_events_event_update)),
    ]
}

/// A strategy with no per-kind behaviour (for types that are never stored, like Scale).
pub struct NoStrategy;

impl Strategy for NoStrategy {}
