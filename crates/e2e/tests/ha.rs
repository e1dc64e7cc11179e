//! Several servers on one etcd (issue 6): each serves the same objects at the same
//! resourceVersions, exactly one controller manager acts, and when its server is killed the
//! other one's controllers take over.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e::etcd::Etcd;
use e2e::{eventually, json};
use testsupport::{TestServer, new_server_with_args};

fn pod_names(s: &TestServer) -> BTreeSet<String> {
    let v = json(&s.kubectl_ok(&["-n", "ha", "get", "pods", "-l", "app=web", "-o", "json"]));
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// The identity a server campaigns with for `lease`, from its log.
fn identity(s: &TestServer, lease: &str) -> Option<String> {
    let logs = s.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("attempting to acquire leader lease") && l.contains(lease))?;
    let id = line.split("identity=").nth(1)?;
    Some(id.split_whitespace().next()?.to_string())
}

#[test]
fn servers_share_etcd_and_one_leader_acts() {
    let etcd = Etcd::start();
    let args = [
        "--datastore-endpoint",
        etcd.endpoint.as_str(),
        "--fast-leader-election",
    ];
    let Some(a) = new_server_with_args(&args) else {
        return;
    };
    let Some(b) = new_server_with_args(&args) else {
        return;
    };
    a.kubectl_ok(&["create", "namespace", "ha"]);
    a.kubectl_ok(&[
        "-n",
        "ha",
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
    ]);
    // Both servers serve the same object at the same resourceVersion.
    eventually(30, "the same Deployment through both servers", || {
        let path = "jsonpath={.metadata.uid} {.metadata.resourceVersion}";
        let from_a = a.kubectl_ok(&["-n", "ha", "get", "deployment", "web", "-o", path]);
        let from_b = b.kubectl_ok(&["-n", "ha", "get", "deployment", "web", "-o", path]);
        if from_a == from_b {
            Ok(())
        } else {
            Err(format!("{from_a} != {from_b}"))
        }
    });
    // Exactly one controller manager acts: 3 pods, never more.
    let pods = eventually(60, "3 pods", || {
        let p = pod_names(&b);
        if p.len() == 3 {
            Ok(p)
        } else {
            Err(format!("{p:?}"))
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(pod_names(&a), pods, "a second controller manager acted");

    // One holder for each Lease, and it is one of the two servers.
    let holder = |lease: &str| {
        a.kubectl_ok(&[
            "-n",
            "kube-system",
            "get",
            "lease",
            lease,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
    };
    let kcm = holder("kube-controller-manager");
    let ids = [
        identity(&a, "kube-controller-manager").unwrap(),
        identity(&b, "kube-controller-manager").unwrap(),
    ];
    assert!(ids.contains(&kcm), "holder {kcm} is none of {ids:?}");
    assert!(!holder("kube-scheduler").is_empty());

    // Kill the leader's server: the other one's controllers replace a deleted pod.
    let (leader, survivor) = if kcm == ids[0] { (&a, &b) } else { (&b, &a) };
    leader.kill9();
    let victim = pods.iter().next().unwrap().clone();
    let killed = Instant::now();
    survivor.kubectl_ok(&["-n", "ha", "delete", "pod", &victim, "--wait=false"]);
    eventually(30, "a replacement pod from the surviving server", || {
        let p = pod_names(survivor);
        if p.len() == 3 && !p.contains(&victim) {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    });
    assert!(
        killed.elapsed() < Duration::from_secs(20),
        "{:?}",
        killed.elapsed()
    );
    let new_holder = survivor.kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "lease",
        "kube-controller-manager",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_ne!(new_holder, kcm);
}
