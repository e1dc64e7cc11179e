//! The cluster DNS benchmark (`bench --dns`): the DNS server the node agent runs
//! (`dns::Server`), in this process on 127.0.0.1, fed with N Services (half ClusterIP, half
//! headless with E ready endpoints each) through hand-fed informers, then an open-loop UDP
//! client sending queries at a fixed rate: Service A, headless A, SRV, PTR and NXDOMAIN
//! queries in turn.
//!
//! Each query's latency is measured from the moment it is sent to the moment its answer is
//! read; the sender's lag behind its schedule is reported beside (an open-loop client does not
//! wait for answers, so a slow server cannot slow the offered load down). Every answer is
//! checked (response code and answer count); missing answers are counted after a 2 s grace.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::dns::hickory_proto::op::{Message, Query, ResponseCode};
use ::dns::hickory_proto::rr::{Name, RecordType};
use informers::Informer;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use parking_lot::Mutex;
use serde_json::json;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::BenchError;
use crate::cpu::cpu_time;
use crate::report::{Figure, Report, Verdict};
use crate::stats::{ErrorTally, Summary, ms, percentile};

const NS: &str = "bench-dns";
/// How long answers may still arrive after the last query.
const GRACE: Duration = Duration::from_secs(2);

/// Sizes of the DNS run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Services (every second one headless).
    pub services: usize,
    /// Ready endpoints per headless Service.
    pub endpoints: usize,
    /// Queries per second.
    pub rate: u32,
    /// How long queries are sent.
    pub duration: Duration,
}

impl Default for Plan {
    /// The sizes: 1,000 Services, 5 endpoints per headless one, 1,000 queries/s for
    /// 10 s.
    fn default() -> Self {
        Self {
            services: 1_000,
            endpoints: 5,
            rate: 1_000,
            duration: Duration::from_secs(10),
        }
    }
}

/// The kinds of query of the mix, sent in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    ServiceA,
    HeadlessA,
    Srv,
    Ptr,
    NxDomain,
}

const KINDS: [Kind; 5] = [
    Kind::ServiceA,
    Kind::HeadlessA,
    Kind::Srv,
    Kind::Ptr,
    Kind::NxDomain,
];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::ServiceA => "Service A",
            Kind::HeadlessA => "headless A",
            Kind::Srv => "SRV",
            Kind::Ptr => "PTR",
            Kind::NxDomain => "NXDOMAIN",
        }
    }
}

fn is_headless(i: usize) -> bool {
    i % 2 == 1
}

fn cluster_ip(i: usize) -> Ipv4Addr {
    let n = u32::try_from(i).unwrap_or(0) + 10;
    Ipv4Addr::new(10, 96, ((n >> 8) & 0xff) as u8, (n & 0xff) as u8)
}

fn endpoint_ip(i: usize, j: usize) -> Ipv4Addr {
    let n = u32::try_from(i * 8 + j).unwrap_or(0) + 2;
    Ipv4Addr::new(10, 42, ((n >> 8) & 0xff) as u8, (n & 0xff) as u8)
}

