//! The Services every cluster has (upstream `pkg/controlplane/controller/kubernetesservice`
//! with the endpoint reconciler of `pkg/controlplane/reconcilers`, and k3s's `kube-dns`
//! manifest): `default/kubernetes` (first address of the service range, `https` 443 → the API
//! server's port) with its Endpoints and EndpointSlice pointing at the advertise address, and
//! `kube-system/kube-dns` (tenth address, `dns` 53/UDP and `dns-tcp` 53/TCP, no selector: its
//! endpoints are written by the node agents). Reconciled at start and every
//! [`RECONCILE_INTERVAL`], so deleted objects come back. Objects go through the normal write
//! path (defaulting, allocation, validation) as the API server itself.
//!
//! Several servers can share one etcd: each renews its identity Lease
//! `kube-system/apiserver-<hash>` (label `apiserver.kubernetes.io/identity=kube-apiserver`,
//! as upstream's APIServerIdentity) with its address in the annotation
//! [`ADVERTISE_ANNOTATION`], and the `kubernetes` endpoints list every server whose Lease was
//! renewed within [`SERVER_LIVE_FOR`] (upstream's lease endpoint reconciler). Agents learn the
//! servers to fail over between from the same Leases.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::ApiState;
use crate::error::ApiError;
use crate::handlers::write::{self, UpdateOutcome};
use crate::object;
use crate::registry::ResourceInfo;

/// How often the objects are checked (upstream `EndpointInterval`, 10 s).
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(10);
/// The field manager of the API server's own writes.
pub const MANAGER: &str = "kube-apiserver";
/// The label of API server identity Leases (upstream `apiserver.kubernetes.io/identity`).
pub const IDENTITY_LABEL: &str = "apiserver.kubernetes.io/identity";
/// The annotation of an identity Lease holding the server's `address:port`.
pub const ADVERTISE_ANNOTATION: &str = "r8s.io/advertise-address";
/// A server whose identity Lease is older than this is left out of the `kubernetes` endpoints.
pub const SERVER_LIVE_FOR: Duration = Duration::from_secs(25);
/// `discovery.k8s.io/v1` `LabelServiceName`.
const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// `discovery.k8s.io/v1` `LabelSkipMirror`: the mirroring controller leaves these Endpoints alone.
const LABEL_SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";

/// Where the `kubernetes` Service's endpoints point.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The advertise address (`--advertise-address`).
    pub advertise_address: IpAddr,
    /// The port the API server serves HTTPS on.
    pub https_port: u16,
}

/// Reconciles now and every [`RECONCILE_INTERVAL`] until `shutdown`.
pub async fn run(state: Arc<ApiState>, settings: Settings, shutdown: CancellationToken) {
    loop {
        if let Err(e) = reconcile(&state, &settings).await {
            tracing::warn!(error = %e, "reconciling the kubernetes and kube-dns Services failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RECONCILE_INTERVAL) => {}
        }
    }
}

/// The `default/kubernetes` Service (upstream `CreateOrUpdateMasterServiceIfNeeded`).
pub fn kubernetes_service(state: &ApiState, https_port: u16) -> Value {
    let ip = state.service_alloc.cidr().nth(1).to_string();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ipFamilyPolicy": "SingleStack",
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": https_port}],
        },
    })
}

/// The `kube-system/kube-dns` Service (k3s's CoreDNS manifest, without selector).
pub fn kube_dns_service(state: &ApiState) -> Value {
    let ip = state.service_alloc.cidr().nth(10).to_string();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kube-dns",
            "namespace": "kube-system",
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "KubeDNS",
            },
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ],
        },
    })
}

fn https_port_json(s: &Settings) -> Value {
    json!([{"name": "https", "port": s.https_port, "protocol": "TCP"}])
}

/// The `default/kubernetes` Endpoints (upstream endpoint reconciler + `EndpointsAdapter`) for
/// the servers at `addresses` (sorted).
pub fn kubernetes_endpoints(s: &Settings, addresses: &[IpAddr]) -> Value {
    let addresses: Vec<Value> = addresses
        .iter()
        .map(|a| json!({"ip": a.to_string()}))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {LABEL_SKIP_MIRROR: "true"},
        },
        "subsets": [{
            "addresses": addresses,
            "ports": https_port_json(s),
        }],
    })
}

