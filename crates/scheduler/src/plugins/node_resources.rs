//! NodeResourcesFit (filter: requests against allocatable; score: LeastAllocated over cpu and
//! memory with weight 1 each) and NodeResourcesBalancedAllocation (score).

use std::borrow::Cow;

use crate::cache::NodeInfo;
use crate::framework::{Code, FilterResult, MAX_NODE_SCORE, Plugin, Status};
use crate::types::PodInfo;

/// The filter (upstream `fitsRequest`): every insufficient resource is a reason; the status
/// is unresolvable when the pod requests more than the node's whole allocatable.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    let mut reasons: Vec<Cow<'static, str>> = Vec::new();
    let mut unresolvable = false;
    if node.pods.len() as i64 + 1 > node.allowed_pods {
        reasons.push("Too many pods".into());
    }
    let req = &pod.res.requests;
    if !req.is_zero() {
        let alloc = &node.allocatable;
        let used = &node.requested;
        if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu - used.milli_cpu {
            reasons.push("Insufficient cpu".into());
            unresolvable |= req.milli_cpu > alloc.milli_cpu;
        }
        if req.memory > 0 && req.memory > alloc.memory - used.memory {
            reasons.push("Insufficient memory".into());
            unresolvable |= req.memory > alloc.memory;
        }
        if req.ephemeral_storage > 0
            && req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage
        {
            reasons.push("Insufficient ephemeral-storage".into());
            unresolvable |= req.ephemeral_storage > alloc.ephemeral_storage;
        }
        for (name, q) in &req.scalar {
            if *q == 0 {
                continue;
            }
            let a = alloc.scalar(name);
            if *q > a - used.scalar(name) {
                reasons.push(format!("Insufficient {name}").into());
                unresolvable |= *q > a;
            }
        }
    }
    if reasons.is_empty() {
        return Ok(());
    }
    Err(Status {
        code: if unresolvable {
            Code::UnschedulableAndUnresolvable
        } else {
            Code::Unschedulable
        },
        plugin: Plugin::NodeResourcesFit,
        reasons,
    })
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// LeastAllocated score over cpu and memory (non-zero requests), equal weights.
pub fn least_allocated_score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let mut score = 0;
    let mut weights = 0;
    let cpu_alloc = node.allocatable.milli_cpu;
    if cpu_alloc != 0 {
        score += least_requested(node.non_zero_cpu + pod.res.non_zero_cpu, cpu_alloc);
        weights += 1;
    }
    let mem_alloc = node.allocatable.memory;
    if mem_alloc != 0 {
        score += least_requested(node.non_zero_memory + pod.res.non_zero_memory, mem_alloc);
        weights += 1;
    }
    if weights == 0 { 0 } else { score / weights }
}

/// Whether BalancedAllocation skips the pod (a best-effort pod: no cpu nor memory request).
pub fn balanced_allocation_skips(pod: &PodInfo) -> bool {
    pod.res.requests.milli_cpu == 0 && pod.res.requests.memory == 0
}

/// NodeResourcesBalancedAllocation score over cpu and memory (requests, not non-zero).
pub fn balanced_allocation_score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let mut fractions = [0f64; 2];
    let mut n = 0;
    for (alloc, req) in [
        (
            node.allocatable.milli_cpu,
            node.requested.milli_cpu + pod.res.requests.milli_cpu,
        ),
        (
            node.allocatable.memory,
            node.requested.memory + pod.res.requests.memory,
        ),
    ] {
        if alloc == 0 {
            continue;
        }
        fractions[n] = (req as f64 / alloc as f64).min(1.0);
        n += 1;
    }
    let std = if n == 2 {
        ((fractions[0] - fractions[1]) / 2.0).abs()
    } else {
        0.0
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod};
    use std::sync::Arc;

    fn info(p: k8s_openapi::api::core::v1::Pod) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Arc::new(p)))
    }

    #[test]
    fn fit_reports_each_insufficient_resource() {
        let mut ni = NodeInfo::for_node(Arc::new(node("n", &[], "2", "4Gi", "2")));
        ni.add_pod(info(pod("a", &[], &[("cpu", "1500m"), ("memory", "1Gi")])));
        let p = info(pod("p", &[], &[("cpu", "1"), ("memory", "1Gi")]));
        let err = filter(&p, &ni).unwrap_err();
        assert_eq!(err.reasons, vec!["Insufficient cpu"]);
        assert_eq!(err.code, Code::Unschedulable);
        let p = info(pod("p", &[], &[("cpu", "500m"), ("memory", "3Gi")]));
        assert!(filter(&p, &ni).is_ok());
        let p = info(pod("p", &[], &[("cpu", "3"), ("memory", "5Gi")]));
        let err = filter(&p, &ni).unwrap_err();
        assert_eq!(err.reasons, vec!["Insufficient cpu", "Insufficient memory"]);
        assert_eq!(err.code, Code::UnschedulableAndUnresolvable);
        ni.add_pod(info(pod("b", &[], &[])));
        let err = filter(&info(pod("p", &[], &[])), &ni).unwrap_err();
        assert_eq!(err.reasons, vec!["Too many pods"]);
        let p = info(pod("p", &[], &[("example.com/gpu", "1")]));
        let err = filter(
            &p,
            &NodeInfo::for_node(Arc::new(node("m", &[], "2", "4Gi", "10"))),
        )
        .unwrap_err();
        assert_eq!(err.reasons, vec!["Insufficient example.com/gpu"]);
    }

    #[test]
    fn least_allocated_and_balanced_scores() {
        // Upstream least_allocated_test: node 4000m/10000 bytes, pod 3000m/5000 → cpu
        // (4000-3000)*100/4000 = 25, memory (10000-5000)*100/10000 = 50 → 37.
        let ni = NodeInfo::for_node(Arc::new(node("n", &[], "4", "10000", "10")));
        let p = info(pod("p", &[], &[("cpu", "3"), ("memory", "5000")]));
        assert_eq!(least_allocated_score(&p, &ni), 37);
        // fractions 0.75 and 0.5 → std 0.125 → 87.
        assert_eq!(balanced_allocation_score(&p, &ni), 87);
        let best_effort = info(pod("b", &[], &[]));
        assert!(balanced_allocation_skips(&best_effort));
        // Non-zero defaults: 100m of 4000m and 200Mi of a tiny node.
        assert_eq!(
            least_allocated_score(&best_effort, &ni),
            48,
            "cpu 97, memory 0"
        );
    }
}
