//! ClusterIP and NodePort allocation for Services (upstream
//! `pkg/registry/core/service/storage/alloc.go` over the `ipallocator` and `portallocator`).
//!
//! What is in use is derived from the Services in the watch cache, so it survives restarts
//! without state of its own: the first allocation lists the Services once, later ones only
//! apply the cache's Service events since (a broadcast receiver drained on each allocation),
//! so a create costs O(changes since the last one), not O(Services). Values handed out but not
//! yet visible in the cache are held as reservations until the write is (see
//! [`ServiceAllocator::release`]). Releases need no bookkeeping: a deleted or updated Service
//! frees its values when the cache shows the change.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};
use store::Revision;
use tokio::sync::broadcast;

use crate::cacher::{CacheEvent, Cacher, EventType};
use crate::error::{ApiError, Cause};
use crate::ipalloc::{IpAllocError, ServiceCidr};
use crate::object;
use crate::portalloc::{PortRange, pick_with_offset};
use crate::registry::ResourceInfo;

/// Values allocated for one write, held until the write is visible in the watch cache.
#[derive(Debug, Default)]
pub struct Reservation {
    ips: Vec<Ipv4Addr>,
    ports: Vec<u16>,
}

impl Reservation {
    /// Whether nothing was allocated.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty() && self.ports.is_empty()
    }
}

/// What one stored Service holds.
#[derive(Debug, Default, Clone)]
struct Used {
    ips: Vec<Ipv4Addr>,
    ports: Vec<u16>,
}

#[derive(Deserialize)]
struct SvcLite {
    #[serde(default)]
    spec: Option<SpecLite>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecLite {
    #[serde(default, rename = "clusterIPs")]
    cluster_ips: Option<Vec<String>>,
    #[serde(default)]
    ports: Option<Vec<PortLite>>,
    #[serde(default)]
    health_check_node_port: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PortLite {
    #[serde(default)]
    node_port: Option<i64>,
}

impl Used {
    fn of_raw(raw: &[u8]) -> Used {
        let Ok(svc) = serde_json::from_slice::<SvcLite>(raw) else {
            return Used::default();
        };
        let Some(spec) = svc.spec else {
            return Used::default();
        };
        let ips = spec
            .cluster_ips
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        let mut ports: Vec<u16> = spec
            .ports
            .unwrap_or_default()
            .iter()
            .filter_map(|p| u16::try_from(p.node_port?).ok())
            .filter(|p| *p != 0)
            .collect();
        if let Some(hc) = spec
            .health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
        {
            ports.push(hc);
        }
        ports.sort_unstable();
        ports.dedup();
        Used { ips, ports }
    }
}

#[derive(Default)]
struct Tracker {
    /// Live Service events, and the revision the initial list covered.
    watch: Option<(broadcast::Receiver<Arc<CacheEvent>>, Revision)>,
    by_key: HashMap<String, Used>,
    ips: HashMap<Ipv4Addr, u32>,
    ports: HashMap<u16, u32>,
    reserved_ips: HashSet<Ipv4Addr>,
    reserved_ports: HashSet<u16>,
}

impl Tracker {
    fn ip_used(&self, ip: Ipv4Addr) -> bool {
        self.ips.contains_key(&ip) || self.reserved_ips.contains(&ip)
    }

    fn port_used(&self, p: u16) -> bool {
        self.ports.contains_key(&p) || self.reserved_ports.contains(&p)
    }

    fn set(&mut self, key: &str, used: Option<Used>) {
        if let Some(old) = self.by_key.remove(key) {
            for ip in old.ips {
                if let Some(n) = self.ips.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        self.ips.remove(&ip);
                    }
                }
            }
            for p in old.ports {
                if let Some(n) = self.ports.get_mut(&p) {
                    *n -= 1;
                    if *n == 0 {
                        self.ports.remove(&p);
                    }
                }
            }
        }
        if let Some(u) = used {
            for ip in &u.ips {
                *self.ips.entry(*ip).or_default() += 1;
            }
            for p in &u.ports {
                *self.ports.entry(*p).or_default() += 1;
            }
            self.by_key.insert(key.to_string(), u);
        }
    }

