//! The default plugins of kube-scheduler with a filter or a score, as pure functions over a
//! pod ([`crate::types::PodInfo`]) and a node ([`crate::cache::NodeInfo`]).
//!
//! Upstream's default weights: TaintToleration 3, NodeAffinity 2, PodTopologySpread 2,
//! InterPodAffinity 2, NodeResourcesFit 1, NodeResourcesBalancedAllocation 1.

pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;

use crate::framework::MAX_NODE_SCORE;

/// Weight of TaintToleration's score.
pub const TAINT_TOLERATION_WEIGHT: i64 = 3;
/// Weight of NodeAffinity's score.
pub const NODE_AFFINITY_WEIGHT: i64 = 2;
/// Weight of PodTopologySpread's score.
pub const POD_TOPOLOGY_SPREAD_WEIGHT: i64 = 2;
/// Weight of InterPodAffinity's score.
pub const INTER_POD_AFFINITY_WEIGHT: i64 = 2;
/// Weight of NodeResourcesFit's score.
pub const NODE_RESOURCES_FIT_WEIGHT: i64 = 1;
/// Weight of NodeResourcesBalancedAllocation's score.
pub const BALANCED_ALLOCATION_WEIGHT: i64 = 1;

/// Upstream `helper.DefaultNormalizeScore`: scales scores to `0..=MAX_NODE_SCORE` by the
/// maximum, reversed if asked.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let mut v = MAX_NODE_SCORE * *s / max;
        if reverse {
            v = MAX_NODE_SCORE - v;
        }
        *s = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize() {
        let mut s = vec![0, 5, 10];
        default_normalize(&mut s, false);
        assert_eq!(s, vec![0, 50, 100]);
        let mut s = vec![0, 5, 10];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 50, 0]);
        let mut s = vec![0, 0];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 100]);
        let mut s = vec![0, 0];
        default_normalize(&mut s, false);
        assert_eq!(s, vec![0, 0]);
    }
}
