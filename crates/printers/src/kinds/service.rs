//! Services, Endpoints and EndpointSlices: ports of upstream `printService`,
//! `printEndpoints` and `printEndpointSlice`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Endpoints, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use serde_json::Value;

use super::{AGE, NAME, col, wide};
use crate::descriptions::{
    ENDPOINT_SLICE_ADDRESS_TYPE, ENDPOINT_SLICE_ENDPOINTS, ENDPOINT_SLICE_PORTS, ENDPOINTS_SUBSETS,
    SERVICE_SPEC_CLUSTER_IP, SERVICE_SPEC_EXTERNAL_IPS, SERVICE_SPEC_PORTS, SERVICE_SPEC_SELECTOR,
    SERVICE_SPEC_TYPE,
};
use crate::util::{age_of, decode, format_labels, join_host_port, name_of, s};
use crate::{Column, Printer};

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", SERVICE_SPEC_TYPE),
    col("Cluster-IP", "string", SERVICE_SPEC_CLUSTER_IP),
    col("External-IP", "string", SERVICE_SPEC_EXTERNAL_IPS),
    col("Port(s)", "string", SERVICE_SPEC_PORTS),
    AGE,
    wide("Selector", "string", SERVICE_SPEC_SELECTOR),
];

const LOAD_BALANCER_WIDTH: usize = 16;

pub(crate) struct ServicePrinter;

pub(crate) static SERVICE: ServicePrinter = ServicePrinter;

/// `loadBalancerStatusStringer`: sorted unique IPs/hostnames (wide: never clipped).
fn load_balancer_status(svc: &Service, wide: bool) -> String {
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    let mut result = BTreeSet::new();
    for ing in ingress.into_iter().flatten() {
        match (ing.ip.as_deref(), ing.hostname.as_deref()) {
            (Some(ip), _) if !ip.is_empty() => {
                result.insert(ip.to_string());
            }
            (_, Some(h)) if !h.is_empty() => {
                result.insert(h.to_string());
            }
            _ => {}
        }
    }
    let r = result.into_iter().collect::<Vec<_>>().join(",");
    if !wide && r.len() > LOAD_BALANCER_WIDTH {
        // Upstream cuts bytes; cut at the closest char boundary so as never to panic.
        let cut = (0..=LOAD_BALANCER_WIDTH - 3)
            .rev()
            .find(|i| r.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}...", &r[..cut])
    } else {
        r
    }
}

/// `getServiceExternalIP`.
fn external_ip(svc: &Service, wide: bool) -> String {
    let spec = svc.spec.clone().unwrap_or_default();
    let external_ips = spec.external_ips.clone().unwrap_or_default();
    match spec.type_.as_deref().unwrap_or_default() {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb_ips = load_balancer_status(svc, wide);
            if !external_ips.is_empty() {
                let mut results: Vec<String> = Vec::new();
                if !lb_ips.is_empty() {
                    results.extend(lb_ips.split(',').map(str::to_string));
                }
                results.extend(external_ips);
                return results.join(",");
            }
            if lb_ips.is_empty() {
                "<pending>".to_string()
            } else {
                lb_ips
            }
        }
        "ExternalName" => spec.external_name.clone().unwrap_or_default(),
        _ => "<unknown>".to_string(),
    }
}

/// `makePortString`: `80/TCP`, `80:30080/TCP`.
fn port_string(ports: &[ServicePort]) -> String {
    ports
        .iter()
        .map(|p| {
            let protocol = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port {
                Some(np) if np > 0 => format!("{}:{np}/{protocol}", p.port),
                _ => format!("{}/{protocol}", p.port),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Printer for ServicePrinter {
    fn columns(&self) -> &[Column] {
        SERVICE_COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let svc: Service = decode(obj);
        let spec = svc.spec.clone().unwrap_or_default();
        let internal_ip = spec
            .cluster_ips
            .as_ref()
            .and_then(|ips| ips.first().cloned())
            .or_else(|| spec.cluster_ip.clone().filter(|ip| !ip.is_empty()))
            .unwrap_or_else(|| "<none>".to_string());
        let ports = port_string(spec.ports.as_deref().unwrap_or_default());
        let ports = if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports
        };
        vec![
            name_of(&svc.metadata),
            s(spec.type_.clone().unwrap_or_default()),
            s(internal_ip),
            // Server-side printing is always wide.
            s(external_ip(&svc, true)),
            s(ports),
            age_of(&svc.metadata, now),
            s(format_labels(spec.selector.as_ref())),
        ]
    }
}

const ENDPOINTS_COLUMNS: &[Column] = &[NAME, col("Endpoints", "string", ENDPOINTS_SUBSETS), AGE];

pub(crate) struct EndpointsPrinter;

pub(crate) static ENDPOINTS: EndpointsPrinter = EndpointsPrinter;

/// `formatEndpoints(endpoints, nil)`: at most 3 addresses, then `+ N more...`.
fn format_endpoints(ep: &Endpoints) -> String {
    let subsets = ep.subsets.as_deref().unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addresses = ss.addresses.as_deref().unwrap_or_default();
        let ports = ss.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            // Headless services with no ports.
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(a.ip.clone());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(&a.ip, port.port));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

impl Printer for EndpointsPrinter {
    fn columns(&self) -> &[Column] {
        ENDPOINTS_COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let ep: Endpoints = decode(obj);
        vec![
            name_of(&ep.metadata),
            s(format_endpoints(&ep)),
            age_of(&ep.metadata, now),
        ]
    }
}

const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME,
    col("AddressType", "string", ENDPOINT_SLICE_ADDRESS_TYPE),
    col("Ports", "string", ENDPOINT_SLICE_PORTS),
    col("Endpoints", "string", ENDPOINT_SLICE_ENDPOINTS),
    AGE,
];

pub(crate) struct EndpointSlicePrinter;

pub(crate) static ENDPOINT_SLICE: EndpointSlicePrinter = EndpointSlicePrinter;

/// `listWithMoreString`.
fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count - max);
    }
    if ret.is_empty() {
        "<unset>".to_string()
    } else {
        ret
    }
}

