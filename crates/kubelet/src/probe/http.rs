//! The httpGet handler, as upstream's `pkg/probe/http`: `GET` with `User-Agent: kube-probe/1.35`
//! and `Accept: */*` unless overridden, no certificate verification for HTTPS, redirects followed
//! only to the same host (at most 10), 200–399 success, the body read up to 10 KiB.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{ProbeOutcome, USER_AGENT};

/// Upstream `maxRespBodyLength`.
const MAX_BODY: usize = 10 << 10;
/// Go's http.Client stops after 10 redirects.
const MAX_REDIRECTS: usize = 10;

/// One httpGet probe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `http` or `https` (lower case).
    pub scheme: String,
    /// The host (an IP or name; defaults to the pod IP upstream).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The path, possibly with a query.
    pub path: String,
    /// Extra headers (`httpHeaders`), in order.
    pub headers: Vec<(String, String)>,
}

impl HttpRequest {
    /// The URL as upstream's `formatURL` builds it.
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let path = if self.path.starts_with('/') {
            self.path.clone()
        } else {
            format!("/{}", self.path)
        };
        format!("{}://{host}:{}{path}", self.scheme, self.port)
    }
}

/// Runs an httpGet probe within `timeout` (for the whole exchange, like Go's `Client.Timeout`).
pub async fn run_http(req: &HttpRequest, timeout: Duration) -> ProbeOutcome {
    let url = req.url();
    match tokio::time::timeout(timeout, follow(req)).await {
        Err(_) => ProbeOutcome::Failure(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Ok(Err(e)) => ProbeOutcome::Failure(e),
        Ok(Ok((status, body))) => {
            let body = String::from_utf8_lossy(&body).into_owned();
            if (200..400).contains(&status) {
                if status >= 300 {
                    ProbeOutcome::Warning(format!(
                        "Probe terminated redirects, Response body: {body}"
                    ))
                } else {
                    ProbeOutcome::Success(body)
                }
            } else {
                ProbeOutcome::Failure(format!("HTTP probe failed with statuscode: {status}"))
            }
        }
    }
}

/// Sends the request, following same-host redirects; returns the last status and body.
async fn follow(req: &HttpRequest) -> Result<(u16, Vec<u8>), String> {
    let original_host = req.host.clone();
    let mut url: http::Uri = req
        .url()
        .parse()
        .map_err(|e| format!("parse {:?}: {e}", req.url()))?;
    let mut redirects = 0;
    loop {
        let (status, location, body) = send_once(&url, &req.headers)
            .await
            .map_err(|e| format!("Get {:?}: {e}", url.to_string()))?;
        let Some(location) = location.filter(|_| is_redirect(status)) else {
            return Ok((status, body));
        };
        let next = resolve_location(&url, &location)
            .map_err(|e| format!("Get {:?}: {e}", url.to_string()))?;
        if next.host().map(strip_brackets) != Some(strip_brackets(&original_host)) {
            // Upstream's RedirectChecker: http.ErrUseLastResponse for another host.
            return Ok((status, body));
        }
        redirects += 1;
        if redirects >= MAX_REDIRECTS {
            return Err(format!(
                "Get {:?}: stopped after {MAX_REDIRECTS} redirects",
                next.to_string()
            ));
        }
        url = next;
    }
}

fn strip_brackets(h: &str) -> &str {
    h.trim_start_matches('[').trim_end_matches(']')
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Resolves a `Location` header against the current URL.
fn resolve_location(base: &http::Uri, location: &str) -> Result<http::Uri, String> {
    let base = url::Url::parse(&base.to_string()).map_err(|e| e.to_string())?;
    let next = base.join(location).map_err(|e| e.to_string())?;
    next.as_str()
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())
}

/// One request on a fresh connection (upstream disables keep-alives).
async fn send_once(
    url: &http::Uri,
    headers: &[(String, String)],
) -> Result<(u16, Option<String>, Vec<u8>), String> {
    let https = url.scheme_str() == Some("https");
    let host = url.host().ok_or("no host in URL")?.to_string();
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let bare = strip_brackets(&host).to_string();
    let addr = if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{bare}:{port}")
    };
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| dial_error(&addr, &e))?;
    let _ = tcp.set_nodelay(true);
    if https {
        let connector = tokio_rustls::TlsConnector::from(tls_config().map_err(|e| e.to_string())?);
        let name = rustls::pki_types::ServerName::try_from(bare.clone())
            .map_err(|e| format!("invalid server name {bare:?}: {e}"))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        exchange(tls, url, &addr, headers).await
    } else {
        exchange(tcp, url, &addr, headers).await
    }
}

/// Go's `net.OpError` text for a failed dial.
pub(crate) fn dial_error(addr: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {addr}: connect: connection refused")
        }
        std::io::ErrorKind::TimedOut => format!("dial tcp {addr}: i/o timeout"),
        _ => format!("dial tcp {addr}: connect: {e}"),
    }
}

async fn exchange<S>(
    io: S,
    url: &http::Uri,
    host_port: &str,
    headers: &[(String, String)],
) -> Result<(u16, Option<String>, Vec<u8>), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    let conn_task = tokio::spawn(conn);
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let mut builder = http::Request::get(path);
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map_or(host_port.to_string(), |(_, v)| v.clone());
    builder = builder.header(http::header::HOST, host);
    if !has("user-agent") {
        builder = builder.header(http::header::USER_AGENT, USER_AGENT);
    }
    if !has("accept") {
        builder = builder.header(http::header::ACCEPT, "*/*");
    }
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("host") || (k.eq_ignore_ascii_case("accept") && v.is_empty()) {
            continue;
        }
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder = builder.header(http::header::CONNECTION, "close");
    let request = builder
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let result = async {
        let resp = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        while buf.len() < MAX_BODY {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        buf.extend_from_slice(data);
                    }
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => break,
            }
        }
        buf.truncate(MAX_BODY);
        Ok((status, location, buf))
    }
    .await;
    conn_task.abort();
    result
}

/// A TLS client config that accepts any certificate (Go's `InsecureSkipVerify: true`).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Skips certificate verification but still checks handshake signatures.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_urls() {
        let mut r = HttpRequest {
            scheme: "http".into(),
            host: "10.0.0.1".into(),
            port: 8080,
            path: "healthz?x=1".into(),
            headers: vec![],
        };
        assert_eq!(r.url(), "http://10.0.0.1:8080/healthz?x=1");
        r.host = "::1".into();
        r.path = String::new();
        assert_eq!(r.url(), "http://[::1]:8080/");
    }
}
