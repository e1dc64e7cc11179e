//! Parsed pods: what the plugins need of a pod, computed once per pod (upstream `PodInfo`):
//! requests, (anti-)affinity terms with their selectors, host ports, label keys for the
//! per-node label counts.

use std::collections::BTreeMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use informers::labels::selector_matches;
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::resources::PodResources;

/// A hasher for keys that are already hashes.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

/// A map keyed by precomputed hashes.
pub type IdMap<V> = std::collections::HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// The key "namespace membership" in label counts: every pod counts once under it.
const NS_KEY: &str = "\0ns";

/// The hash of `(namespace or any, key, value)` in the per-node label counts.
pub fn label_key(namespace: Option<&str>, key: &str, value: &str) -> u64 {
    let mut h = DefaultHasher::new();
    namespace.hash(&mut h);
    key.hash(&mut h);
    value.hash(&mut h);
    h.finish()
}

/// The namespaces a term or constraint applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsScope {
    /// Every namespace.
    All,
    /// These namespaces.
    List(Vec<String>),
}

impl NsScope {
    /// Whether `ns` is in scope.
    pub fn contains(&self, ns: &str) -> bool {
        match self {
            NsScope::All => true,
            NsScope::List(l) => l.iter().any(|n| n == ns),
        }
    }
}

/// A label selector with namespaces, prepared to count matching pods on a node quickly: the
/// per-node label counts rule out nodes without any candidate, and give the exact count when
/// the selector is one `key=value` requirement (or empty).
#[derive(Debug, Clone)]
pub struct PodMatcher {
    /// The namespaces.
    pub scope: NsScope,
    /// The selector; `None` matches nothing.
    pub selector: Option<LabelSelector>,
    /// For each namespace in scope (one entry for `All`), the label keys that a matching pod
    /// must all have; empty when the selector gives no such key.
    keys: Vec<Vec<u64>>,
    /// Whether the count of the single key is the exact count.
    exact: bool,
}

fn required_pairs(sel: &LabelSelector) -> (Vec<(String, String)>, bool) {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut total = 0usize;
    for (k, v) in sel.match_labels.iter().flatten() {
        pairs.push((k.clone(), v.clone()));
        total += 1;
    }
    for e in sel.match_expressions.iter().flatten() {
        total += 1;
        if e.operator == "In"
            && let Some([v]) = e.values.as_deref()
        {
            pairs.push((e.key.clone(), v.clone()));
        }
    }
    if total == 0 {
        return (vec![(NS_KEY.to_string(), String::new())], true);
    }
    let exact = total == 1 && pairs.len() == 1;
    (pairs, exact)
}

impl PodMatcher {
    /// A matcher of `selector` in `scope`.
    pub fn new(scope: NsScope, selector: Option<LabelSelector>) -> Self {
        let (keys, exact) = match &selector {
            None => (Vec::new(), false),
            Some(sel) => {
                let (pairs, exact) = required_pairs(sel);
                let keys = match &scope {
                    NsScope::All => vec![
                        pairs
                            .iter()
                            .map(|(k, v)| label_key(None, k, v))
                            .collect::<Vec<_>>(),
                    ],
                    NsScope::List(nss) => nss
                        .iter()
                        .map(|ns| {
                            pairs
                                .iter()
                                .map(|(k, v)| label_key(Some(ns), k, v))
                                .collect()
                        })
                        .collect(),
                };
                (keys, exact)
            }
        };
        Self {
            scope,
            selector,
            keys,
            exact,
        }
    }

    /// The one namespaced label key whose count is the exact count of matching pods, if the
    /// selector is a single `key=value` requirement (or empty) in a single namespace.
    pub fn single_key(&self) -> Option<u64> {
        match (&self.scope, self.keys.as_slice()) {
            (NsScope::List(l), [keys]) if self.exact && l.len() == 1 && keys.len() == 1 => {
                Some(keys[0])
            }
            _ => None,
        }
    }

    /// Whether a pod in `ns` with `labels` matches.
    pub fn matches(&self, ns: &str, labels: &BTreeMap<String, String>) -> bool {
        match &self.selector {
            None => false,
            Some(sel) => self.scope.contains(ns) && selector_matches(sel, labels),
        }
    }

    /// Whether `pod` matches.
    pub fn matches_pod(&self, pod: &PodInfo) -> bool {
        self.matches(&pod.namespace, pod.labels())
    }

