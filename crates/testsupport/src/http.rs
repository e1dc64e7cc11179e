//! A small blocking HTTPS/1.1 client for tests that need exact status codes and headers.
//!
//! One connection per request (`Connection: close`), TLS through rustls with the cluster CA from
//! the kubeconfig, and optionally the kubeconfig's client certificate. It speaks just enough
//! HTTP/1.1 for requests and complete (non-streaming) responses, including chunked bodies.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::{Kubeconfig, TestSupportError};

/// How long one request may take before the client gives up.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The headers in the order received (names as sent by the server).
    pub headers: Vec<(String, String)>,
    /// The body, with any chunked encoding removed.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// A blocking HTTPS client bound to one server.
#[derive(Clone)]
pub struct HttpClient {
    config: Arc<ClientConfig>,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    token: Option<String>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with the kubeconfig's CA and, when `with_credentials`, its client certificate
    /// (and bearer token, if any). Without credentials the client is anonymous.
    pub fn from_kubeconfig(
        kubeconfig: &Kubeconfig,
        with_credentials: bool,
    ) -> Result<Self, TestSupportError> {
        let mut roots = RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut BufReader::new(&kubeconfig.ca_pem[..])) {
            let cert = cert.map_err(|e| TestSupportError::Tls(format!("CA certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| TestSupportError::Tls(format!("CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(TestSupportError::Tls(
                "no CA certificate in kubeconfig".into(),
            ));
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| TestSupportError::Tls(e.to_string()))?
                .with_root_certificates(roots);
        let cert_and_key = match (
            with_credentials,
            &kubeconfig.client_cert_pem,
            &kubeconfig.client_key_pem,
        ) {
            (true, Some(cert), Some(key)) => Some((cert, key)),
            _ => None,
        };
        let config = match cert_and_key {
            Some((cert_pem, key_pem)) => {
                let certs: Vec<CertificateDer<'static>> =
                    rustls_pemfile::certs(&mut BufReader::new(&cert_pem[..]))
                        .collect::<Result<_, _>>()
                        .map_err(|e| TestSupportError::Tls(format!("client certificate: {e}")))?;
                let key = rustls_pemfile::private_key(&mut BufReader::new(&key_pem[..]))
                    .map_err(|e| TestSupportError::Tls(format!("client key: {e}")))?
                    .ok_or_else(|| TestSupportError::Tls("no private key in kubeconfig".into()))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| TestSupportError::Tls(format!("client certificate: {e}")))?
            }
            None => builder.with_no_client_auth(),
        };
        let (host, port) = kubeconfig.host_port()?;
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| TestSupportError::Tls(format!("server name {host}: {e}")))?;
        Ok(Self {
            config: Arc::new(config),
            host,
            port,
            server_name,
            token: kubeconfig.token.clone().filter(|_| with_credentials),
        })
    }

    /// Sends one request and reads the whole response. `path` includes the query string.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse, TestSupportError> {
        let addr = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let sock = TcpStream::connect(&addr)
            .map_err(|e| TestSupportError::io(format!("connecting to {addr}"), e))?;
        sock.set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| sock.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| TestSupportError::io("setting socket timeouts", e))?;
        let conn = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| TestSupportError::Tls(e.to_string()))?;
        let mut tls = StreamOwned::new(conn, sock);

        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: r8s-testsupport\r\n"
        );
        let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if !has("accept") {
            head.push_str("Accept: application/json\r\n");
        }
        if let Some(token) = &self.token
            && !has("authorization")
        {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");

        let written = tls
            .write_all(head.as_bytes())
            .and_then(|()| tls.write_all(body))
            .and_then(|()| tls.flush());
        let mut raw = Vec::new();
        let read = read_to_end_lenient(&mut tls, &mut raw);
        // A server may answer (e.g. 413) and close before reading a large body: a write error
        // is only fatal when no response arrived.
        if raw.is_empty() {
            written.map_err(|e| TestSupportError::io(format!("{method} {path}: write"), e))?;
            read.map_err(|e| TestSupportError::io(format!("{method} {path}: read"), e))?;
        }
        parse_response(&raw)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<HttpResponse, TestSupportError> {
        self.request("GET", path, &[], &[])
    }

    /// `method path` with a JSON body (`Content-Type: application/json`).
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<HttpResponse, TestSupportError> {
        self.request(method, path, &[("Content-Type", "application/json")], body)
    }
}

/// Reads until EOF, treating a peer that closes without TLS close_notify as EOF.
fn read_to_end_lenient(r: &mut impl Read, out: &mut Vec<u8>) -> std::io::Result<()> {
    match r.read_to_end(out) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !out.is_empty() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Parses a complete HTTP/1.1 response (status line, headers, body).
pub fn parse_response(raw: &[u8]) -> Result<HttpResponse, TestSupportError> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            TestSupportError::Http(format!(
                "no end of headers in {} bytes: {:?}",
                raw.len(),
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            ))
        })?;
    let head = std::str::from_utf8(&raw[..end])
        .map_err(|_| TestSupportError::Http("headers are not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| TestSupportError::Http(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        decode_chunked(rest)?
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest[..len.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>, TestSupportError> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            // Truncated stream: return what arrived.
            return Ok(out);
        };
        let size_text = std::str::from_utf8(&data[..line_end])
            .map_err(|_| TestSupportError::Http("bad chunk size".into()))?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| TestSupportError::Http(format!("bad chunk size {size_text:?}")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let take = size.min(data.len());
        out.extend_from_slice(&data[..take]);
        data = data.get(take + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_bodies() {
        let raw = b"HTTP/1.1 422 Unprocessable Entity\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}extra";
        let resp = parse_response(raw).unwrap();
        assert_eq!(resp.status, 422);
        assert_eq!(resp.header("Content-Type"), Some("application/json"));
        assert_eq!(resp.body, b"{}");
    }

    #[test]
    fn parses_chunked_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n";
        let resp = parse_response(raw).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "abcdefg");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"nonsense\r\n\r\n").is_err());
    }
}
