//! JSON text into a [`serde_json::Value`], each object and array allocated once at its final
//! size.
//!
//! `serde_json::from_slice::<Value>` grows every object and array as its members arrive (JSON
//! gives no length up front): a Kubernetes object's `metadata` (six to ten members) reallocates
//! its entries and its hash index several times. [`from_slice`] collects the members of every
//! object (and the items of every array) on one scratch stack shared by the whole document, then
//! moves them into a map (or vector) of exactly their number (a map gets one spare slot). The
//! result is the value
//! `serde_json::from_slice` gives, member order and duplicate keys (the last value wins, at the
//! first one's place) included, and so are the errors: both are driven by the same
//! `serde_json::Deserializer`.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses JSON text (one value, optionally surrounded by whitespace) into a [`Value`].
pub fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    // The thread's scratch stack (empty between parses), or a new one should it be in use.
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            let v = parse(bytes, &mut scratch);
            scratch.trim();
            v
        }
        Err(_) => parse(bytes, &mut Scratch::default()),
    })
}

fn parse(bytes: &[u8], scratch: &mut Scratch) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Seed(scratch).deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The members of the objects and the items of the arrays being parsed, innermost last.
struct Scratch {
    members: Vec<(String, Value)>,
    items: Vec<Value>,
}

impl Scratch {
    /// Members and items kept for the thread's next parse, at most.
    const KEEP: usize = 4096;

    /// Empties the stacks (a failed parse leaves members behind) and gives back the room a huge
    /// document took.
    fn trim(&mut self) {
        self.members.clear();
        self.items.clear();
        self.members.shrink_to(Self::KEEP);
        self.items.shrink_to(Self::KEEP);
    }
}

impl Default for Scratch {
    /// Room for a typical Kubernetes object without growing (about 2 KiB).
    fn default() -> Self {
        Scratch {
            members: Vec::with_capacity(24),
            items: Vec::with_capacity(16),
        }
    }
}

/// Parses one value.
struct Seed<'s>(&'s mut Scratch);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Number(u.into()))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Number::from_f64(f).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let scratch = self.0;
        let start = scratch.items.len();
        while let Some(v) = seq.next_element_seed(Seed(&mut *scratch))? {
            scratch.items.push(v);
        }
        Ok(Value::Array(scratch.items.drain(start..).collect()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let scratch = self.0;
        let start = scratch.members.len();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Seed(&mut *scratch))?;
            scratch.members.push((k, v));
        }
        // One spare slot: writers often add a member (`metadata.managedFields` to a request's
        // object, `resourceVersion` back after clearing it) and would otherwise reallocate.
        let mut m = Map::with_capacity(scratch.members.len() - start + 1);
        m.extend(scratch.members.drain(start..));
        Ok(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::from_slice;
    use serde_json::Value;

    const DOCUMENTS: &[&str] = &[
        r#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"n","namespace":"kube-node-lease","ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n","uid":"u"}],"resourceVersion":"7"},"spec":{"holderIdentity":"n","leaseDurationSeconds":40,"renewTime":"2026-11-29T03:34:32.921975Z"}}"#,
        r#"{"b":1,"a":2,"b":3}"#,
        r#"{"z":{"y":{"x":[1,[2,[3,{"w":[]}]],{}]}},"a":[{"k":"v"},{"k":"w","k":"x"}]}"#,
        r#"[1,-2,3.5,1e300,-0,-0.0,18446744073709551615,-9223372036854775808,true,false,null]"#,
        r#"  "Caf\u00e9 \"quoted\" \\ \n"  "#,
        r#"{}"#,
        r#"[]"#,
        r#"0"#,
        r#"{"":{"":[{"":null}]}}"#,
    ];

    #[test]
    fn gives_what_serde_json_gives() {
        for doc in DOCUMENTS {
            let ours = from_slice(doc.as_bytes()).expect(doc);
            let theirs: Value = serde_json::from_slice(doc.as_bytes()).expect(doc);
            assert_eq!(ours, theirs, "{doc}");
            // Member order too (duplicates keep the first one's place).
            assert_eq!(ours.to_string(), theirs.to_string(), "{doc}");
        }
        assert_eq!(
            from_slice(br#"{"b":1,"a":2,"b":3}"#).unwrap().to_string(),
            r#"{"b":3,"a":2}"#
        );
    }

    #[test]
    fn maps_and_arrays_are_allocated_at_their_size() {
        let v = from_slice(br#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":[1,2,3,4,5]}"#).unwrap();
        let Value::Array(items) = &v["f"] else {
            panic!("not an array")
        };
        assert_eq!(items.capacity(), 5);
    }

    #[test]
    fn fails_where_serde_json_fails() {
        for doc in [
            "",
            "{",
            r#"{"a":1,}"#,
            "[1,2",
            r#"{"a" 1}"#,
            "nul",
            "{} x",
            r#""\ud800""#,
            "01",
            "1e400",
        ] {
            let ours = from_slice(doc.as_bytes()).map_err(|e| e.to_string());
            let theirs = serde_json::from_slice::<Value>(doc.as_bytes()).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{doc:?}");
        }
        // A failed parse leaves nothing behind for the next one on this thread.
        assert_eq!(
            from_slice(br#"{"a":[1,{"b":2}]}"#).unwrap().to_string(),
            r#"{"a":[1,{"b":2}]}"#
        );
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(
            from_slice(deep.as_bytes()).map_err(|e| e.to_string()),
            serde_json::from_slice::<Value>(deep.as_bytes()).map_err(|e| e.to_string())
        );
    }
}
