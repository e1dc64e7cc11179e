//! Joining a cluster with its token (issue 6): a second server fetches the cluster CA with
//! `--server --token`, a real node agent joins with its own `system:node:<name>` credentials
//! and fails over to the other server when the one it used is killed; a wrong token is
//! refused with a clear message and nothing is written.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::etcd::Etcd;
use e2e::eventually;
use testsupport::{TestServer, new_server_with_args};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn r8s() -> PathBuf {
    testsupport::paths::r8s_binary().expect("the r8s binary")
}

/// Runs `r8s <args>` to completion (it must fail fast): exit success and combined output.
fn run_r8s(args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(r8s());
    cmd.args(args);
    let out = testsupport::process::run_with_timeout(cmd, None, Duration::from_secs(60))
        .expect("r8s started")
        .expect("r8s finished in time");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn subject(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(cert)
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A joined `r8s agent` (real containerd), stopped with its containerd on drop.
struct Agent {
    child: Child,
    dir: tempfile::TempDir,
}

impl Agent {
    fn containerd_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("agent/containerd/containerd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Containers of deleted pods are removed by the agent before it stops.
        let socket = self.dir.path().join("agent/containerd/containerd.sock");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let out = Command::new("ctr")
                .arg("-a")
                .arg(&socket)
                .args(["-n", "k8s.io", "containers", "ls", "-q"])
                .output();
            if out.map_or(true, |o| o.stdout.is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let containerd = self.containerd_pid();
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", "r8s"])
            .stderr(Stdio::null())
            .status();
        if let Some(pid) = containerd {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn lease_renew_time(s: &TestServer, node: &str) -> String {
    s.kubectl_ok(&[
        "-n",
        "kube-node-lease",
        "get",
        "lease",
        node,
        "-o",
        "jsonpath={.spec.renewTime}",
    ])
}

#[test]
fn servers_and_agents_join_with_the_token_and_agents_fail_over() {
    let etcd = Etcd::start();
    let common = [
        "--datastore-endpoint",
        etcd.endpoint.as_str(),
        "--fast-leader-election",
        "--advertise-address",
        "127.0.0.1",
    ];
    let Some(a) = new_server_with_args(&common) else {
        return;
    };
    let token = std::fs::read_to_string(a.data_dir().join("token"))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        token.starts_with("K10") && token.contains("::server:"),
        "{token}"
    );
    let url_a = format!("https://127.0.0.1:{}", a.port());
    let secret = token.rsplit(':').next().unwrap();
    let wrong = token.replace(secret, "not-the-secret");

    // A wrong token: refused with a clear message, nothing written.
    let scratch = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let (ok, out) = run_r8s(&[
        "server",
        "-d",
        scratch.path().to_str().unwrap(),
        "--https-port",
        &port,
        "--bind-address",
        "127.0.0.1",
        "--disable-agent",
        "--datastore-endpoint",
        &etcd.endpoint,
        "--server",
        &url_a,
        "--token",
        &wrong,
    ]);
    let refused = |ok: bool, out: &str, why: &str| {
        assert!(!ok, "{out}");
        assert!(out.contains(why), "{out}");
        let written = files_under(scratch.path());
        assert!(written.is_empty(), "{written:?}");
    };
    refused(ok, &out, "refused the join token");
    let agent_with = |token: &str| {
        run_r8s(&[
            "agent",
            "-d",
            scratch.path().to_str().unwrap(),
            "--server",
            &url_a,
            "--token",
            token,
            "--node-name",
            "intruder",
        ])
    };
    let (ok, out) = agent_with(&wrong);
    refused(ok, &out, "refused the join token");
    // A token of another cluster (another CA hash) is refused before the secret is sent.
    let (ok, out) = agent_with(&format!("K10{}::server:{secret}", "0".repeat(64)));
    refused(ok, &out, "another cluster's CA");

    // The right token: server b shares the cluster CA, and the admin's credentials of a work
    // against b.
    let mut args_b = common.to_vec();
    args_b.extend(["--server", url_a.as_str(), "--token", token.as_str()]);
    let b = new_server_with_args(&args_b).unwrap();
    let ca = |s: &TestServer| std::fs::read(s.data_dir().join("server/tls/server-ca.crt")).unwrap();
    assert_eq!(ca(&a), ca(&b));
    assert_eq!(
        std::fs::read_to_string(b.data_dir().join("token"))
            .unwrap()
            .trim(),
        token
    );
    let url_b = format!("https://127.0.0.1:{}", b.port());
    let kubeconfig_a = a.kubeconfig_path();
    let out = Command::new(testsupport::paths::kubectl_binary().unwrap())
        .arg("--kubeconfig")
        .arg(&kubeconfig_a)
        .args([
            "--server",
            &url_b,
            "get",
            "namespace",
            "kube-system",
            "-o",
            "name",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace/kube-system",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both servers are in the kubernetes endpoints' identity Leases.
    eventually(30, "two API server identity Leases", || {
        let out = a.kubectl_ok(&[
            "-n",
            "kube-system",
            "get",
            "leases",
            "-l",
            "apiserver.kubernetes.io/identity=kube-apiserver",
            "-o",
            "name",
        ]);
        if out.lines().count() == 2 {
            Ok(())
        } else {
            Err(out)
        }
    });

    // A real node agent joins through a (knowing only a).
    let registry = e2e::node::registry();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("pods");
    std::fs::create_dir_all(&logs).unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let kubelet_port = free_port().to_string();
    let child = Command::new(r8s())
        .args(["agent", "-d"])
        .arg(dir.path())
        .args([
            "--server",
            &url_a,
            "--token",
            &token,
            "--node-name",
            "joined-1",
        ])
        .args([
            "--registry-mirror",
            registry,
            "--kubelet-port",
            &kubelet_port,
        ])
        .arg("--pod-log-dir")
        .arg(&logs)
        .arg("--resolv-conf")
        .arg(&resolv)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let agent = Agent { child, dir };
    let ready = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
    eventually(90, "node joined-1 Ready", || {
        let out = a.kubectl(&["get", "node", "joined-1", "-o", ready]);
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        if s == "True" {
            Ok(())
        } else {
            Err(format!("{s}\n{}", agent.log()))
        }
    });
    // Its own credentials, not the admin's.
    let agent_dir = agent.dir.path().join("agent");
    assert_eq!(
        subject(&agent_dir.join("client-kubelet.crt")),
        "subject=CN=system:node:joined-1,O=system:nodes"
    );
    let admin_key = std::fs::read(a.data_dir().join("server/tls/client-admin.key")).unwrap();
    // (the kubeconfig embeds its key in base64: compare a long stretch of the key's body)
    let admin_text = String::from_utf8(admin_key).unwrap();
    let admin_body: String = admin_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let marker = &admin_body[admin_body.len() - 40..];
    for f in files_under(agent.dir.path()) {
        if f.extension()
            .is_some_and(|e| e == "key" || e == "kubeconfig")
        {
            let data = std::fs::read_to_string(&f).unwrap();
            assert!(
                !data.contains(marker),
                "{} holds the admin key",
                f.display()
            );
        }
    }
    assert!(!agent.dir.path().join("server").exists());
    // It learned about b from the identity Leases.
    eventually(30, "the agent knows server b", || {
        let log = agent.log();
        if log.contains(&format!("127.0.0.1:{}", b.port())) {
            Ok(())
        } else {
            Err(log)
        }
    });

    // Kill a: the agent goes on through b (heartbeats and pods).
    a.kill9();
    let killed = Instant::now();
    let before = lease_renew_time(&b, "joined-1");
    eventually(40, "the node Lease renewed through b", || {
        let now = lease_renew_time(&b, "joined-1");
        if now != before {
            Ok(())
        } else {
            Err(format!("{now}\n{}", agent.log()))
        }
    });
    b.kubectl_ok(&["create", "namespace", "joined"]);
    b.kubectl_ok(&[
        "-n",
        "joined",
        "run",
        "after-failover",
        "--image=busybox",
        "--restart=Never",
        "--overrides",
        r#"{"spec":{"nodeName":"joined-1"}}"#,
        "--",
        "sleep",
        "3600",
    ]);
    eventually(90, "a pod running on the agent after the failover", || {
        let phase = b.kubectl_ok(&[
            "-n",
            "joined",
            "get",
            "pod",
            "after-failover",
            "-o",
            "jsonpath={.status.phase}",
        ]);
        if phase == "Running" {
            Ok(())
        } else {
            Err(format!("{phase}\n{}", agent.log()))
        }
    });
    let ready_now = b.kubectl_ok(&["get", "node", "joined-1", "-o", ready]);
    assert_eq!(ready_now, "True");
    assert!(agent.log().contains("switched server"), "{}", agent.log());
    eprintln!("failover to b took {:?}", killed.elapsed());
    b.kubectl_ok(&[
        "-n",
        "joined",
        "delete",
        "pod",
        "after-failover",
        "--grace-period=0",
        "--force",
    ]);
    drop(agent);
}
