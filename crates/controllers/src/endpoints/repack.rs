//! Canonical packing of Endpoints subsets (upstream `pkg/api/v1/endpoints.RepackSubsets`):
//! every address is grouped with the exact set of ports it offers, one subset per distinct
//! (addresses, readiness) set, addresses de-duplicated by IP and target UID. A port that is not
//! ready for an address makes the address not ready for it ("not ready trumps ready").
//!
//! Upstream orders ports and subsets by a hash of their content; here they are ordered by
//! their content (port name, number, protocol; first address), which is as canonical.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset};

/// A port as a comparable key; `None` is the sentinel of subsets without ports.
type PortKey = Option<(Option<String>, i32, Option<String>, Option<String>)>;

fn port_key(p: &EndpointPort) -> PortKey {
    Some((
        p.name.clone(),
        p.port,
        p.protocol.clone(),
        p.app_protocol.clone(),
    ))
}

fn port_of(k: &PortKey) -> Option<EndpointPort> {
    k.as_ref().map(|(name, port, protocol, app)| EndpointPort {
        name: name.clone(),
        port: *port,
        protocol: protocol.clone(),
        app_protocol: app.clone(),
    })
}

fn addr_key(a: &EndpointAddress) -> (String, String) {
    (
        a.ip.clone(),
        a.target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default(),
    )
}

/// Upstream `LessEndpointAddress`: by IP, then target UID (an address without target first).
pub fn address_order(a: &EndpointAddress, b: &EndpointAddress) -> std::cmp::Ordering {
    a.ip.as_bytes().cmp(b.ip.as_bytes()).then_with(|| {
        match (
            a.target_ref
                .as_ref()
                .map(|r| r.uid.as_deref().unwrap_or("")),
            b.target_ref
                .as_ref()
                .map(|r| r.uid.as_deref().unwrap_or("")),
        ) {
            (_, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(x), Some(y)) => x.cmp(y),
        }
    })
}

/// Expands the subsets and repacks them canonically (see the module doc).
pub fn repack_subsets(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    // Unique addresses, first occurrence kept.
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut addrs: Vec<EndpointAddress> = Vec::new();
    // Port → (address → ready).
    let mut by_port: BTreeMap<PortKey, BTreeMap<usize, bool>> = BTreeMap::new();
    for ss in subsets {
        let ports: Vec<PortKey> = match ss.ports.as_deref() {
            None | Some([]) => vec![None],
            Some(ps) => ps.iter().map(port_key).collect(),
        };
        let listed = ss
            .addresses
            .iter()
            .flatten()
            .map(|a| (a, true))
            .chain(ss.not_ready_addresses.iter().flatten().map(|a| (a, false)));
        for (addr, ready) in listed {
            let i = *index.entry(addr_key(addr)).or_insert_with(|| {
                addrs.push(addr.clone());
                addrs.len() - 1
            });
            for p in &ports {
                let set = by_port.entry(p.clone()).or_default();
                let was = set.entry(i).or_insert(ready);
                // Not ready trumps ready.
                *was = *was && ready;
            }
        }
    }
    // Address sets (with readiness) → the ports offered by exactly that set.
    let mut groups: BTreeMap<Vec<(usize, bool)>, Vec<PortKey>> = BTreeMap::new();
    for (port, set) in by_port {
        let key: Vec<(usize, bool)> = set.into_iter().collect();
        groups.entry(key).or_default().push(port);
    }
    let mut out: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(set, ports)| {
            let mut ready: Vec<EndpointAddress> = Vec::new();
            let mut not_ready: Vec<EndpointAddress> = Vec::new();
            for (i, r) in set {
                let a = addrs[i].clone();
                if r { ready.push(a) } else { not_ready.push(a) }
            }
            ready.sort_by(address_order);
            not_ready.sort_by(address_order);
            let ports: Vec<EndpointPort> = ports.iter().filter_map(port_of).collect();
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();
    out.sort_by_cached_key(subset_sort_key);
    out
}

type SubsetSortKey = (
    Option<(String, String)>,
    Option<(String, String)>,
    Vec<PortKey>,
);

fn subset_sort_key(s: &EndpointSubset) -> SubsetSortKey {
    (
        s.addresses.iter().flatten().next().map(addr_key),
        s.not_ready_addresses.iter().flatten().next().map(addr_key),
        s.ports.iter().flatten().map(port_key).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;

    fn addr(ip: &str, uid: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.into(),
            target_ref: Some(ObjectReference {
                uid: Some(uid.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn port(name: &str, n: i32) -> EndpointPort {
        EndpointPort {
            name: Some(name.into()),
            port: n,
            protocol: Some("TCP".into()),
            app_protocol: None,
        }
    }

    fn one(a: EndpointAddress, ready: bool, p: Option<EndpointPort>) -> EndpointSubset {
        EndpointSubset {
            addresses: ready.then(|| vec![a.clone()]),
            not_ready_addresses: (!ready).then(|| vec![a]),
            ports: p.map(|p| vec![p]),
        }
    }

    #[test]
    fn groups_addresses_by_their_port_sets() {
        let input = vec![
            one(addr("10.0.0.2", "b"), true, Some(port("http", 80))),
            one(addr("10.0.0.2", "b"), true, Some(port("https", 443))),
            one(addr("10.0.0.1", "a"), true, Some(port("http", 80))),
            one(addr("10.0.0.1", "a"), true, Some(port("https", 443))),
            one(addr("10.0.0.3", "c"), false, Some(port("http", 80))),
            one(addr("10.0.0.3", "c"), false, Some(port("https", 443))),
            // d lacks the https port: a subset of its own.
            one(addr("10.0.0.4", "d"), true, Some(port("http", 80))),
        ];
        let out = repack_subsets(&input);
        // Each port is offered by a different address set (d lacks https): two subsets.
        assert_eq!(out.len(), 2, "{out:?}");
        let ips = |v: &Option<Vec<EndpointAddress>>| -> Vec<String> {
            v.iter().flatten().map(|a| a.ip.clone()).collect()
        };
        let http = out
            .iter()
            .find(|s| s.ports == Some(vec![port("http", 80)]))
            .expect("http subset");
        assert_eq!(ips(&http.addresses), ["10.0.0.1", "10.0.0.2", "10.0.0.4"]);
        assert_eq!(ips(&http.not_ready_addresses), ["10.0.0.3"]);
        let https = out
            .iter()
            .find(|s| s.ports == Some(vec![port("https", 443)]))
            .expect("https subset");
        assert_eq!(ips(&https.addresses), ["10.0.0.1", "10.0.0.2"]);

        // Without d, both ports share one subset.
        let out = repack_subsets(&input[..6]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].ports.as_ref().map(Vec::len), Some(2));
        assert_eq!(ips(&out[0].addresses), ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn not_ready_trumps_ready_and_portless_subsets_survive() {
        let input = vec![
            one(addr("10.0.0.1", "a"), true, Some(port("http", 80))),
            one(addr("10.0.0.1", "a"), false, Some(port("http", 80))),
        ];
        let out = repack_subsets(&input);
        assert_eq!(out.len(), 1);
        assert!(out[0].addresses.is_none());
        assert_eq!(out[0].not_ready_addresses.as_ref().map(Vec::len), Some(1));

        let out = repack_subsets(&[one(addr("10.0.0.9", "z"), true, None)]);
        assert_eq!(out.len(), 1);
        assert!(out[0].ports.is_none());
        assert_eq!(out[0].addresses.as_ref().map(Vec::len), Some(1));
    }
}
