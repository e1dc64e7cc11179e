//! The in-memory zone: every name the cluster defines, keyed by its lower-cased text (no
//! trailing dot), kept current one Service at a time.
//!
//! Each Service (with its EndpointSlices) *owns* the records it defines; when the Service or
//! one of its slices changes, only that Service's records are recomputed: its old records are
//! removed by owner, the new ones inserted. Names that exist only because a longer name exists
//! under them (`<ns>.svc.<zone>`, `_tcp.<svc>.<ns>.svc.<zone>`: empty non-terminals) are kept
//! with a count of their children, so that they answer NODATA rather than NXDOMAIN.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// TTL of every record (CoreDNS's default `ttl 5`).
pub(crate) const TTL: u32 = 5;

/// The label that ties an EndpointSlice to its Service.
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The version of the Kubernetes DNS specification implemented (`dns-version.<zone>` TXT).
pub(crate) const SPEC_VERSION: &str = "1.1.0";

/// The data of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
        /// `target` as an index key, to add its addresses in the additional section.
        target_key: Arc<str>,
    },
    Ptr(Name),
    Cname(Name),
    Txt(&'static str),
}

/// Who defined a record: 0 for the zone's own records, else one per Service key.
type Owner = u32;

const STATIC_OWNER: Owner = 0;

/// One name of the zone.
#[derive(Debug, Default)]
pub(crate) struct Node {
    /// The records of this name with their owners.
    pub(crate) records: Vec<(Owner, Data)>,
    /// Names directly under this one (for empty non-terminals).
    children: u32,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.children == 0
    }
}

/// What the zone keeps of one Service key (`namespace/name`): the Service, its slices, and the
/// names it defined last.
#[derive(Debug, Default)]
struct ServiceEntry {
    owner: Owner,
    service: Option<Arc<Service>>,
    slices: HashMap<String, Arc<EndpointSlice>>,
    names: Vec<String>,
}

/// The cluster zone and the reverse records of the cluster.
#[derive(Debug)]
pub(crate) struct Zone {
    /// Lower-cased zone without trailing dot (`cluster.local`).
    pub(crate) zone: String,
    /// `.<zone>`, for suffix tests.
    dot_zone: String,
    /// The zone as a name (fully qualified).
    pub(crate) origin: Name,
    /// `ns.dns.<zone>.`
    pub(crate) mname: Name,
    /// `hostmaster.<zone>.`
    pub(crate) rname: Name,
    /// SOA serial: the Unix time of the last change (as CoreDNS).
    pub(crate) serial: u32,
    names: HashMap<String, Node>,
    services: HashMap<String, ServiceEntry>,
    next_owner: Owner,
}

/// Lower-cased `name` from labels, without trailing dot; `None` if a label cannot be one of
/// ours (non-ASCII, or containing a dot).
pub(crate) fn key_of(name: &Name) -> Option<String> {
    let mut key = String::with_capacity(name.len());
    for label in name.iter() {
        if label.is_empty() || label.iter().any(|b| !b.is_ascii() || *b == b'.') {
            return None;
        }
        if !key.is_empty() {
            key.push('.');
        }
        key.extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
    }
    Some(key)
}

/// A fully qualified name from a key; the key is made of valid labels by construction.
fn fqdn(key: &str) -> Option<Name> {
    let mut n = Name::from_ascii(key).ok()?;
    n.set_fqdn(true);
    Some(n)
}

/// `d.c.b.a.in-addr.arpa` or the nibble form under `ip6.arpa`.
pub(crate) fn reverse_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0xf, byte >> 4] {
                    s.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
                    s.push('.');
                }
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// CoreDNS's endpoint label: `a-b-c-d` for IPv4, colons replaced by dashes for IPv6.
pub(crate) fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

fn now_serial() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