/// `formatDiscoveryPorts`.
fn format_discovery_ports(ports: &[EndpointPort]) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for port in ports {
        if list.len() < MAX {
            let num = match (port.port, &port.name) {
                (Some(p), _) => p.to_string(),
                (None, Some(name)) => name.clone(),
                (None, None) => "*".to_string(),
            };
            list.push(num);
        } else if list.len() == MAX {
            more = true;
        }
        count += 1;
    }
    list_with_more(&list, more, count, MAX)
}

/// `formatDiscoveryEndpoints`.
fn format_discovery_endpoints(endpoints: &[Endpoint]) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for ep in endpoints {
        for address in &ep.addresses {
            if list.len() < MAX {
                list.push(address.clone());
            } else if list.len() == MAX {
                more = true;
            }
            count += 1;
        }
    }
    list_with_more(&list, more, count, MAX)
}

impl Printer for EndpointSlicePrinter {
    fn columns(&self) -> &[Column] {
        ENDPOINT_SLICE_COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let slice: EndpointSlice = decode(obj);
        vec![
            name_of(&slice.metadata),
            s(slice.address_type.clone()),
            s(format_discovery_ports(
                slice.ports.as_deref().unwrap_or_default(),
            )),
            s(format_discovery_endpoints(&slice.endpoints)),
            age_of(&slice.metadata, now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc_cells(spec: Value, status: Value) -> Vec<Value> {
        let obj = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "test1"}, "spec": spec, "status": status});
        SERVICE.cells(&obj, Utc::now())
    }

