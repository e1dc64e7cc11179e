//! Helpers on JSON objects: metadata access and the system fields the server maintains.

use codec::ordered::{Cursor, member, value_eq};
use rand::Rng;
use serde_json::{Map, Value, json};
use store::Revision;

/// Sets `metadata.resourceVersion`, as the first member of `metadata` (where
/// [`with_resource_version`] puts it without parsing).
pub fn set_resource_version(obj: &mut Value, rv: Revision) {
    // An existing member moves to the front with its new value.
    meta_mut(obj).shift_insert(0, "resourceVersion".into(), Value::String(rv.to_string()));
}

/// Removes `metadata.resourceVersion` (it is never stored inside the value), keeping the order
/// of the other members.
pub fn clear_resource_version(obj: &mut Value) {
    meta_mut(obj).shift_remove("resourceVersion");
}

/// `json` (an object serialized without `metadata.resourceVersion`, like every stored value)
/// with `metadata.resourceVersion` set to `rv`, without parsing it: the field is added as the
/// first member of the top-level `metadata` object, exactly where [`set_resource_version`]
/// puts it in a parsed object, so for compact JSON the result equals serializing the parsed
/// object with it. Only what comes before `metadata` is scanned (`apiVersion` and `kind`, in
/// stored objects), not the metadata itself, which is most of a small object: `json` must be
/// valid JSON (stored values are). `None` if `json` is not an object with a `metadata` object.
pub fn with_resource_version(json: &[u8], rv: Revision) -> Option<Vec<u8>> {
    let open = metadata_open(json)?;
    let empty = json.get(skip_ws(json, open + 1)) == Some(&b'}');
    let mut out = Vec::with_capacity(json.len() + 40);
    out.extend_from_slice(&json[..=open]);
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(rv.to_string().as_bytes());
    out.push(b'"');
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&json[open + 1..]);
    Some(out)
}

/// The position of the `{` of the top-level `metadata` object in `json`.
fn metadata_open(json: &[u8]) -> Option<usize> {
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(json, i);
        if *json.get(i)? != b'"' {
            return None;
        }
        let key_end = string_end(json, i)?;
        let is_metadata = &json[i + 1..key_end] == b"metadata";
        i = skip_ws(json, key_end + 1);
        if json.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(json, i + 1);
        if is_metadata {
            // A valid object: the caller splices into it without looking further.
            return (json.get(i) == Some(&b'{')).then_some(i);
        }
        i = skip_ws(json, skip_value(json, i)?);
        match json.get(i)? {
            b',' => i += 1,
            _ => return None,
        }
    }
}

