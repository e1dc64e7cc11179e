//! Durability: SIGKILL the server while many clients write, restart it on the same data dir,
//! and check that every acknowledged write is there.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use testsupport::{HttpClient, TestServer, new_server};

const WRITERS: usize = 8;
/// Upper bound on the objects one writer creates in one round (keeps the test bounded even if
/// the kill never interrupts anything).
const MAX_WRITES_PER_WRITER: usize = 20_000;

/// What one writer got acknowledged: configmap name → the value of its `data.v` (the last
/// acknowledged update).
type Acked = BTreeMap<String, String>;

/// What one writer did: its acknowledged writes, and whether a request failed (the kill
/// interrupted it) rather than the writer being told to stop.
struct WriterResult {
    acked: Acked,
    interrupted: bool,
}

/// Creates configmaps (and updates every other one) until `stop` or an error; returns what
/// the server acknowledged with 201/200.
fn writer(
    http: HttpClient,
    ns: String,
    round: usize,
    id: usize,
    stop: Arc<AtomicBool>,
) -> WriterResult {
    let mut acked = Acked::new();
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    for n in 0..MAX_WRITES_PER_WRITER {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let name = format!("r{round}-w{id}-{n}");
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"v":"created"}}}}"#
        );
        match http.send_json("POST", &path, body.as_bytes()) {
            Ok(resp) if resp.status == 201 => {
                acked.insert(name.clone(), "created".to_string());
            }
            // Killed mid-request (connection reset / no response) or unavailable: stop.
            _ => {
                return WriterResult {
                    acked,
                    interrupted: true,
                };
            }
        }
        if n % 2 == 1 {
            let patch = br#"{"data":{"v":"updated"}}"#;
            match http.request(
                "PATCH",
                &format!("{path}/{name}"),
                &[("Content-Type", "application/merge-patch+json")],
                patch,
            ) {
                Ok(resp) if resp.status == 200 => {
                    acked.insert(name, "updated".to_string());
                }
                _ => {
                    return WriterResult {
                        acked,
                        interrupted: true,
                    };
                }
            }
        }
    }
    WriterResult {
        acked,
        interrupted: false,
    }
}

fn list_configmaps(srv: &TestServer, ns: &str) -> BTreeMap<String, String> {
    let resp = srv
        .http()
        .unwrap()
        .get(&format!("/api/v1/namespaces/{ns}/configmaps"))
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let list: Value = resp.json().unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| {
            let name = i["metadata"]["name"].as_str()?;
            let v = i["data"]["v"].as_str()?;
            Some((name.to_string(), v.to_string()))
        })
        .collect()
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let Some(srv) = new_server() else { return };
    let ns = testsupport::unique_name("e2e-durable");
    let http = srv.http().unwrap();
    let created = http
        .send_json(
            "POST",
            "/api/v1/namespaces",
            format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{ns}"}}}}"#)
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.text());

    let mut all_acked = Acked::new();
    for round in 0..2 {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let handles: Vec<_> = (0..WRITERS)
            .map(|id| {
                let http = srv.http().unwrap();
                let ns = ns.clone();
                let stop = stop.clone();
                thread::spawn(move || writer(http, ns, round, id, stop))
            })
            .collect();
        // Let the writers get going, then pull the plug while they are writing.
        thread::sleep(Duration::from_millis(1500));
        srv.kill9();
        stop.store(true, Ordering::Relaxed);
        let mut round_acked = 0;
        let mut interrupted = 0;
        for h in handles {
            let result = h.join().unwrap();
            round_acked += result.acked.len();
            interrupted += usize::from(result.interrupted);
            all_acked.extend(result.acked);
        }
        assert!(
            interrupted > 0,
            "round {round}: the kill interrupted no writer (all {WRITERS} had finished), so it \
             did not happen while writing"
        );
        assert!(
            round_acked > 0,
            "round {round}: no write was acknowledged in {:?}; server log:\n{}",
            started.elapsed(),
            srv.log_tail(30)
        );

        srv.restart();
        let stored = list_configmaps(&srv, &ns);
        let mut missing = Vec::new();
        for (name, value) in &all_acked {
            match stored.get(name).map(String::as_str) {
                Some(v) if v == value => {}
                // An update in flight at the kill may or may not have been applied; an
                // acknowledged one must have been.
                Some("updated") if value == "created" => {}
                other => missing.push(format!("{name}: acknowledged {value:?}, stored {other:?}")),
            }
        }
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} acknowledged writes lost after SIGKILL: {:?}",
            missing.len(),
            all_acked.len(),
            &missing[..missing.len().min(20)]
        );
        // Nothing that was never attempted appears.
        for name in stored.keys() {
            assert!(name.starts_with('r'), "unexpected object {name}");
        }
    }

    // The restarted server takes writes again, and reads see them.
    let resp = srv
        .http()
        .unwrap()
        .send_json(
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"after"},"data":{"v":"after"}}"#,
        )
        .unwrap();
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        list_configmaps(&srv, &ns).get("after").map(String::as_str),
        Some("after")
    );
}

#[test]
fn objects_and_resource_versions_survive_a_restart() {
    let Some(srv) = new_server() else { return };
    let ns = testsupport::unique_name("e2e-restart");
    srv.kubectl_ok(&["create", "namespace", &ns]);
    srv.kubectl_ok(&[
        "create",
        "configmap",
        "kept",
        "-n",
        &ns,
        "--from-literal=k=v",
    ]);
    srv.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        &ns,
        "--image=nginx:1.14.2",
    ]);
    let before = e2e::json(&srv.kubectl_ok(&["get", "configmap", "kept", "-n", &ns, "-o", "json"]));

    srv.kill9();
    srv.restart();

    let after = e2e::json(&srv.kubectl_ok(&["get", "configmap", "kept", "-n", &ns, "-o", "json"]));
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(after["data"], before["data"]);
    assert_eq!(
        srv.kubectl_ok(&[
            "get",
            "deployment",
            "web",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "nginx:1.14.2"
    );
    // New writes get newer resource versions than anything from before the restart.
    srv.kubectl_ok(&["label", "configmap", "kept", "-n", &ns, "after=restart"]);
    let relabeled =
        e2e::json(&srv.kubectl_ok(&["get", "configmap", "kept", "-n", &ns, "-o", "json"]));
    let old: u64 = before["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let new: u64 = relabeled["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(new > old, "resourceVersion went from {old} to {new}");
    // The same credentials work after the restart (the CA and certs were kept).
    assert!(srv.kubeconfig_path().is_file());
}
