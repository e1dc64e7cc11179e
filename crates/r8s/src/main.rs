//! The r8s binary: wires the components together. `r8s server` runs the control plane.

mod agent;
mod datastore;
mod join;
mod lb;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// mimalloc: the API server allocates and frees many small JSON values per request; glibc's
/// malloc spent ~28% of CPU there under load and kept freed memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "r8s", version, about = "Kubernetes in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: API server with the embedded store, controllers, scheduler.
    Server(Box<ServerArgs>),
    /// Run simulated nodes (like kwok) against a running server.
    Sim(SimCommandArgs),
    /// Run a node agent (kubelet: containerd + runc + CNI) against a running server.
    Agent(Box<AgentCommandArgs>),
    /// Snapshot, restore or migrate the datastore (SQLite or etcd).
    Datastore(datastore::DatastoreArgs),
}

/// Joining a cluster with its token (agents and simulated nodes).
#[derive(clap::Args)]
struct JoinFlags {
    /// Servers to join with `--token` (`https://host:port`, comma-separated): the process
    /// receives its own node credentials and fails over between the servers. Without it,
    /// `--kubeconfig` is used (and an agent issues its serving certificate with the CA key in
    /// `<data-dir>/server/tls`).
    #[arg(long, value_delimiter = ',')]
    server: Vec<String>,
    /// The join token: `<data-dir>/token` of a server.
    #[arg(long, env = "R8S_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(clap::Args)]
struct AgentCommandArgs {
    #[command(flatten)]
    join: JoinFlags,
    /// Kubeconfig of the cluster to join (without `--server`).
    #[arg(
        long,
        env = "KUBECONFIG",
        default_value = "/var/lib/r8s/kubeconfig.yaml"
    )]
    kubeconfig: PathBuf,
    /// Folder that holds the agent's state (`<data-dir>/agent`) and the cluster CA
    /// (`<data-dir>/server/tls`).
    #[arg(
        long,
        short = 'd',
        env = "R8S_DATA_DIR",
        default_value = "/var/lib/r8s"
    )]
    data_dir: PathBuf,
    /// IPv4 range of Service ClusterIPs (the server's `--service-cidr`).
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: String,
    /// IPv4 range of pod IPs (the server's `--cluster-cidr`).
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// Remove what the agent programs on the host (the service proxy's nftables table) and
    /// exit.
    #[arg(long)]
    cleanup: bool,
    #[command(flatten)]
    agent: AgentArgs,
}

#[derive(clap::Args)]
struct AgentArgs {
    /// Node name of the agent (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// IP address the node reports (default: the address of the default route's interface).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// CRI socket of an existing container runtime; by default the agent runs its own
    /// containerd.
    #[arg(long)]
    container_runtime_endpoint: Option<PathBuf>,
    /// Cluster DNS server IPs given to pods.
    #[arg(long, value_delimiter = ',', default_value = "10.43.0.10")]
    cluster_dns: Vec<IpAddr>,
    /// Cluster domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Where container logs are written.
    #[arg(long, default_value = "/var/log/pods")]
    pod_log_dir: PathBuf,
    /// The sandbox (pause) image.
    #[arg(long, default_value = "registry.k8s.io/pause:3.10")]
    pod_infra_container_image: String,
    /// A plain-http registry (`host:port`) used as mirror of docker.io and registry.k8s.io.
    #[arg(long)]
    registry_mirror: Option<String>,
    /// Maximum number of pods on the node.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Extra node labels, `key=value`.
    #[arg(long = "node-label", value_delimiter = ',')]
    node_labels: Vec<String>,
    /// Port of the agent's HTTPS server (logs, exec, port-forward).
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// Do not run the service proxy (nftables).
    #[arg(long)]
    disable_kube_proxy: bool,
    /// Do not run the cluster DNS server.
    #[arg(long)]
    disable_cluster_dns: bool,
    /// Resolver configuration whose nameservers answer names outside the cluster.
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
}

