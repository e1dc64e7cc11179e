//! A throwaway single-member etcd for the etcd store tests: its own data directory, client and
//! peer URLs on free loopback ports, killed (by its PID) when dropped.
//!
//! The tests fail, rather than skip, when `/usr/bin/etcd` is missing: `scripts/install-deps.sh`
//! installs it (Debian package `etcd-server`).

#![allow(dead_code)] // Each test file uses a different part.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use store::etcd::{EtcdOptions, EtcdStore, EtcdTls};

/// The etcd binary the tests run.
pub const ETCD: &str = "/usr/bin/etcd";

/// How long etcd may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// TLS files for a server started with [`Etcd::start_tls`].
pub struct TlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A running etcd process.
pub struct Etcd {
    child: Child,
    dir: tempfile::TempDir,
    /// The client URL, e.g. `http://127.0.0.1:40000`.
    pub endpoint: String,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

impl Etcd {
    /// Starts a plain-HTTP etcd and waits until it answers.
    pub async fn start() -> Etcd {
        Self::spawn(None).await
    }

    /// Starts an etcd serving clients over TLS and requiring client certificates signed by the
    /// CA of `tls`.
    pub async fn start_tls(tls: &TlsFiles) -> Etcd {
        Self::spawn(Some(tls)).await
    }

