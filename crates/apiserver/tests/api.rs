#![allow(clippy::unwrap_used)]
//! In-process API tests: the real router, registry, watch cache and SQLite store, driven with
//! HTTP requests through `tower::ServiceExt::oneshot` (no TLS).

use std::sync::Arc;
use std::time::Duration;

use apiserver::server::router;
use apiserver::{ApiState, bootstrap};
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

mod support;

use support::{TOKEN, state_over};

struct Api {
    state: Arc<ApiState>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = store::sqlite::SqliteStore::open(&dir.path().join("db"), Default::default())
        .await
        .unwrap();
    let state = state_over(Arc::new(store)).await;
    bootstrap(&state).await.unwrap();
    state.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    Api { state, _dir: dir }
}

impl Api {
    async fn req(
        &self,
        method: &str,
        path: &str,
        ct: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let (code, bytes) = self.raw(method, path, ct, None, body).await;
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (code, v)
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        ct: Option<&str>,
        accept: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"));
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        if let Some(a) = accept {
            b = b.header("accept", a);
        }
        let resp = router(self.state.clone())
            .oneshot(b.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let code = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (code, bytes)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.req("GET", path, None, vec![]).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(
            "POST",
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(
            "PUT",
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    async fn patch(&self, path: &str, ct: &str, body: Value) -> (StatusCode, Value) {
        self.req("PATCH", path, Some(ct), body.to_string().into_bytes())
            .await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.req("DELETE", path, None, vec![]).await
    }
}

fn cm(name: &str) -> Value {
    json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"labels":{"app":"web"}},"data":{"k":"v"}})
}

#[tokio::test]
async fn unauthenticated_requests_get_401_but_health_is_public() {
    let a = api().await;
    let resp = router(a.state.clone())
        .oneshot(
            Request::get("/api/v1/namespaces")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = router(a.state.clone())
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn crud_with_conflicts_and_status_errors() {
    let a = api().await;
    let (code, created) = a
        .post("/api/v1/namespaces/default/configmaps", cm("a"))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(created["metadata"]["uid"].is_string());
    assert!(created["metadata"]["creationTimestamp"].is_string());

    let (code, err) = a
        .post("/api/v1/namespaces/default/configmaps", cm("a"))
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(err["reason"], "AlreadyExists");
    assert_eq!(err["message"], "configmaps \"a\" already exists");

    let (code, got) = a.get("/api/v1/namespaces/default/configmaps/a").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got["data"]["k"], "v");
    assert_eq!(got["metadata"]["resourceVersion"], rv.as_str());

    // Update with the current RV succeeds; with a stale one it conflicts.
    let mut upd = got.clone();
    upd["data"]["k"] = json!("v2");
    let (code, updated) = a
        .put("/api/v1/namespaces/default/configmaps/a", upd.clone())
        .await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_ne!(updated["metadata"]["resourceVersion"], rv.as_str());
    let (code, err) = a.put("/api/v1/namespaces/default/configmaps/a", upd).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(err["reason"], "Conflict");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("Operation cannot be fulfilled on configmaps \"a\"")
    );

    // PUT without resourceVersion is unconditional (helm relies on it).
    let mut unconditional = cm("a");
    unconditional["data"]["k"] = json!("v3");
    let (code, _) = a
        .put("/api/v1/namespaces/default/configmaps/a", unconditional)
        .await;
    assert_eq!(code, StatusCode::OK);

    let (code, err) = a
        .get("/apis/apps/v1/namespaces/default/deployments/nope")
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(err["message"], "deployments.apps \"nope\" not found");
    assert_eq!(err["details"]["group"], "apps");

    let (code, st) = a.delete("/api/v1/namespaces/default/configmaps/a").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(st["status"], "Success");
    assert_eq!(st["details"]["kind"], "configmaps");
    let (code, _) = a.get("/api/v1/namespaces/default/configmaps/a").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_input_is_rejected_and_nothing_is_stored() {
    let a = api().await;
    let (code, err) = a
        .req(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some("application/json"),
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{err}");
    let big = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":"x".repeat(3 * 1024 * 1024 + 10)}});
    let (code, err) = a.post("/api/v1/namespaces/default/configmaps", big).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
    let (code, _) = a.get("/api/v1/namespaces/default/widgets").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, err) = a
        .post("/api/v1/namespaces/missing/configmaps", cm("x"))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(err["message"], "namespaces \"missing\" not found");
    let mut unknown = cm("strict");
    unknown["bogusField"] = json!(1);
    let (code, err) = a
        .req(
            "POST",
            "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
            Some("application/json"),
            unknown.to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("strict decoding error: unknown field \"bogusField\""),
        "{err}"
    );
    let (code, err) = a
        .post(
            "/api/v1/namespaces/default/configmaps",
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{}}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["details"]["causes"][0]["field"], "metadata.name");
    let (code, list) = a.get("/api/v1/namespaces/default/configmaps").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
}

#[tokio::test]
async fn list_paging_and_selectors() {
    let a = api().await;
    for i in 0..5 {
        let mut c = cm(&format!("c{i}"));
        if i % 2 == 0 {
            c["metadata"]["labels"]["tier"] = json!("front");
        }
        assert_eq!(
            a.post("/api/v1/namespaces/default/configmaps", c).await.0,
            StatusCode::CREATED
        );
    }
    let (_, page1) = a.get("/api/v1/namespaces/default/configmaps?limit=2").await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    assert_eq!(page1["metadata"]["remainingItemCount"], 3);
    let cont = page1["metadata"]["continue"].as_str().unwrap().to_string();
    // A write between pages does not change what the continuation sees.
    a.post("/api/v1/namespaces/default/configmaps", cm("c9"))
        .await;
    let (_, page2) = a
        .get(&format!(
            "/api/v1/namespaces/default/configmaps?limit=2&continue={cont}"
        ))
        .await;
    let names: Vec<&str> = page2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["c2", "c3"]);
    assert_eq!(
        page2["metadata"]["resourceVersion"],
        page1["metadata"]["resourceVersion"]
    );

