//! Decoding objects for an informer without their `metadata.managedFields`.
//!
//! Informers drop managed fields, so building them is wasted. [`Stripped`] decodes a kind with
//! `metadata.managedFields` skipped in the byte stream
//! ([`api::managed_fields::deserialize_without_managed_fields`]), and is what an informer's
//! watcher asks the API for.

use std::borrow::Cow;

use api::managed_fields::deserialize_without_managed_fields;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};

/// An object of kind `K` decoded without `metadata.managedFields` (always `None`).
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct Stripped<K>(pub K);

impl<'de, K: Deserialize<'de>> Deserialize<'de> for Stripped<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_without_managed_fields(d).map(Stripped)
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
