//! The agent's streaming server over real TLS on 127.0.0.1: certificates from a cluster PKI,
//! client-certificate authentication, and container logs from a CRI log file through a fake
//! pod view.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use kubelet::server::{ContainerRef, PodView, SandboxRef, Server, ServerConfig};
use tokio_util::sync::CancellationToken;

struct FakeView {
    log: PathBuf,
}

impl PodView for FakeView {
    fn container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<ContainerRef, String> {
        if namespace != "default" || pod != "web" {
            return Err(format!("pod {namespace}/{pod} not found"));
        }
        if previous {
            return Err(format!(
                "previous terminated container \"{container}\" in pod \"{pod}\" not found"
            ));
        }
        if container == "pending" {
            return Err(format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            ));
        }
        Ok(ContainerRef {
            id: "abc".into(),
            log_path: self.log.clone(),
            running: false,
        })
    }

    fn sandbox(&self, _namespace: &str, _pod: &str) -> Option<SandboxRef> {
        None
    }
}

fn lazy_cri() -> kubelet::cri::Cri {
    let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
    kubelet::cri::Cri {
        runtime: kubelet::cri::api::runtime_service_client::RuntimeServiceClient::new(
            channel.clone(),
        ),
        images: kubelet::cri::api::image_service_client::ImageServiceClient::new(channel),
    }
}

async fn get(tls: Arc<rustls::ClientConfig>, port: u16, path: &str) -> (http::StatusCode, String) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name =
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .expect("TLS handshake (serving certificate verified against the cluster CA)");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn client_config(pki: &apiserver::pki::Pki, with_cert: bool) -> Arc<rustls::ClientConfig> {
    if with_cert {
        return Arc::new(pki.kubelet_client_config().expect("kubelet client config"));
    }
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(&pki.ca_cert).expect("ca");
    for c in rustls_pemfile::certs(&mut ca.as_slice()) {
        roots.add(c.expect("pem")).expect("add");
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

#[tokio::test]
async fn serves_logs_over_tls_to_the_apiserver_client_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = apiserver::pki::Pki::at(dir.path());
    pki.ensure(&[]).expect("pki");
    let (cert, key) = kubelet::server::ensure_serving_cert(
        &pki.ca_cert,
        &pki.ca_key,
        &dir.path().join("agent"),
        "node-1",
        &["127.0.0.1".parse().expect("ip")],
    )
    .expect("serving cert");
    // Same SANs: kept as is.
    let before = std::fs::read(&cert).expect("cert");
    kubelet::server::ensure_serving_cert(
        &pki.ca_cert,
        &pki.ca_key,
        &dir.path().join("agent"),
        "node-1",
        &["127.0.0.1".parse().expect("ip")],
    )
    .expect("serving cert");
    assert_eq!(before, std::fs::read(&cert).expect("cert"));
    // New SANs: re-issued.
    kubelet::server::ensure_serving_cert(
        &pki.ca_cert,
        &pki.ca_key,
        &dir.path().join("agent"),
        "node-1",
        &["10.9.8.7".parse().expect("ip")],
    )
    .expect("serving cert");
    assert_ne!(before, std::fs::read(&cert).expect("cert"));

    let log = dir.path().join("0.log");
    let mut f = std::fs::File::create(&log).expect("log");
    f.write_all(
        b"2026-11-26T12:00:00.5Z stdout F hello\n2026-11-26T12:00:01Z stderr P wor\n2026-11-26T12:00:01.1Z stderr F ld\n",
    )
    .expect("write");

    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().expect("addr"),
        tls_cert: cert,
        tls_key: key,
        client_ca: pki.ca_cert.clone(),
    };
    let server = Server::bind(&config).await.expect("bind");
    let port = server.local_addr().expect("addr").port();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(Arc::new(FakeView { log }), lazy_cri(), shutdown.clone()));

    let tls = client_config(&pki, true);
    assert_eq!(
        get(tls.clone(), port, "/healthz").await,
        (http::StatusCode::OK, "ok".to_string())
    );
    let (code, body) = get(tls.clone(), port, "/containerLogs/default/web/app").await;
    assert_eq!(code, http::StatusCode::OK);
    assert_eq!(body, "hello\nworld\n");
    let (code, body) = get(
        tls.clone(),
        port,
        "/containerLogs/default/web/app?timestamps=true&tailLines=2",
    )
    .await;
    assert_eq!(code, http::StatusCode::OK);
    assert_eq!(body, "2026-11-26T12:00:01Z world\n");
    let (code, body) = get(tls.clone(), port, "/containerLogs/default/web/pending").await;
    assert_eq!(code, http::StatusCode::BAD_REQUEST);
    assert_eq!(
        body.trim_end(),
        "container \"pending\" in pod \"web\" is waiting to start: ContainerCreating"
    );
    let (code, _) = get(
        tls.clone(),
        port,
        "/containerLogs/default/web/app?tailLines=x",
    )
    .await;
    assert_eq!(code, http::StatusCode::BAD_REQUEST);
    let (code, _) = get(tls.clone(), port, "/nothing").await;
    assert_eq!(code, http::StatusCode::NOT_FOUND);

    // No client certificate: 401.
    let (code, _) = get(client_config(&pki, false), port, "/healthz").await;
    assert_eq!(code, http::StatusCode::UNAUTHORIZED);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("server stops on shutdown")
        .expect("join");
}

