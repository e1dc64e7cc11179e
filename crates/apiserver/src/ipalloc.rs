//! ClusterIP allocation for Services from the service CIDR (upstream
//! `pkg/registry/core/service/ipallocator`). The set of allocated addresses is derived from the
//! Services in the watch cache, so it survives restarts without extra state; addresses handed
//! out but not yet visible in the cache are held as reservations.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use parking_lot::Mutex;
use rand::Rng;
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

/// The allocator.
pub struct ClusterIpAllocator {
    cidr: ServiceCidr,
    reserved: Mutex<HashSet<Ipv4Addr>>,
}

fn invalid(field: &str, value: &str, why: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {why}"),
        field: field.into(),
    }
}

impl ClusterIpAllocator {
    /// An allocator over `cidr`.
    pub fn new(cidr: ServiceCidr) -> ClusterIpAllocator {
        ClusterIpAllocator {
            cidr,
            reserved: Mutex::new(HashSet::new()),
        }
    }

    /// The range.
    pub fn cidr(&self) -> ServiceCidr {
        self.cidr
    }

    /// Fills `spec.clusterIP(s)` of a new Service: allocates one when unset, checks a requested
    /// one is in range and free; headless (`None`) and ExternalName Services get none. `in_use`
    /// lists the addresses of existing Services. Returns the reserved address, to be released
    /// with [`ClusterIpAllocator::release`] once the Service is stored or the create failed.
    pub fn allocate(
        &self,
        svc: &mut Value,
        in_use: &HashSet<Ipv4Addr>,
    ) -> Result<Option<Ipv4Addr>, Vec<Cause>> {
        let type_ = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if type_ == "ExternalName" {
            return Ok(None);
        }
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
        if svc.pointer("/spec/ipFamilies").is_none_or(Value::is_null) {
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
        let mut reserved = self.reserved.lock();
        let ip = match requested {
            Some(s) => {
                let ip: Ipv4Addr = s.parse().map_err(|_| {
                    vec![invalid(
                        "spec.clusterIPs[0]",
                        &format!("\"{s}\""),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    )]
                })?;
                if !self.cidr.contains(ip) {
                    return Err(vec![invalid(
                        "spec.clusterIPs",
                        &format!("[]string{{\"{s}\"}}"),
                        &format!(
                            "failed to allocate IP {s}: the provided IP ({s}) is not in the valid range. The range of valid IPs is {}",
                            self.cidr
                        ),
                    )]);
                }
                if in_use.contains(&ip) || reserved.contains(&ip) {
                    return Err(vec![invalid(
                        "spec.clusterIPs",
                        &format!("[]string{{\"{s}\"}}"),
                        &format!("failed to allocate IP {s}: provided IP is already allocated"),
                    )]);
                }
                ip
            }
            None => {
                let size = self.cidr.size();
                // Skip the network address, .1 (the `kubernetes` Service) and the broadcast.
                let free = |ip: &Ipv4Addr| !in_use.contains(ip) && !reserved.contains(ip);
                let mut rng = rand::rng();
                let mut found = None;
                for _ in 0..64 {
                    let ip = self.cidr.nth(rng.random_range(2..size - 1));
                    if free(&ip) {
                        found = Some(ip);
                        break;
                    }
                }
                if found.is_none() {
                    found = (2..size - 1).map(|n| self.cidr.nth(n)).find(free);
                }
                found.ok_or_else(|| {
                    vec![invalid(
                        "spec.clusterIPs",
                        "[]",
                        "failed to allocate a serviceIP: range is full",
                    )]
                })?
            }
        };
        reserved.insert(ip);
        let s = ip.to_string();
        svc["spec"]["clusterIP"] = json!(s);
        svc["spec"]["clusterIPs"] = json!([s]);
        Ok(Some(ip))
    }

    /// Drops a reservation.
    pub fn release(&self, ip: Ipv4Addr) {
        self.reserved.lock().remove(&ip);
    }
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

    #[test]
    fn allocates_unique_addresses_in_range() {
        let cidr = ServiceCidr::parse("10.43.0.0/16").unwrap();
        let a = ClusterIpAllocator::new(cidr);
        let mut in_use = HashSet::new();
        for _ in 0..200 {
            let mut svc = json!({"spec":{"ports":[{"port":80}]}});
            let ip = a.allocate(&mut svc, &in_use).unwrap().unwrap();
            assert!(cidr.contains(ip));
            assert_ne!(ip, cidr.nth(1));
            assert!(in_use.insert(ip), "duplicate {ip}");
            assert_eq!(svc["spec"]["clusterIPs"][0], ip.to_string());
        }
    }

    #[test]
    fn requested_addresses_are_checked() {
        let a = ClusterIpAllocator::new(ServiceCidr::parse("10.43.0.0/16").unwrap());
        let mut svc = json!({"spec":{"clusterIP":"10.43.0.50"}});
        assert_eq!(
            a.allocate(&mut svc, &HashSet::new()).unwrap(),
            Some("10.43.0.50".parse().unwrap())
        );
        let mut again = json!({"spec":{"clusterIP":"10.43.0.50"}});
        let err = a.allocate(&mut again, &HashSet::new()).unwrap_err();
        assert!(err[0].message.contains("provided IP is already allocated"));
        let mut outside = json!({"spec":{"clusterIP":"192.168.1.1"}});
        let err = a.allocate(&mut outside, &HashSet::new()).unwrap_err();
        assert!(
            err[0]
                .message
                .contains("is not in the valid range. The range of valid IPs is 10.43.0.0/16")
        );
        let mut headless = json!({"spec":{"clusterIP":"None"}});
        assert_eq!(a.allocate(&mut headless, &HashSet::new()).unwrap(), None);
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(headless["spec"]["ipFamilyPolicy"], "SingleStack");
    }
}
