//! The DNS server over real sockets on 127.0.0.1, with hand-fed informers and a fake
//! upstream resolver.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use dns::{Config, Server};
use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use informers::Informer;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Running {
    addr: SocketAddr,
    services: Informer<Service>,
    slices: Informer<EndpointSlice>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), dns::Error>>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server stops on shutdown")
            .expect("server task")
            .expect("server result");
    }
}

async fn start_with(config: Config) -> Running {
    let services = Informer::<Service>::new();
    let slices = Informer::<EndpointSlice>::new();
    // An informer fed by hand is "synced" once replaced (as after a first list).
    services.replace(HashMap::new());
    slices.replace(HashMap::new());
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(services.clone(), slices.clone(), shutdown.clone()));
    Running {
        addr,
        services,
        slices,
        shutdown,
        task,
    }
}

async fn start() -> Running {
    start_with(Config::new("127.0.0.1:0".parse().expect("addr"))).await
}

fn service(v: serde_json::Value) -> Service {
    serde_json::from_value(v).expect("service")
}

fn slice(v: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(v).expect("slice")
}

fn cluster_ip(ns: &str, name: &str, ip: &str) -> Service {
    service(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "ports": [
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ]},
    }))
}

fn headless(ns: &str, name: &str, publish_not_ready: bool) -> Service {
    service(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"clusterIP": "None", "clusterIPs": ["None"],
                 "publishNotReadyAddresses": publish_not_ready,
                 "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
    }))
}

/// A slice of `svc` with endpoints `(ip, hostname, ready)`.
fn endpoints(
    ns: &str,
    svc: &str,
    slice_name: &str,
    eps: &[(&str, Option<&str>, bool)],
) -> EndpointSlice {
    slice(json!({
        "metadata": {"namespace": ns, "name": slice_name,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps.iter().map(|(ip, host, ready)| {
            let mut e = json!({"addresses": [ip], "conditions": {"ready": ready}});
            if let Some(h) = host {
                e["hostname"] = json!(h);
            }
            e
        }).collect::<Vec<_>>(),
    }))
}

fn query_bytes(name: &str, t: RecordType, edns: Option<u16>) -> (u16, Vec<u8>) {
    let id = rand::random();
    let mut m = Message::new();
    m.set_id(id)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).expect("name"), t));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    (id, m.to_vec().expect("encode"))
}

async fn udp_raw(addr: SocketAddr, bytes: &[u8]) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    sock.connect(addr).await.expect("connect");
    sock.send(bytes).await.expect("send");
    let mut buf = vec![0u8; 65_535];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
        .await
        .expect("an answer within 5 s")
        .expect("recv");
    assert!(n <= 65_535);
    Message::from_vec(&buf[..n]).expect("decode")
}

async fn udp_sized(
    addr: SocketAddr,
    name: &str,
    t: RecordType,
    edns: Option<u16>,
) -> (Message, usize) {
    let (id, bytes) = query_bytes(name, t, edns);
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    sock.connect(addr).await.expect("connect");
    sock.send(&bytes).await.expect("send");
    let mut buf = vec![0u8; 65_535];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
        .await
        .expect("an answer within 5 s")
        .expect("recv");
    let m = Message::from_vec(&buf[..n]).expect("decode");
    assert_eq!(m.id(), id);
    assert_eq!(m.message_type(), MessageType::Response);
    (m, n)
}

async fn udp(addr: SocketAddr, name: &str, t: RecordType) -> Message {
    udp_sized(addr, name, t, None).await.0
}

async fn tcp(addr: SocketAddr, name: &str, t: RecordType) -> Message {
    let (id, bytes) = query_bytes(name, t, None);
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let len = u16::try_from(bytes.len()).expect("len");
    s.write_all(&len.to_be_bytes()).await.expect("write");
    s.write_all(&bytes).await.expect("write");
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_u16())
        .await
        .expect("an answer within 5 s")
        .expect("read");
    let mut buf = vec![0u8; usize::from(n)];
    s.read_exact(&mut buf).await.expect("read");
    let m = Message::from_vec(&buf).expect("decode");
    assert_eq!(m.id(), id);
    m
}

