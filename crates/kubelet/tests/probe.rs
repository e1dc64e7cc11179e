//! Probe handlers against local servers (HTTP, HTTPS, TCP, gRPC health) and the worker logic
//! (thresholds, initial delay, startup gating, liveness hold, removal) with a fake prober on
//! tokio's paused clock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kubelet::probe::grpc::run_grpc;
use kubelet::probe::http::{HttpRequest, run_http};
use kubelet::probe::tcp::run_tcp;
use kubelet::probe::{
    ProbeKind, ProbeManager, ProbeOutcome, ProbeTarget, ProbeUpdate, Prober, RunningContainer,
};
use parking_lot::Mutex;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Handlers.

type Seen = Arc<Mutex<Vec<http::HeaderMap>>>;

async fn handle(
    req: http::Request<hyper::body::Incoming>,
    port: u16,
    seen: Seen,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    seen.lock().push(req.headers().clone());
    let resp = |status: u16, body: &str| {
        http::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("valid response")
    };
    let redirect = |to: String| {
        http::Response::builder()
            .status(302)
            .header("location", to)
            .body(Full::new(Bytes::from("moved")))
            .expect("valid response")
    };
    Ok(match req.uri().path() {
        "/ok" => resp(200, "fine"),
        "/fail" => resp(500, "broken"),
        "/same" => redirect("/ok".into()),
        "/same-abs" => redirect(format!("http://127.0.0.1:{port}/fail")),
        "/other" => redirect("http://other.invalid:1/ok".into()),
        "/loop" => redirect("/loop".into()),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            resp(200, "late")
        }
        _ => resp(404, "no"),
    })
}

async fn serve_conn<S>(io: S, port: u16, seen: Seen)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handle(req, port, seen.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

async fn http_server(tls: Option<tokio_rustls::TlsAcceptor>) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let s = s.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            serve_conn(stream, port, s).await;
                        }
                    }
                    None => serve_conn(stream, port, s).await,
                }
            });
        }
    });
    (port, seen)
}

fn get(port: u16, path: &str) -> HttpRequest {
    HttpRequest {
        scheme: "http".into(),
        host: "127.0.0.1".into(),
        port,
        path: path.into(),
        headers: vec![],
    }
}

async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test]
async fn http_status_codes_and_redirects() {
    let (port, _) = http_server(None).await;
    let t = Duration::from_secs(1);
    assert_eq!(
        run_http(&get(port, "/ok"), t).await,
        ProbeOutcome::Success("fine".into())
    );
    assert_eq!(
        run_http(&get(port, "/fail"), t).await,
        ProbeOutcome::Failure("HTTP probe failed with statuscode: 500".into())
    );
    assert_eq!(
        run_http(&get(port, "/missing"), t).await,
        ProbeOutcome::Failure("HTTP probe failed with statuscode: 404".into())
    );
    // Same host: followed.
    assert_eq!(
        run_http(&get(port, "/same"), t).await,
        ProbeOutcome::Success("fine".into())
    );
    assert_eq!(
        run_http(&get(port, "/same-abs"), t).await,
        ProbeOutcome::Failure("HTTP probe failed with statuscode: 500".into())
    );
    // Another host: not followed, a success with a warning.
    assert_eq!(
        run_http(&get(port, "/other"), t).await,
        ProbeOutcome::Warning("Probe terminated redirects, Response body: moved".into())
    );
    match run_http(&get(port, "/loop"), t).await {
        ProbeOutcome::Failure(m) => assert!(m.ends_with("stopped after 10 redirects"), "{m}"),
        other => panic!("redirect loop: {other:?}"),
    }
}