    fn apply(&mut self, ev: &CacheEvent) {
        match ev.type_ {
            EventType::Deleted => self.set(&ev.obj.key, None),
            EventType::Added | EventType::Modified => {
                self.set(&ev.obj.key, Some(Used::of_raw(&ev.obj.raw)));
            }
        }
    }

    /// Brings the in-use sets up to date with the watch cache.
    fn refresh(&mut self, cacher: &Cacher, r: &ResourceInfo) {
        if let Some((rx, skip_until)) = &mut self.watch {
            let skip_until = *skip_until;
            let mut events = Vec::new();
            let mut lost = false;
            loop {
                match rx.try_recv() {
                    Ok(ev) => {
                        if ev.rv > skip_until {
                            events.push(ev);
                        }
                    }
                    Err(broadcast::error::TryRecvError::Empty) => break,
                    Err(_) => {
                        lost = true;
                        break;
                    }
                }
            }
            if !lost {
                for ev in &events {
                    self.apply(ev);
                }
                return;
            }
            tracing::debug!("service allocation fell behind the watch cache; re-listing");
        }
        // First use, or events were lost: rebuild from the cache.
        self.by_key.clear();
        self.ips.clear();
        self.ports.clear();
        match cacher.watch(r, &r.prefix(None), None, &|_| true) {
            Ok(w) => {
                for ev in &w.initial {
                    self.apply(ev);
                }
                self.watch = Some((w.rx, w.skip_until));
            }
            Err(e) => {
                // Cannot happen for a watch from the current state; list instead.
                tracing::warn!(error = %e, "service allocation: watch failed");
                self.watch = None;
                let (snap, _, _) = cacher.list(r, &r.prefix(None), None, 0, &|_| true);
                for o in snap.items {
                    self.set(&o.key, Some(Used::of_raw(&o.raw)));
                }
            }
        }
    }

    fn release(&mut self, res: &Reservation) {
        for ip in &res.ips {
            self.reserved_ips.remove(ip);
        }
        for p in &res.ports {
            self.reserved_ports.remove(p);
        }
    }
}

/// ClusterIP and NodePort allocation for Services.
pub struct ServiceAllocator {
    cidr: ServiceCidr,
    node_ports: PortRange,
    tracker: Mutex<Tracker>,
}

fn spec_str<'a>(svc: &'a Value, f: &str) -> &'a str {
    svc.get("spec")
        .and_then(|s| s.get(f))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn service_type(svc: &Value) -> &str {
    match spec_str(svc, "type") {
        "" => "ClusterIP",
        t => t,
    }
}

/// Upstream `needsClusterIP`.
pub fn needs_cluster_ip(svc: &Value) -> bool {
    service_type(svc) != "ExternalName"
}

/// Upstream `needsNodePort`.
pub fn needs_node_port(svc: &Value) -> bool {
    matches!(service_type(svc), "NodePort" | "LoadBalancer")
}

/// Upstream `shouldAllocateNodePorts`: NodePort, and LoadBalancer unless
/// `allocateLoadBalancerNodePorts` is false.
fn should_allocate_node_ports(svc: &Value) -> bool {
    match service_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc
            .pointer("/spec/allocateLoadBalancerNodePorts")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        _ => false,
    }
}

/// Upstream `apiservice.NeedsHealthCheck`.
pub fn needs_hc_node_port(svc: &Value) -> bool {
    service_type(svc) == "LoadBalancer" && spec_str(svc, "externalTrafficPolicy") == "Local"
}