impl Zone {
    /// An empty zone `zone` (any case, with or without trailing dot); `None` if it is not a
    /// valid domain name.
    pub(crate) fn new(zone: &str) -> Option<Self> {
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        let origin = fqdn(&zone)?;
        let mname = fqdn(&format!("ns.dns.{zone}"))?;
        let rname = fqdn(&format!("hostmaster.{zone}"))?;
        let mut z = Self {
            dot_zone: format!(".{zone}"),
            zone,
            origin,
            mname,
            rname,
            serial: now_serial(),
            names: HashMap::new(),
            services: HashMap::new(),
            next_owner: STATIC_OWNER + 1,
        };
        let version = format!("dns-version.{}", z.zone);
        z.insert(version, STATIC_OWNER, Data::Txt(SPEC_VERSION));
        Some(z)
    }

    /// Whether `key` is the zone or under it.
    pub(crate) fn contains(&self, key: &str) -> bool {
        key == self.zone || key.ends_with(&self.dot_zone)
    }

    /// `key` without `.<zone>`, if under the zone.
    pub(crate) fn relative<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_suffix(&self.dot_zone)
    }

    /// The node of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.names.get(key)
    }

    /// Number of names (for tests and figures).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    fn insert(&mut self, key: String, owner: Owner, data: Data) {
        if let Some(node) = self.names.get_mut(&key) {
            if !node.records.iter().any(|(o, d)| *o == owner && *d == data) {
                node.records.push((owner, data));
            }
            return;
        }
        let parent = self.parent_in_zone(&key).map(str::to_string);
        self.names.insert(
            key,
            Node {
                records: vec![(owner, data)],
                children: 0,
            },
        );
        if let Some(p) = parent {
            self.add_child(p);
        }
    }

    /// The parent of `key` if it is strictly under the zone (empty non-terminals are only
    /// tracked inside the zone, not in the reverse zones).
    fn parent_in_zone<'a>(&self, key: &'a str) -> Option<&'a str> {
        let (_, parent) = key.split_once('.')?;
        (parent != self.zone && parent.ends_with(&self.dot_zone)).then_some(parent)
    }

    fn add_child(&mut self, key: String) {
        let mut key = key;
        loop {
            if let Some(node) = self.names.get_mut(&key) {
                node.children += 1;
                return;
            }
            let parent = self.parent_in_zone(&key).map(str::to_string);
            self.names.insert(
                key,
                Node {
                    records: Vec::new(),
                    children: 1,
                },
            );
            match parent {
                Some(p) => key = p,
                None => return,
            }
        }
    }

    fn remove_owner(&mut self, key: &str, owner: Owner) {
        let Some(node) = self.names.get_mut(key) else {
            return;
        };
        node.records.retain(|(o, _)| *o != owner);
        if !node.is_empty() {
            return;
        }
        self.names.remove(key);
        let mut parent = self.parent_in_zone(key).map(str::to_string);
        while let Some(p) = parent {
            let Some(node) = self.names.get_mut(&p) else {
                return;
            };
            node.children = node.children.saturating_sub(1);
            if !node.is_empty() {
                return;
            }
            self.names.remove(&p);
            parent = self.parent_in_zone(&p).map(str::to_string);
        }
    }

    /// Applies an added or updated Service.
    pub(crate) fn apply_service(&mut self, svc: Arc<Service>) {
        let key = informers::key_of(svc.as_ref());
        self.entry(&key).service = Some(svc);
        self.recompute(&key);
    }

    /// Applies a deleted Service.
    pub(crate) fn delete_service(&mut self, svc: &Service) {
        let key = informers::key_of(svc);
        if let Some(e) = self.services.get_mut(&key) {
            e.service = None;
            self.recompute(&key);
        }
    }

    /// Applies an added or updated EndpointSlice (`old`: its previous state, if any).
    pub(crate) fn apply_slice(&mut self, old: Option<&EndpointSlice>, slice: Arc<EndpointSlice>) {
        let new_key = slice_service_key(&slice);
        if let Some(old) = old
            && let Some(old_key) = slice_service_key(old)
            && Some(&old_key) != new_key.as_ref()
        {
            self.remove_slice(&old_key, old);
        }
        let Some(key) = new_key else {
            return;
        };
        let name = slice.metadata.name.clone().unwrap_or_default();
        let e = self.entry(&key);
        e.slices.insert(name, slice);
        let affects = e.service.as_deref().is_some_and(is_headless);
        if affects {
            self.recompute(&key);
        }
    }

    /// Applies a deleted EndpointSlice.
    pub(crate) fn delete_slice(&mut self, slice: &EndpointSlice) {
        if let Some(key) = slice_service_key(slice) {
            self.remove_slice(&key, slice);
        }
    }

    fn remove_slice(&mut self, key: &str, slice: &EndpointSlice) {
        let name = slice.metadata.name.as_deref().unwrap_or_default();
        let Some(e) = self.services.get_mut(key) else {
            return;
        };
        if e.slices.remove(name).is_none() {
            return;
        }
        if e.service.as_deref().is_some_and(is_headless) {
            self.recompute(key);
        } else if e.service.is_none() && e.slices.is_empty() {
            self.services.remove(key);
        }
    }

    fn entry(&mut self, key: &str) -> &mut ServiceEntry {
        if !self.services.contains_key(key) {
            let owner = self.next_owner;
            self.next_owner = self.next_owner.wrapping_add(1).max(STATIC_OWNER + 1);
            self.services.insert(
                key.to_string(),
                ServiceEntry {
                    owner,
                    ..ServiceEntry::default()
                },
            );
        }
        self.services
            .get_mut(key)
            .expect("the entry was inserted just above")
    }

    /// Replaces the records of Service `key` with those computed from its current state.
    fn recompute(&mut self, key: &str) {
        let Some(e) = self.services.get_mut(key) else {
            return;
        };
        let owner = e.owner;
        let old = std::mem::take(&mut e.names);
        let records = match &e.service {
            Some(svc) => service_records(&self.zone, svc, e.slices.values()),
            None => Vec::new(),
        };
        let drop_entry = e.service.is_none() && e.slices.is_empty();
        for name in &old {
            self.remove_owner(name, owner);
        }
        let mut seen: HashSet<&str> = HashSet::with_capacity(records.len());
        let mut names: Vec<String> = Vec::new();
        for (name, _) in &records {
            if seen.insert(name.as_str()) {
                names.push(name.clone());
            }
        }
        drop(seen);
        for (name, data) in records {
            self.insert(name, owner, data);
        }
        if drop_entry {
            self.services.remove(key);
        } else if let Some(e) = self.services.get_mut(key) {
            e.names = names;
        }
        self.serial = now_serial();
    }
}

