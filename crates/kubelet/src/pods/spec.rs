//! Translating a Pod into CRI requests: the sandbox config, container configs, environment,
//! resources and the files the kubelet manages (`/etc/hosts`), as upstream's
//! `kuberuntime_sandbox.go`, `kuberuntime_container.go` and `kubelet_pods.go` do.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::cri::api;

/// CRI label keys (`pkg/kubelet/types/labels.go`).
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// The pod namespace label.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// The pod UID label.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// The container name label.
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Annotation holding a container's restart count.
pub const ANNOTATION_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// Annotation holding the container's termination grace period.
pub const ANNOTATION_GRACE: &str = "io.kubernetes.pod.terminationGracePeriod";

/// Where ConfigMaps and Secrets for environment variables come from.
pub trait Objects: Send + Sync {
    /// A ConfigMap.
    fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>>;
    /// A Secret.
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>>;
}

/// Node-level settings the pod specs depend on.
#[derive(Debug, Clone)]
pub struct NodeContext {
    /// The node name.
    pub node_name: String,
    /// The node IP (`status.hostIP`).
    pub node_ip: IpAddr,
    /// Cluster DNS servers (`--cluster-dns`).
    pub cluster_dns: Vec<IpAddr>,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Root of the container log directories (`/var/log/pods`).
    pub pod_log_dir: PathBuf,
    /// Root of pod directories (`<agent>/pods`).
    pub pods_dir: PathBuf,
    /// Node allocatable CPU in millicores (the default of resourceFieldRef limits).
    pub allocatable_milli_cpu: i64,
    /// Node allocatable memory in bytes.
    pub allocatable_memory: i64,
}

/// The `<ns>_<name>_<uid>` directory name of a pod's logs.
pub fn log_dir(ctx: &NodeContext, pod: &Pod) -> PathBuf {
    ctx.pod_log_dir
        .join(format!("{}_{}_{}", ns_of(pod), name_of(pod), uid_of(pod)))
}

