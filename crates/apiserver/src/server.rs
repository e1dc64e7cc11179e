//! HTTPS serving: the TLS accept loop, authentication, and the top-level routes (discovery,
//! OpenAPI, health, metrics); everything under `/api/v1` and `/apis/<g>/<v>` goes to the
//! generic resource handlers.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::ApiState;
use crate::discovery;
use crate::error::ApiError;
use crate::handlers::{self, json_response, json_value};

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct User {
    /// User name.
    pub name: String,
    /// Groups.
    pub groups: Vec<String>,
}

/// The user of a TLS connection's client certificate, if any.
#[derive(Debug, Clone, Default)]
pub struct ConnUser(pub Option<User>);

/// The API as a tower service (no TLS): used by the server, in-process clients and tests.
pub fn router(state: Arc<ApiState>) -> ApiService {
    ApiService(state)
}

/// Every request goes to [`dispatch`], which matches the paths itself: no router in front of
/// it (an axum `Router` with only a fallback still looked the path up and wrapped the handler in
/// three more futures, about 2% of the server's CPU under heartbeats).
#[derive(Clone)]
pub struct ApiService(Arc<ApiState>);

impl<B> tower::Service<http::Request<B>> for ApiService
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move { Ok(dispatch(State(state), req.map(Body::new)).await) })
    }
}

fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/livez" | "/readyz" | "/version" | "/version/"
    ) || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

fn authenticate(state: &ApiState, req: &Request) -> Option<User> {
    if let Some(ConnUser(Some(u))) = req.extensions().get::<ConnUser>() {
        return Some(u.clone());
    }
    let auth = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))?
        .trim();
    state.tokens.get(token).cloned()
}

async fn dispatch(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    // A clone of the Uri shares its bytes.
    let uri = req.uri().clone();
    let path = uri.path();
    if let Some(joiner) = &state.join
        && (path == crate::join::CACERTS_PATH || path.starts_with("/v1-r8s/"))
    {
        let (parts, body) = req.into_parts();
        if let Some(resp) = joiner
            .handle(&parts.method, path, &parts.headers, body)
            .await
        {
            return resp;
        }
        return ApiError::path_not_found().into_response();
    }
    let user = if is_public(path) {
        None
    } else {
        match authenticate(&state, &req) {
            Some(u) => Some(u),
            None => return ApiError::unauthorized().into_response(),
        }
    };
    if req.method() == Method::POST
        && path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    {
        return self_subject_access_review(req, user).await;
    }
    if (req.method() == Method::GET || req.method() == Method::HEAD)
        && let Some(resp) = fixed_route(&state, path, req.uri().query(), req.headers())
    {
        return resp;
    }
    handlers::resource_request(State(state), req).await
}

/// `kubectl auth can-i`: there is no authorization policy yet (a later issue), so every
/// authenticated user may do everything, and the review says so.
async fn self_subject_access_review(req: Request, user: Option<User>) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match handlers::read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let format = match handlers::negotiate::body_format(&parts.headers) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let review = match handlers::negotiate::decode(&bytes, format, "SelfSubjectAccessReview") {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let who = user.map(|u| u.name).unwrap_or_default();
    let out = serde_json::json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": review.get("spec").cloned().unwrap_or_else(|| serde_json::json!({})),
        "status": {"allowed": true, "reason": format!("r8s has no authorization policy yet: {who} may do everything")},
    });
    json_value(StatusCode::CREATED, &out)
}

fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',').any(|p| {
                p.contains("as=APIGroupDiscoveryList")
                    && p.contains("g=apidiscovery.k8s.io")
                    && p.contains("v=v2")
                    && !p.contains("v=v2beta1")
            })
        })
}

fn health(state: &ApiState, check: &str, query: Option<&str>) -> Response {
    let ready = state.ready.load(std::sync::atomic::Ordering::SeqCst);
    let ok = check != "readyz" || ready;
    let verbose = query.is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    });
    let body = if verbose {
        let mut s = String::from("[+]ping ok\n[+]log ok\n[+]etcd ok\n");
        if check == "readyz" {
            s.push_str(if ready {
                "[+]informer-sync ok\n"
            } else {
                "[-]informer-sync failed: reason withheld\n"
            });
        }
        s.push_str("[+]poststarthook/start-apiserver-admission-initializer ok\n");
        if ok {
            s.push_str(&format!("{check} check passed\n"));
        } else {
            s.push_str(&format!("{check} check failed\n"));
        }
        s
    } else if ok {
        "ok".to_string()
    } else {
        "[-]informer-sync failed: reason withheld\nreadyz check failed".to_string()
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut().insert(
        "x-content-type-options",
        http::HeaderValue::from_static("nosniff"),
    );
    resp
}

