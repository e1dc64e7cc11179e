//! The ServiceAccount, node IPAM and pod GC controllers against the real (in-process) API
//! server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
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

async fn node(client: &kube::Client, name: &str) -> Node {
    let api: Api<Node> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap()
}

fn config() -> controllers::Config {
    controllers::Config::default()
}

#[tokio::test]
async fn default_service_account_is_created_and_recreated() {
    let s = support::server().await;
    namespace(&s.client, "sa1").await;
    tokio::spawn(controllers::serviceaccount::run(s.context(config())));
    let api: Api<ServiceAccount> = Api::namespaced(s.client.clone(), "sa1");
    let first = support::eventually(10, "default service account", || {
        let api = api.clone();
        async move { api.get_opt("default").await.unwrap() }
    })
    .await;
    // A namespace created later gets one too.
    namespace(&s.client, "sa2").await;
    let api2: Api<ServiceAccount> = Api::namespaced(s.client.clone(), "sa2");
    support::eventually(10, "default service account in sa2", || {
        let api = api2.clone();
        async move { api.get_opt("default").await.unwrap() }
    })
    .await;
    api.delete("default", &DeleteParams::default())
        .await
        .unwrap();
    support::eventually(10, "re-created default service account", || {
        let api = api.clone();
        let old = first.metadata.uid.clone();
        async move {
            api.get_opt("default")
                .await
                .unwrap()
                .filter(|sa| sa.metadata.uid != old)
        }
    })
    .await;
}

#[tokio::test]
async fn nodes_get_distinct_pod_cidrs_recovered_at_start_and_released() {
    let s = support::server().await;
    let api: Api<Node> = Api::all(s.client.clone());
    // A node that already has a subnet before the controller starts keeps it and it is not
    // handed out again.
    let pre: Node = serde_json::from_value(json!({
        "metadata": {"name": "pre"},
        "spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &pre).await.unwrap();
    for i in 0..3 {
        node(&s.client, &format!("n{i}")).await;
    }
    let mut cfg = config();
    cfg.cluster_cidr = "10.42.0.0/22".into(); // 4 subnets of /24
    tokio::spawn(controllers::nodeipam::run(s.context(cfg)));
    let cidrs = support::eventually(10, "pod CIDRs on every node", || {
        let api = api.clone();
        async move {
            let nodes = api.list(&ListParams::default()).await.unwrap().items;
            let mut out = Vec::new();
            for n in &nodes {
                let spec = n.spec.clone()?;
                let c = spec.pod_cidr?;
                assert_eq!(spec.pod_cidrs.as_deref(), Some(&[c.clone()][..]));
                out.push(c);
            }
            Some(out)
        }
    })
    .await;
    let distinct: HashSet<_> = cidrs.iter().cloned().collect();
    assert_eq!(distinct.len(), 4, "{cidrs:?}");
    assert!(distinct.contains("10.42.0.0/24"));
    let pre = api.get("pre").await.unwrap();
    assert_eq!(pre.spec.unwrap().pod_cidr.as_deref(), Some("10.42.0.0/24"));

    // Exhausted: a fifth node gets an event, no CIDR, and is retried with back-off (5 ms
    // doubling): soon several times, as the event's count shows.
    node(&s.client, "n-extra").await;
    let events: Api<CoreEvent> = Api::namespaced(s.client.clone(), "default");
    support::eventually(10, "CIDRNotAvailable event, repeated", || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("CIDRNotAvailable")
                        && e.involved_object.name.as_deref() == Some("n-extra")
                        && e.count.unwrap_or(1) >= 3
                })
        }
    })
    .await;
    let extra = api.get("n-extra").await.unwrap();
    assert!(extra.spec.and_then(|s| s.pod_cidr).is_none());
    // Deleting a node frees its subnet; the waiting node gets it at a retry.
    let n1 = api.get("n1").await.unwrap();
    let freed = n1.spec.unwrap().pod_cidr.unwrap();
    api.delete("n1", &DeleteParams::default()).await.unwrap();
    let got = support::eventually(20, "n-extra pod CIDR", || {
        let api = api.clone();
        async move { api.get("n-extra").await.unwrap().spec?.pod_cidr }
    })
    .await;
    assert_eq!(got, freed);
}

#[tokio::test]
async fn pods_of_deleted_nodes_and_excess_terminated_pods_are_collected() {
    let s = support::server().await;
    node(&s.client, "alive").await;
    node(&s.client, "doomed").await;
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    let mk = |name: &str, node: &str| {
        let mut spec = json!({"containers": [{"name": "c", "image": "nginx"}]});
        if !node.is_empty() {
            spec["nodeName"] = json!(node);
        }
        serde_json::from_value::<Pod>(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    };
    pods.create(&PostParams::default(), &mk("on-doomed", "doomed"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &mk("on-alive", "alive"))
        .await
        .unwrap();
    // Terminated pods, one second apart (creation timestamps have seconds).
    for i in 0..3 {
        pods.create(&PostParams::default(), &mk(&format!("done-{i}"), ""))
            .await
            .unwrap();
        pods.patch_status(
            &format!("done-{i}"),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1050)).await;
    }
    let nodes: Api<Node> = Api::all(s.client.clone());
    nodes
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let mut cfg = config();
    cfg.terminated_pod_gc_threshold = 1;
    let started = std::time::Instant::now();
    tokio::spawn(controllers::podgc::run_with(
        s.context(cfg),
        controllers::podgc::Timing {
            check_period: Duration::from_millis(200),
            quarantine: Duration::from_secs(1),
        },
    ));
    support::eventually(10, "oldest terminated pods deleted", || {
        let pods = pods.clone();
        async move {
            (pods.get_opt("done-0").await.unwrap().is_none()
                && pods.get_opt("done-1").await.unwrap().is_none())
            .then_some(())
        }
    })
    .await;
    assert!(pods.get_opt("done-2").await.unwrap().is_some());
    support::eventually(10, "pod of the deleted node deleted", || {
        let pods = pods.clone();
        async move {
            pods.get_opt("on-doomed")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "orphaned pods wait for the quarantine"
    );
    let alive = pods.get("on-alive").await.unwrap();
    assert!(alive.metadata.deletion_timestamp.is_none());
}
