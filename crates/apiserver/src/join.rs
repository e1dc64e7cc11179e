//! Joining a cluster, k3s's way. The first server writes a join token to `<data-dir>/token`:
//! `K10<sha256 of the CA certificate, hex>::server:<secret>`. Whoever holds it can join:
//!
//! - `GET /cacerts` (public): the cluster CA certificate. The joiner checks its hash against
//!   the token before trusting it, so the secret is only ever sent over a verified connection.
//! - `GET /v1-r8s/server-bootstrap` (HTTP basic auth, password = the secret): the CA
//!   certificate and key, for another server of the same cluster.
//! - `POST /v1-r8s/client-kubelet` (same auth), body `{"nodeName": .., "addresses": [..]}`: a
//!   fresh key with a client certificate for `system:node:<name>` in `system:nodes`, and a
//!   serving certificate for the node's agent. The admin's credentials never leave the server.
//!
//! A wrong or missing secret gets a 401 `Status` and nothing is written.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::{HeaderMap, Method, StatusCode, header};
use rand::RngCore;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::error::ApiError;
use crate::handlers::json_value;
use crate::pki::Pki;

/// The token's prefix (k3s's "secure" token format, version 1.0).
const PREFIX: &str = "K10";

/// Path of the CA certificate endpoint.
pub const CACERTS_PATH: &str = "/cacerts";
/// Path of the server bootstrap endpoint.
pub const SERVER_BOOTSTRAP_PATH: &str = "/v1-r8s/server-bootstrap";
/// Path of the node credentials endpoint.
pub const CLIENT_KUBELET_PATH: &str = "/v1-r8s/client-kubelet";

/// Errors about join tokens.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The token is malformed.
    #[error("invalid join token: {0}")]
    Invalid(&'static str),
    /// The token names another CA than the one in the data directory.
    #[error(
        "the join token belongs to another cluster: its CA hash {token} is not the hash of {path} ({ca})"
    )]
    OtherCluster {
        /// The token's hash.
        token: String,
        /// The hash of the local CA.
        ca: String,
        /// The local CA file.
        path: PathBuf,
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
}

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The SHA-256 of the CA certificate (PEM bytes, lowercase hex), when the token has one
    /// (a bare secret does not: the CA is then trusted on first use).
    pub ca_hash: Option<String>,
    /// The shared secret.
    pub secret: String,
}

impl JoinToken {
    /// Parses `K10<hash>::<user>:<secret>` or a bare secret.
    pub fn parse(text: &str) -> Result<JoinToken, JoinError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(JoinError::Invalid("it is empty"));
        }
        let Some(rest) = text.strip_prefix(PREFIX) else {
            if text.contains(char::is_whitespace) {
                return Err(JoinError::Invalid("it contains white space"));
            }
            return Ok(JoinToken {
                ca_hash: None,
                secret: text.to_string(),
            });
        };
        let (hash, creds) = rest
            .split_once("::")
            .ok_or(JoinError::Invalid("want K10<ca-hash>::server:<secret>"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(JoinError::Invalid("the CA hash is not 64 hex digits"));
        }
        let secret = creds.split_once(':').map_or(creds, |(_, s)| s);
        if secret.is_empty() {
            return Err(JoinError::Invalid("the secret is empty"));
        }
        Ok(JoinToken {
            ca_hash: Some(hash.to_ascii_lowercase()),
            secret: secret.to_string(),
        })
    }

    /// The full token for the CA certificate `ca_pem`.
    pub fn format(ca_pem: &[u8], secret: &str) -> String {
        format!("{PREFIX}{}::server:{secret}", ca_hash(ca_pem))
    }

    /// Whether `ca_pem` is the CA this token names (always true without a hash).
    pub fn trusts(&self, ca_pem: &[u8]) -> bool {
        self.ca_hash.as_deref().is_none_or(|h| h == ca_hash(ca_pem))
    }
}

