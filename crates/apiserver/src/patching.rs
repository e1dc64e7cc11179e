//! Patch types and managed fields, delegating the algorithms to the `patch` crate with the
//! schemas of the `openapi` crate.

use serde_json::Value;

use crate::error::{ApiError, Cause};
use crate::registry::ResourceInfo;

/// The four patch content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    JsonPatch,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

const SUPPORTED: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

impl PatchType {
    /// From the request's media type; 415 otherwise.
    pub fn from_content_type(mt: &str) -> Result<PatchType, ApiError> {
        match mt {
            "application/json-patch+json" => Ok(PatchType::JsonPatch),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" => Ok(PatchType::Apply),
            _ => Err(ApiError::unsupported_media_type(SUPPORTED)),
        }
    }
}

/// A parsed patch body.
#[derive(Debug, Clone)]
pub enum PatchDoc {
    /// Any JSON document (merge, strategic, apply).
    Json(Value),
    /// RFC 6902 operations.
    Ops(Value),
}

/// Parses a patch body (YAML accepted for apply).
pub fn parse_patch(t: PatchType, body: &[u8]) -> Result<PatchDoc, ApiError> {
    let bad = |e: String| ApiError::bad_request(format!("error decoding patch: {e}"));
    match t {
        PatchType::JsonPatch => {
            let v = codec::json::from_slice(body).map_err(|e| bad(e.to_string()))?;
            if !v.is_array() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
                        .to_string(),
                ));
            }
            Ok(PatchDoc::Ops(v))
        }
        PatchType::Apply => {
            let v = crate::handlers::negotiate::yaml_to_json(body).map_err(bad)?;
            if !v.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding YAML: the apply patch must be an object",
                ));
            }
            Ok(PatchDoc::Json(v))
        }
        _ => {
            let v = codec::json::from_slice(body).map_err(|e| bad(e.to_string()))?;
            if !v.is_object() {
                return Err(ApiError::bad_request(format!(
                    "error decoding patch: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                    if v.is_array() { "array" } else { "value" }
                )));
            }
            Ok(PatchDoc::Json(v))
        }
    }
}

fn patch_error(r: &ResourceInfo, name: &str, e: patch::PatchError) -> ApiError {
    match e.status_code() {
        400 => ApiError::bad_request(e.to_string()),
        500 => ApiError::internal(e),
        _ => patch_invalid(r, name, e.to_string()),
    }
}

fn patch_invalid(r: &ResourceInfo, name: &str, msg: String) -> ApiError {
    ApiError::invalid(
        r.group,
        r.kind,
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: msg,
            field: String::new(),
        }],
    )
}

/// The built-in schemas, as the patch crate looks them up.
struct Builtin;

impl patch::SchemaLookup for Builtin {
    fn get(&self, name: &str) -> Option<&Value> {
        openapi::schemas().get(name)
    }
}

static BUILTIN: Builtin = Builtin;

/// The schema node of a kind, if the openapi crate knows it.
fn schema_for(r: &ResourceInfo) -> Option<patch::SchemaNode<'static>> {
    type Gvk = (&'static str, &'static str, &'static str);
    thread_local! {
        // Every write looks its kind's schema up; a node is a couple of words.
        static NODES: std::cell::RefCell<std::collections::HashMap<Gvk, Option<patch::SchemaNode<'static>>>> =
            std::cell::RefCell::default();
    }
    NODES.with(|nodes| {
        *nodes
            .borrow_mut()
            .entry((r.group, r.version, r.kind))
            .or_insert_with(|| {
                let def = openapi::schemas().definition_for(r.group, r.version, r.kind)?;
                let node = patch::SchemaNode::named(&BUILTIN, def);
                node.is_known().then_some(node)
            })
    })
}

