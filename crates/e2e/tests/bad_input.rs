//! Bad input: malformed JSON → 400, invalid objects → 422 naming every bad field, bodies over
//! 3 MiB → 413, unknown resources → 404; and a failed request persists nothing.

#![allow(clippy::unwrap_used)]

use e2e::{Namespace, stderr};
use serde_json::Value;
use testsupport::{HttpResponse, shared_server};

/// Asserts that `resp` is a `Status` failure with `code` and `reason`; returns it.
fn assert_status(resp: &HttpResponse, code: u16, reason: &str) -> Value {
    assert_eq!(resp.status, code, "{}", resp.text());
    let status = resp
        .json()
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {}", resp.text()));
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["apiVersion"], "v1", "{status}");
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["reason"], reason, "{status}");
    assert_eq!(status["code"], code, "{status}");
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        resp.headers
    );
    status
}

fn configmap_names(srv: &testsupport::TestServer, ns: &str) -> Vec<String> {
    let resp = srv
        .http()
        .unwrap()
        .get(&format!("/api/v1/namespaces/{ns}/configmaps"))
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json().unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
        .filter(|n| n != "kube-root-ca.crt")
        .collect()
}

#[test]
fn malformed_json_is_400_and_persists_nothing() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-bad400");
    let http = srv.http().unwrap();
    let path = format!("/api/v1/namespaces/{}/configmaps", ns.name);
    for body in [
        &br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"half""#[..],
        b"this is not json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"wrongtype"},"data":{"k":1}}"#,
    ] {
        let resp = http.send_json("POST", &path, body).unwrap();
        assert_status(&resp, 400, "BadRequest");
    }
    // A body for another namespace than the URL's.
    let resp = http
        .send_json(
            "POST",
            &path,
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"elsewhere","namespace":"default"}}"#,
        )
        .unwrap();
    let status = assert_status(&resp, 400, "BadRequest");
    assert_eq!(
        status["message"],
        "the namespace of the provided object does not match the namespace sent on the request"
    );
    assert_eq!(configmap_names(srv, &ns.name), Vec::<String>::new());
}

#[test]
fn invalid_objects_are_422_naming_each_bad_field() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-bad422");
    let http = srv.http().unwrap();

    let resp = http
        .send_json(
            "POST",
            &format!("/api/v1/namespaces/{}/configmaps", ns.name),
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"},"data":{"bad key!":"v"}}"#,
        )
        .unwrap();
    let status = assert_status(&resp, 422, "Invalid");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("ConfigMap \"Bad_Name\" is invalid: "),
        "{message}"
    );
    assert_eq!(status["details"]["name"], "Bad_Name");
    assert_eq!(status["details"]["kind"], "ConfigMap");
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert!(fields.contains(&"metadata.name"), "{status}");
    assert!(fields.contains(&"data[bad key!]"), "{status}");
    for cause in status["details"]["causes"].as_array().unwrap() {
        assert_eq!(cause["reason"], "FieldValueInvalid", "{cause}");
    }

    let deployment = br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"broken"},
        "spec":{"replicas":-1,"selector":{"matchLabels":{"app":"x"}},
        "template":{"metadata":{"labels":{"app":"y"}},"spec":{"containers":[{"name":"c","image":""}]}}}}"#;
    let resp = http
        .send_json(
            "POST",
            &format!("/apis/apps/v1/namespaces/{}/deployments", ns.name),
            deployment,
        )
        .unwrap();
    let status = assert_status(&resp, 422, "Invalid");
    let causes = status["details"]["causes"].as_array().unwrap();
    let has = |field: &str, reason: &str| {
        causes
            .iter()
            .any(|c| c["field"] == field && c["reason"] == reason)
    };
    assert!(has("spec.replicas", "FieldValueInvalid"), "{status}");
    assert!(
        has(
            "spec.template.spec.containers[0].image",
            "FieldValueRequired"
        ),
        "{status}"
    );
    assert!(
        has("spec.template.metadata.labels", "FieldValueInvalid"),
        "{status}"
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{status}"
    );
    let get = http
        .get(&format!(
            "/apis/apps/v1/namespaces/{}/deployments/broken",
            ns.name
        ))
        .unwrap();
    assert_status(&get, 404, "NotFound");

    // kubectl shows the same error.
    let out = ns.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(configmap_names(srv, &ns.name), Vec::<String>::new());
}