fn ports_len(svc: &Value) -> usize {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

fn port_field(svc: &Value, i: usize, f: &str) -> i64 {
    svc.pointer(&format!("/spec/ports/{i}/{f}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn set_node_port(svc: &mut Value, i: usize, np: i64) {
    if let Some(p) = svc
        .pointer_mut(&format!("/spec/ports/{i}"))
        .and_then(Value::as_object_mut)
    {
        p.insert("nodePort".into(), json!(np));
    }
}

fn hc_node_port(svc: &Value) -> i64 {
    svc.pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn node_port_invalid(name: &str, i: usize, np: i64, msg: String) -> ApiError {
    crate::ipalloc::invalid_service(
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {np}: {msg}"),
            field: format!("spec.ports[{i}].nodePort"),
        }],
    )
}

impl ServiceAllocator {
    /// An allocator over the service CIDR and the NodePort range.
    pub fn new(cidr: ServiceCidr, node_ports: PortRange) -> ServiceAllocator {
        ServiceAllocator {
            cidr,
            node_ports,
            tracker: Mutex::new(Tracker::default()),
        }
    }

    /// The service CIDR.
    pub fn cidr(&self) -> ServiceCidr {
        self.cidr
    }

    /// The NodePort range.
    pub fn node_port_range(&self) -> PortRange {
        self.node_ports
    }

    /// Drops a reservation (once the write is visible in the watch cache, or failed).
    pub fn release(&self, res: &Reservation) {
        if !res.is_empty() {
            self.tracker.lock().release(res);
        }
    }

    /// Allocates (or checks the requested) ClusterIP, NodePorts and health check NodePort of a
    /// new Service (upstream `allocateCreate`). `r` is the `services` resource.
    pub fn allocate_create(
        &self,
        cacher: &Cacher,
        r: &ResourceInfo,
        svc: &mut Value,
    ) -> Result<Reservation, ApiError> {
        let mut t = self.tracker.lock();
        t.refresh(cacher, r);
        let mut res = Reservation::default();
        let out = self.create_in(&mut t, svc, &mut res);
        if out.is_err() {
            t.release(&res);
        }
        out.map(|()| res)
    }

    /// Allocates what an update needs (upstream `allocateUpdate`): a ClusterIP when the type
    /// changes from ExternalName, NodePorts for ports without one when the Service needs them
    /// (type changed to NodePort/LoadBalancer, ports added) and checks newly requested ones,
    /// the health check NodePort when `externalTrafficPolicy` becomes Local. Values the old
    /// Service held and the new one does not are freed when the cache shows the update.
    pub fn allocate_update(
        &self,
        cacher: &Cacher,
        r: &ResourceInfo,
        new: &mut Value,
        old: &Value,
    ) -> Result<Reservation, ApiError> {
        let mut t = self.tracker.lock();
        t.refresh(cacher, r);
        let mut res = Reservation::default();
        let out = self.update_in(&mut t, new, old, &mut res);
        if out.is_err() {
            t.release(&res);
        }
        out.map(|()| res)
    }

    fn cluster_ip(
        &self,
        t: &mut Tracker,
        svc: &mut Value,
        res: &mut Reservation,
    ) -> Result<(), ApiError> {
        let name = object::name(svc).to_string();
        match crate::ipalloc::allocate_cluster_ip(self.cidr, svc, |ip| t.ip_used(ip)) {
            Ok(Some(ip)) => {
                t.reserved_ips.insert(ip);
                res.ips.push(ip);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(IpAllocError::Invalid(causes)) => {
                Err(crate::ipalloc::invalid_service(&name, causes))
            }
            Err(IpAllocError::Full) => Err(ApiError::internal(
                "failed to allocate a serviceIP: range is full",
            )),
        }
    }

    /// Upstream `PortAllocationOperation.Allocate`: a specific port.
    fn take_port(&self, t: &mut Tracker, port: i64, res: &mut Reservation) -> Result<(), String> {
        if !self.node_ports.contains(port) {
            return Err(format!(
                "provided port is not in the valid range. The range of valid ports is {}",
                self.node_ports
            ));
        }
        let p = u16::try_from(port).map_err(|_| "provided port is not in the valid range")?;
        if t.port_used(p) {
            return Err("provided port is already allocated".into());
        }
        t.reserved_ports.insert(p);
        res.ports.push(p);
        Ok(())
    }

    /// Upstream `PortAllocationOperation.AllocateNext`.
    fn next_port(&self, t: &mut Tracker, res: &mut Reservation) -> Result<i64, ApiError> {
        let range = self.node_ports;
        let i = pick_with_offset(range.size(), range.static_band(), |i| {
            !t.port_used(range.nth(i))
        })
        .ok_or_else(|| ApiError::internal("failed to allocate a nodePort: range is full"))?;
        let p = range.nth(i);
        t.reserved_ports.insert(p);
        res.ports.push(p);
        Ok(i64::from(p))
    }

    fn create_in(
        &self,
        t: &mut Tracker,
        svc: &mut Value,
        res: &mut Reservation,
    ) -> Result<(), ApiError> {
        if needs_cluster_ip(svc) {
            self.cluster_ip(t, svc, res)?;
        }
        let name = object::name(svc).to_string();
        if needs_node_port(svc) {
            // Upstream `initNodePorts`: ports with the same port number (e.g. 53/TCP and
            // 53/UDP) share one NodePort.
            let allocate = should_allocate_node_ports(svc);
            let mut by_port: HashMap<i64, i64> = HashMap::new();
            for i in 0..ports_len(svc) {
                let np = port_field(svc, i, "nodePort");
                if np == 0 && !allocate {
                    continue;
                }
                let port = port_field(svc, i, "port");
                match by_port.get(&port).copied() {
                    None => {
                        let requested = (0..ports_len(svc))
                            .find(|j| {
                                port_field(svc, *j, "port") == port
                                    && port_field(svc, *j, "nodePort") != 0
                            })
                            .map_or(0, |j| port_field(svc, j, "nodePort"));
                        let np = if requested != 0 {
                            self.take_port(t, requested, res)
                                .map_err(|m| node_port_invalid(&name, i, requested, m))?;
                            requested
                        } else {
                            self.next_port(t, res)?
                        };
                        set_node_port(svc, i, np);
                        by_port.insert(port, np);
                    }
                    Some(allocated) if np != allocated => {
                        if np == 0 {
                            set_node_port(svc, i, allocated);
                        } else {
                            self.take_port(t, np, res)
                                .map_err(|m| node_port_invalid(&name, i, np, m))?;
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        if needs_hc_node_port(svc) {
            self.alloc_hc_node_port(t, svc, res)?;
        }
        Ok(())
    }

    /// Upstream `allocHealthCheckNodePort`.
    fn alloc_hc_node_port(
        &self,
        t: &mut Tracker,
        svc: &mut Value,
        res: &mut Reservation,
    ) -> Result<(), ApiError> {
        let hc = hc_node_port(svc);
        if hc != 0 {
            self.take_port(t, hc, res).map_err(|m| {
                ApiError::internal(format!(
                    "failed to allocate requested HealthCheck NodePort {hc}: {m}"
                ))
            })?;
        } else {
            let p = self.next_port(t, res)?;
            svc["spec"]["healthCheckNodePort"] = json!(p);
        }
        Ok(())
    }

    fn update_in(
        &self,
        t: &mut Tracker,
        new: &mut Value,
        old: &Value,
        res: &mut Reservation,
    ) -> Result<(), ApiError> {
        let name = object::name(new).to_string();
        // Upstream `updateClusterIPs` case A: from ExternalName to a type with a ClusterIP.
        if !needs_cluster_ip(old) && needs_cluster_ip(new) {
            self.cluster_ip(t, new, res)?;
        }
        if needs_node_port(new) {
            // Upstream `updateNodePorts`.
            let old_ports: HashSet<i64> = (0..ports_len(old))
                .map(|i| port_field(old, i, "nodePort"))
                .filter(|p| *p != 0)
                .collect();
            let allocate = should_allocate_node_ports(new);
            let mut taken: HashSet<i64> = HashSet::new();
            let mut seen: HashSet<(String, i64)> = HashSet::new();
            for i in 0..ports_len(new) {
                let mut np = port_field(new, i, "nodePort");
                if np == 0 && !allocate {
                    continue;
                }
                if np != 0 {
                    if !old_ports.contains(&np) && !taken.contains(&np) {
                        self.take_port(t, np, res)
                            .map_err(|m| node_port_invalid(&name, i, np, m))?;
                        taken.insert(np);
                    }
                } else {
                    np = self.next_port(t, res)?;
                    set_node_port(new, i, np);
                }
                let proto = new
                    .pointer(&format!("/spec/ports/{i}/protocol"))
                    .and_then(Value::as_str)
                    .unwrap_or("TCP")
                    .to_string();
                if !seen.insert((proto.clone(), np)) {
                    return Err(ApiError::internal(format!(
                        "duplicate nodePort: {{{proto} {np}}}"
                    )));
                }
            }
        }
        // Upstream `updateHealthCheckNodePort`.
        if !needs_hc_node_port(old) && needs_hc_node_port(new) {
            self.alloc_hc_node_port(t, new, res)?;
        }
        Ok(())
    }
}

/// Upstream `dropTypeDependentFields`, `patchAllocatedValues` and `NormalizeClusterIPs` (update
/// half), in the order the Service REST storage runs them: a type change clears the values the
/// old type allocated when the client left them unchanged, and values the client omitted are
/// kept from the stored Service (so applying the same manifest twice changes nothing).
pub fn prepare_service_update(new: &mut Value, old: &Value) {
    drop_type_dependent_fields(new, old);
    patch_allocated_values(new, old);
    normalize_cluster_ips(new, old);
}

fn spec_val<'a>(svc: &'a Value, f: &str) -> Option<&'a Value> {
    svc.get("spec")
        .and_then(|s| s.get(f))
        .filter(|v| !v.is_null())
}

fn str_list(svc: &Value, f: &str) -> Vec<String> {
    spec_val(svc, f)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn remove_spec(svc: &mut Value, f: &str) {
    if let Some(s) = svc.get_mut("spec").and_then(Value::as_object_mut) {
        s.remove(f);
    }
}

fn node_port_set(svc: &Value) -> HashSet<i64> {
    (0..ports_len(svc))
        .map(|i| port_field(svc, i, "nodePort"))
        .filter(|p| *p != 0)
        .collect()
}

fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    if new.get("spec").is_none_or(|s| !s.is_object()) {
        return;
    }
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        if spec_str(old, "clusterIP") == spec_str(new, "clusterIP")
            && str_list(old, "clusterIPs") == str_list(new, "clusterIPs")
        {
            remove_spec(new, "clusterIP");
            remove_spec(new, "clusterIPs");
        }
        if str_list(old, "ipFamilies") == str_list(new, "ipFamilies") {
            remove_spec(new, "ipFamilies");
        }
        if spec_str(old, "ipFamilyPolicy") == spec_str(new, "ipFamilyPolicy") {
            remove_spec(new, "ipFamilyPolicy");
        }
    }
    if needs_node_port(old)
        && !needs_node_port(new)
        && node_port_set(old).is_superset(&node_port_set(new))
    {
        for i in 0..ports_len(new) {
            if let Some(p) = new
                .pointer_mut(&format!("/spec/ports/{i}"))
                .and_then(Value::as_object_mut)
            {
                p.remove("nodePort");
            }
        }
    }
    if needs_hc_node_port(old) && !needs_hc_node_port(new) && hc_node_port(old) == hc_node_port(new)
    {
        remove_spec(new, "healthCheckNodePort");
    }
    if service_type(old) == "LoadBalancer" && service_type(new) != "LoadBalancer" {
        let o = spec_val(old, "allocateLoadBalancerNodePorts").and_then(Value::as_bool);
        let n = spec_val(new, "allocateLoadBalancerNodePorts").and_then(Value::as_bool);
        if o.is_some() && o == n {
            remove_spec(new, "allocateLoadBalancerNodePorts");
        }
        if spec_val(old, "loadBalancerClass") == spec_val(new, "loadBalancerClass") {
            remove_spec(new, "loadBalancerClass");
        }
    }
}

fn patch_allocated_values(new: &mut Value, old: &Value) {
    if new.get("spec").is_none_or(|s| !s.is_object()) {
        return;
    }
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        if spec_str(new, "clusterIP").is_empty()
            && let Some(v) = spec_val(old, "clusterIP").cloned()
        {
            new["spec"]["clusterIP"] = v;
        }
        if str_list(new, "clusterIPs").is_empty()
            && let Some(v) = spec_val(old, "clusterIPs").cloned()
        {
            new["spec"]["clusterIPs"] = v;
        }
    }
    if needs_node_port(old) && needs_node_port(new) {
        // NodePorts by port name: the user may have changed other properties of the port.
        let by_name: HashMap<String, i64> = (0..ports_len(old))
            .map(|i| {
                let name = old
                    .pointer(&format!("/spec/ports/{i}/name"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                (name, port_field(old, i, "nodePort"))
            })
            .collect();
        for i in 0..ports_len(new) {
            if port_field(new, i, "nodePort") != 0 {
                continue;
            }
            let name = new
                .pointer(&format!("/spec/ports/{i}/name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if let Some(np) = by_name.get(name).copied().filter(|p| *p != 0) {
                set_node_port(new, i, np);
            }
        }
    }
    if needs_hc_node_port(old)
        && needs_hc_node_port(new)
        && hc_node_port(new) == 0
        && hc_node_port(old) != 0
    {
        new["spec"]["healthCheckNodePort"] = json!(hc_node_port(old));
    }
}

fn normalize_cluster_ips(new: &mut Value, old: &Value) {
    if new.get("spec").is_none_or(|s| !s.is_object()) {
        return;
    }
    let old_ips = str_list(old, "clusterIPs");
    if !old_ips.is_empty()
        && str_list(new, "clusterIPs").is_empty()
        && spec_str(old, "clusterIP") == spec_str(new, "clusterIP")
    {
        new["spec"]["clusterIPs"] = json!(old_ips);
    }
    let (oc, nc) = (spec_str(old, "clusterIP"), spec_str(new, "clusterIP"));
    if oc != nc {
        let same = old_ips == str_list(new, "clusterIPs");
        if !oc.is_empty() && nc.is_empty() {
            if same {
                remove_spec(new, "clusterIPs");
            }
        } else if same {
            let nc = nc.to_string();
            new["spec"]["clusterIPs"] = json!([nc]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_of_the_same_manifest_keeps_allocated_values() {
        let old = json!({"spec":{"type":"NodePort","clusterIP":"10.43.0.5","clusterIPs":["10.43.0.5"],
            "ports":[{"name":"http","port":80,"nodePort":30080},{"name":"https","port":443,"nodePort":30443}]}});
        let mut new = json!({"spec":{"type":"NodePort","ports":[{"name":"https","port":443},{"name":"http","port":80}]}});
        prepare_service_update(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.43.0.5");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.0.5"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30443);
        assert_eq!(new["spec"]["ports"][1]["nodePort"], 30080);
    }

    #[test]
    fn type_changes_drop_unchanged_dependent_fields() {
        let old = json!({"spec":{"type":"NodePort","clusterIP":"10.43.0.5","clusterIPs":["10.43.0.5"],
            "ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","externalTrafficPolicy":"Cluster",
            "ports":[{"name":"http","port":80,"nodePort":30080}]}});
        let mut to_cluster_ip = old.clone();
        to_cluster_ip["spec"]["type"] = json!("ClusterIP");
        prepare_service_update(&mut to_cluster_ip, &old);
        assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(to_cluster_ip["spec"]["clusterIP"], "10.43.0.5");
        // A changed NodePort is not dropped (validation rejects it).
        let mut changed = old.clone();
        changed["spec"]["type"] = json!("ClusterIP");
        changed["spec"]["ports"][0]["nodePort"] = json!(30081);
        prepare_service_update(&mut changed, &old);
        assert_eq!(changed["spec"]["ports"][0]["nodePort"], 30081);
        let mut to_ext = old.clone();
        to_ext["spec"]["type"] = json!("ExternalName");
        to_ext["spec"]["externalName"] = json!("example.com");
        prepare_service_update(&mut to_ext, &old);
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            assert!(to_ext["spec"].get(f).is_none(), "{f} kept: {to_ext}");
        }
        assert!(to_ext["spec"]["ports"][0].get("nodePort").is_none());
    }

    #[test]
    fn stored_services_are_read_for_their_values() {
        let raw = br#"{"spec":{"clusterIPs":["10.43.0.7"],"healthCheckNodePort":31000,
            "ports":[{"port":53,"nodePort":30053,"protocol":"UDP"},{"port":53,"nodePort":30053}]}}"#;
        let u = Used::of_raw(raw);
        assert_eq!(u.ips, vec!["10.43.0.7".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(u.ports, vec![30053, 31000]);
        let mut t = Tracker::default();
        t.set("a", Some(u.clone()));
        t.set("b", Some(u));
        t.set("a", None);
        assert!(t.port_used(30053));
        t.set("b", None);
        assert!(!t.port_used(30053) && t.ips.is_empty());
    }
}
