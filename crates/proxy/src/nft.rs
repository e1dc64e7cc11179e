//! The nftables side: the table's fixed skeleton, the named sets and maps every Service is an
//! element of, and the scripts that program them through `nft -f -`.
//!
//! Design (measured on this machine's kernel): per-service chains make every commit validate
//! the whole jump graph (~60 ms with 10,000 Services) and anonymous maps make table creation
//! quadratic (30 s), so Services are only *elements* of a handful of named sets and maps:
//!
//! * `ip-n<N>` holds the ClusterIP/external frontends (`ip . proto . port`) with N endpoints;
//!   one rule per N picks `numgen random mod N` (`ip-a<N>`: `jhash ip saddr mod N`, for
//!   sessionAffinity ClientIP) and DNATs through the map `ip-backends`
//!   (`ip . proto . port . index` → `endpoint ip . port`).
//! * `np-n<N>` / `np-a<N>` and `np-backends` do the same for NodePorts (`proto . port` on any
//!   local address).
//! * `cluster-ips`, `external-ips` and `nodeports-masq` select traffic to masquerade (from
//!   outside the cluster CIDR to a ClusterIP; external traffic with externalTrafficPolicy
//!   Cluster); `hairpin` (`ip . ip` per endpoint) masquerades a pod reaching itself.
//! * Traffic to the service CIDR that was not DNATed (no such Service, or no ready endpoint)
//!   is rejected at once in the filter hooks, and so never leaves the node.
//!
//! A change to one Service is a few `add element`/`delete element` commands: one small
//! transaction whatever the size of the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::model::{Frontend, Ipv4Cidr, PortPlan};

/// The packet mark bit that asks for masquerade (kube-proxy's 0x4000).
const MASQ_MARK: &str = "0x4000";

/// A named set or map of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Set {
    /// ClusterIP frontends (masquerade when the source is outside the cluster CIDR).
    ClusterIps,
    /// External frontends to masquerade.
    ExternalIps,
    /// NodePorts to masquerade.
    NodePortsMasq,
    /// `ip . ip` for every endpoint (hairpin).
    Hairpin,
    /// IP frontends → endpoints.
    IpBackends,
    /// NodePorts → endpoints.
    NpBackends,
    /// IP frontends with N endpoints; `true`: chosen by client IP hash.
    IpSel(usize, bool),
    /// NodePorts with N endpoints; `true`: chosen by client IP hash.
    NpSel(usize, bool),
}

impl Set {
    /// The set's name in the table.
    pub fn name(&self) -> String {
        match self {
            Set::ClusterIps => "cluster-ips".into(),
            Set::ExternalIps => "external-ips".into(),
            Set::NodePortsMasq => "nodeports-masq".into(),
            Set::Hairpin => "hairpin".into(),
            Set::IpBackends => "ip-backends".into(),
            Set::NpBackends => "np-backends".into(),
            Set::IpSel(n, hash) => format!("ip-{}{n}", if *hash { 'a' } else { 'n' }),
            Set::NpSel(n, hash) => format!("np-{}{n}", if *hash { 'a' } else { 'n' }),
        }
    }

    /// Whether the set is created with the table (the others appear on first use).
    fn is_fixed(&self) -> bool {
        !matches!(self, Set::IpSel(..) | Set::NpSel(..))
    }

    /// The declaration inside `table ip <name> { ... }`.
    fn declaration(&self) -> String {
        let body = match self {
            Set::ClusterIps | Set::ExternalIps | Set::IpSel(..) => {
                "type ipv4_addr . inet_proto . inet_service;"
            }
            Set::NodePortsMasq | Set::NpSel(..) => "type inet_proto . inet_service;",
            Set::Hairpin => "type ipv4_addr . ipv4_addr;",
            Set::IpBackends => {
                "typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport;"
            }
            Set::NpBackends => {
                "typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport;"
            }
        };
        let kind = if matches!(self, Set::IpBackends | Set::NpBackends) {
            "map"
        } else {
            "set"
        };
        format!("{kind} {} {{ {body} }}", self.name())
    }

