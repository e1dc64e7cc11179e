//! Validation stubs (being filled in).

use super::{NameValidator, validate_object_meta, validate_object_meta_update};
use crate::field::{ErrorList, Path};

/// Validates a `Pod` on create.
pub fn validate_pod(obj: &k8s_openapi::api::core::v1::Pod) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// Validates a `Pod` on update.
pub fn validate_pod_update(
    new: &k8s_openapi::api::core::v1::Pod,
    old: &k8s_openapi::api::core::v1::Pod,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// Validates a `Binding` on create.
pub fn validate_binding(obj: &k8s_openapi::api::core::v1::Binding) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// Validates a `Binding` on update.
pub fn validate_binding_update(
    new: &k8s_openapi::api::core::v1::Binding,
    old: &k8s_openapi::api::core::v1::Binding,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}
/// Validates a Pod status update (the `status` subresource).
pub fn validate_pod_status_update(
    new: &k8s_openapi::api::core::v1::Pod,
    old: &k8s_openapi::api::core::v1::Pod,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}
