//! An API client over HTTP/2, as client-go's: every request of a process multiplexed over one
//! connection.
//!
//! kube-rs's default client speaks HTTP/1.1 only, so a component with many requests in flight
//! holds a connection per request and the API server reads, wakes and writes once per request.
//! client-go negotiates HTTP/2 (ALPN `h2`) with the API server, and so do kubelets, the
//! scheduler, kube-controller-manager and kwok's simulated nodes. Over one connection the
//! requests that are ready together share TLS records and system calls on both ends.
//!
//! Connections are checked as client-go's HTTP/2 transport does (`ReadIdleTimeout` 30 s,
//! `PingTimeout` 15 s): a ping after 30 s without frames, and the connection is dropped when no
//! answer comes in 15 s, so a dead server is noticed and the next request reconnects.

use std::time::Duration;

use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::ConfigExt;
use tower::ServiceBuilder;

/// client-go's `ReadIdleTimeout` for HTTP/2 connections.
const READ_IDLE: Duration = Duration::from_secs(30);
/// client-go's `PingTimeout`.
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// A kube-rs client for `config` that speaks HTTP/2 (TLS with ALPN `h2`; prior knowledge over
/// plain `http://`). Authentication (client certificates, bearer tokens, exec plugins) and the
/// impersonation headers are the config's, as with [`kube::Client::try_from`].
pub fn http2(config: kube::Config) -> Result<kube::Client, kube::Error> {
    // The connector offers ALPN `h2` itself (it panics on a config that already has ALPN).
    let tls = config.rustls_client_config()?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http2()
        .wrap_connector(http);
    let hyper = HyperClient::builder(TokioExecutor::new())
        .http2_only(true)
        .timer(TokioTimer::new())
        .http2_keep_alive_interval(READ_IDLE)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build(https);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace))
}
