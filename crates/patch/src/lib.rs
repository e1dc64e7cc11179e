//! Patches as the Kubernetes API server applies them: JSON patch, merge patch, strategic merge
//! patch, server-side apply with managed fields.
//!
//! Layout:
//! - [`json_patch()`] (RFC 6902) and [`merge_patch`] (RFC 7386), in `json_patch.rs`;
//! - [`strategic_merge_patch`], a port of upstream
//!   `apimachinery/pkg/util/strategicpatch/patch.go`, in `strategic.rs`;
//! - [`apply`] and [`update_managed_fields`] (or [`record_managed_fields`] in place):
//!   server-side apply and `metadata.managedFields`
//!   bookkeeping after `sigs.k8s.io/structured-merge-diff` (`merge/update.go`) and
//!   `apimachinery/pkg/util/managedfields/internal`, in `managed.rs`, with the field sets of
//!   `fieldpath.rs` and the schema-aware walks of `typed.rs`;
//! - [`SchemaLookup`] and [`SchemaNode`]: the OpenAPI v3 component schemas all of these read
//!   patch strategies, merge keys and list types from.
//!
//! Every function works on `serde_json::Value` objects.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
pub mod fieldpath;
mod json_patch;
mod managed;
#[cfg(test)]
mod real_schema_tests;
mod schema;
mod strategic;
#[cfg(test)]
mod testschema;
mod typed;

pub use error::PatchError;
pub use json_patch::{json_patch, merge_patch};
pub use managed::{
    ApplyError, Conflict, apply, conflict_message, record_managed_fields,
    record_managed_fields_taking, retime_update, update_managed_fields,
};
pub use schema::{SchemaLookup, SchemaNode};
pub use strategic::strategic_merge_patch;
