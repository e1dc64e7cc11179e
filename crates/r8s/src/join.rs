//! The joining side of `--server URL --token T` (see `apiserver::join` for the endpoints): a
//! server fetches the cluster CA, an agent its own node credentials. The CA is checked against
//! the token's hash before the token's secret is sent, and nothing is written until the
//! server has accepted the token.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use apiserver::join::{self, JoinToken, NodeCredentials, NodeRequest, ServerBootstrap};
use base64::Engine;

/// A client of one server's join endpoints.
struct JoinClient {
    url: String,
    token: JoinToken,
}

impl JoinClient {
    fn new(url: &str, token: &JoinToken) -> anyhow::Result<JoinClient> {
        let url = url.trim().trim_end_matches('/').to_string();
        if !url.starts_with("https://") {
            bail!("invalid server URL {url:?}: want https://host:port");
        }
        Ok(JoinClient {
            url,
            token: token.clone(),
        })
    }

    fn client(&self, ca: Option<&str>) -> anyhow::Result<kube::Client> {
        let uri: http::Uri = self
            .url
            .parse()
            .with_context(|| format!("invalid server URL {}", self.url))?;
        let mut config = kube::Config::new(uri);
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = Some(Duration::from_secs(15));
        match ca {
            // The CA is not known yet: its hash is checked instead of the certificate chain.
            None => config.accept_invalid_certs = true,
            Some(pem) => {
                let ders = rustls_pemfile_certs(pem);
                if ders.is_empty() {
                    bail!("the server's CA certificate is not PEM");
                }
                config.root_cert = Some(ders);
            }
        }
        kube::Client::try_from(config).context("creating the HTTP client")
    }

    async fn request(
        &self,
        ca: Option<&str>,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<String> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, "application/json");
        if ca.is_some() {
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("node:{}", self.token.secret));
            req = req.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
        }
        let req = req.body(body).context("building the request")?;
        match self.client(ca)?.request_text(req).await {
            Ok(text) => Ok(text),
            Err(kube::Error::Api(status)) if status.code == 401 => bail!(
                "{} refused the join token: {} (use the token in the first server's <data-dir>/token)",
                self.url,
                status.message
            ),
            Err(e) => Err(anyhow::anyhow!(e).context(format!("{} {path}", self.url))),
        }
    }

    /// The cluster CA, checked against the token.
    async fn ca(&self) -> anyhow::Result<String> {
        let pem = self
            .request(None, http::Method::GET, join::CACERTS_PATH, Vec::new())
            .await?;
        if !self.token.trusts(pem.as_bytes()) {
            bail!(
                "{} serves another cluster's CA (hash {}, the token names {}): refusing to join",
                self.url,
                join::ca_hash(pem.as_bytes()),
                self.token.ca_hash.as_deref().unwrap_or("")
            );
        }
        if self.token.ca_hash.is_none() {
            tracing::warn!(
                server = %self.url,
                "the token carries no CA hash: trusting the server's CA on first use"
            );
        }
        Ok(pem)
    }
}