#[tokio::test]
async fn http_headers_timeout_and_refused() {
    let (port, seen) = http_server(None).await;
    let t = Duration::from_secs(1);
    run_http(&get(port, "/ok"), t).await;
    {
        let h = seen.lock();
        let h = h.last().expect("request seen");
        assert_eq!(h["user-agent"], "kube-probe/1.35");
        assert_eq!(h["accept"], "*/*");
        assert_eq!(h["host"], format!("127.0.0.1:{port}").as_str());
    }
    let mut req = get(port, "/ok");
    req.headers = vec![
        ("X-Custom".into(), "v".into()),
        ("User-Agent".into(), "mine".into()),
        ("Accept".into(), String::new()),
        ("Host".into(), "example.com".into()),
    ];
    run_http(&req, t).await;
    {
        let h = seen.lock();
        let h = h.last().expect("request seen");
        assert_eq!(h["x-custom"], "v");
        assert_eq!(h["user-agent"], "mine");
        assert!(h.get("accept").is_none(), "an empty Accept removes it");
        assert_eq!(h["host"], "example.com");
    }

    assert_eq!(
        run_http(&get(port, "/slow"), t).await,
        ProbeOutcome::Failure(format!(
            "Get \"http://127.0.0.1:{port}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        ))
    );
    let closed = closed_port().await;
    assert_eq!(
        run_http(&get(closed, "/"), t).await,
        ProbeOutcome::Failure(format!(
            "Get \"http://127.0.0.1:{closed}/\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
        ))
    );
}

#[tokio::test]
async fn https_without_verification() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (port, _) = http_server(Some(acceptor)).await;
    let mut req = get(port, "/ok");
    req.scheme = "https".into();
    assert_eq!(
        run_http(&req, Duration::from_secs(2)).await,
        ProbeOutcome::Success("fine".into())
    );
}

#[tokio::test]
async fn tcp_connect() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    assert_eq!(
        run_tcp("127.0.0.1", port, Duration::from_secs(1)).await,
        ProbeOutcome::Success(String::new())
    );
    drop(l);
    assert_eq!(
        run_tcp("127.0.0.1", port, Duration::from_secs(1)).await,
        ProbeOutcome::Failure(format!(
            "dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );
}

#[tokio::test]
async fn grpc_health() {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("db", tonic_health::ServingStatus::NotServing)
        .await;
    let incoming =
        tonic::transport::server::TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
    let port = incoming.local_addr().expect("addr").port();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await }),
    );
    let t = Duration::from_secs(1);
    assert_eq!(
        run_grpc("127.0.0.1", port, "", t).await,
        ProbeOutcome::Success("service is serving".into())
    );
    assert_eq!(
        run_grpc("127.0.0.1", port, "db", t).await,
        ProbeOutcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
    match run_grpc("127.0.0.1", port, "unknown", t).await {
        ProbeOutcome::Failure(m) => assert_eq!(
            m,
            "error: health rpc probe failed: rpc error: code = NotFound desc = service not registered"
        ),
        other => panic!("unknown service: {other:?}"),
    }
    shutdown.cancel();
    let closed = closed_port().await;
    let started = std::time::Instant::now();
    assert_eq!(
        run_grpc("127.0.0.1", closed, "", t).await,
        ProbeOutcome::Failure(format!(
            "timeout: failed to connect service \"127.0.0.1:{closed}\" within 1s: context deadline exceeded"
        ))
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "retried until the timeout"
    );
}

// ---------------------------------------------------------------------------------------------
// Workers, with a fake prober on the paused clock.

#[derive(Default)]
struct Fake {
    /// (container, kind) → healthy; missing = healthy.
    health: Mutex<HashMap<(String, ProbeKind), bool>>,
    /// (container id, kind, when).
    calls: Mutex<Vec<(String, ProbeKind, Instant)>>,
}

impl Fake {
    fn set(&self, container: &str, kind: ProbeKind, healthy: bool) {
        self.health
            .lock()
            .insert((container.to_string(), kind), healthy);
    }
    fn calls(&self, kind: ProbeKind) -> Vec<Duration> {
        let start = START.with(|s| *s);
        self.calls
            .lock()
            .iter()
            .filter(|(_, k, _)| *k == kind)
            .map(|(_, _, at)| at.duration_since(start))
            .collect()
    }
}

thread_local! {
    static START: Instant = Instant::now();
}

impl Prober for Fake {
    fn probe<'a>(&'a self, t: &'a ProbeTarget) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            self.calls
                .lock()
                .push((t.container_id.clone(), t.kind, Instant::now()));
            let healthy = self
                .health
                .lock()
                .get(&(t.container.name.clone(), t.kind))
                .copied()
                .unwrap_or(true);
            if healthy {
                ProbeOutcome::Success(String::new())
            } else {
                ProbeOutcome::Failure("HTTP probe failed with statuscode: 500".into())
            }
        })
    }
}