    /// The rule of chain `services` that uses a selection set.
    fn rule(&self) -> Option<String> {
        let pick = |n: usize, hash: bool| {
            if hash {
                format!("jhash ip saddr mod {n}")
            } else {
                format!("numgen random mod {n}")
            }
        };
        match *self {
            Set::IpSel(n, hash) => Some(format!(
                "ip daddr . meta l4proto . th dport @{} dnat ip to ip daddr . meta l4proto . th dport . {} map @ip-backends",
                self.name(),
                pick(n, hash)
            )),
            Set::NpSel(n, hash) => Some(format!(
                "fib daddr type local meta l4proto . th dport @{} dnat ip to meta l4proto . th dport . {} map @np-backends",
                self.name(),
                pick(n, hash)
            )),
            _ => None,
        }
    }
}

/// One element of a set or map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    /// The set.
    pub set: Set,
    /// The key, in nft syntax.
    pub key: String,
    /// The value for map elements.
    pub value: Option<String>,
}

fn frontend_key(f: &Frontend) -> String {
    match f {
        Frontend::Cluster(ip, p, port) | Frontend::External(ip, p, port) => {
            format!("{ip} . {} . {port}", p.nft())
        }
        Frontend::NodePort(p, port) => format!("{} . {port}", p.nft()),
    }
}

fn backend_value(b: &SocketAddrV4) -> String {
    format!("{} . {}", b.ip(), b.port())
}

