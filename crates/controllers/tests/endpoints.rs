//! The Endpoints and EndpointSlice controllers against the real (in-process) API server. Pods
//! are given an IP and readiness by patching their status, as a kubelet would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{EndpointSubset, Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
}

async fn node(client: &kube::Client, name: &str, zone: Option<&str>) {
    let mut labels = json!({"kubernetes.io/hostname": name});
    if let Some(z) = zone {
        labels["topology.kubernetes.io/zone"] = json!(z);
    }
    Api::<Node>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
        )
        .await
        .unwrap();
}

async fn service(client: &kube::Client, ns: &str, spec: Value) -> Service {
    Api::<Service>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(spec).unwrap(),
        )
        .await
        .unwrap()
}

/// A pod on node `n1` with `labels` and named container ports.
async fn pod(client: &kube::Client, ns: &str, name: &str, labels: Value, ports: Value) {
    let mut p = json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx", "ports": ports}]}
    });
    if ports.as_array().is_some_and(Vec::is_empty) {
        p["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("ports");
    }
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &serde_json::from_value(p).unwrap())
        .await
        .unwrap();
}

/// What a kubelet reports: Running with `ip`, Ready or not.
async fn set_status(client: &kube::Client, ns: &str, name: &str, ip: &str, ready: bool) {
    Api::<Pod>::namespaced(client.clone(), ns)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "conditions": [{
                    "type": "Ready",
                    "status": if ready { "True" } else { "False" },
                    "lastTransitionTime": Timestamp::now().to_string()
                }]
            }})),
        )
        .await
        .unwrap();
}

async fn delete_pod(client: &kube::Client, ns: &str, name: &str, grace: Option<u32>) {
    let dp = DeleteParams {
        grace_period_seconds: grace,
        ..Default::default()
    };
    Api::<Pod>::namespaced(client.clone(), ns)
        .delete(name, &dp)
        .await
        .unwrap();
}

fn start(s: &support::Server) {
    tokio::spawn(controllers::endpoints::run(s.context(Default::default())));
    tokio::spawn(controllers::endpointslice::run(
        s.context(Default::default()),
    ));
}

async fn get_endpoints(client: &kube::Client, ns: &str, name: &str) -> Option<Endpoints> {
    Api::<Endpoints>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

/// (ready IPs, not-ready IPs, ports as (name, port)) of each subset.
type SubsetView = (Vec<String>, Vec<String>, Vec<(String, i32)>);

fn view(subsets: Option<&Vec<EndpointSubset>>) -> Vec<SubsetView> {
    subsets
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s.addresses.iter().flatten().map(|a| a.ip.clone()).collect(),
                s.not_ready_addresses
                    .iter()
                    .flatten()
                    .map(|a| a.ip.clone())
                    .collect(),
                s.ports
                    .iter()
                    .flatten()
                    .map(|p| (p.name.clone().unwrap_or_default(), p.port))
                    .collect(),
            )
        })
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Waits until the Endpoints `name` have exactly these subsets.
async fn wait_subsets(
    client: &kube::Client,
    ns: &str,
    name: &str,
    want: Vec<SubsetView>,
) -> Endpoints {
    let mut last = None;
    let what = format!("endpoints {ns}/{name} = {want:?}");
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(ep) = get_endpoints(client, ns, name).await {
                let v = view(ep.subsets.as_ref());
                if v == want {
                    return ep;
                }
                last = Some(v);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    r.unwrap_or_else(|_| panic!("timed out waiting for {what}; last {last:?}"))
}

async fn slices(client: &kube::Client, ns: &str, svc: &str) -> Vec<EndpointSlice> {
    Api::<EndpointSlice>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await
        .unwrap()
        .items
}

/// The endpoints of all slices of a service: pod name → (address, ready, serving, terminating).
fn slice_endpoints(slices: &[EndpointSlice]) -> BTreeMap<String, (String, bool, bool, bool)> {
    slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .map(|e| {
            let c = e.conditions.clone().unwrap_or_default();
            (
                e.target_ref
                    .as_ref()
                    .and_then(|r| r.name.clone())
                    .unwrap_or_default(),
                (
                    e.addresses.join(","),
                    c.ready.unwrap_or(false),
                    c.serving.unwrap_or(false),
                    c.terminating.unwrap_or(false),
                ),
            )
        })
        .collect()
}

fn web_service(name: &str, selector: Value, ports: Value) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"team": "a"}},
        "spec": {"selector": selector, "ports": ports}
    })
}

