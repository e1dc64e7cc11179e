//! The scheduler against the real (in-process) API server.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;
use support::with_scheduler;

const GI: &str = "8Gi";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_pods_within_node_capacity_and_records_scheduled() {
    let s = with_scheduler(scheduler::Config::default()).await;
    for n in ["n1", "n2", "n3"] {
        s.node(n, json!({}), json!([]), "1", GI, 110).await;
    }
    for i in 0..3 {
        s.pod_requesting(&format!("p{i}"), "800m", "").await;
    }
    let mut nodes = HashSet::new();
    for i in 0..3 {
        nodes.insert(s.bound_node(&format!("p{i}")).await);
    }
    assert_eq!(nodes.len(), 3, "each node fits one 800m pod: {nodes:?}");
    let node = s.node_of("p0").await.unwrap();
    s.wait_event(
        "p0",
        "Scheduled",
        &format!("Successfully assigned default/p0 to {node}"),
    )
    .await;
    // A fourth pod fits nowhere.
    s.pod_requesting("p3", "800m", "").await;
    s.wait_event(
        "p3",
        "FailedScheduling",
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
    )
    .await;
    // Deleting a bound pod frees its node.
    s.delete_pod("p1").await;
    let freed = s.bound_node("p3").await;
    assert!(!freed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_scheduling_message_and_condition_match_upstream() {
    let s = with_scheduler(scheduler::Config::default()).await;
    s.node(
        "cp",
        json!({}),
        json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
        "64",
        GI,
        110,
    )
    .await;
    s.node("w1", json!({}), json!([]), "1", GI, 110).await;
    s.node("w2", json!({}), json!([]), "1", GI, 110).await;
    s.pod_requesting("big", "2", "").await;
    let msg = "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    s.wait_event("big", "FailedScheduling", msg).await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    let cond = support::eventually(10, "PodScheduled condition", || {
        let api = api.clone();
        async move {
            let p = api.get("big").await.ok()?;
            p.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled")
        }
    })
    .await;
    assert_eq!(cond.status, "False");
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(cond.message.as_deref(), Some(msg));
    assert!(s.node_of("big").await.is_none());
    // A node that fits moves the pod back to the active queue.
    s.node("w3", json!({}), json!([]), "4", GI, 110).await;
    assert_eq!(s.bound_node("big").await, "w3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_nodes_then_node_added() {
    let s = with_scheduler(scheduler::Config::default()).await;
    s.pod("lonely", json!({}), json!({})).await;
    s.wait_event(
        "lonely",
        "FailedScheduling",
        "no nodes available to schedule pods",
    )
    .await;
    s.node("n1", json!({}), json!([]), "1", GI, 110).await;
    assert_eq!(s.bound_node("lonely").await, "n1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_selector_affinity_taints_and_unschedulable() {
    let s = with_scheduler(scheduler::Config::default()).await;
    s.node("ssd", json!({"disk": "ssd"}), json!([]), "4", GI, 110)
        .await;
    s.node("hdd", json!({"disk": "hdd"}), json!([]), "4", GI, 110)
        .await;
    s.node(
        "gpu",
        json!({"disk": "ssd"}),
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
        "4",
        GI,
        110,
    )
    .await;
    s.pod("sel", json!({}), json!({"nodeSelector": {"disk": "ssd"}}))
        .await;
    assert_eq!(s.bound_node("sel").await, "ssd");
    s.pod(
        "tol",
        json!({}),
        json!({
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu"]}]}]
            }}}
        }),
    )
    .await;
    assert_eq!(s.bound_node("tol").await, "gpu");
    s.pod(
        "nowhere",
        json!({}),
        json!({"nodeSelector": {"disk": "nvme"}}),
    )
    .await;
    s.wait_event(
        "nowhere",
        "FailedScheduling",
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
    )
    .await;
    // A label change on a node retries the pod.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(s.client.clone());
    nodes
        .patch(
            "hdd",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                &json!({"metadata": {"labels": {"disk": "nvme"}}, "spec": {"unschedulable": true}}),
            ),
        )
        .await
        .unwrap();
    s.wait_event(
        "nowhere",
        "FailedScheduling",
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
    )
    .await;
    nodes
        .patch(
            "hdd",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"unschedulable": false}})),
        )
        .await
        .unwrap();
    assert_eq!(s.bound_node("nowhere").await, "hdd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_anti_affinity_and_topology_spread() {
    let s = with_scheduler(scheduler::Config::default()).await;
    for (n, z) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
        s.node(
            n,
            json!({"topology.kubernetes.io/zone": z}),
            json!([]),
            "8",
            GI,
            110,
        )
        .await;
    }
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}
    ]}}});
    for i in 0..3 {
        s.pod(&format!("db{i}"), json!({"app": "db"}), anti.clone())
            .await;
        // One at a time, so that each sees the previous one bound or assumed.
        s.bound_node(&format!("db{i}")).await;
    }
    let mut hosts = HashSet::new();
    for i in 0..3 {
        hosts.insert(s.node_of(&format!("db{i}")).await.unwrap());
    }
    assert_eq!(hosts.len(), 3);
    s.pod("db3", json!({"app": "db"}), anti.clone()).await;
    s.wait_event(
        "db3",
        "FailedScheduling",
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
    )
    .await;
    // Existing pods' anti-affinity rejects a pod they select, even without its own rules.
    s.pod("intruder", json!({"app": "db"}), json!({})).await;
    s.wait_event(
        "intruder",
        "FailedScheduling",
        "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
    )
    .await;

    // Zone spreading with maxSkew 1: web pods alternate between zones a and b.
    let spread = json!({"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}
    }]});
    let mut zones = Vec::new();
    for i in 0..4 {
        let name = format!("web{i}");
        s.pod(&name, json!({"app": "web"}), spread.clone()).await;
        let n = s.bound_node(&name).await;
        zones.push(if n == "b1" { "b" } else { "a" });
    }
    assert_eq!(zones.iter().filter(|z| **z == "a").count(), 2, "{zones:?}");
    assert_eq!(zones.iter().filter(|z| **z == "b").count(), 2, "{zones:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_schedulers_pods_are_left_alone_and_many_pods_bind() {
    let s = with_scheduler(scheduler::Config::default()).await;
    for i in 0..5 {
        s.node(&format!("n{i}"), json!({}), json!([]), "32", "64Gi", 110)
            .await;
    }
    s.pod("other", json!({}), json!({"schedulerName": "my-scheduler"}))
        .await;
    for i in 0..200 {
        s.pod_requesting(&format!("m{i}"), "100m", "100Mi").await;
    }
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    let per_node = support::eventually(30, "200 pods bound", || {
        let api = api.clone();
        async move {
            let pods = api.list(&Default::default()).await.ok()?;
            let bound: Vec<String> = pods
                .items
                .iter()
                .filter(|p| {
                    p.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with('m'))
                })
                .filter_map(|p| p.spec.as_ref()?.node_name.clone())
                .collect();
            (bound.len() == 200).then_some(bound)
        }
    })
    .await;
    // LeastAllocated + BalancedAllocation spread identical pods evenly.
    for i in 0..5 {
        let n = per_node.iter().filter(|x| **x == format!("n{i}")).count();
        assert!((30..=50).contains(&n), "node n{i} got {n} pods");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.node_of("other").await.is_none());
}