/// The DER certificates of a PEM text.
fn rustls_pemfile_certs(pem: &str) -> Vec<Vec<u8>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect()
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    join::write_private(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// Makes `data_dir` a server of the cluster at `url`: fetches the cluster CA (certificate and
/// key) unless the data directory already holds the one the token names.
pub async fn join_server(data_dir: &Path, url: &str, token: &str) -> anyhow::Result<()> {
    let token = JoinToken::parse(token).context("--token")?;
    let pki = apiserver::pki::Pki::at(data_dir);
    if let Ok(local) = std::fs::read(&pki.ca_cert) {
        if pki.ca_key.exists() && token.ca_hash.is_some() && token.trusts(&local) {
            return Ok(());
        }
        if token.ca_hash.is_some() && !token.trusts(&local) {
            bail!(
                "{} holds another cluster's CA than the token names; use a new --data-dir to join",
                pki.ca_cert.display()
            );
        }
    }
    let client = JoinClient::new(url, &token)?;
    let ca = client.ca().await?;
    let text = client
        .request(
            Some(&ca),
            http::Method::GET,
            join::SERVER_BOOTSTRAP_PATH,
            Vec::new(),
        )
        .await?;
    let boot: ServerBootstrap =
        serde_json::from_str(&text).context("reading the server bootstrap answer")?;
    if boot.ca_cert != ca {
        bail!("{url} answered with two different CAs");
    }
    std::fs::create_dir_all(&pki.dir).with_context(|| format!("creating {}", pki.dir.display()))?;
    write_private(&pki.ca_key, &boot.ca_key)?;
    std::fs::write(&pki.ca_cert, &boot.ca_cert)
        .with_context(|| format!("writing {}", pki.ca_cert.display()))?;
    tracing::info!(server = %url, "joined the cluster: fetched its CA");
    Ok(())
}

/// The files of a joined agent under `<data-dir>/agent`.
pub struct AgentFiles {
    /// The cluster CA certificate.
    pub ca_cert: PathBuf,
    /// The node's client certificate.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// The agent's serving certificate.
    pub serving_cert: PathBuf,
    /// Its key.
    pub serving_key: PathBuf,
}

impl AgentFiles {
    /// The files under `agent_dir`.
    pub fn at(agent_dir: &Path) -> AgentFiles {
        let tls = agent_dir.join("tls");
        AgentFiles {
            ca_cert: agent_dir.join("server-ca.crt"),
            client_cert: agent_dir.join("client-kubelet.crt"),
            client_key: agent_dir.join("client-kubelet.key"),
            serving_cert: tls.join("kubelet.crt"),
            serving_key: tls.join("kubelet.key"),
        }
    }

    fn complete(&self) -> bool {
        [
            &self.ca_cert,
            &self.client_cert,
            &self.client_key,
            &self.serving_cert,
            &self.serving_key,
        ]
        .iter()
        .all(|p| p.exists())
    }

    /// Whether the stored client certificate is for `node`.
    fn is_for(&self, node: &str) -> bool {
        std::fs::read_to_string(&self.client_cert)
            .ok()
            .and_then(|pem| rustls_pemfile_certs(&pem).into_iter().next())
            .and_then(|der| apiserver::pki::user_from_cert(&der))
            .is_some_and(|(user, _)| user == format!("system:node:{node}"))
    }
}

/// Gets the node's credentials from the first of `servers` that answers, unless the agent
/// directory already holds credentials for this node from the cluster the token names.
pub async fn join_agent(
    agent_dir: &Path,
    servers: &[String],
    token: &str,
    node_name: &str,
    addresses: Vec<IpAddr>,
) -> anyhow::Result<AgentFiles> {
    let token = JoinToken::parse(token).context("--token")?;
    let files = AgentFiles::at(agent_dir);
    if files.complete()
        && token.ca_hash.is_some()
        && std::fs::read(&files.ca_cert).is_ok_and(|ca| token.trusts(&ca))
        && files.is_for(node_name)
    {
        return Ok(files);
    }
    let mut last_err = None;
    for url in servers {
        match fetch_node_credentials(url, &token, node_name, &addresses).await {
            Ok(creds) => {
                let tls = agent_dir.join("tls");
                std::fs::create_dir_all(&tls)
                    .with_context(|| format!("creating {}", tls.display()))?;
                std::fs::write(&files.ca_cert, &creds.ca_cert)
                    .with_context(|| format!("writing {}", files.ca_cert.display()))?;
                write_private(&files.client_key, &creds.client_key)?;
                std::fs::write(&files.client_cert, &creds.client_cert)
                    .with_context(|| format!("writing {}", files.client_cert.display()))?;
                write_private(&files.serving_key, &creds.serving_key)?;
                std::fs::write(&files.serving_cert, &creds.serving_cert)
                    .with_context(|| format!("writing {}", files.serving_cert.display()))?;
                tracing::info!(server = %url, node = node_name, "joined the cluster: received the node's credentials");
                return Ok(files);
            }
            Err(e) => {
                // A refused token is final; an unreachable server is not.
                if format!("{e:#}").contains("refused the join token")
                    || format!("{e:#}").contains("another cluster's CA")
                {
                    return Err(e);
                }
                tracing::warn!(server = %url, error = %format!("{e:#}"), "joining through this server failed");
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no --server given")))
}

async fn fetch_node_credentials(
    url: &str,
    token: &JoinToken,
    node_name: &str,
    addresses: &[IpAddr],
) -> anyhow::Result<NodeCredentials> {
    let client = JoinClient::new(url, token)?;
    let ca = client.ca().await?;
    let body = serde_json::to_vec(&NodeRequest {
        node_name: node_name.to_string(),
        addresses: addresses.to_vec(),
    })
    .context("encoding the request")?;
    let text = client
        .request(
            Some(&ca),
            http::Method::POST,
            join::CLIENT_KUBELET_PATH,
            body,
        )
        .await?;
    let creds: NodeCredentials =
        serde_json::from_str(&text).context("reading the node credentials")?;
    if creds.ca_cert != ca {
        bail!("{url} answered with two different CAs");
    }
    Ok(creds)
}

/// A kubeconfig for the node's credentials pointing at `server`.
pub fn agent_kubeconfig(files: &AgentFiles, server: &str) -> anyhow::Result<String> {
    let b64 = |p: &Path| -> anyhow::Result<String> {
        let data = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(data))
    };
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\npreferences: {{}}\nusers:\n- name: default\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
        ca = b64(&files.ca_cert)?,
        cert = b64(&files.client_cert)?,
        key = b64(&files.client_key)?,
    ))
}
