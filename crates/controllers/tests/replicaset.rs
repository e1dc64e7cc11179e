//! The ReplicaSet controller against the real (in-process) API server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
}

fn rs(name: &str, replicas: i32, app: &str) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}
            }
        }
    }))
    .unwrap()
}

async fn live_pods(client: &kube::Client, ns: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Marks a pod Running and Ready (what a kubelet would do), on `node` if given.
async fn make_ready(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": Timestamp::now().to_string()}]
        }})),
    )
    .await
    .unwrap();
}

async fn bind(client: &kube::Client, ns: &str, name: &str, node: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}
    });
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        name,
        &PostParams::default(),
        &binding,
    )
    .await
    .unwrap();
}

async fn rs_status(client: &kube::Client, ns: &str, name: &str) -> ReplicaSet {
    Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap()
}

async fn scale(client: &kube::Client, ns: &str, name: &str, n: i32) {
    Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": n}})),
        )
        .await
        .unwrap();
}

async fn events(client: &kube::Client, ns: &str) -> Vec<CoreEvent> {
    Api::<CoreEvent>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

fn start(s: &support::Server) {
    tokio::spawn(controllers::replicaset::run(s.context(Default::default())));
}

#[tokio::test]
async fn scales_up_and_down_with_owned_generated_pods_and_status() {
    let s = support::server().await;
    namespace(&s.client, "t").await;
    start(&s);
    let api: Api<ReplicaSet> = Api::namespaced(s.client.clone(), "t");
    let created = api
        .create(&PostParams::default(), &rs("web", 3, "web"))
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    let pods = support::eventually(10, "3 pods", || async {
        let p = live_pods(&s.client, "t").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    for p in &pods {
        let name = p.name_any();
        assert!(
            name.starts_with("web-") && name.len() == "web-".len() + 5,
            "{name}"
        );
        let refs = p.metadata.owner_references.clone().unwrap();
        assert_eq!(refs.len(), 1);
        let r = &refs[0];
        assert_eq!(
            (
                r.api_version.as_str(),
                r.kind.as_str(),
                r.name.as_str(),
                r.uid.as_str()
            ),
            ("apps/v1", "ReplicaSet", "web", uid.as_str())
        );
        assert_eq!(
            (r.controller, r.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(p.labels().get("app").map(String::as_str), Some("web"));
    }
    // Status: 3 replicas, none ready; then 2 ready.
    support::eventually(10, "status replicas 3", || async {
        let st = rs_status(&s.client, "t", "web")
            .await
            .status
            .unwrap_or_default();
        (st.replicas == 3
            && st.fully_labeled_replicas == Some(3)
            && st.observed_generation == Some(1))
        .then_some(())
    })
    .await;
    make_ready(&s.client, "t", &pods[0].name_any()).await;
    make_ready(&s.client, "t", &pods[1].name_any()).await;
    support::eventually(10, "2 ready and available", || async {
        let st = rs_status(&s.client, "t", "web")
            .await
            .status
            .unwrap_or_default();
        (st.ready_replicas == Some(2) && st.available_replicas == Some(2)).then_some(())
    })
    .await;

    scale(&s.client, "t", "web", 1).await;
    support::eventually(10, "1 pod", || async {
        (live_pods(&s.client, "t").await.len() == 1).then_some(())
    })
    .await;
    support::eventually(10, "status replicas 1", || async {
        let st = rs_status(&s.client, "t", "web")
            .await
            .status
            .unwrap_or_default();
        (st.replicas == 1 && st.observed_generation == Some(2)).then_some(())
    })
    .await;
    // A deleted pod is replaced.
    let last = live_pods(&s.client, "t").await.remove(0).name_any();
    Api::<Pod>::namespaced(s.client.clone(), "t")
        .delete(&last, &DeleteParams::default())
        .await
        .unwrap();
    support::eventually(10, "a replacement", || async {
        let p = live_pods(&s.client, "t").await;
        (p.len() == 1 && p[0].name_any() != last).then_some(())
    })
    .await;
    // Events, as upstream words them.
    support::eventually(10, "events", || async {
        let ev = events(&s.client, "t").await;
        let created = ev.iter().any(|e| {
            e.reason.as_deref() == Some("SuccessfulCreate")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("Created pod: web-"))
                && e.source.as_ref().and_then(|s| s.component.as_deref())
                    == Some("replicaset-controller")
        });
        let deleted = ev.iter().any(|e| {
            e.reason.as_deref() == Some("SuccessfulDelete")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("Deleted pod: web-"))
        });
        (created && deleted).then_some(())
    })
    .await;
}

#[tokio::test]
async fn never_overshoots_while_the_informer_catches_up() {
    let s = support::server().await;
    namespace(&s.client, "t").await;
    // Every pod ever created in the namespace.
    let inf = s.factory.informer::<Pod>();
    let mut rx = inf.subscribe();
    let seen = Arc::new(parking_lot::Mutex::new(HashSet::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let informers::Event::Added(p) = ev {
                seen2.lock().insert(p.name_any());
            }
        }
    });
    start(&s);
    let api: Api<ReplicaSet> = Api::namespaced(s.client.clone(), "t");
    api.create(&PostParams::default(), &rs("web", 300, "web"))
        .await
        .unwrap();
    // Trigger syncs continuously while the creations are in flight.
    let poker = {
        let api = api.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let _ = api
                    .patch(
                        "web",
                        &PatchParams::default(),
                        &Patch::Merge(
                            json!({"metadata": {"annotations": {"poke": i.to_string()}}}),
                        ),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    support::eventually(30, "300 pods", || async {
        (live_pods(&s.client, "t").await.len() == 300).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    poker.abort();
    assert_eq!(live_pods(&s.client, "t").await.len(), 300);
    assert_eq!(seen.lock().len(), 300, "created more pods than asked for");

    // Rapid scaling: up, down, up.
    scale(&s.client, "t", "web", 350).await;
    scale(&s.client, "t", "web", 100).await;
    scale(&s.client, "t", "web", 150).await;
    support::eventually(30, "150 pods", || async {
        (live_pods(&s.client, "t").await.len() == 150).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(live_pods(&s.client, "t").await.len(), 150);
    // At most 50 created for 350, and 50 again for 150 if the scale-down ran first.
    assert!(
        seen.lock().len() <= 400,
        "created {} pods",
        seen.lock().len()
    );
}

#[tokio::test]
async fn adopts_matching_orphans_and_releases_mismatching_pods() {
    let s = support::server().await;
    namespace(&s.client, "t").await;
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "t");
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    start(&s);
    let api: Api<ReplicaSet> = Api::namespaced(s.client.clone(), "t");
    let created = api
        .create(&PostParams::default(), &rs("web", 2, "web"))
        .await
        .unwrap();
    let uid = created.metadata.uid.unwrap();
    support::eventually(10, "orphan adopted", || async {
        let p = pods.get("orphan").await.unwrap();
        p.owner_references()
            .iter()
            .any(|r| r.uid == uid && r.controller == Some(true))
            .then_some(())
    })
    .await;
    support::eventually(10, "2 pods in total", || async {
        (live_pods(&s.client, "t").await.len() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        live_pods(&s.client, "t").await.len(),
        2,
        "adopted pod not counted"
    );

    // Relabel the adopted pod: it is released and replaced.
    pods.patch(
        "orphan",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    support::eventually(10, "released", || async {
        let p = pods.get("orphan").await.unwrap();
        p.owner_references()
            .iter()
            .all(|r| r.uid != uid)
            .then_some(())
    })
    .await;
    support::eventually(10, "replaced", || async {
        let owned = live_pods(&s.client, "t")
            .await
            .into_iter()
            .filter(|p| p.owner_references().iter().any(|r| r.uid == uid))
            .count();
        (owned == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn scale_down_deletes_the_least_advanced_pods_and_counts_terminating() {
    let s = support::server().await;
    namespace(&s.client, "t").await;
    start(&s);
    let api: Api<ReplicaSet> = Api::namespaced(s.client.clone(), "t");
    api.create(&PostParams::default(), &rs("web", 4, "web"))
        .await
        .unwrap();
    let pods = support::eventually(10, "4 pods", || async {
        let p = live_pods(&s.client, "t").await;
        (p.len() == 4).then_some(p)
    })
    .await;
    let names: Vec<String> = pods.iter().map(ResourceExt::name_any).collect();
    // pods[0]: unassigned; pods[1]: assigned, Pending; pods[2], pods[3]: assigned, Running+Ready.
    for n in &names[1..] {
        bind(&s.client, "t", n, "node-1").await;
    }
    make_ready(&s.client, "t", &names[2]).await;
    make_ready(&s.client, "t", &names[3]).await;
    support::eventually(10, "2 ready", || async {
        let st = rs_status(&s.client, "t", "web")
            .await
            .status
            .unwrap_or_default();
        (st.ready_replicas == Some(2)).then_some(())
    })
    .await;
    scale(&s.client, "t", "web", 2).await;
    let left = support::eventually(10, "2 pods", || async {
        let p = live_pods(&s.client, "t").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    let mut left: Vec<String> = left.iter().map(ResourceExt::name_any).collect();
    left.sort();
    let mut want = vec![names[2].clone(), names[3].clone()];
    want.sort();
    assert_eq!(left, want, "the ready pods must be kept");
    // The bound pod deleted gracefully stays terminating and is counted.
    support::eventually(10, "terminatingReplicas 1", || async {
        let st = rs_status(&s.client, "t", "web")
            .await
            .status
            .unwrap_or_default();
        (st.terminating_replicas == Some(1) && st.replicas == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn create_failures_set_replica_failure_and_warn() {
    let s = support::server().await;
    namespace(&s.client, "t").await;
    start(&s);
    let api: Api<ReplicaSet> = Api::namespaced(s.client.clone(), "t");
    // Valid as a template, refused as a pod: nodeName with scheduling gates.
    let mut bad = rs("bad", 2, "bad");
    let spec = bad
        .spec
        .as_mut()
        .unwrap()
        .template
        .as_mut()
        .unwrap()
        .spec
        .as_mut()
        .unwrap();
    spec.node_name = Some("n1".into());
    spec.scheduling_gates = Some(vec![
        serde_json::from_value(json!({"name": "gate"})).unwrap(),
    ]);
    api.create(&PostParams::default(), &bad).await.unwrap();
    support::eventually(10, "ReplicaFailure", || async {
        let st = rs_status(&s.client, "t", "bad")
            .await
            .status
            .unwrap_or_default();
        st.conditions.unwrap_or_default().into_iter().find(|c| {
            c.type_ == "ReplicaFailure"
                && c.status == "True"
                && c.reason.as_deref() == Some("FailedCreate")
                && c.message
                    .as_deref()
                    .is_some_and(|m| m.contains("schedulingGates"))
        })
    })
    .await;
    support::eventually(10, "FailedCreate event", || async {
        events(&s.client, "t").await.into_iter().find(|e| {
            e.reason.as_deref() == Some("FailedCreate")
                && e.type_.as_deref() == Some("Warning")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("Error creating: "))
        })
    })
    .await;
    assert!(live_pods(&s.client, "t").await.is_empty());
    // Fixed: the condition goes away.
    api.patch(
        "bad",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"spec": {"nodeName": null, "schedulingGates": null}}}}),
        ),
    )
    .await
    .unwrap();
    support::eventually(15, "condition cleared, 2 pods", || async {
        let st = rs_status(&s.client, "t", "bad")
            .await
            .status
            .unwrap_or_default();
        let clear = st
            .conditions
            .unwrap_or_default()
            .iter()
            .all(|c| c.type_ != "ReplicaFailure");
        (clear && st.replicas == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn available_replicas_wait_for_min_ready_seconds() {
    let s = support::server().await;
    namespace(&s.client, "t").await;
    start(&s);
    let api: Api<ReplicaSet> = Api::namespaced(s.client.clone(), "t");
    let mut r = rs("web", 1, "web");
    r.spec.as_mut().unwrap().min_ready_seconds = Some(2);
    api.create(&PostParams::default(), &r).await.unwrap();
    let pods = support::eventually(10, "1 pod", || async {
        let p = live_pods(&s.client, "t").await;
        (p.len() == 1).then_some(p)
    })
    .await;
    make_ready(&s.client, "t", &pods[0].name_any()).await;
    support::eventually(10, "ready", || async {
        let st = rs_status(&s.client, "t", "web")
            .await
            .status
            .unwrap_or_default();
        (st.ready_replicas == Some(1)).then_some(())
    })
    .await;
    let st = rs_status(&s.client, "t", "web")
        .await
        .status
        .unwrap_or_default();
    assert_eq!(
        st.available_replicas.unwrap_or(0),
        0,
        "available before minReadySeconds"
    );
    // Without any further event, the controller re-checks after the remaining time.
    support::eventually(6, "available", || async {
        let st = rs_status(&s.client, "t", "web")
            .await
            .status
            .unwrap_or_default();
        (st.available_replicas == Some(1)).then_some(())
    })
    .await;
    let _: BTreeMap<String, String> = BTreeMap::new();
}
