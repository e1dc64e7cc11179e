//! The service CIDR and ClusterIP picking (upstream `pkg/registry/core/service/ipallocator`).
//! Which addresses are in use is tracked by [`crate::service_alloc`], from the Services in the
//! watch cache plus in-flight reservations.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use crate::error::{ApiError, Cause};

/// An IPv4 service range, e.g. 10.43.0.0/16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceCidr {
    base: u32,
    prefix: u8,
}

impl ServiceCidr {
    /// Parses `a.b.c.d/n`.
    pub fn parse(s: &str) -> Option<ServiceCidr> {
        let (ip, prefix) = s.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        if !(1..=30).contains(&prefix) {
            return None;
        }
        let mask = u32::MAX << (32 - prefix);
        Some(ServiceCidr {
            base: u32::from(ip) & mask,
            prefix,
        })
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// Whether `ip` is inside the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(ip) & mask == self.base
    }

    /// The n-th address of the range (upstream: .1 is the `kubernetes` Service, .10 DNS).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + n)
    }
}

impl std::fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl ServiceCidr {
    /// How many addresses can be allocated: the range without its network and broadcast
    /// addresses (upstream bitmap allocator `max`). Index 0 is the first address after the
    /// network address.
    pub fn max(&self) -> u32 {
        self.size().saturating_sub(2)
    }

    /// The address at allocator index `i` (index 0 = `.1`).
    pub fn at(&self, i: u32) -> Ipv4Addr {
        self.nth(i + 1)
    }

    /// The size of the low "static" band of the range, left to explicit requests: dynamic
    /// allocation prefers the addresses above it (upstream ipallocator `calculateRangeOffset`:
    /// `min(max(16, size/16), 256)`, 0 for ranges of 16 addresses or less). It keeps `.1`
    /// (the `kubernetes` Service) and `.10` (DNS) free.
    pub fn static_band(&self) -> u32 {
        const MIN: u32 = 16;
        const MAX: u32 = 256;
        const STEP: u32 = 16;
        let size = self.size();
        if size <= MIN {
            return 0;
        }
        (size / STEP).clamp(MIN, MAX)
    }
}

fn invalid(field: &str, value: &str, why: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {why}"),
        field: field.into(),
    }
}

/// Why a ClusterIP could not be allocated.
#[derive(Debug)]
pub enum IpAllocError {
    /// The request is wrong (422 with these causes).
    Invalid(Vec<Cause>),
    /// The range is full (500).
    Full,
}

/// Fills `spec.clusterIP(s)` of a Service that needs one: allocates one when unset (upper
/// band first), checks a requested one is in range and free (`used` tells whether an address
/// is taken); headless (`None`) Services get none. Defaults `ipFamilies`/`ipFamilyPolicy` for
/// the single-stack IPv4 cluster. Returns the address to reserve.
pub fn allocate_cluster_ip(
    cidr: ServiceCidr,
    svc: &mut Value,
    used: impl Fn(Ipv4Addr) -> bool,
) -> Result<Option<Ipv4Addr>, IpAllocError> {
    let requested = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| {
            svc.pointer("/spec/clusterIPs/0")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        });
    // A single-stack IPv4 cluster: upstream defaults the families at allocation.
    if svc
        .pointer("/spec/ipFamilies")
        .is_none_or(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty))
    {
        svc["spec"]["ipFamilies"] = json!(["IPv4"]);
    }
    if svc
        .pointer("/spec/ipFamilyPolicy")
        .is_none_or(Value::is_null)
    {
        svc["spec"]["ipFamilyPolicy"] = json!("SingleStack");
    }
    if requested.as_deref() == Some("None") {
        svc["spec"]["clusterIP"] = json!("None");
        svc["spec"]["clusterIPs"] = json!(["None"]);
        return Ok(None);
    }
    let ip = match requested {
        Some(s) => {
            let ip: Ipv4Addr = s.parse().map_err(|_| {
                IpAllocError::Invalid(vec![invalid(
                    "spec.clusterIPs[0]",
                    &format!("\"{s}\""),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )])
            })?;
            let index = u32::from(ip).wrapping_sub(u32::from(cidr.nth(1)));
            if !cidr.contains(ip) || index >= cidr.max() {
                return Err(IpAllocError::Invalid(vec![invalid(
                    "spec.clusterIPs",
                    &format!("[]string{{\"{s}\"}}"),
                    &format!(
                        "failed to allocate IP {s}: the provided IP ({s}) is not in the valid range. The range of valid IPs is {cidr}"
                    ),
                )]));
            }
            if used(ip) {
                return Err(IpAllocError::Invalid(vec![invalid(
                    "spec.clusterIPs",
                    &format!("[]string{{\"{s}\"}}"),
                    &format!("failed to allocate IP {s}: provided IP is already allocated"),
                )]));
            }
            ip
        }
        None => {
            let i = crate::portalloc::pick_with_offset(cidr.max(), cidr.static_band(), |i| {
                !used(cidr.at(i))
            })
            .ok_or(IpAllocError::Full)?;
            cidr.at(i)
        }
    };
    let s = ip.to_string();
    svc["spec"]["clusterIP"] = json!(s);
    svc["spec"]["clusterIPs"] = json!([s]);
    Ok(Some(ip))
}

