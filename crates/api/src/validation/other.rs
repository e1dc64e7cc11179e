//! discovery.k8s.io/v1 EndpointSlice, coordination.k8s.io/v1 Lease and events.k8s.io/v1 Event
//! validation (upstream `pkg/apis/{discovery,coordination}/validation` and
//! `pkg/apis/core/validation/events.go`).

use std::collections::BTreeSet;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;

use super::common::{
    core_object_meta, core_object_meta_update, is_valid_ip, s, validate_dns1123_label,
    validate_name, validate_non_special_ip, validate_qualified_name,
};
use super::core::{EventView, legacy_validate_event};
use super::names::is_dns1123_subdomain;
use super::objectmeta::{
    FIELD_IMMUTABLE_ERROR_MSG, NameValidator, validate_labels, validate_object_meta,
    validate_object_meta_update,
};
use crate::field::{self, BadValue, ErrorList, Path};

const MAX_TOPOLOGY_LABELS: i64 = 16;
const MAX_ADDRESSES: i64 = 100;
const MAX_PORTS: i64 = 20000;
const MAX_ENDPOINTS: i64 = 1000;
const MAX_HINTS: i64 = 8;
const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];

// ---- EndpointSlice ----

fn validate_slice_body(es: &EndpointSlice) -> ErrorList {
    let mut errs = ErrorList::new();
    let ep = Path::new("endpoints");
    if es.endpoints.len() as i64 > MAX_ENDPOINTS {
        errs.push(field::too_many(
            &ep,
            es.endpoints.len() as i64,
            MAX_ENDPOINTS,
        ));
    }
    for (i, e) in es.endpoints.iter().enumerate() {
        let ip = ep.index(i);
        let ap = ip.child("addresses");
        if e.addresses.is_empty() {
            errs.push(field::required(&ap, "must contain at least 1 address"));
        } else if e.addresses.len() as i64 > MAX_ADDRESSES {
            errs.push(field::too_many(
                &ap,
                e.addresses.len() as i64,
                MAX_ADDRESSES,
            ));
        }
        for (j, a) in e.addresses.iter().enumerate() {
            let p = ap.index(j);
            match es.address_type.as_str() {
                "IPv4" | "IPv6" => {
                    let mut ip_errs = is_valid_ip(&p, a);
                    if ip_errs.is_empty() {
                        let v6 = a.contains(':');
                        if es.address_type == "IPv4" && v6 {
                            ip_errs.push(field::invalid(&p, a.as_str(), "must be an IPv4 address"));
                        } else if es.address_type == "IPv6" && !v6 {
                            ip_errs.push(field::invalid(&p, a.as_str(), "must be an IPv6 address"));
                        }
                    }
                    if ip_errs.is_empty() {
                        errs.extend(validate_non_special_ip(a, &p));
                    } else {
                        errs.extend(ip_errs);
                    }
                }
                "FQDN" => errs.extend(validate_fqdn(a, &p)),
                _ => {}
            }
        }
        if let Some(n) = &e.node_name {
            errs.extend(validate_name(
                NameValidator::Dns1123Subdomain,
                n,
                &ip.child("nodeName"),
            ));
        }
        let tp = ip.child("deprecatedTopology");
        if let Some(t) = &e.deprecated_topology {
            if t.len() as i64 > MAX_TOPOLOGY_LABELS {
                errs.push(field::too_many(&tp, t.len() as i64, MAX_TOPOLOGY_LABELS));
            }
            errs.extend(validate_labels(Some(t), &tp));
        }
        if let Some(h) = &e.hostname {
            errs.extend(validate_dns1123_label(h, &ip.child("hostname")));
        }
        if let Some(zones) = e.hints.as_ref().and_then(|h| h.for_zones.as_ref()) {
            let zp = ip.child("hints").child("forZones");
            if zones.len() as i64 > MAX_HINTS {
                errs.push(field::too_many(&zp, zones.len() as i64, MAX_HINTS));
            } else {
                let mut seen = BTreeSet::new();
                for (j, z) in zones.iter().enumerate() {
                    if !seen.insert(&z.name) {
                        errs.push(field::duplicate(
                            &zp.index(j).child("name"),
                            z.name.as_str(),
                        ));
                    }
                }
            }
        }
    }
    let pp = Path::new("ports");
    let ports = es.ports.as_deref().unwrap_or(&[]);
    if ports.len() as i64 > MAX_PORTS {
        errs.push(field::too_many(&pp, ports.len() as i64, MAX_PORTS));
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let ip = pp.index(i);
        let name = s(&port.name);
        if !name.is_empty() {
            errs.extend(validate_dns1123_label(name, &ip.child("name")));
        }
        if !names.insert(name) {
            errs.push(field::duplicate(
                &ip.child("name"),
                BadValue::json(&port.name),
            ));
        }
        match port.protocol.as_deref() {
            None => errs.push(field::required(&ip.child("protocol"), "")),
            Some(p) if !["SCTP", "TCP", "UDP"].contains(&p) => errs.push(field::not_supported(
                &ip.child("protocol"),
                p,
                &["SCTP", "TCP", "UDP"],
            )),
            _ => {}
        }
        if let Some(ap) = &port.app_protocol {
            errs.extend(validate_qualified_name(ap, &ip.child("appProtocol")));
        }
    }
    errs
}