#[tokio::test]
async fn endpoints_list_ready_and_not_ready_pods() {
    let s = support::server().await;
    namespace(&s.client, "t").await;
    node(&s.client, "n1", None).await;
    start(&s);
    service(
        &s.client,
        "t",
        web_service(
            "web",
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": 8080}]),
        ),
    )
    .await;
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "web"), ("d", "other")] {
        pod(&s.client, "t", name, json!({"app": app}), json!([])).await;
    }
    set_status(&s.client, "t", "a", "10.1.0.1", true).await;
    set_status(&s.client, "t", "b", "10.1.0.2", false).await;
    set_status(&s.client, "t", "d", "10.1.0.4", true).await;
    // c has no IP; d is not selected.
    let ep = wait_subsets(
        &s.client,
        "t",
        "web",
        vec![(
            strings(&["10.1.0.1"]),
            strings(&["10.1.0.2"]),
            vec![("http".into(), 8080)],
        )],
    )
    .await;
    let subset = &ep.subsets.as_ref().unwrap()[0];
    let a = &subset.addresses.as_ref().unwrap()[0];
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    let r = a.target_ref.as_ref().unwrap();
    assert_eq!(
        (r.kind.as_deref(), r.name.as_deref(), r.namespace.as_deref()),
        (Some("Pod"), Some("a"), Some("t"))
    );
    assert!(r.uid.is_some());
    assert_eq!(
        subset.ports.as_ref().unwrap()[0].protocol.as_deref(),
        Some("TCP")
    );
    let labels = ep.metadata.labels.clone().unwrap();
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert_eq!(
        labels
            .get("endpoints.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpoint-controller")
    );
    assert!(!labels.contains_key("service.kubernetes.io/headless"));
    let annotations = ep.metadata.annotations.clone().unwrap();
    assert!(annotations.contains_key("endpoints.kubernetes.io/last-change-trigger-time"));
    assert!(!annotations.contains_key("endpoints.kubernetes.io/over-capacity"));

    // b becomes ready; c gets an IP but is not ready.
    set_status(&s.client, "t", "b", "10.1.0.2", true).await;
    set_status(&s.client, "t", "c", "10.1.0.3", false).await;
    let ep = wait_subsets(
        &s.client,
        "t",
        "web",
        vec![(
            strings(&["10.1.0.1", "10.1.0.2"]),
            strings(&["10.1.0.3"]),
            vec![("http".into(), 8080)],
        )],
    )
    .await;

    // A change that does not matter to endpoints writes nothing.
    Api::<Pod>::namespaced(s.client.clone(), "t")
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = get_endpoints(&s.client, "t", "web").await.unwrap();
    assert_eq!(
        again.metadata.resource_version,
        ep.metadata.resource_version
    );
}