    /// How many pods on `node` match; terminating pods are skipped when `skip_terminating`
    /// (PodTopologySpread), counted otherwise (InterPodAffinity), as upstream.
    pub fn count(&self, node: &crate::cache::NodeInfo, skip_terminating: bool) -> i64 {
        if self.selector.is_none() || node.pods.is_empty() {
            return 0;
        }
        let mut candidates = 0i64;
        let mut any_keys = false;
        for ns_keys in &self.keys {
            if ns_keys.is_empty() {
                continue;
            }
            any_keys = true;
            let min = ns_keys
                .iter()
                .map(|k| node.label_counts.get(k).copied().unwrap_or(0))
                .min()
                .unwrap_or(0);
            candidates += i64::from(min);
        }
        if any_keys {
            if candidates == 0 {
                return 0;
            }
            if self.exact && (!skip_terminating || node.terminating == 0) {
                return candidates;
            }
        }
        node.pods
            .iter()
            .filter(|p| !(skip_terminating && p.terminating) && self.matches_pod(p))
            .count() as i64
    }
}

/// A pod (anti-)affinity term (upstream `framework.AffinityTerm` / `WeightedAffinityTerm`).
#[derive(Debug, Clone, PartialEq)]
pub struct AffinityTerm {
    /// Explicit namespaces (the pod's own when neither namespaces nor a selector are set).
    pub namespaces: Vec<String>,
    /// Namespace selector: `None` selects no namespace, an empty one selects all.
    pub ns_selector: Option<LabelSelector>,
    /// Pod label selector: `None` matches nothing.
    pub selector: Option<LabelSelector>,
    /// The topology key.
    pub topology_key: String,
    /// Weight of a preferred term (1 for required terms).
    pub weight: i32,
}

impl AffinityTerm {
    fn new(pod_ns: &str, t: &PodAffinityTerm, weight: i32) -> Self {
        let mut namespaces = t.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && t.namespace_selector.is_none() {
            namespaces.push(pod_ns.to_string());
        }
        Self {
            namespaces,
            ns_selector: t.namespace_selector.clone(),
            selector: t.label_selector.clone(),
            topology_key: t.topology_key.clone(),
            weight,
        }
    }

    /// Whether a pod in `ns` (whose namespace has `ns_labels`) with `labels` matches.
    pub fn matches(
        &self,
        ns: &str,
        labels: &BTreeMap<String, String>,
        ns_labels: Option<&BTreeMap<String, String>>,
    ) -> bool {
        let Some(sel) = &self.selector else {
            return false;
        };
        let in_ns = self.namespaces.iter().any(|n| n == ns)
            || self.ns_selector.as_ref().is_some_and(|s| {
                let empty = BTreeMap::new();
                selector_matches(s, ns_labels.unwrap_or(&empty))
            });
        in_ns && selector_matches(sel, labels)
    }

    /// The namespaces in scope, resolving the namespace selector with `resolve` (upstream
    /// merges the selected namespaces into the term at PreFilter).
    pub fn scope(&self, resolve: &dyn Fn(&LabelSelector) -> Vec<String>) -> NsScope {
        match &self.ns_selector {
            Some(s) if informers::labels::selector_is_empty(s) => NsScope::All,
            Some(s) => {
                let mut l = self.namespaces.clone();
                for n in resolve(s) {
                    if !l.contains(&n) {
                        l.push(n);
                    }
                }
                NsScope::List(l)
            }
            None => NsScope::List(self.namespaces.clone()),
        }
    }
}

/// The pod (anti-)affinity of a pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodAffinity {
    /// Required affinity terms.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required anti-affinity terms.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred affinity terms.
    pub preferred_affinity: Vec<AffinityTerm>,
    /// Preferred anti-affinity terms.
    pub preferred_anti_affinity: Vec<AffinityTerm>,
}

/// A host port of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host IP ("0.0.0.0" when unset).
    pub ip: String,
    /// Protocol ("TCP" when unset).
    pub protocol: String,
    /// The port.
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports conflict (same protocol and port, and a wildcard or equal IP).
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A pod with what scheduling needs precomputed.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// The pod.
    pub pod: Arc<Pod>,
    /// Its key in the cache and queue (uid, or namespace/name without uid).
    pub key: String,
    /// Its namespace.
    pub namespace: String,
    /// Its requests.
    pub res: PodResources,
    /// Its pod (anti-)affinity, if it has any.
    pub affinity: Option<Arc<PodAffinity>>,
    /// A key equal for pods with equal (anti-)affinity (interning in the cache).
    pub affinity_key: String,
    /// Its host ports.
    pub host_ports: Vec<HostPort>,
    /// Whether it has a deletionTimestamp.
    pub terminating: bool,
    /// The label keys it adds to its node's label counts: the namespaced key of each label
    /// (and of namespace membership) at even positions, the any-namespace key after it.
    pub label_keys: Vec<u64>,
}