/// Upstream `IsFullyQualifiedDomainName`.
fn validate_fqdn(name: &str, path: &Path) -> ErrorList {
    if name.is_empty() {
        return vec![field::required(path, "")];
    }
    let n = name.strip_suffix('.').unwrap_or(name);
    let msgs = is_dns1123_subdomain(n);
    if !msgs.is_empty() {
        return vec![field::invalid(path, n, &msgs.join(","))];
    }
    if n.split('.').count() < 2 {
        return vec![field::invalid(
            path,
            n,
            "should be a domain with at least two segments separated by dots",
        )];
    }
    for label in n.split('.') {
        let m = super::names::is_dns1123_label(label);
        if !m.is_empty() {
            return vec![field::invalid(path, label, &m.join(","))];
        }
    }
    Vec::new()
}

/// Validates an EndpointSlice on create (upstream `ValidateEndpointSliceCreate`).
pub fn validate_endpoint_slice(es: &EndpointSlice) -> ErrorList {
    let mut errs = core_object_meta(&es.metadata, true, NameValidator::Dns1123Subdomain);
    let at = Path::new("addressType");
    if es.address_type.is_empty() {
        errs.push(field::required(&at, ""));
    } else if !ADDRESS_TYPES.contains(&es.address_type.as_str()) {
        errs.push(field::not_supported(
            &at,
            es.address_type.as_str(),
            ADDRESS_TYPES,
        ));
    }
    errs.extend(validate_slice_body(es));
    errs
}