fn ips(m: &Message) -> BTreeSet<IpAddr> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn set(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|s| s.parse().expect("ip")).collect()
}

fn assert_soa_authority(m: &Message) {
    let [soa] = m.name_servers() else {
        panic!("one SOA in authority: {m}");
    };
    let RData::SOA(s) = soa.data() else {
        panic!("SOA expected: {soa}");
    };
    assert_eq!(soa.name().to_ascii(), "cluster.local.");
    assert_eq!(s.mname().to_ascii(), "ns.dns.cluster.local.");
    assert_eq!(s.rname().to_ascii(), "hostmaster.cluster.local.");
    assert_eq!(s.minimum(), 5);
}

fn assert_nxdomain(m: &Message) {
    assert_eq!(m.response_code(), ResponseCode::NXDomain, "{m}");
    assert!(m.answers().is_empty());
    assert!(m.authoritative());
    assert_soa_authority(m);
}

fn assert_nodata(m: &Message) {
    assert_eq!(m.response_code(), ResponseCode::NoError, "{m}");
    assert!(m.answers().is_empty(), "{m}");
    assert!(m.authoritative());
    assert_soa_authority(m);
}

/// Polls `f` until it returns true (informer events are applied asynchronously).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn cluster_ip_service_a_aaaa_srv_ptr() {
    let r = start().await;
    r.services.apply(cluster_ip("prod", "web", "10.96.0.10"));
    let name = "web.prod.svc.cluster.local.";
    eventually("web A", || async {
        !udp(r.addr, name, RecordType::A).await.answers().is_empty()
    })
    .await;

    let m = udp(r.addr, name, RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.authoritative());
    assert_eq!(ips(&m), set(&["10.96.0.10"]));
    assert_eq!(m.answers()[0].ttl(), 5);

    // Case-insensitive; the answer echoes the question's case.
    let m = udp(r.addr, "WEB.Prod.SVC.cluster.LOCAL.", RecordType::A).await;
    assert_eq!(ips(&m), set(&["10.96.0.10"]));
    assert_eq!(
        m.answers()[0].name().to_ascii(),
        "WEB.Prod.SVC.cluster.LOCAL."
    );

    // IPv4-only name: AAAA is NODATA.
    assert_nodata(&udp(r.addr, name, RecordType::AAAA).await);
    // So is TXT.
    assert_nodata(&udp(r.addr, name, RecordType::TXT).await);

    // SRV for a named port.
    let m = udp(
        r.addr,
        "_http._tcp.web.prod.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    let [srv] = m.answers() else {
        panic!("one SRV: {m}")
    };
    let RData::SRV(s) = srv.data() else {
        panic!("{srv}")
    };
    assert_eq!((s.priority(), s.weight(), s.port()), (0, 100, 80));
    assert_eq!(s.target().to_ascii(), name);
    assert_eq!(
        m.additionals()
            .iter()
            .map(|r| (r.name().to_ascii(), r.data().clone()))
            .collect::<Vec<_>>(),
        vec![(
            name.to_string(),
            RData::A(A("10.96.0.10".parse().expect("ip")))
        )]
    );
    let m = udp(
        r.addr,
        "_dns._udp.web.prod.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    let [srv] = m.answers() else {
        panic!("one SRV: {m}")
    };
    let RData::SRV(s) = srv.data() else {
        panic!("{srv}")
    };
    assert_eq!(s.port(), 53);
    // Wrong protocol: no such name.
    assert_nxdomain(
        &udp(
            r.addr,
            "_http._udp.web.prod.svc.cluster.local.",
            RecordType::SRV,
        )
        .await,
    );
    // `_tcp.<svc>` exists only as a parent of `_http._tcp.<svc>`: NODATA.
    assert_nodata(&udp(r.addr, "_tcp.web.prod.svc.cluster.local.", RecordType::SRV).await);
    // SRV on the Service name: every port, weights split.
    let m = udp(r.addr, name, RecordType::SRV).await;
    let mut ports: Vec<(u16, u16)> = m
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::SRV(s) => Some((s.port(), s.weight())),
            _ => None,
        })
        .collect();
    ports.sort_unstable();
    assert_eq!(ports, vec![(53, 50), (80, 50)]);

    // PTR of the ClusterIP.
    let m = udp(r.addr, "10.0.96.10.in-addr.arpa.", RecordType::PTR).await;
    assert!(m.authoritative());
    let [ptr] = m.answers() else {
        panic!("one PTR: {m}")
    };
    let RData::PTR(p) = ptr.data() else {
        panic!("{ptr}")
    };
    assert_eq!(p.0.to_ascii(), name);
    r.stop().await;
}

