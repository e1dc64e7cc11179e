//! Service validation (upstream `ValidateService` / `ValidateServiceUpdate`). ClusterIP
//! allocation is the API server's; this checks formats and consistency only.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};

use super::common::{
    core_object_meta, core_object_meta_update, is_valid_cidr, is_valid_ip, s,
    validate_dns1123_label, validate_dns1123_subdomain, validate_label_map,
    validate_non_special_ip, validate_port_num_or_name, validate_qualified_name,
};
use super::names::is_valid_port_num;
use super::objectmeta::NameValidator;
use crate::field::{self, BadValue, ErrorList, Path};

const SUPPORTED_PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const MAX_CLIENT_IP_SERVICE_AFFINITY_SECONDS: i32 = 86400;

fn cluster_ips(spec: &ServiceSpec) -> &[String] {
    spec.cluster_ips.as_deref().unwrap_or(&[])
}

fn is_headless(spec: &ServiceSpec) -> bool {
    let ips = cluster_ips(spec);
    ips.len() == 1 && ips[0] == "None"
}

/// Upstream `apiservice.ExternallyAccessible`.
fn externally_accessible(spec: &ServiceSpec) -> bool {
    let t = s(&spec.type_);
    t == "LoadBalancer"
        || t == "NodePort"
        || (t == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|v| !v.is_empty()))
}