/// The SHA-256 of a CA certificate file's bytes, lowercase hex (what the token carries).
pub fn ca_hash(ca_pem: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(ca_pem))
}

/// The token file of a data directory.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("token")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> JoinError + '_ {
    move |source| JoinError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads `<data-dir>/token`, or creates it: from `given` (a full token or a bare secret) or a
/// random secret. The CA must exist. A given token must match the CA and the stored secret.
pub fn ensure_token(data_dir: &Path, pki: &Pki, given: Option<&str>) -> Result<String, JoinError> {
    let ca = std::fs::read(&pki.ca_cert).map_err(io_err(&pki.ca_cert))?;
    let given = given.map(JoinToken::parse).transpose()?;
    if let Some(g) = &given
        && !g.trusts(&ca)
    {
        return Err(JoinError::OtherCluster {
            token: g.ca_hash.clone().unwrap_or_default(),
            ca: ca_hash(&ca),
            path: pki.ca_cert.clone(),
        });
    }
    let path = token_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stored = JoinToken::parse(&text)?;
            if let Some(g) = given
                && g.secret != stored.secret
            {
                return Err(JoinError::Invalid(
                    "it differs from the one in <data-dir>/token (remove that file to change it)",
                ));
            }
            Ok(JoinToken::format(&ca, &stored.secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = match given {
                Some(g) => g.secret,
                None => {
                    let mut raw = [0u8; 16];
                    rand::rng().fill_bytes(&mut raw);
                    hex::encode(raw)
                }
            };
            let token = JoinToken::format(&ca, &secret);
            write_private(&path, &format!("{token}\n")).map_err(io_err(&path))?;
            Ok(token)
        }
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

/// What the server bootstrap endpoint returns.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerBootstrap {
    /// The CA certificate (PEM).
    pub ca_cert: String,
    /// The CA key (PEM).
    pub ca_key: String,
}

/// The body of a node credentials request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRequest {
    /// The node's name.
    pub node_name: String,
    /// The node's addresses (for the serving certificate).
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
}

/// What the node credentials endpoint returns (all PEM).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCredentials {
    /// The CA certificate.
    pub ca_cert: String,
    /// Client certificate `system:node:<name>`, group `system:nodes`.
    pub client_cert: String,
    /// Its key.
    pub client_key: String,
    /// The agent's serving certificate (node name, addresses, localhost).
    pub serving_cert: String,
    /// Its key.
    pub serving_key: String,
}

/// The server side: the secret and the CA that signs node certificates.
pub struct Joiner {
    secret: String,
    ca_cert: String,
    ca_key: String,
}

impl Joiner {
    /// Loads the CA of `pki`; `token` is the cluster's join token.
    pub fn load(pki: &Pki, token: &str) -> Result<Joiner, JoinError> {
        let ca_cert = std::fs::read_to_string(&pki.ca_cert).map_err(io_err(&pki.ca_cert))?;
        let ca_key = std::fs::read_to_string(&pki.ca_key).map_err(io_err(&pki.ca_key))?;
        Ok(Joiner {
            secret: JoinToken::parse(token)?.secret,
            ca_cert,
            ca_key,
        })
    }

