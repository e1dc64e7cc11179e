//! Per-kind validation, as upstream `pkg/apis/*/validation` and the ObjectMeta validation of
//! `k8s.io/apimachinery/pkg/api/validation`.
//!
//! Every function returns all errors found (upstream `field.ErrorList`), in upstream's order.
//! The `validate_<kind>` functions include the kind-specific ObjectMeta validation (name
//! format, namespace scope) as upstream's do.

mod apps;
mod common;
mod core;
mod names;
mod objectmeta;
mod other;
mod pod;
mod service;

pub use apps::*;
pub use core::*;
pub use names::*;
pub use objectmeta::*;
pub use other::*;
pub use pod::*;
pub use service::*;

#[cfg(test)]
mod tests;