pub fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while json.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The index of the quote closing the string that opens at `start`.
fn string_end(json: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < json.len() {
        match json[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The index just after the JSON value that starts at `i`.
fn skip_value(json: &[u8], mut i: usize) -> Option<usize> {
    match *json.get(i)? {
        b'"' => Some(string_end(json, i)? + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            while i < json.len() {
                match json[i] {
                    b'"' => i = string_end(json, i)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            while json
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                i += 1;
            }
            Some(i)
        }
    }
}

/// One member of a JSON object, as positions in its text ([`object_members`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The opening quote of the key.
    pub key_start: usize,
    /// The key's bytes as written, without the quotes (escapes are not decoded).
    pub key: (usize, usize),
    /// The first byte of the value.
    pub value_start: usize,
    /// Just after the value.
    pub value_end: usize,
}

impl Member {
    /// Whether the key is written as `name` (serde_json writes keys of ASCII letters without
    /// escapes, so a stored key equal to `name` is always written so).
    pub fn is(&self, json: &[u8], name: &str) -> bool {
        &json[self.key.0..self.key.1] == name.as_bytes()
    }
}

/// The members of the JSON object whose `{` is at `open` in `json`, and the position of its
/// closing `}`. `None` if there is no object there or it is not well formed (values are
/// skipped, not checked: `json` should be valid JSON, as stored values are).
pub fn object_members(json: &[u8], open: usize) -> Option<(Vec<Member>, usize)> {
    if json.get(open) != Some(&b'{') {
        return None;
    }
    let mut members = Vec::new();
    let mut i = skip_ws(json, open + 1);
    if json.get(i) == Some(&b'}') {
        return Some((members, i));
    }
    loop {
        if json.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(json, i)?;
        let colon = skip_ws(json, key_end + 1);
        if json.get(colon) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(json, colon + 1);
        let value_end = skip_value(json, value_start)?;
        members.push(Member {
            key_start: i,
            key: (i + 1, key_end),
            value_start,
            value_end,
        });
        i = skip_ws(json, value_end);
        match json.get(i)? {
            b',' => i = skip_ws(json, i + 1),
            b'}' => return Some((members, i)),
            _ => return None,
        }
    }
}

/// Whether two objects are equal apart from `metadata.resourceVersion` (compared without
/// copying either). Key order does not matter, as for `Value`'s own equality.
pub fn equal_ignoring_resource_version(a: &Value, b: &Value) -> bool {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return a == b;
    };
    let meta_without_rv = |o: &Map<String, Value>| -> Option<(usize, bool)> {
        match o.get("metadata") {
            Some(Value::Object(m)) => Some((
                m.len() - usize::from(m.contains_key("resourceVersion")),
                true,
            )),
            Some(_) => Some((0, false)),
            None => None,
        }
    };
    if a.len() != b.len() || meta_without_rv(a) != meta_without_rv(b) {
        return false;
    }
    // Everything but metadata first: an update usually changes the spec or the status, and
    // metadata (managedFields above all) is the largest part to compare.
    let mut in_b = Cursor::new(b);
    let rest_equal = a
        .iter()
        .filter(|(k, _)| k.as_str() != "metadata")
        .all(|(k, va)| in_b.get(k).is_some_and(|vb| value_eq(va, vb)));
    rest_equal
        && match (a.get("metadata"), b.get("metadata")) {
            (Some(Value::Object(ma)), Some(Value::Object(mb))) => {
                let mut in_mb = Cursor::new(mb);
                ma.iter()
                    .filter(|(mk, _)| mk.as_str() != "resourceVersion")
                    .all(|(mk, mv)| in_mb.get(mk).is_some_and(|v| value_eq(mv, v)))
            }
            (ma, mb) => ma == mb,
        }
}

/// `metadata` as a mutable map, created if missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let o = obj.as_object_mut().expect("just made an object");
    let m = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut().expect("just made an object")
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    member(member(obj, "metadata")?, field)?.as_str()
}

/// `metadata.name` (or "").
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

/// `metadata.resourceVersion` as sent by a client, if any.
pub fn resource_version(obj: &Value) -> Option<&str> {
    meta_str(obj, "resourceVersion").filter(|s| !s.is_empty())
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    member(obj, "metadata")
        .and_then(|m| member(m, "deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

/// RFC 3339 with seconds, as `metav1.Time` renders.
pub fn now_rfc3339() -> String {
    thread_local! {
        // The second last formatted: every write stamps managedFields with the time.
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = chrono::Utc::now();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != now.timestamp() {
            *last = (
                now.timestamp(),
                now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            );
        }
        last.1.clone()
    })
}

/// RFC 3339 with microseconds, as `metav1.MicroTime` renders.
pub fn now_micro() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Five characters from upstream's `utilrand.String` alphabet (no vowels, no confusables).
pub fn random_suffix() -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHANUMS[rng.random_range(0..ALPHANUMS.len())] as char)
        .collect()
}

/// Sets the fields a create assigns: name from generateName, uid, creationTimestamp and clears
/// those a client may not set.
pub fn prepare_create_meta(obj: &mut Value, namespace: Option<&str>, generation: bool) {
    let m = meta_mut(obj);
    let name_empty = m
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if name_empty
        && let Some(g) = m.get("generateName").and_then(Value::as_str)
        && !g.is_empty()
    {
        // Upstream trims the prefix so that prefix + suffix fits 63 characters.
        let mut prefix = g.to_string();
        if prefix.len() > 58 {
            prefix.truncate(58);
        }
        m.insert("name".into(), json!(format!("{prefix}{}", random_suffix())));
    }
    match namespace {
        Some(ns) => {
            m.insert("namespace".into(), json!(ns));
        }
        None => {
            m.remove("namespace");
        }
    }
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now_rfc3339()));
    m.remove("resourceVersion");
    m.remove("deletionTimestamp");
    m.remove("deletionGracePeriodSeconds");
    m.remove("selfLink");
    if generation {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
}

/// The metadata fields an update may not change.
const KEPT_ON_UPDATE: [&str; 7] = [
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "namespace",
    "name",
];

fn is_kept_on_update(key: &str) -> bool {
    KEPT_ON_UPDATE.contains(&key)
}

