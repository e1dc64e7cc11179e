//! Writes whose callers need no more of the answer than the written object's name.
//!
//! kube-rs's `Api::create` and `Api::patch_status` decode the object the API server sends back
//! into the kind's type. A replica set controller creating a pod, an event recorder, or a
//! kubelet reporting a pod's status throws that object away (its informer brings the new version
//! anyway), and decoding a pod costs more than building the request. These send the same
//! requests (same URL, query, body and content type) and decode only `metadata.name` and
//! `metadata.resourceVersion` of the answer; every other member is skipped unparsed. Errors are
//! kube-rs's: a `Status` answer is `kube::Error::Api`, as from `Api`'s own methods.

use std::fmt::Debug;

use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::Request;
use serde::{Deserialize, Serialize};

/// What [`create`] and [`patch_status`] keep of the written object.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct Written {
    /// The object's metadata: its name and resourceVersion only.
    #[serde(default)]
    pub metadata: WrittenMeta,
}

/// The members of `metadata` that [`Written`] keeps.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct WrittenMeta {
    /// `metadata.name` (the generated one for a `generateName` create).
    #[serde(default)]
    pub name: Option<String>,
    /// `metadata.resourceVersion`.
    #[serde(default, rename = "resourceVersion")]
    pub resource_version: Option<String>,
}

impl Written {
    /// The written object's name ("" if the answer had none).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

/// `Api::create`, keeping only the name and resourceVersion of the created object.
pub async fn create<K: Resource + Serialize + Clone>(
    api: &Api<K>,
    pp: &PostParams,
    obj: &K,
) -> kube::Result<Written> {
    let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
    let mut req = Request::new(api.resource_url())
        .create(pp, body)
        .map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("create");
    kube::Client::from(api.clone())
        .request::<Written>(req)
        .await
}

/// `Api::patch_status`, keeping only the name and resourceVersion of the patched object.
pub async fn patch_status<K: Resource + Clone, P: Serialize + Debug>(
    api: &Api<K>,
    name: &str,
    pp: &PatchParams,
    patch: &Patch<P>,
) -> kube::Result<Written> {
    let mut req = Request::new(api.resource_url())
        .patch_subresource("status", name, pp, patch)
        .map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("patch_status");
    kube::Client::from(api.clone())
        .request::<Written>(req)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    async fn server() -> (apiserver::inprocess::TempServer, kube::Client) {
        let srv = apiserver::inprocess::TempServer::start().await.unwrap();
        let client = srv.client.clone();
        (srv, client)
    }

    fn pod(generate: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"generateName": generate, "labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn creates_and_patches_as_the_api_does_and_keeps_the_name() {
        let (_srv, client) = server().await;
        let api: Api<Pod> = Api::namespaced(client, "default");
        let w = create(&api, &PostParams::default(), &pod("web-"))
            .await
            .unwrap();
        assert!(w.name().starts_with("web-") && w.name().len() == "web-".len() + 5);
        let stored = api.get(w.name()).await.unwrap();
        assert_eq!(
            w.metadata.resource_version,
            stored.metadata.resource_version
        );
        assert_eq!(stored.metadata.labels.unwrap()["app"], "a");

        let patch = json!({"status": {"phase": "Running", "podIP": "10.0.0.7"}});
        let p = patch_status(
            &api,
            w.name(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
        .unwrap();
        let stored = api.get(w.name()).await.unwrap();
        assert_eq!(
            p.metadata.resource_version,
            stored.metadata.resource_version
        );
        assert_ne!(p.metadata.resource_version, w.metadata.resource_version);
        let status = stored.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.7"));
    }

    #[tokio::test]
    async fn errors_are_the_apis() {
        let (_srv, client) = server().await;
        let api: Api<Pod> = Api::namespaced(client, "default");
        let mut p = pod("x-");
        p.metadata.generate_name = None;
        p.metadata.name = Some("fixed".into());
        create(&api, &PostParams::default(), &p).await.unwrap();
        let Err(kube::Error::Api(s)) = create(&api, &PostParams::default(), &p).await else {
            panic!("a second create of the same name must fail");
        };
        assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
        let missing = patch_status(
            &api,
            "missing",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {}})),
        )
        .await;
        let Err(kube::Error::Api(s)) = missing else {
            panic!("patching a missing pod must fail");
        };
        assert_eq!(s.code, 404);
    }
}