/// The pod's name.
pub fn name_of(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}
/// The pod's namespace.
pub fn ns_of(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}
/// The pod's UID.
pub fn uid_of(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// Whether the pod uses the host's network.
pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The pod's QoS class (`pkg/apis/core/helper/qos`): Guaranteed when every container has equal
/// cpu and memory limits and requests, BestEffort when none has any, else Burstable.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return "BestEffort";
    };
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let r = c.resources.as_ref();
        let req = r.and_then(|r| r.requests.as_ref());
        let lim = r.and_then(|r| r.limits.as_ref());
        for res in ["cpu", "memory"] {
            let rq = req
                .and_then(|m| m.get(res))
                .or(lim.and_then(|m| m.get(res)));
            let lm = lim.and_then(|m| m.get(res));
            if rq.is_some_and(|q| parse_quantity(q).unwrap_or(0.0) != 0.0)
                || lm.is_some_and(|q| parse_quantity(q).unwrap_or(0.0) != 0.0)
            {
                any = true;
            }
            match (rq, lm) {
                (Some(a), Some(b)) if parse_quantity(a) == parse_quantity(b) => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The pod's cgroup parent (cgroupfs driver): `/kubepods/pod<uid>` for Guaranteed pods, else
/// `/kubepods/<qos>/pod<uid>`.
pub fn cgroup_parent(pod: &Pod) -> String {
    let uid = uid_of(pod);
    match qos_class(pod) {
        "Guaranteed" => format!("/kubepods/pod{uid}"),
        "Burstable" => format!("/kubepods/burstable/pod{uid}"),
        _ => format!("/kubepods/besteffort/pod{uid}"),
    }
}

/// Parses a Kubernetes quantity into a float in base units (`100m` → 0.1, `64Mi` → 67108864).
pub fn parse_quantity(q: &Quantity) -> Option<f64> {
    let s = q.0.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    // Exponent forms like 1e3.
    if let Some(exp) = suffix.strip_prefix(['e', 'E']) {
        let n: f64 = num.parse().ok()?;
        let e: i32 = exp.parse().ok()?;
        return Some(n * 10f64.powi(e));
    }
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(n * mult)
}

fn resource(c: &Container, kind: &str, res: &str) -> Option<f64> {
    let r = c.resources.as_ref()?;
    let m = if kind == "limits" {
        r.limits.as_ref()
    } else {
        r.requests.as_ref()
    }?;
    parse_quantity(m.get(res)?)
}

/// CPU shares for a request in millicores (`MilliCPUToShares`: minimum 2).
pub fn milli_cpu_to_shares(milli: i64) -> i64 {
    if milli == 0 {
        return 2;
    }
    (milli * 1024 / 1000).max(2)
}

/// The CRI resources of a container: shares from the CPU request (or limit), CFS quota from the
/// CPU limit, the memory limit, and the QoS-based OOM score (clamped by containerd here).
pub fn container_resources(pod: &Pod, c: &Container) -> api::LinuxContainerResources {
    const PERIOD: i64 = 100_000;
    let cpu_req = resource(c, "requests", "cpu").or_else(|| resource(c, "limits", "cpu"));
    let cpu_lim = resource(c, "limits", "cpu");
    let mem_lim = resource(c, "limits", "memory");
    let shares = milli_cpu_to_shares(cpu_req.map_or(0, |v| (v * 1000.0).round() as i64));
    let quota = cpu_lim.map_or(0, |v| {
        let milli = (v * 1000.0).round() as i64;
        (milli * PERIOD / 1000).max(1000)
    });
    let oom = match qos_class(pod) {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            1000 - (1000 * resource(c, "requests", "memory").unwrap_or(0.0) as i64)
                .checked_div(2 * 1024 * 1024 * 1024)
                .unwrap_or(0)
                .clamp(2, 999)
        }
    };
    api::LinuxContainerResources {
        cpu_period: if quota > 0 { PERIOD } else { 0 },
        cpu_quota: quota,
        cpu_shares: shares,
        memory_limit_in_bytes: mem_lim.map_or(0, |v| v as i64),
        oom_score_adj: oom,
        ..Default::default()
    }
}

/// An error building a container's config (`CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Expands `$(VAR)` references like upstream's `expansion.Expand`: `$$` escapes, unknown
/// references stay as written.
pub fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(end) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + end];
                        match vars.get(name) {
                            Some(v) => out.push_str(v),
                            None => {
                                out.push_str(&input[i..i + 3 + end]);
                            }
                        }
                        i += 3 + end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let ch = input[i..].chars().next().unwrap_or('$');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn field_ref(pod: &Pod, ctx: &NodeContext, pod_ip: Option<IpAddr>, path: &str) -> String {
    let meta = &pod.metadata;
    let sel = |m: &Option<BTreeMap<String, String>>, key: &str| {
        m.as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default()
    };
    if let Some(k) = path
        .strip_prefix("metadata.labels['")
        .and_then(|s| s.strip_suffix("']"))
    {
        return sel(&meta.labels, k);
    }
    if let Some(k) = path
        .strip_prefix("metadata.annotations['")
        .and_then(|s| s.strip_suffix("']"))
    {
        return sel(&meta.annotations, k);
    }
    match path {
        "metadata.name" => name_of(pod).to_string(),
        "metadata.namespace" => ns_of(pod).to_string(),
        "metadata.uid" => uid_of(pod).to_string(),
        "spec.nodeName" => ctx.node_name.clone(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => ctx.node_ip.to_string(),
        "status.podIP" | "status.podIPs" => pod_ip.map(|i| i.to_string()).unwrap_or_default(),
        _ => String::new(),
    }
}

/// The value of a `resourceFieldRef` (limits default to node allocatable), divided by the
/// divisor and rounded up like upstream's `ExtractContainerResourceValue`.
pub fn resource_field(
    c: &Container,
    ctx: &NodeContext,
    resource_name: &str,
    divisor: Option<&Quantity>,
) -> String {
    let (kind, res) = resource_name
        .split_once('.')
        .unwrap_or(("limits", resource_name));
    let value = resource(c, kind, res).or_else(|| match (kind, res) {
        ("limits", "cpu") => Some(ctx.allocatable_milli_cpu as f64 / 1000.0),
        ("limits", "memory") => Some(ctx.allocatable_memory as f64),
        _ => None,
    });
    let value = value.unwrap_or(0.0);
    let div = divisor.and_then(parse_quantity).filter(|d| *d > 0.0);
    let div = div.unwrap_or(1.0);
    let q = value / div;
    format!("{}", q.ceil() as i64)
}

/// The environment of a container, in order, with `$(VAR)` expansion.
pub fn container_env(
    pod: &Pod,
    c: &Container,
    ctx: &NodeContext,
    pod_ip: Option<IpAddr>,
    objects: &dyn Objects,
) -> Result<Vec<api::KeyValue>, ConfigError> {
    let ns = ns_of(pod);
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<String, String> = HashMap::new();
    fn set(
        vars: &mut Vec<(String, String)>,
        index: &mut HashMap<String, String>,
        k: String,
        v: String,
    ) {
        index.insert(k.clone(), v.clone());
        if let Some(slot) = vars.iter_mut().find(|(n, _)| *n == k) {
            slot.1 = v;
        } else {
            vars.push((k, v));
        }
    }
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            let optional = r.optional.unwrap_or(false);
            match objects.config_map(ns, &r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        set(&mut vars, &mut index, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if optional => {}
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            let optional = r.optional.unwrap_or(false);
            match objects.secret(ns, &r.name) {
                Some(s) => {
                    for (k, v) in s.data.iter().flatten() {
                        set(
                            &mut vars,
                            &mut index,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        );
                    }
                }
                None if optional => {}
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field_ref(pod, ctx, pod_ip, &f.field_path)
            } else if let Some(r) = &from.resource_field_ref {
                let target = r
                    .container_name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .and_then(|n| {
                        pod.spec
                            .as_ref()
                            .and_then(|s| s.containers.iter().find(|c| c.name == n))
                    })
                    .unwrap_or(c);
                resource_field(target, ctx, &r.resource, r.divisor.as_ref())
            } else if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional.unwrap_or(false);
                match objects.config_map(ns, &r.name) {
                    Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                r.key, r.name
                            )));
                        }
                    },
                    None if optional => continue,
                    None => {
                        return Err(ConfigError(format!("configmap \"{}\" not found", r.name)));
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional.unwrap_or(false);
                match objects.secret(ns, &r.name) {
                    Some(s) => match s.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                r.key, r.name
                            )));
                        }
                    },
                    None if optional => continue,
                    None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
                }
            } else {
                String::new()
            }
        } else {
            expand(e.value.as_deref().unwrap_or(""), &index)
        };
        set(&mut vars, &mut index, e.name.clone(), value);
    }
    Ok(vars
        .into_iter()
        .map(|(key, value)| api::KeyValue { key, value })
        .collect())
}