static EMPTY_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// The key of a pod in the scheduler: its uid, or namespace/name.
pub fn pod_key(pod: &Pod) -> String {
    match pod.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() => uid.to_string(),
        _ => informers::key_of(pod),
    }
}

impl PodInfo {
    /// Parses `pod`.
    pub fn new(pod: Arc<Pod>) -> Self {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let res = PodResources::of(&pod);
        let mut affinity = None;
        let mut affinity_key = String::new();
        let mut host_ports = Vec::new();
        if let Some(spec) = pod.spec.as_ref() {
            if let Some(a) = spec.affinity.as_ref() {
                let mut pa = PodAffinity::default();
                if let Some(aff) = a.pod_affinity.as_ref() {
                    for t in aff
                        .required_during_scheduling_ignored_during_execution
                        .iter()
                        .flatten()
                    {
                        pa.required_affinity
                            .push(AffinityTerm::new(&namespace, t, 1));
                    }
                    for w in aff
                        .preferred_during_scheduling_ignored_during_execution
                        .iter()
                        .flatten()
                    {
                        pa.preferred_affinity.push(AffinityTerm::new(
                            &namespace,
                            &w.pod_affinity_term,
                            w.weight,
                        ));
                    }
                }
                if let Some(anti) = a.pod_anti_affinity.as_ref() {
                    for t in anti
                        .required_during_scheduling_ignored_during_execution
                        .iter()
                        .flatten()
                    {
                        pa.required_anti_affinity
                            .push(AffinityTerm::new(&namespace, t, 1));
                    }
                    for w in anti
                        .preferred_during_scheduling_ignored_during_execution
                        .iter()
                        .flatten()
                    {
                        pa.preferred_anti_affinity.push(AffinityTerm::new(
                            &namespace,
                            &w.pod_affinity_term,
                            w.weight,
                        ));
                    }
                }
                if a.pod_affinity.is_some() || a.pod_anti_affinity.is_some() {
                    affinity = Some(Arc::new(pa));
                    affinity_key = format!(
                        "{namespace}\n{}\n{}",
                        serde_json::to_string(&a.pod_affinity).unwrap_or_default(),
                        serde_json::to_string(&a.pod_anti_affinity).unwrap_or_default()
                    );
                }
            }
            for c in &spec.containers {
                for p in c.ports.iter().flatten() {
                    if let Some(hp) = p.host_port.filter(|hp| *hp > 0) {
                        host_ports.push(HostPort {
                            ip: p
                                .host_ip
                                .clone()
                                .filter(|s| !s.is_empty())
                                .unwrap_or_else(|| "0.0.0.0".into()),
                            protocol: p
                                .protocol
                                .clone()
                                .filter(|s| !s.is_empty())
                                .unwrap_or_else(|| "TCP".into()),
                            port: hp,
                        });
                    }
                }
            }
        }
        let mut label_keys = vec![
            label_key(Some(&namespace), NS_KEY, ""),
            label_key(None, NS_KEY, ""),
        ];
        for (k, v) in pod.metadata.labels.iter().flatten() {
            label_keys.push(label_key(Some(&namespace), k, v));
            label_keys.push(label_key(None, k, v));
        }
        Self {
            key: pod_key(&pod),
            namespace,
            res,
            affinity,
            affinity_key,
            host_ports,
            terminating: pod.metadata.deletion_timestamp.is_some(),
            label_keys,
            pod,
        }
    }

    /// The pod's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.pod.metadata.labels.as_ref().unwrap_or(&EMPTY_LABELS)
    }

    /// The pod's priority (0 when unset).
    pub fn priority(&self) -> i32 {
        self.pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
    }

    /// Whether it has required anti-affinity terms.
    pub fn has_required_anti_affinity(&self) -> bool {
        self.affinity
            .as_ref()
            .is_some_and(|a| !a.required_anti_affinity.is_empty())
    }
}