/// Keeps the fields an update may not change (upstream `rest.BeforeUpdate` /
/// `FillObjectMetaSystemFields`): uid, creationTimestamp, deletion fields, generation.
pub fn keep_update_meta(new: &mut Value, old: &Value) {
    let old_meta = member(old, "metadata").unwrap_or(&Value::Null);
    let m = meta_mut(new);
    // The usual case (the client sent back what it read, without selfLink): nothing to do.
    if let Value::Object(om) = old_meta {
        let mut in_new = Cursor::new(m);
        let same = om
            .iter()
            .filter(|(k, _)| is_kept_on_update(k))
            .all(|(k, v)| in_new.get(k).is_some_and(|cur| value_eq(cur, v)));
        // All of old's are in new: new has no other one if it has as many.
        if same
            && m.keys()
                .filter(|k| is_kept_on_update(k) || *k == "selfLink")
                .count()
                == om.keys().filter(|k| is_kept_on_update(k)).count()
        {
            return;
        }
    }
    copy_kept_fields(m, old_meta);
}

/// The fields of [`KEPT_ON_UPDATE`] as in `old_meta`, and no selfLink.
fn copy_kept_fields(m: &mut Map<String, Value>, old_meta: &Value) {
    for f in KEPT_ON_UPDATE {
        match (old_meta.get(f), m.get_mut(f)) {
            // The usual case (the client sent back what it read): nothing to copy.
            (Some(v), Some(cur)) if cur == v => {}
            (Some(v), Some(cur)) => *cur = v.clone(),
            (Some(v), None) => {
                m.insert(f.into(), v.clone());
            }
            (None, Some(_)) => {
                m.remove(f);
            }
            (None, None) => {}
        }
    }
    m.remove("selfLink");
}