/// The pod's `/etc/hosts` (`managedHostsFileContent`).
pub fn hosts_file(pod: &Pod, pod_ip: Option<IpAddr>) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let spec = pod.spec.as_ref();
    if let Some(ip) = pod_ip {
        let hostname = spec
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| name_of(pod).to_string());
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            s.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.clone().unwrap_or_default().join("\t")
            ));
        }
    }
    s
}

/// The sandbox's DNS config (`pkg/kubelet/network/dns`): ClusterFirst (the default) uses the
/// cluster DNS and the `<ns>.svc.<domain>` search path with ndots:5; Default uses the host's
/// resolv.conf; None uses only `dnsConfig`.
pub fn dns_config(pod: &Pod, ctx: &NodeContext, host_resolv: &str) -> api::DnsConfig {
    let spec = pod.spec.as_ref();
    let mut policy = spec
        .and_then(|s| s.dns_policy.clone())
        .unwrap_or_else(|| "ClusterFirst".to_string());
    if policy == "ClusterFirst" && host_network(pod) {
        policy = "Default".to_string();
    }
    if policy == "ClusterFirstWithHostNet" {
        policy = "ClusterFirst".to_string();
    }
    let (host_servers, host_searches) = parse_resolv(host_resolv);
    let mut cfg = match policy.as_str() {
        "ClusterFirst" if !ctx.cluster_dns.is_empty() => {
            let d = &ctx.cluster_domain;
            let mut searches = vec![
                format!("{}.svc.{d}", ns_of(pod)),
                format!("svc.{d}"),
                d.clone(),
            ];
            searches.extend(host_searches);
            api::DnsConfig {
                servers: ctx.cluster_dns.iter().map(|i| i.to_string()).collect(),
                searches,
                options: vec!["ndots:5".to_string()],
            }
        }
        "None" => api::DnsConfig::default(),
        _ => api::DnsConfig {
            servers: host_servers,
            searches: host_searches,
            options: Vec::new(),
        },
    };
    if let Some(extra) = spec.and_then(|s| s.dns_config.as_ref()) {
        for s in extra.nameservers.iter().flatten() {
            if !cfg.servers.contains(s) {
                cfg.servers.push(s.clone());
            }
        }
        for s in extra.searches.iter().flatten() {
            if !cfg.searches.contains(s) {
                cfg.searches.push(s.clone());
            }
        }
        for o in extra.options.iter().flatten() {
            let opt = match &o.value {
                Some(v) => format!("{}:{v}", o.name.clone().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let key = opt.split(':').next().unwrap_or("").to_string();
            cfg.options
                .retain(|x| x.split(':').next().unwrap_or("") != key);
            cfg.options.push(opt);
        }
    }
    cfg.searches.truncate(32);
    cfg
}

fn parse_resolv(content: &str) -> (Vec<String>, Vec<String>) {
    let mut servers = Vec::new();
    let mut searches = Vec::new();
    for line in content.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => servers.extend(f.next().map(str::to_string)),
            Some("search") => searches = f.map(str::to_string).collect(),
            _ => {}
        }
    }
    (servers, searches)
}

