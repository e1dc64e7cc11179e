//! The node benchmark (`bench --node`): a real `r8s server` plus a real node agent (`r8s agent`,
//! which runs its own containerd) on this machine, with images from a local registry.
//!
//! Figures:
//! 1. pod startup latency with the image present: N busybox pods created one at a time, each
//!    timed from just before its create call to the moment one watch on pods (opened before
//!    the first create) shows it `Running`; with a breakdown from the watch and containerd's
//!    own timestamps (scheduled, RunPodSandbox begins, CreateContainer begins, started);
//! 2. the raw CRI floor on the same containerd: RunPodSandbox + CreateContainer +
//!    StartContainer of the same image, one iteration right after each measured pod (so both
//!    series see the same pod counts), and the ratio of the two medians;
//! 3. the agent's RSS when pod #30 is Running, with containerd's and the shims' beside it.
//!
//! Only one agent may run on a machine (it owns the host bridge), so run the benchmark under
//! `flock /tmp/r8s-node.lock`. Whatever happens (error, panic, Ctrl-C) the run ends by deleting
//! its pods, waiting until containerd has no container left, stopping the agent, then the
//! agent's containerd (which outlives the agent by design), then the server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use kubelet::cri::{Cri, api};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::BenchError;
use crate::report::{Figure, Report, Verdict};
use crate::server::ServerProcess;
use crate::stats::{Summary, ms, percentile};

/// Namespace of the measured pods.
const NS: &str = "bench-node";
/// CRI namespace (metadata only) of the raw sandboxes; they carry none of the agent's labels,
/// so the agent's orphan sweep leaves them alone.
const RAW_NS: &str = "bench-raw";
/// Node name of the agent.
const NODE_NAME: &str = "bench-node";
/// The image of every pod (resolved through the registry mirror).
const POD_IMAGE: &str = "busybox";
/// The same image as CRI sees it.
const CRI_IMAGE: &str = "docker.io/library/busybox:latest";
/// How long one measured pod may take to be Running.
const POD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the first pod (which pulls the images) may take.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the node may take to register and be Ready.
const NODE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the idle CPU is sampled after the last pod.
const IDLE_WINDOW: Duration = Duration::from_secs(5);
/// How long cleanup waits for the agent to remove every container.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(90);

/// Sizes of the node run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Pods created one at a time (and kept running).
    pub pods: usize,
    /// Raw CRI iterations (one after each of the first `raw_runs` pods).
    pub raw_runs: usize,
    /// The pod count at which RSS is read.
    pub memory_at: usize,
    /// The local registry (`host:port`), mirror of docker.io and registry.k8s.io.
    pub registry: String,
}

impl Default for Plan {
    /// The sizes: 50 pods, 50 raw iterations, RSS at 30 pods, registry on :5000.
    fn default() -> Self {
        Self {
            pods: 50,
            raw_runs: 50,
            memory_at: 30,
            registry: "127.0.0.1:5000".into(),
        }
    }
}

fn kube_err(what: &str) -> impl Fn(kube::Error) -> BenchError + '_ {
    move |e| BenchError::Unexpected(format!("{what}: {e}"))
}

/// Runs the node benchmark with the `r8s` binary at `r8s`. Errors before the agent runs are
/// returned; a phase that fails later (or Ctrl-C) ends the run with a failed figure and the
/// agent's log tail in the report, after the same cleanup.
pub async fn run(r8s: &Path, plan: &Plan, progress: &dyn Fn(&str)) -> Result<Report, BenchError> {
    let mut report = Report::default();
    if let Some(load) = crate::cpu::load_average().await {
        report
            .notes
            .push(format!("1-minute load average before the run: {load:.2}"));
    }
    if ensure_registry(&plan.registry, progress).await? {
        report.notes.push(
            "the registry was started by images/setup.sh and keeps running for later runs \
             (stop it with images/registry.sh stop target/r8s-images/registry)"
                .into(),
        );
    }
    let srv = ServerProcess::start_with_args(r8s, &[]).await?;
    let data = srv.root().join("data");
    progress(&format!(
        "server PID {} (data in {}); starting r8s agent",
        srv.pid().unwrap_or(0),
        data.display()
    ));
    let client = match client_for(&data).await {
        Ok(c) => c,
        Err(e) => {
            srv.stop().await;
            return Err(e);
        }
    };
    let agent = match Agent::start(r8s, &data, srv.root(), &plan.registry).await {
        Ok(a) => a,
        Err(e) => {
            srv.stop().await;
            return Err(e);
        }
    };
    let sock = data
        .join("agent")
        .join("containerd")
        .join("containerd.sock");
    let env = Env {
        client,
        agent_pid: agent.pid(),
        sock,
        data,
        logs: srv.root().join("logs"),
    };
    let outcome = tokio::select! {
        r = std::panic::AssertUnwindSafe(phases(&env, plan, &mut report, progress)).catch_unwind() => match r {
            Ok(r) => r,
            Err(_) => Err(BenchError::Unexpected("the node benchmark panicked".into())),
        },
        _ = tokio::signal::ctrl_c() => Err(BenchError::Unexpected("interrupted".into())),
    };
    if let Err(e) = &outcome {
        report.figures.push(Figure::failed(
            "node benchmark",
            e.to_string(),
            "every phase",
        ));
        report.notes.push(format!(
            "run stopped early: {e}\nagent log tail:\n{}",
            tail(&agent.log, 20)
        ));
    }
    progress("cleaning up: deleting pods, draining containerd, stopping agent, containerd, server");
    let cleanup_notes = cleanup(&env, agent).await;
    report.notes.extend(cleanup_notes);
    srv.stop().await;
    Ok(report)
}

