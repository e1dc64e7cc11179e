//! Generic ObjectMeta validation run for every kind after its own validation (upstream
//! `rest.BeforeCreate` step 5 and `ValidateObjectMetaUpdate`).

use api::field::{ErrorList, Path};
use api::validation::NameValidator;
use codec::ordered::{Cursor, find, member, value_eq};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta, Time};
use serde::Deserialize;
use serde_json::Value;

use crate::registry::ResourceInfo;

/// The metadata to validate. Of managedFields, validation reads every member of an entry but
/// its `fieldsV1` tree (the costliest part to decode), which is left out.
fn meta(obj: &Value) -> ObjectMeta {
    #[derive(Deserialize)]
    struct Object {
        #[serde(default)]
        metadata: ObjectMeta,
    }
    match api::managed_fields::deserialize_without_managed_fields::<Object, _>(obj) {
        Ok(Object { mut metadata }) => match managed_field_headers(obj) {
            Ok(entries) => {
                metadata.managed_fields = entries;
                metadata
            }
            Err(_) => ObjectMeta::default(),
        },
        Err(_) => ObjectMeta::default(),
    }
}

/// The managedFields entries of `obj` without their `fieldsV1` trees: all that validation
/// reads of them. `Err` when they do not decode.
pub fn managed_field_headers(
    obj: &Value,
) -> Result<Option<Vec<ManagedFieldsEntry>>, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct EntryHeader {
        api_version: Option<String>,
        fields_type: Option<String>,
        manager: Option<String>,
        operation: Option<String>,
        subresource: Option<String>,
        time: Option<Time>,
    }
    let Some(entries) = member(obj, "metadata")
        .and_then(|m| member(m, "managedFields"))
        .filter(|e| !e.is_null())
    else {
        return Ok(None);
    };
    let headers = Vec::<EntryHeader>::deserialize(entries)?;
    Ok(Some(
        headers
            .into_iter()
            .map(|e| ManagedFieldsEntry {
                api_version: e.api_version,
                fields_type: e.fields_type,
                fields_v1: None,
                manager: e.manager,
                operation: e.operation,
                subresource: e.subresource,
                time: e.time,
            })
            .collect(),
    ))
}

/// The name rule of a kind.
fn name_validator(r: &ResourceInfo) -> NameValidator {
    match r.resource {
        "namespaces" | "services" => NameValidator::Dns1123Label,
        "events" | "nodes" | "leases" => NameValidator::PathSegment,
        _ => NameValidator::Dns1123Subdomain,
    }
}

/// Validates an object's metadata.
pub fn validate_object_meta(r: &ResourceInfo, obj: &Value) -> ErrorList {
    api::validation::validate_object_meta(
        &meta(obj),
        r.namespaced,
        name_validator(r),
        &Path::new("metadata"),
    )
}

/// [`validate_object_meta`] of an updated object's metadata, and what the update changed in it
/// (upstream `ValidateObjectMetaUpdate`), on metadata already decoded (by a typed validation, or
/// [`check_json_meta`]).
pub fn validate_updated_meta(r: &ResourceInfo, new: &ObjectMeta, old: &ObjectMeta) -> ErrorList {
    let path = Path::new("metadata");
    let mut errs =
        api::validation::validate_object_meta(new, r.namespaced, name_validator(r), &path);
    errs.extend(api::validation::validate_object_meta_update(
        new, old, &path,
    ));
    errs
}

/// Whether an update leaves the metadata as it was: every member but `resourceVersion` equal,
/// and `managedFields` either left out (the field manager fills them in after validation) or
/// equal. The rules of [`validate_updated_meta`] then hold for the new object as they held for
/// the old one when it was written, given a resourceVersion to update from.
pub fn metadata_unchanged(new: &Value, old: &Value) -> bool {
    let (Some(n), Some(o)) = (
        member(new, "metadata").and_then(Value::as_object),
        member(old, "metadata").and_then(Value::as_object),
    ) else {
        return false;
    };
    if find(n, "resourceVersion")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return false;
    }
    let mut in_old = Cursor::new(o);
    let kept = |k: &&String| *k != "resourceVersion" && *k != "managedFields";
    // Every key of `new` is in `old`, so `old` has no other key than these if it has as many.
    n.iter()
        .filter(|(k, _)| *k != "resourceVersion")
        .all(|(k, v)| in_old.get(k).is_some_and(|ov| value_eq(v, ov)))
        && o.keys().filter(kept).count() == n.keys().filter(kept).count()
}

/// Runs a metadata check on the metadata of two JSON objects.
pub fn check_json_meta(
    new: &Value,
    old: &Value,
    check: crate::registry::strategy::MetaCheck<'_>,
) -> ErrorList {
    check(&meta(new), &meta(old))
}