fn probe_pod(containers: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
        "spec": {"containers": containers}
    }))
    .expect("valid pod")
}

fn running(name: &str, id: &str) -> RunningContainer {
    RunningContainer {
        name: name.into(),
        id: id.into(),
        started_at: SystemTime::now(),
    }
}

struct Harness {
    fake: Arc<Fake>,
    mgr: ProbeManager,
    rx: mpsc::UnboundedReceiver<ProbeUpdate>,
    shutdown: CancellationToken,
}

fn harness() -> Harness {
    START.with(|_| {});
    let fake = Arc::new(Fake::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let mgr = ProbeManager::with_prober(fake.clone(), tx, shutdown.clone());
    Harness {
        fake,
        mgr,
        rx,
        shutdown,
    }
}

impl Harness {
    fn updates(&mut self) -> Vec<ProbeUpdate> {
        let mut out = Vec::new();
        while let Ok(u) = self.rx.try_recv() {
            out.push(u);
        }
        out
    }
}

async fn at(secs: f64) {
    let start = START.with(|s| *s);
    tokio::time::sleep_until(start + Duration::from_secs_f64(secs)).await;
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn readiness_defaults_and_thresholds() {
    let mut h = harness();
    let pod = probe_pod(json!([
        {"name": "web", "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 10, "failureThreshold": 2}},
        {"name": "plain"}
    ]));
    assert!(
        !h.mgr.is_ready("u1", "web"),
        "unknown before the first sync"
    );
    h.mgr.sync_pod(
        &pod,
        None,
        &[running("web", "id1"), running("plain", "id2")],
    );
    assert!(!h.mgr.is_ready("u1", "web"), "false until proven");
    assert!(h.mgr.is_ready("u1", "plain"), "no readiness probe: ready");
    assert!(h.mgr.is_started("u1", "plain"));
    assert!(h.mgr.is_started("u1", "web"), "no startup probe: started");

    at(1.0).await;
    assert!(h.mgr.is_ready("u1", "web"));
    let u = h.updates();
    assert_eq!(u.len(), 1, "{u:?}");
    assert_eq!(
        u[0],
        ProbeUpdate {
            pod_uid: "u1".into(),
            container: "web".into(),
            container_id: "id1".into(),
            kind: ProbeKind::Readiness,
            success: true,
            message: String::new(),
        }
    );

    h.fake.set("web", ProbeKind::Readiness, false);
    at(11.0).await;
    assert!(
        h.mgr.is_ready("u1", "web"),
        "one failure is below the threshold"
    );
    assert!(h.updates().is_empty());
    at(21.0).await;
    assert!(!h.mgr.is_ready("u1", "web"));
    let u = h.updates();
    assert_eq!(u.len(), 1, "{u:?}");
    assert!(!u[0].success);
    assert_eq!(
        u[0].message,
        "Readiness probe failed: HTTP probe failed with statuscode: 500"
    );
    at(41.0).await;
    assert!(h.updates().is_empty(), "no update without a change");
    assert_eq!(
        h.fake.calls(ProbeKind::Readiness),
        vec![s(0), s(10), s(20), s(30), s(40)]
    );
    h.fake.set("web", ProbeKind::Readiness, true);
    at(51.0).await;
    assert!(
        h.mgr.is_ready("u1", "web"),
        "readiness keeps probing after failing"
    );
}

#[tokio::test(start_paused = true)]
async fn readiness_success_threshold() {
    let mut h = harness();
    let pod = probe_pod(json!([
        {"name": "web", "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5, "successThreshold": 3}}
    ]));
    h.mgr.sync_pod(&pod, None, &[running("web", "id1")]);
    at(6.0).await;
    assert!(!h.mgr.is_ready("u1", "web"), "2 successes < 3");
    at(11.0).await;
    assert!(h.mgr.is_ready("u1", "web"));
    assert_eq!(h.updates().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn liveness_failure_is_reported_once_and_the_worker_stops() {
    let mut h = harness();
    let pod = probe_pod(json!([
        {"name": "web", "livenessProbe": {"httpGet": {"port": 80}}}
    ]));
    h.fake.set("web", ProbeKind::Liveness, false);
    h.mgr.sync_pod(&pod, None, &[running("web", "id1")]);
    assert_eq!(h.mgr.worker_count(), 1);
    at(19.0).await;
    assert!(h.updates().is_empty(), "2 failures < default threshold 3");
    at(21.0).await;
    let u = h.updates();
    assert_eq!(u.len(), 1, "{u:?}");
    assert_eq!(u[0].kind, ProbeKind::Liveness);
    assert_eq!(u[0].container_id, "id1");
    assert!(!u[0].success);
    assert_eq!(
        u[0].message,
        "Liveness probe failed: HTTP probe failed with statuscode: 500"
    );
    at(100.0).await;
    assert_eq!(
        h.fake.calls(ProbeKind::Liveness),
        vec![s(0), s(10), s(20)],
        "on hold after the failure"
    );
    assert_eq!(h.mgr.worker_count(), 0);
    // The same instance gets no new worker; a restarted one does.
    h.mgr.sync_pod(&pod, None, &[running("web", "id1")]);
    at(110.0).await;
    assert_eq!(h.fake.calls(ProbeKind::Liveness).len(), 3);
    h.fake.set("web", ProbeKind::Liveness, true);
    h.mgr.sync_pod(&pod, None, &[running("web", "id2")]);
    at(111.0).await;
    assert_eq!(h.fake.calls(ProbeKind::Liveness).len(), 4);
    assert_eq!(h.mgr.worker_count(), 1);
    assert!(h.updates().is_empty(), "liveness successes are not news");
}

#[tokio::test(start_paused = true)]
async fn initial_delay_skips_probes() {
    let h = harness();
    let pod = probe_pod(json!([
        {"name": "web", "readinessProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 15, "periodSeconds": 10}}
    ]));
    h.mgr.sync_pod(&pod, None, &[running("web", "id1")]);
    at(19.0).await;
    assert!(h.fake.calls(ProbeKind::Readiness).is_empty());
    assert!(!h.mgr.is_ready("u1", "web"));
    at(21.0).await;
    assert_eq!(h.fake.calls(ProbeKind::Readiness), vec![s(20)]);
    assert!(h.mgr.is_ready("u1", "web"));
}

#[tokio::test(start_paused = true)]
async fn startup_gates_liveness_and_readiness() {
    let mut h = harness();
    let pod = probe_pod(json!([
        {"name": "web",
         "startupProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 10, "failureThreshold": 30},
         "livenessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 10},
         "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 10}}
    ]));
    h.fake.set("web", ProbeKind::Startup, false);
    h.mgr.sync_pod(&pod, None, &[running("web", "id1")]);
    at(25.0).await;
    assert!(!h.mgr.is_started("u1", "web"));
    assert!(!h.mgr.is_ready("u1", "web"));
    assert!(h.fake.calls(ProbeKind::Liveness).is_empty());
    assert!(h.fake.calls(ProbeKind::Readiness).is_empty());
    assert!(
        h.updates().is_empty(),
        "startup failures below the threshold"
    );
    h.fake.set("web", ProbeKind::Startup, true);
    at(31.0).await;
    assert!(h.mgr.is_started("u1", "web"));
    assert!(
        h.mgr.is_ready("u1", "web"),
        "readiness ran right after startup"
    );
    assert_eq!(h.fake.calls(ProbeKind::Readiness), vec![s(30)]);
    assert_eq!(h.fake.calls(ProbeKind::Liveness), vec![s(30)]);
    let u = h.updates();
    let kinds: Vec<(ProbeKind, bool)> = u.iter().map(|u| (u.kind, u.success)).collect();
    assert_eq!(
        kinds,
        vec![(ProbeKind::Startup, true), (ProbeKind::Readiness, true)]
    );
    at(61.0).await;
    assert_eq!(
        h.fake.calls(ProbeKind::Startup),
        vec![s(0), s(10), s(20), s(30)],
        "startup stops once it succeeded"
    );
}

#[tokio::test(start_paused = true)]
async fn startup_failure_threshold() {
    let mut h = harness();
    let pod = probe_pod(json!([
        {"name": "web",
         "startupProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5, "failureThreshold": 2},
         "readinessProbe": {"tcpSocket": {"port": 80}}}
    ]));
    h.fake.set("web", ProbeKind::Startup, false);
    h.mgr.sync_pod(&pod, None, &[running("web", "id1")]);
    at(6.0).await;
    let u = h.updates();
    assert_eq!(u.len(), 1, "{u:?}");
    assert_eq!(u[0].kind, ProbeKind::Startup);
    assert!(!u[0].success);
    assert_eq!(
        u[0].message,
        "Startup probe failed: HTTP probe failed with statuscode: 500"
    );
    at(60.0).await;
    assert_eq!(h.fake.calls(ProbeKind::Startup).len(), 2);
    assert!(h.fake.calls(ProbeKind::Readiness).is_empty());
    assert!(!h.mgr.is_started("u1", "web"));
}

#[tokio::test(start_paused = true)]
async fn remove_pod_gone_containers_and_shutdown_stop_workers() {
    let h = harness();
    let pod = probe_pod(json!([
        {"name": "a", "readinessProbe": {"tcpSocket": {"port": 80}}},
        {"name": "b", "livenessProbe": {"tcpSocket": {"port": 80}}}
    ]));
    h.mgr
        .sync_pod(&pod, None, &[running("a", "ida"), running("b", "idb")]);
    assert_eq!(h.mgr.worker_count(), 2);
    at(1.0).await;
    // b is no longer running: its worker stops.
    h.mgr.sync_pod(&pod, None, &[running("a", "ida")]);
    assert_eq!(h.mgr.worker_count(), 1);
    assert!(!h.mgr.is_started("u1", "b"));
    at(31.0).await;
    assert_eq!(h.fake.calls(ProbeKind::Liveness), vec![s(0)]);
    assert_eq!(h.fake.calls(ProbeKind::Readiness).len(), 4);
    h.mgr.remove_pod("u1");
    assert_eq!(h.mgr.worker_count(), 0);
    assert!(!h.mgr.is_ready("u1", "a"));
    at(100.0).await;
    assert_eq!(h.fake.calls(ProbeKind::Readiness).len(), 4);

    h.mgr.sync_pod(&pod, None, &[running("a", "ida2")]);
    at(101.0).await;
    assert_eq!(h.fake.calls(ProbeKind::Readiness).len(), 5);
    h.shutdown.cancel();
    at(200.0).await;
    assert_eq!(
        h.fake.calls(ProbeKind::Readiness).len(),
        5,
        "stopped on shutdown"
    );
    assert_eq!(h.mgr.worker_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn terminating_pods_skip_liveness() {
    let h = harness();
    let mut pod = probe_pod(json!([
        {"name": "web", "livenessProbe": {"tcpSocket": {"port": 80}},
         "readinessProbe": {"tcpSocket": {"port": 80}}}
    ]));
    h.mgr.sync_pod(&pod, None, &[running("web", "id1")]);
    at(1.0).await;
    pod.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    h.mgr.sync_pod(&pod, None, &[running("web", "id1")]);
    at(31.0).await;
    assert_eq!(h.fake.calls(ProbeKind::Liveness), vec![s(0)]);
    assert_eq!(h.fake.calls(ProbeKind::Readiness).len(), 4);
}