/// Validates an EndpointSlice update (upstream `ValidateEndpointSliceUpdate`): addressType is
/// immutable.
pub fn validate_endpoint_slice_update(new: &EndpointSlice, old: &EndpointSlice) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    errs.extend(validate_slice_body(new));
    if new.address_type != old.address_type {
        errs.push(field::invalid(
            &Path::new("addressType"),
            new.address_type.as_str(),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    errs
}

// ---- Lease ----

/// The members of a Lease's spec that have rules (the rest are free-form or typed).
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSpecRules<'a> {
    pub lease_duration_seconds: Option<i32>,
    pub lease_transitions: Option<i32>,
    #[serde(borrow)]
    pub strategy: Option<&'a str>,
    #[serde(borrow)]
    pub preferred_holder: Option<&'a str>,
}

/// Validates a Lease's spec (upstream `ValidateLeaseSpec`).
pub fn validate_lease_spec(spec: LeaseSpecRules<'_>) -> ErrorList {
    let mut errs = ErrorList::new();
    let sp = Path::new("spec");
    if let Some(d) = spec.lease_duration_seconds
        && d <= 0
    {
        errs.push(field::invalid(
            &sp.child("leaseDurationSeconds"),
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec.lease_transitions
        && t < 0
    {
        errs.push(field::invalid(
            &sp.child("leaseTransitions"),
            t,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(st) = spec.strategy
        && st != "OldestEmulationVersion"
    {
        errs.push(field::not_supported(
            &sp.child("strategy"),
            st,
            &["OldestEmulationVersion"],
        ));
    }
    if !spec.preferred_holder.unwrap_or("").is_empty() && spec.strategy.unwrap_or("").is_empty() {
        errs.push(field::forbidden(
            &sp.child("preferredHolder"),
            "may only be specified if `strategy` is defined",
        ));
    }
    errs
}

fn lease_spec_rules(lease: &Lease) -> LeaseSpecRules<'_> {
    lease
        .spec
        .as_ref()
        .map(|spec| LeaseSpecRules {
            lease_duration_seconds: spec.lease_duration_seconds,
            lease_transitions: spec.lease_transitions,
            strategy: spec.strategy.as_deref(),
            preferred_holder: spec.preferred_holder.as_deref(),
        })
        .unwrap_or_default()
}

/// Validates a Lease (upstream `ValidateLease`).
pub fn validate_lease(lease: &Lease) -> ErrorList {
    let mut errs = validate_object_meta(
        &lease.metadata,
        true,
        NameValidator::Dns1123Subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_lease_spec(lease_spec_rules(lease)));
    errs
}

/// Validates a Lease update (upstream `ValidateLeaseUpdate`).
pub fn validate_lease_update(new: &Lease, old: &Lease) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_lease_spec(lease_spec_rules(new)));
    errs
}

// ---- events.k8s.io/v1 Event ----

fn events_view(e: &Event) -> EventView<'_> {
    EventView {
        namespace: s(&e.metadata.namespace),
        involved_namespace: e
            .regarding
            .as_ref()
            .and_then(|r| r.namespace.as_deref())
            .unwrap_or(""),
        event_time_set: e.event_time.is_some(),
        reporting_controller: s(&e.reporting_controller),
        reporting_instance: s(&e.reporting_instance),
        action: s(&e.action),
        reason: s(&e.reason),
        message: s(&e.note),
    }
}

/// Validates an events.k8s.io/v1 Event on create (upstream `ValidateEventCreate` for
/// `events.k8s.io/v1`: legacy plus strict validation).
pub fn validate_events_event(e: &Event) -> ErrorList {
    let mut errs = legacy_validate_event(&events_view(e), false);
    errs.extend(core_object_meta(
        &e.metadata,
        true,
        NameValidator::Dns1123Subdomain,
    ));
    if let Some(series) = &e.series
        && series.count < 2
    {
        errs.push(field::invalid(
            &Path::new("series").child("count"),
            "",
            "should be at least 2",
        ));
    }
    if e.event_time.is_none() {
        errs.push(field::required(&Path::new("eventTime"), ""));
    }
    let t = s(&e.type_);
    if t != "Normal" && t != "Warning" {
        errs.push(field::invalid(
            &Path::new("type"),
            "",
            &format!("has invalid value: {t}"),
        ));
    }
    if e.deprecated_first_timestamp.is_some() {
        errs.push(field::invalid(
            &Path::new("firstTimestamp"),
            "",
            "needs to be unset",
        ));
    }
    if e.deprecated_last_timestamp.is_some() {
        errs.push(field::invalid(
            &Path::new("lastTimestamp"),
            "",
            "needs to be unset",
        ));
    }
    if e.deprecated_count.unwrap_or(0) != 0 {
        errs.push(field::invalid(&Path::new("count"), "", "needs to be unset"));
    }
    if let Some(src) = &e.deprecated_source
        && (!s(&src.component).is_empty() || !s(&src.host).is_empty())
    {
        errs.push(field::invalid(
            &Path::new("source"),
            "",
            "needs to be unset",
        ));
    }
    errs
}

/// Validates an events.k8s.io/v1 Event update (upstream `ValidateEventUpdate`): everything but
/// the series and metadata is immutable.
pub fn validate_events_event_update(new: &Event, old: &Event) -> ErrorList {
    let mut errs = legacy_validate_event(&events_view(new), false);
    errs.extend(core_object_meta_update(&new.metadata, &old.metadata));
    if let Some(series) = &new.series
        && series.count < 2
    {
        errs.push(field::invalid(
            &Path::new("series").child("count"),
            "",
            "should be at least 2",
        ));
    }
    macro_rules! immutable {
        ($f:ident, $name:expr) => {
            if new.$f != old.$f {
                errs.push(field::invalid(
                    &Path::new($name),
                    BadValue::json(&new.$f),
                    FIELD_IMMUTABLE_ERROR_MSG,
                ));
            }
        };
    }
    immutable!(regarding, "involvedObject");
    immutable!(reason, "reason");
    immutable!(note, "message");
    immutable!(deprecated_source, "source");
    immutable!(deprecated_first_timestamp, "firstTimestamp");
    immutable!(deprecated_last_timestamp, "lastTimestamp");
    immutable!(deprecated_count, "count");
    immutable!(type_, "type");
    immutable!(event_time, "eventTime");
    immutable!(action, "action");
    immutable!(related, "related");
    immutable!(reporting_controller, "reportingController");
    immutable!(reporting_instance, "reportingInstance");
    errs
}