/// Whether `image` is a valid reference (`docker/distribution/reference` grammar): lowercase
/// path components, an optional registry host with port, an optional tag and digest.
pub fn valid_image_ref(image: &str) -> bool {
    if image.is_empty() || image.len() > 4096 {
        return false;
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let Some((alg, hex)) = d.split_once(':') else {
            return false;
        };
        if alg.is_empty() || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return false;
        }
    }
    // The tag is after the last ':' that follows the last '/'.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return false;
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let host_ok = first.split(':').next().is_some_and(|h| {
                !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            }) && first
                .split_once(':')
                .is_none_or(|(_, p)| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
            if !host_ok {
                return false;
            }
            parts.remove(0);
        }
    }
    !parts.is_empty()
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && p.chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        })
}

/// The pod's directory (`<pods_dir>/<uid>`).
pub fn pod_dir(ctx: &NodeContext, uid: &str) -> PathBuf {
    ctx.pods_dir.join(uid)
}

/// The port mappings of the sandbox (containers' hostPorts).
pub fn port_mappings(pod: &Pod) -> Vec<api::PortMapping> {
    let mut out = Vec::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.filter(|h| *h > 0) else {
                continue;
            };
            let protocol = match p.protocol.as_deref() {
                Some("UDP") => api::Protocol::Udp,
                Some("SCTP") => api::Protocol::Sctp,
                _ => api::Protocol::Tcp,
            };
            out.push(api::PortMapping {
                protocol: protocol as i32,
                container_port: p.container_port,
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    out
}

/// The namespace options of a pod's sandbox and containers.
pub fn namespace_options(pod: &Pod) -> api::NamespaceOption {
    let spec = pod.spec.as_ref();
    let mode = |host: bool| {
        if host {
            api::NamespaceMode::Node as i32
        } else {
            api::NamespaceMode::Pod as i32
        }
    };
    let share_pid = spec
        .and_then(|s| s.share_process_namespace)
        .unwrap_or(false);
    api::NamespaceOption {
        network: mode(host_network(pod)),
        pid: if spec.and_then(|s| s.host_pid).unwrap_or(false) {
            api::NamespaceMode::Node as i32
        } else if share_pid {
            api::NamespaceMode::Pod as i32
        } else {
            api::NamespaceMode::Container as i32
        },
        ipc: mode(spec.and_then(|s| s.host_ipc).unwrap_or(false)),
        ..Default::default()
    }
}

/// The RunPodSandbox config.
pub fn sandbox_config(
    pod: &Pod,
    ctx: &NodeContext,
    attempt: u32,
    host_resolv: &str,
) -> api::PodSandboxConfig {
    let spec = pod.spec.as_ref();
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(LABEL_POD_NAME.into(), name_of(pod).into());
    labels.insert(LABEL_POD_NAMESPACE.into(), ns_of(pod).into());
    labels.insert(LABEL_POD_UID.into(), uid_of(pod).into());
    let annotations: HashMap<String, String> = pod
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let hostname = if host_network(pod) {
        String::new()
    } else {
        let mut h = spec
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| name_of(pod).to_string());
        h.truncate(63);
        h.trim_end_matches(['-', '.']).to_string()
    };
    let sec = spec.and_then(|s| s.security_context.as_ref());
    let sysctls: HashMap<String, String> = sec
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name_of(pod).into(),
            uid: uid_of(pod).into(),
            namespace: ns_of(pod).into(),
            attempt,
        }),
        hostname,
        log_directory: log_dir(ctx, pod).display().to_string(),
        dns_config: Some(dns_config(pod, ctx, host_resolv)),
        port_mappings: port_mappings(pod),
        labels,
        annotations,
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(pod),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                run_as_user: sec
                    .and_then(|s| s.run_as_user)
                    .map(|value| api::Int64Value { value }),
                run_as_group: sec
                    .and_then(|s| s.run_as_group)
                    .map(|value| api::Int64Value { value }),
                supplemental_groups: sec
                    .and_then(|s| s.supplemental_groups.clone())
                    .unwrap_or_default(),
                privileged: spec.is_some_and(|s| {
                    s.containers.iter().any(|c| {
                        c.security_context
                            .as_ref()
                            .and_then(|s| s.privileged)
                            .unwrap_or(false)
                    })
                }),
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Everything CreateContainer needs besides the pod.
pub struct ContainerParams<'a> {
    /// The container's restart count (CRI attempt).
    pub attempt: u32,
    /// Its environment.
    pub envs: Vec<api::KeyValue>,
    /// Its mounts.
    pub mounts: Vec<api::Mount>,
    /// The resolved image reference to run (ImageStatus id or the spec image).
    pub image: &'a str,
}

