//! In-process clients: the controllers, the scheduler and simulated nodes inside `r8s server`
//! talk to the API server through kube-rs, like every upstream component, but over a direct
//! call into the router instead of TLS on loopback (no handshake, no encryption, no sockets).
//! Requests are authenticated as the given user, exactly as a client certificate would be.

use std::sync::Arc;

use tower::ServiceBuilder;

use crate::ApiState;
use crate::server::{self, ConnUser, User};

/// A kube-rs client calling the API server in-process as `user` (e.g.
/// `system:kube-controller-manager`, group `system:masters` is not implied).
pub fn client(state: Arc<ApiState>, user: &str, groups: &[&str]) -> kube::Client {
    let user = User {
        name: user.to_string(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    };
    let service = ServiceBuilder::new()
        .map_request(move |mut req: http::Request<kube::client::Body>| {
            req.extensions_mut().insert(ConnUser(Some(user.clone())));
            req
        })
        .service(server::router(state));
    kube::Client::new(service, "default")
}

/// An API server over `store` reachable only in-process (no TLS listener, no certificates):
/// the watch cache is started and the system namespaces exist. Component tests use it with
/// [`client`] to run controllers against the real API server.
pub async fn serve(
    store: Arc<dyn store::Store>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<Arc<ApiState>, crate::ApiServerError> {
    let registry = Arc::new(crate::registry::Registry::builtin());
    let cacher = crate::cacher::Cacher::start(
        store.clone(),
        registry.clone(),
        crate::handlers::read::extract_fields,
        shutdown.clone(),
    )
    .await?;
    let state = Arc::new(ApiState::new(
        registry,
        store,
        cacher,
        shutdown,
        std::collections::HashMap::new(),
        "127.0.0.1:6443".into(),
    ));
    if let Err(e) = crate::bootstrap(&state).await {
        tracing::error!(error = %e, "bootstrap of system namespaces failed");
    }
    state.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(state)
}

/// The user in-process components act as, with the groups that allow everything.
pub const CONTROLLER_USER: &str = "system:kube-controller-manager";

/// An in-process API server over SQLite in a temporary directory, for component tests and
/// examples: an administrator client, and a shutdown token cancelled on drop (the directory is
/// removed then too).
pub struct TempServer {
    /// The API server.
    pub state: Arc<ApiState>,
    /// A client as an administrator (`system:masters`).
    pub client: kube::Client,
    /// Stops the API server; cancelled on drop.
    pub shutdown: tokio_util::sync::CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for TempServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TempServer {
    /// Starts one.
    pub async fn start() -> Result<Self, crate::ApiServerError> {
        let dir = tempfile::tempdir().map_err(|source| {
            crate::ApiServerError::Store(store::StoreError::Backend(format!(
                "temporary directory: {source}"
            )))
        })?;
        let store =
            store::sqlite::SqliteStore::open(&dir.path().join("db"), Default::default()).await?;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let state = serve(Arc::new(store), shutdown.clone()).await?;
        let client = client(state.clone(), "admin", &["system:masters"]);
        Ok(Self {
            state,
            client,
            shutdown,
            _dir: dir,
        })
    }
}