/// The `default/kubernetes` EndpointSlice (upstream `endpointSliceFromEndpoints`).
pub fn kubernetes_endpointslice(s: &Settings, addresses: &[IpAddr]) -> Value {
    let endpoints: Vec<Value> = addresses
        .iter()
        .map(|a| json!({"addresses": [a.to_string()], "conditions": {"ready": true}}))
        .collect();
    let family = if s.advertise_address.is_ipv6() {
        "IPv6"
    } else {
        "IPv4"
    };
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {LABEL_SERVICE_NAME: "kubernetes"},
        },
        "addressType": family,
        "endpoints": endpoints,
        "ports": https_port_json(s),
    })
}

/// One reconciliation pass: creates what is missing, resets the `kubernetes` endpoints when
/// they point elsewhere.
pub async fn reconcile(state: &ApiState, s: &Settings) -> Result<(), ApiError> {
    state.cacher.wait_fresh().await?;
    let reg = state.registry.clone();
    let (Some(svcs), Some(eps), Some(slices), Some(leases)) = (
        reg.get("", "v1", "services"),
        reg.get("", "v1", "endpoints"),
        reg.get("discovery.k8s.io", "v1", "endpointslices"),
        reg.get("coordination.k8s.io", "v1", "leases"),
    ) else {
        return Ok(());
    };
    let mut first_err = None;
    if let Err(e) = ensure(
        state,
        leases,
        identity_lease(s),
        &["spec/renewTime", "metadata/annotations"],
    )
    .await
    {
        first_err.get_or_insert(e);
    }
    // Read the other servers' Leases with this one's renewal in the cache.
    state.cacher.wait_fresh().await?;
    let servers = live_servers(state, leases, s);
    for svc in [
        kubernetes_service(state, s.https_port),
        kube_dns_service(state),
    ] {
        if let Err(e) = ensure(state, svcs, svc, &[]).await {
            first_err.get_or_insert(e);
        }
    }
    let r = ensure(
        state,
        eps,
        kubernetes_endpoints(s, &servers),
        &["subsets", "metadata/labels"],
    )
    .await;
    if let Err(e) = r {
        first_err.get_or_insert(e);
    }
    let r = ensure(
        state,
        slices,
        kubernetes_endpointslice(s, &servers),
        &["addressType", "endpoints", "ports", "metadata/labels"],
    )
    .await;
    if let Err(e) = r {
        first_err.get_or_insert(e);
    }
    first_err.map_or(Ok(()), Err)
}

/// The name of this server's identity Lease: `apiserver-<hash of host name and port>`, stable
/// across restarts.
pub fn identity_name(https_port: u16) -> String {
    use sha2::Digest;
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digest = sha2::Sha256::digest(format!("{host}:{https_port}"));
    format!("apiserver-{}", &hex::encode(digest)[..20])
}

/// This server's identity Lease, renewed now.
pub fn identity_lease(s: &Settings) -> Value {
    let name = identity_name(s.https_port);
    let host = hostname::get()
        .map(|h| h.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": "kube-system",
            "labels": {IDENTITY_LABEL: "kube-apiserver", "kubernetes.io/hostname": host},
            "annotations": {ADVERTISE_ANNOTATION: std::net::SocketAddr::new(s.advertise_address, s.https_port).to_string()},
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": 3600,
            "renewTime": now,
        },
    })
}

/// The addresses of every live server serving on the same port as this one (itself included),
/// sorted.
fn live_servers(state: &ApiState, leases: &ResourceInfo, s: &Settings) -> Vec<IpAddr> {
    let mut out = std::collections::BTreeSet::from([s.advertise_address]);
    let now = chrono::Utc::now();
    let prefix = leases.prefix(Some("kube-system"));
    let (snap, _, _) = state.cacher.list(leases, &prefix, None, 0, &|_| true);
    for o in snap.items {
        let v = o.value();
        if v.pointer(&format!(
            "/metadata/labels/{}",
            IDENTITY_LABEL.replace('/', "~1")
        )) != Some(&json!("kube-apiserver"))
        {
            continue;
        }
        let fresh = v
            .pointer("/spec/renewTime")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| {
                (now - t.with_timezone(&chrono::Utc))
                    .to_std()
                    .is_ok_and(|age| age <= SERVER_LIVE_FOR)
                    || t > now
            });
        let addr = v
            .pointer(&format!(
                "/metadata/annotations/{}",
                ADVERTISE_ANNOTATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
        if let (true, Some(addr)) = (fresh, addr)
            && addr.port() == s.https_port
        {
            out.insert(addr.ip());
        }
    }
    out.into_iter().collect()
}

/// The desired object as the store would hold it (typed round trip and defaults), for
/// comparisons.
fn normalized(r: &ResourceInfo, obj: &Value) -> Value {
    let mut v = match (r.round_trip)(obj) {
        Ok(Some(v)) => v,
        Ok(None) | Err(_) => obj.clone(),
    };
    r.strategy.default_fields(&mut v);
    v
}

fn get_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    v.pointer(&format!("/{path}"))
}

