//! The control-plane benchmark (`bench --controlplane`): a real `r8s server` (API server,
//! controllers, scheduler) with N simulated nodes from a separate `r8s sim` process, like kwok
//! beside a real control plane. Figures: node registration, the control plane's CPU for N
//! heartbeating nodes, scheduling throughput (plain, anti-affinity, topology spread), a
//! large Deployment to fully Running, replacement latency of deleted pods, and RSS with many
//! pods.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;

use crate::BenchError;
use crate::report::{Figure, Report};
use crate::server::{Helper, ServerProcess};
use crate::stats::{Summary, ms};

/// Sizes of the control-plane run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Simulated nodes.
    pub nodes: usize,
    /// Plain pods for the scheduling throughput.
    pub sched_pods: usize,
    /// Pods with required anti-affinity / with topology spread.
    pub constrained_pods: usize,
    /// Replicas of the large Deployment.
    pub deployment_replicas: i32,
    /// Pod deletions whose replacement latency is measured.
    pub replacements: usize,
    /// Pods held for the memory figure.
    pub memory_pods: i32,
    /// How long the heartbeat CPU is sampled.
    pub heartbeat_window: Duration,
}

impl Plan {
    /// The sizes: 5,000 nodes, 50,000 pods.
    pub fn full() -> Self {
        Self {
            nodes: 5000,
            sched_pods: 10_000,
            constrained_pods: 2000,
            deployment_replicas: 10_000,
            replacements: 100,
            memory_pods: 50_000,
            heartbeat_window: Duration::from_secs(60),
        }
    }

    /// A short run (about a minute).
    pub fn quick() -> Self {
        Self {
            nodes: 500,
            sched_pods: 2000,
            constrained_pods: 300,
            deployment_replicas: 2000,
            replacements: 30,
            memory_pods: 5000,
            heartbeat_window: Duration::from_secs(20),
        }
    }
}

/// Maps a kube-rs error to a [`BenchError`] that says what was being done.
pub(crate) fn kube_err(what: &str) -> impl Fn(kube::Error) -> BenchError + '_ {
    move |e| BenchError::Unexpected(format!("{what}: {e}"))
}

/// A kube-rs client for `srv` from the admin kubeconfig it wrote.
pub(crate) async fn client_for(srv: &ServerProcess) -> Result<Client, BenchError> {
    let path = srv.root().join("data").join("kubeconfig.yaml");
    let kc = kube::config::Kubeconfig::read_from(&path)
        .map_err(|e| BenchError::Unexpected(format!("kubeconfig: {e}")))?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| BenchError::Unexpected(format!("kubeconfig: {e}")))?;
    cfg.read_timeout = Some(Duration::from_secs(600));
    Client::try_from(cfg).map_err(kube_err("client"))
}

