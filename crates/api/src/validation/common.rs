//! Helpers shared by the per-kind validators (upstream `pkg/apis/core/validation` helpers and
//! `pkg/apis/core/helper` resource-name classification).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value,
    is_valid_port_name, is_valid_port_num,
};
use super::objectmeta::{
    NameValidator, validate_label_name, validate_object_meta, validate_object_meta_update,
};
use crate::field::{self, BadValue, ErrorList, Path};
use crate::quantity::{QUANTITY_FORMAT_ERROR, parse_quantity};

/// Upstream `isNotIntegerErrorMsg`.
pub(crate) const IS_NOT_INTEGER_ERROR_MSG: &str = "must be an integer";
/// Upstream `isNotPositiveErrorMsg`.
pub(crate) const IS_NOT_POSITIVE_ERROR_MSG: &str = "must be greater than zero";
/// Upstream `isInvalidQuotaResource`.
pub(crate) const IS_INVALID_QUOTA_RESOURCE: &str = "must be a standard resource for quota";

pub(crate) fn s(o: &Option<String>) -> &str {
    o.as_deref().unwrap_or("")
}

/// Upstream `ValidateDNS1123Label`.
pub(crate) fn validate_dns1123_label(value: &str, path: &Path) -> ErrorList {
    is_dns1123_label(value)
        .into_iter()
        .map(|m| field::invalid(path, value, &m))
        .collect()
}

/// Upstream `ValidateDNS1123Subdomain`.
pub(crate) fn validate_dns1123_subdomain(value: &str, path: &Path) -> ErrorList {
    is_dns1123_subdomain(value)
        .into_iter()
        .map(|m| field::invalid(path, value, &m))
        .collect()
}

/// Upstream `ValidateQualifiedName`.
pub(crate) fn validate_qualified_name(value: &str, path: &Path) -> ErrorList {
    is_qualified_name(value)
        .into_iter()
        .map(|m| field::invalid(path, value, &m))
        .collect()
}

/// Name check with a [`NameValidator`], as `for _, msg := range nameFn(v, false)`.
pub(crate) fn validate_name(nv: NameValidator, value: &str, path: &Path) -> ErrorList {
    nv.validate(value, false)
        .into_iter()
        .map(|m| field::invalid(path, value, &m))
        .collect()
}

const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// Upstream `validateKubeFinalizerName`.
pub(crate) fn validate_kube_finalizer_name(value: &str, path: &Path) -> ErrorList {
    if !value.contains('/') && !STANDARD_FINALIZERS.contains(&value) {
        return vec![field::invalid(
            path,
            value,
            "name is neither a standard finalizer name nor is it fully qualified",
        )];
    }
    Vec::new()
}

/// The core-group `ValidateObjectMeta` (generic checks plus legacy finalizer names).
pub(crate) fn core_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    nv: NameValidator,
) -> ErrorList {
    let path = Path::new("metadata");
    let mut errs = validate_object_meta(meta, namespaced, nv, &path);
    for (i, f) in meta.finalizers.iter().flatten().enumerate() {
        errs.extend(validate_kube_finalizer_name(
            f,
            &path.child("finalizers").index(i),
        ));
    }
    errs
}

/// The core-group `ValidateObjectMetaUpdate`.
pub(crate) fn core_object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> ErrorList {
    let path = Path::new("metadata");
    let mut errs = validate_object_meta_update(new, old, &path);
    for (i, f) in new.finalizers.iter().flatten().enumerate() {
        errs.extend(validate_kube_finalizer_name(
            f,
            &path.child("finalizers").index(i),
        ));
    }
    errs
}

/// Upstream `ValidatePortNumOrName`.
pub(crate) fn validate_port_num_or_name(port: &IntOrString, path: &Path) -> ErrorList {
    match port {
        IntOrString::Int(n) => is_valid_port_num(i64::from(*n))
            .into_iter()
            .map(|m| field::invalid(path, *n, &m))
            .collect(),
        IntOrString::String(s) => is_valid_port_name(s)
            .into_iter()
            .map(|m| field::invalid(path, s, &m))
            .collect(),
    }
}

/// Renders an IntOrString as Go's JSON does.
pub(crate) fn int_or_string_value(v: &IntOrString) -> BadValue {
    match v {
        IntOrString::Int(n) => BadValue::from(*n),
        IntOrString::String(s) => BadValue::from(s.as_str()),
    }
}

/// Upstream `IsValidIP` (strict: canonical form, no IPv4-mapped IPv6).
pub(crate) fn is_valid_ip(path: &Path, value: &str) -> ErrorList {
    match value.parse::<IpAddr>() {
        Err(_) => vec![field::invalid(
            path,
            value,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        )],
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => vec![field::invalid(
            path,
            value,
            "must not be an IPv4-mapped IPv6 address",
        )],
        Ok(ip) => {
            let canonical = ip.to_string();
            if canonical == value {
                Vec::new()
            } else {
                vec![field::invalid(
                    path,
                    value,
                    &format!(
                        "must be in canonical form ({})",
                        field::go_quote(&canonical)
                    ),
                )]
            }
        }
    }
}

