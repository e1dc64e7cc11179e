//! A cluster whose server runs its node agent (real containerd + runc + CNI), for the
//! real-container tests. Only one such cluster runs at a time on a machine (the agent owns the
//! host's pod bridge), so [`NodeCluster::start`] serializes them; dropping one deletes every
//! pod, waits until their containers are gone, stops the server and then its containerd.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use testsupport::{TestServer, WITH_AGENT, new_server_with_args};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// Builds the offline images and starts the local registry once per test process
/// (`images/setup.sh`); returns the registry address.
///
/// # Panics
/// If the script fails: the real-container tests cannot run without images.
pub fn registry() -> &'static str {
    static REGISTRY: OnceLock<String> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        if let Ok(r) = std::env::var("R8S_REGISTRY") {
            return r;
        }
        let root = workspace_root();
        let dir = std::env::var("R8S_IMAGES_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target").join("r8s-images"));
        let out = Command::new(root.join("images").join("setup.sh"))
            .arg(&dir)
            .output()
            .expect("running images/setup.sh");
        assert!(
            out.status.success(),
            "images/setup.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        "127.0.0.1:5000".to_string()
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A server with its node agent, cleaned up on drop.
pub struct NodeCluster {
    /// The server.
    pub server: TestServer,
    _logs: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl NodeCluster {
    /// Starts a server with its agent, using the local registry as the mirror of docker.io.
    /// Returns `None` (after printing why) when the machine lacks what the tests need.
    pub fn start(extra: &[&str]) -> Option<NodeCluster> {
        static TURN: Mutex<()> = Mutex::new(());
        let turn = TURN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let registry = registry();
        let port = free_port().to_string();
        let log_dir = tempfile::Builder::new()
            .prefix("r8s-e2e-pod-logs-")
            .tempdir()
            .expect("a temporary directory for pod logs");
        let logs = log_dir.path().join("pods");
        std::fs::create_dir_all(&logs).expect("the pod log directory");
        let logs = logs.display().to_string();
        // Names outside the cluster go to a resolver that refuses at once (nothing listens on
        // 127.0.0.1:53), never to the host's real one.
        let resolv = log_dir.path().join("resolv.conf");
        std::fs::write(&resolv, "nameserver 127.0.0.1\n").expect("writing resolv.conf");
        let resolv = resolv.display().to_string();
        let mut args = vec![
            WITH_AGENT,
            "--registry-mirror",
            registry,
            "--kubelet-port",
            &port,
            "--pod-log-dir",
            &logs,
            "--node-name",
            "node-1",
            "--resolv-conf",
            &resolv,
        ];
        args.extend_from_slice(extra);
        let server = new_server_with_args(&args)?;
        let cluster = NodeCluster {
            server,
            _logs: log_dir,
            _turn: turn,
        };
        cluster.wait_node_ready();
        Some(cluster)
    }

    fn wait_node_ready(&self) {
        crate::eventually(60, "node-1 Ready", || {
            let out = self.server.kubectl(&[
                "get",
                "node",
                "node-1",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            let s = String::from_utf8_lossy(&out.stdout).to_string();
            if s == "True" { Ok(()) } else { Err(s) }
        });
    }

    /// The agent's containerd socket.
    pub fn containerd_socket(&self) -> PathBuf {
        self.server
            .data_dir()
            .join("agent/containerd/containerd.sock")
    }

    /// The ids of the containers (including sandboxes) containerd holds.
    pub fn runtime_containers(&self) -> Vec<String> {
        let out = Command::new("ctr")
            .arg("-a")
            .arg(self.containerd_socket())
            .args(["-n", "k8s.io", "containers", "ls", "-q"])
            .output();
        match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn containerd_pid(&self) -> Option<i32> {
        std::fs::read_to_string(
            self.server
                .data_dir()
                .join("agent/containerd/containerd.pid"),
        )
        .ok()?
        .trim()
        .parse()
        .ok()
    }
}

impl Drop for NodeCluster {
    fn drop(&mut self) {
        let _ = self.server.kubectl_timeout(
            &[
                "delete",
                "pods",
                "--all",
                "-A",
                "--grace-period=0",
                "--force",
                "--wait=false",
            ],
            None,
            Duration::from_secs(30),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && !self.runtime_containers().is_empty() {
            std::thread::sleep(Duration::from_millis(300));
        }
        let pid = self.containerd_pid();
        self.server.kill9();
        // The service proxy's table (the next cluster would replace it anyway).
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", "r8s"])
            .stderr(std::process::Stdio::null())
            .status();
        if let Some(pid) = pid {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// `GET http://addr/path` with a short timeout: the status code and body.
pub fn http_get(host: &str, port: u16, path: &str) -> Result<(u16, String), String> {
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not HTTP: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((code, body))
}

/// The pods of `ns` matching the label `selector`, as JSON.
pub fn pods_json(ns: &crate::Namespace, selector: &str) -> Vec<serde_json::Value> {
    crate::json(&ns.kubectl_ok(&["get", "pods", "-l", selector, "-o", "json"]))["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Whether a pod is Running, Ready and not being deleted.
pub fn is_running_ready(p: &serde_json::Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}
