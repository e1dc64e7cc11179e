//! Throwaway etcd (Debian's `etcd-server`, `/usr/bin/etcd` 3.4) for tests: [`Etcd`], a single
//! member (plain HTTP or TLS with client certificates, see [`make_tls`]), and [`EtcdCluster`],
//! several members that can be stopped, killed, paused and started again.
//!
//! Ports are free loopback ports; data directories live under `/dev/shm` when there is one
//! (Debian's etcd 3.4 has no `--unsafe-no-fsync` and this VM's fsync is slow) and are removed on
//! drop. Every process is killed by its PID when dropped, and by a reaper
//! ([`crate::server::spawn_reaper`]) when the test process dies first.
//!
//! Everything here blocks (it sleeps while waiting for etcd): async tests call it from
//! `tokio::task::block_in_place` or `spawn_blocking`. The launchers panic (failing the test)
//! when etcd is missing or does not come up: `scripts/install-deps.sh` installs it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::server::spawn_reaper;

/// The etcd binary.
pub const ETCD: &str = "/usr/bin/etcd";

/// How long a member may take to answer `/health` healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a member stopped with SIGTERM may take before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS files of an etcd serving clients over TLS ([`Etcd::start_tls`]), made by [`make_tls`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate (PEM) that signed both certificates.
    pub ca: PathBuf,
    /// The server certificate, for `127.0.0.1` and `localhost`.
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
    /// A client certificate (`CN=r8s-apiserver`).
    pub client_cert: PathBuf,
    /// The client's private key.
    pub client_key: PathBuf,
}

/// Writes a CA (`ca.crt`), a server certificate for 127.0.0.1/localhost (`server.crt`,
/// `server.key`) and a client certificate (`client.crt`, `client.key`) into `dir`.
///
/// # Panics
/// When a key or certificate cannot be made or written.
pub fn make_tls(dir: &Path) -> TlsFiles {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "etcd-test-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let leaf = |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).expect("certificate");
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(
        vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
        "etcd",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(
        Vec::new(),
        "r8s-apiserver",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path
    };
    TlsFiles {
        ca: write("ca.crt", &ca_cert.pem()),
        server_cert: write("server.crt", &server_cert),
        server_key: write("server.key", &server_key),
        client_cert: write("client.crt", &client_cert),
        client_key: write("client.key", &client_key),
    }
}

/// A running etcd process and the reaper that SIGKILLs it if the test process dies.
struct Running {
    etcd: Child,
    reaper: Option<Child>,
}

impl Running {
    /// Disarms the reaper, then SIGKILLs etcd (only its PID) and waits for it.
    fn kill(mut self) {
        if let Some(mut reaper) = self.reaper.take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }
}

/// Sends `signal` (`TERM`, `STOP`, `CONT`...) to the process `pid`; whether `kill` succeeded.
fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One member: fixed ports and data directory, a process or none.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// Plain-HTTP `/health` (and `/metrics`), whether clients speak TLS or not.
    metrics_port: u16,
    dir: PathBuf,
    running: Mutex<Option<Running>>,
}

impl Member {
    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        // A panic while holding the lock leaves an Option of a process: still consistent.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }
}

/// A throwaway etcd cluster of `n` members on loopback ports, each with a data directory under
/// one temporary directory. Members can be stopped (SIGTERM), killed (SIGKILL), paused
/// (SIGSTOP) and started again with their data; dropping the cluster kills every member by PID
/// and removes the directories.
pub struct EtcdCluster {
    members: Vec<Member>,
    tls: Option<TlsFiles>,
    initial_cluster: String,
    token: String,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `n` plain-HTTP members (`--initial-cluster-state new`) and waits until each
    /// answers `/health` healthy (which needs a leader).
    ///
    /// # Panics
    /// When etcd is not installed or a member is not healthy within 30 s.
    pub fn start(n: usize) -> EtcdCluster {
        Self::launch(n, None)
    }

