//! `r8s datastore migrate | snapshot | restore` with the real binary, real servers and real
//! kubectl (issue 6): "`migrate` from SQLite to etcd and back keeps every object; `snapshot` +
//! `restore` brings a deleted cluster back". Migrating or restoring into a datastore that is not
//! empty is refused and changes nothing.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use e2e::etcd::Etcd;
use e2e::{eventually, json, nginx_deployment, stderr, stdout};
use serde_json::{Value, json};
use testsupport::process::run_with_timeout;
use testsupport::server::new_unstarted_server_with_args;
use testsupport::{TestServer, new_server_with_args, unique_name};

/// Flags of the servers on etcd: the controller manager's Lease of the previous server is part
/// of the migrated data, so let a new server take it over quickly.
const ETCD_FLAGS: &str = "--fast-leader-election";

const CONFIGMAP: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels:
    app: demo
    tier: backend
data:
  mode: production
  greeting: hello world
";

const SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    app: nginx
spec:
  selector:
    app: nginx
  ports:
  - name: http
    port: 80
    targetPort: 80
";

/// Runs `r8s datastore <args>` with the server's binary (killed after 60 s).
fn datastore(bin: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.arg("datastore").args(args);
    match run_with_timeout(cmd, None, Duration::from_secs(60)) {
        Ok(Ok(out)) => out,
        Ok(Err(timed_out)) => panic!("r8s datastore {}: {timed_out}", args.join(" ")),
        Err(e) => panic!("starting r8s datastore {}: {e}", args.join(" ")),
    }
}

