//! The fast path of [`super::record_managed_fields`] for the most frequent write of a cluster:
//! a manager re-writing the object with only scalar values it already owns changed (a kubelet
//! renewing its node Lease, a controller bumping a counter), or nothing changed at all.
//!
//! The slow path decodes every `metadata.managedFields` entry into a [`FieldSet`], compares both
//! objects through the schema, updates every set and encodes them all back. When the fast path
//! can prove that the outcome is the old managedFields with only the updater's `time` set to
//! `now` (and the entries re-sorted as the encoder sorts them), it produces that directly from
//! the raw JSON; whenever it cannot prove it, it does nothing and the slow path runs.
//!
//! What it proves, mirroring the slow path step by step:
//! - the managers the slow path starts from are the old ones (a subresource write, or
//!   managedFields omitted, `null` or sent back unchanged);
//! - the old managedFields are exactly what the encoder would write for them (entry key order,
//!   canonical `fieldsV1` keys in path-element order, `.` where the encoder puts it, entries
//!   sorted, no duplicate manager identity, no empty set, at most ten Update entries), so that
//!   decoding and re-encoding them changes nothing;
//! - both objects differ (as the comparison sees them: scope of the operation, no server-set
//!   metadata) only in scalar values reached through objects the schema merges field by field,
//!   so the comparison has exactly these paths as `modified` and nothing `added` or `removed`;
//! - none of these paths is one `stripMetaManager` drops (`apiVersion`, `kind`,
//!   `metadata.name`, `metadata.namespace`);
//! - the updater's own Update entry owns every changed path and no other entry owns any: the
//!   updater then loses and regains exactly these paths (same set), the others keep theirs, no
//!   entry is added or removed and capping the Update entries has nothing to do.
//!
//! [`FieldSet`]: crate::fieldpath::FieldSet

use std::borrow::Cow;

use codec::ordered::{Cursor, find, value_eq};
use serde_json::{Map, Value};

use super::{
    MAX_UPDATE_MANAGERS, OPERATION_APPLY, OPERATION_UPDATE, managed_fields_of, put_managed_fields,
    scope_of,
};
use crate::SchemaNode;
use crate::fieldpath::PathElement;
use crate::typed::{View, merges_fields};

/// The fields of one raw managedFields entry, borrowed.
struct Header<'a> {
    manager: &'a str,
    operation: &'a str,
    api_version: &'a str,
    time: Option<&'a str>,
    subresource: Option<&'a str>,
    fields: &'a Map<String, Value>,
}

/// The encoder's sort key: operation, time, manager, apiVersion, subresource.
type SortKey<'a> = (&'a str, &'a str, &'a str, &'a str, Option<&'a str>);

impl<'a> Header<'a> {
    fn sort_key(&self) -> SortKey<'a> {
        (
            self.operation,
            self.time.unwrap_or(""),
            self.manager,
            self.api_version,
            self.subresource,
        )
    }

    /// `Entry::same_identity`.
    fn same_identity(&self, other: &Header) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && (self.operation == OPERATION_APPLY || self.api_version == other.api_version)
            && self.subresource == other.subresource
    }
}

/// The keys of an encoded entry in the encoder's order; `time` and `subresource` are optional.
const ENTRY_KEYS: [&str; 7] = [
    "manager",
    "operation",
    "apiVersion",
    "time",
    "fieldsType",
    "fieldsV1",
    "subresource",
];
const OPTIONAL_KEYS: [usize; 2] = [3, 6];

