//! The Kubernetes API server of r8s.
//!
//! A request flows: TLS + authentication ([`server`]) → path parsing into a resource target
//! ([`handlers`]) → content negotiation ([`handlers::negotiate`]) → the generic verbs
//! ([`handlers::read`] served from the watch cache [`cacher`]; [`handlers::write`] through the
//! kind's [`registry::Strategy`] into the [`store`]) → a JSON, Table or Status response.
//! Discovery ([`discovery`]), OpenAPI and Tables are derived from the same [`registry`].

pub mod bootstrap_services;
pub mod cacher;
pub mod conn_exec;
pub mod conversion;
pub mod discovery;
pub mod error;
pub mod handlers;
pub mod inprocess;
pub mod ipalloc;
pub mod join;
pub mod meta_validation;
pub mod metrics;
pub mod object;
pub mod patching;
pub mod pki;
pub mod portalloc;
pub mod projection;
pub mod registry;
pub mod server;
pub mod service_alloc;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};
use store::Store;
use tokio_util::sync::CancellationToken;

use crate::cacher::Cacher;
use crate::registry::Registry;

/// API server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory (certificates, kubeconfig).
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub bind_address: IpAddr,
    /// HTTPS port (0 = any free port).
    pub https_port: u16,
    /// Extra subject alternative names for the serving certificate.
    pub tls_sans: Vec<String>,
    /// The range Service ClusterIPs are allocated from.
    pub service_cidr: ipalloc::ServiceCidr,
    /// `--service-node-port-range`: the range NodePorts are allocated from (default
    /// 30000-32767).
    pub service_node_port_range: portalloc::PortRange,
    /// `--advertise-address`: the address the `kubernetes` Service's endpoints point at
    /// (`None`: the address of the interface holding the default route).
    pub advertise_address: Option<IpAddr>,
    /// `--token`: the join token (or bare secret) of a new cluster. The token is kept in
    /// `<data-dir>/token`; `None` reads it from there or creates a random one.
    pub token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("/var/lib/r8s/server"),
            bind_address: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            https_port: 6443,
            tls_sans: Vec::new(),
            service_cidr: ipalloc::ServiceCidr::parse("10.43.0.0/16")
                .expect("valid default service CIDR"),
            service_node_port_range: portalloc::PortRange::default(),
            advertise_address: None,
            token: None,
        }
    }
}

/// Errors starting the API server.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// Certificates could not be created or loaded.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    /// The join token is invalid or does not match the data directory.
    #[error(transparent)]
    Join(#[from] join::JoinError),
    /// Listening failed.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Everything a request handler needs.
pub struct ApiState {
    /// Served kinds.
    pub registry: Arc<Registry>,
    /// The store (writes).
    pub store: Arc<dyn Store>,
    /// The watch cache (reads).
    pub cacher: Arc<Cacher>,
    /// Request metrics.
    pub metrics: metrics::Metrics,
    /// Cancelled on shutdown (ends watches).
    pub shutdown: CancellationToken,
    /// Static bearer tokens.
    pub tokens: HashMap<String, server::User>,
    /// `host:port` for legacy discovery.
    pub server_address: String,
    /// Set once bootstrap is done.
    pub ready: AtomicBool,
    /// The OpenAPI v3 index, built on first use (it needs every document's hash, and the
    /// schemas are the largest thing in memory: an idle server should not hold them).
    openapi_index: std::sync::OnceLock<Value>,
    /// ClusterIP and NodePort allocation for Services.
    pub service_alloc: service_alloc::ServiceAllocator,
    /// TLS client configuration towards node agents (logs, exec, attach, port-forward); `None`
    /// without a PKI (in-process servers), where those subresources answer 503.
    pub kubelet_tls: Option<Arc<rustls::ClientConfig>>,
    /// The join endpoints (`/cacerts`, `/v1-r8s/...`); `None` without a PKI.
    pub join: Option<join::Joiner>,
    openapi_docs: Mutex<HashMap<(String, String), Bytes>>,
    openapi_kinds: Vec<openapi::KindInfo>,
    /// The last renewal body of each Lease (see [`handlers::renewal`]).
    pub renewals: handlers::renewal::Recent,
}

impl ApiState {
    /// Builds the state over a started cache.
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<dyn Store>,
        cacher: Arc<Cacher>,
        shutdown: CancellationToken,
        tokens: HashMap<String, server::User>,
        server_address: String,
    ) -> ApiState {
        let openapi_kinds: Vec<openapi::KindInfo> = registry
            .all()
            .iter()
            .map(|r| openapi::KindInfo {
                group: r.group.to_string(),
                version: r.version.to_string(),
                kind: r.kind.to_string(),
                plural: r.resource.to_string(),
                namespaced: r.namespaced,
                subresources: r
                    .subresources
                    .iter()
                    .map(|s| s.name().to_string())
                    .collect(),
                verbs: r.verbs().iter().map(|s| s.to_string()).collect(),
            })
            .collect();
        ApiState {
            registry,
            store,
            cacher,
            metrics: metrics::Metrics::default(),
            shutdown,
            tokens,
            server_address,
            ready: AtomicBool::new(false),
            openapi_index: std::sync::OnceLock::new(),
            service_alloc: service_alloc::ServiceAllocator::new(
                ipalloc::ServiceCidr::parse("10.43.0.0/16").expect("valid default service CIDR"),
                portalloc::PortRange::default(),
            ),
            openapi_docs: Mutex::new(HashMap::new()),
            openapi_kinds,
            kubelet_tls: None,
            join: None,
            renewals: handlers::renewal::Recent::default(),
        }
    }

    /// The OpenAPI v3 index document.
    pub fn openapi_index(&self) -> &Value {
        self.openapi_index
            .get_or_init(|| openapi::index_document(&self.openapi_kinds))
    }

    /// The OpenAPI v3 document of a group-version (built once, then cached).
    pub fn openapi_doc(&self, group: &str, version: &str) -> Option<Bytes> {
        let key = (group.to_string(), version.to_string());
        if let Some(b) = self.openapi_docs.lock().get(&key) {
            return Some(b.clone());
        }
        let doc = openapi::group_version_document_shared(&self.openapi_kinds, group, version)?;
        let bytes = Bytes::copy_from_slice(&doc.bytes);
        self.openapi_docs.lock().insert(key, bytes.clone());
        Some(bytes)
    }
}

