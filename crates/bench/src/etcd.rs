//! The high-availability benchmark of issue 6 (`bench --etcd`).
//!
//! 1. Create latency at a paced (open-loop) rate, the same phase as the API server benchmark,
//!    first on the embedded SQLite store, then on etcd, in the same run.
//! 2. Leader failover: one etcd, two servers on it, a Deployment; SIGKILL the server holding
//!    the Lease `kube-system/kube-controller-manager`, delete one pod of the Deployment
//!    through the other server, and time until the replacement pod exists (the surviving
//!    server's controller manager acts) and until the Lease holder changes. Once with
//!    upstream timings (15/10/2 s), once with `--fast-leader-election` (4/3/1 s).
//!
//! etcd is Debian's 3.4 (`/usr/bin/etcd`) with its data dir on `/dev/shm`: this machine's
//! fsync is slow and etcd 3.4 has no `--unsafe-no-fsync`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, Command};

use crate::BenchError;
use crate::controlplane::{client_for, kube_err};
use crate::report::{Figure, Report};
use crate::scenarios;
use crate::server::{ServerProcess, free_port, spawn_reaper, tail};
use crate::stats::ms;

/// Debian's etcd (package `etcd-server`, 3.4).
pub const ETCD: &str = "/usr/bin/etcd";
/// How long etcd may take to answer `/health` healthy.
const ETCD_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The Lease whose holder runs the controllers.
const KCM_LEASE: &str = "kube-controller-manager";
/// Namespace of the paced creates.
const NS_CREATE: &str = "bench-create";
/// Namespace of the failover Deployment.
const NS_HA: &str = "bench-ha";
/// Name and `app` label of the failover Deployment.
const DEPLOYMENT: &str = "web";

/// Rates and durations of one `--etcd` run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Rate of the paced creates, per second.
    pub rate: u32,
    /// Length of the paced create phase on each backend.
    pub paced_for: Duration,
    /// Idle time between a server's start and its paced creates.
    pub settle: Duration,
    /// Replicas of the failover Deployment.
    pub replicas: i32,
    /// How long a failover may take before it is reported as not measured.
    pub failover_timeout: Duration,
}

impl Plan {
    /// The full run: 200 creates/s for 20 s on each backend.
    pub fn full() -> Self {
        Self {
            rate: 200,
            paced_for: Duration::from_secs(20),
            settle: Duration::from_secs(3),
            replicas: 3,
            failover_timeout: Duration::from_secs(60),
        }
    }

    /// A shorter run: 5 s of paced creates (the failovers cannot be shortened).
    pub fn quick() -> Self {
        Self {
            paced_for: Duration::from_secs(5),
            ..Self::full()
        }
    }
}

/// A single-member etcd on free loopback ports with a fresh data dir (on `/dev/shm` when it
/// exists). Killed (SIGKILL to its PID only) by [`EtcdProcess::stop`] or on drop; a helper
/// `sh` kills it too if the benchmark itself dies.
pub struct EtcdProcess {
    child: Child,
    reaper: Option<(Child, ChildStdin)>,
    dir: TempDir,
    endpoint: String,
}

impl EtcdProcess {
    /// Starts [`ETCD`] and waits until its `/health` answers healthy.
    pub async fn start() -> Result<Self, BenchError> {
        if !Path::new(ETCD).exists() {
            return Err(BenchError::Etcd(format!(
                "{ETCD} is missing: install the Debian package etcd-server \
                 (scripts/install-deps.sh)"
            )));
        }
        let shm = Path::new("/dev/shm");
        let mut builder = tempfile::Builder::new();
        builder.prefix("r8s-bench-etcd-");
        let dir = if shm.is_dir() {
            builder.tempdir_in(shm)
        } else {
            builder.tempdir()
        }
        .map_err(|e| BenchError::io("creating etcd's temporary directory", e))?;
        let (port, peer_port) = (free_port().await?, free_port().await?);
        let endpoint = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log_path = dir.path().join("etcd.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| BenchError::io(format!("creating {}", log_path.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| BenchError::io("duplicating the log file handle", e))?;
        let mut child = Command::new(ETCD)
            .arg("--name=bench")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=bench={peer}"))
            .arg("--initial-cluster-state=new")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {ETCD}"), e))?;
        let reaper = child.id().and_then(spawn_reaper);
        let deadline = Instant::now() + ETCD_READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BenchError::Etcd(format!(
                    "exited with {status} before becoming healthy\n--- etcd log ---\n{}",
                    tail(&log_path, 30)
                )));
            }
            if healthy(port).await {
                break;
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Etcd(format!(
                    "not healthy after {ETCD_READY_TIMEOUT:?}\n--- etcd log ---\n{}",
                    tail(&log_path, 30)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            reaper,
            dir,
            endpoint,
        })
    }

