//! The namespace controller against the real (in-process) API server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn create_ns(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
}

fn cond(ns: &Namespace, type_: &str) -> Option<(String, String)> {
    ns.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.message.clone().unwrap_or_default()))
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_content_then_the_namespace() {
    let s = support::server().await;
    create_ns(&s.client, "doomed").await;
    create_ns(&s.client, "kept").await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "doomed");
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), "doomed");
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "doomed");
    for i in 0..3 {
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}})).unwrap(),
        )
        .await
        .unwrap();
    }
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap(),
        )
        .await
        .unwrap();
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let kept: Api<ConfigMap> = Api::namespaced(s.client.clone(), "kept");
    kept.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "stays"}})).unwrap(),
    )
    .await
    .unwrap();

    tokio::spawn(controllers::namespace::run(s.context(Default::default())));
    let nss: Api<Namespace> = Api::all(s.client.clone());
    nss.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();

    // Everything without a finalizer goes; the held object keeps the namespace, which says so.
    let ns = support::eventually(15, "finalizers-remaining condition", || {
        let nss = nss.clone();
        async move {
            let ns = nss.get("doomed").await.unwrap();
            (cond(&ns, "NamespaceFinalizersRemaining")?.0 == "True").then_some(ns)
        }
    })
    .await;
    assert_eq!(
        cond(&ns, "NamespaceFinalizersRemaining").unwrap().1,
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    );
    assert_eq!(
        cond(&ns, "NamespaceContentRemaining").unwrap().1,
        "Some resources are remaining: configmaps. has 1 resource instances"
    );
    assert_eq!(
        cond(&ns, "NamespaceDeletionDiscoveryFailure").unwrap().0,
        "False"
    );
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert!(cms.get_opt("cm-0").await.unwrap().is_none());
    assert!(secrets.get_opt("s").await.unwrap().is_none());
    assert!(pods.get_opt("p").await.unwrap().is_none());

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    support::eventually(15, "namespace deleted", || {
        let nss = nss.clone();
        async move { nss.get_opt("doomed").await.unwrap().is_none().then_some(()) }
    })
    .await;
    // Other namespaces are untouched.
    assert!(kept.get_opt("stays").await.unwrap().is_some());
    assert!(nss.get_opt("kept").await.unwrap().is_some());
}