    /// Like [`EtcdCluster::start`], with members serving clients over TLS and requiring client
    /// certificates signed by the CA of `tls` (peers still talk plain HTTP). The HTTP-gateway
    /// helpers ([`EtcdCluster::status`], [`EtcdCluster::keys`], [`EtcdCluster::put`]) answer
    /// an error on such a cluster.
    pub fn start_tls(n: usize, tls: &TlsFiles) -> EtcdCluster {
        Self::launch(n, Some(tls.clone()))
    }

    fn launch(n: usize, tls: Option<TlsFiles>) -> EtcdCluster {
        assert!(n > 0, "an etcd cluster needs at least one member");
        assert!(
            Path::new(ETCD).exists(),
            "{ETCD} is missing: install the Debian package etcd-server (scripts/install-deps.sh)"
        );
        let dir = scratch_dir();
        let ports = free_ports(3 * n);
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[3 * i],
                peer_port: ports[3 * i + 1],
                metrics_port: ports[3 * i + 2],
                dir: dir.path().join(format!("m{i}")),
                running: Mutex::new(None),
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("r8s-test-{}-{}", std::process::id(), ports[0]);
        let cluster = EtcdCluster {
            members,
            tls,
            initial_cluster,
            token,
            dir,
        };
        for i in 0..n {
            cluster.spawn(i, "new");
        }
        for i in 0..n {
            cluster.wait_healthy(i);
        }
        cluster
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no members (never: [`EtcdCluster::start`] needs one).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `i`'s client URL, `http://127.0.0.1:<port>` (`https` with TLS).
    pub fn endpoint(&self, i: usize) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Every member's client URL, comma-separated (for `--datastore-endpoint`).
    pub fn endpoints(&self) -> String {
        self.endpoints_from(0).join(",")
    }

    /// Every member's client URL, starting with member `first` (then `first + 1`, wrapping).
    pub fn endpoints_from(&self, first: usize) -> Vec<String> {
        (0..self.len())
            .map(|k| self.endpoint((first + k) % self.len()))
            .collect()
    }

    /// What member `i` logged so far (stdout and stderr of every run).
    pub fn log(&self, i: usize) -> String {
        self.members[i].log()
    }

    /// The parent of the members' directories.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether member `i`'s process is running (paused counts as running).
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].lock().is_some()
    }

    fn spawn(&self, i: usize, state: &str) {
        let m = &self.members[i];
        std::fs::create_dir_all(&m.dir).expect("creating the member's directory");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.dir.join("etcd.log"))
            .expect("etcd log file");
        let (client, peer) = (self.endpoint(i), m.peer_url());
        let mut cmd = Command::new(ETCD);
        cmd.arg(format!("--name={}", m.name))
            .arg(format!("--data-dir={}", m.dir.join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!(
                "--listen-metrics-urls=http://127.0.0.1:{}",
                m.metrics_port
            ))
            .arg(format!("--initial-cluster={}", self.initial_cluster))
            .arg(format!("--initial-cluster-token={}", self.token))
            .arg(format!("--initial-cluster-state={state}"))
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("etcd log file"))
            .stderr(log);
        if let Some(tls) = &self.tls {
            cmd.arg(format!("--cert-file={}", tls.server_cert.display()))
                .arg(format!("--key-file={}", tls.server_key.display()))
                .arg(format!("--trusted-ca-file={}", tls.ca.display()))
                .arg("--client-cert-auth");
        }
        let etcd = cmd.spawn().expect("starting etcd");
        let reaper = spawn_reaper(etcd.id());
        let previous = m.lock().replace(Running { etcd, reaper });
        if let Some(previous) = previous {
            previous.kill();
        }
    }

    fn wait_healthy(&self, i: usize) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.healthy(i) {
            if let Some(running) = self.members[i].lock().as_mut()
                && let Ok(Some(status)) = running.etcd.try_wait()
            {
                panic!(
                    "etcd member {i} exited with {status}\n--- its log ---\n{}",
                    self.log(i)
                );
            }
            assert!(
                Instant::now() < deadline,
                "etcd member {i} did not become healthy in {START_TIMEOUT:?}\n--- its log ---\n{}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether member `i` answers `/health` healthy (it is running, not paused, and the
    /// cluster has a leader).
    pub fn healthy(&self, i: usize) -> bool {
        http(self.members[i].metrics_port, "GET", "/health", "")
            .is_ok_and(|body| body.contains("\"health\":\"true\""))
    }

    /// Stops member `i` gracefully: SIGTERM by its PID, SIGKILL after 10 s. Its data directory
    /// is kept for [`EtcdCluster::start_member`]. Does nothing when it is not running.
    pub fn stop_member(&self, i: usize) {
        let Some(mut running) = self.members[i].lock().take() else {
            return;
        };
        send_signal(running.etcd.id(), "TERM");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline && matches!(running.etcd.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        running.kill();
    }

    /// Kills member `i` with SIGKILL (no graceful shutdown), keeping its data directory.
    pub fn kill_member(&self, i: usize) {
        if let Some(running) = self.members[i].lock().take() {
            running.kill();
        }
    }

    /// Pauses member `i` (SIGSTOP): its connections stay open and nothing answers.
    ///
    /// # Panics
    /// When it is not running or cannot be signalled.
    pub fn pause_member(&self, i: usize) {
        self.signal(i, "STOP");
    }

    /// Resumes member `i` after [`EtcdCluster::pause_member`] (SIGCONT).
    ///
    /// # Panics
    /// When it is not running or cannot be signalled.
    pub fn resume_member(&self, i: usize) {
        self.signal(i, "CONT");
    }

    fn signal(&self, i: usize, signal: &str) {
        let guard = self.members[i].lock();
        let Some(running) = guard.as_ref() else {
            panic!("etcd member {i} is not running");
        };
        assert!(
            send_signal(running.etcd.id(), signal),
            "kill -{signal} etcd member {i}"
        );
    }

    /// Starts member `i` again with its data directory (`--initial-cluster-state existing`)
    /// and waits until it answers `/health` healthy.
    ///
    /// # Panics
    /// When it is already running or does not become healthy within 30 s.
    pub fn start_member(&self, i: usize) {
        assert!(!self.is_running(i), "etcd member {i} is already running");
        self.spawn(i, "existing");
        self.wait_healthy(i);
    }

    fn gateway_port(&self, i: usize) -> Result<u16, String> {
        if self.tls.is_some() {
            return Err("the HTTP gateway helpers need a plain-HTTP etcd".to_string());
        }
        Ok(self.members[i].client_port)
    }

    /// Member `i`'s status, from its local state (no quorum needed).
    pub fn status(&self, i: usize) -> Result<MemberStatus, String> {
        let v = post_json(self.gateway_port(i)?, "/v3/maintenance/status", "{}")?;
        Ok(MemberStatus {
            member_id: string_field(&v["header"]["member_id"]),
            leader: string_field(&v["leader"]),
            revision: number_field(&v["header"]["revision"])?,
            raft_index: number_field(&v["raftIndex"])?,
        })
    }

    /// The revision of member `i`'s local store.
    pub fn revision(&self, i: usize) -> Result<i64, String> {
        self.status(i).map(|s| s.revision)
    }

    /// The index of the member the running members that answer agree is the leader, if they
    /// agree.
    pub fn leader(&self) -> Option<usize> {
        let statuses: Vec<(usize, MemberStatus)> = (0..self.len())
            .filter(|&i| self.is_running(i))
            .filter_map(|i| self.status(i).ok().map(|s| (i, s)))
            .collect();
        let leader = &statuses.first()?.1.leader;
        if statuses.iter().any(|(_, s)| &s.leader != leader) {
            return None;
        }
        statuses
            .iter()
            .find(|(_, s)| &s.member_id == leader)
            .map(|(i, _)| *i)
    }

    /// Waits until the running members agree on a leader, and returns it.
    ///
    /// # Panics
    /// When they do not within 30 s.
    pub fn wait_leader(&self) -> usize {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(leader) = self.leader() {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed etcd leader in {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The keys under `prefix` in member `i`'s local store (a serializable read: what this
    /// member has applied, without asking the leader), sorted.
    pub fn keys(&self, i: usize, prefix: &str) -> Result<Vec<String>, String> {
        let mut end = prefix.as_bytes().to_vec();
        match end.last_mut() {
            Some(last) if *last < 0xff => *last += 1,
            _ => return Err(format!("unsupported prefix {prefix:?}")),
        }
        let body = serde_json::json!({
            "key": BASE64.encode(prefix),
            "range_end": BASE64.encode(&end),
            "keys_only": true,
            "serializable": true,
        });
        let v = post_json(self.gateway_port(i)?, "/v3/kv/range", &body.to_string())?;
        let mut keys = v["kvs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|kv| {
                let raw = kv["key"].as_str().ok_or("a key-value without a key")?;
                let bytes = BASE64
                    .decode(raw)
                    .map_err(|e| format!("bad base64 {raw:?}: {e}"))?;
                String::from_utf8(bytes).map_err(|e| format!("a key that is not UTF-8: {e}"))
            })
            .collect::<Result<Vec<String>, String>>()?;
        keys.sort();
        Ok(keys)
    }

    /// Writes `key` = `value` through member `i` (a linearizable put, as any client's).
    pub fn put(&self, i: usize, key: &str, value: &str) -> Result<(), String> {
        let body = serde_json::json!({
            "key": BASE64.encode(key),
            "value": BASE64.encode(value),
        });
        post_json(self.gateway_port(i)?, "/v3/kv/put", &body.to_string()).map(drop)
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        // Before `dir` is dropped (fields drop after this): no process writes into it then.
        for m in &self.members {
            if let Some(running) = m.lock().take() {
                running.kill();
            }
        }
    }
}

/// The status of one member (`/v3/maintenance/status`, answered from its local state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// This member's ID.
    pub member_id: String,
    /// The ID of the member it believes is the leader (`0` when it knows of none).
    pub leader: String,
    /// The revision of its local key-value store.
    pub revision: i64,
    /// The raft index it has reached.
    pub raft_index: u64,
}

/// A running single-member etcd (an [`EtcdCluster`] of one), killed by PID when dropped.
pub struct Etcd {
    cluster: EtcdCluster,
    /// Its client URL, `http://127.0.0.1:<port>` (`https` with TLS).
    pub endpoint: String,
}

impl Etcd {
    /// Starts a plain-HTTP etcd and waits until `/health` answers healthy.
    ///
    /// # Panics
    /// When etcd is not installed or not healthy within 30 s.
    pub fn start() -> Etcd {
        Self::from_cluster(EtcdCluster::start(1))
    }

    /// Starts an etcd serving clients over TLS and requiring client certificates signed by the
    /// CA of `tls` (made by [`make_tls`]), and waits until it is healthy.
    ///
    /// # Panics
    /// As [`Etcd::start`].
    pub fn start_tls(tls: &TlsFiles) -> Etcd {
        Self::from_cluster(EtcdCluster::start_tls(1, tls))
    }

    fn from_cluster(cluster: EtcdCluster) -> Etcd {
        let endpoint = cluster.endpoint(0);
        Etcd { cluster, endpoint }
    }

    /// What etcd logged so far.
    pub fn log(&self) -> String {
        self.cluster.log(0)
    }

    /// Whether it answers `/health` healthy.
    pub fn healthy(&self) -> bool {
        self.cluster.healthy(0)
    }

    /// Its status (plain HTTP only).
    pub fn status(&self) -> Result<MemberStatus, String> {
        self.cluster.status(0)
    }

    /// The keys under `prefix`, sorted (plain HTTP only).
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>, String> {
        self.cluster.keys(0, prefix)
    }

    /// Writes `key` = `value` (plain HTTP only).
    pub fn put(&self, key: &str, value: &str) -> Result<(), String> {
        self.cluster.put(0, key, value)
    }
}

/// A temporary directory on tmpfs when there is one: Debian's etcd 3.4 has no
/// `--unsafe-no-fsync`.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary directory")
}

/// `n` distinct ports that were free a moment ago on 127.0.0.1 (every listener is held until
/// all are chosen, so no two are the same).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

/// One HTTP/1.0 request to `127.0.0.1:port` (1.0: the answer is never chunked); the body of a
/// 200 answer.
fn http(port: u16, method: &str, path: &str, body: &str) -> Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: etcd\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes())
        .map_err(|e| format!("sending {method} {path} to {addr}: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("reading the answer to {method} {path} from {addr}: {e}"))?;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{method} {path} on {addr}: no HTTP answer: {out:?}"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("{method} {path} on {addr}: {status}: {body}"));
    }
    Ok(body.to_string())
}

