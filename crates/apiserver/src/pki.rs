//! The cluster's certificates: a CA, the API server's serving certificate and the admin's client
//! certificate, created on first start under `<data-dir>/server/tls/` (k3s layout), and the admin
//! kubeconfig at `<data-dir>/kubeconfig.yaml`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Errors while creating or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("certificate error: {0}")]
    Cert(#[from] rcgen::Error),
    /// A PEM file holds no usable item.
    #[error("{0}: no usable PEM item")]
    Pem(PathBuf),
}

/// Paths of the files that make up the cluster's PKI.
#[derive(Debug, Clone)]
pub struct Pki {
    /// `<data-dir>/server/tls`.
    pub dir: PathBuf,
    /// CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// CA key (PEM).
    pub ca_key: PathBuf,
    /// Serving certificate (PEM).
    pub serving_cert: PathBuf,
    /// Serving key (PEM).
    pub serving_key: PathBuf,
    /// Admin client certificate (PEM).
    pub admin_cert: PathBuf,
    /// Admin client key (PEM).
    pub admin_key: PathBuf,
    /// The API server's client certificate towards node agents (CN
    /// `kube-apiserver-kubelet-client`, O `system:masters`, as upstream's kubeadm issues it).
    pub kubelet_client_cert: PathBuf,
    /// Its key.
    pub kubelet_client_key: PathBuf,
    /// Static bearer tokens, one `token,user,uid,"group1,group2"` line each (upstream format).
    pub token_file: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(contents.as_bytes()).map_err(io_err(path))
}

