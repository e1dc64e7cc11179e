//! An HTTPS/2 client for the r8s API: rustls with the admin client certificate, one TCP
//! connection per [`H2Client`], many concurrent streams on it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::BenchError;

/// Accept header that asks for the server-side Table form (what `kubectl get` sends, minus the
/// fallbacks).
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Opens authenticated HTTP/2 connections to one server.
#[derive(Clone)]
pub struct Connector {
    tls: TlsConnector,
    addr: SocketAddr,
}

impl Connector {
    /// Loads `server-ca.crt`, `client-admin.crt` and `client-admin.key` from `tls_dir` (the
    /// server's `DATA_DIR/server/tls`) for connections to `addr`.
    pub fn from_tls_dir(tls_dir: &Path, addr: SocketAddr) -> Result<Self, BenchError> {
        let ca = read_file(&tls_dir.join("server-ca.crt"))?;
        let cert = read_file(&tls_dir.join("client-admin.crt"))?;
        let key = read_file(&tls_dir.join("client-admin.key"))?;
        Self::from_pem(&ca, &cert, &key, addr)
    }

    /// Builds a connector from PEM text: the CA that signed the serving certificate, the
    /// client certificate chain and its private key.
    pub fn from_pem(
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
        addr: SocketAddr,
    ) -> Result<Self, BenchError> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in parse_certs(ca_pem, "CA")? {
            roots
                .add(ca)
                .map_err(|e| BenchError::Tls(format!("adding the CA: {e}")))?;
        }
        let chain = parse_certs(cert_pem, "client certificate")?;
        let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
            .map_err(|e| BenchError::Tls(format!("reading the client key: {e}")))?
            .ok_or_else(|| BenchError::Tls("no private key in the client key file".into()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BenchError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| BenchError::Tls(format!("client certificate: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            addr,
        })
    }

    /// The server address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens one TCP + TLS + HTTP/2 connection. The connection lives until every clone of the
    /// returned client is dropped.
    pub async fn h2(&self) -> Result<H2Client, BenchError> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| BenchError::io(format!("connecting to {}", self.addr), e))?;
        tcp.set_nodelay(true)
            .map_err(|e| BenchError::io("setting TCP_NODELAY", e))?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| BenchError::Tls(format!("handshake with {}: {e}", self.addr)))?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(16 << 20)
            .max_frame_size(1 << 20)
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| BenchError::Http(format!("HTTP/2 handshake: {e}")))?;
        tokio::spawn(async move {
            // Ends when the server closes the connection or every sender is dropped.
            let _ = conn.await;
        });
        Ok(H2Client {
            sender,
            base: format!("https://{}", self.addr),
        })
    }
}

/// One HTTP/2 connection; clones share it (each request is a new stream).
#[derive(Clone)]
pub struct H2Client {
    sender: SendRequest<Full<Bytes>>,
    base: String,
}

/// A complete response: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The whole body.
    pub body: Bytes,
}

impl Answer {
    /// The body as (lossy) text, for error reports.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl H2Client {
    /// Sends a request and returns the response head with its body still streaming.
    pub async fn start(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>, BenchError> {
        let mut sender = self.sender.clone();
        sender
            .ready()
            .await
            .map_err(|e| BenchError::Http(format!("connection not ready: {e}")))?;
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::ACCEPT, accept);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| BenchError::Http(format!("building request {path}: {e}")))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| BenchError::Http(format!("{path}: {e}")))
    }

    /// Sends a request and reads the whole response.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<Bytes>,
    ) -> Result<Answer, BenchError> {
        let resp = self.start(method, path, accept, body).await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| BenchError::Http(format!("reading the body of {path}: {e}")))?
            .to_bytes();
        Ok(Answer { status, body })
    }

    /// `GET path` as JSON.
    pub async fn get(&self, path: &str) -> Result<Answer, BenchError> {
        self.send(Method::GET, path, "application/json", None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Bytes) -> Result<Answer, BenchError> {
        self.send(Method::POST, path, "application/json", Some(body))
            .await
    }
}

/// `GET /readyz` on a fresh connection; `Ok(true)` when it answers 200 within `timeout`.
pub async fn probe_ready(connector: &Connector, timeout: Duration) -> Result<bool, BenchError> {
    let attempt = async {
        let client = connector.h2().await?;
        Ok::<_, BenchError>(client.get("/readyz").await?.status == StatusCode::OK)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Ok(false),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, BenchError> {
    std::fs::read(path).map_err(|e| BenchError::io(format!("reading {}", path.display()), e))
}

fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, BenchError> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BenchError::Tls(format!("reading the {what}: {e}")))?;
    if certs.is_empty() {
        return Err(BenchError::Tls(format!(
            "no certificate in the {what} file"
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 6443))
    }

    #[test]
    fn empty_ca_is_rejected() {
        let err = Connector::from_pem(b"", b"", b"", addr())
            .err()
            .expect("empty PEM must fail");
        assert!(
            err.to_string().contains("no certificate in the CA"),
            "{err}"
        );
    }

    #[test]
    fn truncated_pem_is_an_error_not_a_panic() {
        // What a reader sees while the server is still writing the file.
        let half = b"-----BEGIN CERTIFICATE-----\nMIIB";
        assert!(Connector::from_pem(half, half, half, addr()).is_err());
    }
}
