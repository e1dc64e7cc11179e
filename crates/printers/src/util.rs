//! Small helpers shared by the printers and the selectors.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::duration::{human_duration, is_go_zero};

/// Decodes `obj` into a k8s-openapi type without ever failing: objects of another
/// apiVersion of the same kind are accepted, and an object that does not decode at all
/// yields the default value with whatever metadata could be read, so that it still prints a
/// row (upstream's rendering of empty fields).
pub(crate) fn decode<T>(obj: &Value) -> T
where
    T: DeserializeOwned + Default + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    if let Ok(t) = T::deserialize(obj) {
        return t;
    }
    if let Value::Object(map) = obj {
        let mut map = map.clone();
        map.remove("apiVersion");
        map.remove("kind");
        if let Ok(t) = T::deserialize(&Value::Object(map)) {
            return t;
        }
    }
    let mut t = T::default();
    *t.metadata_mut() = decode_meta(obj);
    t
}

/// Reads the metadata of `obj`, field by field if the whole does not decode.
pub(crate) fn decode_meta(obj: &Value) -> ObjectMeta {
    let Some(meta) = obj.get("metadata") else {
        return ObjectMeta::default();
    };
    if let Ok(m) = ObjectMeta::deserialize(meta) {
        return m;
    }
    let text = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_owned);
    let time = |k: &str| meta.get(k).and_then(|v| Time::deserialize(v).ok());
    ObjectMeta {
        name: text("name"),
        namespace: text("namespace"),
        creation_timestamp: time("creationTimestamp"),
        deletion_timestamp: time("deletionTimestamp"),
        ..ObjectMeta::default()
    }
}

/// Converts a k8s-openapi timestamp to chrono.
pub(crate) fn to_chrono(t: &k8s_openapi::jiff::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.subsec_nanosecond()).ok()?;
    DateTime::from_timestamp(t.as_second(), nanos)
}

/// `translateTimestampSince` for an optional `metav1.Time`.
pub(crate) fn since(t: Option<&Time>, now: DateTime<Utc>) -> String {
    match t.and_then(|t| to_chrono(&t.0)) {
        Some(t) if !is_go_zero(&t) => human_duration(now.signed_duration_since(t)),
        _ => "<unknown>".to_string(),
    }
}

/// `translateMicroTimestampSince` for an optional `metav1.MicroTime`.
pub(crate) fn since_micro(t: Option<&MicroTime>, now: DateTime<Utc>) -> String {
    match t.and_then(|t| to_chrono(&t.0)) {
        Some(t) if !is_go_zero(&t) => human_duration(now.signed_duration_since(t)),
        _ => "<unknown>".to_string(),
    }
}

/// Whether an optional `metav1.Time` is Go's zero time (unset).
pub(crate) fn time_is_zero(t: Option<&Time>) -> bool {
    t.and_then(|t| to_chrono(&t.0))
        .is_none_or(|t| is_go_zero(&t))
}

/// `labels.Set(m).String()`: `k=v` pairs sorted by key, joined by `,`.
pub(crate) fn labels_string(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `labels.FormatLabels`: like [`labels_string`] but `<none>` for an empty map.
pub(crate) fn format_labels(m: Option<&BTreeMap<String, String>>) -> String {
    let s = m.map(labels_string).unwrap_or_default();
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    }
}

/// Go's `%q` formatting of a string (`strconv.Quote`).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `net.JoinHostPort`.
pub(crate) fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A string cell.
pub(crate) fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

/// An integer cell (Go `int64`).
pub(crate) fn i(v: impl Into<i64>) -> Value {
    Value::from(v.into())
}

/// The name of an object as a cell.
pub(crate) fn name_of(meta: &ObjectMeta) -> Value {
    s(meta.name.clone().unwrap_or_default())
}

/// The age of an object as a cell.
pub(crate) fn age_of(meta: &ObjectMeta, now: DateTime<Utc>) -> Value {
    s(since(meta.creation_timestamp.as_ref(), now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("a b"), "\"a b\"");
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_quote("\u{1}é"), "\"\\x01é\"");
    }

    #[test]
    fn join_host_port_brackets_ipv6() {
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(join_host_port("fd00::1", 80), "[fd00::1]:80");
    }

    #[test]
    fn decode_survives_garbage() {
        let obj = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": 1}},
            "spec": {"containers": "nope"}
        });
        let pod: k8s_openapi::api::core::v1::Pod = decode(&obj);
        assert_eq!(pod.metadata.name.as_deref(), Some("p"));
        assert!(pod.spec.is_none());
    }

    #[test]
    fn decode_accepts_another_api_version() {
        let obj = serde_json::json!({
            "apiVersion": "apps/v1beta2", "kind": "Deployment",
            "metadata": {"name": "d"}, "spec": {"replicas": 3}
        });
        let d: k8s_openapi::api::apps::v1::Deployment = decode(&obj);
        assert_eq!(d.spec.and_then(|s| s.replicas), Some(3));
    }
}