/// The ClusterIPs of a Service object.
pub fn service_ips(svc: &Value) -> Vec<Ipv4Addr> {
    svc.pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Converts allocation failures into a 422 for a Service.
pub fn invalid_service(name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("", "Service", name, causes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn alloc(
        cidr: ServiceCidr,
        svc: &mut Value,
        in_use: &HashSet<Ipv4Addr>,
    ) -> Result<Option<Ipv4Addr>, IpAllocError> {
        allocate_cluster_ip(cidr, svc, |ip| in_use.contains(&ip))
    }

    fn message(e: IpAllocError) -> String {
        match e {
            IpAllocError::Invalid(c) => c[0].message.clone(),
            IpAllocError::Full => "full".into(),
        }
    }

    #[test]
    fn allocates_unique_addresses_in_the_dynamic_band() {
        let cidr = ServiceCidr::parse("10.43.0.0/16").unwrap();
        assert_eq!(cidr.static_band(), 256);
        let mut in_use = HashSet::new();
        for _ in 0..200 {
            let mut svc = json!({"spec":{"ports":[{"port":80}]}});
            let ip = alloc(cidr, &mut svc, &in_use).unwrap().unwrap();
            assert!(cidr.contains(ip));
            // .1 ... 10.43.1.0 are the static band.
            assert!(u32::from(ip) > u32::from(cidr.nth(256)), "{ip}");
            assert!(in_use.insert(ip), "duplicate {ip}");
            assert_eq!(svc["spec"]["clusterIPs"][0], ip.to_string());
        }
    }

    #[test]
    fn a_full_upper_band_falls_back_to_the_static_band() {
        // /27: 30 usable addresses, static band 16 (indexes 0..16 = .1 ... .16).
        let cidr = ServiceCidr::parse("10.0.0.0/27").unwrap();
        assert_eq!(cidr.static_band(), 16);
        let mut in_use = HashSet::new();
        for _ in 0..30 {
            let mut svc = json!({"spec":{}});
            let ip = alloc(cidr, &mut svc, &in_use).unwrap().unwrap();
            let idx = u32::from(ip) - u32::from(cidr.nth(1));
            // The upper band (14 addresses) is used up before any static address.
            assert_eq!(idx >= 16, in_use.len() < 14, "{ip} after {}", in_use.len());
            in_use.insert(ip);
        }
        let mut svc = json!({"spec":{}});
        assert!(matches!(
            alloc(cidr, &mut svc, &in_use),
            Err(IpAllocError::Full)
        ));
    }

    #[test]
    fn requested_addresses_are_checked() {
        let cidr = ServiceCidr::parse("10.43.0.0/16").unwrap();
        let mut in_use = HashSet::new();
        let mut svc = json!({"spec":{"clusterIP":"10.43.0.50"}});
        assert_eq!(
            alloc(cidr, &mut svc, &in_use).unwrap(),
            Some("10.43.0.50".parse().unwrap())
        );
        in_use.insert("10.43.0.50".parse().unwrap());
        let mut again = json!({"spec":{"clusterIP":"10.43.0.50"}});
        let err = message(alloc(cidr, &mut again, &in_use).unwrap_err());
        assert!(err.contains("provided IP is already allocated"), "{err}");
        let mut outside = json!({"spec":{"clusterIP":"192.168.1.1"}});
        let err = message(alloc(cidr, &mut outside, &in_use).unwrap_err());
        assert!(
            err.contains("is not in the valid range. The range of valid IPs is 10.43.0.0/16"),
            "{err}"
        );
        let mut broadcast = json!({"spec":{"clusterIP":"10.43.255.255"}});
        assert!(alloc(cidr, &mut broadcast, &in_use).is_err());
        let mut headless = json!({"spec":{"clusterIP":"None"}});
        assert_eq!(alloc(cidr, &mut headless, &in_use).unwrap(), None);
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(headless["spec"]["ipFamilyPolicy"], "SingleStack");
    }
}