#[tokio::test]
async fn headless_service_endpoints_and_updates() {
    let r = start().await;
    r.services.apply(headless("db", "pg", false));
    let s1 = endpoints(
        "db",
        "pg",
        "pg-abc",
        &[
            ("10.1.0.1", Some("pg-0"), true),
            ("10.1.0.2", None, true),
            ("10.1.0.3", Some("pg-2"), false),
        ],
    );
    r.slices.apply(s1);
    r.slices
        .apply(endpoints("db", "pg", "pg-def", &[("10.1.1.1", None, true)]));
    // A slice of another Service must not leak in.
    r.slices.apply(endpoints(
        "db",
        "other",
        "other-1",
        &[("10.9.9.9", None, true)],
    ));
    let name = "pg.db.svc.cluster.local.";
    eventually("pg A", || async {
        ips(&udp(r.addr, name, RecordType::A).await).len() == 3
    })
    .await;
    assert_eq!(
        ips(&udp(r.addr, name, RecordType::A).await),
        set(&["10.1.0.1", "10.1.0.2", "10.1.1.1"])
    );

    // Endpoint names: the hostname, else the dashed address.
    assert_eq!(
        ips(&udp(r.addr, "pg-0.pg.db.svc.cluster.local.", RecordType::A).await),
        set(&["10.1.0.1"])
    );
    assert_eq!(
        ips(&udp(r.addr, "10-1-0-2.pg.db.svc.cluster.local.", RecordType::A).await),
        set(&["10.1.0.2"])
    );
    assert_eq!(
        ips(&udp(r.addr, "10-1-1-1.pg.db.svc.cluster.local.", RecordType::A).await),
        set(&["10.1.1.1"])
    );
    // A not-ready endpoint is not published; with a hostname, the dashed name is not its name.
    assert_nxdomain(&udp(r.addr, "pg-2.pg.db.svc.cluster.local.", RecordType::A).await);
    assert_nxdomain(&udp(r.addr, "10-1-0-1.pg.db.svc.cluster.local.", RecordType::A).await);

    // SRV: one per endpoint, targets the endpoint names, addresses in additional.
    let m = udp(
        r.addr,
        "_http._tcp.pg.db.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    let mut targets: Vec<(String, u16, u16)> = m
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::SRV(s) => Some((s.target().to_ascii(), s.port(), s.weight())),
            _ => None,
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        vec![
            ("10-1-0-2.pg.db.svc.cluster.local.".to_string(), 8080, 33),
            ("10-1-1-1.pg.db.svc.cluster.local.".to_string(), 8080, 33),
            ("pg-0.pg.db.svc.cluster.local.".to_string(), 8080, 33),
        ]
    );
    let extra: BTreeSet<(String, IpAddr)> = m
        .additionals()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some((r.name().to_ascii(), IpAddr::V4(a.0))),
            _ => None,
        })
        .collect();
    assert!(extra.contains(&(
        "pg-0.pg.db.svc.cluster.local.".to_string(),
        "10.1.0.1".parse().expect("ip")
    )));
    assert_eq!(extra.len(), 3, "{m}");

    // PTR for an endpoint with a hostname.
    let m = udp(r.addr, "1.0.1.10.in-addr.arpa.", RecordType::PTR).await;
    let [ptr] = m.answers() else {
        panic!("one PTR: {m}")
    };
    let RData::PTR(p) = ptr.data() else {
        panic!("{ptr}")
    };
    assert_eq!(p.0.to_ascii(), "pg-0.pg.db.svc.cluster.local.");
    // Without a hostname: not the cluster's, forwarded; no upstreams → SERVFAIL.
    assert_eq!(
        udp(r.addr, "2.0.1.10.in-addr.arpa.", RecordType::PTR)
            .await
            .response_code(),
        ResponseCode::ServFail
    );

    // pg-2 becomes ready.
    r.slices.apply(endpoints(
        "db",
        "pg",
        "pg-abc",
        &[
            ("10.1.0.1", Some("pg-0"), true),
            ("10.1.0.2", None, true),
            ("10.1.0.3", Some("pg-2"), true),
        ],
    ));
    eventually("pg-2 ready", || async {
        ips(&udp(r.addr, "pg-2.pg.db.svc.cluster.local.", RecordType::A).await)
            == set(&["10.1.0.3"])
    })
    .await;
    assert_eq!(ips(&udp(r.addr, name, RecordType::A).await).len(), 4);

    // pg-0 becomes not ready; the second slice goes away.
    r.slices.apply(endpoints(
        "db",
        "pg",
        "pg-abc",
        &[
            ("10.1.0.1", Some("pg-0"), false),
            ("10.1.0.2", None, true),
            ("10.1.0.3", Some("pg-2"), true),
        ],
    ));
    r.slices.delete(&endpoints("db", "pg", "pg-def", &[]));
    eventually("pg-0 not ready", || async {
        ips(&udp(r.addr, name, RecordType::A).await) == set(&["10.1.0.2", "10.1.0.3"])
    })
    .await;
    assert_nxdomain(&udp(r.addr, "pg-0.pg.db.svc.cluster.local.", RecordType::A).await);
    assert_nxdomain(&udp(r.addr, "10-1-1-1.pg.db.svc.cluster.local.", RecordType::A).await);

    // publishNotReadyAddresses publishes not-ready endpoints.
    r.services.apply(headless("db", "pg", true));
    eventually("publishNotReadyAddresses", || async {
        ips(&udp(r.addr, name, RecordType::A).await) == set(&["10.1.0.1", "10.1.0.2", "10.1.0.3"])
    })
    .await;

    // The Service is deleted: its names are gone, the namespace with it.
    r.services.delete(&headless("db", "pg", true));
    eventually("pg deleted", || async {
        udp(r.addr, name, RecordType::A).await.response_code() == ResponseCode::NXDomain
    })
    .await;
    assert_nxdomain(&udp(r.addr, "pg-2.pg.db.svc.cluster.local.", RecordType::A).await);
    assert_nxdomain(
        &udp(
            r.addr,
            "_http._tcp.pg.db.svc.cluster.local.",
            RecordType::SRV,
        )
        .await,
    );
    assert_nxdomain(&udp(r.addr, "db.svc.cluster.local.", RecordType::A).await);
    r.stop().await;
}