impl AgentArgs {
    fn config(&self, data_dir: &std::path::Path) -> anyhow::Result<kubelet::Config> {
        let name = match &self.node_name {
            Some(n) => n.clone(),
            None => hostname::get()
                .context("reading the host name")?
                .to_string_lossy()
                .to_lowercase(),
        };
        let tls = data_dir.join("server").join("tls");
        let mut c = kubelet::Config::new(
            &name,
            data_dir.join("agent"),
            tls.join("server-ca.crt"),
            tls.join("server-ca.key"),
        );
        c.node_ip = self.node_ip;
        c.container_runtime_endpoint = self.container_runtime_endpoint.clone();
        c.cluster_dns = self.cluster_dns.clone();
        c.cluster_domain = self.cluster_domain.clone();
        c.pod_log_dir = self.pod_log_dir.clone();
        c.sandbox_image = self.pod_infra_container_image.clone();
        c.registry_mirror = self.registry_mirror.clone();
        c.max_pods = self.max_pods;
        c.server_addr = std::net::SocketAddr::from(([0, 0, 0, 0], self.kubelet_port));
        for l in &self.node_labels {
            let (k, v) = l
                .split_once('=')
                .with_context(|| format!("invalid --node-label {l:?} (want key=value)"))?;
            c.node_labels.insert(k.to_string(), v.to_string());
        }
        Ok(c)
    }

    /// The kubelet, proxy and DNS configuration of the agent.
    fn parts(
        &self,
        data_dir: &std::path::Path,
        service_cidr: &str,
        cluster_cidr: &str,
    ) -> anyhow::Result<agent::Parts> {
        let kubelet = self.config(data_dir)?;
        let proxy = if self.disable_kube_proxy {
            None
        } else {
            Some(proxy_config(
                &kubelet.node_name,
                service_cidr,
                cluster_cidr,
            )?)
        };
        Ok(agent::Parts {
            kubelet,
            proxy,
            dns_resolv_conf: (!self.disable_cluster_dns).then(|| self.resolv_conf.clone()),
        })
    }
}

fn proxy_config(
    node_name: &str,
    service_cidr: &str,
    cluster_cidr: &str,
) -> anyhow::Result<proxy::Config> {
    let svc = proxy::Ipv4Cidr::parse(service_cidr)
        .with_context(|| format!("invalid service CIDR {service_cidr}"))?;
    let cluster = proxy::Ipv4Cidr::parse(cluster_cidr)
        .with_context(|| format!("invalid cluster CIDR {cluster_cidr}"))?;
    Ok(proxy::Config::new(node_name, svc, cluster))
}

#[derive(clap::Args)]
struct SimCommandArgs {
    #[command(flatten)]
    join: JoinFlags,
    /// Folder for the credentials received with `--server` (`<data-dir>/sim`).
    #[arg(
        long,
        short = 'd',
        env = "R8S_DATA_DIR",
        default_value = "/var/lib/r8s"
    )]
    data_dir: PathBuf,
    /// Kubeconfig of the cluster (without `--server`).
    #[arg(
        long,
        env = "KUBECONFIG",
        default_value = "/var/lib/r8s/kubeconfig.yaml"
    )]
    kubeconfig: PathBuf,
    #[command(flatten)]
    sim: SimArgs,
}