    /// The client URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// etcd's PID (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The temporary directory holding etcd's data dir and `etcd.log`.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Kills etcd (SIGKILL to its PID) and waits for it; removes its data dir.
    pub async fn stop(mut self) {
        if let Some((mut reaper, stdin)) = self.reaper.take() {
            let _ = reaper.kill().await;
            drop(stdin);
        }
        let _ = self.child.kill().await;
    }
}

/// `GET /health` over plain HTTP/1.1; true when etcd says `"health":"true"` within 2 s.
async fn healthy(port: u16) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: etcd\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        Some(String::from_utf8_lossy(&out).contains("\"health\":\"true\""))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}

/// Runs the `--etcd` benchmark: paced creates on SQLite and on etcd, then a failover with
/// upstream and one with fast leader-election timings.
pub async fn run(r8s: &Path, plan: &Plan, progress: &dyn Fn(&str)) -> Result<Report, BenchError> {
    let mut report = Report::default();
    if let Some(load) = crate::cpu::load_average().await {
        report
            .notes
            .push(format!("1-minute load average before the run: {load:.2}"));
    }

    // 1. The same paced creates on both backends.
    progress("SQLite: starting a server");
    let srv = ServerProcess::start(r8s).await?;
    let result = paced(&srv, None, plan, "SQLite", 10.0, &mut report, progress).await;
    srv.stop().await;
    result?;

    progress("etcd: starting etcd and a server on it");
    let etcd = EtcdProcess::start().await?;
    let srv =
        ServerProcess::start_with_args(r8s, &["--datastore-endpoint", etcd.endpoint()]).await?;
    let result = paced(&srv, etcd.pid(), plan, "etcd", 20.0, &mut report, progress).await;
    srv.stop().await;
    etcd.stop().await;
    result?;

    // 2. Failover, upstream then fast timings.
    for profile in [Profile::Upstream, Profile::Fast] {
        progress(&format!(
            "failover with {}: etcd, two servers, a Deployment of {}",
            profile.label(),
            plan.replicas
        ));
        let name = format!(
            "leader failover, {}: SIGKILL of the leader → replacement pod",
            profile.label()
        );
        match failover(r8s, plan, profile, progress).await {
            Ok(f) => {
                let secs = f.replaced.as_secs_f64();
                let value = format!("{secs:.2} s");
                report.figures.push(match profile {
                    Profile::Upstream => Figure::at_most(name, value, secs, 20.0, "≤ 20 s"),
                    Profile::Fast => Figure::info(name, value),
                });
                report.figures.push(Figure::info(
                    format!("  Lease {KCM_LEASE} holder changed"),
                    format!(
                        "{:.2} s after the kill (controllers acted {} ms later)",
                        f.lease_moved.as_secs_f64(),
                        ms(f.replaced.saturating_sub(f.lease_moved))
                    ),
                ));
                report.notes.extend(f.notes);
            }
            Err(e) => {
                let target = match profile {
                    Profile::Upstream => "≤ 20 s",
                    Profile::Fast => "-",
                };
                report
                    .figures
                    .push(Figure::failed(name, e.to_string(), target));
            }
        }
    }
    report.notes.push(
        "etcd 3.4 (Debian) runs with its data dir on /dev/shm (tmpfs): this machine's fsync is \
         slow and etcd 3.4 has no --unsafe-no-fsync, so etcd's writes are not durable here; \
         SQLite's are (fsync'd to disk)"
            .into(),
    );
    report
        .notes
        .push("the benchmark client, the servers and etcd share the same 2 CPUs".into());
    Ok(report)
}