    /// Answers the join endpoints; `None` for other paths.
    pub async fn handle(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Option<Response> {
        let resp = match (method, path) {
            (&Method::GET, CACERTS_PATH) => {
                let mut r = Response::new(Body::from(self.ca_cert.clone()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/x-pem-file"),
                );
                r
            }
            (&Method::GET, SERVER_BOOTSTRAP_PATH) => match self.authorize(headers) {
                Err(e) => e.into_response(),
                Ok(()) => {
                    tracing::info!("a server fetched the cluster CA to join");
                    json_value(
                        StatusCode::OK,
                        &serde_json::json!(ServerBootstrap {
                            ca_cert: self.ca_cert.clone(),
                            ca_key: self.ca_key.clone(),
                        }),
                    )
                }
            },
            (&Method::POST, CLIENT_KUBELET_PATH) => match self.authorize(headers) {
                Err(e) => e.into_response(),
                Ok(()) => self.node_credentials(body).await,
            },
            (_, CACERTS_PATH | SERVER_BOOTSTRAP_PATH | CLIENT_KUBELET_PATH) => {
                ApiError::bad_request(format!("{method} is not supported on {path}"))
                    .into_response()
            }
            _ => return None,
        };
        Some(resp)
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let password = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|up| up.split_once(':').map(|(_, p)| p.to_string()));
        match password {
            Some(p) if constant_time_eq(p.as_bytes(), self.secret.as_bytes()) => Ok(()),
            Some(_) => {
                tracing::warn!("a join request with a wrong token was refused");
                Err(unauthorized("the join token is not valid for this cluster"))
            }
            None => Err(unauthorized(
                "a join token is required (HTTP basic auth, the token's secret as password)",
            )),
        }
    }

    async fn node_credentials(&self, body: Body) -> Response {
        let bytes = match axum::body::to_bytes(body, 64 * 1024).await {
            Ok(b) => b,
            Err(_) => return ApiError::too_large().into_response(),
        };
        let req: NodeRequest = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                return ApiError::bad_request(format!("invalid node credentials request: {e}"))
                    .into_response();
            }
        };
        let problems = api::validation::is_dns1123_subdomain(&req.node_name);
        if !problems.is_empty() {
            return ApiError::bad_request(format!(
                "invalid node name {:?}: {}",
                req.node_name,
                problems.join("; ")
            ))
            .into_response();
        }
        match self.issue(&req) {
            Ok(creds) => {
                tracing::info!(node = %req.node_name, "issued node credentials to a joining agent");
                json_value(StatusCode::OK, &serde_json::json!(creds))
            }
            Err(e) => ApiError::internal(e).into_response(),
        }
    }

    fn issue(&self, req: &NodeRequest) -> Result<NodeCredentials, rcgen::Error> {
        let issuer = Issuer::from_ca_cert_pem(&self.ca_cert, KeyPair::from_pem(&self.ca_key)?)?;
        let sign = |cn: String, org: Option<&str>, sans: Vec<SanType>, server: bool| {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            let mut dn = DistinguishedName::new();
            if let Some(o) = org {
                dn.push(DnType::OrganizationName, o);
            }
            dn.push(DnType::CommonName, cn);
            params.distinguished_name = dn;
            params.subject_alt_names = sans;
            params.extended_key_usages = vec![if server {
                ExtendedKeyUsagePurpose::ServerAuth
            } else {
                ExtendedKeyUsagePurpose::ClientAuth
            }];
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.not_after = rcgen::date_time_ymd(2035, 1, 1);
            let cert = params.signed_by(&key, &issuer)?;
            Ok::<_, rcgen::Error>((cert.pem(), key.serialize_pem()))
        };
        let name = &req.node_name;
        let (client_cert, client_key) = sign(
            format!("system:node:{name}"),
            Some("system:nodes"),
            vec![],
            false,
        )?;
        let mut sans = vec![
            SanType::DnsName(name.clone().try_into()?),
            SanType::DnsName("localhost".to_string().try_into()?),
            SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
        ];
        for ip in &req.addresses {
            if !sans.contains(&SanType::IpAddress(*ip)) {
                sans.push(SanType::IpAddress(*ip));
            }
        }
        let (serving_cert, serving_key) = sign(format!("{name}@kubelet"), None, sans, true)?;
        Ok(NodeCredentials {
            ca_cert: self.ca_cert.clone(),
            client_cert,
            client_key,
            serving_cert,
            serving_key,
        })
    }
}

fn unauthorized(message: &str) -> ApiError {
    let mut e = ApiError::unauthorized();
    e.message = message.to_string();
    e
}