#[cfg(test)]
mod tests {
    #[test]
    fn with_resource_version_equals_setting_it_on_the_parsed_object() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d", "labels": {"x": "}{\"\\"}}, "data": {"k": "v"}}),
            json!({"kind": "Lease", "metadata": {}, "spec": {"holderIdentity": "n"}}),
            json!({"metadata": {"name": "m"}}),
            json!({"a": [1, {"metadata": {"x": 1}}], "b": "\"metadata\":{", "c": null, "d": true, "e": -1.5e3, "metadata": {"name": "late", "managedFields": [{"fieldsV1": {"f:spec": {}}}]}, "z": {}}),
            // Brackets and braces inside strings, arrays of arrays, escapes before quotes.
            json!({"l": ["]", "[", {"k": "}{"}, [["\\"], []]], "metadata": {"name": "x\\\"}", "a": [[1], ["]"]], "o": {"}": "{"}}, "spec": {"s": "]"}}),
        ];
        for v in objects {
            let mut expected = v.clone();
            super::set_resource_version(&mut expected, 42);
            let spliced = super::with_resource_version(&serde_json::to_vec(&v).unwrap(), 42)
                .expect("an object with metadata");
            assert_eq!(
                String::from_utf8(spliced).unwrap(),
                serde_json::to_string(&expected).unwrap(),
                "{v}"
            );
        }
        // Whitespace is allowed; the result parses to the object with the field.
        let pretty =
            serde_json::to_vec_pretty(&json!({"kind": "X", "metadata": {"name": "p"}, "spec": {}}))
                .unwrap();
        let spliced: Value =
            serde_json::from_slice(&super::with_resource_version(&pretty, 7).unwrap()).unwrap();
        assert_eq!(
            spliced["metadata"],
            json!({"name": "p", "resourceVersion": "7"})
        );
        let empty = b"{ \"metadata\" : { } }";
        let spliced: Value =
            serde_json::from_slice(&super::with_resource_version(empty, 7).unwrap()).unwrap();
        assert_eq!(spliced, json!({"metadata": {"resourceVersion": "7"}}));
        for bad in [
            &b"[]"[..],
            b"{}",
            b"{\"metadata\": []}",
            b"{\"a\": 1 \"metadata\": {}}",
            b"{\"a\": \"x}",
            b"",
        ] {
            assert!(
                super::with_resource_version(bad, 1).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    use super::*;

    #[test]
    fn the_resource_version_goes_first_and_leaves_the_rest_in_order() {
        let keys = |o: &Value| -> Vec<String> {
            o["metadata"].as_object().unwrap().keys().cloned().collect()
        };
        let mut o = json!({"metadata": {"name": "a", "resourceVersion": "1", "uid": "u"}});
        set_resource_version(&mut o, 9);
        assert_eq!(keys(&o), ["resourceVersion", "name", "uid"]);
        assert_eq!(resource_version(&o), Some("9"));
        clear_resource_version(&mut o);
        assert_eq!(keys(&o), ["name", "uid"]);
    }

    #[test]
    fn equality_ignores_only_the_resource_version() {
        let new = json!({"kind":"Lease","metadata":{"name":"a"},"spec":{"x":1}});
        let old =
            json!({"kind":"Lease","metadata":{"resourceVersion":"7","name":"a"},"spec":{"x":1}});
        assert!(equal_ignoring_resource_version(&new, &old));
        assert!(equal_ignoring_resource_version(&old, &new));
        let spec = json!({"kind":"Lease","metadata":{"name":"a"},"spec":{"x":2}});
        assert!(!equal_ignoring_resource_version(&spec, &old));
        let label = json!({"kind":"Lease","metadata":{"name":"a","labels":{}},"spec":{"x":1}});
        assert!(!equal_ignoring_resource_version(&label, &old));
        assert!(!equal_ignoring_resource_version(&old, &label));
        let renamed =
            json!({"kind":"Lease","metadata":{"name":"b","resourceVersion":"7"},"spec":{"x":1}});
        assert!(!equal_ignoring_resource_version(&renamed, &old));
        let extra = json!({"kind":"Lease","metadata":{"name":"a"},"spec":{"x":1},"status":{}});
        assert!(!equal_ignoring_resource_version(&extra, &old));
    }

    #[test]
    fn generate_name_and_system_fields() {
        let mut o = json!({"metadata":{"generateName":"nginx-","resourceVersion":"5","uid":"x"}});
        prepare_create_meta(&mut o, Some("default"), true);
        let name = name(&o).to_string();
        assert!(name.starts_with("nginx-") && name.len() == 11, "{name}");
        assert_eq!(meta_str(&o, "namespace"), Some("default"));
        assert_ne!(meta_str(&o, "uid"), Some("x"));
        assert!(resource_version(&o).is_none());
        assert_eq!(o["metadata"]["generation"], 1);
    }

    #[test]
    fn update_keeps_system_fields() {
        let old = json!({"metadata":{"name":"a","uid":"u1","creationTimestamp":"2020-01-01T00:00:00Z","generation":3}});
        let mut new = json!({"metadata":{"name":"a","uid":"u2","generation":9,"labels":{"x":"y"}}});
        keep_update_meta(&mut new, &old);
        assert_eq!(new["metadata"]["uid"], "u1");
        assert_eq!(new["metadata"]["generation"], 3);
        assert_eq!(new["metadata"]["labels"]["x"], "y");
        assert_eq!(new["metadata"]["creationTimestamp"], "2020-01-01T00:00:00Z");
    }

    #[test]
    fn update_meta_shortcut_is_taken_only_when_nothing_would_change() {
        let old = json!({"metadata": {"creationTimestamp": "2020-01-01T00:00:00Z", "name": "a",
            "namespace": "d", "ownerReferences": [{"uid": "o"}], "resourceVersion": "5",
            "uid": "u1", "managedFields": [{"manager": "m"}]}});
        let same = json!({"creationTimestamp": "2020-01-01T00:00:00Z", "name": "a",
            "namespace": "d", "ownerReferences": [{"uid": "o"}], "resourceVersion": "5", "uid": "u1"});
        let with = |f: &dyn Fn(&mut Map<String, Value>)| {
            let mut m = same.as_object().expect("object").clone();
            f(&mut m);
            json!({"metadata": m})
        };
        let cases = [
            with(&|_| {}),
            // The same fields in another order.
            with(&|m| {
                let uid = m.shift_remove("uid").expect("uid");
                m.shift_insert(0, "uid".into(), uid);
            }),
            with(&|m| {
                m.insert("uid".into(), json!("u2"));
            }),
            with(&|m| {
                m.remove("creationTimestamp");
            }),
            with(&|m| {
                m.insert("generation".into(), json!(2));
            }),
            with(&|m| {
                m.insert("deletionTimestamp".into(), json!("2020-01-02T00:00:00Z"));
            }),
            with(&|m| {
                m.insert("selfLink".into(), json!("/api/x"));
            }),
            with(&|m| {
                m.insert("namespace".into(), json!(null));
            }),
            json!({"spec": {}}),
        ];
        for new in cases {
            let mut kept = new.clone();
            keep_update_meta(&mut kept, &old);
            let mut copied = new.clone();
            copy_kept_fields(meta_mut(&mut copied), &old["metadata"]);
            assert_eq!(kept, copied, "{new}");
            for f in KEPT_ON_UPDATE {
                assert_eq!(
                    kept["metadata"].get(f),
                    old["metadata"].get(f),
                    "{new}: {f}"
                );
            }
            assert!(kept["metadata"].get("selfLink").is_none());
        }
        // Without old metadata, every kept field goes.
        let mut kept = with(&|_| {});
        keep_update_meta(&mut kept, &json!({}));
        assert_eq!(
            kept["metadata"],
            json!({"ownerReferences": [{"uid": "o"}], "resourceVersion": "5"})
        );
    }
}
