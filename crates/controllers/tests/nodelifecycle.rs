//! The node lifecycle controller (with taint eviction) against the real (in-process) API
//! server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn config() -> controllers::Config {
    controllers::Config {
        node_monitor_period: Duration::from_millis(200),
        node_monitor_grace_period: Duration::from_secs(2),
        node_startup_grace_period: Duration::from_secs(2),
        ..Default::default()
    }
}

async fn ready_node(client: &kube::Client, name: &str) {
    let api: Api<Node> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
    post_ready(client, name).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                         "renewTime": micro_now()}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
}

fn micro_now() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

async fn post_ready(client: &kube::Client, name: &str) {
    let api: Api<Node> = Api::all(client.clone());
    let now = Timestamp::now().to_string();
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Strategic(json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
             "lastHeartbeatTime": now, "lastTransitionTime": now},
        ]}})),
    )
    .await
    .unwrap();
}

async fn renew(client: &kube::Client, name: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    leases
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"renewTime": micro_now()}})),
        )
        .await
        .unwrap();
}

async fn pod_on(client: &kube::Client, name: &str, node: &str, toleration_seconds: Option<i64>) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut tol = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"});
    if let Some(s) = toleration_seconds {
        tol["tolerationSeconds"] = json!(s);
    }
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node, "tolerations": [tol],
                     "containers": [{"name": "c", "image": "nginx"}]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": Timestamp::now().to_string()}
        ]}})),
    )
    .await
    .unwrap();
}

fn has_taint(node: &Node, key: &str, effect: &str) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.key == key && t.effect == effect))
}

fn ready_status(node: &Node) -> Option<(String, Option<String>)> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn unreachable_node_is_tainted_and_its_pods_evicted_after_toleration() {
    let s = support::server().await;
    ready_node(&s.client, "good").await;
    ready_node(&s.client, "bad").await;
    pod_on(&s.client, "short", "bad", Some(1)).await;
    pod_on(&s.client, "forever", "bad", None).await;
    pod_on(&s.client, "elsewhere", "good", Some(1)).await;
    // "good" keeps renewing its lease; "bad" stops.
    let c = s.client.clone();
    let stop = s.shutdown.clone();
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            renew(&c, "good").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    tokio::spawn(controllers::nodelifecycle::run(s.context(config())));

    let nodes: Api<Node> = Api::all(s.client.clone());
    let bad = support::eventually(10, "bad node Unknown and tainted", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("bad").await.unwrap();
            (ready_status(&n) == Some(("Unknown".into(), Some("NodeStatusUnknown".into())))
                && has_taint(&n, "node.kubernetes.io/unreachable", "NoExecute"))
            .then_some(n)
        }
    })
    .await;
    let tainted_at = std::time::Instant::now();
    let conds = bad.status.unwrap().conditions.unwrap();
    let mem = conds.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
    assert_eq!(mem.status, "Unknown");
    assert_eq!(
        mem.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    // DiskPressure was never posted.
    let disk = conds.iter().find(|c| c.type_ == "DiskPressure").unwrap();
    assert_eq!(disk.reason.as_deref(), Some("NodeStatusNeverUpdated"));
    let good = nodes.get("good").await.unwrap();
    assert_eq!(ready_status(&good).unwrap().0, "True");
    assert!(!has_taint(
        &good,
        "node.kubernetes.io/unreachable",
        "NoExecute"
    ));

    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    support::eventually(10, "NoSchedule unreachable taint", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("bad").await.unwrap();
            has_taint(&n, "node.kubernetes.io/unreachable", "NoSchedule").then_some(())
        }
    })
    .await;
    let short = support::eventually(10, "pod with tolerationSeconds 1 deleted", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("short").await.unwrap();
            p.metadata.deletion_timestamp.is_some().then_some(p)
        }
    })
    .await;
    let waited = tainted_at.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "deleted too early: {waited:?}"
    );
    let dt = short
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .unwrap();
    assert_eq!(dt.reason.as_deref(), Some("DeletionByTaintManager"));

    // The pod tolerating forever stays, but it is no longer Ready.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let forever = pods.get("forever").await.unwrap();
    assert!(forever.metadata.deletion_timestamp.is_none());
    let ready = forever
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False");
    // Pods on the healthy node are untouched.
    let elsewhere = pods.get("elsewhere").await.unwrap();
    assert!(elsewhere.metadata.deletion_timestamp.is_none());

    let events: Api<CoreEvent> = Api::namespaced(s.client.clone(), "default");
    support::eventually(10, "TaintManagerEviction event", || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("TaintManagerEviction")
                        && e.message.as_deref() == Some("Marking for deletion Pod default/short")
                })
        }
    })
    .await;

    // Back: the taints go away.
    renew(&s.client, "bad").await;
    post_ready(&s.client, "bad").await;
    support::eventually(10, "taints removed from the recovered node", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("bad").await.unwrap();
            (!has_taint(&n, "node.kubernetes.io/unreachable", "NoExecute")
                && !has_taint(&n, "node.kubernetes.io/unreachable", "NoSchedule"))
            .then_some(())
        }
    })
    .await;

    // Cordoning adds the unschedulable taint.
    nodes
        .patch(
            "good",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    support::eventually(10, "unschedulable taint", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("good").await.unwrap();
            has_taint(&n, "node.kubernetes.io/unschedulable", "NoSchedule").then_some(())
        }
    })
    .await;
}