/// Compares secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_format() {
        let ca = b"-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n";
        let token = JoinToken::format(ca, "s3cret");
        assert!(token.starts_with("K10"));
        assert!(token.ends_with("::server:s3cret"));
        let parsed = JoinToken::parse(&token).unwrap();
        assert_eq!(parsed.secret, "s3cret");
        assert!(parsed.trusts(ca));
        assert!(!parsed.trusts(b"another CA"));
        let bare = JoinToken::parse("plain-secret\n").unwrap();
        assert_eq!(bare.ca_hash, None);
        assert!(bare.trusts(b"anything"));
        assert!(JoinToken::parse("").is_err());
        assert!(JoinToken::parse("K10abc::server:x").is_err());
        assert!(JoinToken::parse(&format!("K10{}::server:", "a".repeat(64))).is_err());
        assert!(JoinToken::parse("two words").is_err());
    }

    #[test]
    fn token_file_is_created_once_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::at(dir.path());
        pki.ensure(&[]).unwrap();
        let first = ensure_token(dir.path(), &pki, None).unwrap();
        assert_eq!(ensure_token(dir.path(), &pki, None).unwrap(), first);
        assert_eq!(ensure_token(dir.path(), &pki, Some(&first)).unwrap(), first);
        assert!(ensure_token(dir.path(), &pki, Some("other-secret")).is_err());
        let foreign = format!("K10{}::server:x", "0".repeat(64));
        assert!(matches!(
            ensure_token(dir.path(), &pki, Some(&foreign)),
            Err(JoinError::OtherCluster { .. })
        ));
        // A chosen secret on a new cluster.
        let dir2 = tempfile::tempdir().unwrap();
        let pki2 = Pki::at(dir2.path());
        pki2.ensure(&[]).unwrap();
        let t = ensure_token(dir2.path(), &pki2, Some("chosen")).unwrap();
        assert!(t.ends_with("::server:chosen"));
        let ca = std::fs::read(&pki2.ca_cert).unwrap();
        assert!(JoinToken::parse(&t).unwrap().trusts(&ca));
    }

    #[tokio::test]
    async fn node_credentials_need_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::at(dir.path());
        pki.ensure(&[]).unwrap();
        let token = ensure_token(dir.path(), &pki, Some("pw")).unwrap();
        let joiner = Joiner::load(&pki, &token).unwrap();
        let body = || Body::from(r#"{"nodeName":"n1","addresses":["10.0.0.5"]}"#);
        let basic = |p: &str| {
            let mut h = HeaderMap::new();
            let v = base64::engine::general_purpose::STANDARD.encode(format!("node:{p}"));
            h.insert(header::AUTHORIZATION, format!("Basic {v}").parse().unwrap());
            h
        };
        let post = Method::POST;
        let r = joiner
            .handle(&post, CLIENT_KUBELET_PATH, &basic("wrong"), body())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = joiner
            .handle(&post, CLIENT_KUBELET_PATH, &HeaderMap::new(), body())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = joiner
            .handle(&post, CLIENT_KUBELET_PATH, &basic("pw"), body())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        let creds: NodeCredentials = serde_json::from_slice(&bytes).unwrap();
        let der = rustls_pemfile::certs(&mut creds.client_cert.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (user, groups) = crate::pki::user_from_cert(&der).unwrap();
        assert_eq!(user, "system:node:n1");
        assert_eq!(groups, vec!["system:nodes".to_string()]);
        assert_ne!(
            creds.client_key,
            std::fs::read_to_string(&pki.admin_key).unwrap()
        );
        let bad = joiner
            .handle(
                &post,
                CLIENT_KUBELET_PATH,
                &basic("pw"),
                Body::from(r#"{"nodeName":"Not_Valid"}"#),
            )
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        // The CA key only with the secret.
        let get = Method::GET;
        let r = joiner
            .handle(&get, SERVER_BOOTSTRAP_PATH, &basic("nope"), Body::empty())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = joiner
            .handle(&get, CACERTS_PATH, &HeaderMap::new(), Body::empty())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            joiner
                .handle(&get, "/api", &HeaderMap::new(), Body::empty())
                .await
                .is_none()
        );
    }
}