#[tokio::test]
async fn nxdomain_nodata_zone_records_and_pods() {
    let r = start().await;
    r.services
        .apply(cluster_ip("default", "kubernetes", "10.96.0.1"));
    eventually("kubernetes A", || async {
        !udp(
            r.addr,
            "kubernetes.default.svc.cluster.local.",
            RecordType::A,
        )
        .await
        .answers()
        .is_empty()
    })
    .await;
    assert_nxdomain(&udp(r.addr, "nope.default.svc.cluster.local.", RecordType::A).await);
    assert_nxdomain(
        &udp(
            r.addr,
            "a.b.c.kubernetes.default.svc.cluster.local.",
            RecordType::A,
        )
        .await,
    );
    assert_nxdomain(&udp(r.addr, "whatever.cluster.local.", RecordType::A).await);
    // Existing names without the type, and names that exist as parents: NODATA.
    assert_nodata(&udp(r.addr, "default.svc.cluster.local.", RecordType::A).await);
    assert_nodata(&udp(r.addr, "svc.cluster.local.", RecordType::A).await);
    assert_nodata(&udp(r.addr, "cluster.local.", RecordType::A).await);

    let m = udp(r.addr, "dns-version.cluster.local.", RecordType::TXT).await;
    let [txt] = m.answers() else {
        panic!("one TXT: {m}")
    };
    assert_eq!(txt.data().to_string(), "1.1.0");
    let m = udp(r.addr, "cluster.local.", RecordType::SOA).await;
    assert!(
        matches!(m.answers(), [soa] if matches!(soa.data(), RData::SOA(_))),
        "{m}"
    );
    let m = udp(r.addr, "cluster.local.", RecordType::NS).await;
    assert_eq!(m.answers()[0].data().to_string(), "ns.dns.cluster.local.");

    // Pods (pods insecure).
    let m = udp(
        r.addr,
        "10-244-1-5.any-ns.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(ips(&m), set(&["10.244.1.5"]));
    assert!(m.authoritative());
    let m = udp(
        r.addr,
        "fd00--5.any-ns.pod.cluster.local.",
        RecordType::AAAA,
    )
    .await;
    assert_eq!(ips(&m), set(&["fd00::5"]));
    assert_nodata(
        &udp(
            r.addr,
            "10-244-1-5.any-ns.pod.cluster.local.",
            RecordType::AAAA,
        )
        .await,
    );
    assert_nxdomain(&udp(r.addr, "not-an-ip.any-ns.pod.cluster.local.", RecordType::A).await);
    assert_nxdomain(
        &udp(
            r.addr,
            "10-244-1-300.any-ns.pod.cluster.local.",
            RecordType::A,
        )
        .await,
    );
    assert_nodata(&udp(r.addr, "any-ns.pod.cluster.local.", RecordType::A).await);

    // Deleting the Service makes it NXDOMAIN.
    r.services
        .delete(&cluster_ip("default", "kubernetes", "10.96.0.1"));
    eventually("kubernetes deleted", || async {
        udp(
            r.addr,
            "kubernetes.default.svc.cluster.local.",
            RecordType::A,
        )
        .await
        .response_code()
            == ResponseCode::NXDomain
    })
    .await;
    assert_nxdomain(
        &udp(
            r.addr,
            "kubernetes.default.svc.cluster.local.",
            RecordType::A,
        )
        .await,
    );
    r.stop().await;
}

#[tokio::test]
async fn tcp_queries() {
    let r = start().await;
    r.services.apply(cluster_ip("prod", "web", "10.96.0.10"));
    eventually("web A", || async {
        !tcp(r.addr, "web.prod.svc.cluster.local.", RecordType::A)
            .await
            .answers()
            .is_empty()
    })
    .await;
    assert_eq!(
        ips(&tcp(r.addr, "web.prod.svc.cluster.local.", RecordType::A).await),
        set(&["10.96.0.10"])
    );
    assert_nxdomain(&tcp(r.addr, "nope.prod.svc.cluster.local.", RecordType::A).await);
    assert_eq!(
        tcp(r.addr, "example.com.", RecordType::A)
            .await
            .response_code(),
        ResponseCode::ServFail
    );
    // Several queries on one connection.
    let mut s = TcpStream::connect(r.addr).await.expect("connect");
    for _ in 0..3 {
        let (id, bytes) = query_bytes("web.prod.svc.cluster.local.", RecordType::A, None);
        let len = u16::try_from(bytes.len()).expect("len");
        s.write_all(&len.to_be_bytes()).await.expect("write");
        s.write_all(&bytes).await.expect("write");
        let n = s.read_u16().await.expect("read");
        let mut buf = vec![0u8; usize::from(n)];
        s.read_exact(&mut buf).await.expect("read");
        let m = Message::from_vec(&buf).expect("decode");
        assert_eq!(m.id(), id);
        assert_eq!(ips(&m), set(&["10.96.0.10"]));
    }
    r.stop().await;
}

#[tokio::test]
async fn large_answers_are_truncated_over_udp() {
    let r = start().await;
    r.services.apply(headless("big", "many", false));
    let ips_list: Vec<String> = (1..=100).map(|i| format!("10.2.0.{i}")).collect();
    let eps: Vec<(&str, Option<&str>, bool)> = ips_list
        .iter()
        .map(|ip| (ip.as_str(), None, true))
        .collect();
    r.slices.apply(endpoints("big", "many", "many-1", &eps));
    let name = "many.big.svc.cluster.local.";
    eventually("100 endpoints", || async {
        ips(&tcp(r.addr, name, RecordType::A).await).len() == 100
    })
    .await;

    // 100 A records are ~1,650 bytes: too many for 512.
    let (m, n) = udp_sized(r.addr, name, RecordType::A, None).await;
    assert!(m.truncated(), "{m}");
    assert!(n <= 512);
    assert!(m.answers().is_empty());
    assert_eq!(m.queries().len(), 1);
    // Too many for an EDNS size of 1,232 too.
    let (m, n) = udp_sized(r.addr, name, RecordType::A, Some(1232)).await;
    assert!(m.truncated() && n <= 1232);
    // A 4,096-byte EDNS client gets them all over UDP.
    let (m, n) = udp_sized(r.addr, name, RecordType::A, Some(4096)).await;
    assert!(!m.truncated() && n > 1232);
    assert_eq!(ips(&m).len(), 100);
    assert!(m.extensions().is_some(), "EDNS answered with EDNS");
    // SRV: the additional section goes first; here the answers alone are too big as well.
    let (m, _) = udp_sized(
        r.addr,
        "_http._tcp.many.big.svc.cluster.local.",
        RecordType::SRV,
        None,
    )
    .await;
    assert!(m.truncated());
    // TCP gets everything.
    let m = tcp(
        r.addr,
        "_http._tcp.many.big.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert!(!m.truncated());
    assert_eq!(m.answers().len(), 100);
    assert_eq!(m.additionals().len(), 100);
    r.stop().await;
}

/// A fake upstream resolver on 127.0.0.1 (UDP and TCP on one port): answers A `192.0.2.1`
/// for any name, except `big.example.` which is truncated over UDP and has 3 records over TCP.
/// Counts the queries it received.
struct FakeUpstream {
    addr: SocketAddr,
    queries: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: CancellationToken,
}

fn upstream_answer(bytes: &[u8], over_udp: bool) -> Option<Vec<u8>> {
    let req = Message::from_vec(bytes).ok()?;
    let q = req.query()?.clone();
    let mut m = Message::new();
    m.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_recursion_desired(req.recursion_desired())
        .set_recursion_available(true)
        .add_query(q.clone());
    if q.name().to_ascii() == "big.example." && over_udp {
        m.set_truncated(true);
    } else if q.name().to_ascii() == "big.example." {
        for i in 1..=3 {
            m.add_answer(Record::from_rdata(
                q.name().clone(),
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, i))),
            ));
        }
    } else if q.query_type() == RecordType::A {
        m.add_answer(Record::from_rdata(
            q.name().clone(),
            60,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
    }
    m.to_vec().ok()
}

async fn fake_upstream() -> FakeUpstream {
    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = udp.local_addr().expect("addr");
    let tcp = TcpListener::bind(addr)
        .await
        .expect("bind tcp on the same port");
    let queries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let (q1, s1) = (queries.clone(), stop.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let (n, peer) = tokio::select! {
                _ = s1.cancelled() => return,
                r = udp.recv_from(&mut buf) => r.expect("recv"),
            };
            q1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Some(out) = upstream_answer(&buf[..n], true) {
                let _ = udp.send_to(&out, peer).await;
            }
        }
    });
    let (q2, s2) = (queries.clone(), stop.clone());
    tokio::spawn(async move {
        loop {
            let (mut s, _) = tokio::select! {
                _ = s2.cancelled() => return,
                r = tcp.accept() => r.expect("accept"),
            };
            q2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(n) = s.read_u16().await else { return };
                let mut buf = vec![0u8; usize::from(n)];
                if s.read_exact(&mut buf).await.is_err() {
                    return;
                }
                if let Some(out) = upstream_answer(&buf, false) {
                    let len = u16::try_from(out.len()).expect("len");
                    let _ = s.write_all(&len.to_be_bytes()).await;
                    let _ = s.write_all(&out).await;
                }
            });
        }
    });
    FakeUpstream {
        addr,
        queries,
        stop,
    }
}

