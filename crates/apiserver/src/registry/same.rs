//! Whether a typed value serializes to exactly a given JSON value, found without building the
//! serialization.
//!
//! Every write decodes the request body into its `k8s-openapi` type and serializes it back
//! (the typed round trip drops unknown fields and normalizes the object). Most bodies are
//! already in that normal form: clients send back what the server gave them, so building the
//! second tree, and then comparing the two for unknown fields, is wasted work. This serializer
//! walks the typed value as `serde_json::to_value` would, comparing every token with the JSON
//! value instead of allocating a copy, and stops at the first difference.
//!
//! "Exactly" includes the order of object members and the representation of numbers: when
//! [`serializes_to`] is true, `serde_json::to_value(t)` would return a value equal to the given
//! one, member for member, in the same order, so the caller can keep the value it has.

use std::fmt;

use serde::ser::{self, Serialize};
use serde_json::{Number, Value, map};

/// Whether `serde_json::to_value(t)` would be exactly `expected` (same members in the same
/// order, same number representations).
pub fn serializes_to<T: Serialize + ?Sized>(t: &T, expected: &Value) -> bool {
    t.serialize(Cmp(expected)).is_ok()
}

/// The serialization differs from the expected value (or uses something compared
/// conservatively, like 128-bit integers or `RawValue`).
#[derive(Debug)]
struct Differs;

impl fmt::Display for Differs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the serialization differs")
    }
}

impl std::error::Error for Differs {}

impl ser::Error for Differs {
    fn custom<M: fmt::Display>(_msg: M) -> Self {
        Differs
    }
}

type Res = Result<(), Differs>;

fn check(same: bool) -> Res {
    if same { Ok(()) } else { Err(Differs) }
}

fn is_number(v: &Value, n: Number) -> bool {
    matches!(v, Value::Number(m) if *m == n)
}

/// The token `serde_json` uses for `RawValue` (serialized as a struct of that name).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// The value of the single member `variant` of an object (how `to_value` writes enum variants
/// with content).
fn variant_content<'a>(v: &'a Value, variant: &str) -> Result<&'a Value, Differs> {
    match v {
        Value::Object(m) if m.len() == 1 => m.get(variant).ok_or(Differs),
        _ => Err(Differs),
    }
}

/// The integer methods of [`Cmp`]: `to_value` writes every integer as `Number::from` of it.
macro_rules! integers {
    ($($method:ident: $t:ty),*) => {$(
        fn $method(self, v: $t) -> Res {
            check(is_number(self.0, Number::from(v)))
        }
    )*};
}

/// Compares the serialization of one value with `.0`.
struct Cmp<'a>(&'a Value);

impl<'a> ser::Serializer for Cmp<'a> {
    type Ok = ();
    type Error = Differs;
    type SerializeSeq = SeqCmp<'a>;
    type SerializeTuple = SeqCmp<'a>;
    type SerializeTupleStruct = SeqCmp<'a>;
    type SerializeTupleVariant = SeqCmp<'a>;
    type SerializeMap = MapCmp<'a>;
    type SerializeStruct = MapCmp<'a>;
    type SerializeStructVariant = MapCmp<'a>;