/// Asserts that neither node gets the `NoExecute` unreachable taint and that the pod on `a`
/// is not evicted, once both nodes are Unknown.
async fn assert_no_eviction_when_both_down(s: &support::Server) {
    let nodes: Api<Node> = Api::all(s.client.clone());
    support::eventually(10, "both nodes Unknown", || {
        let nodes = nodes.clone();
        async move {
            let a = nodes.get("a").await.unwrap();
            let b = nodes.get("b").await.unwrap();
            (ready_status(&a).unwrap().0 == "Unknown" && ready_status(&b).unwrap().0 == "Unknown")
                .then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in ["a", "b"] {
        let node = nodes.get(n).await.unwrap();
        assert!(
            !has_taint(&node, "node.kubernetes.io/unreachable", "NoExecute"),
            "{n} tainted in full disruption"
        );
    }
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    assert!(
        pods.get("p")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
}

#[tokio::test]
async fn no_eviction_when_every_node_is_down() {
    let s = support::server().await;
    ready_node(&s.client, "a").await;
    ready_node(&s.client, "b").await;
    pod_on(&s.client, "p", "a", Some(1)).await;
    tokio::spawn(controllers::nodelifecycle::run(s.context(config())));
    assert_no_eviction_when_both_down(&s).await;
}

/// `a` goes down shortly before `b`, often one monitor pass before: the pass that sees `a`
/// Unknown (and queues its taint, the zone being still Normal) is then the one in which `b`
/// goes Unknown and the controller enters full disruption. Marking the many pods on `b` not
/// Ready makes that pass long, so the tainting pass (every 100 ms) writes `a`'s taint during
/// it, after the pass listed the nodes (before the fix, this test failed every time with "a
/// tainted in full disruption").
#[tokio::test]
async fn no_eviction_when_the_nodes_go_down_one_pass_apart() {
    let s = support::server().await;
    ready_node(&s.client, "a").await;
    ready_node(&s.client, "b").await;
    // `a` may be tainted for a moment while the zone is still Normal (`b` going down two passes
    // after `a`): tolerating it for 5 s, the pod is evicted only if the taint stays.
    pod_on(&s.client, "p", "a", Some(5)).await;
    for i in 0..40 {
        pod_on(&s.client, &format!("on-b-{i}"), "b", None).await;
    }
    tokio::spawn(controllers::nodelifecycle::run(s.context(config())));
    // Both heartbeat, then `a` stops, and `b` 150 ms later.
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        renew(&s.client, "a").await;
        renew(&s.client, "b").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a_stopped = tokio::time::Instant::now();
    while a_stopped.elapsed() < Duration::from_millis(150) {
        renew(&s.client, "b").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_no_eviction_when_both_down(&s).await;
}
