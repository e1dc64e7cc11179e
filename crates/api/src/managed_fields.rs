//! Decoding a kind without its `metadata.managedFields`.
//!
//! Informers drop managed fields (as kube-controller-manager's and kube-scheduler's informers
//! do with their transform), and no update validation rule reads the old object's. Building
//! them is the costliest part of decoding a small object such as a Lease: each entry's
//! `fieldsV1` tree becomes a JSON value. [`deserialize_without_managed_fields`] decodes through
//! any serde deserializer (a byte stream or a borrowed `serde_json::Value`) with that member
//! skipped: parsed, never built.

use std::fmt;

use serde::Deserialize;
use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{
    DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

/// Decodes `K` from `d` as `K::deserialize(d)` would, with `metadata.managedFields` left out
/// (so `None`).
pub fn deserialize_without_managed_fields<'de, K, D>(d: D) -> Result<K, D::Error>
where
    K: Deserialize<'de>,
    D: Deserializer<'de>,
{
    K::deserialize(Level {
        inner: d,
        skip: Skip::Top,
    })
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
    use serde::Deserialize;
    use serde_json::{Value, json};

    fn managed() -> Value {
        json!([{
            "manager": "kubelet", "operation": "Update", "apiVersion": "v1",
            "time": "2026-11-27T10:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:renewTime": {}}}
        }])
    }

    #[test]
    fn decodes_like_serde_without_the_managed_fields() {
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {
                "name": "n1", "namespace": "kube-node-lease", "uid": "u1",
                "resourceVersion": "7", "labels": {"a": "b"}, "managedFields": managed(),
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u0"}]
            },
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                     "renewTime": "2026-11-27T10:00:00.123456Z"}
        });
        let mut expected = Lease::deserialize(&lease).unwrap();
        assert!(expected.metadata.managed_fields.is_some());
        expected.metadata.managed_fields = None;
        let seen: Lease = deserialize_without_managed_fields(&lease).unwrap();
        assert_eq!(seen, expected);

        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "managedFields": managed(), "annotations": {"x": "y"}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"}
        });
        let mut expected = Pod::deserialize(&pod).unwrap();
        expected.metadata.managed_fields = None;
        assert_eq!(
            deserialize_without_managed_fields::<Pod, _>(&pod).unwrap(),
            expected
        );
        // Only metadata's own member is left out.
        let spec_named =
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "managedFields"}]}});
        let p: Pod = deserialize_without_managed_fields(&spec_named).unwrap();
        assert_eq!(p.spec.unwrap().containers[0].name, "managedFields");
    }

    #[test]
    fn errors_are_those_of_the_typed_decode() {
        assert!(
            deserialize_without_managed_fields::<Lease, _>(
                &json!({"spec": {"leaseDurationSeconds": "x"}})
            )
            .is_err()
        );
        assert!(deserialize_without_managed_fields::<Lease, _>(&json!([1])).is_err());
        // Malformed managed fields are not looked at.
        let v = json!({"metadata": {"name": "a", "managedFields": 3}});
        assert!(Lease::deserialize(&v).is_err());
        assert_eq!(
            deserialize_without_managed_fields::<Lease, _>(&v)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("a")
        );
    }
}
