//! Cluster DNS, served from the r8s binary by the node agent (CoreDNS's `kubernetes` plugin,
//! in-process).
//!
//! It implements the [Kubernetes DNS-Based Service Discovery specification][spec] (version
//! 1.1.0) for the cluster zone (`cluster.local` by default), following CoreDNS where the
//! specification is silent:
//!
//! - `<svc>.<ns>.svc.<zone>` A/AAAA: the ClusterIPs; for headless Services (`clusterIP:
//!   None`) the addresses of the ready endpoints of every EndpointSlice labelled
//!   `kubernetes.io/service-name=<svc>` (not-ready ones too with `publishNotReadyAddresses`).
//!   A headless Service without ready endpoints does not exist (NXDOMAIN), as in CoreDNS.
//! - `<label>.<svc>.<ns>.svc.<zone>` for headless endpoints, where the label is the
//!   endpoint's `hostname`, or else its address with dashes (`10-1-2-3`), as CoreDNS.
//! - SRV `_<port>._<proto>.<svc>.<ns>.svc.<zone>` for named ports: priority 0, weight
//!   `100 / n`, target the Service name (ClusterIP) or each endpoint's name (headless), with
//!   their addresses in the additional section. An SRV query on the Service (or endpoint) name
//!   itself lists every port, as CoreDNS.
//! - PTR `<reversed IP>.in-addr.arpa` (and `ip6.arpa`) for ClusterIPs and for headless
//!   endpoints with a `hostname`; other reverse names are forwarded.
//! - ExternalName Services: a CNAME to `spec.externalName`; for other types the target is
//!   resolved too (in the zone, or upstream) and its records appended, as CoreDNS.
//! - Pods: `<a-b-c-d>.<ns>.pod.<zone>` (CoreDNS `pods insecure`: any namespace).
//! - `dns-version.<zone>` TXT `1.1.0`; the zone apex answers SOA and NS (`ns.dns.<zone>`).
//! - Missing names: NXDOMAIN with the SOA (`ns.dns.<zone>. hostmaster.<zone>.`, serial the
//!   time of the last change) in the authority section; existing names (including empty
//!   non-terminals such as `<ns>.svc.<zone>`) without the asked type: NODATA with the SOA.
//!   TTL 5 s everywhere. Names match case-insensitively; answers echo the question's case.
//!
//! Other names are relayed to the upstream resolvers (see [`forward`]); with none, or when
//! all fail, the answer is SERVFAIL. UDP answers larger than 512 bytes (or the client's EDNS
//! size) lose their additional section, then their records with the TC bit set; TCP is
//! served with the usual 2-byte length prefix.
//!
//! The zone lives in memory ([`records`]), indexed by lower-cased name and updated one
//! Service at a time from informer events; a query takes a read lock for the lookup only.
//!
//! [spec]: https://github.com/kubernetes/dns/blob/master/docs/specification.md

mod answer;
mod forward;
mod records;

/// The DNS message library this crate speaks (re-exported for clients such as the benchmark).
pub use hickory_proto;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::Name;
use informers::{Event, Informer};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use parking_lot::RwLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use answer::Outcome;
use records::Zone;

/// The default cluster domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// How long [`Server::run`] waits for the informers' first list before serving anyway
/// (CoreDNS waits 5 s too).
pub const SYNC_WAIT: Duration = Duration::from_secs(5);

/// Upstream queries in flight at once; beyond, queries are answered SERVFAIL at once
/// (CoreDNS's `forward` uses `max_concurrent 1000` in the default Corefile).
const MAX_FORWARDS: usize = 1000;

/// How long an idle TCP client connection is kept.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// UDP receive loops on the one socket.
const UDP_LOOPS: usize = 2;