/// Upstream `IsValidCIDR`.
pub(crate) fn is_valid_cidr(path: &Path, value: &str) -> ErrorList {
    let bad = || {
        vec![field::invalid(
            path,
            value,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        )]
    };
    let Some((ip_s, len_s)) = value.split_once('/') else {
        return bad();
    };
    let Ok(ip) = ip_s.parse::<IpAddr>() else {
        return bad();
    };
    let Ok(prefix) = len_s.parse::<u8>() else {
        return bad();
    };
    if len_s.len() > 1 && len_s.starts_with('0') {
        return vec![field::invalid(
            path,
            value,
            "must not have leading 0s in IP or prefix length",
        )];
    }
    let (bits, masked) = match ip {
        IpAddr::V4(v4) => {
            if prefix > 32 {
                return bad();
            }
            let n = u32::from(v4);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            (
                n != n & mask,
                IpAddr::from(std::net::Ipv4Addr::from(n & mask)),
            )
        }
        IpAddr::V6(v6) => {
            if prefix > 128 {
                return bad();
            }
            if v6.to_ipv4_mapped().is_some() {
                return vec![field::invalid(
                    path,
                    value,
                    "must not have an IPv4-mapped IPv6 address",
                )];
            }
            let n = u128::from(v6);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            (
                n != n & mask,
                IpAddr::from(std::net::Ipv6Addr::from(n & mask)),
            )
        }
    };
    if bits {
        return vec![field::invalid(
            path,
            value,
            "must not have bits set beyond the prefix length",
        )];
    }
    let canonical = format!("{masked}/{prefix}");
    if canonical != value {
        return vec![field::invalid(
            path,
            value,
            &format!(
                "must be in canonical form ({})",
                field::go_quote(&canonical)
            ),
        )];
    }
    Vec::new()
}