/// A pod view over one real sandbox with one container.
struct RealView {
    sandbox: String,
    container: String,
    log: PathBuf,
}

impl PodView for RealView {
    fn container(
        &self,
        _namespace: &str,
        pod: &str,
        container: &str,
        _previous: bool,
    ) -> Result<ContainerRef, String> {
        if container != "app" {
            return Err(format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            ));
        }
        Ok(ContainerRef {
            id: self.container.clone(),
            log_path: self.log.clone(),
            running: true,
        })
    }

    fn sandbox(&self, _namespace: &str, _pod: &str) -> Option<SandboxRef> {
        Some(SandboxRef {
            id: self.sandbox.clone(),
            ip: None,
        })
    }
}

/// Manual end-to-end harness: with `R8S_STREAM_E2E_CRI=<containerd socket>`,
/// `R8S_STREAM_E2E_PKI=<r8s data dir>` and `R8S_STREAM_E2E_DIR=<work dir>`, runs a busybox pod
/// through CRI and serves it on 127.0.0.1 (port written to `<work dir>/port`) until
/// `<work dir>/stop` exists, so that kubectl can be pointed at it through a real API server.
#[tokio::test]
#[ignore = "needs a private containerd and an r8s server; run by hand"]
async fn manual_e2e_with_containerd() {
    use kubelet::cri::api;
    let (Ok(sock), Ok(data), Ok(work)) = (
        std::env::var("R8S_STREAM_E2E_CRI"),
        std::env::var("R8S_STREAM_E2E_PKI"),
        std::env::var("R8S_STREAM_E2E_DIR"),
    ) else {
        panic!("set R8S_STREAM_E2E_CRI, R8S_STREAM_E2E_PKI and R8S_STREAM_E2E_DIR");
    };
    let work = PathBuf::from(work);
    let cri = kubelet::cri::Cri::connect(std::path::Path::new(&sock))
        .await
        .expect("cri");
    let mut rt = cri.runtime.clone();
    let logs = work.join("pods/default_web_u1");
    std::fs::create_dir_all(&logs).expect("log dir");
    let sandbox_config = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: "web".into(),
            uid: "u1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "web".into(),
        log_directory: logs.display().to_string(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: "/se2e/podu1".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sandbox = rt
        .run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("sandbox")
        .into_inner()
        .pod_sandbox_id;
    let container = rt
        .create_container(api::CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(api::ContainerConfig {
                metadata: Some(api::ContainerMetadata {
                    name: "app".into(),
                    attempt: 0,
                }),
                image: Some(api::ImageSpec {
                    image: "docker.io/library/busybox:1.36".into(),
                    ..Default::default()
                }),
                command: vec!["sh".into(), "-c".into()],
                args: vec![
                    "httpd -p 8080 -h /var/www; i=0; while true; do echo tick $i; echo err $i >&2; i=$((i+1)); sleep 1; done"
                        .into(),
                ],
                log_path: "app/0.log".into(),
                stdin: true,
                ..Default::default()
            }),
            sandbox_config: Some(sandbox_config),
        })
        .await
        .expect("create")
        .into_inner()
        .container_id;
    rt.start_container(api::StartContainerRequest {
        container_id: container.clone(),
    })
    .await
    .expect("start");

    let pki = apiserver::pki::Pki::at(std::path::Path::new(&data));
    let (cert, key) = kubelet::server::ensure_serving_cert(
        &pki.ca_cert,
        &pki.ca_key,
        &work.join("agent"),
        "stream-node",
        &["127.0.0.1".parse().expect("ip")],
    )
    .expect("cert");
    let server = Server::bind(&ServerConfig {
        addr: "127.0.0.1:0".parse().expect("addr"),
        tls_cert: cert,
        tls_key: key,
        client_ca: pki.ca_cert.clone(),
    })
    .await
    .expect("bind");
    let port = server.local_addr().expect("addr").port();
    std::fs::write(work.join("port"), port.to_string()).expect("port file");
    let shutdown = CancellationToken::new();
    let view = Arc::new(RealView {
        sandbox: sandbox.clone(),
        container: container.clone(),
        log: logs.join("app/0.log"),
    });
    let task = tokio::spawn(server.run(view, cri.clone(), shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(900);
    while !work.join("stop").exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shutdown.cancel();
    let _ = task.await;
    let _ = rt
        .stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: sandbox.clone(),
        })
        .await;
    let _ = rt
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: sandbox,
        })
        .await;
}
