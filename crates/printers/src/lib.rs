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

/// One `rows[]` entry of a `meta.k8s.io/v1` Table without its `object`: `{"cells": [...]}`
/// plus `"conditions"` when the printer reports any. The caller adds `"object"` according to
/// `includeObject` (`PartialObjectMetadata` by default, the full object, or nothing).
pub fn row_json(p: &dyn Printer, obj: &Value, now: DateTime<Utc>) -> Value {
    let mut row = serde_json::Map::new();
    row.insert("cells".to_string(), Value::Array(p.cells(obj, now)));
    let conditions = p.conditions(obj);
    if !conditions.is_empty() {
        row.insert("conditions".to_string(), Value::Array(conditions));
    }
    Value::Object(row)
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
    fn rows_carry_cells_and_conditions() {
        let now = Utc::now();
        let p = printer_for("", "pods");
        let done = serde_json::json!({"metadata": {"name": "job-x"}, "spec": {"containers": [{}]},
            "status": {"phase": "Succeeded"}});
        let row = row_json(p, &done, now);
        assert_eq!(row["cells"][0], "job-x");
        assert_eq!(
            row["cells"].as_array().map(Vec::len),
            Some(p.columns().len())
        );
        assert_eq!(row["conditions"][0]["reason"], "Succeeded");
        let running =
            serde_json::json!({"metadata": {"name": "web"}, "status": {"phase": "Running"}});
        assert!(row_json(p, &running, now).get("conditions").is_none());
    }

    #[test]
    fn unknown_resources_get_the_default_printer() {
        let p = printer_for("example.com", "widgets");
        let names: Vec<_> = p.columns().iter().map(|c| c.name).collect();
        assert_eq!(names, ["Name", "Created At"]);
        assert_eq!(p.columns()[1].type_, "date");
    }
}