/// Configuration of a [`Server`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to serve on, UDP and TCP (the agent uses `<node-ip>:53`; tests use
    /// `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// Cluster domain, default `cluster.local`.
    pub cluster_domain: String,
    /// Resolvers for names outside the cluster (from the host's resolv.conf); empty = answer
    /// SERVFAIL at once.
    pub upstreams: Vec<SocketAddr>,
    /// Timeout per upstream attempt (default 2 s).
    pub upstream_timeout: Duration,
}

impl Config {
    /// Serves on `listen`, zone `cluster.local`, no upstreams, 2 s per upstream attempt.
    pub fn new(listen: SocketAddr) -> Config {
        Config {
            listen,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            upstreams: Vec::new(),
            upstream_timeout: Duration::from_secs(2),
        }
    }
}

/// The `nameserver` addresses of a resolv.conf, port 53, in order, at most 3 (glibc's
/// `MAXNS`: later ones are never used by the host either).
///
/// Loopback entries (systemd-resolved's `127.0.0.53`, a local dnsmasq) are kept: this server
/// runs in the node's network namespace, where they are reachable; CoreDNS must drop them
/// only because it runs in a pod's namespace. (A forwarding loop to this server itself is
/// prevented by [`Server::bind`], which drops an upstream equal to its own address.)
/// IPv6 link-local entries with an interface name (`fe80::1%eth0`) are skipped; a numeric
/// scope (`%2`) is kept.
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(word) = words.next() else {
            continue;
        };
        let (addr, scope) = match word.split_once('%') {
            Some((a, s)) => (a, Some(s)),
            None => (word, None),
        };
        let Ok(ip) = addr.parse::<IpAddr>() else {
            continue;
        };
        let sa = match (ip, scope) {
            (IpAddr::V4(_), Some(_)) => continue,
            (_, None) => SocketAddr::new(ip, 53),
            (IpAddr::V6(v6), Some(scope)) => match scope.parse::<u32>() {
                Ok(id) => SocketAddr::V6(std::net::SocketAddrV6::new(v6, 53, 0, id)),
                Err(_) => continue,
            },
        };
        if !out.contains(&sa) {
            out.push(sa);
        }
        if out.len() == 3 {
            break;
        }
    }
    out
}

/// Errors of the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The UDP or TCP socket could not be bound.
    #[error("binding DNS {proto} socket on {addr}: {source}")]
    Bind {
        /// `udp` or `tcp`.
        proto: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The cluster domain is not a valid domain name.
    #[error("invalid cluster domain {0:?}")]
    InvalidDomain(String),
}

/// What the serving tasks share.
struct Shared {
    zone: RwLock<Zone>,
    upstreams: Vec<SocketAddr>,
    upstream_timeout: Duration,
    forwards: Arc<Semaphore>,
}

/// A bound cluster DNS server; [`Server::run`] serves.
pub struct Server {
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    local: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local", &self.local)
            .field("upstreams", &self.shared.upstreams)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds UDP and TCP sockets now (so callers learn the port and bind errors early). With
    /// port 0, both get the same (free) port.
    pub async fn bind(config: Config) -> Result<Server, Error> {
        let zone = Zone::new(&config.cluster_domain)
            .ok_or_else(|| Error::InvalidDomain(config.cluster_domain.clone()))?;
        let mut tries = if config.listen.port() == 0 { 20 } else { 1 };
        let (udp, tcp, local) = loop {
            tries -= 1;
            let udp = UdpSocket::bind(config.listen)
                .await
                .map_err(|source| Error::Bind {
                    proto: "udp",
                    addr: config.listen,
                    source,
                })?;
            let local = udp.local_addr().map_err(|source| Error::Bind {
                proto: "udp",
                addr: config.listen,
                source,
            })?;
            match TcpListener::bind(local).await {
                Ok(tcp) => break (udp, tcp, local),
                Err(e) if tries > 0 && e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(source) => {
                    return Err(Error::Bind {
                        proto: "tcp",
                        addr: local,
                        source,
                    });
                }
            }
        };
        let upstreams = config
            .upstreams
            .iter()
            .copied()
            .filter(|u| !is_self(*u, local))
            .collect();
        Ok(Server {
            udp: Arc::new(udp),
            tcp,
            local,
            shared: Arc::new(Shared {
                zone: RwLock::new(zone),
                upstreams,
                upstream_timeout: config.upstream_timeout,
                forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
            }),
        })
    }