    async fn spawn(tls: Option<&TlsFiles>) -> Etcd {
        assert!(
            Path::new(ETCD).exists(),
            "{ETCD} is missing: install the Debian package etcd-server (scripts/install-deps.sh)"
        );
        // tmpfs when there is one: this etcd has no --unsafe-no-fsync.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("temporary directory");
        let (client_port, peer_port) = (free_port(), free_port());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("etcd log file");
        let mut cmd = Command::new(ETCD);
        cmd.arg("--name=test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            .arg("--initial-cluster-state=new")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("etcd log file"))
            .stderr(log);
        if let Some(tls) = tls {
            cmd.arg(format!("--cert-file={}", tls.server_cert.display()))
                .arg(format!("--key-file={}", tls.server_key.display()))
                .arg(format!("--trusted-ca-file={}", tls.ca.display()))
                .arg("--client-cert-auth");
        }
        let child = cmd.spawn().expect("start etcd");
        let mut etcd = Etcd {
            child,
            dir,
            endpoint,
        };
        etcd.wait_ready(tls.is_some()).await;
        etcd
    }

    /// The options reaching this etcd (without TLS).
    pub fn options(&self) -> EtcdOptions {
        EtcdOptions {
            endpoints: vec![self.endpoint.clone()],
            connect_timeout: Duration::from_secs(5),
            ..EtcdOptions::default()
        }
    }

    /// Connects a store with the default options and the given watch buffer.
    pub async fn store(&self, watch_buffer: usize) -> EtcdStore {
        EtcdStore::connect(EtcdOptions {
            watch_buffer,
            ..self.options()
        })
        .await
        .expect("connect to etcd")
    }

    /// What etcd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self, tls: bool) {
        let deadline = Instant::now() + START_TIMEOUT;
        let port = self
            .endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .expect("endpoint port");
        loop {
            if let Some(status) = self.child.try_wait().expect("etcd status") {
                panic!("etcd exited with {status}:\n{}", self.log());
            }
            let open = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok();
            // A TLS server is checked by its test; a plain one must answer a store request.
            if open && (tls || EtcdStore::connect(self.options()).await.is_ok()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // `Child::kill` signals exactly this process (by its PID).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a CA, a server certificate for 127.0.0.1/localhost and a client certificate into `dir`.
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

/// The TLS options of a client of a server made with [`make_tls`].
pub fn client_tls(tls: &TlsFiles) -> EtcdTls {
    EtcdTls {
        ca_file: Some(tls.ca.clone()),
        cert_file: Some(tls.client_cert.clone()),
        key_file: Some(tls.client_key.clone()),
    }
}

/// One member of an [`EtcdCluster`].
struct ClusterMember {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A throwaway etcd cluster of several members on loopback ports, each with a data directory
/// under `/dev/shm`. Members can be stopped (SIGTERM, as an operator would) and started again
/// with their data; dropping the cluster kills every running member by its PID.
pub struct EtcdCluster {
    members: Vec<ClusterMember>,
    initial_cluster: String,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one answers a store request (which needs a
    /// leader).
    pub async fn start(n: usize) -> EtcdCluster {
        assert!(
            Path::new(ETCD).exists(),
            "{ETCD} is missing: install the Debian package etcd-server (scripts/install-deps.sh)"
        );
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("temporary directory");
        // Hold every listener until all ports are chosen so that no two are the same.
        let listeners: Vec<TcpListener> = (0..2 * n)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("local address").port())
            .collect();
        drop(listeners);
        let members: Vec<ClusterMember> = (0..n)
            .map(|i| ClusterMember {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members,
            initial_cluster,
            dir,
        };
        for i in 0..n {
            cluster.spawn(i, "new");
        }
        for i in 0..n {
            cluster.wait_ready(i).await;
        }
        cluster
    }

    fn member_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.members[i].name)
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let dir = self.member_dir(i);
        std::fs::create_dir_all(&dir).expect("member directory");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("etcd.log"))
            .expect("etcd log file");
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let child = Command::new(ETCD)
            .arg(format!("--name={}", m.name))
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={}", self.initial_cluster))
            .arg(format!(
                "--initial-cluster-token=store-test-{}-{}",
                std::process::id(),
                self.members[0].client_port
            ))
            .arg(format!("--initial-cluster-state={state}"))
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("etcd log file"))
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[i].child = Some(child);
    }

    async fn wait_ready(&mut self, i: usize) {
        let deadline = Instant::now() + START_TIMEOUT;
        let opts = EtcdOptions {
            endpoints: vec![self.endpoint(i)],
            connect_timeout: Duration::from_secs(2),
            ..EtcdOptions::default()
        };
        loop {
            if let Some(child) = self.members[i].child.as_mut()
                && let Some(status) = child.try_wait().expect("etcd status")
            {
                panic!("etcd member {i} exited with {status}:\n{}", self.log(i));
            }
            if let Ok(store) = EtcdStore::connect(opts.clone()).await
                && store::Store::current_revision(&store).await.is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd member {i} did not answer within {START_TIMEOUT:?}:\n{}",
                self.log(i)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Every member's client URL, starting with member `first`.
    pub fn endpoints_from(&self, first: usize) -> Vec<String> {
        (0..self.len())
            .map(|k| self.endpoint((first + k) % self.len()))
            .collect()
    }

    /// What member `i` logged so far (all its runs).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.member_dir(i).join("etcd.log")).unwrap_or_default()
    }

    /// Connects a store to every member, member `first` first (the one it uses until it fails).
    pub async fn store_from(&self, first: usize) -> EtcdStore {
        EtcdStore::connect(EtcdOptions {
            endpoints: self.endpoints_from(first),
            connect_timeout: Duration::from_secs(5),
            watch_buffer: 10_000,
            ..EtcdOptions::default()
        })
        .await
        .expect("connect to the etcd cluster")
    }

    /// The index of the member the running members agree is the leader, if they agree.
    pub async fn leader(&self) -> Option<usize> {
        let mut ids = Vec::new();
        let mut leaders = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            let opts = etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(1))
                .with_timeout(Duration::from_secs(2));
            let mut client = etcd_client::Client::connect([self.endpoint(i)], Some(opts))
                .await
                .ok()?;
            let status = client.status().await.ok()?;
            ids.push((i, status.header()?.member_id()));
            leaders.push(status.leader());
        }
        let leader = *leaders.first()?;
        if leader == 0 || leaders.iter().any(|l| *l != leader) {
            return None;
        }
        ids.iter().find(|(_, id)| *id == leader).map(|(i, _)| *i)
    }

    /// Waits until the running members agree on a leader, and returns it.
    pub async fn wait_leader(&self) -> usize {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(leader) = self.leader().await {
                return leader;
            }
            assert!(Instant::now() < deadline, "no agreed etcd leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops member `i` gracefully (SIGTERM by its PID, SIGKILL after 10 s), keeping its data.
    pub async fn stop(&mut self, i: usize) {
        let Some(mut child) = self.members[i].child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to member `i`'s process, by its PID.
    pub fn signal(&self, i: usize, signal: &str) {
        let child = self.members[i].child.as_ref().expect("member is running");
        let status = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} member {i}");
    }

    /// Starts member `i` again with its data and waits until it answers.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} is running");
        self.spawn(i, "existing");
        self.wait_ready(i).await;
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
