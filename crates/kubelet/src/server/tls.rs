//! The agent's serving certificate (issued from the cluster CA) and its rustls configuration,
//! which asks for a client certificate signed by the cluster CA.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::ServerError;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn wanted_sans(node_name: &str, ips: &[IpAddr]) -> Vec<String> {
    let mut names: Vec<String> = vec![node_name.to_string(), "localhost".into()];
    names.extend(ips.iter().map(IpAddr::to_string));
    for lo in ["127.0.0.1", "::1"] {
        names.push(lo.into());
    }
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The SANs (DNS names and IPs, as strings) of the first certificate in `pem`.
fn cert_sans(pem: &[u8]) -> Option<(Vec<String>, String)> {
    let der = rustls_pemfile::certs(&mut &pem[..]).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let mut out = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => out.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                    4 => {
                        let a: [u8; 4] = (*b).try_into().ok()?;
                        out.push(IpAddr::from(a).to_string());
                    }
                    16 => {
                        let a: [u8; 16] = (*b).try_into().ok()?;
                        out.push(IpAddr::from(a).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Some((out, cert.issuer().to_string()))
}

/// Issues (or keeps) the agent's serving certificate `dir/kubelet.crt` + `dir/kubelet.key`,
/// signed by the cluster CA, for `node_name`, `localhost`, loopback and `ips`. An existing
/// certificate is kept while its SANs and issuer still match; otherwise it is re-issued.
pub fn ensure_serving_cert(
    ca_cert: &Path,
    ca_key: &Path,
    dir: &Path,
    node_name: &str,
    ips: &[IpAddr],
) -> Result<(PathBuf, PathBuf), ServerError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let cert_path = dir.join("kubelet.crt");
    let key_path = dir.join("kubelet.key");
    let ca_pem = std::fs::read_to_string(ca_cert).map_err(io(ca_cert))?;
    let ca_subject = rustls_pemfile::certs(&mut ca_pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .and_then(|der| {
            x509_parser::parse_x509_certificate(&der)
                .ok()
                .map(|(_, c)| c.subject().to_string())
        });
    let Some(ca_subject) = ca_subject else {
        return Err(ServerError::Tls(format!(
            "{}: no CA certificate",
            ca_cert.display()
        )));
    };
    let want = wanted_sans(node_name, ips);
    if key_path.exists()
        && let Ok(existing) = std::fs::read(&cert_path)
        && let Some((mut have, issuer)) = cert_sans(&existing)
    {
        let mut w = want.clone();
        have.sort();
        w.sort();
        if have == w && issuer == ca_subject {
            return Ok((cert_path, key_path));
        }
    }
    let ca_key_pem = std::fs::read_to_string(ca_key).map_err(io(ca_key))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key_pem)?)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{node_name}@kubelet"));
    params.distinguished_name = dn;
    params.subject_alt_names = want
        .iter()
        .filter_map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Some(SanType::IpAddress(ip)),
            Err(_) => n.clone().try_into().ok().map(SanType::DnsName),
        })
        .collect();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;
    write_private(&key_path, &key.serialize_pem())?;
    std::fs::write(&cert_path, cert.pem()).map_err(io(&cert_path))?;
    Ok((cert_path, key_path))
}

fn write_private(path: &Path, contents: &str) -> Result<(), ServerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(contents.as_bytes()).map_err(io(path))
}

pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let data = std::fs::read(path).map_err(io(path))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(io(path))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{}: no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    let data = std::fs::read(path).map_err(io(path))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(io(path))?
        .ok_or_else(|| ServerError::Tls(format!("{}: no private key", path.display())))
}

/// The server's rustls configuration: the serving certificate, and client certificates
/// verified against `client_ca` (a connection without one is accepted at the TLS level and
/// answered 401, like upstream's authenticator).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<rustls::ServerConfig, ServerError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(client_ca)? {
        roots
            .add(c)
            .map_err(|e| ServerError::Tls(format!("{}: {e}", client_ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| ServerError::Tls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The user of a client certificate: CN and organizations.
pub(crate) fn user_from_cert(der: &[u8]) -> Option<(String, Vec<String>)> {
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
