//! Reading the server URL and the credentials out of a kubeconfig file.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_yaml::Value;

use crate::TestSupportError;

/// The parts of a kubeconfig that a client needs: the current context's server and credentials.
#[derive(Debug, Clone)]
pub struct Kubeconfig {
    /// The server URL, e.g. `https://127.0.0.1:6443`.
    pub server: String,
    /// The cluster CA certificate(s), PEM.
    pub ca_pem: Vec<u8>,
    /// The client certificate chain, PEM, if the user has one.
    pub client_cert_pem: Option<Vec<u8>>,
    /// The client private key, PEM, if the user has one.
    pub client_key_pem: Option<Vec<u8>>,
    /// The bearer token, if the user has one.
    pub token: Option<String>,
}

impl Kubeconfig {
    /// Reads the kubeconfig at `path`, following its `current-context` (or its first cluster
    /// and user when it has no context).
    pub fn load(path: &Path) -> Result<Self, TestSupportError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TestSupportError::io(format!("reading {}", path.display()), e))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new("."))).map_err(|message| {
            TestSupportError::Kubeconfig {
                path: path.display().to_string(),
                message,
            }
        })
    }

    /// Parses kubeconfig YAML; relative file references are resolved against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, String> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("invalid yaml: {e}"))?;
        let current = doc.get("current-context").and_then(Value::as_str);
        let context = named(&doc, "contexts", current).and_then(|c| c.get("context"));
        let cluster_name = context
            .and_then(|c| c.get("cluster"))
            .and_then(Value::as_str);
        let user_name = context.and_then(|c| c.get("user")).and_then(Value::as_str);
        let cluster = named(&doc, "clusters", cluster_name)
            .and_then(|c| c.get("cluster"))
            .ok_or("no cluster")?;
        let user = named(&doc, "users", user_name).and_then(|u| u.get("user"));

        let server = cluster
            .get("server")
            .and_then(Value::as_str)
            .ok_or("cluster has no server")?
            .to_string();
        let ca_pem = data_or_file(cluster, "certificate-authority", base_dir)?
            .ok_or("cluster has no certificate-authority(-data)")?;
        let (client_cert_pem, client_key_pem, token) = match user {
            Some(user) => (
                data_or_file(user, "client-certificate", base_dir)?,
                data_or_file(user, "client-key", base_dir)?,
                user.get("token")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            None => (None, None, None),
        };
        Ok(Self {
            server,
            ca_pem,
            client_cert_pem,
            client_key_pem,
            token,
        })
    }

    /// The host (without brackets) and port of [`Kubeconfig::server`].
    pub fn host_port(&self) -> Result<(String, u16), TestSupportError> {
        let rest = self
            .server
            .strip_prefix("https://")
            .ok_or_else(|| TestSupportError::Http(format!("not an https URL: {}", self.server)))?;
        let authority = rest.split('/').next().unwrap_or(rest);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                let port = p.parse().map_err(|_| {
                    TestSupportError::Http(format!("bad port in URL: {}", self.server))
                })?;
                (h, port)
            }
            _ => (authority, 443),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok((host.to_string(), port))
    }
}

/// Finds the entry called `name` (or the first entry when `name` is `None` or not found).
fn named<'a>(doc: &'a Value, list: &str, name: Option<&str>) -> Option<&'a Value> {
    let items = doc.get(list)?.as_sequence()?;
    name.and_then(|n| {
        items
            .iter()
            .find(|i| i.get("name").and_then(Value::as_str) == Some(n))
    })
    .or_else(|| items.first())
}

/// Reads `<key>-data` (base64) or the file named by `<key>`.
fn data_or_file(map: &Value, key: &str, base_dir: &Path) -> Result<Option<Vec<u8>>, String> {
    if let Some(data) = map.get(format!("{key}-data")).and_then(Value::as_str) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("{key}-data is not base64: {e}"))?;
        return Ok(Some(bytes));
    }
    if let Some(file) = map.get(key).and_then(Value::as_str) {
        let path = PathBuf::from(file);
        let path = if path.is_absolute() {
            path
        } else {
            base_dir.join(path)
        };
        let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        return Ok(Some(bytes));
    }
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://10.0.0.1:1
    certificate-authority-data: b3RoZXI=
- name: r8s
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: Q0E=
users:
- name: admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
contexts:
- name: r8s
  context:
    cluster: r8s
    user: admin
current-context: r8s
"#;

    #[test]
    fn follows_the_current_context() {
        let kc = Kubeconfig::parse(KUBECONFIG, Path::new("/")).unwrap();
        assert_eq!(kc.server, "https://127.0.0.1:6443");
        assert_eq!(kc.ca_pem, b"CA");
        assert_eq!(kc.client_cert_pem.as_deref(), Some(&b"CERT"[..]));
        assert_eq!(kc.client_key_pem.as_deref(), Some(&b"KEY"[..]));
        assert_eq!(kc.token, None);
        assert_eq!(kc.host_port().unwrap(), ("127.0.0.1".to_string(), 6443));
    }

    #[test]
    fn reads_file_references_relative_to_the_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "FILE-CA").unwrap();
        let text = "clusters:\n- name: c\n  cluster:\n    server: https://[::1]:7443\n    certificate-authority: ca.crt\n";
        let kc = Kubeconfig::parse(text, dir.path()).unwrap();
        assert_eq!(kc.ca_pem, b"FILE-CA");
        assert_eq!(kc.client_cert_pem, None);
        assert_eq!(kc.host_port().unwrap(), ("::1".to_string(), 7443));
    }

    #[test]
    fn missing_ca_is_an_error() {
        let text = "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n";
        let err = Kubeconfig::parse(text, Path::new("/")).unwrap_err();
        assert!(err.contains("certificate-authority"), "{err}");
    }
}