/// The CreateContainer config.
pub fn container_config(pod: &Pod, c: &Container, p: ContainerParams<'_>) -> api::ContainerConfig {
    let mut labels = HashMap::new();
    labels.insert(LABEL_POD_NAME.to_string(), name_of(pod).to_string());
    labels.insert(LABEL_POD_NAMESPACE.to_string(), ns_of(pod).to_string());
    labels.insert(LABEL_POD_UID.to_string(), uid_of(pod).to_string());
    labels.insert(LABEL_CONTAINER_NAME.to_string(), c.name.clone());
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    let annotations = HashMap::from([
        (ANNOTATION_RESTART_COUNT.to_string(), p.attempt.to_string()),
        (ANNOTATION_GRACE.to_string(), grace.to_string()),
        (
            "io.kubernetes.container.terminationMessagePath".to_string(),
            c.termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".to_string()),
        ),
    ]);
    let sc = c.security_context.as_ref();
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let cap_list = |v: Option<&Vec<String>>| -> Vec<String> {
        v.into_iter()
            .flatten()
            .map(|c| {
                if c.starts_with("CAP_") || c == "ALL" {
                    c.clone()
                } else {
                    format!("CAP_{c}")
                }
            })
            .collect()
    };
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt: p.attempt,
        }),
        image: Some(api::ImageSpec {
            image: p.image.to_string(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: p.envs,
        mounts: p.mounts,
        labels,
        annotations,
        log_path: format!("{}/{}.log", c.name, p.attempt),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(container_resources(pod, c)),
            security_context: Some(api::LinuxContainerSecurityContext {
                capabilities: caps.map(|caps| api::Capability {
                    add_capabilities: cap_list(caps.add.as_ref()),
                    drop_capabilities: cap_list(caps.drop.as_ref()),
                    ..Default::default()
                }),
                privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
                namespace_options: Some(namespace_options(pod)),
                run_as_user: sc
                    .and_then(|s| s.run_as_user)
                    .or(psc.and_then(|s| s.run_as_user))
                    .map(|value| api::Int64Value { value }),
                run_as_group: sc
                    .and_then(|s| s.run_as_group)
                    .or(psc.and_then(|s| s.run_as_group))
                    .map(|value| api::Int64Value { value }),
                readonly_rootfs: sc
                    .and_then(|s| s.read_only_root_filesystem)
                    .unwrap_or(false),
                supplemental_groups: psc
                    .and_then(|s| s.supplemental_groups.clone())
                    .unwrap_or_default(),
                no_new_privs: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// The host's resolv.conf, for Default DNS policy.
pub fn read_host_resolv() -> String {
    std::fs::read_to_string(Path::new("/etc/resolv.conf")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
        ResourceRequirements,
    };

    struct NoObjects(Option<Arc<ConfigMap>>);
    impl Objects for NoObjects {
        fn config_map(&self, _: &str, name: &str) -> Option<Arc<ConfigMap>> {
            self.0
                .clone()
                .filter(|c| c.metadata.name.as_deref() == Some(name))
        }
        fn secret(&self, _: &str, _: &str) -> Option<Arc<Secret>> {
            None
        }
    }

    fn ctx() -> NodeContext {
        NodeContext {
            node_name: "n1".into(),
            node_ip: "192.168.1.5".parse().unwrap(),
            cluster_dns: vec!["10.43.0.10".parse().unwrap()],
            cluster_domain: "cluster.local".into(),
            pod_log_dir: "/var/log/pods".into(),
            pods_dir: "/d/pods".into(),
            allocatable_milli_cpu: 2000,
            allocatable_memory: 1 << 30,
        }
    }

    fn pod(containers: Vec<Container>) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers,
                ..Default::default()
            }),
            status: None,
        }
    }

    fn res(req: &[(&str, &str)], lim: &[(&str, &str)]) -> Option<ResourceRequirements> {
        let m = |v: &[(&str, &str)]| {
            (!v.is_empty()).then(|| {
                v.iter()
                    .map(|(k, q)| (k.to_string(), Quantity(q.to_string())))
                    .collect()
            })
        };
        Some(ResourceRequirements {
            requests: m(req),
            limits: m(lim),
            ..Default::default()
        })
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity(&Quantity("100m".into())), Some(0.1));
        assert_eq!(parse_quantity(&Quantity("64Mi".into())), Some(67108864.0));
        assert_eq!(parse_quantity(&Quantity("1e3".into())), Some(1000.0));
        assert_eq!(parse_quantity(&Quantity("2".into())), Some(2.0));
        assert_eq!(parse_quantity(&Quantity("1x".into())), None);
    }

    #[test]
    fn qos_and_cgroups_and_resources() {
        let c = |r| Container {
            name: "c".into(),
            resources: r,
            ..Default::default()
        };
        let be = pod(vec![c(None)]);
        assert_eq!(qos_class(&be), "BestEffort");
        assert_eq!(cgroup_parent(&be), "/kubepods/besteffort/podu1");
        let g = pod(vec![c(res(&[], &[("cpu", "500m"), ("memory", "64Mi")]))]);
        assert_eq!(qos_class(&g), "Guaranteed");
        assert_eq!(cgroup_parent(&g), "/kubepods/podu1");
        let r = container_resources(&g, &g.spec.as_ref().unwrap().containers[0]);
        assert_eq!(r.cpu_shares, 512);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
        let b = pod(vec![c(res(&[("cpu", "100m")], &[]))]);
        assert_eq!(qos_class(&b), "Burstable");
        let r = container_resources(&b, &b.spec.as_ref().unwrap().containers[0]);
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes),
            (102, 0, 0)
        );
        assert_eq!(milli_cpu_to_shares(1), 2);
    }

    #[test]
    fn env_resolution_and_expansion() {
        let cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some("cfg".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("mode".to_string(), "fast".to_string())])),
            ..Default::default()
        };
        let c = Container {
            name: "c".into(),
            env: Some(vec![
                EnvVar {
                    name: "A".into(),
                    value: Some("x".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "B".into(),
                    value: Some("$(A)-$(NOPE)-$$(A)".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "POD".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                EnvVar {
                    name: "MODE".into(),
                    value_from: Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "cfg".into(),
                            key: "mode".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let p = pod(vec![c.clone()]);
        let env = container_env(&p, &c, &ctx(), None, &NoObjects(Some(Arc::new(cm)))).unwrap();
        let got: Vec<(&str, &str)> = env
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("A", "x"),
                ("B", "x-$(NOPE)-$(A)"),
                ("POD", "web"),
                ("MODE", "fast")
            ]
        );
        let err = container_env(&p, &c, &ctx(), None, &NoObjects(None)).unwrap_err();
        assert_eq!(err.0, "configmap \"cfg\" not found");
    }

    #[test]
    fn image_references() {
        for ok in [
            "nginx",
            "nginx:1.14.2",
            "library/nginx:latest",
            "docker.io/library/nginx",
            "127.0.0.1:5000/busybox:1.36",
            "localhost/x",
            "registry.k8s.io/pause:3.10",
            "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(valid_image_ref(ok), "{ok}");
        }
        for bad in [
            "",
            "NGINX",
            "nginx:",
            "nginx::1",
            "-x",
            "nginx@sha256:zz",
            "a//b",
            "nginx:-x",
        ] {
            assert!(!valid_image_ref(bad), "{bad}");
        }
    }

    #[test]
    fn dns_for_cluster_first_and_default() {
        let p = pod(vec![]);
        let host = "nameserver 1.1.1.1\nsearch corp.example\n";
        let d = dns_config(&p, &ctx(), host);
        assert_eq!(d.servers, vec!["10.43.0.10"]);
        assert_eq!(
            d.searches,
            vec![
                "prod.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ]
        );
        assert_eq!(d.options, vec!["ndots:5"]);
        let mut p2 = p.clone();
        p2.spec.as_mut().unwrap().dns_policy = Some("Default".into());
        let d = dns_config(&p2, &ctx(), host);
        assert_eq!(d.servers, vec!["1.1.1.1"]);
    }

    #[test]
    fn hosts_file_names_the_pod() {
        let p = pod(vec![]);
        let h = hosts_file(&p, Some("10.42.0.7".parse().unwrap()));
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.42.0.7\tweb\n"));
    }
}
