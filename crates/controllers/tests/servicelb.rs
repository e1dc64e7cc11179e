//! The service-lb-controller against the real (in-process) API server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::{Event as CoreEvent, Node, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn node(client: &kube::Client, name: &str, ready: bool, addrs: Value) {
    let api: Api<Node> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
    set_node_status(client, name, ready, addrs).await;
}

async fn set_node_status(client: &kube::Client, name: &str, ready: bool, addrs: Value) {
    let api: Api<Node> = Api::all(client.clone());
    let status = json!({"status": {
        "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
            "reason": "KubeletReady", "lastHeartbeatTime": "2026-01-01T00:00:00Z",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "addresses": addrs,
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

fn ingress_ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| {
            i.iter()
                .map(|i| {
                    assert_eq!(i.ip_mode.as_deref(), Some("VIP"));
                    i.ip.clone().unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_ingress(api: &Api<Service>, name: &str, want: &[&str]) {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    support::eventually(10, &format!("ingress of {name} = {want:?}"), || {
        let api = api.clone();
        let want = want.clone();
        async move {
            let s = api.get(name).await.unwrap();
            (ingress_ips(&s) == want).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn load_balancer_ingress_follows_ready_nodes() {
    let s = support::server().await;
    node(
        &s.client,
        "n1",
        true,
        json!([{"type": "InternalIP", "address": "10.0.0.12"}, {"type": "Hostname", "address": "n1"}]),
    )
    .await;
    node(
        &s.client,
        "n2",
        false,
        json!([{"type": "InternalIP", "address": "10.0.0.9"}]),
    )
    .await;
    tokio::spawn(controllers::servicelb::run(
        s.context(controllers::Config::default()),
    ));
    let api: Api<Service> = Api::namespaced(s.client.clone(), "default");
    let lb: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    api.create(&PostParams::default(), &lb).await.unwrap();
    let classed: Service = serde_json::from_value(json!({
        "metadata": {"name": "other"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/lb",
            "selector": {"app": "web"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    api.create(&PostParams::default(), &classed).await.unwrap();
    wait_ingress(&api, "web", &["10.0.0.12"]).await;
    // n2 becomes Ready, with an ExternalIP: sorted numerically.
    set_node_status(
        &s.client,
        "n2",
        true,
        json!([{"type": "InternalIP", "address": "10.0.0.9"}, {"type": "ExternalIP", "address": "203.0.113.7"}]),
    )
    .await;
    wait_ingress(&api, "web", &["10.0.0.9", "10.0.0.12", "203.0.113.7"]).await;
    // A cordoned node leaves.
    let nodes: Api<Node> = Api::all(s.client.clone());
    nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    wait_ingress(&api, "web", &["10.0.0.9", "203.0.113.7"]).await;
    // Services of another class are not touched.
    assert!(ingress_ips(&api.get("other").await.unwrap()).is_empty());
    // Events like upstream's service controller.
    let events: Api<CoreEvent> = Api::namespaced(s.client.clone(), "default");
    support::eventually(10, "EnsuredLoadBalancer event", || {
        let events = events.clone();
        async move {
            let l = events.list(&ListParams::default()).await.unwrap();
            let reasons: Vec<String> = l
                .items
                .iter()
                .filter(|e| e.involved_object.name.as_deref() == Some("web"))
                .filter_map(|e| e.reason.clone())
                .collect();
            (reasons.iter().any(|r| r == "EnsuringLoadBalancer")
                && reasons.iter().any(|r| r == "EnsuredLoadBalancer"))
            .then_some(())
        }
    })
    .await;
    // No longer a LoadBalancer: the ingress is cleared.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": null}})),
    )
    .await
    .unwrap();
    wait_ingress(&api, "web", &[]).await;
    let svc = api.get("web").await.unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert!(spec.allocate_load_balancer_node_ports.is_none());
    assert!(spec.ports.unwrap()[0].node_port.is_none());
}
