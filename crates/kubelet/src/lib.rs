//! The r8s node agent (kubelet): registers its node, keeps its Lease fresh and runs the pods bound
//! to it through CRI (containerd + runc + CNI).
//!
//! [`run`] wires the parts: the supervised containerd ([`containerd`]), the node's registration,
//! status and Lease ([`node`]), the pod CIDR's CNI config ([`network`]), one worker per pod
//! ([`pods`]) woken by pod events, runtime relists ([`pleg`]) and probes ([`probe`]), volumes
//! ([`volumes`]) and the streaming server the API server proxies logs, exec and port-forward to
//! ([`server`]).

pub mod cgroups;
pub mod containerd;
pub mod cri;
pub mod network;
pub mod node;
pub mod pleg;
pub mod pods;
pub mod probe;
pub mod server;
pub mod view;
pub mod volumes;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use informers::{Factory, Informer};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::Api;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// containerd could not be started.
    #[error(transparent)]
    Containerd(#[from] containerd::ContainerdError),
    /// The runtime could not be reached.
    #[error(transparent)]
    Cri(#[from] cri::CriError),
    /// A local file could not be prepared.
    #[error("{0}")]
    Io(String),
    /// The streaming server failed.
    #[error(transparent)]
    Server(#[from] server::ServerError),
}

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The node name.
    pub node_name: String,
    /// The agent's state directory (`<data-dir>/agent`).
    pub dir: PathBuf,
    /// The node IP (detected when unset).
    pub node_ip: Option<IpAddr>,
    /// An existing CRI socket; unset: the agent runs its own containerd.
    pub container_runtime_endpoint: Option<PathBuf>,
    /// Cluster DNS servers given to pods.
    pub cluster_dns: Vec<IpAddr>,
    /// The cluster domain.
    pub cluster_domain: String,
    /// Where container logs go.
    pub pod_log_dir: PathBuf,
    /// The sandbox image.
    pub sandbox_image: String,
    /// A plain-http registry mirroring docker.io and registry.k8s.io.
    pub registry_mirror: Option<String>,
    /// Maximum pods on the node.
    pub max_pods: u32,
    /// Extra node labels.
    pub node_labels: BTreeMap<String, String>,
    /// Address of the streaming server.
    pub server_addr: SocketAddr,
    /// The cluster CA certificate (issues the serving certificate, verifies the API server).
    pub ca_cert: PathBuf,
    /// The cluster CA key (issues the serving certificate unless `serving_cert` is set).
    pub ca_key: PathBuf,
    /// A serving certificate and key issued by the server (an agent that joined with a token
    /// has no CA key).
    pub serving_cert: Option<(PathBuf, PathBuf)>,
    /// CNI plugin binaries.
    pub cni_bin_dir: PathBuf,
    /// runc.
    pub runc: PathBuf,
}

impl Config {
    /// Defaults for a node named `node_name` with state under `dir`.
    pub fn new(node_name: &str, dir: PathBuf, ca_cert: PathBuf, ca_key: PathBuf) -> Config {
        Config {
            node_name: node_name.to_string(),
            dir,
            node_ip: None,
            container_runtime_endpoint: None,
            cluster_dns: vec![IpAddr::from([10, 43, 0, 10])],
            cluster_domain: "cluster.local".to_string(),
            pod_log_dir: PathBuf::from("/var/log/pods"),
            sandbox_image: "registry.k8s.io/pause:3.10".to_string(),
            registry_mirror: None,
            max_pods: 110,
            node_labels: BTreeMap::new(),
            server_addr: SocketAddr::from(([0, 0, 0, 0], 10250)),
            ca_cert,
            ca_key,
            serving_cert: None,
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            runc: PathBuf::from("/usr/sbin/runc"),
        }
    }
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> KubeletError + '_ {
    move |e| KubeletError::Io(format!("{what}: {e}"))
}

/// Runs the agent until `shutdown`. Containers keep running when it returns.
pub async fn run(
    config: Config,
    client: kube::Client,
    factory: Arc<Factory>,
    shutdown: CancellationToken,
) -> Result<(), KubeletError> {
    let pods_dir = config.dir.join("pods");
    for d in [&config.dir, &pods_dir, &config.pod_log_dir] {
        tokio::fs::create_dir_all(d)
            .await
            .map_err(io("creating the agent's directories"))?;
    }
    network::ensure_sysctls().await;
    let layout = containerd::Layout::at(&config.dir);
    let socket = match &config.container_runtime_endpoint {
        Some(s) => s.clone(),
        None => {
            containerd::start(
                layout.clone(),
                containerd::Settings {
                    sandbox_image: config.sandbox_image.clone(),
                    cni_bin_dir: config.cni_bin_dir.clone(),
                    runc: config.runc.clone(),
                    registry_mirror: config.registry_mirror.clone(),
                },
                shutdown.clone(),
            )
            .await?;
            layout.socket.clone()
        }
    };
    let cri = cri::Cri::connect(&socket).await?;
    let version = cri.version().await?;
    let runtime_version = format!("{}://{}", version.runtime_name, version.runtime_version);
    let dir = config.dir.clone();
    let machine = tokio::task::spawn_blocking(move || node::Machine::read(&dir))
        .await
        .map_err(|e| KubeletError::Io(e.to_string()))?;
    let node_ip = config.node_ip.unwrap_or_else(node::detect_node_ip);
    let info = node::NodeInfo {
        name: config.node_name.clone(),
        ip: node_ip,
        port: config.server_addr.port(),
        machine: machine.clone(),
        runtime_version,
        max_pods: config.max_pods,
        labels: config.node_labels.clone(),
    };

    // The streaming server.
    let (cert, key) = match &config.serving_cert {
        Some(issued) => issued.clone(),
        None => server::ensure_serving_cert(
            &config.ca_cert,
            &config.ca_key,
            &config.dir.join("tls"),
            &config.node_name,
            &[node_ip, IpAddr::from([127, 0, 0, 1])],
        )?,
    };

    let alloc = machine.allocatable(config.max_pods);
    let ctx = pods::spec::NodeContext {
        node_name: config.node_name.clone(),
        node_ip,
        cluster_dns: config.cluster_dns.clone(),
        cluster_domain: config.cluster_domain.clone(),
        pod_log_dir: config.pod_log_dir.clone(),
        pods_dir,
        allocatable_milli_cpu: machine.cpus as i64 * 1000,
        allocatable_memory: alloc
            .get("memory")
            .and_then(pods::spec::parse_quantity)
            .map_or(0, |v| v as i64),
    };

    // Pods bound to this node only.
    let pods: Informer<Pod> = Informer::new();
    tokio::spawn(pods.clone().run(
        client.clone(),
        watcher::Config::default().fields(&format!("spec.nodeName={}", config.node_name)),
        shutdown.clone(),
    ));
    let objects = Arc::new(pods::Objects {
        config_maps: factory.informer::<ConfigMap>(),
        secrets: factory.informer::<Secret>(),
    });
    let (probe_tx, probe_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = pods::Shared::new(
        cri.clone(),
        client.clone(),
        ctx,
        objects.clone(),
        pods.clone(),
        probe_tx,
        shutdown.clone(),
    );
    let view = Arc::new(view::View::new(shared.clone()));
    let server_cfg = server::ServerConfig {
        addr: config.server_addr,
        tls_cert: cert,
        tls_key: key,
        client_ca: config.ca_cert.clone(),
    };
    let server = tokio::spawn(server::serve(
        server_cfg,
        view,
        cri.clone(),
        shutdown.clone(),
    ));

    // Register, then start pods once the caches are warm.
    let nodes: Api<Node> = Api::all(client.clone());
    let readiness = runtime_readiness(&cri, false).await;
    let registered = loop {
        match node::register(&nodes, &info, &readiness).await {
            Ok(n) => break n,
            Err(e) => {
                tracing::warn!(error = %e, "registering the node; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };
    tracing::info!(node = %config.node_name, ip = %node_ip, "node registered");
    objects.config_maps.wait_synced().await;
    objects.secrets.wait_synced().await;
    tokio::spawn(shared.clone().run_dispatch(pods.subscribe()));
    tokio::spawn(shared.clone().run_probe_updates(probe_rx));
    tokio::spawn(pleg::run(shared.clone()));
    spawn_namespace_waker(shared.clone(), objects.config_maps.subscribe());
    spawn_namespace_waker(shared.clone(), objects.secrets.subscribe());

    let node_informer = factory.informer::<Node>();
    let heartbeat = tokio::spawn(heartbeat(
        client,
        nodes,
        info,
        registered,
        cri,
        node_informer,
        layout,
        config.dir.join("cni").join("ipam"),
        shutdown.clone(),
    ));
    if let Ok(Err(e)) = server.await {
        return Err(e.into());
    }
    shutdown.cancelled().await;
    let _ = heartbeat.await;
    Ok(())
}

/// Wakes the pods of a namespace when an object there (a ConfigMap or Secret they may mount or
/// read) changes, so volumes follow updates within a second.
fn spawn_namespace_waker<K: kube::Resource + Send + Sync + 'static>(
    sh: Arc<pods::Shared>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<informers::Event<K>>,
) {
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let informers::Event::Updated(_, o) | informers::Event::Added(o) = ev
                && let Some(ns) = o.meta().namespace.as_deref()
            {
                sh.wake_namespace(ns);
            }
        }
    });
}

/// Whether the runtime and its network are ready (`container runtime network not ready` until
/// the CNI configuration exists).
async fn runtime_readiness(cri: &cri::Cri, cni_written: bool) -> node::Readiness {
    let mut rt = cri.runtime.clone();
    let status = rt
        .status(cri::api::StatusRequest { verbose: false })
        .await
        .ok()
        .and_then(|r| r.into_inner().status);
    let mut problems = Vec::new();
    match status {
        None => problems.push("container runtime is down".to_string()),
        Some(s) => {
            for c in s.conditions {
                if !c.status {
                    problems.push(format!(
                        "container runtime network not ready: {}=false reason:{} message:{}",
                        c.r#type, c.reason, c.message
                    ));
                }
            }
        }
    }
    if !cni_written && problems.is_empty() {
        problems.push("container runtime network not ready: the node has no pod CIDR yet".into());
    }
    node::Readiness {
        ready: problems.is_empty(),
        message: problems.join(", "),
    }
}

/// The node loop: writes the CNI config when the pod CIDR arrives, renews the Lease every 10 s
/// and reports status when readiness changes, when someone else changed the conditions, or
/// every 5 minutes.
#[allow(clippy::too_many_arguments)]
async fn heartbeat(
    client: kube::Client,
    nodes: Api<Node>,
    info: node::NodeInfo,
    registered: Node,
    cri: cri::Cri,
    node_informer: Informer<Node>,
    layout: containerd::Layout,
    ipam_dir: PathBuf,
    shutdown: CancellationToken,
) {
    let mut lease = node::LeaseKeeper::new(client, &registered);
    let mut cidr_written: Option<String> = None;
    let mut last_report = Instant::now();
    let mut last_readiness: Option<node::Readiness> = None;
    let mut next_lease = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let current = node_informer.get("", &info.name);
        if let Some(cidr) = current
            .as_ref()
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.pod_cidr.clone())
            && cidr_written.as_deref() != Some(cidr.as_str())
        {
            match network::write_conflist(&layout.cni_conf_dir, &cidr, &ipam_dir).await {
                Ok(_) => {
                    tracing::info!(pod_cidr = %cidr, "CNI configuration written");
                    cidr_written = Some(cidr);
                }
                Err(e) => tracing::warn!(error = %e, "writing the CNI configuration"),
            }
        }
        if Instant::now() >= next_lease {
            if let Err(e) = lease.renew().await {
                tracing::warn!(error = %e, "renewing the node lease");
            }
            next_lease = Instant::now() + node::LEASE_RENEW_INTERVAL;
        }
        let readiness = runtime_readiness(&cri, cidr_written.is_some()).await;
        let conds = current
            .as_ref()
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.clone());
        let api_ready = conds
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status == "True");
        let drifted = current.is_some() && api_ready != Some(readiness.ready);
        if last_readiness.as_ref() != Some(&readiness)
            || drifted
            || last_report.elapsed() >= node::STATUS_REPORT_INTERVAL
        {
            match node::report_status(&nodes, &info, conds.as_deref(), &readiness).await {
                Ok(()) => {
                    last_report = Instant::now();
                    last_readiness = Some(readiness);
                }
                Err(e) => tracing::warn!(error = %e, "reporting node status"),
            }
        }
    }
}