/// Paced creates on `srv` (whose store is `backend`), with the CPU of the server and, if
/// given, of etcd.
async fn paced(
    srv: &ServerProcess,
    etcd_pid: Option<u32>,
    plan: &Plan,
    backend: &str,
    p99_ms: f64,
    report: &mut Report,
    progress: &dyn Fn(&str),
) -> Result<(), BenchError> {
    let admin = srv.connector.h2().await?;
    scenarios::ensure_namespace(&admin, NS_CREATE).await?;
    // As in the API server benchmark, the server has been up a while when the phase starts
    // (its controllers have finished their start-up writes).
    tokio::time::sleep(plan.settle).await;
    progress(&format!(
        "{backend}: paced creates, {}/s for {} s",
        plan.rate,
        plan.paced_for.as_secs()
    ));
    let meter = crate::meter(srv).await;
    let etcd_cpu = match etcd_pid {
        Some(pid) => crate::cpu::cpu_time(&pid.to_string())
            .await
            .ok()
            .map(|t| (pid, t, Instant::now())),
        None => None,
    };
    let run =
        scenarios::paced_creates(&admin, NS_CREATE, "create", plan.rate, plan.paced_for).await;
    let name = format!(
        "create latency @ {}/s paced, {} s, {backend}",
        plan.rate,
        plan.paced_for.as_secs()
    );
    crate::push_latency(
        report,
        &name,
        &run,
        p99_ms,
        &format!("p99 ≤ {p99_ms:.0} ms"),
    );
    crate::cpu_line(report, meter, &format!("paced creates on {backend}")).await;
    if let Some((pid, before, at)) = etcd_cpu
        && let Ok(after) = crate::cpu::cpu_time(&pid.to_string()).await
    {
        let cores = after.saturating_sub(before).as_secs_f64() / at.elapsed().as_secs_f64();
        report
            .figures
            .push(Figure::info("  of which etcd", format!("{cores:.2} cores")));
    }
    Ok(())
}

/// Leader-election timings of a failover run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// Upstream: lease 15 s, renew deadline 10 s, retry period 2 s.
    Upstream,
    /// `--fast-leader-election`: 4 s, 3 s, 1 s.
    Fast,
}

impl Profile {
    fn label(self) -> &'static str {
        match self {
            Self::Upstream => "upstream timings (lease 15 s, renew 10 s, retry 2 s)",
            Self::Fast => "--fast-leader-election (lease 4 s, renew 3 s, retry 1 s)",
        }
    }
}

/// What one failover measured, from the SIGKILL of the leader's server.
#[derive(Debug)]
struct Failover {
    /// Until the Lease names another holder.
    lease_moved: Duration,
    /// Until the pod replacing the deleted one exists.
    replaced: Duration,
    /// Anything odd seen on the way.
    notes: Vec<String>,
}