/// Runs the control-plane benchmark.
pub async fn run(
    r8s: &std::path::Path,
    plan: &Plan,
    progress: &dyn Fn(&str),
) -> Result<Report, BenchError> {
    let mut report = Report::default();
    // A /10 holds 16,384 node /24s (the default 10.42.0.0/16 holds 256, as in k3s).
    let srv = ServerProcess::start_with_args(r8s, &["--cluster-cidr", "10.64.0.0/10"]).await?;
    let client = client_for(&srv).await?;
    let kubeconfig: PathBuf = srv.root().join("data").join("kubeconfig.yaml");
    let sim_log = srv.root().join("sim.log");
    progress(&format!(
        "server PID {}; starting r8s sim --nodes {}",
        srv.pid().unwrap_or(0),
        plan.nodes
    ));
    let nodes_s = plan.nodes.to_string();
    let started = Instant::now();
    // Nodes and heartbeats only while the scheduler is measured (scheduler_perf runs against
    // node objects with no kubelet); a second sim then runs the pods too.
    let kc = kubeconfig.to_str().unwrap_or_default().to_string();
    let sim_args = |pods: bool| -> Vec<String> {
        vec![
            "sim".into(),
            "--kubeconfig".into(),
            kc.clone(),
            "--nodes".into(),
            nodes_s.clone(),
            format!("--simulate-pods={pods}"),
        ]
    };
    let args: Vec<String> = sim_args(false);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sim = Helper::start(r8s, &args, &sim_log)?;
    wait_nodes_ready(&client, plan.nodes, None).await?;
    report.figures.push(Figure::info(
        format!("{} simulated nodes registered and Ready", plan.nodes),
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    ));

    // Heartbeats: the control plane's CPU while N nodes renew Leases (after 15 s to settle).
    progress("settling 15 s, then sampling the CPU of heartbeats");
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (s0, h0, t0) = (srv.cpu_time().await?, sim.cpu_time().await?, Instant::now());
    tokio::time::sleep(plan.heartbeat_window).await;
    let (s1, h1, el) = (srv.cpu_time().await?, sim.cpu_time().await?, t0.elapsed());
    let server_pct = (s1 - s0).as_secs_f64() / el.as_secs_f64() * 100.0;
    let sim_pct = (h1 - h0).as_secs_f64() / el.as_secs_f64() * 100.0;
    report.figures.push(Figure::at_most(
        format!(
            "control plane CPU with {} heartbeating nodes ({} s window)",
            plan.nodes,
            el.as_secs()
        ),
        format!("{server_pct:.1}% of one core (the sim process itself: {sim_pct:.1}%)"),
        server_pct,
        10.0,
        "≤ 10% of one core",
    ));

    // Scheduling throughput.
    for (label, kind, n) in [
        ("plain pods", Constraint::None, plan.sched_pods),
        (
            "pods with required anti-affinity",
            Constraint::AntiAffinity,
            plan.constrained_pods,
        ),
        (
            "pods with topology spread (maxSkew 1 over hosts)",
            Constraint::Spread,
            plan.constrained_pods,
        ),
    ] {
        progress(&format!("scheduling {n} {label}"));
        let ns = format!("bench-sched-{}", kind.slug());
        create_namespace(&client, &ns).await?;
        let r = schedule_pods(&client, &ns, n, kind).await?;
        let tput = r.bound as f64 / r.elapsed.as_secs_f64();
        let text = format!(
            "{tput:.0} pods/s ({} bound in {:.2} s; created at {:.0}/s)",
            r.bound,
            r.elapsed.as_secs_f64(),
            r.created as f64 / r.create_elapsed.as_secs_f64()
        );
        let name = format!("scheduling throughput, {label}, {} nodes", plan.nodes);
        if kind == Constraint::None {
            report
                .figures
                .push(Figure::at_least(name, text, tput, 1500.0, "≥ 1,500 pods/s"));
        } else {
            report.figures.push(Figure::info(name, text));
        }
        progress(&format!("deleting namespace {ns}"));
        // No kubelet runs these pods: remove them at once, as `kubectl delete --force`.
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        pods.delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default(),
        )
        .await
        .map_err(kube_err("deleting pods"))?;
        delete_namespace(&client, &ns).await?;
    }
    drop(sim);
    progress("restarting the simulated nodes with pods");
    let args: Vec<String> = sim_args(true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let restarted = k8s_openapi::jiff::Timestamp::now();
    let sim = Helper::start(r8s, &args, &srv.root().join("sim2.log"))?;
    wait_nodes_ready(&client, plan.nodes, Some(restarted)).await?;

    // A large Deployment to fully Running.
    let ns = "bench-deploy";
    create_namespace(&client, ns).await?;
    progress(&format!(
        "deployment with {} replicas",
        plan.deployment_replicas
    ));
    let t = Instant::now();
    create_deployment(&client, ns, "big", plan.deployment_replicas).await?;
    wait_deployment_ready(&client, ns, "big", plan.deployment_replicas).await?;
    let took = t.elapsed();
    report.figures.push(Figure::at_most(
        format!(
            "{}-replica Deployment created → all pods Running and Ready",
            plan.deployment_replicas
        ),
        format!("{:.1} s", took.as_secs_f64()),
        took.as_secs_f64(),
        15.0,
        "≤ 15 s",
    ));

    // Replacement latency on a small deployment.
    progress(&format!(
        "{} pod deletions, replacement latency",
        plan.replacements
    ));
    create_deployment(&client, ns, "small", 20).await?;
    wait_deployment_ready(&client, ns, "small", 20).await?;
    let lat = replacement_latency(&client, ns, "small", plan.replacements).await?;
    if let Some(s) = Summary::of(lat) {
        report.figures.push(Figure::at_most(
            "deleted pod seen → replacement pod seen (watch)",
            format!(
                "p50 {} ms, p99 {} ms ({} deletions)",
                ms(s.p50),
                ms(s.p99),
                s.count
            ),
            s.p99.as_secs_f64() * 1000.0,
            50.0,
            "≤ 50 ms (p99)",
        ));
    }

    // Memory with many pods.
    progress(&format!(
        "scaling to {} pods for the memory figure",
        plan.memory_pods
    ));
    let t = Instant::now();
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    api.patch(
        "big",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": plan.memory_pods - 20}})),
    )
    .await
    .map_err(kube_err("scaling"))?;
    wait_deployment_ready(&client, ns, "big", plan.memory_pods - 20).await?;
    report.figures.push(Figure::info(
        format!("scaled to {} pods, all Running", plan.memory_pods),
        format!("{:.1} s", t.elapsed().as_secs_f64()),
    ));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let m = srv.memory().await?;
    let mib = m.rss_kib as f64 / 1024.0;
    report.figures.push(Figure::at_most(
        format!(
            "control plane RSS with {} nodes and {} pods",
            plan.nodes, plan.memory_pods
        ),
        format!("{mib:.0} MiB (peak {:.0} MiB)", m.hwm_kib as f64 / 1024.0),
        mib,
        2048.0,
        "≤ 2 GiB",
    ));
    drop(sim);
    srv.stop().await;
    report.notes.push(
        "the simulated nodes run in a separate `r8s sim` process (its CPU is not counted in the control plane's); the benchmark client shares the 2 cores".into(),
    );
    report.notes.push(
        "scheduling is measured as upstream's scheduler_perf does: nodes are objects with heartbeats but no kubelet runs the pods (`r8s sim --simulate-pods=false`); the Deployment phases run every pod to Running".into(),
    );
    Ok(report)
}

