//! The NodePort range (upstream `pkg/registry/core/service/portallocator` and
//! `k8s.io/apimachinery/pkg/util/net.PortRange`): `--service-node-port-range`, and the
//! dynamic/static split of the range that [`crate::service_alloc`] allocates from.

use std::fmt;

/// A contiguous range of ports, e.g. `30000-32767` (both ends included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    base: u16,
    size: u32,
}

impl Default for PortRange {
    /// Upstream's default `--service-node-port-range`: 30000-32767.
    fn default() -> Self {
        PortRange {
            base: 30000,
            size: 2768,
        }
    }
}

impl PortRange {
    /// Parses `min-max` (or `min+size`, or a single port), like upstream `PortRange.Set`.
    pub fn parse(s: &str) -> Option<PortRange> {
        let s = s.trim();
        let (low, high) = if let Some((a, b)) = s.split_once('-') {
            let low: u16 = a.trim().parse().ok()?;
            let high: u16 = b.trim().parse().ok()?;
            (low, high)
        } else if let Some((a, b)) = s.split_once('+') {
            let low: u16 = a.trim().parse().ok()?;
            let offset: u16 = b.trim().parse().ok()?;
            (low, low.checked_add(offset)?)
        } else {
            let p: u16 = s.parse().ok()?;
            (p, p)
        };
        if high < low {
            return None;
        }
        Some(PortRange {
            base: low,
            size: u32::from(high - low) + 1,
        })
    }

    /// The first port.
    pub fn base(&self) -> u16 {
        self.base
    }

    /// How many ports the range holds.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: i64) -> bool {
        port >= i64::from(self.base) && port < i64::from(self.base) + i64::from(self.size)
    }

    /// The `i`-th port of the range.
    pub fn nth(&self, i: u32) -> u16 {
        u16::try_from(u32::from(self.base) + i).unwrap_or(u16::MAX)
    }

    /// The size of the low "static" band left to explicit requests: dynamic allocation
    /// prefers the ports above it (upstream `calculateRangeOffset`:
    /// `min(max(16, size/32), 128)`, 0 for ranges of 16 ports or less).
    pub fn static_band(&self) -> u32 {
        const MIN: u32 = 16;
        const MAX: u32 = 128;
        const STEP: u32 = 32;
        if self.size <= MIN {
            return 0;
        }
        (self.size / STEP).clamp(MIN, MAX)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.base, u32::from(self.base) + self.size - 1)
    }
}

/// Upstream `randomScanStrategyWithOffset.AllocateBit`: a random free index of `[offset, max)`
/// (probing forward from a random start), else one of `[0, offset)`; `free` tells whether an
/// index is available.
pub fn pick_with_offset(max: u32, offset: u32, free: impl Fn(u32) -> bool) -> Option<u32> {
    use rand::Rng;
    let mut rng = rand::rng();
    let offset = offset.min(max);
    let upper = max - offset;
    if upper > 0 {
        let start = rng.random_range(0..upper);
        for i in 0..upper {
            let at = offset + (start + i) % upper;
            if free(at) {
                return Some(at);
            }
        }
    }
    if offset > 0 {
        let start = rng.random_range(0..offset);
        for i in 0..offset {
            let at = (start + i) % offset;
            if free(at) {
                return Some(at);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_like_upstream() {
        let r = PortRange::parse("30000-32767").unwrap();
        assert_eq!(r, PortRange::default());
        assert_eq!(r.to_string(), "30000-32767");
        assert!(r.contains(30000) && r.contains(32767));
        assert!(!r.contains(29999) && !r.contains(32768));
        assert_eq!(r.static_band(), 86);
        assert_eq!(PortRange::parse("100+9").unwrap().to_string(), "100-109");
        assert_eq!(PortRange::parse("100-109").unwrap().static_band(), 0);
        assert!(PortRange::parse("200-100").is_none());
        assert!(PortRange::parse("x").is_none());
    }

    #[test]
    fn dynamic_allocation_prefers_the_upper_band() {
        for _ in 0..100 {
            let at = pick_with_offset(100, 20, |_| true).unwrap();
            assert!(at >= 20);
        }
        // Upper band full: the static band is used.
        let at = pick_with_offset(100, 20, |i| i < 20).unwrap();
        assert!(at < 20);
        assert_eq!(pick_with_offset(100, 20, |_| false), None);
        assert_eq!(pick_with_offset(10, 0, |i| i == 7), Some(7));
    }
}