/// One failover: etcd, two servers, a Deployment; kill the controller manager's server,
/// delete a pod through the other, time the replacement and the Lease change.
async fn failover(
    r8s: &Path,
    plan: &Plan,
    profile: Profile,
    progress: &dyn Fn(&str),
) -> Result<Failover, BenchError> {
    let etcd = EtcdProcess::start().await?;
    let mut args = vec!["--datastore-endpoint", etcd.endpoint()];
    if profile == Profile::Fast {
        args.push("--fast-leader-election");
    }
    let a = ServerProcess::start_with_args(r8s, &args).await?;
    let b = ServerProcess::start_with_args(r8s, &args).await?;
    let (ca, cb) = (client_for(&a).await?, client_for(&b).await?);
    create_deployment(&ca, plan.replicas).await?;

    // Ready: every replica exists, the Lease has a holder, both servers campaign.
    let ready_by = Instant::now() + Duration::from_secs(60);
    let before = loop {
        let pods = active_pods(&ca).await?;
        if pods.len() == usize::try_from(plan.replicas).unwrap_or(0) {
            break pods;
        }
        if Instant::now() >= ready_by {
            return Err(BenchError::Unexpected(format!(
                "{} of {} pods of the Deployment after 60 s\n--- server log ---\n{}",
                pods.len(),
                plan.replicas,
                a.log_tail(20)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (id_a, id_b) = loop {
        if let (Some(x), Some(y)) = (
            identity(&a.log_path(), KCM_LEASE),
            identity(&b.log_path(), KCM_LEASE),
        ) {
            break (x, y);
        }
        if Instant::now() >= ready_by {
            return Err(BenchError::Unexpected(format!(
                "no \"attempting to acquire leader lease\" line for {KCM_LEASE} in both logs"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let holder = lease_holder(&ca).await?;
    let (leader, survivor, client, survivor_id) = if holder == id_a {
        (a, b, cb, id_b)
    } else if holder == id_b {
        (b, a, ca, id_a)
    } else {
        return Err(BenchError::Unexpected(format!(
            "Lease {KCM_LEASE} held by {holder:?}, neither server ({id_a}, {id_b})"
        )));
    };
    let victim = before
        .iter()
        .next()
        .cloned()
        .ok_or_else(|| BenchError::Unexpected("the Deployment has no pod".into()))?;
    // Watch the pods and the Leases through the survivor from now on: event arrival times
    // are the measure (the watches are open before the kill, so nothing is missed).
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), NS_HA);
    let pod_rv = pod_api
        .list_metadata(&ListParams::default().labels(&format!("app={DEPLOYMENT}")))
        .await
        .map_err(kube_err("listing the Deployment's pods"))?
        .metadata
        .resource_version
        .unwrap_or_default();
    let lease_api: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let lease_rv = lease_api
        .list_metadata(&ListParams::default())
        .await
        .map_err(kube_err("listing Leases"))?
        .metadata
        .resource_version
        .unwrap_or_default();
    let watch = WatchParams::default().timeout(290);
    let mut pod_events = pod_api
        .watch(&watch.clone().labels(&format!("app={DEPLOYMENT}")), &pod_rv)
        .await
        .map_err(kube_err("watching pods"))?
        .boxed();
    let mut lease_events = lease_api
        .watch(&watch, &lease_rv)
        .await
        .map_err(kube_err("watching Leases"))?
        .boxed();
    progress(&format!(
        "killing server PID {} (leader {holder}), deleting pod {victim} through the other",
        leader.pid().unwrap_or(0)
    ));

    let killed = Instant::now();
    leader.stop().await;
    pod_api
        .delete(&victim, &DeleteParams::default())
        .await
        .map_err(kube_err("deleting a pod through the surviving server"))?;

    let mut lease_moved = None;
    let mut replaced = None;
    let mut notes = Vec::new();
    let deadline = tokio::time::sleep_until((killed + plan.failover_timeout).into());
    tokio::pin!(deadline);
    while lease_moved.is_none() || replaced.is_none() {
        tokio::select! {
            ev = lease_events.try_next() => match ev {
                Ok(Some(WatchEvent::Added(l) | WatchEvent::Modified(l))) => {
                    let h = l.spec.and_then(|s| s.holder_identity).unwrap_or_default();
                    if lease_moved.is_none()
                        && l.metadata.name.as_deref() == Some(KCM_LEASE)
                        && !h.is_empty()
                        && h != holder
                    {
                        lease_moved = Some(killed.elapsed());
                        if h != survivor_id {
                            notes.push(format!(
                                "{}: the new Lease holder {h} is not the surviving server \
                                 ({survivor_id})",
                                profile.label()
                            ));
                        }
                    }
                }
                Ok(Some(WatchEvent::Error(e))) => {
                    return Err(BenchError::Unexpected(format!("Lease watch: {e}")));
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err(BenchError::Unexpected("the Lease watch ended".into())),
                Err(e) => return Err(kube_err("watching Leases")(e)),
            },
            ev = pod_events.try_next() => match ev {
                Ok(Some(WatchEvent::Added(p))) => {
                    if replaced.is_none() && !before.contains(&p.name_any()) {
                        replaced = Some(killed.elapsed());
                    }
                }
                Ok(Some(WatchEvent::Error(e))) => {
                    return Err(BenchError::Unexpected(format!("pod watch: {e}")));
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err(BenchError::Unexpected("the pod watch ended".into())),
                Err(e) => return Err(kube_err("watching pods")(e)),
            },
            () = &mut deadline => {
                return Err(BenchError::Unexpected(format!(
                    "after {:?}: Lease moved {}, replacement pod {}\n--- surviving server log ---\n{}",
                    plan.failover_timeout,
                    if lease_moved.is_some() { "yes" } else { "no" },
                    if replaced.is_some() { "yes" } else { "no" },
                    survivor.log_tail(20)
                )));
            }
        }
    }
    survivor.stop().await;
    etcd.stop().await;
    match (lease_moved, replaced) {
        (Some(lease_moved), Some(replaced)) => Ok(Failover {
            lease_moved,
            replaced,
            notes,
        }),
        _ => Err(BenchError::Unexpected(
            "the failover loop ended without both times".into(),
        )),
    }
}

/// Creates namespace [`NS_HA`] and the Deployment [`DEPLOYMENT`] with `replicas` pods that no
/// node runs (they stay Pending: the ReplicaSet controller creates them all the same).
async fn create_deployment(client: &Client, replicas: i32) -> Result<(), BenchError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS_HA}}))
        .map_err(|e| BenchError::Unexpected(format!("namespace object: {e}")))?;
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .map_err(kube_err("creating the failover namespace"))?;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": DEPLOYMENT, "namespace": NS_HA},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "template": {
                "metadata": {"labels": {"app": DEPLOYMENT}},
                "spec": {"containers": [{"name": "web", "image": "registry.example.com/web:1"}]},
            },
        },
    }))
    .map_err(|e| BenchError::Unexpected(format!("deployment object: {e}")))?;
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS_HA);
    api.create(&PostParams::default(), &deployment)
        .await
        .map_err(kube_err("creating the failover Deployment"))?;
    Ok(())
}