/// What the phases need from the started processes.
struct Env {
    client: Client,
    agent_pid: Option<u32>,
    /// The agent's containerd socket.
    sock: PathBuf,
    /// The server's (and the agent's) data dir.
    data: PathBuf,
    /// The pod log directory.
    logs: PathBuf,
}

/// The node agent process, killed on drop; a helper `sh` kills it too if the benchmark dies.
struct Agent {
    child: Child,
    reaper: Option<(Child, ChildStdin)>,
    log: PathBuf,
}

impl Agent {
    async fn start(
        r8s: &Path,
        data: &Path,
        root: &Path,
        registry: &str,
    ) -> Result<Self, BenchError> {
        let log = root.join("agent.log");
        let logs = root.join("logs");
        let port = free_port().await?;
        let out = std::fs::File::create(&log)
            .map_err(|e| BenchError::io(format!("creating {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| BenchError::io("duplicating the log file handle", e))?;
        let child = Command::new(r8s)
            .arg("agent")
            .arg("--kubeconfig")
            .arg(data.join("kubeconfig.yaml"))
            .arg("-d")
            .arg(data)
            .args(["--node-name", NODE_NAME, "--registry-mirror", registry])
            .arg("--pod-log-dir")
            .arg(&logs)
            .args(["--kubelet-port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {} agent", r8s.display()), e))?;
        let reaper = child.id().and_then(spawn_reaper);
        Ok(Self { child, reaper, log })
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM, up to 15 s to exit, then SIGKILL.
    async fn stop(mut self) -> Option<String> {
        if let Some((mut reaper, stdin)) = self.reaper.take() {
            let _ = reaper.kill().await;
            drop(stdin);
        }
        let pid = self.child.id()?;
        signal(pid, "TERM").await;
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(_) => None,
            Err(_) => {
                let _ = self.child.kill().await;
                Some("the agent did not exit within 15 s of SIGTERM; killed".into())
            }
        }
    }
}

/// `sh` blocked on a pipe only this process writes to: when the benchmark exits, however it
/// exits, the pipe closes and `sh` SIGKILLs `pid`.
fn spawn_reaper(pid: u32) -> Option<(Child, ChildStdin)> {
    let mut child = Command::new("sh")
        .args([
            "-c",
            "read _ignored; kill -9 \"$1\" 2>/dev/null",
            "r8s-bench-reaper",
            &pid.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let stdin = child.stdin.take()?;
    Some((child, stdin))
}

/// Sends `SIG<sig>` to `pid` with `kill(1)` (the workspace forbids `unsafe`).
async fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// A port that was free a moment ago on 127.0.0.1.
async fn free_port() -> Result<u16, BenchError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| BenchError::io("binding 127.0.0.1:0", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| BenchError::io("reading a bound port", e))
}

pub(crate) async fn client_for(data: &Path) -> Result<Client, BenchError> {
    let path = data.join("kubeconfig.yaml");
    let kc = kube::config::Kubeconfig::read_from(&path)
        .map_err(|e| BenchError::Unexpected(format!("kubeconfig: {e}")))?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| BenchError::Unexpected(format!("kubeconfig: {e}")))?;
    cfg.read_timeout = Some(Duration::from_secs(600));
    Client::try_from(cfg).map_err(kube_err("client"))
}

/// Whether an HTTP server answers `GET /v2/` at `registry` (any status counts).
async fn registry_answers(registry: &str) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(registry).await.ok()?;
        let req = format!("GET /v2/ HTTP/1.1\r\nHost: {registry}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1."))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Starts the local registry with `images/setup.sh target/r8s-images` when none answers;
/// whether it did.
async fn ensure_registry(registry: &str, progress: &dyn Fn(&str)) -> Result<bool, BenchError> {
    if registry_answers(registry).await {
        return Ok(false);
    }
    let script = Path::new("images/setup.sh");
    if !script.exists() {
        return Err(BenchError::Unexpected(format!(
            "no registry answers at {registry} and there is no images/setup.sh here to start one"
        )));
    }
    progress(&format!(
        "no registry at {registry}: running images/setup.sh target/r8s-images {registry}"
    ));
    let out = Command::new("bash")
        .args(["images/setup.sh", "target/r8s-images", registry])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| BenchError::io("running images/setup.sh", e))?;
    if !out.status.success() {
        return Err(BenchError::Unexpected(format!(
            "images/setup.sh failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !registry_answers(registry).await {
        if Instant::now() >= deadline {
            return Err(BenchError::Unexpected(format!(
                "images/setup.sh ran but no registry answers at {registry}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(true)
}

/// The moments the watch first showed a pod in each state.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    scheduled: Option<Instant>,
    running: Option<Instant>,
}

/// What the watch task reports.
enum WatchNote {
    /// The initial list is done: later events are live.
    Ready,
    /// The pod was first seen bound to a node.
    Scheduled(String, Instant),
    /// The pod was first seen Running.
    Running(String, Instant),
}

/// Watches pods in [`NS`] and reports the first time each is seen scheduled and Running.
async fn watch_pods(client: Client, tx: mpsc::UnboundedSender<WatchNote>) {
    let api: Api<Pod> = Api::namespaced(client, NS);
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    while let Some(ev) = stream.next().await {
        let now = Instant::now();
        let pod = match ev {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
            Ok(watcher::Event::InitDone) => {
                if tx.send(WatchNote::Ready).is_err() {
                    return;
                }
                continue;
            }
            Ok(_) | Err(_) => continue,
        };
        let name = pod.name_any();
        let entry = seen.entry(name.clone()).or_default();
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some();
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if bound && entry.scheduled.is_none() {
            entry.scheduled = Some(now);
            if tx.send(WatchNote::Scheduled(name.clone(), now)).is_err() {
                return;
            }
        }
        if running && entry.running.is_none() {
            entry.running = Some(now);
            if tx.send(WatchNote::Running(name, now)).is_err() {
                return;
            }
        }
    }
}

/// The receiving side of [`watch_pods`], remembering everything it has seen.
struct Watch {
    rx: mpsc::UnboundedReceiver<WatchNote>,
    seen: HashMap<String, Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    async fn open(client: &Client) -> Result<Self, BenchError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(watch_pods(client.clone(), tx));
        let ready = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(n) = rx.recv().await {
                if matches!(n, WatchNote::Ready) {
                    return true;
                }
            }
            false
        })
        .await;
        if ready != Ok(true) {
            task.abort();
            return Err(BenchError::Unexpected("the pod watch did not start".into()));
        }
        Ok(Self {
            rx,
            seen: HashMap::new(),
            task,
        })
    }

    /// Waits until the watch has shown `name` Running; the moment it did.
    async fn running(&mut self, name: &str, timeout: Duration) -> Option<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(t) = self.seen.get(name).and_then(|s| s.running) {
                return Some(t);
            }
            let note = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .ok()??;
            match note {
                WatchNote::Ready => {}
                WatchNote::Scheduled(n, t) => self.seen.entry(n).or_default().scheduled = Some(t),
                WatchNote::Running(n, t) => self.seen.entry(n).or_default().running = Some(t),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn pod_object(name: &str) -> Pod {
    let v = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "bench-node"}},
        "spec": {
            "containers": [{
                "name": "sleep",
                "image": POD_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]
            }]
        }
    });
    serde_json::from_value(v).expect("a static, valid Pod")
}

/// One measured pod.
#[derive(Debug, Clone)]
struct PodRun {
    name: String,
    /// Wall clock just before the create call (to compare with containerd's timestamps).
    wall: SystemTime,
    /// Instant just before the create call.
    sent: Instant,
    /// The create call returned.
    acked: Instant,
    /// The watch showed it Running.
    running: Instant,
}

/// One raw CRI iteration.
#[derive(Debug, Clone, Copy)]
struct RawRun {
    sandbox: Duration,
    create: Duration,
    start: Duration,
}

impl RawRun {
    fn total(&self) -> Duration {
        self.sandbox + self.create + self.start
    }
}

/// Resident memory of the agent, its containerd and its shims.
#[derive(Debug, Clone, Copy, Default)]
struct NodeMemory {
    agent_kib: u64,
    agent_hwm_kib: u64,
    agent_anon_kib: u64,
    agent_file_kib: u64,
    containerd_kib: u64,
    shims: usize,
    shims_rss_kib: u64,
    shims_pss_kib: u64,
}

async fn phases(
    env: &Env,
    plan: &Plan,
    report: &mut Report,
    progress: &dyn Fn(&str),
) -> Result<(), BenchError> {
    let client = &env.client;
    let started = Instant::now();
    wait_node_ready(client, NODE_TIMEOUT).await?;
    report.figures.push(Figure::info(
        "agent start → node Ready (includes starting containerd)",
        format!("{} ms", ms(started.elapsed())),
    ));
    let ns: Api<Namespace> = Api::all(client.clone());
    let body: Namespace =
        serde_json::from_value(json!({"metadata": {"name": NS}})).expect("a valid Namespace");
    ns.create(&PostParams::default(), &body)
        .await
        .map_err(kube_err("creating the namespace"))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut watch = Watch::open(client).await?;
    let cri = Cri::connect(&env.sock)
        .await
        .map_err(|e| BenchError::Unexpected(e.to_string()))?;

    // Warm-up: pulls pause and busybox, then leaves containerd empty again.
    progress("warm-up pod (pulls the pause and busybox images)");
    let t0 = Instant::now();
    create_retrying(&pods, "warmup").await?;
    let Some(ran) = watch.running("warmup", WARMUP_TIMEOUT).await else {
        return Err(BenchError::Unexpected(format!(
            "the warm-up pod was not Running within {WARMUP_TIMEOUT:?}"
        )));
    };
    report.figures.push(Figure::info(
        "warm-up pod, images pulled from the local registry (create → Running)",
        format!("{} ms", ms(ran - t0)),
    ));
    pods.delete("warmup", &DeleteParams::default().grace_period(0))
        .await
        .map_err(kube_err("deleting the warm-up pod"))?;
    drain(&env.sock, Duration::from_secs(60)).await?;

    // Phase 1 (+ 2 interleaved, + 3 at `memory_at`).
    progress(&format!(
        "{} pods one at a time, each followed by one raw CRI run",
        plan.pods
    ));
    let meters = Meters::start(env).await;
    let mut runs: Vec<PodRun> = Vec::with_capacity(plan.pods);
    let mut raw: Vec<RawRun> = Vec::with_capacity(plan.raw_runs);
    let mut raw_errors = 0usize;
    let mut memory = None;
    for i in 0..plan.pods {
        let name = format!("pod-{i:03}");
        let wall = SystemTime::now();
        let sent = Instant::now();
        pods.create(&PostParams::default(), &pod_object(&name))
            .await
            .map_err(kube_err("creating a pod"))?;
        let acked = Instant::now();
        let Some(running) = watch.running(&name, POD_TIMEOUT).await else {
            return Err(BenchError::Unexpected(format!(
                "{name} was not Running within {POD_TIMEOUT:?}"
            )));
        };
        runs.push(PodRun {
            name,
            wall,
            sent,
            acked,
            running,
        });
        if i + 1 == plan.memory_at {
            memory = Some(node_memory(env).await);
        }
        if i < plan.raw_runs {
            match raw_run(&cri, &env.logs, i).await {
                Ok(r) => raw.push(r),
                Err(e) => {
                    raw_errors += 1;
                    report.notes.push(format!("raw CRI run {i}: {e}"));
                }
            }
        }
        if (i + 1) % 10 == 0 {
            progress(&format!("{} pods Running", i + 1));
        }
    }
    let usage = meters.usage().await;
    let end_memory = node_memory(env).await;
    progress(&format!(
        "{IDLE_WINDOW:?} idle with {} pods (CPU)",
        plan.pods
    ));
    let idle = Meters::start(env).await;
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle_usage = idle.usage().await;

    // Report.
    let lat: Vec<Duration> = runs.iter().map(|r| r.running - r.sent).collect();
    let raw_total: Vec<Duration> = raw.iter().map(RawRun::total).collect();
    push_startup(report, &lat, plan.pods);
    let breakdown = breakdown(&cri, &runs, &watch).await;
    for (label, samples) in breakdown {
        if let Some(s) = Summary::of(samples) {
            report.figures.push(Figure::info(
                format!("  {label}"),
                format!("p50 {} ms, p99 {} ms", ms(s.p50), ms(s.p99)),
            ));
        }
    }
    push_raw(report, &raw, raw_errors);
    if let (Some(r8s), Some(floor)) = (Summary::of(lat), Summary::of(raw_total)) {
        let ratio = r8s.p50.as_secs_f64() / floor.p50.as_secs_f64();
        report.figures.push(Figure::at_most(
            "r8s pod startup p50 / raw CRI p50",
            format!("{ratio:.2}× ({} ms / {} ms)", ms(r8s.p50), ms(floor.p50)),
            ratio,
            1.5,
            "≤ 1.5×",
        ));
    }
    match memory {
        Some(m) => push_memory(report, &m, plan.memory_at, true),
        None => report.notes.push(format!(
            "RSS not read: fewer than {} pods were created",
            plan.memory_at
        )),
    }
    push_memory(report, &end_memory, plan.pods, false);
    if let Some(u) = usage {
        report.figures.push(Figure::info(
            format!("CPU during the {} pods (mean, % of one core)", plan.pods),
            u,
        ));
    }
    if let Some(u) = idle_usage {
        report.figures.push(Figure::info(
            format!("CPU idle with {} pods Running (% of one core)", plan.pods),
            u,
        ));
    }
    report.notes.push(format!(
        "each raw CRI run follows the pod of the same index, so both series see the same \
         number of running pods (0 to {}); the raw run's stop and remove are not timed",
        plan.pods
    ));
    report.notes.push(
        "raw CRI = RunPodSandbox (own uid, log dir, cgroup parent /kubepods/besteffort/pod<uid>, \
         pod network and IPC, container PID namespace, cluster DNS) + CreateContainer + \
         StartContainer of busybox `sleep 3600`, without ImageStatus, mounts or a status write"
            .into(),
    );
    Ok(())
}

/// Creates pod `name`, retrying while the namespace's default service account is not there yet.
async fn create_retrying(pods: &Api<Pod>, name: &str) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match pods.create(&PostParams::default(), &pod_object(name)).await {
            Ok(_) => return Ok(()),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(kube_err("creating the warm-up pod")(e)),
        }
    }
}