/// A UDP port that is bound but never answers.
async fn black_hole() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let a = s.local_addr().expect("addr");
    (s, a)
}

/// A loopback port with nothing bound on it (UDP there gets ICMP port unreachable).
async fn closed_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let a = s.local_addr().expect("addr");
    drop(s);
    a
}

#[tokio::test]
async fn forwards_names_outside_the_zone() {
    let up = fake_upstream().await;
    let (_hole, hole) = black_hole().await;
    let closed = closed_port().await;
    let mut config = Config::new("127.0.0.1:0".parse().expect("addr"));
    // The closed port fails at once, the black hole after the timeout, then the fake answers.
    config.upstreams = vec![closed, hole, up.addr];
    config.upstream_timeout = Duration::from_millis(300);
    let r = start_with(config).await;

    let m = udp(r.addr, "Example.COM.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(!m.authoritative(), "relayed answers are not ours");
    assert_eq!(ips(&m), set(&["192.0.2.1"]));
    assert_eq!(
        m.answers()[0].name().to_ascii(),
        "Example.COM.",
        "the bytes are relayed as is"
    );
    assert_eq!(m.answers()[0].ttl(), 60);

    // TCP clients are relayed over TCP.
    let before = up.queries.load(std::sync::atomic::Ordering::SeqCst);
    let m = tcp(r.addr, "example.org.", RecordType::A).await;
    assert_eq!(ips(&m), set(&["192.0.2.1"]));
    assert_eq!(
        up.queries.load(std::sync::atomic::Ordering::SeqCst),
        before + 1
    );

    // A truncated UDP answer is asked again over TCP.
    let (m, _) = udp_sized(r.addr, "big.example.", RecordType::A, Some(1232)).await;
    assert!(!m.truncated(), "{m}");
    assert_eq!(ips(&m), set(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]));

    // Reverse names the cluster does not define are forwarded.
    let m = udp(r.addr, "9.9.9.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);

    // Names in the zone are never forwarded.
    let before = up.queries.load(std::sync::atomic::Ordering::SeqCst);
    assert_nxdomain(&udp(r.addr, "x.y.svc.cluster.local.", RecordType::A).await);
    assert_eq!(up.queries.load(std::sync::atomic::Ordering::SeqCst), before);

    // ExternalName: a CNAME, and the target resolved upstream for A.
    r.services.apply(service(json!({
        "metadata": {"namespace": "prod", "name": "ext"},
        "spec": {"type": "ExternalName", "externalName": "db.example.net"},
    })));
    let name = "ext.prod.svc.cluster.local.";
    eventually("ext CNAME", || async {
        !udp(r.addr, name, RecordType::CNAME)
            .await
            .answers()
            .is_empty()
    })
    .await;
    let m = udp(r.addr, name, RecordType::CNAME).await;
    assert!(m.authoritative());
    let [cname] = m.answers() else {
        panic!("one CNAME: {m}")
    };
    assert_eq!(cname.data().to_string(), "db.example.net.");
    let m = udp(r.addr, name, RecordType::A).await;
    assert_eq!(m.answers().len(), 2, "{m}");
    assert!(matches!(m.answers()[0].data(), RData::CNAME(_)));
    assert_eq!(m.answers()[1].name().to_ascii(), "db.example.net.");
    assert_eq!(ips(&m), set(&["192.0.2.1"]));
    // An ExternalName pointing into the zone is resolved locally.
    r.services.apply(cluster_ip("prod", "web", "10.96.0.10"));
    r.services.apply(service(json!({
        "metadata": {"namespace": "prod", "name": "alias"},
        "spec": {"type": "ExternalName", "externalName": "web.prod.svc.cluster.local"},
    })));
    eventually("alias", || async {
        ips(&udp(r.addr, "alias.prod.svc.cluster.local.", RecordType::A).await)
            == set(&["10.96.0.10"])
    })
    .await;
    up.stop.cancel();
    r.stop().await;
}

#[tokio::test]
async fn servfail_at_once_without_working_upstreams() {
    // No upstreams.
    let r = start().await;
    let t = Instant::now();
    let m = udp(r.addr, "example.com.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert_eq!(m.queries().len(), 1);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    r.stop().await;

    // An upstream whose port is closed: refused at once, long before the timeout.
    let mut config = Config::new("127.0.0.1:0".parse().expect("addr"));
    config.upstreams = vec![closed_port().await];
    config.upstream_timeout = Duration::from_secs(3);
    let r = start_with(config).await;
    let t = Instant::now();
    let m = udp(r.addr, "example.com.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let m = tcp(r.addr, "example.com.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    r.stop().await;

    // A silent upstream: SERVFAIL after the timeout.
    let (_hole, hole) = black_hole().await;
    let mut config = Config::new("127.0.0.1:0".parse().expect("addr"));
    config.upstreams = vec![hole];
    config.upstream_timeout = Duration::from_millis(200);
    let r = start_with(config).await;
    let t = Instant::now();
    let m = udp(r.addr, "example.com.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert!(t.elapsed() >= Duration::from_millis(200) && t.elapsed() < Duration::from_secs(2));
    r.stop().await;
}

#[tokio::test]
async fn malformed_queries_and_bind_errors() {
    let r = start().await;
    // 12 bytes of header with 1 question but no question: FORMERR with the same ID.
    let m = udp_raw(
        r.addr,
        &[0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff],
    )
    .await;
    assert_eq!(m.id(), 0xabcd);
    assert_eq!(m.response_code(), ResponseCode::FormErr);
    // Still serving.
    assert_nxdomain(&udp(r.addr, "x.y.svc.cluster.local.", RecordType::A).await);

    // The same port again: a bind error, at bind time.
    let err = Server::bind(Config::new(r.addr))
        .await
        .expect_err("port in use");
    assert!(err.to_string().contains("binding DNS"), "{err}");
    let mut bad = Config::new("127.0.0.1:0".parse().expect("addr"));
    bad.cluster_domain = "bad..domain".into();
    assert!(matches!(
        Server::bind(bad).await,
        Err(dns::Error::InvalidDomain(_))
    ));
    r.stop().await;
}

#[tokio::test]
async fn objects_present_before_run_are_served_at_once() {
    let services = Informer::<Service>::new();
    let slices = Informer::<EndpointSlice>::new();
    let mut svcs = HashMap::new();
    svcs.insert(
        "prod/web".to_string(),
        cluster_ip("prod", "web", "10.96.0.10"),
    );
    services.replace(svcs);
    slices.replace(HashMap::new());
    let server = Server::bind(Config::new("127.0.0.1:0".parse().expect("addr")))
        .await
        .expect("bind");
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(services, slices, shutdown.clone()));
    // The very first query sees the listed Service (no polling).
    assert_eq!(
        ips(&udp(addr, "web.prod.svc.cluster.local.", RecordType::A).await),
        set(&["10.96.0.10"])
    );
    shutdown.cancel();
    task.await.expect("task").expect("run");
}
