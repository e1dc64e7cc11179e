//! Decoding objects for an informer without their `metadata.managedFields`.
//!
//! Informers drop managed fields (as kube-controller-manager's and kube-scheduler's informers
//! do with their transform), so building them is wasted: each entry's `fieldsV1` tree becomes a
//! JSON value, the costliest part of decoding a small object such as a Lease. [`Stripped`]
//! decodes a kind with `metadata.managedFields` skipped in the byte stream (parsed, never
//! built), and is what an informer's watcher asks the API for.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{
    DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::{Deserialize, Serialize};

/// An object of kind `K` decoded without `metadata.managedFields` (always `None`).
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct Stripped<K>(pub K);

impl<'de, K: Deserialize<'de>> Deserialize<'de> for Stripped<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        K::deserialize(Level {
            inner: d,
            skip: Skip::Top,
        })
        .map(Stripped)
    }
}

impl<K: Resource> Resource for Stripped<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn url_path(dt: &Self::DynamicType, namespace: Option<&str>) -> String {
        K::url_path(dt, namespace)
    }
    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}

/// Which member the objects seen at a level lose.
#[derive(Clone, Copy)]
enum Skip {
    /// The object itself: none, but `metadata` is seen at [`Skip::Metadata`].
    Top,
    /// The object's metadata: `managedFields`.
    Metadata,
}

/// A deserializer that hands maps (objects) to the visitor through [`Members`]; everything
/// else passes through untouched.
struct Level<D> {
    inner: D,
    skip: Skip,
}

macro_rules! forward {
    ($($method:ident),*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.inner.$method(visitor)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Level<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_any(Wrap {
            visitor,
            skip: self.skip,
        })
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_map(Wrap {
            visitor,
            skip: self.skip,
        })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_struct(
            name,
            fields,
            Wrap {
                visitor,
                skip: self.skip,
            },
        )
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_option(Wrap {
            visitor,
            skip: self.skip,
        })
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_newtype_struct(name, visitor)
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_unit_struct(name, visitor)
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_tuple(len, visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_tuple_struct(name, len, visitor)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_enum(name, variants, visitor)
    }
    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }

    forward!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_unit,
        deserialize_seq,
        deserialize_identifier,
        deserialize_ignored_any
    );
}

/// A visitor whose maps are read through [`Members`] (and whose `Some` is seen at the same
/// level); every other shape goes to the wrapped visitor as it is.
struct Wrap<V> {
    visitor: V,
    skip: Skip,
}

macro_rules! pass {
    ($($method:ident: $ty:ty),*) => {
        $(
            fn $method<E: serde::de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.visitor.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_map(Members {
            inner: map,
            skip: self.skip,
            metadata_next: false,
        })
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_some(Level {
            inner: d,
            skip: self.skip,
        })
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_none()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_unit()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_seq(seq)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_newtype_struct(d)
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.visitor.visit_borrowed_str(v)
    }
    fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        self.visitor.visit_borrowed_bytes(v)
    }
    pass!(
        visit_bool: bool,
        visit_i64: i64,
        visit_i128: i128,
        visit_u64: u64,
        visit_u128: u128,
        visit_f64: f64,
        visit_str: &str,
        visit_string: String,
        visit_bytes: &[u8],
        visit_byte_buf: Vec<u8>
    );
}

/// A key read ahead of the visitor, to decide whether its member is skipped.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