/// Names of the Deployment's pods that are not being deleted.
async fn active_pods(client: &Client) -> Result<BTreeSet<String>, BenchError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS_HA);
    let list = api
        .list(&ListParams::default().labels(&format!("app={DEPLOYMENT}")))
        .await
        .map_err(kube_err("listing the Deployment's pods"))?;
    Ok(list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.name_any())
        .collect())
}

/// `spec.holderIdentity` of the Lease `kube-system/kube-controller-manager` (empty if none).
async fn lease_holder(client: &Client) -> Result<String, BenchError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let lease = api
        .get_opt(KCM_LEASE)
        .await
        .map_err(kube_err("reading the controller manager's Lease"))?;
    Ok(lease
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .unwrap_or_default())
}

/// The identity a server campaigns with for `lease`, from its log file.
fn identity(log: &Path, lease: &str) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    identity_in(&text, lease)
}

/// The identity in the first "attempting to acquire leader lease" line about `lease`.
fn identity_in(log: &str, lease: &str) -> Option<String> {
    let line = log.lines().find(|l| {
        l.contains("attempting to acquire leader lease") && l.contains(&format!("/{lease}"))
    })?;
    let id = line.split("identity=").nth(1)?;
    Some(id.split_whitespace().next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_plan_only_shortens_the_paced_phase() {
        let (q, f) = (Plan::quick(), Plan::full());
        assert_eq!(f.rate, 200);
        assert_eq!(f.paced_for, Duration::from_secs(20));
        assert_eq!(q.paced_for, Duration::from_secs(5));
        assert_eq!((q.rate, q.replicas), (f.rate, f.replicas));
    }

    #[test]
    fn identity_is_read_from_the_matching_lease_line() {
        let log = "2026-01-01T00:00:00Z  INFO informers::leaderelection: attempting to acquire \
                   leader lease lease=kube-system/kube-scheduler identity=host_aaa\n\
                   2026-01-01T00:00:00Z  INFO informers::leaderelection: attempting to acquire \
                   leader lease lease=kube-system/kube-controller-manager identity=host_bbb\n";
        assert_eq!(
            identity_in(log, "kube-controller-manager").as_deref(),
            Some("host_bbb")
        );
        assert_eq!(
            identity_in(log, "kube-scheduler").as_deref(),
            Some("host_aaa")
        );
        assert_eq!(identity_in("nothing here\n", "kube-scheduler"), None);
    }

    #[tokio::test]
    async fn etcd_starts_answers_health_and_is_killed_on_stop() {
        if !Path::new(ETCD).exists() {
            eprintln!("skipped: {ETCD} is not installed");
            return;
        }
        let etcd = EtcdProcess::start().await.expect("etcd starts");
        let pid = etcd.pid().expect("running");
        let port: u16 = etcd
            .endpoint()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("endpoint has a port");
        assert!(healthy(port).await);
        let root = etcd.root().to_path_buf();
        assert!(root.join("data").is_dir());
        etcd.stop().await;
        assert!(!healthy(port).await, "etcd still answers after stop");
        assert!(!root.exists(), "etcd's data dir is left behind");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "etcd PID {pid} still exists"
        );
    }
}
