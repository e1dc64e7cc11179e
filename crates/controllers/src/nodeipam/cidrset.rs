//! A set of equal-size subnets of one cluster CIDR (upstream `nodeipam/ipam/cidrset`): a
//! bitmap of used subnets and a round-robin next candidate.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Most subnet bits a set may have (upstream `clusterSubnetMaxDiff`).
pub const MAX_SUBNET_BITS: u8 = 16;

/// A CIDR error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    /// Not `address/prefix`.
    #[error("invalid CIDR address: {0}")]
    Invalid(String),
    /// The node mask is not within the cluster CIDR, or makes too many subnets.
    #[error("CIDRSet: subnet mask size {node} invalid for cluster CIDR {cluster}")]
    MaskSize {
        /// The cluster CIDR.
        cluster: String,
        /// The node mask size.
        node: u8,
    },
    /// The subnet is not one of the set.
    #[error("cidr {0} is out of the range of the cluster CIDR")]
    OutOfRange(String),
}

/// An IPv4 or IPv6 network, the address masked to its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: u128,
    prefix: u8,
    v6: bool,
}

impl Cidr {
    fn bits(&self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }
}

fn mask(addr: u128, prefix: u8, bits: u8) -> u128 {
    let host = bits - prefix;
    if host >= 128 {
        0
    } else {
        (addr >> host) << host
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let bad = || CidrError::Invalid(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let ip: IpAddr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        let (addr, v6) = match ip {
            IpAddr::V4(v) => (u128::from(u32::from(v)), false),
            IpAddr::V6(v) => (u128::from(v), true),
        };
        let bits = if v6 { 128 } else { 32 };
        if prefix > bits {
            return Err(bad());
        }
        Ok(Self {
            addr: mask(addr, prefix, bits),
            prefix,
            v6,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.v6 {
            write!(f, "{}/{}", Ipv6Addr::from(self.addr), self.prefix)
        } else {
            let v4 = u32::try_from(self.addr).unwrap_or(u32::MAX);
            write!(f, "{}/{}", Ipv4Addr::from(v4), self.prefix)
        }
    }
}

/// The subnets of one cluster CIDR.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Cidr,
    node_mask: u8,
    used: Vec<bool>,
    allocated: usize,
    next: usize,
}

impl CidrSet {
    /// The `/node_mask` subnets of `cluster`.
    pub fn new(cluster: Cidr, node_mask: u8) -> Result<Self, CidrError> {
        if node_mask < cluster.prefix
            || node_mask > cluster.bits()
            || node_mask - cluster.prefix > MAX_SUBNET_BITS
        {
            return Err(CidrError::MaskSize {
                cluster: cluster.to_string(),
                node: node_mask,
            });
        }
        let n = 1usize << (node_mask - cluster.prefix);
        Ok(Self {
            cluster,
            node_mask,
            used: vec![false; n],
            allocated: 0,
            next: 0,
        })
    }

    /// How many subnets are in use.
    pub fn allocated(&self) -> usize {
        self.allocated
    }

    fn subnet(&self, i: usize) -> Cidr {
        let host = self.cluster.bits() - self.node_mask;
        Cidr {
            addr: self.cluster.addr | ((i as u128) << host),
            prefix: self.node_mask,
            v6: self.cluster.v6,
        }
    }

    fn index_of(&self, c: Cidr) -> Result<usize, CidrError> {
        let out = || CidrError::OutOfRange(c.to_string());
        if c.v6 != self.cluster.v6
            || c.prefix != self.node_mask
            || mask(c.addr, self.cluster.prefix, self.cluster.bits()) != self.cluster.addr
        {
            return Err(out());
        }
        let host = self.cluster.bits() - self.node_mask;
        let i = (c.addr - self.cluster.addr) >> host;
        usize::try_from(i).map_err(|_| out())
    }

    /// The next free subnet, marked used (upstream `AllocateNext`); `None` when all are used.
    pub fn allocate_next(&mut self) -> Option<Cidr> {
        let n = self.used.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if !self.used[i] {
                self.used[i] = true;
                self.allocated += 1;
                self.next = (i + 1) % n;
                return Some(self.subnet(i));
            }
        }
        None
    }

    /// Marks a subnet used (idempotent).
    pub fn occupy(&mut self, c: Cidr) -> Result<(), CidrError> {
        let i = self.index_of(c)?;
        if !self.used[i] {
            self.used[i] = true;
            self.allocated += 1;
        }
        Ok(())
    }

    /// Marks a subnet free (idempotent; ignores subnets outside the set).
    pub fn release(&mut self, c: Cidr) {
        if let Ok(i) = self.index_of(c)
            && self.used[i]
        {
            self.used[i] = false;
            self.allocated -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn allocates_distinct_subnets_until_exhausted() {
        let mut s = CidrSet::new("10.42.0.0/22".parse().unwrap(), 24).unwrap();
        let got: Vec<String> = (0..4)
            .map(|_| s.allocate_next().unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "10.42.0.0/24",
                "10.42.1.0/24",
                "10.42.2.0/24",
                "10.42.3.0/24"
            ]
        );
        assert_eq!(s.allocate_next(), None);
        s.release("10.42.1.0/24".parse().unwrap());
        assert_eq!(s.allocate_next().unwrap().to_string(), "10.42.1.0/24");
    }

    #[test]
    fn occupied_subnets_are_skipped() {
        let mut s = CidrSet::new("10.42.0.0/16".parse().unwrap(), 24).unwrap();
        s.occupy("10.42.0.0/24".parse().unwrap()).unwrap();
        s.occupy("10.42.0.0/24".parse().unwrap()).unwrap();
        assert_eq!(s.allocated(), 1);
        assert_eq!(s.allocate_next().unwrap().to_string(), "10.42.1.0/24");
        assert!(s.occupy("10.43.0.0/24".parse().unwrap()).is_err());
    }

    #[test]
    fn ipv6_and_bad_masks() {
        let mut s = CidrSet::new("fd00:10::/56".parse().unwrap(), 64).unwrap();
        assert_eq!(s.allocate_next().unwrap().to_string(), "fd00:10::/64");
        assert_eq!(s.allocate_next().unwrap().to_string(), "fd00:10:0:1::/64");
        assert!(CidrSet::new("10.0.0.0/8".parse().unwrap(), 30).is_err());
        assert!(CidrSet::new("10.0.0.0/24".parse().unwrap(), 16).is_err());
        assert!("10.0.0.0".parse::<Cidr>().is_err());
    }
}