    /// The address served (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `shutdown`, answering from records kept current from the two informers.
    ///
    /// Waits first (at most [`SYNC_WAIT`]) for both informers' first list, as CoreDNS does,
    /// so that the first answers are not NXDOMAIN for lack of data; queries sent meanwhile
    /// wait in the sockets. (An informer fed by hand is synced by [`Informer::replace`].)
    pub async fn run(
        self,
        services: Informer<Service>,
        slices: Informer<EndpointSlice>,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let mut svc_rx = services.subscribe();
        let mut slice_rx = slices.subscribe();
        let synced = async {
            tokio::join!(services.wait_synced(), slices.wait_synced());
        };
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = tokio::time::timeout(SYNC_WAIT, synced) => {
                if r.is_err() {
                    tracing::warn!("cluster DNS: starting with unsynced Service/EndpointSlice informers");
                }
            }
        }
        {
            let mut zone = self.shared.zone.write();
            drain(&mut zone, &mut svc_rx, &mut slice_rx, usize::MAX);
        }
        let tracker = TaskTracker::new();
        tracker.spawn(watch(
            self.shared.clone(),
            svc_rx,
            slice_rx,
            shutdown.clone(),
        ));
        for _ in 0..UDP_LOOPS {
            tracker.spawn(serve_udp(
                self.udp.clone(),
                self.shared.clone(),
                tracker.clone(),
                shutdown.clone(),
            ));
        }
        tracker.spawn(serve_tcp(
            self.tcp,
            self.shared.clone(),
            tracker.clone(),
            shutdown.clone(),
        ));
        tracing::info!(addr = %self.local, upstreams = ?self.shared.upstreams, "cluster DNS serving");
        shutdown.cancelled().await;
        tracker.close();
        tracker.wait().await;
        Ok(())
    }
}

/// Whether upstream `u` is this server itself (a forwarding loop).
fn is_self(u: SocketAddr, local: SocketAddr) -> bool {
    u == local || (local.ip().is_unspecified() && u.port() == local.port() && u.ip().is_loopback())
}

/// Applies queued informer events, at most `limit` of each kind (so that a burst does not
/// hold the write lock, and the queries waiting on it, for long).
fn drain(
    zone: &mut Zone,
    svc_rx: &mut mpsc::UnboundedReceiver<Event<Service>>,
    slice_rx: &mut mpsc::UnboundedReceiver<Event<EndpointSlice>>,
    limit: usize,
) {
    for _ in 0..limit {
        let Ok(ev) = svc_rx.try_recv() else { break };
        apply_service(zone, ev);
    }
    for _ in 0..limit {
        let Ok(ev) = slice_rx.try_recv() else { break };
        apply_slice(zone, ev);
    }
}

/// Events applied under one write lock while serving.
const EVENT_BATCH: usize = 64;

fn apply_service(zone: &mut Zone, ev: Event<Service>) {
    match ev {
        Event::Added(s) | Event::Updated(_, s) => zone.apply_service(s),
        Event::Deleted(s) => zone.delete_service(&s),
    }
}

fn apply_slice(zone: &mut Zone, ev: Event<EndpointSlice>) {
    match ev {
        Event::Added(s) => zone.apply_slice(None, s),
        Event::Updated(old, s) => zone.apply_slice(Some(&old), s),
        Event::Deleted(s) => zone.delete_slice(&s),
    }
}

