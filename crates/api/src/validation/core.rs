//! Validation stubs (being filled in).

use super::{NameValidator, validate_object_meta, validate_object_meta_update};
use crate::field::{ErrorList, Path};

/// Validates a `Namespace` on create.
pub fn validate_namespace(obj: &k8s_openapi::api::core::v1::Namespace) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        false,
        NameValidator::Dns1123Label,
        &Path::new("metadata"),
    )
}

/// Validates a `Namespace` on update.
pub fn validate_namespace_update(
    new: &k8s_openapi::api::core::v1::Namespace,
    old: &k8s_openapi::api::core::v1::Namespace,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// Validates a `ConfigMap` on create.
pub fn validate_config_map(obj: &k8s_openapi::api::core::v1::ConfigMap) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// Validates a `ConfigMap` on update.
pub fn validate_config_map_update(
    new: &k8s_openapi::api::core::v1::ConfigMap,
    old: &k8s_openapi::api::core::v1::ConfigMap,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// Validates a `Secret` on create.
pub fn validate_secret(obj: &k8s_openapi::api::core::v1::Secret) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// Validates a `Secret` on update.
pub fn validate_secret_update(
    new: &k8s_openapi::api::core::v1::Secret,
    old: &k8s_openapi::api::core::v1::Secret,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// Validates a `ServiceAccount` on create.
pub fn validate_service_account(obj: &k8s_openapi::api::core::v1::ServiceAccount) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// Validates a `ServiceAccount` on update.
pub fn validate_service_account_update(
    new: &k8s_openapi::api::core::v1::ServiceAccount,
    old: &k8s_openapi::api::core::v1::ServiceAccount,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// Validates a `Node` on create.
pub fn validate_node(obj: &k8s_openapi::api::core::v1::Node) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        false,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// Validates a `Node` on update.
pub fn validate_node_update(
    new: &k8s_openapi::api::core::v1::Node,
    old: &k8s_openapi::api::core::v1::Node,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// Validates a `Event` on create.
pub fn validate_event(obj: &k8s_openapi::api::core::v1::Event) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::PathSegment,
        &Path::new("metadata"),
    )
}

/// Validates a `Event` on update.
pub fn validate_event_update(
    new: &k8s_openapi::api::core::v1::Event,
    old: &k8s_openapi::api::core::v1::Event,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// Validates a `ResourceQuota` on create.
pub fn validate_resource_quota(obj: &k8s_openapi::api::core::v1::ResourceQuota) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// Validates a `ResourceQuota` on update.
pub fn validate_resource_quota_update(
    new: &k8s_openapi::api::core::v1::ResourceQuota,
    old: &k8s_openapi::api::core::v1::ResourceQuota,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// Validates a `LimitRange` on create.
pub fn validate_limit_range(obj: &k8s_openapi::api::core::v1::LimitRange) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// Validates a `LimitRange` on update.
pub fn validate_limit_range_update(
    new: &k8s_openapi::api::core::v1::LimitRange,
    old: &k8s_openapi::api::core::v1::LimitRange,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// Validates a `Endpoints` on create.
pub fn validate_endpoints(obj: &k8s_openapi::api::core::v1::Endpoints) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// Validates a `Endpoints` on update.
pub fn validate_endpoints_update(
    new: &k8s_openapi::api::core::v1::Endpoints,
    old: &k8s_openapi::api::core::v1::Endpoints,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}