async fn wait_node_ready(client: &Client, timeout: Duration) -> Result<(), BenchError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(n)) = nodes.get_opt(NODE_NAME).await {
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Unexpected(format!(
                "node {NODE_NAME} not Ready within {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One raw CRI pod: RunPodSandbox + CreateContainer + StartContainer (timed), then stop and
/// remove (not timed).
async fn raw_run(cri: &Cri, logs: &Path, i: usize) -> Result<RawRun, BenchError> {
    let uid = random_uid();
    let name = format!("raw-{i:03}");
    let log_dir = logs.join(format!("{RAW_NS}_{name}_{uid}"));
    tokio::fs::create_dir_all(&log_dir)
        .await
        .map_err(|e| BenchError::io(format!("creating {}", log_dir.display()), e))?;
    let ns_opts = api::NamespaceOption {
        network: api::NamespaceMode::Pod as i32,
        pid: api::NamespaceMode::Container as i32,
        ipc: api::NamespaceMode::Pod as i32,
        ..Default::default()
    };
    let sandbox_config = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.clone(),
            uid: uid.clone(),
            namespace: RAW_NS.into(),
            attempt: 0,
        }),
        hostname: name.clone(),
        log_directory: log_dir.display().to_string(),
        dns_config: Some(api::DnsConfig {
            servers: vec!["10.43.0.10".into()],
            searches: vec![
                format!("{RAW_NS}.svc.cluster.local"),
                "svc.cluster.local".into(),
                "cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        }),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(ns_opts.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let container = api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: "sleep".into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: CRI_IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "3600".into()],
        log_path: "sleep/0.log".into(),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(api::LinuxContainerResources {
                cpu_shares: 2,
                ..Default::default()
            }),
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(ns_opts),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let mut rt = cri.runtime.clone();
    let t0 = Instant::now();
    let sandbox_id = rt
        .run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .map_err(|e| BenchError::Unexpected(format!("RunPodSandbox: {}", e.message())))?
        .into_inner()
        .pod_sandbox_id;
    let t1 = Instant::now();
    let timed = async {
        let cid = rt
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.clone(),
                config: Some(container),
                sandbox_config: Some(sandbox_config),
            })
            .await
            .map_err(|e| BenchError::Unexpected(format!("CreateContainer: {}", e.message())))?
            .into_inner()
            .container_id;
        let t2 = Instant::now();
        rt.start_container(api::StartContainerRequest { container_id: cid })
            .await
            .map_err(|e| BenchError::Unexpected(format!("StartContainer: {}", e.message())))?;
        let t3 = Instant::now();
        Ok::<_, BenchError>(RawRun {
            sandbox: t1 - t0,
            create: t2 - t1,
            start: t3 - t2,
        })
    }
    .await;
    let removed = remove_sandbox(cri, &sandbox_id).await;
    kubelet::cgroups::remove_pod(&uid).await;
    let _ = tokio::fs::remove_dir_all(&log_dir).await;
    let run = timed?;
    removed?;
    Ok(run)
}

async fn remove_sandbox(cri: &Cri, id: &str) -> Result<(), BenchError> {
    let mut rt = cri.runtime.clone();
    rt.stop_pod_sandbox(api::StopPodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .map_err(|e| BenchError::Unexpected(format!("StopPodSandbox: {}", e.message())))?;
    rt.remove_pod_sandbox(api::RemovePodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .map_err(|e| BenchError::Unexpected(format!("RemovePodSandbox: {}", e.message())))?;
    Ok(())
}

/// A random UUID-shaped string (version 4 layout).
fn random_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Per-pod intervals from the watch and containerd's timestamps (wall clock, nanoseconds):
/// create → ack → scheduled (watch) → the sandbox's containerd record (containerd 1.6 takes
/// the sandbox's `created_at` from it, made a few ms into RunPodSandbox) → the container's
/// `created_at` (set at the end of CreateContainer) → `started_at` (StartContainer) → Running
/// (watch).
async fn breakdown(cri: &Cri, runs: &[PodRun], watch: &Watch) -> Vec<(String, Vec<Duration>)> {
    let mut rt = cri.runtime.clone();
    let mut sandboxes: HashMap<String, (String, i64)> = HashMap::new();
    if let Ok(list) = rt
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
    {
        for s in list.into_inner().items {
            if let Some(m) = s.metadata
                && m.namespace == NS
            {
                sandboxes.insert(s.id, (m.name, s.created_at));
            }
        }
    }
    // pod name → (sandbox created, container created, container started), ns since the epoch.
    let mut marks: HashMap<String, (i64, i64, i64)> = HashMap::new();
    if let Ok(list) = rt
        .list_containers(api::ListContainersRequest { filter: None })
        .await
    {
        for c in list.into_inner().containers {
            let Some((pod, sandbox_created)) = sandboxes.get(&c.pod_sandbox_id) else {
                continue;
            };
            let Ok(st) = rt
                .container_status(api::ContainerStatusRequest {
                    container_id: c.id.clone(),
                    verbose: false,
                })
                .await
            else {
                continue;
            };
            if let Some(st) = st.into_inner().status {
                marks.insert(
                    pod.clone(),
                    (*sandbox_created, st.created_at, st.started_at),
                );
            }
        }
    }
    let labels = [
        "create call → API ack",
        "API ack → watch shows it scheduled",
        "scheduled → sandbox container record (early in RunPodSandbox; containerd clock)",
        "→ container created (rest of RunPodSandbox, agent, CreateContainer)",
        "→ container started (StartContainer)",
        "container started → watch shows Running (agent's status write)",
    ];
    let mut out: Vec<(String, Vec<Duration>)> =
        labels.iter().map(|l| (l.to_string(), Vec::new())).collect();
    for r in runs {
        out[0].1.push(r.acked - r.sent);
        let Some(sched) = watch.seen.get(&r.name).and_then(|s| s.scheduled) else {
            continue;
        };
        out[1].1.push(sched.saturating_duration_since(r.acked));
        let Some(&(sb, cc, cs)) = marks.get(&r.name) else {
            continue;
        };
        // Instants → wall clock through the create call's pair of readings.
        let wall = |i: Instant| r.wall + (i - r.sent);
        let at = |ns: i64| SystemTime::UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64);
        let since = |a: SystemTime, b: SystemTime| b.duration_since(a).unwrap_or_default();
        out[2].1.push(since(wall(sched), at(sb)));
        out[3].1.push(since(at(sb), at(cc)));
        out[4].1.push(since(at(cc), at(cs)));
        out[5].1.push(since(at(cs), wall(r.running)));
    }
    out
}

fn push_startup(report: &mut Report, lat: &[Duration], n: usize) {
    let name = format!(
        "pod startup, image present: create → Running in a watch ({n} pods, one at a time)"
    );
    let target = "p50 ≤ 400 ms, p99 ≤ 1 s";
    let Some(s) = Summary::of(lat.to_vec()) else {
        report
            .figures
            .push(Figure::failed(name, "no pod became Running", target));
        return;
    };
    let mut sorted = lat.to_vec();
    sorted.sort_unstable();
    let p90 = percentile(&sorted, 90.0).unwrap_or_default();
    let pass = s.p50 <= Duration::from_millis(400) && s.p99 <= Duration::from_secs(1);
    report.figures.push(Figure {
        name,
        value: format!(
            "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (n={})",
            ms(s.p50),
            ms(p90),
            ms(s.p99),
            ms(s.max),
            s.count
        ),
        target: target.into(),
        verdict: if pass { Verdict::Pass } else { Verdict::Miss },
    });
}

fn push_raw(report: &mut Report, raw: &[RawRun], errors: usize) {
    let name =
        "raw CRI RunPodSandbox + CreateContainer + StartContainer, same image and containerd";
    let Some(s) = Summary::of(raw.iter().map(RawRun::total).collect()) else {
        report
            .figures
            .push(Figure::info(name, "not measured: every raw run failed"));
        return;
    };
    report.figures.push(Figure::info(
        name,
        format!(
            "p50 {} ms, p99 {} ms, max {} ms (n={}{})",
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            s.count,
            if errors > 0 {
                format!(", {errors} failed")
            } else {
                String::new()
            }
        ),
    ));
    for (label, pick) in [
        (
            "RunPodSandbox",
            (|r: &RawRun| r.sandbox) as fn(&RawRun) -> Duration,
        ),
        ("CreateContainer", |r| r.create),
        ("StartContainer", |r| r.start),
    ] {
        if let Some(s) = Summary::of(raw.iter().map(pick).collect()) {
            report.figures.push(Figure::info(
                format!("  {label}"),
                format!("p50 {} ms, p99 {} ms", ms(s.p50), ms(s.p99)),
            ));
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn push_memory(report: &mut Report, m: &NodeMemory, pods: usize, target: bool) {
    let name = format!("agent RSS with {pods} pods Running");
    let value = format!(
        "VmRSS {:.1} MiB (anon {:.1}, file {:.1}; VmHWM {:.1} MiB)",
        mib(m.agent_kib),
        mib(m.agent_anon_kib),
        mib(m.agent_file_kib),
        mib(m.agent_hwm_kib)
    );
    if target {
        report.figures.push(Figure::at_most(
            name,
            value,
            mib(m.agent_kib),
            30.0,
            "≤ 30 MiB",
        ));
    } else {
        report.figures.push(Figure::info(name, value));
    }
    report.figures.push(Figure::info(
        format!("  containerd RSS, {pods} pods"),
        format!("{:.1} MiB", mib(m.containerd_kib)),
    ));
    report.figures.push(Figure::info(
        format!("  containerd-shim-runc-v2 RSS, {pods} pods"),
        format!(
            "{:.1} MiB in {} shims (sum of VmRSS; PSS sum {:.1} MiB)",
            mib(m.shims_rss_kib),
            m.shims,
            mib(m.shims_pss_kib)
        ),
    ));
}

/// A `Key:   123 kB` field of a `/proc` text.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

async fn proc_status(pid: u32) -> Option<String> {
    tokio::fs::read_to_string(format!("/proc/{pid}/status"))
        .await
        .ok()
}

/// The PID in the agent's `containerd.pid`.
async fn containerd_pid(data: &Path) -> Option<u32> {
    let path = data.join("agent").join("containerd").join("containerd.pid");
    tokio::fs::read_to_string(path)
        .await
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// PIDs of the shims serving the containerd at `sock` (their command line names the socket).
async fn shim_pids(sock: &Path) -> Vec<u32> {
    let sock = sock.display().to_string();
    let mut out = Vec::new();
    let Ok(mut rd) = tokio::fs::read_dir("/proc").await else {
        return out;
    };
    while let Ok(Some(e)) = rd.next_entry().await {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = tokio::fs::read(e.path().join("cmdline")).await else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("containerd-shim") && cmd.contains(&sock) {
            out.push(pid);
        }
    }
    out
}

async fn node_memory(env: &Env) -> NodeMemory {
    let mut m = NodeMemory::default();
    if let Some(pid) = env.agent_pid
        && let Some(st) = proc_status(pid).await
    {
        m.agent_kib = kib_field(&st, "VmRSS").unwrap_or(0);
        m.agent_hwm_kib = kib_field(&st, "VmHWM").unwrap_or(0);
        m.agent_anon_kib = kib_field(&st, "RssAnon").unwrap_or(0);
        m.agent_file_kib = kib_field(&st, "RssFile").unwrap_or(0);
    }
    if let Some(pid) = containerd_pid(&env.data).await
        && let Some(st) = proc_status(pid).await
    {
        m.containerd_kib = kib_field(&st, "VmRSS").unwrap_or(0);
    }
    for pid in shim_pids(&env.sock).await {
        if let Some(st) = proc_status(pid).await {
            m.shims += 1;
            m.shims_rss_kib += kib_field(&st, "VmRSS").unwrap_or(0);
        }
        if let Ok(r) = tokio::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).await {
            m.shims_pss_kib += kib_field(&r, "Pss").unwrap_or(0);
        }
    }
    m
}

/// CPU time of the agent, its containerd and the shims over a phase.
struct Meters {
    t0: Instant,
    agent: Option<(u32, Duration)>,
    containerd: Option<(u32, Duration)>,
}

impl Meters {
    async fn start(env: &Env) -> Self {
        let read = |pid: Option<u32>| async move {
            let pid = pid?;
            Some((pid, crate::cpu::cpu_time(&pid.to_string()).await.ok()?))
        };
        Self {
            t0: Instant::now(),
            agent: read(env.agent_pid).await,
            containerd: read(containerd_pid(&env.data).await).await,
        }
    }

    async fn usage(&self) -> Option<String> {
        let el = self.t0.elapsed().as_secs_f64();
        let pct = |start: Option<(u32, Duration)>| async move {
            let (pid, t0) = start?;
            let t1 = crate::cpu::cpu_time(&pid.to_string()).await.ok()?;
            Some(t1.saturating_sub(t0).as_secs_f64() / el * 100.0)
        };
        let a = pct(self.agent).await?;
        let c = pct(self.containerd).await.unwrap_or(0.0);
        Some(format!(
            "agent {a:.1}%, containerd {c:.1}% over {el:.1} s (shims not counted)"
        ))
    }
}

/// IDs of every container (sandboxes included) in containerd's `k8s.io` namespace, by `ctr`.
async fn ctr_containers(sock: &Path) -> Result<Vec<String>, BenchError> {
    let out = Command::new("ctr")
        .arg("-a")
        .arg(sock)
        .args(["-n", "k8s.io", "containers", "ls", "-q"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| BenchError::io("running ctr", e))?;
    if !out.status.success() {
        return Err(BenchError::Unexpected(format!(
            "ctr containers ls: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Waits until containerd has no container left (the agent removes them).
async fn drain(sock: &Path, timeout: Duration) -> Result<(), BenchError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = ctr_containers(sock).await?;
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Unexpected(format!(
                "{} containers still in containerd after {timeout:?}",
                left.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Deletes every pod, waits for containerd to be empty, stops the agent, then its containerd.
/// Returns notes about anything that did not go as planned.
async fn cleanup(env: &Env, agent: Agent) -> Vec<String> {
    let mut notes = Vec::new();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), NS);
    if let Err(e) = pods
        .delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default(),
        )
        .await
    {
        notes.push(format!("cleanup: deleting the pods: {e}"));
    }
    let drained = drain(&env.sock, DRAIN_TIMEOUT).await;
    if let Err(e) = &drained {
        notes.push(format!("cleanup: {e}; removing what is left through CRI"));
        if let Ok(cri) = Cri::connect(&env.sock).await {
            let mut rt = cri.runtime.clone();
            if let Ok(list) = rt
                .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
                .await
            {
                for s in list.into_inner().items {
                    if let Err(e) = remove_sandbox(&cri, &s.id).await {
                        notes.push(format!("cleanup: sandbox {}: {e}", s.id));
                    }
                }
            }
        }
    }
    if let Some(n) = agent.stop().await {
        notes.push(n);
    }
    match containerd_pid(&env.data).await {
        Some(pid) => {
            signal(pid, "TERM").await;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid).await {
                if Instant::now() >= deadline {
                    signal(pid, "KILL").await;
                    notes.push(format!(
                        "cleanup: containerd (PID {pid}) ignored SIGTERM for 10 s; killed"
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        None => notes.push("cleanup: no containerd.pid (containerd never started?)".into()),
    }
    notes
}

/// Whether `pid` is a zombie (exited, not yet reaped by its parent).
async fn is_zombie(pid: u32) -> bool {
    proc_status(pid)
        .await
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("State:"))
                .map(|l| l.contains('Z'))
        })
        .unwrap_or(true)
}

/// The last `n` lines of the file at `path` (empty if unreadable).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_uids_are_uuid_shaped_and_distinct() {
        let (a, b) = (random_uid(), random_uid());
        assert_ne!(a, b);
        let parts: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn kib_fields_are_read_from_proc_texts() {
        let status = "Name:\tr8s\nVmHWM:\t   41234 kB\nVmRSS:\t   30500 kB\n";
        assert_eq!(kib_field(status, "VmRSS"), Some(30500));
        assert_eq!(kib_field(status, "VmHWM"), Some(41234));
        let rollup = "55d0-7ff [rollup]\nRss:    9000 kB\nPss:    2345 kB\nPss_Anon: 1 kB\n";
        assert_eq!(kib_field(rollup, "Pss"), Some(2345));
        assert_eq!(kib_field(rollup, "Swap"), None);
    }

    #[test]
    fn the_pod_is_a_besteffort_busybox_sleeper() {
        let p = pod_object("pod-001");
        assert_eq!(p.metadata.namespace.as_deref(), Some(NS));
        let c = &p.spec.as_ref().expect("spec").containers[0];
        assert_eq!(c.image.as_deref(), Some(POD_IMAGE));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert!(c.resources.is_none() && c.liveness_probe.is_none());
    }

    #[test]
    fn raw_run_total_adds_its_three_calls() {
        let r = RawRun {
            sandbox: Duration::from_millis(100),
            create: Duration::from_millis(10),
            start: Duration::from_millis(70),
        };
        assert_eq!(r.total(), Duration::from_millis(180));
    }
}
