//! End-to-end check with a real `kubectl`: `kubectl explain` against a throwaway HTTP server
//! serving our OpenAPI v3 documents plus minimal legacy discovery.
//!
//! Needs a kubectl binary, so it is ignored by default:
//! `KUBECTL=/path/to/kubectl cargo test -p openapi --test kubectl_explain -- --ignored`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;

use openapi::{KindInfo, group_version_document_shared, index_document};
use serde_json::{Value, json};

fn kinds() -> Vec<KindInfo> {
    let verbs: Vec<String> = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let k = |group: &str, kind: &str, plural: &str, subs: &[&str]| KindInfo {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced: true,
        subresources: subs.iter().map(|s| (*s).to_owned()).collect(),
        verbs: verbs.clone(),
    };
    vec![
        k("", "Pod", "pods", &["status"]),
        k("", "ConfigMap", "configmaps", &[]),
        k("apps", "Deployment", "deployments", &["status", "scale"]),
    ]
}

fn resource_list(group_version: &str, kinds: &[KindInfo]) -> Value {
    let resources: Vec<Value> = kinds
        .iter()
        .filter(|k| {
            let gv = if k.group.is_empty() {
                k.version.clone()
            } else {
                format!("{}/{}", k.group, k.version)
            };
            gv == group_version
        })
        .map(|k| {
            json!({"name": k.plural, "singularName": k.kind.to_lowercase(), "namespaced": k.namespaced,
                   "kind": k.kind, "verbs": k.verbs})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

fn respond(stream: &mut TcpStream, status: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn serve(mut stream: TcpStream, kinds: &[KindInfo]) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or(target);
    let body: Option<Vec<u8>> = match path {
        "/version" => Some(json!({"major": "1", "minor": "35", "gitVersion": "v1.35.0"}).to_string().into_bytes()),
        "/api" => Some(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}).to_string().into_bytes()),
        "/apis" => Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{"name": "apps",
            "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]}).to_string().into_bytes()),
        "/api/v1" => Some(resource_list("v1", kinds).to_string().into_bytes()),
        "/apis/apps/v1" => Some(resource_list("apps/v1", kinds).to_string().into_bytes()),
        "/openapi/v3" => Some(index_document(kinds).to_string().into_bytes()),
        "/openapi/v3/api/v1" => group_version_document_shared(kinds, "", "v1").map(|d| d.bytes.to_vec()),
        "/openapi/v3/apis/apps/v1" => group_version_document_shared(kinds, "apps", "v1").map(|d| d.bytes.to_vec()),
        _ => None,
    };
    match body {
        Some(body) => respond(&mut stream, "200 OK", &body),
        None => respond(
            &mut stream,
            "404 Not Found",
            br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#,
        ),
    }
}

fn kubectl_explain(args: &[&str]) -> String {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let kinds = Arc::new(kinds());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let kinds = Arc::clone(&kinds);
            std::thread::spawn(move || serve(stream, &kinds));
        }
    });
    let dir = tempfile_dir();
    let output = Command::new(kubectl)
        .args([
            "--server",
            &format!("http://{addr}"),
            "--cache-dir",
            &dir,
            "explain",
        ])
        .args(args)
        .output()
        .expect("run kubectl (set KUBECTL)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubectl failed: {stderr}\n{stdout}"
    );
    stdout
}

fn tempfile_dir() -> String {
    let dir = std::env::temp_dir().join(format!("openapi-kubectl-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("cache dir");
    dir.to_string_lossy().into_owned()
}

#[test]
#[ignore = "needs a kubectl binary: KUBECTL=/path/to/kubectl cargo test -p openapi -- --ignored"]
fn explain_deployment_replicas() {
    let out = kubectl_explain(&["deployment.spec.replicas"]);
    assert!(out.contains("KIND:       Deployment"), "{out}");
    assert!(out.contains("GROUP:      apps"), "{out}");
    assert!(out.contains("FIELD: replicas <integer>"), "{out}");
    assert!(
        out.contains("Number of desired pods. This is a pointer to distinguish between explicit"),
        "{out}"
    );
}

#[test]
#[ignore = "needs a kubectl binary: KUBECTL=/path/to/kubectl cargo test -p openapi -- --ignored"]
fn explain_pod_containers() {
    let out = kubectl_explain(&["pod.spec.containers"]);
    assert!(out.contains("FIELD: containers <[]Container>"), "{out}");
    assert!(out.contains("image\t<string>"), "{out}");
}