/// Keeps the zone current from informer events until `shutdown` (or both informers are gone).
async fn watch(
    shared: Arc<Shared>,
    mut svc_rx: mpsc::UnboundedReceiver<Event<Service>>,
    mut slice_rx: mpsc::UnboundedReceiver<Event<EndpointSlice>>,
    shutdown: CancellationToken,
) {
    let (mut svc_open, mut slice_open) = (true, true);
    while svc_open || slice_open {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = svc_rx.recv(), if svc_open => match ev {
                Some(ev) => {
                    let mut zone = shared.zone.write();
                    apply_service(&mut zone, ev);
                    drain(&mut zone, &mut svc_rx, &mut slice_rx, EVENT_BATCH);
                }
                None => svc_open = false,
            },
            ev = slice_rx.recv(), if slice_open => match ev {
                Some(ev) => {
                    let mut zone = shared.zone.write();
                    apply_slice(&mut zone, ev);
                    drain(&mut zone, &mut svc_rx, &mut slice_rx, EVENT_BATCH);
                }
                None => slice_open = false,
            },
        }
    }
}

/// The first step of answering: either bytes ready to send, or upstream work to do.
enum Step {
    Send(Vec<u8>),
    Nothing,
    Upstream(Box<(Message, Outcome)>),
}

fn first_step(shared: &Shared, bytes: &[u8], limit: Option<usize>) -> Step {
    let req = match answer::parse(bytes) {
        Ok(req) => req,
        Err(Some(id)) => {
            return answer::encode(answer::formerr(id), 512).map_or(Step::Nothing, Step::Send);
        }
        Err(None) => return Step::Nothing,
    };
    let outcome = answer::answer(&shared.zone.read(), &req);
    match outcome {
        Outcome::Reply(m) => {
            let limit = limit.unwrap_or_else(|| answer::udp_limit(&req));
            answer::encode(m, limit).map_or(Step::Nothing, Step::Send)
        }
        other => Step::Upstream(Box::new((req, other))),
    }
}

/// The upstream part: a relayed query, or the resolution of a CNAME target.
async fn upstream_step(
    shared: &Shared,
    bytes: &[u8],
    req: Message,
    outcome: Outcome,
    tcp: bool,
) -> Option<Vec<u8>> {
    let limit = if tcp {
        usize::from(u16::MAX)
    } else {
        answer::udp_limit(&req)
    };
    let servfail =
        |req: &Message| answer::encode(answer::response_to(req, ResponseCode::ServFail), limit);
    let timeout = shared.upstream_timeout;
    match outcome {
        Outcome::Reply(m) => answer::encode(m, limit),
        Outcome::Forward => {
            if shared.upstreams.is_empty() {
                return servfail(&req);
            }
            match forward::relay(bytes, tcp, &shared.upstreams, timeout).await {
                Some(ans) if ans.len() <= limit => Some(ans),
                Some(ans) => match Message::from_vec(&ans) {
                    Ok(m) => m.truncate().to_vec().ok(),
                    Err(_) => servfail(&req),
                },
                None => servfail(&req),
            }
        }
        Outcome::Chase {
            mut response,
            target,
        } => {
            if let Some(records) = chase(shared, &req, target, tcp).await {
                for r in records {
                    response.add_answer(r);
                }
            }
            answer::encode(response, limit)
        }
    }
}

/// Resolves `target` (same type as the question of `req`) upstream; its answer records.
async fn chase(
    shared: &Shared,
    req: &Message,
    target: Name,
    tcp: bool,
) -> Option<Vec<hickory_proto::rr::Record>> {
    if shared.upstreams.is_empty() {
        return None;
    }
    let q = req.query()?;
    let mut m = Message::new();
    m.set_id(rand::random())
        .set_recursion_desired(true)
        .add_query(Query::query(target, q.query_type()));
    let bytes = m.to_vec().ok()?;
    let ans = forward::relay(&bytes, tcp, &shared.upstreams, shared.upstream_timeout).await?;
    let mut ans = Message::from_vec(&ans).ok()?;
    (ans.response_code() == ResponseCode::NoError).then(|| ans.take_answers())
}