#[derive(clap::Args)]
struct SimArgs {
    /// Number of simulated nodes (`r8s server --sim-nodes N`, `r8s sim --nodes N`).
    #[arg(long = "sim-nodes", visible_alias = "nodes", default_value_t = 0)]
    nodes: usize,
    /// Name prefix of the simulated nodes (followed by a 4-digit index).
    #[arg(long = "node-prefix", default_value = "sim-")]
    node_prefix: String,
    /// CPU capacity of each simulated node.
    #[arg(long = "node-cpu", default_value = "32")]
    node_cpu: String,
    /// Memory capacity of each simulated node.
    #[arg(long = "node-memory", default_value = "256Gi")]
    node_memory: String,
    /// Pod capacity of each simulated node.
    #[arg(long = "node-pods", default_value_t = 110)]
    node_pods: u32,
    /// Whether simulated nodes run the pods bound to them (false: nodes and heartbeats only).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    simulate_pods: bool,
    /// How often each simulated node renews its Lease (the kubelet's 10 s).
    #[arg(long = "lease-renew-interval", value_parser = parse_duration)]
    lease_renew_interval: Option<Duration>,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Join the cluster of the server at this URL (`https://host:port`) as another server:
    /// the cluster CA is fetched with `--token`; give the same `--datastore-endpoint`.
    #[arg(long)]
    server: Option<String>,
    /// The join token (`<data-dir>/token` of the first server). On a new cluster, the secret
    /// to build it from (default: a random one).
    #[arg(long, env = "R8S_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Folder that holds the state (database, certificates, kubeconfig).
    #[arg(
        long,
        short = 'd',
        env = "R8S_DATA_DIR",
        default_value = "/var/lib/r8s"
    )]
    data_dir: PathBuf,
    /// Address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    https_port: u16,
    /// Additional host names or IPs for the serving certificate.
    #[arg(long = "tls-san", value_delimiter = ',')]
    tls_san: Vec<String>,
    /// IPv4 range Service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: String,
    /// Compact store history older than this many revisions behind the head, every 5 minutes.
    #[arg(long, default_value_t = 10_000, hide = true)]
    compact_keep: i64,
    /// Port range NodePorts are allocated from.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Address the `kubernetes` Service's endpoints point at (default: the address of the
    /// default route's interface).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// IPv4 range node pod CIDRs are carved from.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// Prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// Do not run the controllers (kube-controller-manager).
    #[arg(long)]
    disable_controller_manager: bool,
    /// Do not run the scheduler.
    #[arg(long)]
    disable_scheduler: bool,
    /// Controllers not to run, by name (e.g. `replicaset-controller`).
    #[arg(long = "disable-controller", value_delimiter = ',')]
    disable_controller: Vec<String>,
    /// How often node health is checked.
    #[arg(long, value_parser = parse_duration)]
    node_monitor_period: Option<Duration>,
    /// How long a node may miss heartbeats before it is marked NotReady (Unknown).
    #[arg(long, value_parser = parse_duration)]
    node_monitor_grace_period: Option<Duration>,
    /// tolerationSeconds added to pods for the not-ready NoExecute taint.
    #[arg(long)]
    default_not_ready_toleration_seconds: Option<i64>,
    /// tolerationSeconds added to pods for the unreachable NoExecute taint.
    #[arg(long)]
    default_unreachable_toleration_seconds: Option<i64>,
    /// Fast node-failure handling for edge clusters: node monitor period 2 s, grace period
    /// 20 s, default tolerations 30 s (upstream: 5 s, 50 s, 300 s), simulated nodes renewing
    /// every 4 s. Explicit flags override it.
    #[arg(long)]
    fast_node_failover: bool,
    /// Run the controllers and the scheduler only while holding their Lease
    /// (`kube-system/kube-controller-manager`, `kube-system/kube-scheduler`), so that several
    /// servers sharing one etcd do not act twice. Default: on with `--datastore-endpoint`, off
    /// with the embedded SQLite store (there is only ever one server then).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    leader_elect: Option<bool>,
    /// Fast leader election: lease duration 4 s, renew deadline 3 s, retry period 1 s
    /// (upstream: 15 s, 10 s, 2 s); a crashed leader is replaced within about 5 s.
    #[arg(long)]
    fast_leader_election: bool,
    #[command(flatten)]
    etcd: datastore::EtcdFlags,
    /// Simulated nodes run inside the server (0 = none).
    #[command(flatten)]
    sim: SimArgs,
    /// Do not run a node agent (kubelet) for this host.
    #[arg(long)]
    disable_agent: bool,
    #[command(flatten)]
    agent: AgentArgs,
}

