//! Validation stubs (being filled in).

use super::{NameValidator, validate_object_meta, validate_object_meta_update};
use crate::field::{ErrorList, Path};

/// Validates a `Deployment` on create.
pub fn validate_deployment(obj: &k8s_openapi::api::apps::v1::Deployment) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// Validates a `Deployment` on update.
pub fn validate_deployment_update(
    new: &k8s_openapi::api::apps::v1::Deployment,
    old: &k8s_openapi::api::apps::v1::Deployment,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// Validates a `ReplicaSet` on create.
pub fn validate_replica_set(obj: &k8s_openapi::api::apps::v1::ReplicaSet) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// Validates a `ReplicaSet` on update.
pub fn validate_replica_set_update(
    new: &k8s_openapi::api::apps::v1::ReplicaSet,
    old: &k8s_openapi::api::apps::v1::ReplicaSet,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// Validates a `Scale` on create.
pub fn validate_scale(obj: &k8s_openapi::api::autoscaling::v1::Scale) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::PathSegment,
        &Path::new("metadata"),
    )
}

/// Validates a `Scale` on update.
pub fn validate_scale_update(
    new: &k8s_openapi::api::autoscaling::v1::Scale,
    old: &k8s_openapi::api::autoscaling::v1::Scale,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}
/// Validates a Deployment status update.
pub fn validate_deployment_status_update(
    new: &k8s_openapi::api::apps::v1::Deployment,
    old: &k8s_openapi::api::apps::v1::Deployment,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}
/// Validates a ReplicaSet status update.
pub fn validate_replica_set_status_update(
    new: &k8s_openapi::api::apps::v1::ReplicaSet,
    old: &k8s_openapi::api::apps::v1::ReplicaSet,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}