fn fixed_route(
    state: &Arc<ApiState>,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<Response> {
    let p = path.trim_end_matches('/');
    let resp = match p {
        "/version" => json_value(StatusCode::OK, &discovery::version()),
        "/healthz" | "/livez" | "/readyz" => health(state, &p[1..], query),
        _ if p.starts_with("/healthz/")
            || p.starts_with("/livez/")
            || p.starts_with("/readyz/") =>
        {
            let check = p[1..].split('/').next().unwrap_or("healthz").to_string();
            health(state, &check, None)
        }
        "/metrics" => {
            let mut r = Response::new(Body::from(state.metrics.render()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/api" => {
            if wants_aggregated(headers) {
                json_response(
                    StatusCode::OK,
                    serde_json::to_vec(&discovery::aggregated(&state.registry, true))
                        .unwrap_or_default(),
                    discovery::AGGREGATED_CONTENT_TYPE,
                )
            } else {
                json_value(
                    StatusCode::OK,
                    &discovery::api_versions(&state.server_address),
                )
            }
        }
        "/apis" => {
            if wants_aggregated(headers) {
                json_response(
                    StatusCode::OK,
                    serde_json::to_vec(&discovery::aggregated(&state.registry, false))
                        .unwrap_or_default(),
                    discovery::AGGREGATED_CONTENT_TYPE,
                )
            } else {
                json_value(StatusCode::OK, &discovery::api_group_list(&state.registry))
            }
        }
        "/api/v1" => json_value(
            StatusCode::OK,
            &discovery::resource_list(&state.registry, "", "v1")?,
        ),
        "/openapi/v3" => json_value(StatusCode::OK, state.openapi_index()),
        _ => {
            let segs: Vec<&str> = p.trim_start_matches('/').split('/').collect();
            match segs.as_slice() {
                ["apis", g] => {
                    json_value(StatusCode::OK, &discovery::api_group(&state.registry, g)?)
                }
                ["apis", g, v] => json_value(
                    StatusCode::OK,
                    &discovery::resource_list(&state.registry, g, v)?,
                ),
                ["openapi", "v3", rest @ ..] => return Some(openapi_doc(state, &rest.join("/"))),
                ["openapi", "v2"] => ApiError::path_not_found().into_response(),
                _ => return None,
            }
        }
    };
    Some(resp)
}

fn openapi_doc(state: &ApiState, gv_path: &str) -> Response {
    let (group, version) = match gv_path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), v.to_string()),
        ["apis", g, v] => (g.to_string(), v.to_string()),
        _ => return ApiError::path_not_found().into_response(),
    };
    match state.openapi_doc(&group, &version) {
        Some(bytes) => {
            let mut r = json_response(StatusCode::OK, bytes, "application/json");
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                http::HeaderValue::from_static("public, immutable"),
            );
            r
        }
        None => ApiError::path_not_found().into_response(),
    }
}

/// Serves HTTPS on `listener` until `shutdown`.
pub async fn serve_tls(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    app: ApiService,
    shutdown: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer): (_, SocketAddr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
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
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| crate::pki::user_from_cert(c))
                .map(|(name, groups)| User { name, groups });
            let conn_user = ConnUser(user);
            let svc = app.map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(conn_user.clone());
                req.map(Body::new)
            });
            let svc = TowerToHyperService::new(svc);
            let mut driver = crate::conn_exec::Driver::default();
            let mut builder = hyper_util::server::conn::auto::Builder::new(driver.executor());
            // client-go multiplexes every request of a process (informers hold one watch per
            // resource) over one HTTP/2 connection; hyper's default of 200 streams is too few.
            builder.http2().max_concurrent_streams(1000);
            let conn =
                builder.serve_connection_with_upgrades(TokioIo::new(driver.coalesce(tls)), svc);
            tokio::pin!(conn);
            tokio::select! {
                res = driver.run(conn.as_mut()) => {
                    if let Err(e) = res {
                        tracing::debug!(%peer, error = %e, "connection ended with error");
                    }
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        driver.run(conn.as_mut()),
                    )
                    .await;
                }
            }
        });
    }
    tasks.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tasks.wait()).await;
}