/// Parses a Go-style duration: `50s`, `1m30s`, `500ms`, `2h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let err = || format!("invalid duration {text:?} (examples: 500ms, 40s, 1m30s)");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(err());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let value: f64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        total += Duration::from_secs_f64(value * factor);
    }
    Ok(total)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs redirected to a file stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Server(args) => rt.block_on(server(*args)),
        Command::Sim(args) => rt.block_on(sim_command(args)),
        Command::Agent(args) => rt.block_on(agent_command(*args)),
        Command::Datastore(args) => rt.block_on(datastore::run(args)),
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    if let Some(url) = &args.server {
        if args.etcd.datastore_endpoint.is_empty() {
            anyhow::bail!(
                "--server joins another server's cluster, whose state is in etcd: give its --datastore-endpoint too"
            );
        }
        let token = args
            .token
            .as_deref()
            .context("--server needs --token (the first server's <data-dir>/token)")?;
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating {}", args.data_dir.display()))?;
        join::join_server(&args.data_dir, url, token).await?;
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let backend = datastore::Location::new(
        Some(&args.data_dir),
        Some(&args.etcd.datastore_endpoint),
        args.etcd.datastore_cafile.as_ref(),
        args.etcd.datastore_certfile.as_ref(),
        args.etcd.datastore_keyfile.as_ref(),
    )
    .open(true)
    .await?;
    let store = backend.shared();
    store::spawn_compactor(
        store.clone(),
        std::time::Duration::from_secs(300),
        args.compact_keep,
        shutdown.clone(),
    );
    let default_toleration = if args.fast_node_failover { 30 } else { 300 };
    api::defaults::set_default_toleration_seconds(
        args.default_not_ready_toleration_seconds
            .unwrap_or(default_toleration),
        args.default_unreachable_toleration_seconds
            .unwrap_or(default_toleration),
    );
    let running = apiserver::start(
        apiserver::Config {
            data_dir: args.data_dir.clone(),
            bind_address: args.bind_address,
            https_port: args.https_port,
            tls_sans: args.tls_san.clone(),
            service_cidr: apiserver::ipalloc::ServiceCidr::parse(&args.service_cidr)
                .with_context(|| format!("invalid --service-cidr {}", args.service_cidr))?,
            service_node_port_range: apiserver::portalloc::PortRange::parse(
                &args.service_node_port_range,
            )
            .with_context(|| {
                format!(
                    "invalid --service-node-port-range {} (want e.g. 30000-32767)",
                    args.service_node_port_range
                )
            })?,
            advertise_address: args.advertise_address.or(args.agent.node_ip),
            token: args.token.clone(),
        },
        store,
        shutdown.clone(),
    )
    .await
    .context("starting the API server")?;
    let components = start_components(&args, &running, shutdown.clone())?;
    eprintln!(
        "r8s server ready on https://{}; export KUBECONFIG={}; join token in {}",
        running.addr,
        args.data_dir.join("kubeconfig.yaml").display(),
        apiserver::join::token_path(&args.data_dir).display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = running.task.await;
        components.join_all().await;
    })
    .await;
    backend.close().await;
    Ok(())
}

fn sim_config(args: &SimArgs, fast: bool) -> sim::Config {
    let mut cfg = sim::Config {
        nodes: args.nodes,
        name_prefix: args.node_prefix.clone(),
        cpu: args.node_cpu.clone(),
        memory: args.node_memory.clone(),
        pods: args.node_pods,
        simulate_pods: args.simulate_pods,
        ..Default::default()
    };
    if fast {
        cfg.renew_interval = Duration::from_secs(4);
    }
    if let Some(d) = args.lease_renew_interval {
        cfg.renew_interval = d;
    }
    cfg
}