fn post_json(port: u16, path: &str, body: &str) -> Result<serde_json::Value, String> {
    let text = http(port, "POST", path, body)?;
    serde_json::from_str(&text).map_err(|e| format!("POST {path}: not JSON ({e}): {text}"))
}

/// A grpc-gateway 64-bit field: a JSON string (or number); omitted means zero.
fn string_field(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => "0".to_string(),
    }
}

fn number_field<T: std::str::FromStr>(v: &serde_json::Value) -> Result<T, String> {
    string_field(v)
        .parse()
        .map_err(|_| format!("not a number in an etcd answer: {v}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gateway_numbers_are_strings_or_absent() {
        assert_eq!(number_field::<i64>(&serde_json::json!("42")), Ok(42));
        assert_eq!(number_field::<i64>(&serde_json::json!(7)), Ok(7));
        assert_eq!(number_field::<i64>(&serde_json::Value::Null), Ok(0));
        assert!(number_field::<i64>(&serde_json::json!("x")).is_err());
    }

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(6);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 6);
    }

    #[test]
    fn single_member_keys_and_put() {
        let etcd = Etcd::start();
        assert!(etcd.endpoint.starts_with("http://127.0.0.1:"));
        assert!(etcd.healthy());
        etcd.put("/t/b", "2").unwrap();
        etcd.put("/t/a", "1").unwrap();
        etcd.put("/u/c", "3").unwrap();
        assert_eq!(etcd.keys("/t/").unwrap(), ["/t/a", "/t/b"]);
        assert_eq!(etcd.status().unwrap().revision, 4);
    }

    #[test]
    fn tls_member_serves_https_and_health_over_http() {
        let certs = tempfile::tempdir().unwrap();
        let tls = make_tls(certs.path());
        let etcd = Etcd::start_tls(&tls);
        assert!(etcd.endpoint.starts_with("https://127.0.0.1:"));
        assert!(etcd.healthy(), "/health answers on the plain metrics URL");
        // Plain HTTP to the TLS client port is refused; the gateway helpers say why.
        assert!(etcd.keys("/").unwrap_err().contains("plain-HTTP"));
    }

    #[test]
    fn cluster_members_stop_pause_and_come_back() {
        let cluster = EtcdCluster::start(3);
        assert_eq!(cluster.len(), 3);
        assert_eq!(cluster.endpoints().split(',').count(), 3);
        assert_eq!(cluster.endpoints_from(1)[0], cluster.endpoint(1));
        let leader = cluster.wait_leader();
        let member = (leader + 1) % 3;
        let other = (member + 1) % 3;
        cluster.put(leader, "/t/before", "1").unwrap();

        cluster.stop_member(member);
        assert!(!cluster.is_running(member));
        assert!(!cluster.healthy(member));
        assert!(cluster.keys(member, "/t/").is_err());
        cluster.put(other, "/t/during", "2").unwrap();
        let target = cluster.revision(other).unwrap();
        cluster.start_member(member);
        let deadline = Instant::now() + Duration::from_secs(20);
        while cluster.revision(member).unwrap() < target {
            assert!(
                Instant::now() < deadline,
                "member {member} did not catch up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            cluster.keys(member, "/t/").unwrap(),
            ["/t/before", "/t/during"]
        );

        cluster.pause_member(member);
        assert!(cluster.is_running(member));
        assert!(!cluster.healthy(member), "a paused member does not answer");
        cluster.resume_member(member);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cluster.healthy(member) {
            assert!(Instant::now() < deadline, "member {member} did not resume");
            std::thread::sleep(Duration::from_millis(100));
        }

        cluster.kill_member(member);
        assert!(!cluster.is_running(member));
        cluster.start_member(member);
        assert!(cluster.is_running(member));
        assert!(cluster.healthy(member));
    }
}
