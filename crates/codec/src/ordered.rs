//! Lookups and comparisons of JSON objects that expect their keys in the same order.
//!
//! A `serde_json::Map` (with `preserve_order`) finds a key by hashing it with SipHash and probing
//! its index. Comparing an object with its previous version (an update against the stored
//! object) looks up every key of one in the other, and both almost always list their keys in
//! the same order: the client sent back what it read, or the server wrote both. A [`Cursor`]
//! first tries the entry after the last one it found, so walking two such objects side by side
//! compares keys and hashes nothing; a key found elsewhere (or missing) takes a full lookup
//! ([`find`]: small maps are scanned, others hashed), so the answers are always the map's own.

use serde_json::{Map, Value};

/// Looks keys up in a map, expecting them in the map's order.
#[derive(Clone)]
pub struct Cursor<'a> {
    map: &'a Map<String, Value>,
    next: serde_json::map::Iter<'a>,
}

impl<'a> Cursor<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Cursor {
            map,
            next: map.iter(),
        }
    }

    /// The value of `key` (`Map::get`). The cursor looks at the next three entries (the caller
    /// may skip some, say `resourceVersion`), then hashes; after a hit it expects the key
    /// following the one found.
    pub fn get(&mut self, key: &str) -> Option<&'a Value> {
        let mut after = self.next.clone();
        for _ in 0..3 {
            match after.next() {
                Some((k, v)) if k == key => {
                    self.next = after;
                    return Some(v);
                }
                Some(_) => {}
                None => break,
            }
        }
        find(self.map, key)
    }
}

/// Maps up to this size are searched entry by entry: comparing a few keys (mostly just their
/// lengths) costs less than hashing one.
const SCAN_MAX: usize = 16;

/// `map.get(key)`, without hashing the key when the map is small.
pub fn find<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if map.len() > SCAN_MAX {
        return map.get(key);
    }
    map.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// `value.get(key)` for an object (`None` for anything else), as [`find`].
pub fn member<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(m) => find(m, key),
        _ => None,
    }
}

/// `a == b`, comparing objects with a [`Cursor`] (same result: key order never matters).
pub fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => map_eq(a, b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| value_eq(x, y))
        }
        _ => a == b,
    }
}

/// `a == b` for maps, with a [`Cursor`] over `b`.
fn map_eq(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut in_b = Cursor::new(b);
    a.iter()
        .all(|(k, x)| in_b.get(k).is_some_and(|y| value_eq(x, y)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn cursor_answers_as_the_map_in_any_order() {
        let m = map(json!({"a": 1, "b": 2, "c": 3, "d": 4}));
        for order in [
            ["a", "b", "c", "d", "x"],
            ["d", "c", "b", "a", "x"],
            ["b", "x", "c", "a", "d"],
            ["a", "a", "b", "b", "x"],
            ["x", "a", "d", "b", "c"],
        ] {
            let mut c = Cursor::new(&m);
            for k in order {
                let found = c.get(k);
                assert_eq!(found, m.get(k), "{order:?} at {k}");
                assert_eq!(found.is_some(), m.contains_key(k));
            }
        }
        let empty = Map::new();
        assert_eq!(Cursor::new(&empty).get("a"), None);
    }

    #[test]
    fn find_answers_as_the_map_small_or_large() {
        let large: Map<String, Value> = (0..40).map(|i| (format!("k{i}"), json!(i))).collect();
        let small: Map<String, Value> = large.clone().into_iter().take(SCAN_MAX).collect();
        for m in [&small, &large] {
            for k in ["k0", "k7", "k15", "k16", "k39", "k40", "", "k"] {
                assert_eq!(find(m, k), m.get(k), "{} entries, {k}", m.len());
                let v = Value::Object(m.clone());
                assert_eq!(member(&v, k), v.get(k));
            }
        }
        assert_eq!(member(&json!([1]), "a"), None);
    }

    #[test]
    fn value_eq_is_equality() {
        let cases = [
            json!({"a": 1, "b": {"x": [1, {"y": 2}], "z": null}}),
            json!({"b": {"z": null, "x": [1, {"y": 2}]}, "a": 1}),
            json!({"a": 1, "b": {"x": [1, {"y": 3}], "z": null}}),
            json!({"a": 1, "b": {"x": [{"y": 2}, 1], "z": null}}),
            json!({"a": 1, "b": {"x": [1, {"y": 2}]}}),
            json!({"a": 1, "b": {"x": [1, {"y": 2}], "w": null}}),
            json!({"a": 1.0, "b": {"x": [1, {"y": 2}], "z": null}}),
            json!({"a": "1", "b": {"x": [1, {"y": 2}], "z": null}}),
            json!([1, 2]),
            json!([1, 2, 3]),
            json!(null),
            json!(true),
            json!("s"),
            json!({}),
        ];
        for a in &cases {
            for b in &cases {
                assert_eq!(value_eq(a, b), a == b, "{a} vs {b}");
            }
        }
    }
}
