//! What a Service and its EndpointSlices mean for the proxy: for each service port, the
//! addresses it is reached at (frontends) and the endpoints it is spread over (backends), the
//! way kube-proxy's `ServicePortInfo` and `CategorizeEndpoints` see them.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// An IPv4 prefix such as 10.43.0.0/16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// Parses `a.b.c.d/n`; the address is masked to the prefix.
    pub fn parse(text: &str) -> Option<Ipv4Cidr> {
        let (ip, prefix) = text.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Some(Ipv4Cidr {
            addr: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        })
    }

    /// Whether `ip` is inside the prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.addr)
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A transport protocol, spelled as nftables spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    fn parse(p: Option<&str>) -> Option<Proto> {
        match p.unwrap_or("TCP") {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }

    /// The nftables name.
    pub fn nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// Where a service port is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Frontend {
    /// A ClusterIP.
    Cluster(Ipv4Addr, Proto, u16),
    /// An external IP or a load-balancer ingress IP.
    External(Ipv4Addr, Proto, u16),
    /// A NodePort, on every local address.
    NodePort(Proto, u16),
}

impl Frontend {
    fn is_external(&self) -> bool {
        !matches!(self, Frontend::Cluster(..))
    }
}

/// One service port as the proxy programs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    /// The port's name ("" when unnamed).
    pub name: String,
    /// Where it is reached.
    pub frontends: Vec<Frontend>,
    /// Endpoints for traffic from inside the cluster (internalTrafficPolicy applied).
    pub internal: Vec<SocketAddrV4>,
    /// Endpoints for traffic to external frontends (externalTrafficPolicy applied).
    pub external: Vec<SocketAddrV4>,
    /// Whether external traffic is masqueraded (externalTrafficPolicy Cluster).
    pub external_masquerade: bool,
    /// sessionAffinity ClientIP: a client always reaches the same endpoint.
    pub client_ip_affinity: bool,
}

impl PortPlan {
    /// The endpoints a frontend leads to.
    pub fn backends_of(&self, f: &Frontend) -> &[SocketAddrV4] {
        if f.is_external() {
            &self.external
        } else {
            &self.internal
        }
    }
}

/// An endpoint of a slice that serves a port.
struct Candidate {
    addr: SocketAddrV4,
    ready: bool,
    serving: bool,
    terminating: bool,
    local: bool,
}

/// The plans of a Service given its EndpointSlices; empty for headless and ExternalName
/// Services, which the proxy does not handle.
pub fn plan<'a>(
    svc: &Service,
    slices: impl Iterator<Item = &'a EndpointSlice> + Clone,
    node_name: &str,
) -> Vec<PortPlan> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
    if type_ == "ExternalName" {
        return Vec::new();
    }
    let cluster_ips: Vec<Ipv4Addr> = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .filter_map(|s| s.parse().ok())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if cluster_ips.is_empty() {
        // Headless: DNS hands out the endpoints themselves.
        return Vec::new();
    }
    let mut external_ips: BTreeSet<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|s| s.parse().ok())
        .collect();
    if type_ == "LoadBalancer" {
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref());
        external_ips.extend(
            ingress
                .into_iter()
                .flatten()
                .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
    }
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let affinity = spec.session_affinity.as_deref() == Some("ClientIP");
    let mut plans = Vec::new();
    for sp in spec.ports.iter().flatten() {
        let Some(proto) = Proto::parse(sp.protocol.as_deref()) else {
            continue;
        };
        let Ok(port) = u16::try_from(sp.port) else {
            continue;
        };
        let name = sp.name.clone().unwrap_or_default();
        let mut frontends: Vec<Frontend> = cluster_ips
            .iter()
            .map(|ip| Frontend::Cluster(*ip, proto, port))
            .collect();
        frontends.extend(
            external_ips
                .iter()
                .map(|ip| Frontend::External(*ip, proto, port)),
        );
        if matches!(type_, "NodePort" | "LoadBalancer")
            && let Some(np) = sp.node_port.and_then(|n| u16::try_from(n).ok())
            && np != 0
        {
            frontends.push(Frontend::NodePort(proto, np));
        }
        let candidates = candidates(slices.clone(), &name, proto, node_name);
        plans.push(PortPlan {
            name,
            frontends,
            internal: usable(&candidates, internal_local),
            external: usable(&candidates, external_local),
            external_masquerade: !external_local,
            client_ip_affinity: affinity,
        });
    }
    plans
}