/// `r8s datastore <args>`, which must succeed; returns its stdout.
fn datastore_ok(bin: &Path, args: &[&str]) -> String {
    let out = datastore(bin, args);
    assert!(
        out.status.success(),
        "r8s datastore {} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// `r8s datastore <args>`, which must be refused because the target is not empty.
fn datastore_refused(bin: &Path, args: &[&str]) {
    let out = datastore(bin, args);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "r8s datastore {} succeeded into a non-empty target:\n{}",
        args.join(" "),
        stdout(&out)
    );
    assert!(
        err.contains("the target datastore is not empty: it already holds /registry/")
            && err.contains("(refusing to overwrite)"),
        "unclear refusal of r8s datastore {}:\n{err}",
        args.join(" ")
    );
}

/// The number of keys in the summary line `copied N keys at revision R from A to B`.
fn copied_keys(summary: &str) -> usize {
    let rest = summary
        .trim()
        .strip_prefix("copied ")
        .unwrap_or_else(|| panic!("unexpected summary: {summary}"));
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// The key lines of a snapshot file (everything but the header, which holds the revision).
fn snapshot_keys(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines = text.lines();
    let header = json(lines.next().expect("a snapshot header"));
    assert_eq!(header["format"], "r8s-snapshot/v1", "{header}");
    let keys: Vec<String> = lines.map(str::to_string).collect();
    assert_eq!(header["keys"], keys.len(), "header {header} vs key lines");
    keys
}

/// Snapshot of `store` (`--data-dir X` or `--datastore-endpoint URL`) into `file`.
fn snapshot(bin: &Path, store: [&str; 2], file: &Path) -> Vec<String> {
    let file_arg = file.to_str().unwrap();
    let summary = datastore_ok(bin, &["snapshot", store[0], store[1], file_arg]);
    let keys = snapshot_keys(file);
    assert_eq!(copied_keys(&summary), keys.len(), "{summary}");
    keys
}

/// What must survive a migration or restore, per object (`kind/name`): uid, labels and the
/// resourceVersion-independent content.
fn objects(s: &TestServer, ns: &str) -> BTreeMap<String, Value> {
    let get = |what: &str, namespaced: bool| {
        let mut args = vec!["get", what, "-o", "json"];
        if namespaced {
            args.extend(["-n", ns]);
        }
        json(&s.kubectl_ok(&args))
    };
    let mut out = BTreeMap::new();
    let mut record = |key: &str, v: &Value, content: Value| {
        out.insert(
            key.to_string(),
            json!({
                "uid": v["metadata"]["uid"],
                "labels": v["metadata"]["labels"],
                "content": content,
            }),
        );
    };
    let n = get(&format!("namespace/{ns}"), false);
    record("namespace", &n, n["spec"].clone());
    let d = get("deployment/nginx-deployment", true);
    record("deployment", &d, d["spec"].clone());
    let c = get("configmap/settings", true);
    record("configmap", &c, c["data"].clone());
    let sec = get("secret/creds", true);
    record(
        "secret",
        &sec,
        json!({ "type": sec["type"], "data": sec["data"] }),
    );
    let svc = get("service/web", true);
    record("service", &svc, svc["spec"].clone());
    for key in ["namespace", "deployment", "configmap", "secret", "service"] {
        let uid = out[key]["uid"].as_str().unwrap_or_default();
        assert!(!uid.is_empty(), "{key} has no uid: {}", out[key]);
    }
    out
}

/// The live pods of the Deployment: name -> uid.
fn pods(s: &TestServer, ns: &str) -> BTreeMap<String, String> {
    let v = json(&s.kubectl_ok(&["get", "pods", "-n", ns, "-l", "app=nginx", "-o", "json"]));
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["metadata"]["uid"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Waits until the Deployment has exactly `n` live pods and returns them.
fn wait_pods(s: &TestServer, ns: &str, n: usize) -> BTreeMap<String, String> {
    eventually(30, &format!("{n} pods of nginx-deployment"), || {
        let p = pods(s, ns);
        if p.len() == n {
            Ok(p)
        } else {
            Err(format!("{} pods: {:?}", p.len(), p.keys()))
        }
    })
}

/// Asserts that `s` serves exactly the recorded objects and pods (same uids).
fn assert_same_cluster(
    s: &TestServer,
    ns: &str,
    want: &BTreeMap<String, Value>,
    want_pods: &BTreeMap<String, String>,
    step: &str,
) {
    let got = objects(s, ns);
    for (key, value) in want {
        assert_eq!(got.get(key), Some(value), "{step}: {key} differs");
    }
    // The controllers must neither lose nor replace the pods: give them a moment to act.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(&pods(s, ns), want_pods, "{step}: the pods differ");
}

#[test]
fn migrate_to_etcd_and_back_then_snapshot_and_restore() {
    // 1. A cluster on the embedded SQLite database, filled with kubectl.
    let Some(sqlite_a) = new_server_with_args(&[]) else {
        return;
    };
    let bin = sqlite_a.binary().to_path_buf();
    let scratch = sqlite_a.scratch_dir().to_path_buf();
    let ns = unique_name("migrate");
    sqlite_a.kubectl_ok(&["create", "namespace", &ns]);
    sqlite_a.kubectl_ok(&["label", "namespace", &ns, "team=storage"]);
    sqlite_a.kubectl_stdin_ok(
        &["apply", "-n", &ns, "-f", "-"],
        &nginx_deployment("nginx:1.14.2"),
    );
    sqlite_a.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], CONFIGMAP);
    sqlite_a.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        &ns,
        "--from-literal=password=s3cr3t",
    ]);
    sqlite_a.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], SERVICE);
    let pods_3 = wait_pods(&sqlite_a, &ns, 3);
    let created = objects(&sqlite_a, &ns);
    assert_eq!(created["namespace"]["labels"]["team"], "storage");
    assert_eq!(created["configmap"]["labels"]["tier"], "backend");
    assert_eq!(created["configmap"]["content"]["greeting"], "hello world");
    assert_eq!(created["deployment"]["content"]["replicas"], 3);
    // "s3cr3t" in base64.
    assert_eq!(created["secret"]["content"]["data"]["password"], "czNjcjN0");
    let cluster_ip = created["service"]["content"]["clusterIP"].clone();
    assert!(cluster_ip.as_str().is_some_and(|ip| !ip.is_empty()));
    assert!(
        sqlite_a.stop().is_some(),
        "the server did not stop on SIGTERM"
    );
    let a_dir = sqlite_a.data_dir().to_str().unwrap().to_string();
    let a_keys = snapshot(&bin, ["--data-dir", &a_dir], &scratch.join("a.snapshot"));

    // 2. SQLite -> a fresh etcd: every key, byte for byte.
    let etcd1 = Etcd::start();
    let summary = datastore_ok(
        &bin,
        &[
            "migrate",
            "--from-data-dir",
            &a_dir,
            "--to-datastore-endpoint",
            &etcd1.endpoint,
        ],
    );
    assert_eq!(copied_keys(&summary), a_keys.len(), "{summary}");
    assert!(
        summary.contains(&format!("to etcd {}", etcd1.endpoint)),
        "{summary}"
    );
    let etcd1_keys = snapshot(
        &bin,
        ["--datastore-endpoint", &etcd1.endpoint],
        &scratch.join("etcd1-before.snapshot"),
    );
    assert_eq!(
        etcd1_keys, a_keys,
        "etcd holds other keys than the SQLite database"
    );

    // 5. Migrating into the non-empty etcd again is refused and writes nothing.
    datastore_refused(
        &bin,
        &[
            "migrate",
            "--from-data-dir",
            &a_dir,
            "--to-datastore-endpoint",
            &etcd1.endpoint,
        ],
    );
    let after_refusal = scratch.join("etcd1-after-refusal.snapshot");
    snapshot(
        &bin,
        ["--datastore-endpoint", &etcd1.endpoint],
        &after_refusal,
    );
    assert_eq!(
        std::fs::read(&after_refusal).unwrap(),
        std::fs::read(scratch.join("etcd1-before.snapshot")).unwrap(),
        "a refused migration changed the etcd (keys or revision)"
    );

    // A server on that etcd has every object, and its controllers work.
    let Some(etcd_b) = new_server_with_args(&["--datastore-endpoint", &etcd1.endpoint, ETCD_FLAGS])
    else {
        return;
    };
    assert_same_cluster(&etcd_b, &ns, &created, &pods_3, "after SQLite -> etcd");
    etcd_b.kubectl_ok(&[
        "scale",
        "deployment/nginx-deployment",
        "--replicas=4",
        "-n",
        &ns,
    ]);
    let pods_4 = wait_pods(&etcd_b, &ns, 4);
    for (name, uid) in &pods_3 {
        assert_eq!(pods_4.get(name), Some(uid), "pod {name} was replaced");
    }
    let scaled = objects(&etcd_b, &ns);
    assert_eq!(scaled["deployment"]["content"]["replicas"], 4);
    assert!(
        etcd_b.stop().is_some(),
        "the etcd server did not stop on SIGTERM"
    );

    // 3. etcd -> a new SQLite data directory.
    let Some(sqlite_c) = new_unstarted_server_with_args(&[]) else {
        return;
    };
    let c_dir = sqlite_c.data_dir().to_str().unwrap().to_string();
    let etcd1_final = snapshot(
        &bin,
        ["--datastore-endpoint", &etcd1.endpoint],
        &scratch.join("etcd1.snapshot"),
    );
    let summary = datastore_ok(
        &bin,
        &[
            "migrate",
            "--from-datastore-endpoint",
            &etcd1.endpoint,
            "--to-data-dir",
            &c_dir,
        ],
    );
    assert_eq!(copied_keys(&summary), etcd1_final.len(), "{summary}");
    let c_before = scratch.join("c-before.snapshot");
    let c_keys = snapshot(&bin, ["--data-dir", &c_dir], &c_before);
    assert_eq!(
        c_keys, etcd1_final,
        "the SQLite database holds other keys than etcd"
    );
    // 5. Migrating into the non-empty SQLite database again is refused and writes nothing.
    datastore_refused(
        &bin,
        &[
            "migrate",
            "--from-datastore-endpoint",
            &etcd1.endpoint,
            "--to-data-dir",
            &c_dir,
        ],
    );
    let c_after = scratch.join("c-after-refusal.snapshot");
    snapshot(&bin, ["--data-dir", &c_dir], &c_after);
    assert_eq!(
        std::fs::read(&c_after).unwrap(),
        std::fs::read(&c_before).unwrap(),
        "a refused migration changed the SQLite database (keys or revision)"
    );
    sqlite_c.restart();
    assert_same_cluster(&sqlite_c, &ns, &scaled, &pods_4, "after etcd -> SQLite");
    sqlite_c.kubectl_ok(&[
        "scale",
        "deployment/nginx-deployment",
        "--replicas=2",
        "-n",
        &ns,
    ]);
    let pods_2 = wait_pods(&sqlite_c, &ns, 2);
    assert!(
        pods_2
            .iter()
            .all(|(name, uid)| pods_4.get(name) == Some(uid))
    );
    drop(sqlite_c);

    // 4. Snapshot the etcd cluster, delete it, restore into a new empty etcd.
    let file = scratch.join("cluster.snapshot");
    let file_arg = file.to_str().unwrap().to_string();
    let saved = snapshot(&bin, ["--datastore-endpoint", &etcd1.endpoint], &file);
    assert_eq!(saved, etcd1_final);
    drop(etcd_b);
    drop(etcd1);
    let etcd2 = Etcd::start();
    let summary = datastore_ok(
        &bin,
        &[
            "restore",
            "--datastore-endpoint",
            &etcd2.endpoint,
            &file_arg,
        ],
    );
    assert_eq!(copied_keys(&summary), saved.len(), "{summary}");
    let restored = scratch.join("etcd2-before.snapshot");
    assert_eq!(
        snapshot(&bin, ["--datastore-endpoint", &etcd2.endpoint], &restored),
        saved,
        "the restored etcd holds other keys than the snapshot"
    );
    // 5. Restoring into the non-empty etcd again is refused and writes nothing.
    datastore_refused(
        &bin,
        &[
            "restore",
            "--datastore-endpoint",
            &etcd2.endpoint,
            &file_arg,
        ],
    );
    let after_refusal = scratch.join("etcd2-after-refusal.snapshot");
    snapshot(
        &bin,
        ["--datastore-endpoint", &etcd2.endpoint],
        &after_refusal,
    );
    assert_eq!(
        std::fs::read(&after_refusal).unwrap(),
        std::fs::read(&restored).unwrap(),
        "a refused restore changed the etcd (keys or revision)"
    );
    let Some(etcd_d) = new_server_with_args(&["--datastore-endpoint", &etcd2.endpoint, ETCD_FLAGS])
    else {
        return;
    };
    assert_same_cluster(&etcd_d, &ns, &scaled, &pods_4, "after snapshot + restore");
    // The restored cluster is live: a new object next to the restored ones.
    etcd_d.kubectl_ok(&["create", "configmap", "after-restore", "-n", &ns]);
    let names: BTreeSet<String> = etcd_d
        .kubectl_ok(&["get", "configmaps", "-n", &ns, "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        names.contains("configmap/settings") && names.contains("configmap/after-restore"),
        "{names:?}"
    );
}