/// Validates a Service (upstream `ValidateService`).
pub fn validate_service(svc: &Service) -> ErrorList {
    let meta_path = Path::new("metadata");
    let mut errs = core_object_meta(&svc.metadata, true, NameValidator::Dns1035Label);
    let annotations = svc.metadata.annotations.clone().unwrap_or_default();
    let hints = annotations.get("service.kubernetes.io/topology-aware-hints");
    let mode = annotations.get("service.kubernetes.io/topology-mode");
    if let (Some(h), Some(m)) = (hints, mode)
        && h != m
    {
        errs.push(field::invalid(
            &meta_path.child("annotations").key("service.kubernetes.io/topology-mode"),
            m.as_str(),
            "must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified",
        ));
    }
    let sp = Path::new("spec");
    let spec = svc.spec.clone().unwrap_or_default();
    let t = s(&spec.type_);
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    let headless = is_headless(&spec);
    if ports.is_empty() && !headless && t != "ExternalName" {
        errs.push(field::required(&sp.child("ports"), ""));
    }
    match t {
        "LoadBalancer" | "NodePort" if headless => {
            errs.push(field::invalid(
                &sp.child("clusterIPs").index(0),
                cluster_ips(&spec)[0].as_str(),
                &format!("may not be set to 'None' for {t} services"),
            ));
        }
        "ExternalName" => {
            if !cluster_ips(&spec).is_empty() {
                errs.push(field::forbidden(
                    &sp.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_families.as_ref().is_some_and(|v| !v.is_empty()) {
                errs.push(field::forbidden(
                    &sp.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_family_policy.is_some() {
                errs.push(field::forbidden(
                    &sp.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let ext = s(&spec.external_name);
            let cname = ext.strip_suffix('.').unwrap_or(ext);
            if cname.is_empty() {
                errs.push(field::required(&sp.child("externalName"), ""));
            } else {
                errs.extend(validate_dns1123_subdomain(cname, &sp.child("externalName")));
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        errs.extend(validate_service_port(
            port,
            ports.len() > 1,
            &mut names,
            &sp.child("ports").index(i),
        ));
    }
    if spec.selector.is_some() {
        errs.extend(validate_label_map(
            spec.selector.as_ref(),
            &sp.child("selector"),
        ));
    }
    let affinity = s(&spec.session_affinity);
    if affinity.is_empty() {
        errs.push(field::required(&sp.child("sessionAffinity"), ""));
    } else if affinity != "ClientIP" && affinity != "None" {
        errs.push(field::not_supported(
            &sp.child("sessionAffinity"),
            affinity,
            &["ClientIP", "None"],
        ));
    }
    let sac = sp.child("sessionAffinityConfig");
    if affinity == "ClientIP" {
        let msg = "when session affinity type is ClientIP";
        match &spec.session_affinity_config {
            None => errs.push(field::required(&sac, msg)),
            Some(c) => match &c.client_ip {
                None => errs.push(field::required(&sac.child("clientIP"), msg)),
                Some(cip) => match cip.timeout_seconds {
                    None => errs.push(field::required(
                        &sac.child("clientIP").child("timeoutSeconds"),
                        msg,
                    )),
                    Some(ts) => {
                        if ts <= 0 || ts > MAX_CLIENT_IP_SERVICE_AFFINITY_SECONDS {
                            errs.push(field::invalid(
                                &sac.child("clientIP").child("timeoutSeconds"),
                                ts,
                                &format!(
                                    "must be greater than 0 and less than {MAX_CLIENT_IP_SERVICE_AFFINITY_SECONDS}"
                                ),
                            ));
                        }
                    }
                },
            },
        }
    } else if affinity == "None" && spec.session_affinity_config.is_some() {
        errs.push(field::forbidden(
            &sac,
            "must not be set when session affinity is None",
        ));
    }
    errs.extend(validate_cluster_ips_related_fields(&spec));
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        let p = sp.child("externalIPs").index(i);
        let e = is_valid_ip(&p, ip);
        if e.is_empty() {
            errs.extend(validate_non_special_ip(ip, &p));
        } else {
            errs.extend(e);
        }
    }
    if t.is_empty() {
        errs.push(field::required(&sp.child("type"), ""));
    } else if !SERVICE_TYPES.contains(&t) {
        errs.push(field::not_supported(&sp.child("type"), t, SERVICE_TYPES));
    }
    if t == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if port.node_port.unwrap_or(0) != 0 {
                errs.push(field::forbidden(
                    &sp.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let np = port.node_port.unwrap_or(0);
        if np == 0 {
            continue;
        }
        if !node_ports.insert((s(&port.protocol).to_owned(), np)) {
            errs.push(field::duplicate(
                &sp.child("ports").index(i).child("nodePort"),
                np,
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        if !seen.insert((s(&port.protocol).to_owned(), port.port)) {
            // Upstream renders the internal core.ServicePort key (Go field names).
            let key = format!(
                "{{\"Name\":\"\",\"Protocol\":{},\"AppProtocol\":null,\"Port\":{},\"TargetPort\":0,\"NodePort\":0}}",
                field::go_quote(s(&port.protocol)),
                port.port
            );
            errs.push(field::duplicate(
                &sp.child("ports").index(i),
                BadValue::raw(key),
            ));
        }
    }
    let ranges = spec.load_balancer_source_ranges.as_deref().unwrap_or(&[]);
    if !ranges.is_empty() {
        let p = sp.child("LoadBalancerSourceRanges");
        if t != "LoadBalancer" {
            errs.push(field::forbidden(
                &p,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            errs.extend(is_valid_cidr(&p.index(i), r.trim()));
        }
    } else if let Some(v) =
        annotations.get("service.beta.kubernetes.io/load-balancer-source-ranges")
    {
        let p = Path::new("metadata")
            .child("annotations")
            .key("service.beta.kubernetes.io/load-balancer-source-ranges");
        if t != "LoadBalancer" {
            errs.push(field::forbidden(
                &p,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        let v = v.trim();
        if !v.is_empty() {
            for c in v.split(',') {
                errs.extend(is_valid_cidr(&p, c.trim()));
            }
        }
    }
    if spec.allocate_load_balancer_node_ports.is_some() && t != "LoadBalancer" {
        errs.push(field::forbidden(
            &sp.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if t == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
        errs.push(field::required(
            &Path::new("allocateLoadBalancerNodePorts"),
            "",
        ));
    }
    if t == "LoadBalancer" {
        if let Some(c) = &spec.load_balancer_class {
            errs.extend(validate_qualified_name(c, &sp.child("loadBalancerClass")));
        }
    } else if spec.load_balancer_class.is_some() {
        errs.push(field::forbidden(
            &sp.child("loadBalancerClass"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    // external traffic policy
    let etp = s(&spec.external_traffic_policy);
    if !externally_accessible(&spec) {
        if !etp.is_empty() {
            errs.push(field::invalid(
                &sp.child("externalTrafficPolicy"),
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(field::required(&sp.child("externalTrafficPolicy"), ""));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(field::not_supported(
            &sp.child("externalTrafficPolicy"),
            etp,
            &["Cluster", "Local"],
        ));
    }
    let hcnp = spec.health_check_node_port.unwrap_or(0);
    let needs_hc = t == "LoadBalancer" && etp == "Local";
    if !needs_hc {
        if hcnp != 0 {
            errs.push(field::invalid(
                &sp.child("healthCheckNodePort"),
                hcnp,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hcnp == 0 {
        errs.push(field::required(&sp.child("healthCheckNodePort"), ""));
    } else {
        for m in is_valid_port_num(i64::from(hcnp)) {
            errs.push(field::invalid(&sp.child("healthCheckNodePort"), hcnp, &m));
        }
    }
    match spec.internal_traffic_policy.as_deref() {
        None => {
            if matches!(t, "NodePort" | "LoadBalancer" | "ClusterIP") {
                errs.push(field::required(&sp.child("internalTrafficPolicy"), ""));
            }
        }
        Some(p) if p != "Cluster" && p != "Local" => errs.push(field::not_supported(
            &sp.child("internalTrafficPolicy"),
            p,
            &["Cluster", "Local"],
        )),
        _ => {}
    }
    if let Some(td) = &spec.traffic_distribution {
        const VALID: &[&str] = &["PreferClose", "PreferSameZone", "PreferSameNode"];
        if !VALID.contains(&td.as_str()) {
            errs.push(field::not_supported(
                &sp.child("trafficDistribution"),
                td.as_str(),
                VALID,
            ));
        }
    }
    errs
}

fn validate_service_port(
    port: &ServicePort,
    require_name: bool,
    names: &mut BTreeSet<String>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let name = s(&port.name);
    if require_name && name.is_empty() {
        errs.push(field::required(&path.child("name"), ""));
    } else if !name.is_empty() {
        errs.extend(validate_dns1123_label(name, &path.child("name")));
        if !names.insert(name.to_owned()) {
            errs.push(field::duplicate(&path.child("name"), name));
        }
    }
    for m in is_valid_port_num(i64::from(port.port)) {
        errs.push(field::invalid(&path.child("port"), port.port, &m));
    }
    let proto = s(&port.protocol);
    if proto.is_empty() {
        errs.push(field::required(&path.child("protocol"), ""));
    } else if !SUPPORTED_PORT_PROTOCOLS.contains(&proto) {
        errs.push(field::not_supported(
            &path.child("protocol"),
            proto,
            SUPPORTED_PORT_PROTOCOLS,
        ));
    }
    if let Some(tp) = &port.target_port {
        errs.extend(validate_port_num_or_name(tp, &path.child("targetPort")));
    } else {
        // An unset targetPort is the zero IntOrString, which fails the port-number check.
        for m in is_valid_port_num(0) {
            errs.push(field::invalid(&path.child("targetPort"), 0, &m));
        }
    }
    if let Some(ap) = &port.app_protocol {
        errs.extend(validate_qualified_name(ap, &path.child("appProtocol")));
    }
    errs
}

/// Upstream `ValidateServiceClusterIPsRelatedFields`.
fn validate_cluster_ips_related_fields(spec: &ServiceSpec) -> ErrorList {
    let mut errs = ErrorList::new();
    if s(&spec.type_) == "ExternalName" {
        return errs;
    }
    let sp = Path::new("spec");
    let cip_path = sp.child("clusterIPs");
    let ips = cluster_ips(spec);
    let cluster_ip = s(&spec.cluster_ip);
    if !cluster_ip.is_empty() {
        if ips.is_empty() {
            errs.push(field::required(&cip_path, ""));
        } else if ips[0] != cluster_ip {
            errs.push(field::invalid(
                &cip_path,
                BadValue::json(ips),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(field::invalid(
            &cip_path,
            BadValue::json(ips),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let families = spec.ip_families.as_deref().unwrap_or(&[]);
    let mut seen = BTreeSet::new();
    for (i, f) in families.iter().enumerate() {
        let p = sp.child("ipFamilies").index(i);
        if f != "IPv4" && f != "IPv6" {
            errs.push(field::not_supported(&p, f.as_str(), &["IPv4", "IPv6"]));
        }
        if !seen.insert(f) {
            errs.push(field::duplicate(&p, f.as_str()));
        }
    }
    if let Some(pol) = &spec.ip_family_policy {
        const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !POLICIES.contains(&pol.as_str()) {
            errs.push(field::not_supported(
                &sp.child("ipFamilyPolicy"),
                pol.as_str(),
                POLICIES,
            ));
        }
    }
    let mut invalid = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                invalid = true;
                errs.push(field::invalid(
                    &cip_path,
                    BadValue::json(ips),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        let e = is_valid_ip(&cip_path.index(i), ip);
        invalid |= !e.is_empty();
        errs.extend(e);
    }
    if ips.len() > 2 {
        errs.push(field::invalid(
            &cip_path,
            BadValue::json(ips),
            "may only hold up to 2 values",
        ));
    }
    if invalid {
        return errs;
    }
    if ips.len() > 1 {
        let v6 = ips.iter().filter(|ip| ip.contains(':')).count();
        if v6 == 0 || v6 == ips.len() {
            errs.push(field::invalid(
                &cip_path,
                BadValue::json(ips),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !is_headless(spec) && !ips.is_empty() && !families.is_empty() {
        for (i, ip) in ips.iter().enumerate() {
            let Some(f) = families.get(i) else {
                break;
            };
            let is_v6 = ip.contains(':');
            if f == "IPv4" && is_v6 {
                errs.push(field::invalid(
                    &cip_path.index(i),
                    ip.as_str(),
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if f == "IPv6" && !is_v6 {
                errs.push(field::invalid(
                    &cip_path.index(i),
                    ip.as_str(),
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}

/// Validates a Service update (upstream `ValidateServiceUpdate`): clusterIPs and ipFamilies may
/// not change once set (except dual-stack upgrade/downgrade), loadBalancerClass is immutable,
/// healthCheckNodePort is immutable.
pub fn validate_service_update(new: &Service, old: &Service) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    let ns = new.spec.clone().unwrap_or_default();
    let os = old.spec.clone().unwrap_or_default();
    let sp = Path::new("spec");
    let ext = s(&ns.type_) == "ExternalName" || s(&os.type_) == "ExternalName";
    let both_headless = is_headless(&ns) && is_headless(&os);
    if !ext && !both_headless {
        let (n, o) = (cluster_ips(&ns), cluster_ips(&os));
        let p = sp.child("clusterIPs");
        if n.len() == o.len() {
            for (i, ip) in o.iter().enumerate() {
                if ip != &n[i] {
                    errs.push(field::invalid(
                        &p.index(i),
                        BadValue::json(n),
                        "may not change once set",
                    ));
                }
            }
        } else if o.len() > n.len() {
            if n.is_empty() {
                errs.push(field::invalid(
                    &p.index(0),
                    BadValue::json(n),
                    "primary clusterIP can not be unset",
                ));
            }
            if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
                errs.push(field::invalid(
                    &p.index(0),
                    BadValue::json(n),
                    "may not change once set",
                ));
            }
            if n.len() == 1 && s(&ns.ip_family_policy) != "SingleStack" {
                errs.push(field::invalid(
                    &sp.child("ipFamilyPolicy"),
                    BadValue::json(&ns.ip_family_policy),
                    "must be set to 'SingleStack' when releasing the secondary clusterIP",
                ));
            }
        } else if !o.is_empty() && n[0] != o[0] {
            errs.push(field::invalid(
                &p.index(0),
                BadValue::json(n),
                "may not change once set",
            ));
        }
    }
    if !ext && is_headless(&ns) == is_headless(&os) && !is_headless(&ns) {
        let n = ns.ip_families.as_deref().unwrap_or(&[]);
        let o = os.ip_families.as_deref().unwrap_or(&[]);
        let p = sp.child("ipFamilies");
        if n.len() == o.len() {
            for (i, f) in o.iter().enumerate() {
                if f != &n[i] {
                    errs.push(field::invalid(
                        &p.index(0),
                        BadValue::json(n),
                        "may not change once set",
                    ));
                }
            }
        } else if o.len() > n.len() {
            if cluster_ips(&ns).is_empty() {
                errs.push(field::invalid(
                    &p.index(0),
                    BadValue::json(n),
                    "primary ipFamily can not be unset",
                ));
            }
            if !n.is_empty() && n[0] != o[0] {
                errs.push(field::invalid(
                    &p.index(0),
                    BadValue::json(cluster_ips(&ns)),
                    "may not change once set",
                ));
            }
            if n.len() == 1 && s(&ns.ip_family_policy) != "SingleStack" {
                errs.push(field::invalid(
                    &sp.child("ipFamilyPolicy"),
                    BadValue::json(&ns.ip_family_policy),
                    "must be set to 'SingleStack' when releasing the secondary ipFamily",
                ));
            }
        } else if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
            errs.push(field::invalid(
                &p.index(0),
                BadValue::json(cluster_ips(&ns)),
                "may not change once set",
            ));
        }
    }
    if s(&ns.type_) == "LoadBalancer"
        && s(&os.type_) == "LoadBalancer"
        && ns.load_balancer_class != os.load_balancer_class
    {
        errs.push(field::invalid(
            &sp.child("loadBalancerClass"),
            BadValue::json(&ns.load_balancer_class),
            "may not change once set",
        ));
    }
    let needs_hc = |s2: &ServiceSpec| {
        s(&s2.type_) == "LoadBalancer" && s(&s2.external_traffic_policy) == "Local"
    };
    if needs_hc(&os) && needs_hc(&ns) && ns.health_check_node_port != os.health_check_node_port {
        errs.push(field::forbidden(
            &sp.child("healthCheckNodePort"),
            "field is immutable",
        ));
    }
    errs.extend(validate_service(new));
    errs
}

/// Validates a Service status update (upstream `ValidateServiceStatusUpdate`).
pub fn validate_service_status_update(new: &Service, old: &Service) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    let t = new
        .spec
        .as_ref()
        .and_then(|s| s.type_.clone())
        .unwrap_or_default();
    let ingress = new
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default();
    let ip = Path::new("status").child("loadBalancer").child("ingress");
    if t != "LoadBalancer" && !ingress.is_empty() {
        errs.push(field::forbidden(
            &ip,
            "may only be used when `spec.type` is 'LoadBalancer'",
        ));
        return errs;
    }
    for (i, ing) in ingress.iter().enumerate() {
        let p = ip.index(i);
        let addr = s(&ing.ip);
        if !addr.is_empty() {
            errs.extend(is_valid_ip(&p.child("ip"), addr));
        }
        match &ing.ip_mode {
            None if !addr.is_empty() => errs.push(field::required(
                &p.child("ipMode"),
                "must be specified when `ip` is set",
            )),
            Some(_) if addr.is_empty() => errs.push(field::forbidden(
                &p.child("ipMode"),
                "may not be specified when `ip` is not set",
            )),
            Some(m) if m != "VIP" && m != "Proxy" => errs.push(field::not_supported(
                &p.child("ipMode"),
                m.as_str(),
                &["Proxy", "VIP"],
            )),
            _ => {}
        }
        let hn = s(&ing.hostname);
        if !hn.is_empty() {
            errs.extend(validate_dns1123_subdomain(hn, &p.child("hostname")));
            if hn.parse::<std::net::IpAddr>().is_ok() {
                errs.push(field::invalid(
                    &p.child("hostname"),
                    hn,
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}