/// Waits until `n` nodes are Ready with a podCIDR and, with `reported_since`, have reported
/// their status since then: a restarted sim reports every node once as it registers them again
/// (as kubelets do when they start), and that burst should not overlap what is measured next.
async fn wait_nodes_ready(
    client: &Client,
    n: usize,
    reported_since: Option<k8s_openapi::jiff::Timestamp>,
) -> Result<(), BenchError> {
    let api: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(kube_err("listing nodes"))?;
        let ready = list
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| {
                        c.iter().any(|c| {
                            c.type_ == "Ready"
                                && c.status == "True"
                                && reported_since.is_none_or(|t| {
                                    c.last_heartbeat_time
                                        .as_ref()
                                        // Heartbeat times have whole seconds.
                                        .is_some_and(|h| h.0.as_second() >= t.as_second())
                                })
                        })
                    })
                    && n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some()
            })
            .count();
        if ready >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Unexpected(format!(
                "only {ready}/{n} nodes Ready"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn create_namespace(client: &Client, name: &str) -> Result<(), BenchError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))
        .map_err(|e| BenchError::Unexpected(e.to_string()))?;
    api.create(&PostParams::default(), &ns)
        .await
        .map_err(kube_err("creating a namespace"))?;
    // The default ServiceAccount appears with the namespace controller's help; pods need it
    // only for admission in upstream, not here.
    Ok(())
}

async fn delete_namespace(client: &Client, name: &str) -> Result<(), BenchError> {
    let api: Api<Namespace> = Api::all(client.clone());
    api.delete(name, &DeleteParams::default())
        .await
        .map_err(kube_err("deleting a namespace"))?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while api
        .get_opt(name)
        .await
        .map_err(kube_err("namespace"))?
        .is_some()
    {
        if Instant::now() > deadline {
            return Err(BenchError::Unexpected(format!(
                "namespace {name} not deleted"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Constraint {
    None,
    AntiAffinity,
    Spread,
}

impl Constraint {
    fn slug(self) -> &'static str {
        match self {
            Constraint::None => "plain",
            Constraint::AntiAffinity => "anti",
            Constraint::Spread => "spread",
        }
    }
}

fn bench_pod(name: &str, kind: Constraint) -> Pod {
    let mut spec = json!({
        "containers": [{
            "name": "app",
            "image": "registry.example.com/app:1.0",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        }],
    });
    match kind {
        Constraint::None => {}
        Constraint::AntiAffinity => {
            spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"bench": "anti"}},
                "topologyKey": "kubernetes.io/hostname",
            }]}});
        }
        Constraint::Spread => {
            spec["topologySpreadConstraints"] = json!([{
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"bench": "spread"}},
            }]);
        }
    }
    let pod = json!({
        "metadata": {"name": name, "labels": {"bench": kind.slug()}},
        "spec": spec,
    });
    serde_json::from_value(pod).unwrap_or_default()
}

