//! Server-side `meta.k8s.io/v1` Tables, with the upstream columns from the `printers` crate.

use serde_json::{Value, json};
use store::Revision;

use super::Query;
use super::read::partial_metadata;
use crate::registry::ResourceInfo;

/// The content type of a Table response.
pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Builds a Table of `objs`. `with_columns`: watch events after the first carry no column
/// definitions, like upstream.
pub fn table(
    r: &ResourceInfo,
    objs: &[Value],
    q: &Query,
    rv: Option<Revision>,
    cont: Option<&str>,
    remaining: Option<usize>,
    with_columns: bool,
) -> Value {
    let printer = printers::printer_for(r.group, r.resource);
    let now = chrono::Utc::now();
    let include = q.get("includeObject").unwrap_or("Metadata");
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let mut row = match printers::row_json(printer, o, now) {
                Value::Object(m) => m,
                _ => serde_json::Map::new(),
            };
            match include {
                "None" => {}
                "Object" => {
                    row.insert("object".into(), o.clone());
                }
                _ => {
                    row.insert("object".into(), partial_metadata(o));
                }
            }
            Value::Object(row)
        })
        .collect();
    let mut meta = serde_json::Map::new();
    if let Some(rv) = rv {
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
    }
    if let Some(c) = cont {
        meta.insert("continue".into(), json!(c));
    }
    if let Some(n) = remaining
        && n > 0
    {
        meta.insert("remainingItemCount".into(), json!(n));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": if with_columns { printers::column_definitions_json(printer) } else { json!([]) },
        "rows": rows,
    })
}