/// The elements of one Service (its plans), without the hairpin ones.
pub fn elements(plans: &[PortPlan]) -> Vec<Element> {
    let mut out = Vec::new();
    for p in plans {
        for f in &p.frontends {
            let backends = p.backends_of(f);
            if backends.is_empty() {
                continue;
            }
            let key = frontend_key(f);
            let n = backends.len();
            let (sel, map) = match f {
                Frontend::NodePort(..) => (Set::NpSel(n, p.client_ip_affinity), Set::NpBackends),
                _ => (Set::IpSel(n, p.client_ip_affinity), Set::IpBackends),
            };
            let masq = match f {
                Frontend::Cluster(..) => Some(Set::ClusterIps),
                Frontend::External(..) if p.external_masquerade => Some(Set::ExternalIps),
                Frontend::NodePort(..) if p.external_masquerade => Some(Set::NodePortsMasq),
                _ => None,
            };
            if let Some(m) = masq {
                out.push(Element {
                    set: m,
                    key: key.clone(),
                    value: None,
                });
            }
            out.push(Element {
                set: sel,
                key: key.clone(),
                value: None,
            });
            for (i, b) in backends.iter().enumerate() {
                out.push(Element {
                    set: map,
                    key: format!("{key} . {i}"),
                    value: Some(backend_value(b)),
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The endpoint IPs of a Service's plans (for the hairpin set).
pub fn endpoint_ips(plans: &[PortPlan]) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = plans
        .iter()
        .flat_map(|p| p.internal.iter().chain(p.external.iter()))
        .map(|b| *b.ip())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// The hairpin element of an endpoint IP.
pub fn hairpin(ip: Ipv4Addr) -> Element {
    Element {
        set: Set::Hairpin,
        key: format!("{ip} . {ip}"),
        value: None,
    }
}

/// How the table is laid out.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Table name (`table ip <name>`).
    pub table: String,
    /// The service CIDR (unanswered traffic to it is rejected).
    pub service_cidr: Ipv4Cidr,
    /// The cluster (pod) CIDR.
    pub cluster_cidr: Ipv4Cidr,
}

impl Layout {
    /// A script that replaces the whole table atomically with one holding `elements` (and the
    /// selection sets in `sets`).
    pub fn full<'a>(
        &self,
        sets: impl Iterator<Item = &'a Set> + Clone,
        elements: impl Iterator<Item = &'a Element>,
    ) -> String {
        let t = &self.table;
        let svc = self.service_cidr;
        let mut s = String::with_capacity(4096);
        // Adding first makes the delete succeed when the table does not exist yet.
        let _ = writeln!(s, "add table ip {t}\ndelete table ip {t}\ntable ip {t} {{");
        for set in sets.clone() {
            let _ = writeln!(s, "  {}", set.declaration());
        }
        let _ = writeln!(s, "  chain services {{");
        let _ = writeln!(
            s,
            "    ip saddr != {} ip daddr . meta l4proto . th dport @cluster-ips meta mark set meta mark | {MASQ_MARK}",
            self.cluster_cidr
        );
        let _ = writeln!(
            s,
            "    ip daddr . meta l4proto . th dport @external-ips meta mark set meta mark | {MASQ_MARK}"
        );
        let _ = writeln!(
            s,
            "    fib daddr type local meta l4proto . th dport @nodeports-masq meta mark set meta mark | {MASQ_MARK}"
        );
        for set in sets {
            if let Some(r) = set.rule() {
                let _ = writeln!(s, "    {r}");
            }
        }
        let _ = writeln!(s, "  }}");
        let _ = writeln!(
            s,
            "  chain nat-prerouting {{ type nat hook prerouting priority dstnat; policy accept; jump services; }}"
        );
        let _ = writeln!(
            s,
            "  chain nat-output {{ type nat hook output priority -100; policy accept; jump services; }}"
        );
        let _ = writeln!(
            s,
            "  chain nat-postrouting {{ type nat hook postrouting priority srcnat; policy accept; meta mark & {MASQ_MARK} == {MASQ_MARK} meta mark set meta mark ^ {MASQ_MARK} masquerade fully-random; ct status dnat ip saddr . ip daddr @hairpin masquerade; }}"
        );
        for hook in ["forward", "output"] {
            let _ = writeln!(
                s,
                "  chain filter-{hook} {{ type filter hook {hook} priority filter; policy accept; ct state new ip daddr {svc} meta l4proto tcp reject with tcp reset; ct state new ip daddr {svc} reject; }}"
            );
        }
        let _ = writeln!(s, "}}");
        let mut by_set: BTreeMap<Set, Vec<&Element>> = BTreeMap::new();
        for e in elements {
            by_set.entry(e.set).or_default().push(e);
        }
        for (set, els) in by_set {
            for chunk in els.chunks(2000) {
                self.element_command(&mut s, "add", set, chunk.iter().copied(), true);
            }
        }
        s
    }

    /// Creates a selection set and its rule.
    pub fn add_set(&self, s: &mut String, set: Set) {
        let t = &self.table;
        let _ = writeln!(
            s,
            "add {}",
            set.declaration().replacen(' ', &format!(" ip {t} "), 1)
        );
        if let Some(r) = set.rule() {
            let _ = writeln!(s, "add rule ip {t} services {r}");
        }
    }

    /// `add element` or `delete element` for elements of one set.
    pub fn element_command<'a>(
        &self,
        s: &mut String,
        verb: &str,
        set: Set,
        els: impl Iterator<Item = &'a Element>,
        with_values: bool,
    ) {
        let _ = write!(s, "{verb} element ip {} {} {{ ", self.table, set.name());
        for (i, e) in els.enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&e.key);
            if with_values && let Some(v) = &e.value {
                s.push_str(" : ");
                s.push_str(v);
            }
        }
        s.push_str(" }\n");
    }

    /// Whether a set is part of the fixed skeleton.
    pub fn is_fixed(set: &Set) -> bool {
        set.is_fixed()
    }

    /// The fixed sets.
    pub fn fixed_sets() -> [Set; 6] {
        [
            Set::ClusterIps,
            Set::ExternalIps,
            Set::NodePortsMasq,
            Set::Hairpin,
            Set::IpBackends,
            Set::NpBackends,
        ]
    }
}

/// Runs `nft -f -` (through `command`, e.g. `["nft"]` or an `ip netns exec` prefix) with
/// `script` on stdin.
pub async fn apply(command: &[String], script: &str) -> Result<(), crate::Error> {
    use tokio::io::AsyncWriteExt;
    let (prog, args) = command
        .split_first()
        .ok_or_else(|| crate::Error::Nft("empty nft command".into()))?;
    let mut child = tokio::process::Command::new(prog)
        .args(args)
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| crate::Error::Nft(format!("running {prog}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| crate::Error::Nft(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| crate::Error::Nft(format!("waiting for nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(crate::Error::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Proto;

    fn plan(affinity: bool, masq: bool) -> PortPlan {
        PortPlan {
            name: "http".into(),
            frontends: vec![
                Frontend::Cluster("10.43.0.5".parse().unwrap(), Proto::Tcp, 80),
                Frontend::NodePort(Proto::Tcp, 30080),
            ],
            internal: vec![
                "10.42.0.7:8080".parse().unwrap(),
                "10.42.0.8:8080".parse().unwrap(),
            ],
            external: vec!["10.42.0.7:8080".parse().unwrap()],
            external_masquerade: masq,
            client_ip_affinity: affinity,
        }
    }

    #[test]
    fn elements_spread_frontends_over_their_backends() {
        let els = elements(&[plan(false, true)]);
        let find = |set: Set| -> Vec<(String, Option<String>)> {
            els.iter()
                .filter(|e| e.set == set)
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect()
        };
        assert_eq!(
            find(Set::ClusterIps),
            vec![("10.43.0.5 . tcp . 80".into(), None)]
        );
        assert_eq!(
            find(Set::IpSel(2, false)),
            vec![("10.43.0.5 . tcp . 80".into(), None)]
        );
        assert_eq!(
            find(Set::IpBackends),
            vec![
                (
                    "10.43.0.5 . tcp . 80 . 0".into(),
                    Some("10.42.0.7 . 8080".into())
                ),
                (
                    "10.43.0.5 . tcp . 80 . 1".into(),
                    Some("10.42.0.8 . 8080".into())
                ),
            ]
        );
        // The NodePort uses the external endpoints (one here).
        assert_eq!(
            find(Set::NpSel(1, false)),
            vec![("tcp . 30080".into(), None)]
        );
        assert_eq!(find(Set::NodePortsMasq), vec![("tcp . 30080".into(), None)]);
        let local = elements(&[plan(true, false)]);
        assert!(local.iter().all(|e| e.set != Set::NodePortsMasq));
        assert!(local.iter().any(|e| e.set == Set::IpSel(2, true)));
    }

    #[test]
    fn full_script_declares_sets_rules_and_elements() {
        let layout = Layout {
            table: "r8s".into(),
            service_cidr: Ipv4Cidr::parse("10.43.0.0/16").unwrap(),
            cluster_cidr: Ipv4Cidr::parse("10.42.0.0/16").unwrap(),
        };
        let els = elements(&[plan(false, true)]);
        let mut sets: Vec<Set> = Layout::fixed_sets().to_vec();
        sets.extend([Set::IpSel(2, false), Set::NpSel(1, false)]);
        let s = layout.full(sets.iter(), els.iter());
        assert!(s.starts_with("add table ip r8s\ndelete table ip r8s\ntable ip r8s {"));
        assert!(s.contains("set ip-n2 { type ipv4_addr . inet_proto . inet_service; }"));
        assert!(s.contains("@ip-n2 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @ip-backends"));
        assert!(s.contains(
            "@np-n1 dnat ip to meta l4proto . th dport . numgen random mod 1 map @np-backends"
        ));
        assert!(s.contains("add element ip r8s ip-backends { 10.43.0.5 . tcp . 80 . 0 : 10.42.0.7 . 8080, 10.43.0.5 . tcp . 80 . 1 : 10.42.0.8 . 8080 }"));
        assert!(s.contains("ct state new ip daddr 10.43.0.0/16 reject"));
        let mut inc = String::new();
        layout.add_set(&mut inc, Set::IpSel(3, true));
        assert_eq!(
            inc,
            "add set ip r8s ip-a3 { type ipv4_addr . inet_proto . inet_service; }\nadd rule ip r8s services ip daddr . meta l4proto . th dport @ip-a3 dnat ip to ip daddr . meta l4proto . th dport . jhash ip saddr mod 3 map @ip-backends\n"
        );
    }
}
