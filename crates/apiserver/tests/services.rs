#![allow(clippy::unwrap_used)]
//! Service allocation (ClusterIPs, NodePorts), update semantics and the bootstrap Services,
//! through the real router, watch cache and SQLite store.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use apiserver::bootstrap_services::{self, Settings};
use apiserver::server::router;
use apiserver::{ApiState, bootstrap};
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

mod support;

use support::{TOKEN, state_over};
const SVCS: &str = "/api/v1/namespaces/default/services";

struct Api {
    state: Arc<ApiState>,
    cancel: CancellationToken,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn api_at(dir: &Path) -> Api {
    let store = store::sqlite::SqliteStore::open(&dir.join("db"), Default::default())
        .await
        .unwrap();
    let state = state_over(Arc::new(store)).await;
    let cancel = state.shutdown.clone();
    bootstrap(&state).await.unwrap();
    Api { state, cancel }
}

impl Api {
    async fn req(
        &self,
        method: &str,
        path: &str,
        ct: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"));
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let resp = router(self.state.clone())
            .oneshot(b.body(body).unwrap())
            .await
            .unwrap();
        let code = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn post(&self, body: Value) -> (StatusCode, Value) {
        self.req("POST", SVCS, Some("application/json"), &body)
            .await
    }

    async fn put(&self, name: &str, body: Value) -> (StatusCode, Value) {
        self.req(
            "PUT",
            &format!("{SVCS}/{name}"),
            Some("application/json"),
            &body,
        )
        .await
    }

    async fn merge(&self, name: &str, body: Value) -> (StatusCode, Value) {
        self.req(
            "PATCH",
            &format!("{SVCS}/{name}"),
            Some("application/merge-patch+json"),
            &body,
        )
        .await
    }

    async fn apply(&self, name: &str, body: Value) -> (StatusCode, Value) {
        self.req(
            "PATCH",
            &format!("{SVCS}/{name}?fieldManager=kubectl"),
            Some("application/apply-patch+yaml"),
            &body,
        )
        .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.req("GET", path, None, &Value::Null).await
    }

    async fn delete(&self, path: &str) -> StatusCode {
        self.req("DELETE", path, None, &Value::Null).await.0
    }
}

fn svc(name: &str, type_: &str, ports: Value) -> Value {
    json!({"apiVersion":"v1","kind":"Service","metadata":{"name":name},
        "spec":{"type":type_,"selector":{"app":name},"ports":ports}})
}

fn node_ports(s: &Value) -> Vec<i64> {
    s["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodePort"].as_i64().unwrap_or(0))
        .collect()
}

fn cause(err: &Value) -> (String, String) {
    let c = &err["details"]["causes"][0];
    (
        c["field"].as_str().unwrap_or("").to_string(),
        c["message"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn node_ports_are_allocated_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let a = api_at(dir.path()).await;
    // Two ports, nothing requested: two distinct ports in the dynamic band (above 30085).
    let (code, s) = a
        .post(svc(
            "np",
            "NodePort",
            json!([{"name":"a","port":80},{"name":"b","port":81}]),
        ))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
    let nps = node_ports(&s);
    assert_ne!(nps[0], nps[1]);
    for p in &nps {
        assert!((30086..=32767).contains(p), "{p}");
    }
    assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
    // A requested port.
    let (code, s) = a
        .post(svc(
            "req",
            "NodePort",
            json!([{"port":80,"nodePort":30080}]),
        ))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
    assert_eq!(node_ports(&s), vec![30080]);
    // Taken by another Service.
    let (code, err) = a
        .post(svc(
            "dup",
            "NodePort",
            json!([{"port":80,"nodePort":30080}]),
        ))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(
        cause(&err),
        (
            "spec.ports[0].nodePort".to_string(),
            "Invalid value: 30080: provided port is already allocated".to_string()
        )
    );
    assert_eq!(
        err["message"],
        "Service \"dup\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    // Out of range.
    let (code, err) = a
        .post(svc(
            "out",
            "NodePort",
            json!([{"name":"x","port":80},{"name":"y","port":81,"nodePort":40000}]),
        ))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(
        cause(&err),
        (
            "spec.ports[1].nodePort".to_string(),
            "Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767".to_string()
        )
    );
    // The failed create released what it had taken: the 422 above allocated port x first.
    // TCP and UDP of one port number share a NodePort, requested or not.
    let dns = json!([{"name":"dns","port":53,"protocol":"UDP"},{"name":"dns-tcp","port":53,"protocol":"TCP"}]);
    let (code, s) = a.post(svc("shared", "NodePort", dns)).await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
    let nps = node_ports(&s);
    assert_eq!(nps[0], nps[1]);
    let dns = json!([{"name":"dns","port":53,"protocol":"UDP","nodePort":30053},{"name":"dns-tcp","port":53,"protocol":"TCP","nodePort":30053}]);
    let (code, s) = a.post(svc("shared2", "NodePort", dns)).await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
    assert_eq!(node_ports(&s), vec![30053, 30053]);
    // LoadBalancers get NodePorts unless allocateLoadBalancerNodePorts is false.
    let (code, s) = a
        .post(svc("lb", "LoadBalancer", json!([{"port":80}])))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
    assert_eq!(s["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_ne!(node_ports(&s)[0], 0);
    let mut no_np = svc("lb2", "LoadBalancer", json!([{"port":80}]));
    no_np["spec"]["allocateLoadBalancerNodePorts"] = json!(false);
    let (code, s) = a.post(no_np).await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
    assert_eq!(node_ports(&s), vec![0]);
    // externalTrafficPolicy Local gets a health check NodePort.
    let mut local = svc("local", "LoadBalancer", json!([{"port":80}]));
    local["spec"]["externalTrafficPolicy"] = json!("Local");
    let (code, s) = a.post(local).await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
    let hc = s["spec"]["healthCheckNodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&hc) && hc != node_ports(&s)[0]);
    // ClusterIP Services get none, and may not ask for one.
    let (_, s) = a.post(svc("cip", "ClusterIP", json!([{"port":80}]))).await;
    assert_eq!(node_ports(&s), vec![0]);
    let (code, _) = a
        .post(svc(
            "cip2",
            "ClusterIP",
            json!([{"port":80,"nodePort":30099}]),
        ))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    // Deleting a Service frees its NodePort.
    assert_eq!(a.delete(&format!("{SVCS}/req")).await, StatusCode::OK);
    let (code, s) = a
        .post(svc(
            "again",
            "NodePort",
            json!([{"port":80,"nodePort":30080}]),
        ))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
}

#[tokio::test]
async fn allocations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ip;
    {
        let a = api_at(dir.path()).await;
        let (code, s) = a
            .post(svc("np", "NodePort", json!([{"port":80,"nodePort":30080}])))
            .await;
        assert_eq!(code, StatusCode::CREATED, "{s}");
        ip = s["spec"]["clusterIP"].as_str().unwrap().to_string();
    }
    let a = api_at(dir.path()).await;
    let (code, err) = a
        .post(svc(
            "np2",
            "NodePort",
            json!([{"port":80,"nodePort":30080}]),
        ))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(
        cause(&err).1,
        "Invalid value: 30080: provided port is already allocated"
    );
    let mut same_ip = svc("ip2", "ClusterIP", json!([{"port":80}]));
    same_ip["spec"]["clusterIP"] = json!(ip);
    let (code, err) = a.post(same_ip.clone()).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("provided IP is already allocated")
    );
    assert_eq!(a.delete(&format!("{SVCS}/np")).await, StatusCode::OK);
    let (code, s) = a.post(same_ip).await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
}

#[tokio::test]
async fn updates_keep_allocated_values_and_follow_type_changes() {
    let dir = tempfile::tempdir().unwrap();
    let a = api_at(dir.path()).await;
    let manifest = svc(
        "web",
        "NodePort",
        json!([{"name":"http","port":80},{"name":"https","port":443}]),
    );
    let (code, first) = a.apply("web", manifest.clone()).await;
    assert_eq!(code, StatusCode::CREATED, "{first}");
    let ip = first["spec"]["clusterIP"].clone();
    let nps = node_ports(&first);
    assert!(nps.iter().all(|p| *p != 0));
    // Apply of the same manifest, and a PUT of it, change nothing allocated.
    let (code, second) = a.apply("web", manifest.clone()).await;
    assert_eq!(code, StatusCode::OK, "{second}");
    assert_eq!(second["spec"]["clusterIP"], ip);
    assert_eq!(node_ports(&second), nps);
    let (code, put) = a.put("web", manifest.clone()).await;
    assert_eq!(code, StatusCode::OK, "{put}");
    assert_eq!(put["spec"]["clusterIP"], ip);
    assert_eq!(node_ports(&put), nps);
    // A new port gets a NodePort; the others keep theirs (matched by name).
    let (code, added) = a
        .merge("web", json!({"spec":{"ports":[{"name":"https","port":443},{"name":"http","port":80},{"name":"metrics","port":9090}]}}))
        .await;
    assert_eq!(code, StatusCode::OK, "{added}");
    let nps2 = node_ports(&added);
    assert_eq!((nps2[0], nps2[1]), (nps[1], nps[0]));
    assert!(nps2[2] != 0 && !nps.contains(&nps2[2]));
    // Changing the ClusterIP is refused.
    let (code, err) = a
        .merge(
            "web",
            json!({"spec":{"clusterIP":"10.43.0.99","clusterIPs":["10.43.0.99"]}}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("may not change once set"),
        "{err}"
    );
    // `kubectl edit` to ClusterIP (the full object, NodePorts included): they are dropped.
    let (_, mut cur) = a.get(&format!("{SVCS}/web")).await;
    cur["spec"]["type"] = json!("ClusterIP");
    // Like upstream, externalTrafficPolicy must go too (it is not dropped for the client).
    let (code, err) = a.put("web", cur.clone()).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(cause(&err).0, "spec.externalTrafficPolicy");
    cur["spec"]
        .as_object_mut()
        .unwrap()
        .remove("externalTrafficPolicy");
    let (code, cip) = a.put("web", cur).await;
    assert_eq!(code, StatusCode::OK, "{cip}");
    assert_eq!(node_ports(&cip), vec![0, 0, 0]);
    assert_eq!(cip["spec"]["clusterIP"], ip);
    // Their ports are free again.
    let (code, s) = a
        .post(svc(
            "reuse",
            "NodePort",
            json!([{"port":80,"nodePort":nps[0]}]),
        ))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
    // Back to NodePort: allocated again.
    let (code, np) = a.merge("web", json!({"spec":{"type":"NodePort"}})).await;
    assert_eq!(code, StatusCode::OK, "{np}");
    assert!(node_ports(&np).iter().all(|p| *p != 0));
    // To ExternalName: clusterIP, families and NodePorts go.
    let (_, mut cur) = a.get(&format!("{SVCS}/web")).await;
    cur["spec"]["type"] = json!("ExternalName");
    cur["spec"]["externalName"] = json!("example.com");
    cur["spec"]
        .as_object_mut()
        .unwrap()
        .remove("externalTrafficPolicy");
    let (code, ext) = a.put("web", cur).await;
    assert_eq!(code, StatusCode::OK, "{ext}");
    for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        assert!(ext["spec"].get(f).is_none(), "{f}: {ext}");
    }
    assert_eq!(node_ports(&ext), vec![0, 0, 0]);
    // The old address is free: another Service may take it.
    let mut taker = svc("taker", "ClusterIP", json!([{"port":80}]));
    taker["spec"]["clusterIP"] = ip.clone();
    let (code, s) = a.post(taker).await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
    // From ExternalName back to ClusterIP: a new address.
    let (code, back) = a
        .merge(
            "web",
            json!({"spec":{"type":"ClusterIP","externalName":null}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{back}");
    let new_ip = back["spec"]["clusterIP"].as_str().unwrap();
    assert!(
        new_ip.starts_with("10.43.") && back["spec"]["clusterIP"] != ip,
        "{back}"
    );
    assert_eq!(back["spec"]["clusterIPs"], json!([new_ip]));
    assert_eq!(back["spec"]["ipFamilies"], json!(["IPv4"]));
}

#[tokio::test]
async fn bootstrap_services_are_created_and_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let a = api_at(dir.path()).await;
    let settings = Settings {
        advertise_address: "192.0.2.10".parse().unwrap(),
        https_port: 6444,
    };
    bootstrap_services::reconcile(&a.state, &settings)
        .await
        .unwrap();
    let (code, k) = a.get(&format!("{SVCS}/kubernetes")).await;
    assert_eq!(code, StatusCode::OK, "{k}");
    assert_eq!(k["spec"]["clusterIP"], "10.43.0.1");
    assert_eq!(k["spec"]["sessionAffinity"], "None");
    assert_eq!(
        k["spec"]["ports"],
        json!([{"name":"https","port":443,"protocol":"TCP","targetPort":6444}])
    );
    assert_eq!(
        k["metadata"]["labels"],
        json!({"component":"apiserver","provider":"kubernetes"})
    );
    assert!(k["spec"].get("selector").is_none());
    let (_, ep) = a
        .get("/api/v1/namespaces/default/endpoints/kubernetes")
        .await;
    assert_eq!(
        ep["subsets"],
        json!([{"addresses":[{"ip":"192.0.2.10"}],"ports":[{"name":"https","port":6444,"protocol":"TCP"}]}])
    );
    let slice_path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes";
    let (code, sl) = a.get(slice_path).await;
    assert_eq!(code, StatusCode::OK, "{sl}");
    assert_eq!(
        sl["metadata"]["labels"]["kubernetes.io/service-name"],
        "kubernetes"
    );
    assert_eq!(sl["addressType"], "IPv4");
    assert_eq!(sl["endpoints"][0]["addresses"], json!(["192.0.2.10"]));
    assert_eq!(sl["endpoints"][0]["conditions"]["ready"], true);
    assert_eq!(
        sl["ports"],
        json!([{"name":"https","port":6444,"protocol":"TCP"}])
    );
    let (code, dns) = a
        .get("/api/v1/namespaces/kube-system/services/kube-dns")
        .await;
    assert_eq!(code, StatusCode::OK, "{dns}");
    assert_eq!(dns["spec"]["clusterIP"], "10.43.0.10");
    assert!(dns["spec"].get("selector").is_none());
    assert_eq!(dns["metadata"]["labels"]["k8s-app"], "kube-dns");
    assert_eq!(dns["metadata"]["labels"]["kubernetes.io/name"], "KubeDNS");
    assert_eq!(
        dns["metadata"]["labels"]["kubernetes.io/cluster-service"],
        "true"
    );
    let ports: Vec<(String, i64, String)> = dns["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["port"].as_i64().unwrap(),
                p["protocol"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        vec![
            ("dns".into(), 53, "UDP".into()),
            ("dns-tcp".into(), 53, "TCP".into())
        ]
    );
    // A second pass changes nothing.
    let rv = k["metadata"]["resourceVersion"].clone();
    bootstrap_services::reconcile(&a.state, &settings)
        .await
        .unwrap();
    let (_, k2) = a.get(&format!("{SVCS}/kubernetes")).await;
    assert_eq!(k2["metadata"]["resourceVersion"], rv);
    // Deleted objects come back; a new advertise address is written.
    assert_eq!(
        a.delete(&format!("{SVCS}/kubernetes")).await,
        StatusCode::OK
    );
    assert_eq!(a.delete(slice_path).await, StatusCode::OK);
    assert_eq!(
        a.delete("/api/v1/namespaces/kube-system/services/kube-dns")
            .await,
        StatusCode::OK
    );
    let moved = Settings {
        advertise_address: "192.0.2.11".parse().unwrap(),
        ..settings
    };
    bootstrap_services::reconcile(&a.state, &moved)
        .await
        .unwrap();
    let (code, k) = a.get(&format!("{SVCS}/kubernetes")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(k["spec"]["clusterIP"], "10.43.0.1");
    let (code, dns) = a
        .get("/api/v1/namespaces/kube-system/services/kube-dns")
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(dns["spec"]["clusterIP"], "10.43.0.10");
    let (_, ep) = a
        .get("/api/v1/namespaces/default/endpoints/kubernetes")
        .await;
    assert_eq!(ep["subsets"][0]["addresses"], json!([{"ip":"192.0.2.11"}]));
    let (_, sl) = a.get(slice_path).await;
    assert_eq!(sl["endpoints"][0]["addresses"], json!(["192.0.2.11"]));
}

/// Dynamic allocation never hands out the static band, so the DNS address stays free.
#[tokio::test]
async fn dynamic_allocation_leaves_the_static_band_free() {
    let dir = tempfile::tempdir().unwrap();
    let a = api_at(dir.path()).await;
    let mut seen = HashSet::new();
    for i in 0..50 {
        let (code, s) = a
            .post(svc(&format!("s{i}"), "ClusterIP", json!([{"port":80}])))
            .await;
        assert_eq!(code, StatusCode::CREATED, "{s}");
        let ip: std::net::Ipv4Addr = s["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(
            u32::from(ip) > u32::from(std::net::Ipv4Addr::new(10, 43, 1, 0)),
            "{ip}"
        );
        assert!(seen.insert(ip));
    }
}

/// Creates 2,000 Services and prints the time (run with `--ignored --nocapture`).
#[tokio::test]
#[ignore = "timing"]
async fn many_services_timing() {
    let dir = tempfile::tempdir().unwrap();
    let a = api_at(dir.path()).await;
    let start = std::time::Instant::now();
    for i in 0..2000 {
        let (code, s) = a
            .post(svc(&format!("s{i}"), "NodePort", json!([{"port":80}])))
            .await;
        assert_eq!(code, StatusCode::CREATED, "{s}");
    }
    let total = start.elapsed();
    // What the previous approach paid per create at the end: a list of every Service from
    // the cache, parsed.
    let r = a.state.registry.get("", "v1", "services").unwrap().clone();
    let t = std::time::Instant::now();
    let (snap, _, _) = a.state.cacher.list(&r, &r.prefix(None), None, 0, &|_| true);
    let n: usize = snap
        .items
        .iter()
        .map(|o| apiserver::ipalloc::service_ips(&o.value()).len())
        .sum();
    println!(
        "2000 NodePort Services created in {total:?} ({:?} each); one full list+parse of {n} Services: {:?}",
        total / 2000,
        t.elapsed()
    );
}

/// With several servers on one store, each renews its identity Lease and the `kubernetes`
/// endpoints list every live server on the same port (upstream's lease endpoint reconciler).
#[tokio::test]
async fn kubernetes_endpoints_list_every_live_server() {
    let dir = tempfile::tempdir().unwrap();
    let a = api_at(dir.path()).await;
    let settings = Settings {
        advertise_address: "192.0.2.10".parse().unwrap(),
        https_port: 6444,
    };
    let leases = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
    let other = |name: &str, addr: &str, age_s: i64| {
        let renew = (chrono::Utc::now() - chrono::Duration::seconds(age_s))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        json!({"apiVersion":"coordination.k8s.io/v1","kind":"Lease",
            "metadata":{"name":name,
                "labels":{"apiserver.kubernetes.io/identity":"kube-apiserver"},
                "annotations":{"r8s.io/advertise-address":addr}},
            "spec":{"holderIdentity":name,"leaseDurationSeconds":3600,"renewTime":renew}})
    };
    for (name, addr, age) in [
        ("apiserver-live", "192.0.2.20:6444", 2),
        ("apiserver-stale", "192.0.2.30:6444", 120),
        ("apiserver-otherport", "192.0.2.40:7443", 2),
    ] {
        let (code, body) = a
            .req(
                "POST",
                leases,
                Some("application/json"),
                &other(name, addr, age),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
    bootstrap_services::reconcile(&a.state, &settings)
        .await
        .unwrap();
    // This server's own identity Lease.
    let own = bootstrap_services::identity_name(6444);
    let (code, lease) = a.get(&format!("{leases}/{own}")).await;
    assert_eq!(code, StatusCode::OK, "{lease}");
    assert_eq!(
        lease["metadata"]["labels"]["apiserver.kubernetes.io/identity"],
        "kube-apiserver"
    );
    assert_eq!(
        lease["metadata"]["annotations"]["r8s.io/advertise-address"],
        "192.0.2.10:6444"
    );
    let (_, ep) = a
        .get("/api/v1/namespaces/default/endpoints/kubernetes")
        .await;
    assert_eq!(
        ep["subsets"][0]["addresses"],
        json!([{"ip":"192.0.2.10"},{"ip":"192.0.2.20"}])
    );
    let (_, sl) = a
        .get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes")
        .await;
    let addrs: Vec<&Value> = sl["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["addresses"][0])
        .collect();
    assert_eq!(addrs, vec![&json!("192.0.2.10"), &json!("192.0.2.20")]);
    // The other server's Lease is gone: so is its address.
    assert_eq!(
        a.delete(&format!("{leases}/apiserver-live")).await,
        StatusCode::OK
    );
    bootstrap_services::reconcile(&a.state, &settings)
        .await
        .unwrap();
    let (_, ep) = a
        .get("/api/v1/namespaces/default/endpoints/kubernetes")
        .await;
    assert_eq!(ep["subsets"][0]["addresses"], json!([{"ip":"192.0.2.10"}]));
}