    fn serialize_bool(self, v: bool) -> Res {
        check(self.0.as_bool() == Some(v))
    }
    integers!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64
    );
    fn serialize_i128(self, _v: i128) -> Res {
        Err(Differs)
    }
    fn serialize_u128(self, _v: u128) -> Res {
        Err(Differs)
    }
    fn serialize_f32(self, v: f32) -> Res {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Res {
        // `to_value` writes a non-finite float as null.
        match Number::from_f64(v) {
            Some(n) => check(is_number(self.0, n)),
            None => check(self.0.is_null()),
        }
    }
    fn serialize_char(self, v: char) -> Res {
        let mut buf = [0; 4];
        self.serialize_str(v.encode_utf8(&mut buf))
    }
    fn serialize_str(self, v: &str) -> Res {
        check(matches!(self.0, Value::String(s) if s == v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Res {
        match self.0 {
            Value::Array(a) => check(
                a.len() == v.len() && a.iter().zip(v).all(|(e, b)| is_number(e, Number::from(*b))),
            ),
            _ => Err(Differs),
        }
    }
    fn serialize_none(self) -> Res {
        check(self.0.is_null())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Res {
        check(self.0.is_null())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Res {
        check(self.0.is_null())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Res {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Res {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Res {
        value.serialize(Cmp(variant_content(self.0, variant)?))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<SeqCmp<'a>, Differs> {
        SeqCmp::new(self.0)
    }
    fn serialize_tuple(self, _len: usize) -> Result<SeqCmp<'a>, Differs> {
        SeqCmp::new(self.0)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<SeqCmp<'a>, Differs> {
        SeqCmp::new(self.0)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<SeqCmp<'a>, Differs> {
        SeqCmp::new(variant_content(self.0, variant)?)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<MapCmp<'a>, Differs> {
        MapCmp::new(self.0)
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<MapCmp<'a>, Differs> {
        if name == RAW_VALUE_TOKEN {
            return Err(Differs);
        }
        MapCmp::new(self.0)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<MapCmp<'a>, Differs> {
        MapCmp::new(variant_content(self.0, variant)?)
    }
}

/// Compares the elements of a sequence with those of an array, in order.
struct SeqCmp<'a> {
    elements: std::slice::Iter<'a, Value>,
}

impl<'a> SeqCmp<'a> {
    fn new(v: &'a Value) -> Result<Self, Differs> {
        match v {
            Value::Array(a) => Ok(SeqCmp { elements: a.iter() }),
            _ => Err(Differs),
        }
    }
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(Cmp(self.elements.next().ok_or(Differs)?))
    }
    fn finish(mut self) -> Res {
        check(self.elements.next().is_none())
    }
}

/// The sequence-like serializer traits differ only in their method's name.
macro_rules! seq_like {
    ($($tr:ident :: $method:ident),*) => {$(
        impl ser::$tr for SeqCmp<'_> {
            type Ok = ();
            type Error = Differs;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
                self.element(value)
            }
            fn end(self) -> Res {
                self.finish()
            }
        }
    )*};
}

seq_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// Compares the members of a map or struct with those of an object, in order.
struct MapCmp<'a> {
    members: map::Iter<'a>,
    /// The value of the member whose key was just compared.
    pending: Option<&'a Value>,
}

impl<'a> MapCmp<'a> {
    fn new(v: &'a Value) -> Result<Self, Differs> {
        match v {
            Value::Object(m) => Ok(MapCmp {
                members: m.iter(),
                pending: None,
            }),
            _ => Err(Differs),
        }
    }
    fn key(&mut self, key: &str) -> Res {
        let (k, v) = self.members.next().ok_or(Differs)?;
        check(k == key)?;
        self.pending = Some(v);
        Ok(())
    }
    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(Cmp(self.pending.take().ok_or(Differs)?))
    }
    fn finish(mut self) -> Res {
        check(self.pending.is_none() && self.members.next().is_none())
    }
}

impl ser::SerializeMap for MapCmp<'_> {
    type Ok = ();
    type Error = Differs;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res {
        let key = serde_json::to_value(key).map_err(|_| Differs)?;
        match key {
            // `to_value` turns keys into strings the same way (`MapKeySerializer`); anything
            // else is compared conservatively.
            Value::String(k) => self.key(&k),
            _ => Err(Differs),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        self.value(value)
    }
    fn end(self) -> Res {
        self.finish()
    }
}

/// Structs and struct variants compare alike.
macro_rules! struct_like {
    ($($tr:ident),*) => {$(
        impl ser::$tr for MapCmp<'_> {
            type Ok = ();
            type Error = Differs;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Res {
                self.key(key)?;
                self.value(value)
            }
            fn end(self) -> Res {
                self.finish()
            }
        }
    )*};
}

