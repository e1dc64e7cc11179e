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
    // Rows are independent: large tables are printed on every core, chunk by chunk.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks: Vec<Vec<u8>> = if items.len() >= 2_000 && threads > 1 {
        let size = items.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = items
                .chunks(size)
                .map(|chunk| scope.spawn(move || rows(r, printer, chunk, include, now)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        })
    } else {
        vec![rows(r, printer, items, include, now)]
    };
    let mut first = true;
    for c in chunks.iter().filter(|c| !c.is_empty()) {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(c);
    }
    out.extend_from_slice(b"]}");
    out
}

/// The rows of `items`, comma-separated.
fn rows(
    r: &ResourceInfo,
    printer: &dyn printers::Printer,
    items: &[std::sync::Arc<crate::cacher::CachedObject>],
    include: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.len() * 512);
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut obj = super::read::object_value(r, o);
        let mut managed = None;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            // No printer reads managedFields, and decoding them is most of a row's cost.
            managed = m.swap_remove("managedFields");
        }
        let mut row = match printers::row_json(printer, &obj, now) {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        if let (Some(mf), Some(m)) = (
            managed,
            obj.get_mut("metadata").and_then(Value::as_object_mut),
        ) {
            m.insert("managedFields".into(), mf);
        }
        match include {
            "None" => {
                let _ = serde_json::to_writer(&mut out, &Value::Object(row));
            }
            "Object" => {
                row.insert("object".into(), obj);
                let _ = serde_json::to_writer(&mut out, &Value::Object(row));
            }
            _ => {
                // The metadata is copied verbatim from the cached JSON (no re-serialization).
                let meta = crate::conversion::from_storage(r)
                    .is_none()
                    .then(|| serde_json::from_slice::<MetaOnly<'_>>(&o.raw).ok())
                    .flatten();
                match meta {
                    Some(m) => {
                        let _ = serde_json::to_writer(&mut out, &Value::Object(row));
                        out.pop();
                        out.extend_from_slice(
                            b",\"object\":{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":",
                        );
                        out.extend_from_slice(m.metadata.get().as_bytes());
                        out.extend_from_slice(b"}}");
                    }
                    None => {
                        row.insert("object".into(), partial_metadata(&obj));
                        let _ = serde_json::to_writer(&mut out, &Value::Object(row));
                    }
                }
            }
        }
    }
    out
}

/// Borrows an object's metadata from its JSON.
#[derive(serde::Deserialize)]
struct MetaOnly<'a> {
    #[serde(borrow)]
    metadata: &'a serde_json::value::RawValue,
}
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cacher::CachedObject;
    use crate::registry::Registry;

    #[test]
    fn large_tables_keep_every_row_in_order() {
        let reg = Registry::builtin();
        let r = reg.get("", "v1", "configmaps").unwrap();
        let items: Vec<Arc<CachedObject>> = (0..2_500)
            .map(|i| {
                let name = format!("cm-{i:05}");
                let v = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"namespace":"default","resourceVersion":"7","creationTimestamp":"2026-01-01T00:00:00Z"},"data":{"a":"b"}});
                Arc::new(CachedObject {
                    key: format!("/registry/configmaps/default/{name}"),
                    namespace: "default".into(),
                    name,
                    rv: 7,
                    raw: bytes::Bytes::from(serde_json::to_vec(&v).unwrap()),
                    labels: Default::default(),
                    fields: Vec::new(),
                    parsed: Default::default(),
                })
            })
            .collect();
        let out = list_bytes(r, &items, &Query::parse(None), 9, None, None);
        let t: Value = serde_json::from_slice(&out).unwrap();
        let rows = t["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2_500);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row["cells"][0], format!("cm-{i:05}"));
            assert_eq!(row["cells"][1], 1);
            assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
            assert_eq!(row["object"]["apiVersion"], "meta.k8s.io/v1");
            assert_eq!(row["object"]["metadata"]["name"], format!("cm-{i:05}"));
            assert_eq!(row["object"]["metadata"]["resourceVersion"], "7");
        }
        assert_eq!(t["metadata"]["resourceVersion"], "9");
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
    }
}