fn service(i: usize) -> Result<Service, BenchError> {
    let spec = if is_headless(i) {
        json!({"clusterIP": "None", "clusterIPs": ["None"],
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    } else {
        let ip = cluster_ip(i).to_string();
        json!({"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
               "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]})
    };
    serde_json::from_value(json!({
        "metadata": {"namespace": NS, "name": format!("svc-{i}")},
        "spec": spec,
    }))
    .map_err(|e| BenchError::Unexpected(format!("service body: {e}")))
}

fn slice(i: usize, endpoints: usize) -> Result<EndpointSlice, BenchError> {
    serde_json::from_value(json!({
        "metadata": {"namespace": NS, "name": format!("svc-{i}-abcde"),
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": (0..endpoints).map(|j| json!({
            "addresses": [endpoint_ip(i, j).to_string()],
            "hostname": format!("pod-{j}"),
            "conditions": {"ready": true},
        })).collect::<Vec<_>>(),
    }))
    .map_err(|e| BenchError::Unexpected(format!("slice body: {e}")))
}

/// The question of query `n` and what its answer must hold: (name, type, rcode, answers).
fn question(n: usize, plan: &Plan) -> (String, RecordType, ResponseCode, usize) {
    let kind = KINDS[n % KINDS.len()];
    // Spread the queries over the Services (a multiplicative hash of n).
    let pick = (n.wrapping_mul(2_654_435_761) >> 3) % plan.services.max(2);
    let clusterip = pick & !1;
    let headless = (pick | 1).min(plan.services.max(2) - 1);
    match kind {
        Kind::ServiceA => (
            format!("svc-{clusterip}.{NS}.svc.cluster.local."),
            RecordType::A,
            ResponseCode::NoError,
            1,
        ),
        Kind::HeadlessA => (
            format!("svc-{headless}.{NS}.svc.cluster.local."),
            RecordType::A,
            ResponseCode::NoError,
            plan.endpoints,
        ),
        Kind::Srv => (
            format!("_http._tcp.svc-{clusterip}.{NS}.svc.cluster.local."),
            RecordType::SRV,
            ResponseCode::NoError,
            1,
        ),
        Kind::Ptr => {
            let [a, b, c, d] = cluster_ip(clusterip).octets();
            (
                format!("{d}.{c}.{b}.{a}.in-addr.arpa."),
                RecordType::PTR,
                ResponseCode::NoError,
                1,
            )
        }
        Kind::NxDomain => (
            format!("missing-{n}.{NS}.svc.cluster.local."),
            RecordType::A,
            ResponseCode::NXDomain,
            0,
        ),
    }
}

fn encode(id: u16, name: &str, t: RecordType) -> Result<Vec<u8>, BenchError> {
    let name = Name::from_ascii(name).map_err(|e| BenchError::Unexpected(e.to_string()))?;
    let mut m = Message::new();
    m.set_id(id)
        .set_recursion_desired(true)
        .add_query(Query::query(name, t));
    m.to_vec()
        .map_err(|e| BenchError::Unexpected(format!("encoding a query: {e}")))
}

/// A query in flight.
struct Pending {
    kind: Kind,
    sent: Instant,
    rcode: ResponseCode,
    answers: usize,
    name: String,
}

#[derive(Default)]
struct Results {
    latencies: HashMap<Kind, Vec<Duration>>,
    errors: ErrorTally,
    answered: usize,
}

/// Runs the DNS benchmark.
pub async fn run(plan: &Plan, progress: &dyn Fn(&str)) -> Result<Report, BenchError> {
    let mut report = Report::default();
    let headless = (0..plan.services).filter(|i| is_headless(*i)).count();
    progress(&format!(
        "feeding {} Services ({} headless × {} endpoints) to the informers",
        plan.services, headless, plan.endpoints
    ));
    let services = Informer::<Service>::new();
    let slices = Informer::<EndpointSlice>::new();
    let mut svc_map = HashMap::new();
    let mut slice_map = HashMap::new();
    for i in 0..plan.services {
        svc_map.insert(format!("{NS}/svc-{i}"), service(i)?);
        if is_headless(i) {
            slice_map.insert(format!("{NS}/svc-{i}-abcde"), slice(i, plan.endpoints)?);
        }
    }
    // `replace` is what a first list does: the informers are synced.
    services.replace(svc_map);
    slices.replace(slice_map);

    let started = Instant::now();
    let server = ::dns::Server::bind(::dns::Config::new(SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        0,
    ))))
    .await
    .map_err(|e| BenchError::Unexpected(e.to_string()))?;
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(services, slices, shutdown.clone()));
    let result = measure(addr, plan, started, &mut report, progress).await;
    shutdown.cancel();
    match task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => report.notes.push(format!("DNS server: {e}")),
        Err(e) => report.notes.push(format!("DNS server task: {e}")),
    }
    result?;
    report
        .notes
        .push("the DNS server and the client run in the same process and share its 2 CPUs".into());
    Ok(report)
}

