//! The agent's HTTPS server (port 10250): container logs, exec, attach and port-forward, proxied to
//! by the API server.
//!
//! Routes (as upstream's kubelet server):
//! - `GET /healthz` → `ok`;
//! - `GET /containerLogs/{ns}/{pod}/{container}?follow&previous&tailLines&sinceSeconds&sinceTime&timestamps&limitBytes`
//!   ([`logs`]);
//! - `GET|POST /exec/{ns}/{pod}/{container}?command=..&stdin=1&stdout=1&stderr=1&tty=1`,
//!   `/attach/{ns}/{pod}/{container}` and `/portForward/{ns}/{pod}` ([`streaming`]).
//!
//! Every request needs a client certificate signed by the cluster CA (401 without one); only the
//! API server's kubelet client (`kube-apiserver-kubelet-client`) and `system:masters` may use it
//! (403 otherwise).

pub mod logs;
pub mod spdy;
mod spdy_dictionary;
pub mod streaming;
pub mod tls;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use tls::ensure_serving_cert;

/// What the server needs from the agent about the pods it runs.
pub trait PodView: Send + Sync + 'static {
    /// The container `container` of pod `namespace/pod`; with `previous`, its last terminated
    /// instance. Err is the user-facing message, e.g. upstream's
    /// `container "c" in pod "p" is waiting to start: ContainerCreating` or
    /// `previous terminated container "c" in pod "p" not found` (answered as a 400).
    fn container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<ContainerRef, String>;
    /// The pod sandbox of a running pod, for port-forward.
    fn sandbox(&self, namespace: &str, pod: &str) -> Option<SandboxRef>;
}

/// A container instance the server can stream from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// The CRI container id.
    pub id: String,
    /// Its CRI log file.
    pub log_path: PathBuf,
    /// Whether it is running now.
    pub running: bool,
}

/// A pod sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRef {
    /// The CRI sandbox id.
    pub id: String,
    /// The pod IP, if it has one.
    pub ip: Option<IpAddr>,
}

/// Where and how the server listens.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address (default `0.0.0.0:10250`).
    pub addr: SocketAddr,
    /// Serving certificate (PEM).
    pub tls_cert: PathBuf,
    /// Serving key (PEM).
    pub tls_key: PathBuf,
    /// CA that client certificates must be signed by (the cluster CA).
    pub client_ca: PathBuf,
}

impl ServerConfig {
    /// The default listen address, `0.0.0.0:10250`.
    pub const DEFAULT_ADDR: SocketAddr =
        SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 10250);
}

/// Errors starting the server or issuing its certificate.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate error: {0}")]
    Cert(#[from] rcgen::Error),
    /// The TLS configuration is unusable.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// The response body type of every handler.
pub type Body = BoxBody<Bytes, Infallible>;

/// A whole body.
pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

/// A body streamed from a channel (ends when the sender is dropped; a dropped body closes the
/// receiver, which the producer notices).
pub(crate) fn channel_body(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(hyper::body::Frame::data(b)), rx))
    });
    StreamBody::new(stream).boxed()
}