/// Creates `desired` if missing; if it exists and any of `owned` (JSON pointer paths without
/// the leading slash) differs, writes those fields back.
async fn ensure(
    state: &ApiState,
    r: &ResourceInfo,
    desired: Value,
    owned: &[&str],
) -> Result<(), ApiError> {
    let ns = object::meta_str(&desired, "namespace")
        .unwrap_or("")
        .to_string();
    let name = object::name(&desired).to_string();
    let key = r.key(Some(&ns), &name);
    let Some(cur) = state.cacher.get(r, &key) else {
        return match write::create_object(state, r, Some(&ns), desired, Some(MANAGER), false).await
        {
            Ok(_) => {
                tracing::info!(resource = r.resource, %ns, %name, "created");
                Ok(())
            }
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        };
    };
    if owned.is_empty() {
        return Ok(());
    }
    let want = normalized(r, &desired);
    let differs = |cur: &Value| owned.iter().any(|p| get_path(cur, p) != get_path(&want, p));
    if !differs(&cur.value()) {
        return Ok(());
    }
    write::guaranteed_update(state, r, &key, &name, None, false, |cur| {
        let Some(cur) = cur else {
            return Err(ApiError::not_found(r.qualified(), &name));
        };
        if !differs(cur) {
            return Ok(UpdateOutcome::Unchanged);
        }
        let mut new = cur.clone();
        for p in owned {
            let parts: Vec<&str> = p.split('/').collect();
            let mut at = &mut new;
            for part in &parts[..parts.len() - 1] {
                at = &mut at[*part];
            }
            let last = parts[parts.len() - 1];
            match get_path(&want, p) {
                Some(v) => at[last] = v.clone(),
                None => {
                    if let Some(o) = at.as_object_mut() {
                        o.remove(last);
                    }
                }
            }
        }
        Ok(UpdateOutcome::Write(write::prepare_update(
            r, None, new, cur,
        )?))
    })
    .await
    .map(|_| ())
}

/// The IPv4 address of the interface holding the default route (upstream's
/// `--advertise-address` default), read from `/proc/net/route` and `/proc/net/fib_trie`.
pub fn default_route_address() -> Option<IpAddr> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    let trie = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    address_of_default_route(&routes, &trie).map(IpAddr::V4)
}

fn hex_addr(h: &str) -> Option<u32> {
    // The kernel prints the network-order bytes as a native-endian number.
    let v = u32::from_str_radix(h, 16).ok()?;
    Some(u32::from_be_bytes(v.to_ne_bytes()))
}

/// The local address inside one of the subnets routed through the default route's interface.
fn address_of_default_route(routes: &str, fib_trie: &str) -> Option<Ipv4Addr> {
    let rows: Vec<Vec<&str>> = routes
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 7)
        .collect();
    let iface = rows.iter().find(|f| f[1] == "00000000")?[0];
    let subnets: Vec<(u32, u32)> = rows
        .iter()
        .filter(|f| f[0] == iface && f[1] != "00000000")
        .filter_map(|f| Some((hex_addr(f[1])?, hex_addr(f[7])?)))
        .collect();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim();
        if let Some(a) = t.strip_prefix("|-- ") {
            last = a.parse().ok();
        } else if t.starts_with("/32 host LOCAL")
            && let Some(ip) = last
        {
            let v = u32::from(ip);
            if subnets.iter().any(|(net, mask)| v & mask == *net) {
                return Some(ip);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_of_the_default_route_interface() {
        let routes = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            r8s0\t00002A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.42.0.1\n        /32 host LOCAL\n\
            |-- 127.0.0.1\n        /32 host LOCAL\n     |-- 192.0.2.2\n        /32 host LOCAL\n";
        if cfg!(target_endian = "little") {
            assert_eq!(
                address_of_default_route(routes, trie),
                Some(Ipv4Addr::new(192, 0, 2, 2))
            );
        }
        assert_eq!(address_of_default_route("Iface\n", trie), None);
    }
}