async fn measure(
    addr: SocketAddr,
    plan: &Plan,
    started: Instant,
    report: &mut Report,
    progress: &dyn Fn(&str),
) -> Result<(), BenchError> {
    let sock = Arc::new(
        UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| BenchError::io("binding the client socket", e))?,
    );
    sock.connect(addr)
        .await
        .map_err(|e| BenchError::io("connecting the client socket", e))?;

    // Time to the first answer: the server loads every object before it serves.
    let (name, t, _, want) = question(0, plan);
    let first = encode(0, &name, t)?;
    sock.send(&first)
        .await
        .map_err(|e| BenchError::io("sending the first query", e))?;
    let mut buf = vec![0u8; 65_535];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf))
        .await
        .map_err(|_| BenchError::Unexpected("no answer to the first query in 10 s".into()))?
        .map_err(|e| BenchError::io("reading the first answer", e))?;
    let m = Message::from_vec(&buf[..n]).map_err(|e| BenchError::Unexpected(e.to_string()))?;
    if m.answers().len() != want {
        return Err(BenchError::Unexpected(format!(
            "first query {name}: {} answers, {want} expected",
            m.answers().len()
        )));
    }
    report.figures.push(Figure::info(
        format!(
            "bind → first answer with {} Services loaded (informers synced)",
            plan.services
        ),
        format!("{} ms", ms(started.elapsed())),
    ));

    let total = usize::try_from(u64::from(plan.rate) * plan.duration.as_secs())
        .unwrap_or(usize::MAX)
        .max(1);
    progress(&format!(
        "open-loop UDP client: {} queries/s for {} s against {addr}",
        plan.rate,
        plan.duration.as_secs()
    ));
    // IDs index the table of queries in flight (1..=65535 wrap; 0 was the first query).
    let pending: Arc<Mutex<HashMap<u16, Pending>>> = Arc::new(Mutex::new(HashMap::new()));
    let results = Arc::new(Mutex::new(Results::default()));
    let stop = CancellationToken::new();
    let receiver = tokio::spawn(receive(
        sock.clone(),
        pending.clone(),
        results.clone(),
        stop.clone(),
    ));

    let cpu_before = cpu_time("self").await.ok();
    let interval = Duration::from_secs(1).as_secs_f64() / f64::from(plan.rate.max(1));
    let t0 = Instant::now();
    let mut lags = Vec::with_capacity(total);
    let mut sent = 0usize;
    let mut send_errors = ErrorTally::default();
    while sent < total {
        let due = Duration::from_secs_f64(sent as f64 * interval);
        let now = t0.elapsed();
        if now < due {
            tokio::time::sleep(due - now).await;
            continue;
        }
        lags.push(now - due);
        let id = u16::try_from(sent % 65_535 + 1).unwrap_or(1);
        let (name, t, rcode, answers) = question(sent, plan);
        let bytes = encode(id, &name, t)?;
        let kind = KINDS[sent % KINDS.len()];
        let at = Instant::now();
        if let Some(stale) = pending.lock().insert(
            id,
            Pending {
                kind,
                sent: at,
                rcode,
                answers,
                name,
            },
        ) {
            results.lock().errors.record("no answer", || {
                format!("{} {}", stale.kind.label(), stale.name)
            });
        }
        if let Err(e) = sock.send(&bytes).await {
            send_errors.record("send", || e.to_string());
        }
        sent += 1;
    }
    let send_time = t0.elapsed();
    tokio::time::sleep(GRACE).await;
    let cpu_after = cpu_time("self").await.ok();
    stop.cancel();
    let _ = receiver.await;

    let mut results = std::mem::take(&mut *results.lock());
    for (_, p) in pending.lock().drain() {
        results
            .errors
            .record("no answer", || format!("{} {}", p.kind.label(), p.name));
    }
    results.errors.merge(send_errors);

    let all: Vec<Duration> = results.latencies.values().flatten().copied().collect();
    let name = format!(
        "DNS latency @ {}/s open loop, {} s, UDP (A, headless A, SRV, PTR, NXDOMAIN)",
        plan.rate,
        plan.duration.as_secs()
    );
    let mut sorted = all.clone();
    sorted.sort_unstable();
    match Summary::of(all) {
        Some(s) => {
            let p90 = percentile(&sorted, 90.0).unwrap_or_default();
            let mut fig = Figure::at_most(
                name,
                format!(
                    "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (n={})",
                    ms(s.p50),
                    ms(p90),
                    ms(s.p99),
                    ms(s.max),
                    s.count
                ),
                s.p99.as_secs_f64() * 1000.0,
                5.0,
                "p99 ≤ 5 ms",
            );
            if !results.errors.is_empty() {
                fig.verdict = Verdict::Miss;
            }
            report.figures.push(fig);
        }
        None => report
            .figures
            .push(Figure::failed(name, "no answer received", "p99 ≤ 5 ms")),
    }
    for kind in KINDS {
        if let Some(s) = results.latencies.remove(&kind).and_then(Summary::of) {
            report.figures.push(Figure::info(
                format!("  {}", kind.label()),
                format!(
                    "p50 {} ms, p99 {} ms, max {} ms (n={})",
                    ms(s.p50),
                    ms(s.p99),
                    ms(s.max),
                    s.count
                ),
            ));
        }
    }
    let rate = sent as f64 / send_time.as_secs_f64().max(1e-3);
    report.figures.push(Figure::at_least(
        "achieved query rate",
        format!(
            "{rate:.0}/s sent ({sent} queries in {:.2} s), {} answered",
            send_time.as_secs_f64(),
            results.answered
        ),
        rate,
        f64::from(plan.rate) * 0.95,
        format!("≥ {}/s", plan.rate * 95 / 100),
    ));
    lags.sort_unstable();
    if let (Some(p99), Some(max)) = (percentile(&lags, 99.0), lags.last()) {
        report.figures.push(Figure::info(
            "  sender lag behind schedule",
            format!("p99 {} ms, max {} ms", ms(p99), ms(*max)),
        ));
    }
    let errors = results.errors.total();
    report.figures.push(Figure::at_most(
        "wrong or missing answers",
        format!("{errors}"),
        errors as f64,
        0.0,
        "0",
    ));
    if !results.errors.is_empty() {
        report
            .notes
            .push(format!("DNS: {errors} failed: {}", results.errors));
    }
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        let secs = (send_time + GRACE).as_secs_f64();
        report.figures.push(Figure::info(
            "  cpu of the process (server + client)",
            format!("{:.2} cores", b.saturating_sub(a).as_secs_f64() / secs),
        ));
    }
    Ok(())
}