/// The entry, if it is exactly as the encoder writes it.
fn header(entry: &Value) -> Option<Header<'_>> {
    let Value::Object(m) = entry else {
        return None;
    };
    // One pass in the encoder's key order, reading each value as its key goes by.
    let (mut manager, mut operation, mut api_version, mut fields_type) = (None, None, None, None);
    let (mut time, mut fields, mut subresource) = (None, None, None);
    let mut next = 0;
    for (k, v) in m {
        let at = next + ENTRY_KEYS[next..].iter().position(|e| e == k)?;
        if (next..at).any(|skipped| !OPTIONAL_KEYS.contains(&skipped)) {
            return None;
        }
        next = at + 1;
        match at {
            0 => manager = Some(v.as_str()?),
            1 => operation = Some(v.as_str()?),
            2 => api_version = Some(v.as_str()?),
            3 => time = Some(v.as_str()?),
            4 => fields_type = Some(v.as_str()?),
            5 => fields = Some(v.as_object()?),
            _ => subresource = Some(v.as_str().filter(|s| !s.is_empty())?),
        }
    }
    if (next..ENTRY_KEYS.len()).any(|missing| !OPTIONAL_KEYS.contains(&missing)) {
        return None;
    }
    let operation = operation.filter(|o| *o == OPERATION_APPLY || *o == OPERATION_UPDATE)?;
    let api_version = api_version.filter(|v| !v.is_empty())?;
    if fields_type != Some("FieldsV1") {
        return None;
    }
    let fields = fields?;
    // An empty set is dropped by the slow path.
    if fields.is_empty() || !canonical_fields(fields, true) {
        return None;
    }
    Some(Header {
        manager: manager?,
        operation,
        api_version,
        time,
        subresource,
        fields,
    })
}

/// A `FieldsV1` key, ordered as [`PathElement`]s are (fields first, by name, then list-map
/// keys by their sorted (name, compact-JSON value) pairs, then the rest). `Other` never holds a
/// field or a key.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum RawElement<'a> {
    Field(&'a str),
    Key(Vec<(Cow<'a, str>, Cow<'a, str>)>),
    Other(PathElement),
}

/// The element of a `FieldsV1` key, if the key is the element's own serialization.
fn raw_element(key: &str) -> Option<RawElement<'_>> {
    if let Some(name) = key.strip_prefix("f:") {
        return Some(RawElement::Field(name));
    }
    if let Some(pairs) = key.strip_prefix("k:").and_then(plain_key) {
        return Some(RawElement::Key(pairs));
    }
    let pe = PathElement::deserialize(key).ok()?;
    if matches!(pe, PathElement::Field(_)) || pe.serialize() != key {
        return None;
    }
    Some(match pe {
        PathElement::Key(pairs) => RawElement::Key(
            pairs
                .into_iter()
                .map(|(n, v)| (Cow::Owned(n), Cow::Owned(v)))
                .collect(),
        ),
        other => RawElement::Other(other),
    })
}

/// The pairs of a list-map key (`{"name":"nginx","port":80}`) read without allocating a string,
/// when the key is canonical in the simple way most are: names in strictly increasing order,
/// names and values plain strings (nothing escaped) or plain integers. `None` when the key is
/// not of that form, which says nothing about whether it is canonical: the caller then parses it.
fn plain_key(body: &str) -> Option<Vec<(Cow<'_, str>, Cow<'_, str>)>> {
    let mut rest = body.strip_prefix('{')?;
    let mut pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::with_capacity(2);
    loop {
        let (quoted_name, after) = plain_string(rest)?;
        let name = &quoted_name[1..quoted_name.len() - 1];
        let after = after.strip_prefix(':')?;
        let (value, after) = match after.as_bytes().first()? {
            b'"' => plain_string(after)?,
            _ => plain_integer(after)?,
        };
        if pairs.last().is_some_and(|(prev, _)| prev.as_ref() >= name) {
            return None;
        }
        pairs.push((Cow::Borrowed(name), Cow::Borrowed(value)));
        if let Some(next) = after.strip_prefix(',') {
            rest = next;
        } else {
            return (after == "}").then_some(pairs);
        }
    }
}

/// A JSON string at the start of `s` that serde_json writes back as it is (no escape, no
/// control character), with its quotes, and what follows it.
fn plain_string(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('"')?;
    let end = inner.find(|c: char| c == '"' || c == '\\' || c < ' ')?;
    (inner.as_bytes()[end] == b'"').then(|| s.split_at(end + 2))
}

