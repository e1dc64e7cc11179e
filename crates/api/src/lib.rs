//! API machinery without I/O: field errors, defaulting and validation per kind.
//!
//! - [`field`]: field paths and field errors rendered exactly as upstream
//!   (`k8s.io/apimachinery/pkg/util/validation/field`).
//! - [`validation`]: upstream's per-kind validation (`pkg/apis/*/validation`) and ObjectMeta
//!   validation, returning every error found.
//! - [`defaults`]: upstream's defaulting (`pkg/apis/*/v1/defaults.go` and the declarative
//!   `+default` markers), applied in place.
//!
//! The API server runs, per create: defaulting, `PrepareForCreate`, `validate_<kind>`, then
//! the generic [`validation::validate_object_meta`] with [`validation::NameValidator::PathSegment`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod defaults;
pub mod field;
pub mod managed_fields;
pub mod quantity;
pub mod validation;
