//! Typed decoding of a stored object without its `metadata.managedFields`.
//!
//! Update validation decodes the old object to compare it with the new one, but no rule looks
//! at the old object's managed fields, whose `fieldsV1` trees are the most expensive part of a
//! decode (each is rebuilt as a JSON value). [`typed_without_managed_fields`] decodes through a
//! view of the object that leaves them out, without copying the object.

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, Visitor};
use serde_json::Value;

/// Decodes `v` into `T` as `T::deserialize(v)` would, with `metadata.managedFields` absent.
pub fn typed_without_managed_fields<T: DeserializeOwned>(v: &Value) -> Option<T> {
    T::deserialize(Object {
        value: v,
        skip: None,
    })
    .ok()
}

/// A JSON value seen through the view: an object's `skip` member is left out; at the top level
/// (`skip: None`), `metadata` is seen without `managedFields`.
struct Object<'a> {
    value: &'a Value,
    skip: Option<&'static str>,
}

impl<'de> de::Deserializer<'de> for Object<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Object(map) => visitor.visit_map(Members {
                iter: map.iter(),
                pending: None,
                skip: self.skip,
            }),
            other => de::Deserializer::deserialize_any(other, visitor),
        }
    }

    // As serde_json's own deserializer of a borrowed value.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// The members of an object seen through the view.
struct Members<'a> {
    iter: serde_json::map::Iter<'a>,
    /// The value of the key just returned, and whether it is the top-level `metadata`.
    pending: Option<(&'a Value, bool)>,
    skip: Option<&'static str>,
}

impl<'de> MapAccess<'de> for Members<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        for (key, value) in self.iter.by_ref() {
            if self.skip == Some(key.as_str()) {
                continue;
            }
            let metadata = self.skip.is_none() && key == "metadata";
            self.pending = Some((value, metadata));
            let key = BorrowedStrDeserializer::<serde_json::Error>::new(key);
            return seed.deserialize(key).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.pending.take() {
            Some((value, true)) => seed.deserialize(Object {
                value,
                skip: Some("managedFields"),
            }),
            Some((value, false)) => seed.deserialize(value),
            None => Err(de::Error::custom("a value was asked for before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Pod;
    use serde::Deserialize;
    use serde_json::json;

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
        let seen: Lease = typed_without_managed_fields(&lease).unwrap();
        assert_eq!(seen, expected);

        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "managedFields": managed(), "annotations": {"x": "y"}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"}
        });
        let mut expected = Pod::deserialize(&pod).unwrap();
        expected.metadata.managed_fields = None;
        assert_eq!(typed_without_managed_fields::<Pod>(&pod).unwrap(), expected);
        // Only metadata's own member is left out.
        let spec_named =
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "managedFields"}]}});
        let p: Pod = typed_without_managed_fields(&spec_named).unwrap();
        assert_eq!(p.spec.unwrap().containers[0].name, "managedFields");
    }

    #[test]
    fn errors_are_those_of_the_typed_decode() {
        assert!(
            typed_without_managed_fields::<Lease>(&json!({"spec": {"leaseDurationSeconds": "x"}}))
                .is_none()
        );
        assert!(typed_without_managed_fields::<Lease>(&json!([1])).is_none());
        // Malformed managed fields are not looked at.
        let v = json!({"metadata": {"name": "a", "managedFields": 3}});
        assert!(Lease::deserialize(&v).is_err());
        assert_eq!(
            typed_without_managed_fields::<Lease>(&v)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("a")
        );
    }
}