/// Upstream `ValidateNonSpecialIP`.
pub(crate) fn validate_non_special_ip(value: &str, path: &Path) -> ErrorList {
    let Ok(ip) = value.parse::<IpAddr>() else {
        return vec![field::invalid(path, value, "must be a valid IP address")];
    };
    let mut errs = ErrorList::new();
    if ip.is_unspecified() {
        errs.push(field::invalid(
            path,
            value,
            &format!("may not be unspecified ({value})"),
        ));
    }
    if ip.is_loopback() {
        errs.push(field::invalid(
            path,
            value,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let (ll_unicast, ll_multicast) = match ip {
        IpAddr::V4(v4) => (
            v4.is_link_local(),
            v4.octets()[0] == 224 && v4.octets()[1] == 0 && v4.octets()[2] == 0,
        ),
        IpAddr::V6(v6) => {
            let seg = v6.segments()[0];
            (seg & 0xffc0 == 0xfe80, seg & 0xff0f == 0xff02)
        }
    };
    if ll_unicast {
        errs.push(field::invalid(
            path,
            value,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if ll_multicast {
        errs.push(field::invalid(
            path,
            value,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

// ---- resource names (upstream pkg/apis/core/helper) ----

fn is_huge_page(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// Upstream `IsNativeResource`: no domain, or a `kubernetes.io/` domain.
pub(crate) fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Upstream `IsExtendedResourceName`.
pub(crate) fn is_extended_resource_name(name: &str) -> bool {
    if is_native_resource(name) || name.starts_with("requests.") {
        return false;
    }
    is_qualified_name(&format!("requests.{name}")).is_empty()
}

/// Upstream `IsOvercommitAllowed`.
pub(crate) fn is_overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !is_huge_page(name)
}

const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];
const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
    "storage",
    "requests.storage",
];
const STANDARD_QUOTA_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];
const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

fn is_standard_resource_name(name: &str) -> bool {
    STANDARD_RESOURCES.contains(&name)
        || is_huge_page(name)
        || name.starts_with("requests.hugepages-")
        || name.starts_with("limits.hugepages-")
}

/// Upstream `IsIntegerResourceName`.
pub(crate) fn is_integer_resource_name(name: &str) -> bool {
    INTEGER_RESOURCES.contains(&name) || is_extended_resource_name(name)
}

/// Upstream `validateResourceName`.
pub(crate) fn validate_resource_name(name: &str, path: &Path) -> ErrorList {
    let errs: ErrorList = is_qualified_name(name)
        .into_iter()
        .map(|m| field::invalid(path, name, &m))
        .collect();
    if !errs.is_empty() {
        return errs;
    }
    if !name.contains('/') && !is_standard_resource_name(name) {
        return vec![field::invalid(
            path,
            name,
            "must be a standard resource type or fully qualified",
        )];
    }
    errs
}

/// Upstream `validateContainerResourceName`.
pub(crate) fn validate_container_resource_name(name: &str, path: &Path) -> ErrorList {
    let mut errs = validate_resource_name(name, path);
    if !name.contains('/') {
        if !(STANDARD_CONTAINER_RESOURCES.contains(&name) || is_huge_page(name)) {
            errs.push(field::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name) && !is_extended_resource_name(name) {
        errs.push(field::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
    errs
}

/// Upstream `ValidateResourceQuotaResourceName`.
pub(crate) fn validate_quota_resource_name(name: &str, path: &Path) -> ErrorList {
    let mut errs = validate_resource_name(name, path);
    let standard = STANDARD_QUOTA_RESOURCES.contains(&name)
        || is_huge_page(name)
        || name.starts_with("requests.hugepages-");
    if !name.contains('/') && !standard {
        errs.push(field::invalid(path, name, IS_INVALID_QUOTA_RESOURCE));
    }
    errs
}

/// Upstream `ValidateResourceQuantityValue`: non-negative, integer for integer resources.
/// Unparseable quantities (rejected by upstream's decoder) are reported here too.
pub(crate) fn validate_resource_quantity_value(name: &str, q: &Quantity, path: &Path) -> ErrorList {
    let Ok(v) = parse_quantity(&q.0) else {
        return vec![field::invalid(path, q.0.as_str(), QUANTITY_FORMAT_ERROR)];
    };
    let mut errs = ErrorList::new();
    if v.nanos() < 0 {
        errs.push(field::invalid(
            path,
            q.0.as_str(),
            super::objectmeta::IS_NEGATIVE_ERROR_MSG,
        ));
    }
    if is_integer_resource_name(name) && v.milli_value() % 1000 != 0 {
        errs.push(field::invalid(path, q.0.as_str(), IS_NOT_INTEGER_ERROR_MSG));
    }
    errs
}

/// Upstream `ValidateLabels` for a plain map (node selectors, service selectors).
pub(crate) fn validate_label_map(map: Option<&BTreeMap<String, String>>, path: &Path) -> ErrorList {
    super::objectmeta::validate_labels(map, path)
}

const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Upstream `validateTaintEffect`.
pub(crate) fn validate_taint_effect(effect: &str, allow_empty: bool, path: &Path) -> ErrorList {
    if !allow_empty && effect.is_empty() {
        return vec![field::required(path, "")];
    }
    if TAINT_EFFECTS.contains(&effect) {
        Vec::new()
    } else {
        vec![field::not_supported(path, effect, TAINT_EFFECTS)]
    }
}

/// Upstream `validateNodeTaints`.
pub(crate) fn validate_node_taints(taints: &[Taint], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for (i, t) in taints.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_label_name(&t.key, &p.child("key")));
        let value = s(&t.value);
        let msgs = is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(field::invalid(&p.child("value"), value, &msgs.join(";")));
        }
        errs.extend(validate_taint_effect(&t.effect, false, &p.child("effect")));
        let key = (t.effect.clone(), t.key.clone());
        if seen.contains(&key) {
            let mut e = field::duplicate(&p, BadValue::json(t));
            e.detail = "taints must be unique by key and effect pair".to_owned();
            errs.push(e);
            continue;
        }
        seen.push(key);
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_and_cidr() {
        let p = Path::new("ip");
        assert!(is_valid_ip(&p, "10.0.0.1").is_empty());
        assert!(is_valid_ip(&p, "2001:db8::1").is_empty());
        assert_eq!(
            is_valid_ip(&p, "nope")[0].message(),
            "ip: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        );
        assert_eq!(
            is_valid_ip(&p, "2001:DB8::1")[0].detail,
            "must be in canonical form (\"2001:db8::1\")"
        );
        assert!(is_valid_cidr(&p, "10.0.0.0/8").is_empty());
        assert_eq!(
            is_valid_cidr(&p, "10.0.0.1/8")[0].detail,
            "must not have bits set beyond the prefix length"
        );
        assert_eq!(validate_non_special_ip("127.0.0.1", &p).len(), 1);
        assert_eq!(validate_non_special_ip("169.254.1.1", &p).len(), 1);
    }

    #[test]
    fn resource_names() {
        let p = Path::new("r");
        assert!(validate_container_resource_name("cpu", &p).is_empty());
        assert!(validate_container_resource_name("example.com/gpu", &p).is_empty());
        assert_eq!(
            validate_container_resource_name("pods", &p)[0].detail,
            "must be a standard resource for containers"
        );
        assert_eq!(
            validate_resource_name("foo", &p)[0].detail,
            "must be a standard resource type or fully qualified"
        );
        assert!(is_integer_resource_name("example.com/gpu"));
        assert!(!is_overcommit_allowed("example.com/gpu"));
        assert_eq!(
            validate_resource_quantity_value("pods", &Quantity("1500m".into()), &p)[0].detail,
            "must be an integer"
        );
        assert_eq!(
            validate_resource_quantity_value("cpu", &Quantity("-1".into()), &p)[0].message(),
            "r: Invalid value: \"-1\": must be greater than or equal to 0"
        );
    }
}
