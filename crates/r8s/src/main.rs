//! The r8s binary: wires the components together. `r8s server` runs the control plane.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

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
    /// Run the control plane (API server with the embedded store).
    Server(ServerArgs),
}

#[derive(clap::Args)]
struct ServerArgs {
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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Server(args) => rt.block_on(server(args)),
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    std::fs::create_dir_all(args.data_dir.join("server").join("db"))
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let db = args.data_dir.join("server").join("db").join("state.db");
    let store = store::sqlite::SqliteStore::open(&db, store::sqlite::SqliteOptions::default())
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    let sqlite = Arc::new(store);
    let store: Arc<dyn store::Store> = sqlite.clone();
    store::spawn_compactor(
        store.clone(),
        std::time::Duration::from_secs(300),
        args.compact_keep,
        shutdown.clone(),
    );
    let running = apiserver::start(
        apiserver::Config {
            data_dir: args.data_dir.clone(),
            bind_address: args.bind_address,
            https_port: args.https_port,
            tls_sans: args.tls_san,
            service_cidr: apiserver::ipalloc::ServiceCidr::parse(&args.service_cidr)
                .with_context(|| format!("invalid --service-cidr {}", args.service_cidr))?,
        },
        store,
        shutdown.clone(),
    )
    .await
    .context("starting the API server")?;
    eprintln!(
        "r8s server ready on https://{}; export KUBECONFIG={}",
        running.addr,
        args.data_dir.join("kubeconfig.yaml").display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), running.task).await;
    sqlite.close().await;
    Ok(())
}
