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

/// A Table of many cached objects, written row by row: each object is parsed, printed and
/// serialized on its own, so a LIST of thousands of objects never holds them all as JSON trees.
pub fn list_bytes(
    r: &ResourceInfo,
    items: &[std::sync::Arc<crate::cacher::CachedObject>],
    q: &Query,
    rv: Revision,
    cont: Option<&str>,
    remaining: Option<usize>,
) -> Vec<u8> {
    let printer = printers::printer_for(r.group, r.resource);
    let now = chrono::Utc::now();
    let include = q.get("includeObject").unwrap_or("Metadata");
    let mut meta = serde_json::Map::new();
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    if let Some(c) = cont {
        meta.insert("continue".into(), json!(c));
    }
    if let Some(n) = remaining
        && n > 0
    {
        meta.insert("remainingItemCount".into(), json!(n));
    }
    let mut out = Vec::with_capacity(256 + items.len() * 256);
    out.extend_from_slice(b"{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":");
    let _ = serde_json::to_writer(&mut out, &Value::Object(meta));
    out.extend_from_slice(b",\"columnDefinitions\":");
    let _ = serde_json::to_writer(&mut out, &printers::column_definitions_json(printer));
    out.extend_from_slice(b",\"rows\":[");
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let obj = super::read::object_value(r, o);
        let mut row = match printers::row_json(printer, &obj, now) {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        match include {
            "None" => {}
            "Object" => {
                row.insert("object".into(), obj);
            }
            _ => {
                row.insert("object".into(), partial_metadata(&obj));
            }
        }
        let _ = serde_json::to_writer(&mut out, &Value::Object(row));
    }
    out.extend_from_slice(b"]}");
    out
}
