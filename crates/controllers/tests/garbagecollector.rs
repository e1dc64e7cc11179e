//! The garbage collector against the real (in-process) API server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn rs(client: &kube::Client, name: &str) -> ReplicaSet {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}
                }
            }
        }))
        .unwrap(),
    )
    .await
    .unwrap()
}

fn owner_ref(api_version: &str, kind: &str, name: &str, uid: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
           "controller": kind == "ReplicaSet", "blockOwnerDeletion": true})
}

fn rs_ref(rs: &ReplicaSet) -> Value {
    owner_ref(
        "apps/v1",
        "ReplicaSet",
        rs.metadata.name.as_deref().unwrap(),
        rs.metadata.uid.as_deref().unwrap(),
    )
}

async fn pod(client: &kube::Client, name: &str, owners: Vec<Value>, finalizers: &[&str]) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
}

async fn gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.unwrap().is_none()
}

fn delete_with(policy: &str) -> DeleteParams {
    match policy {
        "Foreground" => DeleteParams::foreground(),
        "Orphan" => DeleteParams::orphan(),
        _ => DeleteParams::background(),
    }
}

#[tokio::test]
async fn background_deletion_removes_dependents_and_dangling_refs() {
    let s = support::server().await;
    tokio::spawn(controllers::garbagecollector::run(
        s.context(Default::default()),
    ));
    let owner = rs(&s.client, "bg").await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let cm = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "other-owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let cm_ref = owner_ref(
        "v1",
        "ConfigMap",
        "other-owner",
        cm.metadata.uid.as_deref().unwrap(),
    );
    for i in 0..3 {
        pod(&s.client, &format!("bg-{i}"), vec![rs_ref(&owner)], &[]).await;
    }
    pod(&s.client, "bg-shared", vec![rs_ref(&owner), cm_ref], &[]).await;
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    // Owned pods stay while the owner exists.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!gone(&pods, "bg-0").await);

    let rss: Api<ReplicaSet> = Api::namespaced(s.client.clone(), "default");
    rss.delete("bg", &delete_with("Background")).await.unwrap();
    support::eventually(15, "dependents deleted", || {
        let pods = pods.clone();
        async move {
            for i in 0..3 {
                if !gone(&pods, &format!("bg-{i}")).await {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    let shared = support::eventually(15, "dangling reference removed", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("bg-shared").await.unwrap();
            (p.metadata.owner_references.as_ref().map(Vec::len) == Some(1)).then_some(p)
        }
    })
    .await;
    assert_eq!(
        shared.metadata.owner_references.unwrap()[0].kind,
        "ConfigMap"
    );
    assert!(shared.metadata.deletion_timestamp.is_none());
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let s = support::server().await;
    tokio::spawn(controllers::garbagecollector::run(
        s.context(Default::default()),
    ));
    let owner = rs(&s.client, "fg").await;
    pod(&s.client, "fg-a", vec![rs_ref(&owner)], &[]).await;
    // This dependent cannot go before its finalizer is removed.
    pod(
        &s.client,
        "fg-held",
        vec![rs_ref(&owner)],
        &["example.com/hold"],
    )
    .await;
    let rss: Api<ReplicaSet> = Api::namespaced(s.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    rss.delete("fg", &delete_with("Foreground")).await.unwrap();
    support::eventually(15, "non-blocked dependent deleted", || {
        let pods = pods.clone();
        async move { gone(&pods, "fg-a").await.then_some(()) }
    })
    .await;
    support::eventually(15, "held dependent being deleted", || {
        let pods = pods.clone();
        async move {
            pods.get("fg-held")
                .await
                .unwrap()
                .metadata
                .deletion_timestamp
                .map(|_| ())
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let o = rss.get("fg").await.unwrap();
    assert!(
        o.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string()),
        "the owner waits for its blocking dependent"
    );
    pods.patch(
        "fg-held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    support::eventually(15, "owner deleted after its dependents", || {
        let rss = rss.clone();
        async move { gone(&rss, "fg").await.then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_without_the_reference() {
    let s = support::server().await;
    tokio::spawn(controllers::garbagecollector::run(
        s.context(Default::default()),
    ));
    let owner = rs(&s.client, "or").await;
    for i in 0..2 {
        pod(&s.client, &format!("or-{i}"), vec![rs_ref(&owner)], &[]).await;
    }
    let rss: Api<ReplicaSet> = Api::namespaced(s.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    rss.delete("or", &delete_with("Orphan")).await.unwrap();
    support::eventually(15, "orphaned owner deleted", || {
        let rss = rss.clone();
        async move { gone(&rss, "or").await.then_some(()) }
    })
    .await;
    for i in 0..2 {
        let p = pods.get(&format!("or-{i}")).await.unwrap();
        assert!(p.metadata.deletion_timestamp.is_none());
        assert!(
            p.metadata.owner_references.unwrap_or_default().is_empty(),
            "reference to the orphaning owner removed"
        );
    }
}

#[tokio::test]
async fn dependents_of_owners_that_never_existed_are_deleted() {
    let s = support::server().await;
    let real = rs(&s.client, "real").await;
    // An owner that never existed, and one whose name exists with another UID.
    pod(
        &s.client,
        "ghost-child",
        vec![owner_ref(
            "apps/v1",
            "ReplicaSet",
            "ghost",
            "00000000-0000-0000-0000-000000000001",
        )],
        &[],
    )
    .await;
    pod(
        &s.client,
        "wrong-uid-child",
        vec![owner_ref(
            "apps/v1",
            "ReplicaSet",
            "real",
            "00000000-0000-0000-0000-000000000002",
        )],
        &[],
    )
    .await;
    pod(&s.client, "real-child", vec![rs_ref(&real)], &[]).await;
    tokio::spawn(controllers::garbagecollector::run(
        s.context(Default::default()),
    ));
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    support::eventually(15, "children of absent owners deleted", || {
        let pods = pods.clone();
        async move {
            (gone(&pods, "ghost-child").await && gone(&pods, "wrong-uid-child").await).then_some(())
        }
    })
    .await;
    assert!(!gone(&pods, "real-child").await);
}