struct_like!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Pod;
    use serde::Deserialize;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    /// The comparison agrees with building the serialization, for the typed form of `v`.
    fn agrees<T: DeserializeOwned + Serialize>(v: &Value) -> bool {
        let typed = T::deserialize(v).expect("decodes");
        let built = serde_json::to_value(&typed).expect("serializes");
        let same_order = serde_json::to_string(&built).expect("encodes")
            == serde_json::to_string(v).expect("encodes");
        let fast = serializes_to(&typed, v);
        assert_eq!(fast, same_order, "{v}");
        fast
    }

    fn lease() -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "creationTimestamp": "2026-11-27T10:00:00Z",
                "managedFields": [{
                    "apiVersion": "coordination.k8s.io/v1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:ownerReferences": {".": {}, "k:{\"uid\":\"u\"}": {}}},
                                 "f:spec": {"f:holderIdentity": {}, "f:renewTime": {}}},
                    "manager": "kubelet",
                    "operation": "Update",
                    "time": "2026-11-27T10:00:00Z"
                }],
                "name": "node-1",
                "namespace": "kube-node-lease",
                "labels": {"a": "1", "b": "2"},
                "resourceVersion": "42",
                "uid": "0d4f3c6e-7c1b-4a6b-9b0a-3f6f2b1d9e11"
            },
            "spec": {
                "holderIdentity": "node-1",
                "leaseDurationSeconds": 40,
                "renewTime": "2026-11-27T10:00:10.123456Z"
            }
        })
    }

    #[test]
    fn a_normal_form_object_is_recognised() {
        let v = serde_json::to_value(Lease::deserialize(&lease()).expect("decodes")).expect("ok");
        assert!(agrees::<Lease>(&v));
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                "resources": {"requests": {"cpu": "100m"}}, "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Pending"}});
        let pod = serde_json::to_value(Pod::deserialize(&pod).expect("decodes")).expect("ok");
        assert!(agrees::<Pod>(&pod));
    }

    #[test]
    fn every_difference_is_seen() {
        let normal =
            serde_json::to_value(Lease::deserialize(&lease()).expect("decodes")).expect("ok");
        let mut cases = Vec::new();
        // An unknown field, at the top and deep down.
        let mut v = normal.clone();
        v["extra"] = json!(1);
        cases.push(v);
        let mut v = normal.clone();
        v["spec"]["unknown"] = json!("x");
        cases.push(v);
        // Members out of the typed order.
        let mut v = normal.clone();
        let spec = v["spec"].as_object_mut().expect("object");
        let d = spec.shift_remove("leaseDurationSeconds").expect("present");
        spec.insert("leaseDurationSeconds".into(), d);
        cases.push(v);
        // Map keys out of order.
        let mut v = normal.clone();
        v["metadata"]["labels"] = json!({"b": "2", "a": "1"});
        cases.push(v);
        // An explicit null the typed form drops.
        let mut v = normal.clone();
        v["spec"]["holderIdentity"] = Value::Null;
        cases.push(v);
        // A number written as a float.
        let mut v = normal.clone();
        v["spec"]["leaseDurationSeconds"] = json!(40.0);
        cases.push(v);
        // A time the typed form rewrites.
        let mut v = normal.clone();
        v["metadata"]["creationTimestamp"] = json!("2026-11-27T10:00:00+00:00");
        cases.push(v);
        for v in &cases {
            if Lease::deserialize(v).is_ok() {
                assert!(!agrees::<Lease>(v), "{v}");
            }
        }
    }

    #[test]
    fn values_of_every_shape_compare_like_to_value() {
        #[derive(serde::Serialize)]
        enum E {
            Unit,
            New(i32),
            Tuple(u8, String),
            Struct { a: bool },
        }
        #[derive(serde::Serialize)]
        struct S {
            n: Option<i64>,
            f: f64,
            u: u64,
            neg: i32,
            c: char,
            units: Vec<E>,
            t: (i8, bool),
            raw: Value,
        }
        let s = S {
            n: None,
            f: 1.5,
            u: 7,
            neg: -3,
            c: 'x',
            units: vec![
                E::Unit,
                E::New(4),
                E::Tuple(1, "a".into()),
                E::Struct { a: true },
            ],
            t: (2, false),
            raw: json!({"k": [1, "two", null, 3.25, {"z": false}]}),
        };
        let built = serde_json::to_value(&s).expect("serializes");
        assert!(serializes_to(&s, &built));
        let mut other = built.clone();
        other["units"][1]["New"] = json!(5);
        assert!(!serializes_to(&s, &other));
        let mut other = built.clone();
        other["raw"]["k"][3] = json!(3.5);
        assert!(!serializes_to(&s, &other));
        let mut other = built.clone();
        other["units"].as_array_mut().expect("array").pop();
        assert!(!serializes_to(&s, &other));
        let mut other = built;
        other["f"] = json!(1);
        assert!(!serializes_to(&s, &other));
    }
}