/// Starts the in-process components (controllers, scheduler, simulated nodes); each talks to
/// the API server through its own kube-rs client.
fn start_components(
    args: &ServerArgs,
    running: &apiserver::Running,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinSet<()>> {
    let mut set = tokio::task::JoinSet::new();
    let client =
        |user: &str| apiserver::inprocess::client(running.state.clone(), user, &["system:masters"]);
    let factory =
        informers::Factory::new(client("system:kube-controller-manager"), shutdown.clone());
    let timings = if args.fast_leader_election {
        informers::leaderelection::Timings::fast()
    } else {
        informers::leaderelection::Timings::upstream()
    };
    // Several servers can share an etcd; with the embedded SQLite store there is only one.
    let elect = args
        .leader_elect
        .unwrap_or(!args.etcd.datastore_endpoint.is_empty());
    if !args.disable_controller_manager {
        let mut config = controllers::Config {
            cluster_cidr: args.cluster_cidr.clone(),
            node_cidr_mask_size: args.node_cidr_mask_size,
            disabled: args.disable_controller.iter().cloned().collect(),
            ..Default::default()
        };
        if args.fast_node_failover {
            config.node_monitor_period = Duration::from_secs(2);
            config.node_monitor_grace_period = Duration::from_secs(20);
        }
        if let Some(d) = args.node_monitor_period {
            config.node_monitor_period = d;
        }
        if let Some(d) = args.node_monitor_grace_period {
            config.node_monitor_grace_period = d;
        }
        let kcm = client("system:kube-controller-manager");
        let factory = factory.clone();
        let controller_manager = {
            let kcm = kcm.clone();
            move |stop: CancellationToken| {
                let ctx = Arc::new(controllers::Context {
                    client: kcm.clone(),
                    factory: factory.clone(),
                    config: config.clone(),
                    shutdown: stop,
                });
                async move {
                    let mut controllers = controllers::start(ctx);
                    while controllers.join_next().await.is_some() {}
                }
            }
        };
        spawn_component(
            &mut set,
            elect.then_some((kcm, "kube-controller-manager", timings)),
            &shutdown,
            controller_manager,
        );
    }
    if !args.disable_scheduler {
        let sched = client("system:kube-scheduler");
        let factory = factory.clone();
        let scheduler = {
            let sched = sched.clone();
            move |stop: CancellationToken| {
                scheduler::run(
                    sched.clone(),
                    factory.clone(),
                    scheduler::Config::default(),
                    stop,
                )
            }
        };
        spawn_component(
            &mut set,
            elect.then_some((sched, "kube-scheduler", timings)),
            &shutdown,
            scheduler,
        );
    }
    if !args.disable_agent {
        let parts = args
            .agent
            .parts(&args.data_dir, &args.service_cidr, &args.cluster_cidr)?;
        let client = client(&format!("system:node:{}", parts.kubelet.node_name));
        let factory = factory.clone();
        let shutdown = shutdown.clone();
        set.spawn(async move {
            if let Err(e) = agent::run(parts, client, factory, shutdown).await {
                tracing::error!(error = %e, "the node agent stopped");
            }
        });
    }
    if args.sim.nodes > 0 {
        let cfg = sim_config(&args.sim, args.fast_node_failover);
        let client = client("system:node:sim");
        let factory = factory.clone();
        let shutdown = shutdown.clone();
        set.spawn(async move {
            if let Err(e) = sim::run(client, factory, cfg, shutdown).await {
                tracing::error!(error = %e, "simulated nodes stopped");
            }
        });
    }
    Ok(set)
}

/// Runs `component` until `shutdown`; with `elected` = (client, Lease name, timings), only
/// while holding that Lease.
fn spawn_component<F, Fut>(
    set: &mut tokio::task::JoinSet<()>,
    elected: Option<(kube::Client, &str, informers::leaderelection::Timings)>,
    shutdown: &CancellationToken,
    component: F,
) where
    F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    match elected {
        Some((client, lease, timings)) => {
            set.spawn(informers::leaderelection::run_elected(
                client,
                lease_lock(lease),
                timings,
                shutdown.clone(),
                component,
            ));
        }
        None => {
            set.spawn(component(shutdown.clone()));
        }
    }
}

/// The Lease `kube-system/<name>` with this process's identity (`<hostname>_<uuid>`).
fn lease_lock(name: &str) -> informers::leaderelection::LeaseLockConfig {
    informers::leaderelection::LeaseLockConfig {
        namespace: "kube-system".to_string(),
        name: name.to_string(),
        identity: informers::leaderelection::default_identity(),
    }
}

async fn client_from(kubeconfig: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .context("loading the kubeconfig")?;
    informers::client::http2(config).context("creating the API client")
}