fn subject(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

impl Pki {
    /// The PKI under `data_dir`. Nothing is read or written.
    pub fn at(data_dir: &Path) -> Pki {
        let dir = data_dir.join("server").join("tls");
        Pki {
            ca_cert: dir.join("server-ca.crt"),
            ca_key: dir.join("server-ca.key"),
            serving_cert: dir.join("serving-kube-apiserver.crt"),
            serving_key: dir.join("serving-kube-apiserver.key"),
            admin_cert: dir.join("client-admin.crt"),
            admin_key: dir.join("client-admin.key"),
            kubelet_client_cert: dir.join("client-kube-apiserver-kubelet.crt"),
            kubelet_client_key: dir.join("client-kube-apiserver-kubelet.key"),
            token_file: data_dir.join("server").join("tokens.csv"),
            dir,
        }
    }

    /// Creates whatever is missing: the CA (kept forever), the admin credentials, and a serving
    /// certificate for `sans` (re-issued on every start so new `--tls-san` values take effect).
    pub fn ensure(&self, sans: &[String]) -> Result<(), PkiError> {
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        if !self.ca_cert.exists() || !self.ca_key.exists() {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            let now = chrono::Utc::now().timestamp();
            params.distinguished_name = subject(&format!("r8s-server-ca@{now}"), None);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            params.not_after = rcgen::date_time_ymd(2036, 1, 1);
            let cert = params.self_signed(&key)?;
            write_private(&self.ca_key, &key.serialize_pem())?;
            std::fs::write(&self.ca_cert, cert.pem()).map_err(io_err(&self.ca_cert))?;
        }
        let ca_key_pem = std::fs::read_to_string(&self.ca_key).map_err(io_err(&self.ca_key))?;
        let ca_cert_pem = std::fs::read_to_string(&self.ca_cert).map_err(io_err(&self.ca_cert))?;
        let ca_key = KeyPair::from_pem(&ca_key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key)?;

        // Serving certificate.
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = subject("kube-apiserver", None);
        params.subject_alt_names = serving_sans(sans);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let cert = params.signed_by(&key, &issuer)?;
        write_private(&self.serving_key, &key.serialize_pem())?;
        std::fs::write(&self.serving_cert, cert.pem()).map_err(io_err(&self.serving_cert))?;

        // Admin client certificate (system:admin in system:masters, like k3s).
        if !self.admin_cert.exists() || !self.admin_key.exists() {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name = subject("system:admin", Some("system:masters"));
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.not_after = rcgen::date_time_ymd(2035, 1, 1);
            let cert = params.signed_by(&key, &issuer)?;
            write_private(&self.admin_key, &key.serialize_pem())?;
            std::fs::write(&self.admin_cert, cert.pem()).map_err(io_err(&self.admin_cert))?;
        }

        // The API server's client certificate for node agents (logs, exec, port-forward).
        if !self.kubelet_client_cert.exists() || !self.kubelet_client_key.exists() {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name =
                subject("kube-apiserver-kubelet-client", Some("system:masters"));
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.not_after = rcgen::date_time_ymd(2035, 1, 1);
            let cert = params.signed_by(&key, &issuer)?;
            write_private(&self.kubelet_client_key, &key.serialize_pem())?;
            std::fs::write(&self.kubelet_client_cert, cert.pem())
                .map_err(io_err(&self.kubelet_client_cert))?;
        }

        if !self.token_file.exists() {
            let mut raw = [0u8; 24];
            rand::rng().fill_bytes(&mut raw);
            let token = hex::encode(raw);
            write_private(
                &self.token_file,
                &format!("{token},system:admin,system:admin,\"system:masters\"\n"),
            )?;
        }
        Ok(())
    }

    /// Writes a kubeconfig for the admin (client certificate embedded) pointing at `server`.
    pub fn write_admin_kubeconfig(&self, path: &Path, server: &str) -> Result<(), PkiError> {
        use base64::Engine;
        let b64 = |p: &Path| -> Result<String, PkiError> {
            let data = std::fs::read(p).map_err(io_err(p))?;
            Ok(base64::engine::general_purpose::STANDARD.encode(data))
        };
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\npreferences: {{}}\nusers:\n- name: default\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
            ca = b64(&self.ca_cert)?,
            cert = b64(&self.admin_cert)?,
            key = b64(&self.admin_key)?,
        );
        write_private(path, &config)
    }

    /// The rustls server configuration: serving certificate, client certificates verified
    /// against the CA but optional (bearer tokens are the other way in), ALPN h2 and http/1.1.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, PkiError> {
        let certs = load_certs(&self.serving_cert)?;
        let key = load_key(&self.serving_key)?;
        let mut roots = rustls::RootCertStore::empty();
        for c in load_certs(&self.ca_cert)? {
            roots
                .add(c)
                .map_err(|_| PkiError::Pem(self.ca_cert.clone()))?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|_| PkiError::Pem(self.ca_cert.clone()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| PkiError::Pem(self.serving_cert.clone()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|_| PkiError::Pem(self.serving_key.clone()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The rustls client configuration for connections to node agents: the kubelet client
    /// certificate, and agents' serving certificates verified against the cluster CA.
    pub fn kubelet_client_config(&self) -> Result<rustls::ClientConfig, PkiError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in load_certs(&self.ca_cert)? {
            roots
                .add(c)
                .map_err(|_| PkiError::Pem(self.ca_cert.clone()))?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| PkiError::Pem(self.ca_cert.clone()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(
                load_certs(&self.kubelet_client_cert)?,
                load_key(&self.kubelet_client_key)?,
            )
            .map_err(|_| PkiError::Pem(self.kubelet_client_key.clone()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The static bearer tokens: token → (user, groups).
    pub fn load_tokens(&self) -> Result<Vec<(String, String, Vec<String>)>, PkiError> {
        let text = std::fs::read_to_string(&self.token_file).map_err(io_err(&self.token_file))?;
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.splitn(4, ',');
            let (Some(token), Some(user)) = (parts.next(), parts.next()) else {
                continue;
            };
            let _uid = parts.next();
            let groups = parts
                .next()
                .map(|g| {
                    g.trim_matches('"')
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            out.push((token.to_string(), user.to_string(), groups));
        }
        Ok(out)
    }
}

fn serving_sans(extra: &[String]) -> Vec<SanType> {
    let mut names: Vec<String> = vec![
        "localhost".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        "127.0.0.1".into(),
        "::1".into(),
    ];
    if let Ok(h) = hostname::get() {
        names.push(h.to_string_lossy().into_owned());
    }
    names.extend(extra.iter().cloned());
    let mut sans = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for n in names {
        if !seen.insert(n.clone()) {
            continue;
        }
        match n.parse::<IpAddr>() {
            Ok(ip) => sans.push(SanType::IpAddress(ip)),
            Err(_) => {
                if let Ok(dns) = n.clone().try_into() {
                    sans.push(SanType::DnsName(dns));
                }
            }
        }
    }
    sans
}

fn load_certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, PkiError> {
    let data = std::fs::read(path).map_err(io_err(path))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(io_err(path))?;
    if certs.is_empty() {
        return Err(PkiError::Pem(path.to_path_buf()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, PkiError> {
    let data = std::fs::read(path).map_err(io_err(path))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(io_err(path))?
        .ok_or_else(|| PkiError::Pem(path.to_path_buf()))
}

/// The user of a client certificate: CN is the name, O values are the groups.
pub fn user_from_cert(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_pki_and_kubeconfig_once() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::at(dir.path());
        pki.ensure(&["example.test".into(), "10.1.2.3".into()])
            .unwrap();
        let ca = std::fs::read(&pki.ca_cert).unwrap();
        pki.ensure(&[]).unwrap();
        assert_eq!(ca, std::fs::read(&pki.ca_cert).unwrap(), "CA must be kept");
        let admin = load_certs(&pki.admin_cert).unwrap();
        let (user, groups) = user_from_cert(&admin[0]).unwrap();
        assert_eq!(user, "system:admin");
        assert_eq!(groups, vec!["system:masters".to_string()]);
        pki.server_config().unwrap();
        let kc = load_certs(&pki.kubelet_client_cert).unwrap();
        let (user, groups) = user_from_cert(&kc[0]).unwrap();
        assert_eq!(user, "kube-apiserver-kubelet-client");
        assert_eq!(groups, vec!["system:masters".to_string()]);
        pki.kubelet_client_config().unwrap();
        let kc = dir.path().join("kubeconfig.yaml");
        pki.write_admin_kubeconfig(&kc, "https://127.0.0.1:6443")
            .unwrap();
        let text = std::fs::read_to_string(&kc).unwrap();
        assert!(text.contains("server: https://127.0.0.1:6443"));
        assert!(text.contains("client-certificate-data: "));
        let tokens = pki.load_tokens().unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].1, "system:admin");
    }
}