/// The namespaces that exist from the start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the system namespaces if missing.
pub async fn bootstrap(state: &ApiState) -> Result<(), error::ApiError> {
    let Some(nsr) = state.registry.get("", "v1", "namespaces").cloned() else {
        return Ok(());
    };
    state.cacher.wait_fresh().await?;
    for ns in SYSTEM_NAMESPACES {
        if state.cacher.get(&nsr, &nsr.key(None, ns)).is_some() {
            continue;
        }
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}});
        match handlers::write::create_object(state, &nsr, None, obj, Some("r8s"), false).await {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    state.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// A running API server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Shared state.
    pub state: Arc<ApiState>,
    /// The serving task.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the API server: PKI, kubeconfig, watch cache, bootstrap, HTTPS.
pub async fn start(
    cfg: Config,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
) -> Result<Running, ApiServerError> {
    let pki = pki::Pki::at(&cfg.data_dir);
    let mut sans = cfg.tls_sans.clone();
    if !cfg.bind_address.is_unspecified() {
        sans.push(cfg.bind_address.to_string());
    }
    pki.ensure(&sans)?;
    let tls = pki.server_config()?;
    let tokens = pki
        .load_tokens()?
        .into_iter()
        .map(|(t, name, groups)| (t, server::User { name, groups }))
        .collect();

    let addr = SocketAddr::new(cfg.bind_address, cfg.https_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ApiServerError::Listen { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ApiServerError::Listen { addr, source })?;
    let host = if cfg.bind_address.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        cfg.bind_address.to_string()
    };
    let server_url = format!("https://{host}:{}", addr.port());
    pki.write_admin_kubeconfig(&cfg.data_dir.join("kubeconfig.yaml"), &server_url)?;

    let registry = Arc::new(Registry::builtin());
    let cacher = Cacher::start(
        store.clone(),
        registry.clone(),
        handlers::read::extract_fields,
        shutdown.clone(),
    )
    .await?;
    let mut state = ApiState::new(
        registry,
        store,
        cacher,
        shutdown.clone(),
        tokens,
        format!("{host}:{}", addr.port()),
    );
    state.service_alloc =
        service_alloc::ServiceAllocator::new(cfg.service_cidr, cfg.service_node_port_range);
    state.kubelet_tls = Some(Arc::new(pki.kubelet_client_config()?));
    let token = join::ensure_token(&cfg.data_dir, &pki, cfg.token.as_deref())?;
    state.join = Some(join::Joiner::load(&pki, &token)?);
    let state = Arc::new(state);
    let app = server::router(state.clone());
    let task = tokio::spawn(server::serve_tls(listener, tls, app, shutdown.clone()));
    if let Err(e) = bootstrap(&state).await {
        tracing::error!(error = %e, "bootstrap of system namespaces failed");
    }
    state.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    // The `kubernetes` and `kube-dns` Services, and the `kubernetes` endpoints.
    let advertise = cfg
        .advertise_address
        .or_else(bootstrap_services::default_route_address)
        .unwrap_or(if cfg.bind_address.is_unspecified() {
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        } else {
            cfg.bind_address
        });
    tokio::spawn(bootstrap_services::run(
        state.clone(),
        bootstrap_services::Settings {
            advertise_address: advertise,
            https_port: addr.port(),
        },
        shutdown.clone(),
    ));
    tracing::info!(%addr, "API server ready");
    Ok(Running { addr, state, task })
}