#[tokio::test]
async fn named_target_ports_resolve_per_pod() {
    let s = support::server().await;
    namespace(&s.client, "t").await;
    node(&s.client, "n1", None).await;
    start(&s);
    service(
        &s.client,
        "t",
        web_service(
            "web",
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": "web"}]),
        ),
    )
    .await;
    pod(
        &s.client,
        "t",
        "a",
        json!({"app": "web"}),
        json!([{"name": "web", "containerPort": 8080}]),
    )
    .await;
    pod(
        &s.client,
        "t",
        "b",
        json!({"app": "web"}),
        json!([{"name": "web", "containerPort": 9090}]),
    )
    .await;
    pod(
        &s.client,
        "t",
        "c",
        json!({"app": "web"}),
        json!([{"name": "other", "containerPort": 7070}]),
    )
    .await;
    set_status(&s.client, "t", "a", "10.1.0.1", true).await;
    set_status(&s.client, "t", "b", "10.1.0.2", true).await;
    set_status(&s.client, "t", "c", "10.1.0.3", true).await;
    // c lacks the named port: it is in no subset.
    let mut got = None;
    for _ in 0..200 {
        if let Some(ep) = get_endpoints(&s.client, "t", "web").await {
            let mut v = view(ep.subsets.as_ref());
            v.sort();
            if v.len() == 2 {
                got = Some(v);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        got.expect("two subsets"),
        vec![
            (strings(&["10.1.0.1"]), vec![], vec![("http".into(), 8080)]),
            (strings(&["10.1.0.2"]), vec![], vec![("http".into(), 9090)]),
        ]
    );

    // The slices: one per distinct port set; as upstream, c (no such port) is listed in a
    // slice without ports.
    let sl = support::eventually(10, "three slices", || async {
        let v = slices(&s.client, "t", "web").await;
        (v.len() == 3 && v.iter().all(|s| s.endpoints.len() == 1)).then_some(v)
    })
    .await;
    let mut ports: Vec<(String, Vec<i32>)> = sl
        .iter()
        .map(|s| {
            (
                s.endpoints[0].addresses[0].clone(),
                s.ports
                    .iter()
                    .flatten()
                    .map(|p| p.port.unwrap_or_default())
                    .collect(),
            )
        })
        .collect();
    ports.sort();
    assert_eq!(
        ports,
        vec![
            ("10.1.0.1".into(), vec![8080]),
            ("10.1.0.2".into(), vec![9090]),
            ("10.1.0.3".into(), vec![]),
        ]
    );
}

#[tokio::test]
async fn deleted_pods_and_services_leave_endpoints_and_selectorless_ones_are_kept() {
    let s = support::server().await;
    namespace(&s.client, "t").await;
    node(&s.client, "n1", None).await;
    // Endpoints of a service without a selector, and leftover Endpoints without a service.
    service(
        &s.client,
        "t",
        json!({"metadata": {"name": "manual"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    let eps: Api<Endpoints> = Api::namespaced(s.client.clone(), "t");
    for name in ["manual", "leftover"] {
        eps.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": name},
                "subsets": [{"addresses": [{"ip": "192.168.0.1"}], "ports": [{"port": 80}]}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    }
    start(&s);
    service(
        &s.client,
        "t",
        web_service("web", json!({"app": "web"}), json!([{"port": 80}])),
    )
    .await;
    for (name, ip) in [("a", "10.1.0.1"), ("b", "10.1.0.2"), ("c", "10.1.0.3")] {
        pod(&s.client, "t", name, json!({"app": "web"}), json!([])).await;
        set_status(&s.client, "t", name, ip, true).await;
    }
    let port = vec![(String::new(), 80)];
    wait_subsets(
        &s.client,
        "t",
        "web",
        vec![(
            strings(&["10.1.0.1", "10.1.0.2", "10.1.0.3"]),
            vec![],
            port.clone(),
        )],
    )
    .await;
    support::eventually(10, "leftover endpoints deleted", || async {
        get_endpoints(&s.client, "t", "leftover")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    // Deleted at once, and gracefully (a bound pod stays, terminating).
    delete_pod(&s.client, "t", "a", Some(0)).await;
    delete_pod(&s.client, "t", "b", None).await;
    assert!(
        Api::<Pod>::namespaced(s.client.clone(), "t")
            .get("b")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    wait_subsets(
        &s.client,
        "t",
        "web",
        vec![(strings(&["10.1.0.3"]), vec![], port.clone())],
    )
    .await;
    // The terminating pod stays in the slices, not ready, not serving... serving is readiness.
    let sl = support::eventually(10, "slices without a", || async {
        let e = slice_endpoints(&slices(&s.client, "t", "web").await);
        (e.len() == 2 && e.get("b").is_some_and(|b| b.3)).then_some(e)
    })
    .await;
    assert_eq!(sl["b"], ("10.1.0.2".into(), false, true, true));
    assert_eq!(sl["c"], ("10.1.0.3".into(), true, true, false));

    Api::<Service>::namespaced(s.client.clone(), "t")
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    support::eventually(10, "endpoints of the deleted service gone", || async {
        get_endpoints(&s.client, "t", "web")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    // The selector-less service's Endpoints were left as they were.
    let manual = get_endpoints(&s.client, "t", "manual").await.unwrap();
    assert_eq!(
        view(manual.subsets.as_ref()),
        vec![(strings(&["192.168.0.1"]), vec![], vec![(String::new(), 80)])]
    );
    assert!(manual.metadata.labels.is_none());
}

#[tokio::test]
async fn publish_not_ready_addresses_and_headless_hostnames() {
    let s = support::server().await;
    namespace(&s.client, "t").await;
    node(&s.client, "n1", None).await;
    start(&s);
    service(
        &s.client,
        "t",
        json!({
            "metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": true, "selector": {"app": "db"}}
        }),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "t");
    for (name, host) in [("db-0", Some("db-0")), ("db-1", None)] {
        let mut p = json!({
            "metadata": {"name": name, "labels": {"app": "db"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "pg"}]}
        });
        if let Some(h) = host {
            p["spec"]["hostname"] = json!(h);
            p["spec"]["subdomain"] = json!("db");
        }
        pods.create(&PostParams::default(), &serde_json::from_value(p).unwrap())
            .await
            .unwrap();
    }
    set_status(&s.client, "t", "db-0", "10.1.0.1", false).await;
    set_status(&s.client, "t", "db-1", "10.1.0.2", true).await;
    // Not-ready pods are published as ready addresses; a headless service needs no ports.
    let ep = wait_subsets(
        &s.client,
        "t",
        "db",
        vec![(strings(&["10.1.0.1", "10.1.0.2"]), vec![], vec![])],
    )
    .await;
    let addrs = ep.subsets.as_ref().unwrap()[0].addresses.clone().unwrap();
    assert_eq!(addrs[0].hostname.as_deref(), Some("db-0"));
    assert_eq!(addrs[1].hostname, None);
    assert_eq!(
        ep.metadata
            .labels
            .as_ref()
            .unwrap()
            .get("service.kubernetes.io/headless")
            .map(String::as_str),
        Some("")
    );
    // Terminating pods stay published.
    delete_pod(&s.client, "t", "db-1", None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_subsets(
        &s.client,
        "t",
        "db",
        vec![(strings(&["10.1.0.1", "10.1.0.2"]), vec![], vec![])],
    )
    .await;
    let sl = support::eventually(10, "slice of the headless service", || async {
        let v = slices(&s.client, "t", "db").await;
        let e = slice_endpoints(&v);
        (e.len() == 2 && e["db-1"].3).then_some(v)
    })
    .await;
    let e = slice_endpoints(&sl);
    // publishNotReadyAddresses: ready whatever the pod says.
    assert_eq!(e["db-0"], ("10.1.0.1".into(), true, false, false));
    assert_eq!(e["db-1"], ("10.1.0.2".into(), true, true, true));
    assert_eq!(
        sl[0]
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .get("service.kubernetes.io/headless")
            .map(String::as_str),
        Some("")
    );
    let host: BTreeSet<Option<String>> =
        sl[0].endpoints.iter().map(|e| e.hostname.clone()).collect();
    assert!(host.contains(&Some("db-0".into())));
}

#[tokio::test]
async fn endpoint_slices_carry_conditions_labels_owner_zone_and_ports() {
    let s = support::server().await;
    namespace(&s.client, "t").await;
    node(&s.client, "n1", Some("zone-a")).await;
    start(&s);
    let svc = service(
        &s.client,
        "t",
        web_service(
            "web",
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": 8080, "appProtocol": "http"}]),
        ),
    )
    .await;
    // No pods yet: one empty placeholder slice.
    let placeholder = support::eventually(10, "placeholder slice", || async {
        let v = slices(&s.client, "t", "web").await;
        (v.len() == 1).then(|| v[0].clone())
    })
    .await;
    assert!(placeholder.endpoints.is_empty());
    assert!(placeholder.ports.as_ref().is_none_or(Vec::is_empty));

    for (name, ip, ready) in [("a", "10.1.0.1", true), ("b", "10.1.0.2", false)] {
        pod(&s.client, "t", name, json!({"app": "web"}), json!([])).await;
        set_status(&s.client, "t", name, ip, ready).await;
    }
    let sl = support::eventually(10, "slice with two endpoints", || async {
        let v = slices(&s.client, "t", "web").await;
        (v.len() == 1 && v[0].endpoints.len() == 2).then_some(v)
    })
    .await;
    let slice = &sl[0];
    // The placeholder was updated, not replaced.
    assert_eq!(slice.metadata.name, placeholder.metadata.name);
    assert!(slice.metadata.name.as_deref().unwrap().starts_with("web-"));
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/service-name"], "web");
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(labels["team"], "a");
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        (
            "Service",
            "web",
            svc.metadata.uid.as_deref().unwrap(),
            Some(true),
            Some(true)
        )
    );
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!(
        (
            port.name.as_deref(),
            port.port,
            port.protocol.as_deref(),
            port.app_protocol.as_deref()
        ),
        (Some("http"), Some(8080), Some("TCP"), Some("http"))
    );
    let e = slice_endpoints(&sl);
    assert_eq!(e["a"], ("10.1.0.1".into(), true, true, false));
    assert_eq!(e["b"], ("10.1.0.2".into(), false, false, false));
    for ep in &slice.endpoints {
        assert_eq!(ep.node_name.as_deref(), Some("n1"));
        assert_eq!(ep.zone.as_deref(), Some("zone-a"));
    }
    assert!(
        slice
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key("endpoints.kubernetes.io/last-change-trigger-time")
    );

    // Readiness changes update the slice in place; an unrelated change writes nothing.
    set_status(&s.client, "t", "b", "10.1.0.2", true).await;
    let sl = support::eventually(10, "b ready", || async {
        let v = slices(&s.client, "t", "web").await;
        (v.len() == 1 && slice_endpoints(&v)["b"].1).then_some(v)
    })
    .await;
    assert_eq!(sl[0].metadata.name, placeholder.metadata.name);
    Api::<Pod>::namespaced(s.client.clone(), "t")
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = slices(&s.client, "t", "web").await;
    assert_eq!(
        again[0].metadata.resource_version,
        sl[0].metadata.resource_version
    );

    // A slice deleted by someone else is put back.
    Api::<EndpointSlice>::namespaced(s.client.clone(), "t")
        .delete(
            sl[0].metadata.name.as_deref().unwrap(),
            &DeleteParams::default(),
        )
        .await
        .unwrap();
    support::eventually(10, "slice recreated", || async {
        let v = slices(&s.client, "t", "web").await;
        (v.len() == 1 && v[0].endpoints.len() == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn more_than_a_hundred_pods_split_into_slices_updated_in_place() {
    let s = support::server().await;
    namespace(&s.client, "t").await;
    node(&s.client, "n1", None).await;
    start(&s);
    service(
        &s.client,
        "t",
        web_service("web", json!({"app": "web"}), json!([{"port": 80}])),
    )
    .await;
    let n = 230;
    let client = s.client.clone();
    futures::future::join_all((0..n).map(|i| {
        let client = client.clone();
        async move {
            let name = format!("p{i}");
            pod(&client, "t", &name, json!({"app": "web"}), json!([])).await;
            set_status(
                &client,
                "t",
                &name,
                &format!("10.1.{}.{}", i / 200, i % 200 + 1),
                true,
            )
            .await;
        }
    }))
    .await;
    let sl = support::eventually(20, "230 endpoints in slices", || async {
        let v = slices(&s.client, "t", "web").await;
        (slice_endpoints(&v).len() == n).then_some(v)
    })
    .await;
    assert_eq!(sl.len(), 3, "230 endpoints need 3 slices of at most 100");
    assert!(sl.iter().all(|s| s.endpoints.len() <= 100));
    let names: BTreeSet<String> = sl.iter().filter_map(|s| s.metadata.name.clone()).collect();

    // Removing pods updates the slices they were in; none is recreated.
    let client = s.client.clone();
    futures::future::join_all((0..50).map(|i| {
        let client = client.clone();
        async move { delete_pod(&client, "t", &format!("p{i}"), Some(0)).await }
    }))
    .await;
    let sl = support::eventually(20, "180 endpoints", || async {
        let v = slices(&s.client, "t", "web").await;
        (slice_endpoints(&v).len() == n - 50).then_some(v)
    })
    .await;
    let after: BTreeSet<String> = sl.iter().filter_map(|s| s.metadata.name.clone()).collect();
    assert!(after.is_subset(&names), "{after:?} not within {names:?}");
    assert!(sl.iter().all(|s| s.endpoints.len() <= 100));
    // The Endpoints list them all too.
    let ep = get_endpoints(&s.client, "t", "web").await.unwrap();
    let count: usize = ep
        .subsets
        .iter()
        .flatten()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum();
    assert_eq!(count, n - 50);
}

#[tokio::test]
async fn selector_change_moves_endpoints_and_slices() {
    let s = support::server().await;
    namespace(&s.client, "t").await;
    node(&s.client, "n1", None).await;
    start(&s);
    service(
        &s.client,
        "t",
        web_service("web", json!({"app": "blue"}), json!([{"port": 80}])),
    )
    .await;
    for (name, app, ip) in [("b1", "blue", "10.1.0.1"), ("g1", "green", "10.1.0.2")] {
        pod(&s.client, "t", name, json!({"app": app}), json!([])).await;
        set_status(&s.client, "t", name, ip, true).await;
    }
    let port = vec![(String::new(), 80)];
    wait_subsets(
        &s.client,
        "t",
        "web",
        vec![(strings(&["10.1.0.1"]), vec![], port.clone())],
    )
    .await;
    Api::<Service>::namespaced(s.client.clone(), "t")
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {"app": "green"}}})),
        )
        .await
        .unwrap();
    wait_subsets(
        &s.client,
        "t",
        "web",
        vec![(strings(&["10.1.0.2"]), vec![], port.clone())],
    )
    .await;
    support::eventually(10, "slices follow the selector", || async {
        let e = slice_endpoints(&slices(&s.client, "t", "web").await);
        (e.keys().cloned().collect::<Vec<_>>() == ["g1"]).then_some(())
    })
    .await;
    // A pod relabelled into the selector joins.
    Api::<Pod>::namespaced(s.client.clone(), "t")
        .patch(
            "b1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "green"}}})),
        )
        .await
        .unwrap();
    wait_subsets(
        &s.client,
        "t",
        "web",
        vec![(strings(&["10.1.0.1", "10.1.0.2"]), vec![], port)],
    )
    .await;
}