    let (_, sel) = a
        .get("/api/v1/namespaces/default/configmaps?labelSelector=tier%3Dfront")
        .await;
    assert_eq!(sel["items"].as_array().unwrap().len(), 3);
    let (_, sel) = a
        .get("/api/v1/namespaces/default/configmaps?labelSelector=tier!%3Dfront")
        .await;
    assert_eq!(sel["items"].as_array().unwrap().len(), 3);
    let (_, sel) = a
        .get("/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dc1")
        .await;
    assert_eq!(sel["items"].as_array().unwrap().len(), 1);
    let (code, err) = a
        .get("/api/v1/namespaces/default/pods?fieldSelector=spec.bogus%3Dx")
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(err["message"], "field label not supported: spec.bogus");
    let (_, all) = a.get("/api/v1/configmaps").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn watch_from_revision_and_watchlist() {
    let a = api().await;
    let (_, c) = a
        .post("/api/v1/namespaces/default/configmaps", cm("w1"))
        .await;
    let rv = c["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    a.post("/api/v1/namespaces/default/configmaps", cm("w2"))
        .await;
    a.delete("/api/v1/namespaces/default/configmaps/w1").await;
    let (code, body) = a
        .raw("GET", &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1"), None, None, vec![])
        .await;
    assert_eq!(code, StatusCode::OK);
    let events: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["ADDED", "DELETED"]);
    assert_eq!(events[0]["object"]["metadata"]["name"], "w2");

    let (code, body) = a
        .raw("GET", "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1", None, None, vec![])
        .await;
    assert_eq!(code, StatusCode::OK);
    let events: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    let (code, err) = a
        .get("/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true")
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
}

#[tokio::test]
async fn finalizers_delay_deletion_until_removed() {
    let a = api().await;
    let mut c = cm("fin");
    c["metadata"]["finalizers"] = json!(["example.com/hold"]);
    a.post("/api/v1/namespaces/default/configmaps", c).await;
    let (code, obj) = a.delete("/api/v1/namespaces/default/configmaps/fin").await;
    assert_eq!(code, StatusCode::OK);
    assert!(obj["metadata"]["deletionTimestamp"].is_string(), "{obj}");
    let (code, _) = a.get("/api/v1/namespaces/default/configmaps/fin").await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = a
        .patch(
            "/api/v1/namespaces/default/configmaps/fin",
            "application/merge-patch+json",
            json!({"metadata":{"finalizers":null}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = a.get("/api/v1/namespaces/default/configmaps/fin").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let a = api().await;
    let d = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":1,"selector":{"matchLabels":{"app":"d"}},"template":{"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}},"status":{"replicas":9}});
    let (code, created) = a
        .post("/apis/apps/v1/namespaces/default/deployments", d)
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    let (_, s) = a
        .patch(
            "/apis/apps/v1/namespaces/default/deployments/d/status",
            "application/merge-patch+json",
            json!({"status":{"replicas":2},"spec":{"replicas":7},"metadata":{"annotations":{"deployment.kubernetes.io/revision":"1"}}}),
        )
        .await;
    assert_eq!(s["status"]["replicas"], 2);
    assert_eq!(
        s["spec"]["replicas"], 1,
        "status writes must not change spec"
    );
    assert_eq!(s["metadata"]["generation"], 1);
    assert_eq!(
        s["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1",
        "status writes keep annotations, as upstream's status strategies"
    );
    let (_, m) = a
        .patch(
            "/apis/apps/v1/namespaces/default/deployments/d",
            "application/merge-patch+json",
            json!({"status":{"replicas":5},"spec":{"replicas":3}}),
        )
        .await;
    assert_eq!(m["spec"]["replicas"], 3);
    assert_eq!(
        m["status"]["replicas"], 2,
        "main resource writes must not change status"
    );
    assert_eq!(m["metadata"]["generation"], 2);
    let (_, scale) = a
        .get("/apis/apps/v1/namespaces/default/deployments/d/scale")
        .await;
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=d");
    let (code, _) = a
        .patch(
            "/apis/apps/v1/namespaces/default/deployments/d/scale",
            "application/merge-patch+json",
            json!({"spec":{"replicas":6}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (_, d) = a
        .get("/apis/apps/v1/namespaces/default/deployments/d")
        .await;
    assert_eq!(d["spec"]["replicas"], 6);
}

#[tokio::test]
async fn tables_have_upstream_columns() {
    let a = api().await;
    a.post("/api/v1/namespaces/default/configmaps", cm("t"))
        .await;
    let (code, body) = a
        .raw(
            "GET",
            "/api/v1/namespaces/default/configmaps",
            None,
            Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
            vec![],
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let t: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, vec!["Name", "Data", "Age"]);
    assert_eq!(t["rows"][0]["cells"][0], "t");
    assert_eq!(t["rows"][0]["cells"][1], 1);
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test]
async fn namespace_deletion_marks_terminating_and_finalize_removes_it() {
    // The namespace controller (crate controllers) deletes the content and calls finalize;
    // here the API server's part: Terminating, no new content, finalize, removal.
    let a = api().await;
    let (code, _) = a
        .post(
            "/api/v1/namespaces",
            json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"gone"}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, ns) = a.delete("/api/v1/namespaces/gone").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(ns["status"]["phase"], "Terminating", "{ns}");
    assert!(ns["metadata"]["deletionTimestamp"].is_string());
    let (code, err) = a.post("/api/v1/namespaces/gone/configmaps", cm("y")).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(
        err["message"],
        "configmaps \"y\" is forbidden: unable to create new content in namespace gone because it is being terminated"
    );
    // A status write cannot drop the finalizer; finalize can.
    let mut body = ns.clone();
    body["spec"]["finalizers"] = json!([]);
    let (code, st) = a.put("/api/v1/namespaces/gone/status", body.clone()).await;
    assert_eq!(code, StatusCode::OK, "{st}");
    assert_eq!(st["spec"]["finalizers"], json!(["kubernetes"]));
    let (code, fin) = a.put("/api/v1/namespaces/gone/finalize", body).await;
    assert_eq!(code, StatusCode::OK, "{fin}");
    assert_eq!(
        a.get("/api/v1/namespaces/gone").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn protobuf_bodies_are_accepted() {
    let a = api().await;
    // A Namespace as client-go encodes it: "k8s\0" + runtime.Unknown{typeMeta, raw}.
    fn field(num: u32, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((num << 3) | 2) as u8];
        let mut n = bytes.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(bytes);
        out
    }
    let meta = field(1, b"pb-ns");
    let ns = field(1, &meta);
    let mut type_meta = field(1, b"v1");
    type_meta.extend(field(2, b"Namespace"));
    let mut unknown = field(1, &type_meta);
    unknown.extend(field(2, &ns));
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown);
    let (code, v) = a
        .req(
            "POST",
            "/api/v1/namespaces",
            Some("application/vnd.kubernetes.protobuf"),
            body,
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    assert_eq!(v["metadata"]["name"], "pb-ns");
}

#[tokio::test]
async fn a_stuck_watcher_never_blocks_writers() {
    let a = api().await;
    // Open a watch and never read its body.
    let req = Request::get("/api/v1/namespaces/default/configmaps?watch=true")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let resp = router(a.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Far more events than the watch's buffers hold; the writers must all finish.
    let writes = async {
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..8 {
            let state = a.state.clone();
            tasks.spawn(async move {
                for i in 0..700 {
                    let body = cm(&format!("s{w}-{i}")).to_string();
                    let req = Request::post("/api/v1/namespaces/default/configmaps")
                        .header("authorization", format!("Bearer {TOKEN}"))
                        .header("content-type", "application/json")
                        .body(Body::from(body))
                        .unwrap();
                    let r = router(state.clone()).oneshot(req).await.unwrap();
                    assert_eq!(r.status(), StatusCode::CREATED);
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), writes)
        .await
        .expect("writers were blocked by a stuck watcher");
    // The stuck watcher was cut off: its stream ends without delivering every event.
    let body = tokio::time::timeout(Duration::from_secs(30), resp.into_body().collect())
        .await
        .expect("the stuck watch was not closed")
        .unwrap()
        .to_bytes();
    let delivered = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert!(
        delivered < 5600,
        "a lagging watcher should have been dropped, got {delivered}"
    );
}

#[tokio::test]
async fn watch_from_before_the_cache_window_is_410_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = store::sqlite::SqliteStore::open(&path, Default::default())
            .await
            .unwrap();
        for i in 0..3 {
            let mut obj = cm(&format!("c{i}"));
            obj["metadata"]["namespace"] = json!("default");
            store::Store::create(
                &store,
                &format!("/registry/configmaps/default/c{i}"),
                bytes::Bytes::from(obj.to_string()),
            )
            .await
            .unwrap();
        }
    }
    let store = store::sqlite::SqliteStore::open(&path, Default::default())
        .await
        .unwrap();
    let state = state_over(Arc::new(store)).await;
    let a = Api { state, _dir: dir };
    let (code, body) = a
        .raw(
            "GET",
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1",
            None,
            None,
            vec![],
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let ev: Value = serde_json::from_slice(body.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    // The objects written before the restart are all served.
    let (_, list) = a.get("/api/v1/namespaces/default/configmaps").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert_eq!(list["metadata"]["resourceVersion"], "3");
}

fn deployment(name: &str, replicas: i64, image: &str) -> Value {
    json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":name,"labels":{"app":name}},
        "spec":{"replicas":replicas,"selector":{"matchLabels":{"app":name}},
        "template":{"metadata":{"labels":{"app":name}},"spec":{"containers":[{"name":"c","image":image,"ports":[{"containerPort":80}]}]}}}})
}

#[tokio::test]
async fn dry_run_persists_nothing() {
    let a = api().await;
    let (code, obj) = a
        .post(
            "/api/v1/namespaces/default/configmaps?dryRun=All",
            cm("dry"),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(obj["metadata"]["name"], "dry");
    assert_eq!(
        a.get("/api/v1/namespaces/default/configmaps/dry").await.0,
        StatusCode::NOT_FOUND
    );
    a.post("/api/v1/namespaces/default/configmaps", cm("keep"))
        .await;
    let (code, _) = a
        .req(
            "DELETE",
            "/api/v1/namespaces/default/configmaps/keep",
            Some("application/json"),
            br#"{"dryRun":["All"]}"#.to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        a.get("/api/v1/namespaces/default/configmaps/keep").await.0,
        StatusCode::OK
    );
    let (code, p) = a
        .patch(
            "/api/v1/namespaces/default/configmaps/keep?dryRun=All",
            "application/merge-patch+json",
            json!({"data":{"k":"changed"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(p["data"]["k"], "changed");
    let (_, live) = a.get("/api/v1/namespaces/default/configmaps/keep").await;
    assert_eq!(live["data"]["k"], "v");
}

#[tokio::test]
async fn strategic_merge_and_server_side_apply() {
    let a = api().await;
    let (code, created) = a
        .req(
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=kubectl&force=false",
            Some("application/apply-patch+yaml"),
            deployment("web", 3, "nginx:1.14.2")
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "kubectl"
    );
    assert_eq!(
        created["spec"]["strategy"]["type"], "RollingUpdate",
        "defaults apply after SSA"
    );
    // Strategic merge: the container list merges by name.
    let (code, p) = a
        .patch("/apis/apps/v1/namespaces/default/deployments/web?fieldManager=kubectl-set", "application/strategic-merge-patch+json",
            json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"c"}],"containers":[{"name":"c","image":"nginx:1.27"}]}}}}))
        .await;
    assert_eq!(code, StatusCode::OK, "{p}");
    let c = &p["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1.27");
    assert_eq!(
        c["ports"][0]["containerPort"], 80,
        "SMP must keep fields of merged list items"
    );
    // Another manager owns replicas now; applying a different value conflicts.
    a.patch(
        "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=kubectl-client-side-apply",
        "application/merge-patch+json",
        json!({"spec":{"replicas":5}}),
    )
    .await;
    let (code, err) = a
        .req(
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=kubectl&force=false",
            Some("application/apply-patch+yaml"),
            deployment("web", 3, "nginx:1.27").to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["reason"], "Conflict");
    assert_eq!(
        err["details"]["causes"][0]["type"]
            .as_str()
            .or(err["details"]["causes"][0]["reason"].as_str()),
        Some("FieldManagerConflict")
    );
    assert_eq!(err["details"]["causes"][0]["field"], ".spec.replicas");
    assert!(
        err["message"].as_str().unwrap().starts_with(
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\""
        ),
        "{err}"
    );
    let (code, forced) = a
        .req(
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=kubectl&force=true",
            Some("application/apply-patch+yaml"),
            deployment("web", 3, "nginx:1.27").to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{forced}");
    assert_eq!(forced["spec"]["replicas"], 3);
    // JSON patch with a failing test operation changes nothing.
    let (code, _) = a
        .req("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", Some("application/json-patch+json"),
            json!([{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":1}]).to_string().into_bytes())
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, live) = a
        .get("/apis/apps/v1/namespaces/default/deployments/web")
        .await;
    assert_eq!(live["spec"]["replicas"], 3);
    let (code, _) = a
        .req(
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web",
            Some("text/plain"),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn services_get_cluster_ips_that_survive_updates() {
    let a = api().await;
    let svc = |name: &str| json!({"apiVersion":"v1","kind":"Service","metadata":{"name":name},"spec":{"selector":{"app":"x"},"ports":[{"port":80}]}});
    let (code, s1) = a
        .post("/api/v1/namespaces/default/services", svc("s1"))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{s1}");
    let ip1 = s1["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip1.starts_with("10.43."), "{ip1}");
    assert_eq!(s1["spec"]["clusterIPs"][0], ip1.as_str());
    assert_eq!(s1["spec"]["ports"][0]["targetPort"], 80);
    let (_, s2) = a
        .post("/api/v1/namespaces/default/services", svc("s2"))
        .await;
    assert_ne!(s2["spec"]["clusterIP"], ip1.as_str());
    let mut taken = svc("s3");
    taken["spec"]["clusterIP"] = json!(ip1);
    let (code, err) = a.post("/api/v1/namespaces/default/services", taken).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("provided IP is already allocated")
    );
    // A full update without clusterIP keeps the allocated one.
    let (code, upd) = a
        .put("/api/v1/namespaces/default/services/s1", svc("s1"))
        .await;
    assert_eq!(code, StatusCode::OK, "{upd}");
    assert_eq!(upd["spec"]["clusterIP"], ip1.as_str());
    let mut headless = svc("h");
    headless["spec"]["clusterIP"] = json!("None");
    let (_, h) = a
        .post("/api/v1/namespaces/default/services", headless)
        .await;
    assert_eq!(h["spec"]["clusterIP"], "None");
}

#[tokio::test]
async fn pods_start_pending_with_defaults() {
    let a = api().await;
    let pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-"},"spec":{"containers":[{"name":"c","image":"nginx:1.14.2","resources":{"limits":{"cpu":"1","memory":"64Mi"}}}]},"status":{"phase":"Running"}});
    let (code, p) = a.post("/api/v1/namespaces/default/pods", pod).await;
    assert_eq!(code, StatusCode::CREATED, "{p}");
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["status"]["qosClass"], "Guaranteed");
    assert_eq!(
        p["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(p["spec"]["schedulerName"], "default-scheduler");
    assert!(p["metadata"]["name"].as_str().unwrap().starts_with("web-"));
    let (_, l) = a
        .get("/api/v1/namespaces/default/pods?fieldSelector=status.phase%3DPending")
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
}

/// The watch cache takes the selectable fields of a version this server writes from the
/// writer (no parse of the stored bytes): they must still follow creation and binding, as the
/// kubelet's `spec.nodeName` selector and `kubectl get --field-selector` read them.
#[tokio::test]
async fn pod_fields_follow_create_and_binding() {
    let a = api().await;
    let pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"b1"},"spec":{"containers":[{"name":"c","image":"nginx"}]}});
    let (code, p) = a.post("/api/v1/namespaces/default/pods", pod).await;
    assert_eq!(code, StatusCode::CREATED, "{p}");
    const PODS: &str = "/api/v1/namespaces/default/pods";
    assert_eq!(selected(&a, PODS, "spec.nodeName%3D").await, 1);
    assert_eq!(selected(&a, PODS, "spec.nodeName%3Dn1").await, 0);
    assert_eq!(selected(&a, PODS, "status.phase%3DPending").await, 1);
    let binding = json!({"apiVersion":"v1","kind":"Binding","metadata":{"name":"b1"},"target":{"kind":"Node","name":"n1"}});
    let (code, st) = a
        .post(
            "/api/v1/namespaces/default/pods/b1/binding",
            binding.clone(),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{st}");
    assert_eq!(selected(&a, PODS, "spec.nodeName%3Dn1").await, 1);
    assert_eq!(selected(&a, PODS, "spec.nodeName%3D").await, 0);
    let (_, bound) = a.get("/api/v1/namespaces/default/pods/b1").await;
    assert_eq!(bound["spec"]["nodeName"], "n1");
    let conds = bound["status"]["conditions"].as_array().unwrap();
    assert_eq!(conds.len(), 1, "{bound}");
    assert_eq!(conds[0]["type"], "PodScheduled");
    assert_eq!(conds[0]["status"], "True");
    // Binding changed nothing else: each write starts from the version the last one kept.
    let mut expected = p.clone();
    expected["spec"]["nodeName"] = json!("n1");
    expected["status"]["conditions"] = bound["status"]["conditions"].clone();
    expected["metadata"]["resourceVersion"] = bound["metadata"]["resourceVersion"].clone();
    assert_eq!(bound, expected);
    // The kubelet's status write (a strategic merge patch of pods/status).
    let (code, running) = a
        .patch(
            "/api/v1/namespaces/default/pods/b1/status",
            "application/strategic-merge-patch+json",
            json!({"status":{"phase":"Running","podIP":"10.42.0.5"},"spec":{"nodeName":"elsewhere"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{running}");
    let (_, got) = a.get("/api/v1/namespaces/default/pods/b1").await;
    assert_eq!(got, running);
    assert_eq!(got["spec"], bound["spec"], "a status write keeps the spec");
    assert_eq!(got["status"]["phase"], "Running");
    assert_eq!(got["status"]["podIP"], "10.42.0.5");
    assert_eq!(got["status"]["conditions"][0]["type"], "PodScheduled");
    assert_eq!(selected(&a, PODS, "status.phase%3DRunning").await, 1);
    // A second binding is refused and changes nothing.
    let (code, st) = a
        .post("/api/v1/namespaces/default/pods/b1/binding", binding)
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{st}");
    assert_eq!(selected(&a, PODS, "spec.nodeName%3Dn1").await, 1);
}

/// `kubectl describe` finds an object's Events by field selector. Core and events.k8s.io
/// Events share their storage prefix, so the watch cache's projection must keep the members of
/// both (it once kept only events.k8s.io's, and `describe` showed no Events).
#[tokio::test]
async fn core_events_are_selected_by_their_fields() {
    let a = api().await;
    let ev = json!({"apiVersion":"v1","kind":"Event","metadata":{"name":"e1"},
        "involvedObject":{"kind":"Pod","namespace":"default","name":"web-1","uid":"u1","apiVersion":"v1"},
        "reason":"Scheduled","message":"assigned","type":"Normal","source":{"component":"default-scheduler"}});
    let (code, e) = a.post("/api/v1/namespaces/default/events", ev).await;
    assert_eq!(code, StatusCode::CREATED, "{e}");
    for (selector, want) in [
        (
            "involvedObject.name%3Dweb-1,involvedObject.uid%3Du1,involvedObject.kind%3DPod",
            1,
        ),
        ("involvedObject.name%3Dweb-2", 0),
        (
            "reason%3DScheduled,type%3DNormal,source%3Ddefault-scheduler",
            1,
        ),
    ] {
        assert_eq!(
            selected(&a, CORE_EVENTS, selector).await,
            want,
            "{selector}"
        );
    }
}

const CORE_EVENTS: &str = "/api/v1/namespaces/default/events";

/// How many objects of the list at `path` the (escaped) field selector selects.
async fn selected(a: &Api, path: &str, selector: &str) -> usize {
    let (_, l) = a.get(&format!("{path}?fieldSelector={selector}")).await;
    l["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn events_v1_are_selected_by_their_own_field_names() {
    let a = api().await;
    let ev = json!({"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"e2"},
        "eventTime":"2026-01-01T00:00:00.000000Z","action":"Binding",
        "regarding":{"kind":"Pod","namespace":"default","name":"web-1","uid":"u1","apiVersion":"v1"},
        "reason":"Scheduled","note":"assigned","type":"Normal",
        "reportingController":"default-scheduler","reportingInstance":"s-1"});
    let (code, e) = a
        .post("/apis/events.k8s.io/v1/namespaces/default/events", ev)
        .await;
    assert_eq!(code, StatusCode::CREATED, "{e}");
    for (selector, want) in [
        (
            "regarding.name%3Dweb-1,regarding.uid%3Du1,regarding.kind%3DPod",
            1,
        ),
        ("regarding.name%3Dweb-2", 0),
        (
            "reportingController%3Ddefault-scheduler,reason%3DScheduled",
            1,
        ),
        ("reportingController!%3Ddefault-scheduler", 0),
        ("type%3DNormal,metadata.name%3De2", 1),
    ] {
        let path = "/apis/events.k8s.io/v1/namespaces/default/events";
        assert_eq!(selected(&a, path, selector).await, want, "{selector}");
    }
    // The same event through the core API, by its core names.
    let core = "involvedObject.name%3Dweb-1,reportingComponent%3Ddefault-scheduler";
    assert_eq!(selected(&a, CORE_EVENTS, core).await, 1);
}

#[tokio::test]
async fn managed_fields_exclude_what_admission_adds() {
    let a = api().await;
    let pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"mf"},"spec":{"containers":[{"name":"c","image":"nginx"}]}});
    let (code, p) = a
        .post(
            "/api/v1/namespaces/default/pods?fieldManager=kubectl-run",
            pod,
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{p}");
    // Admission still applied...
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
    // ...but the manager owns only what it sent plus the scheme defaults.
    let mf = &p["metadata"]["managedFields"][0];
    assert_eq!(mf["manager"], "kubectl-run");
    let spec = &mf["fieldsV1"]["f:spec"];
    assert!(spec.get("f:restartPolicy").is_some(), "{mf}");
    for admitted in [
        "f:tolerations",
        "f:serviceAccountName",
        "f:serviceAccount",
        "f:priority",
        "f:preemptionPolicy",
    ] {
        assert!(
            spec.get(admitted).is_none(),
            "{admitted} must not be owned: {mf}"
        );
    }
}

#[tokio::test]
async fn self_subject_access_reviews_answer_allowed() {
    let a = api().await;
    let review = json!({"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"verb":"get","resource":"pods","namespace":"default"}}});
    let (code, r) = a
        .post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            review,
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"]["allowed"], true);
    assert_eq!(r["spec"]["resourceAttributes"]["verb"], "get");
}

#[tokio::test]
async fn put_that_creates_needs_the_namespace() {
    let a = api().await;
    let ep = json!({"apiVersion":"v1","kind":"Endpoints","metadata":{"name":"e"}});
    let (code, err) = a
        .put("/api/v1/namespaces/missing/endpoints/e", ep.clone())
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{err}");
    assert_eq!(err["message"], "namespaces \"missing\" not found");
    let (code, created) = a.put("/api/v1/namespaces/default/endpoints/e", ep).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
}

#[tokio::test]
async fn endpointslice_generation_follows_its_content() {
    let a = api().await;
    let slice = json!({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"s","labels":{"kubernetes.io/service-name":"svc"}},"addressType":"IPv4","endpoints":[{"addresses":["10.42.0.2"]}],"ports":[{"port":80,"protocol":"TCP"}]});
    let (code, created) = a
        .post(
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            slice,
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    let mut changed = created.clone();
    changed["endpoints"] = json!([{"addresses":["10.42.0.3"]}]);
    let (code, updated) = a
        .put(
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/s",
            changed,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_eq!(updated["metadata"]["generation"], 2);
}