    // Cases from upstream TestPrintService.
    #[test]
    fn services() {
        let c = svc_cells(
            json!({"type": "ClusterIP", "ports": [{"protocol": "TCP", "port": 2233}], "clusterIPs": ["10.9.8.7"], "selector": {"foo": "bar"}}),
            json!({}),
        );
        assert_eq!(
            c[1..5],
            [
                json!("ClusterIP"),
                json!("10.9.8.7"),
                json!("<none>"),
                json!("2233/TCP")
            ]
        );
        assert_eq!(c[6], json!("foo=bar"));

        let c = svc_cells(
            json!({"type": "NodePort", "ports": [{"protocol": "TCP", "port": 8888, "nodePort": 9999}], "clusterIPs": ["10.9.8.7"]}),
            json!({}),
        );
        assert_eq!(
            c[1..5],
            [
                json!("NodePort"),
                json!("10.9.8.7"),
                json!("<none>"),
                json!("8888:9999/TCP")
            ]
        );
        assert_eq!(c[6], json!("<none>"));

        let c = svc_cells(
            json!({"type": "LoadBalancer", "ports": [{"protocol": "TCP", "port": 8888}], "clusterIPs": ["10.9.8.7"]}),
            json!({}),
        );
        assert_eq!(c[3], json!("<pending>"));

        let c = svc_cells(
            json!({"type": "LoadBalancer", "ports": [{"protocol": "TCP", "port": 8888}], "clusterIPs": ["10.9.8.7"]}),
            json!({"loadBalancer": {"ingress": [{"ip": "3.4.5.6"}, {"ip": "2.3.4.5"}, {"hostname": "lb.example.com"}]}}),
        );
        assert_eq!(c[3], json!("2.3.4.5,3.4.5.6,lb.example.com"));

        let c = svc_cells(
            json!({"type": "LoadBalancer", "ports": [{"protocol": "TCP", "port": 8888}], "clusterIPs": ["10.9.8.7"], "externalIPs": ["80.11.12.10"]}),
            json!({"loadBalancer": {"ingress": [{"ip": "3.4.5.6"}]}}),
        );
        assert_eq!(c[3], json!("3.4.5.6,80.11.12.10"));

        let c = svc_cells(
            json!({"type": "ClusterIP", "ports": [{"protocol": "TCP", "port": 2233}], "clusterIPs": ["10.9.8.7"], "externalIPs": ["80.11.12.10", "80.11.12.11"]}),
            json!({}),
        );
        assert_eq!(c[3], json!("80.11.12.10,80.11.12.11"));

        let c = svc_cells(
            json!({"type": "ExternalName", "externalName": "my.database.example.com"}),
            json!({}),
        );
        assert_eq!(
            c[1..5],
            [
                json!("ExternalName"),
                json!("<none>"),
                json!("my.database.example.com"),
                json!("<none>")
            ]
        );

        let c = svc_cells(
            json!({"type": "ClusterIP", "clusterIP": "None", "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]}),
            json!({}),
        );
        assert_eq!(
            c[2..5],
            [json!("None"), json!("<none>"), json!("53/UDP,53/TCP")]
        );
    }

    // Cases from upstream TestPrintEndpoint.
    #[test]
    fn endpoints() {
        let ep = |subsets: Value| {
            ENDPOINTS.cells(
                &json!({"metadata": {"name": "e"}, "subsets": subsets}),
                Utc::now(),
            )[1]
            .clone()
        };
        assert_eq!(ep(json!(null)), json!("<none>"));
        assert_eq!(
            ep(
                json!([{"addresses": [{"ip": "127.0.0.1"}, {"ip": "10.9.8.7"}], "ports": [{"port": 8080, "protocol": "TCP"}]}])
            ),
            json!("127.0.0.1:8080,10.9.8.7:8080")
        );
        assert_eq!(
            ep(
                json!([{"addresses": [{"ip": "1.1.1.1"}, {"ip": "2.2.2.2"}, {"ip": "3.3.3.3"}, {"ip": "4.4.4.4"}], "ports": [{"port": 80}]}])
            ),
            json!("1.1.1.1:80,2.2.2.2:80,3.3.3.3:80 + 1 more...")
        );
        assert_eq!(
            ep(
                json!([{"addresses": [{"ip": "1.1.1.1"}, {"ip": "2.2.2.2"}], "ports": [{"port": 80}, {"port": 443}]}])
            ),
            json!("1.1.1.1:80,2.2.2.2:80,1.1.1.1:443 + 1 more...")
        );
        assert_eq!(
            ep(json!([{"addresses": [{"ip": "1.1.1.1"}, {"ip": "fd00::1"}]}])),
            json!("1.1.1.1,fd00::1")
        );
        assert_eq!(
            ep(json!([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}])),
            json!("[fd00::1]:80")
        );
    }

    // Cases from upstream TestPrintEndpointSlice.
    #[test]
    fn endpoint_slices() {
        let cells = |slice: Value| ENDPOINT_SLICE.cells(&slice, Utc::now());
        let c = cells(json!({
            "metadata": {"name": "abcslice.123"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.1.2.3", "2001:db8::1234:5678"]}]
        }));
        assert_eq!(
            c[..4],
            [
                json!("abcslice.123"),
                json!("IPv4"),
                json!("80"),
                json!("10.1.2.3,2001:db8::1234:5678")
            ]
        );
        let c = cells(json!({
            "metadata": {"name": "longerslicename.123"}, "addressType": "IPv6",
            "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
            "endpoints": [{"addresses": ["10.1.2.3", "2001:db8::1234:5678"]}, {"addresses": ["10.2.3.4", "2001:db8::2345:6789"]}]
        }));
        assert_eq!(
            c[2..4],
            [
                json!("80,443"),
                json!("10.1.2.3,2001:db8::1234:5678,10.2.3.4 + 1 more...")
            ]
        );
        let c = cells(json!({
            "metadata": {"name": "multiportslice.123"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}, {"name": "extra1", "port": 3000}, {"name": "extra2", "port": 3001}],
            "endpoints": [{"addresses": ["10.1.2.3", "2001:db8::1234:5678"]}, {"addresses": ["10.2.3.4", "2001:db8::2345:6789"]}]
        }));
        assert_eq!(c[2], json!("80,443,3000 + 1 more..."));
        let c = cells(
            json!({"metadata": {"name": "empty"}, "addressType": "IPv4", "ports": [{"name": "named"}, {}], "endpoints": []}),
        );
        assert_eq!(c[2..4], [json!("named,*"), json!("<unset>")]);
    }
}