#[test]
fn bodies_over_3_mib_are_413() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-bad413");
    let http = srv.http().unwrap();
    let big = "x".repeat(3 * 1024 * 1024 + 1024);
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"too-big"}},"data":{{"blob":"{big}"}}}}"#
    );
    let resp = http
        .send_json(
            "POST",
            &format!("/api/v1/namespaces/{}/configmaps", ns.name),
            body.as_bytes(),
        )
        .unwrap();
    assert_status(&resp, 413, "RequestEntityTooLarge");
    let get = http
        .get(&format!(
            "/api/v1/namespaces/{}/configmaps/too-big",
            ns.name
        ))
        .unwrap();
    assert_status(&get, 404, "NotFound");

    // Just under the limit is accepted by the transport (and then refused by validation:
    // a ConfigMap may hold at most 1 MiB of data).
    let below = "y".repeat(2 * 1024 * 1024);
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"large"}},"data":{{"blob":"{below}"}}}}"#
    );
    let resp = http
        .send_json(
            "POST",
            &format!("/api/v1/namespaces/{}/configmaps", ns.name),
            body.as_bytes(),
        )
        .unwrap();
    assert_status(&resp, 422, "Invalid");
    assert_eq!(configmap_names(srv, &ns.name), Vec::<String>::new());
}

#[test]
fn unknown_resources_are_404() {
    let Some(srv) = shared_server() else { return };
    let http = srv.http().unwrap();
    for path in [
        "/api/v1/namespaces/default/widgets",
        "/api/v1/widgets",
        "/apis/nosuch.example.com/v1/things",
        "/apis/apps/v1/namespaces/default/widgets",
        "/apis/apps/v9/deployments",
    ] {
        let resp = http.get(path).unwrap();
        assert_status(&resp, 404, "NotFound");
    }
    // POSTing to an unknown resource persists nothing and is 404 too.
    let resp = http
        .send_json(
            "POST",
            "/api/v1/namespaces/default/widgets",
            br#"{"apiVersion":"v1","kind":"Widget","metadata":{"name":"w"}}"#,
        )
        .unwrap();
    assert_eq!(resp.status, 404, "{}", resp.text());

    // A missing object of a known resource names it.
    let resp = http
        .get("/api/v1/namespaces/default/configmaps/e2e-does-not-exist")
        .unwrap();
    let status = assert_status(&resp, 404, "NotFound");
    assert_eq!(
        status["message"],
        "configmaps \"e2e-does-not-exist\" not found"
    );
    assert_eq!(status["details"]["name"], "e2e-does-not-exist");
    assert_eq!(status["details"]["kind"], "configmaps");

    let out = srv.kubectl(&["get", "widgets"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("error: the server doesn't have a resource type \"widgets\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn update_conflicts_are_409_and_persist_nothing() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-bad409");
    let http = srv.http().unwrap();
    let path = format!("/api/v1/namespaces/{}/configmaps", ns.name);
    let created = http
        .send_json(
            "POST",
            &path,
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"v":"1"}}"#,
        )
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    let rv = created.json().unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let update = |value: &str, rv: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c","resourceVersion":"{rv}"}},"data":{{"v":"{value}"}}}}"#
        )
    };
    let ok = http
        .send_json("PUT", &format!("{path}/c"), update("2", &rv).as_bytes())
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
    // The same (now stale) resourceVersion again: 409 Conflict.
    let stale = http
        .send_json("PUT", &format!("{path}/c"), update("3", &rv).as_bytes())
        .unwrap();
    let status = assert_status(&stale, 409, "Conflict");
    assert_eq!(
        status["message"],
        "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let current = http.get(&format!("{path}/c")).unwrap().json().unwrap();
    assert_eq!(current["data"]["v"], "2");
    // Creating it again: 409 AlreadyExists.
    let dup = http
        .send_json(
            "POST",
            &path,
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
        )
        .unwrap();
    let status = assert_status(&dup, 409, "AlreadyExists");
    assert_eq!(status["message"], "configmaps \"c\" already exists");
}