/// `namespace/<kubernetes.io/service-name>` of a slice.
fn slice_service_key(slice: &EndpointSlice) -> Option<String> {
    let svc = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    let ns = slice.metadata.namespace.as_deref().unwrap_or_default();
    Some(format!("{ns}/{svc}"))
}

/// Whether a Service is headless (`clusterIP: None`) and not an ExternalName.
pub(crate) fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() != Some("ExternalName") && s.cluster_ip.as_deref() == Some("None")
    })
}

fn add_ip(out: &mut Vec<(String, Data)>, name: &str, ip: IpAddr) {
    out.push((
        name.to_string(),
        match ip {
            IpAddr::V4(v4) => Data::A(v4),
            IpAddr::V6(v6) => Data::Aaaa(v6),
        },
    ));
}

/// One SRV record before weights are known.
struct SrvDraft {
    name: String,
    port: u16,
    target_key: String,
}

/// Appends `drafts` as SRV records: priority 0, weight `100 / n` for the `n` distinct records
/// of each name (as CoreDNS computes it).
fn add_srvs(out: &mut Vec<(String, Data)>, mut drafts: Vec<SrvDraft>) {
    drafts.sort_by(|a, b| (&a.name, &a.target_key, a.port).cmp(&(&b.name, &b.target_key, b.port)));
    drafts.dedup_by(|a, b| a.name == b.name && a.target_key == b.target_key && a.port == b.port);
    let mut counts: HashMap<&str, u16> = HashMap::new();
    for d in &drafts {
        *counts.entry(d.name.as_str()).or_default() += 1;
    }
    let mut targets: HashMap<&str, (Name, Arc<str>)> = HashMap::new();
    let mut records = Vec::with_capacity(drafts.len());
    for d in &drafts {
        let weight = 100 / counts.get(d.name.as_str()).copied().unwrap_or(1).max(1);
        let (target, target_key) = match targets.get(d.target_key.as_str()) {
            Some(t) => t.clone(),
            None => {
                let Some(n) = fqdn(&d.target_key) else {
                    continue;
                };
                let t = (n, Arc::<str>::from(d.target_key.as_str()));
                targets.insert(d.target_key.as_str(), t.clone());
                t
            }
        };
        records.push((
            d.name.clone(),
            Data::Srv {
                priority: 0,
                weight,
                port: d.port,
                target,
                target_key,
            },
        ));
    }
    out.extend(records);
}