/// Serves UDP until `shutdown`: local answers inline, upstream work in tasks.
async fn serve_udp(
    sock: Arc<UdpSocket>,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "cluster DNS: UDP receive failed");
                    continue;
                }
            },
        };
        let bytes = &buf[..n];
        match first_step(&shared, bytes, None) {
            Step::Send(out) => {
                if let Err(e) = sock.send_to(&out, peer).await {
                    tracing::debug!(error = %e, %peer, "cluster DNS: UDP send failed");
                }
            }
            Step::Nothing => {}
            Step::Upstream(work) => {
                let (req, outcome) = *work;
                let Ok(permit) = shared.forwards.clone().try_acquire_owned() else {
                    let fail = answer::response_to(&req, ResponseCode::ServFail);
                    if let Some(out) = answer::encode(fail, 512) {
                        let _ = sock.send_to(&out, peer).await;
                    }
                    continue;
                };
                let (sock, shared, shutdown) = (sock.clone(), shared.clone(), shutdown.clone());
                let bytes = bytes.to_vec();
                tracker.spawn(async move {
                    let _permit = permit;
                    let out = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        out = upstream_step(&shared, &bytes, req, outcome, false) => out,
                    };
                    if let Some(out) = out {
                        let _ = sock.send_to(&out, peer).await;
                    }
                });
            }
        }
    }
}

/// Accepts TCP clients until `shutdown`.
async fn serve_tcp(
    listener: TcpListener,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "cluster DNS: TCP accept failed");
                    // Out of descriptors: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        tracker.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = serve_tcp_conn(stream, &shared) => {}
            }
        });
    }
}

/// Answers the length-prefixed queries of one TCP connection, in order, until EOF, an error
/// or [`TCP_IDLE`] without a query.
async fn serve_tcp_conn(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
            return;
        };
        buf.resize(usize::from(len), 0);
        if tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf))
            .await
            .map_or(true, |r| r.is_err())
        {
            return;
        }
        let out = match first_step(shared, &buf, Some(usize::from(u16::MAX))) {
            Step::Send(out) => Some(out),
            Step::Nothing => None,
            Step::Upstream(work) => {
                let (req, outcome) = *work;
                upstream_step(shared, &buf, req, outcome, true).await
            }
        };
        let Some(out) = out else {
            continue;
        };
        let Ok(n) = u16::try_from(out.len()) else {
            continue;
        };
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&n.to_be_bytes());
        framed.extend_from_slice(&out);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver   127.0.0.53 # stub\n\
                    nameserver fe80::1%eth0\nnameserver fe80::2%3\nnameserver 10.0.0.2\nnameserver bogus\n\
                    options ndots:5\nnameserver 192.0.2.9\nnameserver 192.0.2.10\n";
        let got = upstreams_from_resolv_conf(text);
        assert_eq!(
            got,
            vec![
                "10.0.0.2:53".parse().expect("addr"),
                "127.0.0.53:53".parse().expect("addr"),
                "[fe80::2%3]:53".parse().expect("addr"),
            ]
        );
        assert!(upstreams_from_resolv_conf("").is_empty());
    }

    #[test]
    fn config_defaults() {
        let c = Config::new("127.0.0.1:53".parse().expect("addr"));
        assert_eq!(c.cluster_domain, "cluster.local");
        assert!(c.upstreams.is_empty());
        assert_eq!(c.upstream_timeout, Duration::from_secs(2));
    }

    #[test]
    fn self_is_not_an_upstream() {
        let local: SocketAddr = "0.0.0.0:53".parse().expect("addr");
        assert!(is_self("127.0.0.1:53".parse().expect("addr"), local));
        assert!(!is_self("127.0.0.53:5353".parse().expect("addr"), local));
        let local: SocketAddr = "10.0.0.5:53".parse().expect("addr");
        assert!(is_self(local, local));
        assert!(!is_self("127.0.0.53:53".parse().expect("addr"), local));
    }
}
