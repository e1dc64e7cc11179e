//! Pod IPs of one node, allocated from its `spec.podCIDR` like the host-local CNI plugin:
//! in order from the third address (the first two are the network and the gateway), wrapping
//! around, never handing out an address a live pod of the node holds.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// The pod IPs of one node.
#[derive(Debug, Default)]
pub struct PodIps {
    /// Network address and number of addresses of the pod CIDR.
    range: Option<(u32, u32)>,
    by_uid: HashMap<String, u32>,
    used: HashSet<u32>,
    next: u32,
}

impl PodIps {
    /// Whether a pod CIDR is known.
    pub fn has_range(&self) -> bool {
        self.range.is_some()
    }

    /// Sets the pod CIDR; a different CIDR forgets every allocation.
    pub fn set_range(&mut self, network: Ipv4Addr, prefix: u8) {
        let size = if prefix == 0 {
            u32::MAX
        } else {
            1u32 << (32 - u32::from(prefix.min(32))).min(31)
        };
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix.min(32)))
        };
        let range = (u32::from(network) & mask, size);
        if self.range != Some(range) {
            self.range = Some(range);
            self.by_uid.clear();
            self.used.clear();
            self.next = 0;
        }
    }

    fn first_last(&self) -> Option<(u32, u32)> {
        let (_, size) = self.range?;
        // Skip the network address and the gateway, and the broadcast address.
        if size >= 4 {
            Some((2, size - 2))
        } else {
            Some((0, size - 1))
        }
    }

    /// Records the IP a pod already has (a pod running before this process started).
    pub fn record(&mut self, uid: &str, ip: Ipv4Addr) {
        let Some((network, size)) = self.range else {
            return;
        };
        let offset = u32::from(ip).wrapping_sub(network);
        if offset < size && !self.by_uid.contains_key(uid) {
            self.by_uid.insert(uid.to_string(), offset);
            self.used.insert(offset);
        }
    }

    /// The IP of a pod: the one it was given, or the next free one. `None` without a pod CIDR
    /// or when every address is taken.
    pub fn allocate(&mut self, uid: &str) -> Option<Ipv4Addr> {
        let (network, _) = self.range?;
        if let Some(offset) = self.by_uid.get(uid) {
            return Some(Ipv4Addr::from(network.wrapping_add(*offset)));
        }
        let (first, last) = self.first_last()?;
        let count = last - first + 1;
        for i in 0..count {
            let offset = first + (self.next.wrapping_add(i)) % count;
            if self.used.insert(offset) {
                self.next = (offset - first + 1) % count;
                self.by_uid.insert(uid.to_string(), offset);
                return Some(Ipv4Addr::from(network.wrapping_add(offset)));
            }
        }
        None
    }

    /// Frees the IP of a pod (deleted or terminated).
    pub fn release(&mut self, uid: &str) {
        if let Some(offset) = self.by_uid.remove(uid) {
            self.used.remove(&offset);
        }
    }

    /// Number of IPs in use.
    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_in_order_and_skips_live_ips() {
        let mut ips = PodIps::default();
        assert_eq!(ips.allocate("a"), None);
        ips.set_range(Ipv4Addr::new(10, 42, 7, 0), 24);
        ips.record("old", Ipv4Addr::new(10, 42, 7, 3));
        assert_eq!(ips.allocate("a"), Some(Ipv4Addr::new(10, 42, 7, 2)));
        assert_eq!(ips.allocate("b"), Some(Ipv4Addr::new(10, 42, 7, 4)));
        // Idempotent per pod.
        assert_eq!(ips.allocate("a"), Some(Ipv4Addr::new(10, 42, 7, 2)));
        ips.release("a");
        // Released addresses are reused only after wrapping around.
        assert_eq!(ips.allocate("c"), Some(Ipv4Addr::new(10, 42, 7, 5)));
        assert_eq!(ips.in_use(), 3);
    }

    #[test]
    fn exhausts_a_small_range() {
        let mut ips = PodIps::default();
        ips.set_range(Ipv4Addr::new(10, 0, 0, 0), 29); // 8 addresses, 5 usable (.2 - .6)
        let got: Vec<_> = (0..6).map(|i| ips.allocate(&i.to_string())).collect();
        assert!(got[..5].iter().all(Option::is_some));
        assert_eq!(got[5], None);
        ips.release("1");
        assert_eq!(ips.allocate("x"), Some(Ipv4Addr::new(10, 0, 0, 3)));
    }
}