/// A plain-text response (upstream's kubelet answers errors with `http.Error`).
pub(crate) fn text(code: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut body: String = msg.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let mut r = Response::new(full(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Shared state of the handlers.
pub(crate) struct State {
    pub(crate) view: Arc<dyn PodView>,
    pub(crate) cri: crate::cri::Cri,
    pub(crate) shutdown: CancellationToken,
}

/// A bound server, not yet serving (lets callers learn the port when binding port 0).
pub struct Server {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
}

impl Server {
    /// Loads the certificates and binds `config.addr`.
    pub async fn bind(config: &ServerConfig) -> Result<Server, ServerError> {
        let tls = tls::server_config(&config.tls_cert, &config.tls_key, &config.client_ca)?;
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.addr,
                    source,
                })?;
        Ok(Server {
            listener,
            tls: Arc::new(tls),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run(
        self,
        view: Arc<dyn PodView>,
        cri: crate::cri::Cri,
        shutdown: CancellationToken,
    ) {
        let state = Arc::new(State {
            view,
            cri,
            shutdown: shutdown.clone(),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls);
        let tasks = tokio_util::task::TaskTracker::new();
        loop {
            let (tcp, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = self.listener.accept() => match a {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "kubelet server accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let state = state.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                let tls = match tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    acceptor.accept(tcp),
                )
                .await
                {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "kubelet server TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let user = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| tls::user_from_cert(c));
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    let user = user.clone();
                    async move { Ok::<_, Infallible>(handle(state, user, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .with_upgrades();
                tokio::pin!(conn);
                tokio::select! {
                    res = conn.as_mut() => {
                        if let Err(e) = res {
                            tracing::debug!(%peer, error = %e, "kubelet server connection error");
                        }
                    }
                    _ = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn).await;
                    }
                }
            });
        }
        tasks.close();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tasks.wait()).await;
    }
}

/// Serves the agent's API on `config.addr` until `shutdown` is cancelled; bind and certificate
/// errors are returned at once.
pub async fn serve(
    config: ServerConfig,
    view: Arc<dyn PodView>,
    cri: crate::cri::Cri,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let server = Server::bind(&config).await?;
    tracing::info!(addr = %config.addr, "kubelet server listening");
    server.run(view, cri, shutdown).await;
    Ok(())
}

/// Whether a client certificate's user may use the server.
fn authorized(user: &(String, Vec<String>)) -> bool {
    user.0 == "kube-apiserver-kubelet-client" || user.1.iter().any(|g| g == "system:masters")
}

fn segments(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

async fn handle(
    state: Arc<State>,
    user: Option<(String, Vec<String>)>,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segs = segments(&path);
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let Some(user) = user else {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let subresource = match segs.first() {
        Some(&"containerLogs") => "log",
        Some(&"exec") => "exec",
        Some(&"attach") => "attach",
        Some(&"portForward") => "portforward",
        Some(&"healthz") => "healthz",
        _ => "proxy",
    };
    if !authorized(&user) {
        let verb = if req.method() == Method::GET {
            "get"
        } else {
            "create"
        };
        return text(
            StatusCode::FORBIDDEN,
            format!(
                "Forbidden (user={}, verb={verb}, resource=nodes, subresource(s)=[{subresource}])",
                user.0
            ),
        );
    }
    let method = req.method().clone();
    match (method, segs.as_slice()) {
        (Method::GET, ["healthz"]) => text(StatusCode::OK, "ok").map(|_| full("ok")),
        (Method::GET, ["containerLogs", ns, pod, container]) => {
            container_logs(&state, ns, pod, container, req.uri().query()).await
        }
        (Method::GET | Method::POST, ["exec", ns, pod, container])
        | (Method::GET | Method::POST, ["exec", ns, pod, _, container]) => {
            streaming::exec(&state, req, ns, pod, container, false).await
        }
        (Method::GET | Method::POST, ["attach", ns, pod, container])
        | (Method::GET | Method::POST, ["attach", ns, pod, _, container]) => {
            streaming::exec(&state, req, ns, pod, container, true).await
        }
        (Method::GET | Method::POST, ["portForward", ns, pod])
        | (Method::GET | Method::POST, ["portForward", ns, pod, _]) => {
            streaming::port_forward(&state, req, ns, pod).await
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

/// Checks, once a second, whether a followed container still runs: CRI `ContainerStatus`,
/// falling back to the pod view when the runtime cannot be asked.
struct CriRunning {
    cri: crate::cri::Cri,
    view: Arc<dyn PodView>,
    id: String,
    namespace: String,
    pod: String,
    container: String,
}

impl logs::RunningCheck for CriRunning {
    async fn running(&mut self) -> bool {
        let mut rt = self.cri.runtime.clone();
        let req = crate::cri::api::ContainerStatusRequest {
            container_id: self.id.clone(),
            verbose: false,
        };
        match tokio::time::timeout(std::time::Duration::from_secs(2), rt.container_status(req))
            .await
        {
            Ok(Ok(resp)) => resp.into_inner().status.is_some_and(|s| {
                s.state == crate::cri::api::ContainerState::ContainerRunning as i32
            }),
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => false,
            _ => self
                .view
                .container(&self.namespace, &self.pod, &self.container, false)
                .is_ok_and(|c| c.running && c.id == self.id),
        }
    }
}

async fn container_logs(
    state: &Arc<State>,
    ns: &str,
    pod: &str,
    container: &str,
    query: Option<&str>,
) -> Response<Body> {
    let opts = match logs::LogOptions::from_query(query) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let previous = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(k, v)| k == "previous" && matches!(v.as_ref(), "true" | "1" | "True"));
    let c = match state.view.container(ns, pod, container, previous) {
        Ok(c) => c,
        Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
    };
    // Open before answering so that a missing file is an error, not an empty 200.
    if let Err(e) = tokio::fs::metadata(&c.log_path).await {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "failed to try resolving symlinks in path {:?}: {e}",
                c.log_path.display()
            ),
        );
    }
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let opts = logs::LogOptions {
        follow: opts.follow && c.running,
        ..opts
    };
    let check = CriRunning {
        cri: state.cri.clone(),
        view: state.view.clone(),
        id: c.id.clone(),
        namespace: ns.to_string(),
        pod: pod.to_string(),
        container: container.to_string(),
    };
    let shutdown = state.shutdown.clone();
    let path = c.log_path.clone();
    tokio::spawn(async move {
        tokio::select! {
            r = logs::read_logs(&path, &opts, tx, check) => {
                if let Err(e) = r {
                    tracing::debug!(path = %path.display(), error = %e, "reading container log failed");
                }
            }
            _ = shutdown.cancelled() => {}
        }
    });
    let mut r = Response::new(channel_body(rx));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Reads a whole (small) body, for error messages.
pub(crate) async fn read_small(body: Incoming) -> Bytes {
    match http_body_util::Limited::new(body, 64 << 10).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    }
}
