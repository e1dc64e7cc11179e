//! Validation stubs (being filled in).

use super::{NameValidator, validate_object_meta, validate_object_meta_update};
use crate::field::{ErrorList, Path};

/// Validates a `EndpointSlice` on create.
pub fn validate_endpoint_slice(obj: &k8s_openapi::api::discovery::v1::EndpointSlice) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// Validates a `EndpointSlice` on update.
pub fn validate_endpoint_slice_update(
    new: &k8s_openapi::api::discovery::v1::EndpointSlice,
    old: &k8s_openapi::api::discovery::v1::EndpointSlice,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// Validates a `Lease` on create.
pub fn validate_lease(obj: &k8s_openapi::api::coordination::v1::Lease) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    )
}

/// Validates a `Lease` on update.
pub fn validate_lease_update(
    new: &k8s_openapi::api::coordination::v1::Lease,
    old: &k8s_openapi::api::coordination::v1::Lease,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}

/// Validates a `Event` on create.
pub fn validate_events_event(obj: &k8s_openapi::api::events::v1::Event) -> ErrorList {
    validate_object_meta(
        &obj.metadata,
        true,
        NameValidator::PathSegment,
        &Path::new("metadata"),
    )
}

/// Validates a `Event` on update.
pub fn validate_events_event_update(
    new: &k8s_openapi::api::events::v1::Event,
    old: &k8s_openapi::api::events::v1::Event,
) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"))
}