/// What the scheduling phases read of a watched pod.
#[derive(Clone, Debug, serde::Deserialize)]
struct BoundPod {
    metadata: BoundPodMeta,
    #[serde(default)]
    spec: BoundPodSpec,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct BoundPodMeta {
    name: String,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
struct BoundPodSpec {
    #[serde(rename = "nodeName")]
    node_name: Option<String>,
}

struct SchedResult {
    created: usize,
    create_elapsed: Duration,
    bound: usize,
    /// From the first create to the last binding seen.
    elapsed: Duration,
}

async fn schedule_pods(
    client: &Client,
    ns: &str,
    n: usize,
    kind: Constraint,
) -> Result<SchedResult, BenchError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let bound_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    // The load generator decodes no more than it needs (a pod's name and node), so that the
    // two cores it shares go to the control plane being measured.
    let req = kube::core::Request::new(api.resource_url())
        .watch(&WatchParams::default().timeout(290), "0")
        .map_err(|e| BenchError::Unexpected(format!("watch request: {e}")))?;
    let stream = client
        .request_events::<BoundPod>(req)
        .await
        .map_err(kube_err("watching pods"))?;
    let b = bound_at.clone();
    let watcher = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Ok(Some(ev)) = stream.try_next().await {
            if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev
                && p.spec.node_name.is_some()
            {
                let mut m = b.lock();
                m.entry(p.metadata.name).or_insert_with(Instant::now);
                if m.len() >= n {
                    return;
                }
            }
        }
    });
    let start = Instant::now();
    let created = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                informers::write::create(
                    &api,
                    &PostParams::default(),
                    &bench_pod(&format!("p-{i}"), kind),
                )
                .await
                .is_ok()
            }
        })
        .buffer_unordered(32)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    let create_elapsed = start.elapsed();
    let _ = tokio::time::timeout(Duration::from_secs(300), watcher).await;
    let m = bound_at.lock();
    let last = m.values().max().copied().unwrap_or(start);
    Ok(SchedResult {
        created,
        create_elapsed,
        bound: m.len(),
        elapsed: last.duration_since(start),
    })
}

async fn create_deployment(
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
) -> Result<(), BenchError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "app",
                    "image": "registry.example.com/app:1.0",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }]},
            },
        },
    }))
    .map_err(|e| BenchError::Unexpected(e.to_string()))?;
    api.create(&PostParams::default(), &d)
        .await
        .map_err(kube_err("creating a deployment"))?;
    Ok(())
}

async fn wait_deployment_ready(
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
) -> Result<(), BenchError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let d = api.get(name).await.map_err(kube_err("deployment"))?;
        let st = d.status.unwrap_or_default();
        if st.ready_replicas.unwrap_or(0) >= replicas
            && st.updated_replicas.unwrap_or(0) >= replicas
            && st.replicas.unwrap_or(0) == replicas
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Unexpected(format!(
                "deployment {name}: {:?} ready of {replicas}",
                st.ready_replicas
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deletes pods of `app` one at a time; returns, for each, the time from the watch showing its
/// deletion to the watch showing a new pod.
async fn replacement_latency(
    client: &Client,
    ns: &str,
    app: &str,
    n: usize,
) -> Result<Vec<Duration>, BenchError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("app={app}"));
    let list = api.list(&lp).await.map_err(kube_err("listing pods"))?;
    let rv = list.metadata.resource_version.clone().unwrap_or_default();
    let mut known: BTreeMap<String, bool> = list
        .items
        .iter()
        .map(|p| (p.name_any(), p.metadata.deletion_timestamp.is_some()))
        .collect();
    let stream = api
        .watch(
            &WatchParams::default()
                .labels(&format!("app={app}"))
                .timeout(290),
            &rv,
        )
        .await
        .map_err(kube_err("watching pods"))?;
    futures::pin_mut!(stream);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let Some(victim) = known
            .iter()
            .find(|(_, deleting)| !**deleting)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        api.delete(&victim, &DeleteParams::default())
            .await
            .map_err(kube_err("deleting a pod"))?;
        let mut seen_delete: Option<Instant> = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ev = tokio::time::timeout(Duration::from_secs(30), stream.try_next()).await;
            let Ok(Ok(Some(ev))) = ev else { break };
            match ev {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                    let name = p.name_any();
                    let deleting = p.metadata.deletion_timestamp.is_some();
                    let new = !known.contains_key(&name);
                    known.insert(name.clone(), deleting);
                    if name == victim && deleting && seen_delete.is_none() {
                        seen_delete = Some(Instant::now());
                    }
                    if new && let Some(t) = seen_delete {
                        out.push(t.elapsed());
                        break;
                    }
                }
                WatchEvent::Deleted(p) => {
                    let name = p.name_any();
                    known.remove(&name);
                    if name == victim && seen_delete.is_none() {
                        seen_delete = Some(Instant::now());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}