async fn agent_command(args: AgentCommandArgs) -> anyhow::Result<()> {
    let mut parts = args
        .agent
        .parts(&args.data_dir, &args.service_cidr, &args.cluster_cidr)?;
    if args.cleanup {
        let cfg = proxy_config(
            &parts.kubelet.node_name,
            &args.service_cidr,
            &args.cluster_cidr,
        )?;
        proxy::cleanup(&cfg)
            .await
            .context("removing the service proxy's nftables table")?;
        eprintln!("r8s agent: removed the nftables table {}", cfg.table);
        return Ok(());
    }
    let shutdown = CancellationToken::new();
    let client = if args.join.server.is_empty() {
        client_from(&args.kubeconfig).await?
    } else {
        let node_ip = parts
            .kubelet
            .node_ip
            .unwrap_or_else(kubelet::node::detect_node_ip);
        let (client, files) = joined_client(
            &args.join,
            &parts.kubelet.dir,
            &parts.kubelet.node_name,
            vec![node_ip],
            shutdown.clone(),
        )
        .await?;
        parts.kubelet.ca_cert = files.ca_cert;
        parts.kubelet.serving_cert = Some((files.serving_cert, files.serving_key));
        client
    };
    let factory = informers::Factory::new(client.clone(), shutdown.clone());
    let name = parts.kubelet.node_name.clone();
    let mut task = tokio::spawn(agent::run(parts, client, factory, shutdown.clone()));
    eprintln!("r8s agent: node {name} running");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        r = &mut task => {
            return match r {
                Ok(Err(e)) => Err(anyhow::anyhow!(e).context("the node agent failed")),
                _ => Ok(()),
            };
        }
    }
    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(15), task).await {
        Ok(Ok(Err(e))) => Err(anyhow::anyhow!(e).context("the node agent failed")),
        _ => Ok(()),
    }
}

/// Joins the cluster with `--server` and `--token` as node `node_name` (credentials kept in
/// `dir`): an API client going through the failover load balancer.
async fn joined_client(
    flags: &JoinFlags,
    dir: &std::path::Path,
    node_name: &str,
    addresses: Vec<IpAddr>,
    shutdown: CancellationToken,
) -> anyhow::Result<(kube::Client, join::AgentFiles)> {
    let token = flags
        .token
        .as_deref()
        .context("--server needs --token (a server's <data-dir>/token)")?;
    let servers: Vec<String> = flags
        .server
        .iter()
        .map(|u| {
            lb::host_port(u)
                .with_context(|| format!("invalid --server {u:?}: want https://host:port"))
        })
        .collect::<anyhow::Result<_>>()?;
    let files = join::join_agent(dir, &flags.server, token, node_name, addresses).await?;
    let lb = lb::LoadBalancer::start(servers, shutdown.clone())
        .await
        .context("starting the API server load balancer")?;
    let kubeconfig = dir.join("kubelet.kubeconfig");
    apiserver::join::write_private(&kubeconfig, &join::agent_kubeconfig(&files, &lb.url())?)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    let client = client_from(&kubeconfig).await?;
    tokio::spawn(lb::discover_servers(client.clone(), lb, shutdown));
    Ok((client, files))
}

async fn sim_command(args: SimCommandArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let client = if args.join.server.is_empty() {
        client_from(&args.kubeconfig).await?
    } else {
        // Every simulated node shares one identity, as in the server (`system:node:sim`).
        joined_client(
            &args.join,
            &args.data_dir.join("sim"),
            "sim",
            vec![IpAddr::from([127, 0, 0, 1])],
            shutdown.clone(),
        )
        .await?
        .0
    };
    let factory = informers::Factory::new(client.clone(), shutdown.clone());
    let cfg = sim_config(&args.sim, false);
    let n = cfg.nodes;
    let task = tokio::spawn(sim::run(client, factory, cfg, shutdown.clone()));
    eprintln!("r8s sim: {n} simulated nodes running");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(10), task).await {
        Ok(Ok(Err(e))) => Err(anyhow::anyhow!(e).context("simulated nodes failed")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("50s"), Ok(Duration::from_secs(50)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }
}