/// The members of an object at a level: at [`Skip::Metadata`], `managedFields` is parsed and
/// dropped; at [`Skip::Top`], the value of `metadata` is seen at [`Skip::Metadata`].
struct Members<A> {
    inner: A,
    skip: Skip,
    metadata_next: bool,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Members<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        loop {
            let Some(key) = self.inner.next_key::<Key<'de>>()? else {
                return Ok(None);
            };
            match self.skip {
                Skip::Metadata if key.as_str() == "managedFields" => {
                    self.inner.next_value::<IgnoredAny>()?;
                    continue;
                }
                Skip::Top => self.metadata_next = key.as_str() == "metadata",
                Skip::Metadata => {}
            }
            return match key {
                Key::Borrowed(s) => seed
                    .deserialize(BorrowedStrDeserializer::<A::Error>::new(s))
                    .map(Some),
                Key::Owned(s) => {
                    let d: StringDeserializer<A::Error> = s.into_deserializer();
                    seed.deserialize(d).map(Some)
                }
            };
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        if std::mem::take(&mut self.metadata_next) {
            self.inner.next_value_seed(AtMetadata(seed))
        } else {
            self.inner.next_value_seed(seed)
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// Deserializes a member's value seen at [`Skip::Metadata`].
struct AtMetadata<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for AtMetadata<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Level {
            inner: d,
            skip: Skip::Metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Pod;
    use kube::core::WatchEvent;
    use serde_json::json;

    fn managed() -> serde_json::Value {
        json!([{
            "manager": "kubelet", "operation": "Update", "apiVersion": "v1",
            "time": "2026-11-27T10:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:renewTime": {}}, "f:metadata": {"f:ownerReferences": {".": {}, "k:{\"uid\":\"u0\"}": {}}}}
        }])
    }

    fn lease() -> serde_json::Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {
                "name": "n1", "namespace": "kube-node-lease", "uid": "u1", "resourceVersion": "7",
                "labels": {"managedFields": "a label, kept"}, "managedFields": managed(),
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u0"}]
            },
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                     "renewTime": "2026-11-27T10:00:00.123456Z"}
        })
    }

    #[test]
    fn decodes_like_the_kind_without_managed_fields() {
        let text = serde_json::to_string(&lease()).unwrap();
        let mut expected: Lease = serde_json::from_str(&text).unwrap();
        assert!(expected.metadata.managed_fields.is_some());
        expected.metadata.managed_fields = None;
        let Stripped(seen) = serde_json::from_str::<Stripped<Lease>>(&text).unwrap();
        assert_eq!(seen, expected);
        assert_eq!(
            seen.metadata.labels.unwrap()["managedFields"],
            "a label, kept"
        );

        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d", "managedFields": managed()},
            "spec": {"containers": [{"name": "managedFields", "image": "nginx"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        });
        let text = serde_json::to_string(&pod).unwrap();
        let mut expected: Pod = serde_json::from_str(&text).unwrap();
        expected.metadata.managed_fields = None;
        assert_eq!(
            serde_json::from_str::<Stripped<Pod>>(&text).unwrap().0,
            expected
        );
    }

    #[test]
    fn watch_events_and_escaped_keys_decode() {
        // Keys with escapes cannot be borrowed from the input.
        let text = r#"{"type":"MODIFIED","object":{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"n\u0031","managed\u0046ields":[{"manager":"x","fieldsV1":{"f:a":{}}}],"resourceVersion":"9"},"spec":{"holderIdentity":"n1"}}}"#;
        let ev: WatchEvent<Stripped<Lease>> = serde_json::from_str(text).unwrap();
        let WatchEvent::Modified(Stripped(l)) = ev else {
            panic!("not a MODIFIED event");
        };
        assert_eq!(l.metadata.name.as_deref(), Some("n1"));
        assert_eq!(l.metadata.resource_version.as_deref(), Some("9"));
        assert!(l.metadata.managed_fields.is_none());
        assert_eq!(l.spec.unwrap().holder_identity.as_deref(), Some("n1"));
        // Objects without metadata, or with a null one, decode as the kind does.
        let l: Stripped<Lease> = serde_json::from_str(r#"{"metadata":null,"spec":{}}"#).unwrap();
        assert_eq!(
            l.0,
            serde_json::from_str::<Lease>(r#"{"metadata":null,"spec":{}}"#).unwrap()
        );
        assert!(
            serde_json::from_str::<Stripped<Lease>>(r#"{"spec":{"leaseDurationSeconds":"x"}}"#)
                .is_err()
        );
    }
}
