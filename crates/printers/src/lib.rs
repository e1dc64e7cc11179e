//! Server-side Table printing with the upstream default columns for every built-in kind
//! (port of k8s.io/kubernetes `pkg/printers/internalversion/printers.go`), plus the label
//! and field selectors the API server filters lists and watches with.
//!
//! Start with [`printer_for`]: it returns the [`Printer`] of a resource, whose
//! [`Printer::columns`] become the `columnDefinitions` of a `meta.k8s.io/v1` Table
//! ([`column_definitions_json`]) and whose [`Printer::cells`] become `rows[].cells`.
//! The server always prints the wide (priority 1) columns too, as upstream does
//! (`GenerateOptions{Wide: true}` in `pkg/printers/storage`); kubectl hides them unless
//! `-o wide`.
//!
//! Selectors live in [`labels`] and [`fields`].

pub mod duration;
pub mod fields;
pub mod labels;

mod descriptions;
mod error;
mod kinds;
mod util;

pub use error::SelectorError;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// One column of a `meta.k8s.io/v1` Table (`TableColumnDefinition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Human readable column name, e.g. `Name`, `Ready`, `Age`.
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `boolean`, `date`...
    pub type_: &'static str,
    /// Optional OpenAPI format; `name` marks the primary identifier column.
    pub format: &'static str,
    /// Human readable description of the column.
    pub description: &'static str,
    /// 0 for the default columns, 1 for the columns only `-o wide` shows.
    pub priority: i32,
}

/// Prints objects of one resource as Table rows.
pub trait Printer: Send + Sync {
    /// The column definitions, in cell order.
    fn columns(&self) -> &[Column];

    /// The cells of the row for `obj` (one per column, wide columns included), computed as
    /// upstream does at instant `now` (ages). Never panics: fields that are missing or of the
    /// wrong type render as upstream renders empty values.
    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value>;

    /// The row `conditions` (`metav1.TableRowCondition` as JSON) for `obj`. Upstream only sets
    /// them for pods that have completed (`Succeeded`/`Failed`). Empty by default.
    fn conditions(&self, _obj: &Value) -> Vec<Value> {
        Vec::new()
    }
}

/// The printer of `resource` (plural, lower case) in API `group` (`""` for core). Unknown
/// resources get the default convertor of `apiserver/pkg/registry/rest/table.go`
/// (`Name`, `Created At`).
pub fn printer_for(group: &str, resource: &str) -> &'static dyn Printer {
    kinds::printer_for(group, resource)
}

/// The default printer (`Name`, `Created At`), used for resources without their own columns
/// (custom resources without additional printer columns, LimitRanges...).
pub fn default_printer() -> &'static dyn Printer {
    kinds::default_printer()
}

/// The `columnDefinitions` array of a `meta.k8s.io/v1` Table for printer `p`.
pub fn column_definitions_json(p: &dyn Printer) -> Value {
    Value::Array(
        p.columns()
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_definitions_have_every_field() {
        let defs = column_definitions_json(printer_for("", "pods"));
        let first = &defs[0];
        assert_eq!(first["name"], "Name");
        assert_eq!(first["type"], "string");
        assert_eq!(first["format"], "name");
        assert_eq!(first["priority"], 0);
        assert!(
            first["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("Name must be unique"))
        );
        let ip = &defs[5];
        assert_eq!(ip["name"], "IP");
        assert_eq!(ip["format"], "");
        assert_eq!(ip["priority"], 1);
    }

    #[test]
    fn unknown_resources_get_the_default_printer() {
        let p = printer_for("example.com", "widgets");
        let names: Vec<_> = p.columns().iter().map(|c| c.name).collect();
        assert_eq!(names, ["Name", "Created At"]);
        assert_eq!(p.columns()[1].type_, "date");
    }
}