/// Reads answers until `stop`, matching them to the queries in flight.
async fn receive(
    sock: Arc<UdpSocket>,
    pending: Arc<Mutex<HashMap<u16, Pending>>>,
    results: Arc<Mutex<Results>>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => return,
            r = sock.recv(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => {
                    results.lock().errors.record("recv", || e.to_string());
                    continue;
                }
            },
        };
        let at = Instant::now();
        let Ok(m) = Message::from_vec(&buf[..n]) else {
            results
                .lock()
                .errors
                .record("undecodable answer", || format!("{n} bytes"));
            continue;
        };
        let Some(p) = pending.lock().remove(&m.id()) else {
            continue;
        };
        let mut r = results.lock();
        r.answered += 1;
        if m.response_code() != p.rcode || m.answers().len() != p.answers || m.truncated() {
            r.errors
                .record(format!("wrong {} answer", p.kind.label()), || {
                    format!(
                        "{}: {} with {} answers{}, expected {} with {}",
                        p.name,
                        m.response_code(),
                        m.answers().len(),
                        if m.truncated() { " (TC)" } else { "" },
                        p.rcode,
                        p.answers
                    )
                });
            continue;
        }
        r.latencies
            .entry(p.kind)
            .or_default()
            .push(at.duration_since(p.sent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_cover_the_mix() {
        let plan = Plan::default();
        let kinds: Vec<RecordType> = (0..5).map(|n| question(n, &plan).1).collect();
        assert_eq!(
            kinds,
            vec![
                RecordType::A,
                RecordType::A,
                RecordType::SRV,
                RecordType::PTR,
                RecordType::A
            ]
        );
        let (name, _, _, answers) = question(1, &plan);
        assert!(name.starts_with("svc-") && answers == 5, "{name}");
        let (_, _, rcode, _) = question(4, &plan);
        assert_eq!(rcode, ResponseCode::NXDomain);
        assert_eq!(cluster_ip(0), Ipv4Addr::new(10, 96, 0, 10));
        assert_ne!(endpoint_ip(1, 4), endpoint_ip(2, 0));
    }
}
