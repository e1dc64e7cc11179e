//! Taints and tolerations (upstream `k8s.io/api/core/v1` toleration helpers,
//! `pkg/util/taints` and `pkg/controller` taint writes).

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};

/// `node.kubernetes.io/not-ready`.
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// `node.kubernetes.io/unreachable`.
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// `node.kubernetes.io/unschedulable`.
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// `node.kubernetes.io/memory-pressure`.
pub const TAINT_NODE_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// `node.kubernetes.io/disk-pressure`.
pub const TAINT_NODE_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// `node.kubernetes.io/network-unavailable`.
pub const TAINT_NODE_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
/// `node.kubernetes.io/pid-pressure`.
pub const TAINT_NODE_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";

/// `NoExecute`.
pub const NO_EXECUTE: &str = "NoExecute";
/// `NoSchedule`.
pub const NO_SCHEDULE: &str = "NoSchedule";

/// A taint without value or time.
pub fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.to_string(),
        effect: effect.to_string(),
        value: None,
        time_added: None,
    }
}

/// Same key and effect (upstream `Taint.MatchTaint`).
pub fn match_taint(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

/// The node's taints (empty if none).
pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// The node's `NoExecute` taints.
pub fn no_execute_taints(node: &Node) -> Vec<Taint> {
    node_taints(node)
        .iter()
        .filter(|t| t.effect == NO_EXECUTE)
        .cloned()
        .collect()
}

/// Whether a taint with the key and effect of `t` exists (upstream `TaintExists`).
pub fn taint_exists(taints: &[Taint], t: &Taint) -> bool {
    taints.iter().any(|x| match_taint(x, t))
}

/// Whether the toleration tolerates the taint (upstream `Toleration.ToleratesTaint`).
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = tol.effect.as_deref()
        && !e.is_empty()
        && e != taint.effect
    {
        return false;
    }
    if let Some(k) = tol.key.as_deref()
        && !k.is_empty()
        && k != taint.key
    {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "" | "Equal" => tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// Whether every taint is tolerated, and the tolerations used (upstream
/// `GetMatchingTolerations`).
pub fn matching_tolerations<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> (bool, Vec<&'a Toleration>) {
    if taints.is_empty() {
        return (true, Vec::new());
    }
    let mut used = Vec::new();
    for t in taints {
        match tolerations.iter().find(|tol| tolerates(tol, t)) {
            Some(tol) => used.push(tol),
            None => return (false, Vec::new()),
        }
    }
    (true, used)
}

/// The shortest `tolerationSeconds` of the tolerations: `None` = forever, 0 = now (upstream
/// `getMinTolerationTime`).
pub fn min_toleration_seconds(tolerations: &[&Toleration]) -> Option<i64> {
    if tolerations.is_empty() {
        return Some(0);
    }
    let mut min: Option<i64> = None;
    for t in tolerations {
        if let Some(s) = t.toleration_seconds {
            if s <= 0 {
                return Some(0);
            }
            min = Some(min.map_or(s, |m| m.min(s)));
        }
    }
    min
}

/// A write of taints failed.
#[derive(Debug, thiserror::Error)]
pub enum TaintError {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// Replaces the taints matching `remove` by `add` (each with `timeAdded` now) on the node
/// (upstream `SwapNodeControllerTaint`: `AddOrUpdateTaintOnNode` + `RemoveTaintOffNode`, in one
/// write). Starts from `cached` and re-reads the node on a conflict. Returns whether the
/// node exists.
pub async fn swap_taints(
    client: &kube::Client,
    cached: &Node,
    add: &[Taint],
    remove: &[Taint],
) -> Result<bool, TaintError> {
    let api: Api<Node> = Api::all(client.clone());
    let name = cached.metadata.name.clone().unwrap_or_default();
    let mut node = std::borrow::Cow::Borrowed(cached);
    for attempt in 0..5 {
        let cur = node_taints(&node);
        let mut next: Vec<Taint> = cur
            .iter()
            .filter(|t| !taint_exists(remove, t) && !taint_exists(add, t))
            .cloned()
            .collect();
        let now = Time(Timestamp::now());
        for t in add {
            // Keep an identical taint as it is (with its time).
            match cur.iter().find(|x| match_taint(x, t) && x.value == t.value) {
                Some(existing) => next.push(existing.clone()),
                None => next.push(Taint {
                    time_added: Some(now.clone()),
                    ..t.clone()
                }),
            }
        }
        if next.len() == cur.len() && next.iter().all(|t| cur.contains(t)) {
            return Ok(true);
        }
        let taints = if next.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::to_value(&next).unwrap_or(serde_json::Value::Null)
        };
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": taints},
        });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(false),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 4 => {
                match api.get_opt(&name).await? {
                    Some(n) => node = std::borrow::Cow::Owned(n),
                    None => return Ok(false),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tol(
        key: Option<&str>,
        op: &str,
        value: Option<&str>,
        effect: Option<&str>,
        secs: Option<i64>,
    ) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: Some(op.into()),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            toleration_seconds: secs,
        }
    }

    #[test]
    fn toleration_matching() {
        let t = Taint {
            value: Some("v".into()),
            ..taint("k", NO_EXECUTE)
        };
        assert!(tolerates(
            &tol(Some("k"), "Equal", Some("v"), None, None),
            &t
        ));
        assert!(!tolerates(
            &tol(Some("k"), "Equal", Some("w"), None, None),
            &t
        ));
        assert!(tolerates(
            &tol(Some("k"), "Exists", None, Some(NO_EXECUTE), None),
            &t
        ));
        assert!(!tolerates(
            &tol(Some("k"), "Exists", None, Some(NO_SCHEDULE), None),
            &t
        ));
        assert!(tolerates(&tol(None, "Exists", None, None, None), &t));
        assert!(!tolerates(&tol(Some("x"), "Exists", None, None, None), &t));
    }

    #[test]
    fn min_toleration_time() {
        let a = tol(Some("k"), "Exists", None, None, Some(30));
        let b = tol(Some("k"), "Exists", None, None, Some(5));
        let forever = tol(Some("k"), "Exists", None, None, None);
        let zero = tol(Some("k"), "Exists", None, None, Some(-1));
        assert_eq!(min_toleration_seconds(&[&a, &b, &forever]), Some(5));
        assert_eq!(min_toleration_seconds(&[&forever]), None);
        assert_eq!(min_toleration_seconds(&[&a, &zero]), Some(0));
        let taints = [taint("k", NO_EXECUTE), taint("j", NO_EXECUTE)];
        let tols = [a.clone()];
        assert!(!matching_tolerations(&taints, &tols).0);
        let tols = [a, tol(None, "Exists", None, None, None)];
        let (ok, used) = matching_tolerations(&taints, &tols);
        assert!(ok);
        assert_eq!(used.len(), 2);
    }
}