/// Applies a non-apply patch to `current`.
pub fn patch(
    r: &ResourceInfo,
    current: &Value,
    doc: &PatchDoc,
    t: PatchType,
) -> Result<Value, ApiError> {
    let name = crate::object::name(current).to_string();
    match (doc, t) {
        (PatchDoc::Ops(ops), _) => {
            patch::json_patch(current, ops).map_err(|e| patch_error(r, &name, e))
        }
        (PatchDoc::Json(p), PatchType::Merge) => {
            patch::merge_patch(current, p).map_err(|e| patch_error(r, &name, e))
        }
        (PatchDoc::Json(p), PatchType::Strategic) => match schema_for(r) {
            Some(schema) => patch::strategic_merge_patch(current, p, schema)
                .map_err(|e| patch_error(r, &name, e)),
            None => Err(ApiError::unsupported_media_type(SUPPORTED)),
        },
        (PatchDoc::Json(p), _) => {
            patch::merge_patch(current, p).map_err(|e| patch_error(r, &name, e))
        }
    }
}

/// Server-side apply of `applied` onto `live` by `manager`.
pub fn apply(
    r: &ResourceInfo,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    let now = crate::object::now_rfc3339();
    let Some(schema) = schema_for(r) else {
        return Err(ApiError::internal(format!("no schema for {}", r.kind)));
    };
    patch::apply(live, applied, manager, r.api_version(), force, schema, &now).map_err(
        |e| match e {
            patch::ApplyError::Conflicts(c) => {
                let mut err = ApiError::conflict_msg(r.qualified(), "", "");
                err.message = patch::conflict_message(&c);
                err.causes = c
                    .iter()
                    .map(|c| Cause {
                        reason: "FieldManagerConflict".into(),
                        message: c.cause_message(),
                        field: c.field.clone(),
                    })
                    .collect();
                err.details = None;
                err
            }
            other => ApiError::bad_request(other.to_string()),
        },
    )
}

/// Records an Update entry in `managedFields` for a create.
pub fn track_create(r: &ResourceInfo, obj: &mut Value, manager: &str) {
    let Some(schema) = schema_for(r) else { return };
    let now = crate::object::now_rfc3339();
    patch::record_managed_fields(None, obj, manager, None, r.api_version(), schema, &now);
}

/// Records an Update entry in `managedFields` for an update.
pub fn track_update(
    r: &ResourceInfo,
    old: &Value,
    new: &mut Value,
    manager: &str,
    sub: Option<crate::registry::Subresource>,
) {
    if let Some(schema) = schema_for(r) {
        let (sub, av, now) = update_args(r, sub);
        patch::record_managed_fields(Some(old), new, manager, sub, av, schema, &now);
    }
}

/// [`track_update`] that may move the old managedFields into `new` instead of copying them
/// (see [`patch::record_managed_fields_taking`]): `old` is then left with empty managedFields.
pub fn track_update_taking(
    r: &ResourceInfo,
    old: &mut Value,
    new: &mut Value,
    manager: &str,
    sub: Option<crate::registry::Subresource>,
) {
    if let Some(schema) = schema_for(r) {
        let (sub, av, now) = update_args(r, sub);
        patch::record_managed_fields_taking(old, new, manager, sub, av, schema, &now);
    }
}

/// The operation subresource, apiVersion and time an update's entry is recorded with.
fn update_args(
    r: &ResourceInfo,
    sub: Option<crate::registry::Subresource>,
) -> (Option<&'static str>, &'static str, String) {
    (
        sub.map(|s| s.name()),
        r.api_version(),
        crate::object::now_rfc3339(),
    )
}

/// A resource description used to patch `Scale` objects.
pub fn scale_resource() -> ResourceInfo {
    ResourceInfo {
        group: "autoscaling",
        version: "v1",
        group_version: "autoscaling/v1",
        resource: "scale",
        singular: "scale",
        kind: "Scale",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        key_prefix: "/registry/none",
        strategy: std::sync::Arc::new(crate::registry::kinds::NoStrategy),
        round_trip: crate::registry::kinds::round_trip::<k8s_openapi::api::autoscaling::v1::Scale>,
    }
}