fn protocol_label(protocol: Option<&str>) -> String {
    protocol.unwrap_or("TCP").to_ascii_lowercase()
}

/// Every record Service `svc` defines, from the Service and (if headless) its slices.
fn service_records<'a>(
    zone: &str,
    svc: &Service,
    slices: impl Iterator<Item = &'a Arc<EndpointSlice>>,
) -> Vec<(String, Data)> {
    let mut out = Vec::new();
    let (Some(name), Some(spec)) = (svc.metadata.name.as_deref(), svc.spec.as_ref()) else {
        return out;
    };
    let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
    let base = format!("{name}.{ns}.svc.{zone}").to_ascii_lowercase();

    if spec.type_.as_deref() == Some("ExternalName") {
        // As CoreDNS: an ExternalName that is an IP address defines nothing.
        if let Some(ext) = spec.external_name.as_deref()
            && ext.parse::<IpAddr>().is_err()
            && let Ok(mut target) = Name::from_ascii(ext)
        {
            target.set_fqdn(true);
            out.push((base, Data::Cname(target)));
        }
        return out;
    }

    let mut srvs = Vec::new();
    if !is_headless(svc) {
        let ips: Vec<IpAddr> = match spec.cluster_ips.as_deref() {
            Some(ips) if !ips.is_empty() => ips.iter().filter_map(|s| s.parse().ok()).collect(),
            _ => spec
                .cluster_ip
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
        };
        if ips.is_empty() {
            return out;
        }
        let Some(base_name) = fqdn(&base) else {
            return out;
        };
        for ip in &ips {
            add_ip(&mut out, &base, *ip);
            out.push((reverse_key(*ip), Data::Ptr(base_name.clone())));
        }
        for p in spec.ports.iter().flatten() {
            let Ok(port) = u16::try_from(p.port) else {
                continue;
            };
            // An SRV query for the Service name itself matches every port (CoreDNS).
            srvs.push(SrvDraft {
                name: base.clone(),
                port,
                target_key: base.clone(),
            });
            if let Some(pname) = p.name.as_deref().filter(|n| !n.is_empty()) {
                srvs.push(SrvDraft {
                    name: format!(
                        "_{}._{}.{base}",
                        pname.to_ascii_lowercase(),
                        protocol_label(p.protocol.as_deref())
                    ),
                    port,
                    target_key: base.clone(),
                });
            }
        }
        add_srvs(&mut out, srvs);
        return out;
    }

    // Headless: the endpoints.
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut base_ips = BTreeSet::new();
    for slice in slices {
        if slice.address_type == "FQDN" {
            continue;
        }
        let ports: Vec<(Option<String>, u16, String)> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let port = u16::try_from(p.port?).ok()?;
                Some((
                    p.name
                        .as_deref()
                        .filter(|n| !n.is_empty())
                        .map(str::to_ascii_lowercase),
                    port,
                    protocol_label(p.protocol.as_deref()),
                ))
            })
            .collect();
        for ep in &slice.endpoints {
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready && !publish_not_ready {
                continue;
            }
            let hostname = ep
                .hostname
                .as_deref()
                .filter(|h| !h.is_empty())
                .map(str::to_ascii_lowercase);
            for addr in &ep.addresses {
                let Ok(ip) = addr.parse::<IpAddr>() else {
                    continue;
                };
                base_ips.insert(ip);
                let label = hostname.clone().unwrap_or_else(|| dashed(ip));
                let ep_name = format!("{label}.{base}");
                add_ip(&mut out, &ep_name, ip);
                if hostname.is_some()
                    && let Some(n) = fqdn(&ep_name)
                {
                    out.push((reverse_key(ip), Data::Ptr(n)));
                }
                for (pname, port, proto) in &ports {
                    srvs.push(SrvDraft {
                        name: base.clone(),
                        port: *port,
                        target_key: ep_name.clone(),
                    });
                    srvs.push(SrvDraft {
                        name: ep_name.clone(),
                        port: *port,
                        target_key: ep_name.clone(),
                    });
                    if let Some(pname) = pname {
                        srvs.push(SrvDraft {
                            name: format!("_{pname}._{proto}.{base}"),
                            port: *port,
                            target_key: ep_name.clone(),
                        });
                    }
                }
            }
        }
    }
    for ip in base_ips {
        add_ip(&mut out, &base, ip);
    }
    add_srvs(&mut out, srvs);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_keys() {
        assert_eq!(
            reverse_key("10.96.0.10".parse().expect("ip")),
            "10.0.96.10.in-addr.arpa"
        );
        let v6 = reverse_key("2001:db8::1".parse().expect("ip"));
        assert!(v6.starts_with("1.0.0.0.0.0.0.0."), "{v6}");
        assert!(v6.ends_with(".8.b.d.0.1.0.0.2.ip6.arpa"), "{v6}");
        assert_eq!(dashed("10.1.2.3".parse().expect("ip")), "10-1-2-3");
        assert_eq!(dashed("fd00::1".parse().expect("ip")), "fd00--1");
    }

    fn service(ns: &str, name: &str, ip: &str) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"namespace": ns, "name": name},
                "spec": {"clusterIP": ip, "clusterIPs": [ip],
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
            }))
            .expect("service"),
        )
    }

    #[test]
    fn empty_non_terminals_come_and_go_with_their_names() {
        let mut z = Zone::new("Cluster.Local.").expect("zone");
        assert_eq!(z.zone, "cluster.local");
        assert_eq!(z.len(), 1, "dns-version only");
        let a = service("ns1", "a", "10.96.0.1");
        let b = service("ns1", "b", "10.96.0.2");
        z.apply_service(a.clone());
        z.apply_service(b.clone());
        for k in [
            "svc.cluster.local",
            "ns1.svc.cluster.local",
            "_tcp.a.ns1.svc.cluster.local",
        ] {
            let n = z.get(k).expect(k);
            assert!(
                n.records.is_empty() && n.children > 0,
                "{k} is an empty non-terminal"
            );
        }
        assert_eq!(z.get("ns1.svc.cluster.local").map(|n| n.children), Some(2));
        assert!(z.get("1.0.96.10.in-addr.arpa").is_some());
        z.delete_service(&a);
        assert!(z.get("a.ns1.svc.cluster.local").is_none());
        assert!(z.get("_tcp.a.ns1.svc.cluster.local").is_none());
        assert_eq!(z.get("ns1.svc.cluster.local").map(|n| n.children), Some(1));
        z.delete_service(&b);
        assert_eq!(z.len(), 1, "everything but dns-version is gone");
        assert!(z.services.is_empty());
    }

    #[test]
    fn keys_are_lower_case_without_dot() {
        let n = Name::from_ascii("My-Svc.Default.SVC.cluster.local.").expect("name");
        assert_eq!(
            key_of(&n).as_deref(),
            Some("my-svc.default.svc.cluster.local")
        );
    }
}