/// An integer at the start of `s` that serde_json writes back as it is (no leading zero, no
/// `-0`, well inside i64), and what follows it.
fn plain_integer(s: &str) -> Option<(&str, &str)> {
    let digits_from = usize::from(s.starts_with('-'));
    let len = s[digits_from..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let digits = &s[digits_from..digits_from + len];
    if len == 0 || len > 18 || (digits.starts_with('0') && (len > 1 || digits_from == 1)) {
        return None;
    }
    let end = digits_from + len;
    if matches!(s.as_bytes().get(end), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some(s.split_at(end))
}

/// Whether `FieldSet::from_fields_v1` followed by `FieldSet::to_fields_v1` gives back exactly
/// this (non-empty) object: `.` first and `{}` below a member with children (never at the
/// root), canonical keys in strictly increasing path-element order, every value an object whose
/// set is not empty unless it is `{}` (a member without children).
fn canonical_fields(m: &Map<String, Value>, root: bool) -> bool {
    let mut entries = m.iter().peekable();
    if !root
        && let Some((k, v)) = entries.peek()
        && k.as_str() == "."
    {
        if v.as_object().is_none_or(|o| !o.is_empty()) {
            return false;
        }
        entries.next();
        if entries.peek().is_none() {
            return false;
        }
    }
    let mut previous: Option<RawElement> = None;
    for (k, v) in entries {
        let Some(pe) = raw_element(k) else {
            return false;
        };
        if previous.as_ref().is_some_and(|p| *p >= pe) {
            return false;
        }
        let Value::Object(child) = v else {
            return false;
        };
        if !child.is_empty() && !canonical_fields(child, false) {
            return false;
        }
        previous = Some(pe);
    }
    true
}

/// Whether the (canonical) `FieldsV1` object has the field path as a member.
fn owns(fields: &Map<String, Value>, path: &[&str], key: &mut String) -> bool {
    let mut cur = fields;
    for name in path {
        key.clear();
        key.push_str("f:");
        key.push_str(name);
        match find(cur, key) {
            Some(Value::Object(child)) => cur = child,
            _ => return false,
        }
    }
    cur.is_empty() || cur.contains_key(".")
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// Collects the paths of the scalar values that differ between the objects `l` and `r` (as
/// `view` sees them, at this place of the schema). False when they differ in any other way:
/// a field added or removed, a difference in a list, in an atomic object, to or from `null` or
/// between a scalar and an object.
fn scalar_changes<'v>(
    l: &'v Value,
    r: &'v Value,
    node: &SchemaNode,
    view: View,
    path: &mut Vec<&'v str>,
    changes: &mut Vec<Vec<&'v str>>,
) -> bool {
    let (Value::Object(lm), Value::Object(rm)) = (l, r) else {
        return false;
    };
    let seen = |m: &Map<String, Value>| match view {
        View::Everything => m.len(),
        _ => m.keys().filter(|k| view.sees(k)).count(),
    };
    if seen(lm) != seen(rm) {
        return false;
    }
    let mut merged_by_field = false;
    let mut in_rm = Cursor::new(rm);
    for (k, lv) in lm {
        if !view.sees(k) {
            continue;
        }
        let Some(rv) = in_rm.get(k) else {
            return false;
        };
        // `metadata` is walked even when equal: what differs in it is mostly not seen
        // (managedFields, resourceVersion), and comparing those would cost as much.
        let child_view = view.child(k);
        let walk_through = child_view != View::Everything && lv.is_object() && rv.is_object();
        if !walk_through && value_eq(lv, rv) {
            continue;
        }
        // Both objects are of the same kind: one shape check tells how both are compared.
        if !merged_by_field {
            if !merges_fields(l, node) {
                return false;
            }
            merged_by_field = true;
        }
        path.push(k);
        let ok = match (lv, rv) {
            (Value::Object(_), Value::Object(_)) => {
                scalar_changes(lv, rv, &node.field(k), child_view, path, changes)
            }
            (a, b) if is_scalar(a) && is_scalar(b) => {
                changes.push(path.clone());
                true
            }
            _ => false,
        };
        path.pop();
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `stripMetaManager` would drop the path from the updater's new fields.
pub(super) fn stripped(path: &[&str]) -> bool {
    matches!(
        path,
        ["metadata"] | ["apiVersion" | "kind", ..] | ["metadata", "name" | "namespace", ..]
    )
}

/// What [`try_record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fast {
    /// Nothing: the slow path has to run (`new` is untouched).
    No,
    /// `new` has its managedFields.
    Done,
    /// `new` gets the old entries with [`Retime::apply`]: the objects differ, so the caller may
    /// move the entries out of the old object instead of copying them.
    FromOld(Retime),
}

/// The updater's entry (`target`) gets `time: now` and moves to `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Retime {
    target: usize,
    position: usize,
}

impl Retime {
    /// Retimes the entries where they are.
    pub(super) fn apply_in_place(self, entries: &mut Vec<Value>, now: &str) {
        retime(entries, self.target, self.position, now);
    }

    /// Stores the old entries, retimed, as the managedFields of `new`.
    pub(super) fn apply(self, mut entries: Vec<Value>, new: &mut Value, now: &str) {
        retime(&mut entries, self.target, self.position, now);
        put_managed_fields(new, Value::Array(entries));
    }
}

/// Records the update as the slow path would, when the result can be proven to be the old
/// managedFields with only the updater's `time` changed; returns [`Fast::No`], with `new`
/// untouched, otherwise.
pub(super) fn try_record(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    schema: SchemaNode,
    now: &str,
) -> Fast {
    let Some(old) = old else {
        return Fast::No;
    };
    let Some(old_managed @ Value::Array(old_entries)) = managed_fields_of(old) else {
        return Fast::No;
    };
    if old_entries.is_empty() {
        return Fast::No;
    }
    // The managers the slow path starts from must be the old ones.
    let requested = managed_fields_of(new);
    let in_place = requested == Some(old_managed);
    if subresource.is_none() && !in_place && !matches!(requested, None | Some(Value::Null)) {
        return Fast::No;
    }

    let mut changes = Vec::new();
    if !scalar_changes(
        old,
        new,
        &schema,
        scope_of(subresource),
        &mut Vec::new(),
        &mut changes,
    ) {
        return Fast::No;
    }
    if changes.is_empty() {
        // Nothing changed: the slow path re-encodes the old managedFields as they are, if
        // they are as the encoder writes them.
        if encoded_headers(old_entries).is_none() {
            return Fast::No;
        }
        if !in_place {
            let entries = old_managed.clone();
            put_managed_fields(new, entries);
        }
        return Fast::Done;
    }
    if changes.iter().any(|p| stripped(p)) {
        return Fast::No;
    }
    let Some(Retime { target, position }) = plan_retime(
        old_entries,
        manager,
        subresource,
        api_version,
        &changes,
        now,
    ) else {
        return Fast::No;
    };
    if in_place {
        match new
            .get_mut("metadata")
            .and_then(|m| m.get_mut("managedFields"))
            .and_then(Value::as_array_mut)
        {
            Some(entries) => retime(entries, target, position, now),
            // Present: it equals the old managedFields.
            None => return Fast::No,
        }
        Fast::Done
    } else {
        Fast::FromOld(Retime { target, position })
    }
}

/// The headers of the entries, if the entries are exactly what the encoder writes: each entry
/// in its encoded form, sorted, no manager identity twice, at most the Update entries the
/// encoder keeps.
fn encoded_headers(entries: &[Value]) -> Option<Vec<Header<'_>>> {
    let mut headers = Vec::with_capacity(entries.len());
    for e in entries {
        headers.push(header(e)?);
    }
    if headers
        .windows(2)
        .any(|w| w[0].sort_key() >= w[1].sort_key())
    {
        return None;
    }
    for (i, h) in headers.iter().enumerate() {
        if headers[i + 1..].iter().any(|o| h.same_identity(o)) {
            return None;
        }
    }
    if headers
        .iter()
        .filter(|h| h.operation == OPERATION_UPDATE)
        .count()
        > MAX_UPDATE_MANAGERS
    {
        return None;
    }
    Some(headers)
}

/// For an Update by `manager` that changed only the scalar values at `changes`: when the old
/// entries are exactly as the encoder writes them and the updater's own Update entry owns every
/// changed path while no other entry owns any, the [`Retime`] that gives the entries the slow
/// path would record. `None` when that cannot be proven.
pub(super) fn plan_retime(
    entries: &[Value],
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    changes: &[Vec<&str>],
    now: &str,
) -> Option<Retime> {
    let headers = encoded_headers(entries)?;
    let target = headers.iter().position(|h| {
        h.manager == manager
            && h.operation == OPERATION_UPDATE
            && h.api_version == api_version
            && h.subresource == subresource
    })?;
    let mut key = String::new();
    for path in changes {
        for (i, h) in headers.iter().enumerate() {
            if owns(h.fields, path, &mut key) != (i == target) {
                return None;
            }
        }
    }
    // The updater's entry gets `time: now` and moves where the encoder sorts it.
    let mut target_key = headers[target].sort_key();
    target_key.1 = now;
    let position = headers
        .iter()
        .enumerate()
        .filter(|&(i, h)| i != target && h.sort_key() < target_key)
        .count();
    Some(Retime { target, position })
}

/// Sets `time` of entry `target` to `now` (where the encoder writes it) and moves the entry to
/// `position`.
fn retime(entries: &mut Vec<Value>, target: usize, position: usize, now: &str) {
    let mut entry = entries.remove(target);
    if let Value::Object(m) = &mut entry {
        let time = Value::String(now.to_owned());
        match m.get_mut("time") {
            Some(t) => *t = time,
            None => {
                m.shift_insert(3, "time".to_owned(), time);
            }
        }
    }
    entries.insert(position, entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The element as the slow path sees it: parsed, and canonical if it serializes back.
    fn parsed(key: &str) -> Option<PathElement> {
        let pe = PathElement::deserialize(key).ok()?;
        (pe.serialize() == key).then_some(pe)
    }

    const KEYS: &[&str] = &[
        "f:a",
        "f:spec",
        r#"k:{"type":"Ready"}"#,
        r#"k:{"type":"PodScheduled"}"#,
        r#"k:{"uid":"0b6c2f3e-1d2a-4c5b-9e8f-7a6b5c4d3e2f"}"#,
        r#"k:{"containerPort":80,"protocol":"TCP"}"#,
        r#"k:{"containerPort":8080,"protocol":"TCP"}"#,
        r#"k:{"containerPort":-3,"protocol":"UDP"}"#,
        r#"k:{"port":0}"#,
        r#"k:{"protocol":"TCP","containerPort":80}"#,
        r#"k:{"a":1,"a":2}"#,
        r#"k:{"port":-0}"#,
        r#"k:{"port":007}"#,
        r#"k:{"port":1.5}"#,
        r#"k:{"port":1e3}"#,
        r#"k:{"port":12345678901234567890}"#,
        r#"k:{"name":"a\"b"}"#,
        r#"k:{"name":"a\u0041"}"#,
        r#"k:{"na\"me":"x"}"#,
        r#"k:{"name":true}"#,
        r#"k:{"name":null}"#,
        r#"k:{"name":{"x":1}}"#,
        r#"k:{"name": "x"}"#,
        r#"k:{"name":"x"} "#,
        r#"k:{"name":"x""#,
        r#"k:{}"#,
        "k:",
        r#"v:"a""#,
        "v:1",
        "i:0",
        "i:12",
    ];

    #[test]
    fn raw_elements_agree_with_the_parsed_form() {
        let elements: Vec<_> = KEYS
            .iter()
            .map(|k| (k, raw_element(k), parsed(k)))
            .collect();
        for (key, raw, pe) in &elements {
            assert_eq!(raw.is_some(), pe.is_some(), "{key}");
        }
        for (ka, ra, pa) in &elements {
            for (kb, rb, pb) in &elements {
                if let (Some(ra), Some(rb), Some(pa), Some(pb)) = (ra, rb, pa, pb) {
                    assert_eq!(ra.cmp(rb), pa.cmp(pb), "{ka} against {kb}");
                }
            }
        }
    }

    #[test]
    fn common_keys_are_read_without_parsing() {
        for body in [
            r#"{"type":"Ready"}"#,
            r#"{"uid":"0b6c2f3e"}"#,
            r#"{"containerPort":80,"protocol":"TCP"}"#,
            r#"{"port":-3}"#,
        ] {
            assert!(plain_key(body).is_some(), "{body}");
        }
        for body in [
            r#"{"protocol":"TCP","containerPort":80}"#,
            r#"{"name":"a\"b"}"#,
            r#"{"port":007}"#,
            r#"{"port":-0}"#,
            r#"{"port":1.5}"#,
            r#"{"name":true}"#,
            r#"{"name":"x"} "#,
            "{}",
        ] {
            assert!(plain_key(body).is_none(), "{body}");
        }
        assert_eq!(
            plain_key(r#"{"containerPort":80,"protocol":"TCP"}"#),
            Some(vec![
                (Cow::Borrowed("containerPort"), Cow::Borrowed("80")),
                (Cow::Borrowed("protocol"), Cow::Borrowed("\"TCP\"")),
            ])
        );
    }
}