/// The endpoints of the slices that serve the port `name`/`proto`, deduplicated.
fn candidates<'a>(
    slices: impl Iterator<Item = &'a EndpointSlice>,
    name: &str,
    proto: Proto,
    node_name: &str,
) -> Vec<Candidate> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == name
                && Proto::parse(p.protocol.as_deref()) == Some(proto)
        }) else {
            continue;
        };
        let Some(port) = port.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for ep in &slice.endpoints {
            let Some(ip) = ep.addresses.first().and_then(|a| a.parse().ok()) else {
                continue;
            };
            let addr = SocketAddrV4::new(ip, port);
            if !seen.insert(addr) {
                continue;
            }
            let c = ep.conditions.as_ref();
            // Upstream: a nil `ready` means ready; nil `serving` follows `ready`.
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let serving = c.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
            out.push(Candidate {
                addr,
                ready,
                serving,
                terminating,
                local: ep.node_name.as_deref() == Some(node_name),
            });
        }
    }
    out.sort_by_key(|c| c.addr);
    out
}

/// Ready endpoints, or, when there are none, the serving-terminating ones (upstream's
/// terminating-endpoint fallback), restricted to this node's for a Local policy.
fn usable(candidates: &[Candidate], local_only: bool) -> Vec<SocketAddrV4> {
    let pool = candidates.iter().filter(|c| !local_only || c.local);
    let ready: Vec<SocketAddrV4> = pool.clone().filter(|c| c.ready).map(|c| c.addr).collect();
    if !ready.is_empty() {
        return ready;
    }
    pool.filter(|c| c.serving && c.terminating)
        .map(|c| c.addr)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }
    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn cidr_parses_and_contains() {
        let c = Ipv4Cidr::parse("10.43.7.9/16").unwrap();
        assert_eq!(c.to_string(), "10.43.0.0/16");
        assert!(c.contains("10.43.255.1".parse().unwrap()));
        assert!(!c.contains("10.44.0.1".parse().unwrap()));
        assert!(Ipv4Cidr::parse("10.0.0.0/33").is_none());
        assert!(
            Ipv4Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains(Ipv4Addr::BROADCAST)
        );
    }

    #[test]
    fn ready_endpoints_by_port_name_with_terminating_fallback() {
        let s = svc(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"],
                     "externalIPs": ["192.0.2.50"],
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                               {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }));
        let a = slice(json!({
            "metadata": {"name": "web-a", "namespace": "default"},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.0.7"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.42.0.8"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.42.0.9"]}
            ]
        }));
        let plans = plan(&s, [&a].into_iter(), "n1");
        assert_eq!(plans.len(), 2);
        let http = &plans[0];
        assert_eq!(
            http.frontends,
            vec![
                Frontend::Cluster("10.43.0.5".parse().unwrap(), Proto::Tcp, 80),
                Frontend::External("192.0.2.50".parse().unwrap(), Proto::Tcp, 80),
                Frontend::NodePort(Proto::Tcp, 30080),
            ]
        );
        assert_eq!(
            http.internal,
            vec![
                "10.42.0.7:8080".parse().unwrap(),
                "10.42.0.9:8080".parse().unwrap()
            ]
        );
        // The UDP port has no slice port: no endpoints.
        assert!(plans[1].internal.is_empty());

        // Only the terminating one left: it is used.
        let b = slice(json!({
            "metadata": {"name": "web-a", "namespace": "default"},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.42.0.8"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.42.0.10"], "conditions": {"ready": false, "serving": false}}
            ]
        }));
        let plans = plan(&s, [&b].into_iter(), "n1");
        assert_eq!(plans[0].internal, vec!["10.42.0.8:8080".parse().unwrap()]);
    }

    #[test]
    fn traffic_policies_and_load_balancer_ingress() {
        let s = svc(json!({
            "metadata": {"name": "lb", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIPs": ["10.43.0.6"],
                     "externalTrafficPolicy": "Local", "sessionAffinity": "ClientIP",
                     "ports": [{"port": 443, "nodePort": 31443}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.2", "ipMode": "VIP"}]}}
        }));
        let sl = slice(json!({
            "metadata": {"name": "lb-x", "namespace": "default"},
            "addressType": "IPv4",
            "ports": [{"port": 8443}],
            "endpoints": [
                {"addresses": ["10.42.0.7"], "nodeName": "n1"},
                {"addresses": ["10.42.1.7"], "nodeName": "n2"}
            ]
        }));
        let p = &plan(&s, [&sl].into_iter(), "n1")[0];
        assert!(p.client_ip_affinity);
        assert!(!p.external_masquerade);
        assert_eq!(p.internal.len(), 2);
        assert_eq!(p.external, vec!["10.42.0.7:8443".parse().unwrap()]);
        assert!(p.frontends.contains(&Frontend::External(
            "192.0.2.2".parse().unwrap(),
            Proto::Tcp,
            443
        )));
    }

    #[test]
    fn headless_and_external_name_are_not_proxied() {
        let h = svc(
            json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]}}),
        );
        assert!(plan(&h, std::iter::empty(), "n1").is_empty());
        let e = svc(
            json!({"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}),
        );
        assert!(plan(&e, std::iter::empty(), "n1").is_empty());
    }
}
