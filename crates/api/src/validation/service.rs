//! Validation stubs (being filled in).

use super::{NameValidator, validate_object_meta, validate_object_meta_update};
use crate::field::{ErrorList, Path};

/// Validates a `Service` on create.
pub fn validate_service(obj: &k8s_openapi::api::core::v1::Service) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::Dns1035Label,
        &Path::new("metadata"),
    )
}

/// Validates a `Service` on update.
pub fn validate_service_update(
    new: &k8s_openapi::api::core::v1::Service,
    old: &k8s_openapi::api::core::v1::Service,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}
