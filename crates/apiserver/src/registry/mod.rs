//! The registry of served kinds and the per-kind strategy interface.
//!
//! Every kind is described once by a [`ResourceInfo`] (group, version, resource, kind, scope,
//! short names, categories, subresources, storage prefix) and one [`Strategy`] (defaulting,
//! validation, what a status update may change). The same table drives routing, discovery,
//! OpenAPI and tables, so they cannot drift. The generic CRUD code lives in
//! [`crate::handlers`]; nothing here is per-kind CRUD.

pub mod kinds;
pub mod normal;
pub mod same;
pub mod strategy;
pub mod strategy_fns;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

pub use strategy::Strategy;

/// Subresources a kind may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: only `.status` changes.
    Status,
    /// `/scale` (autoscaling/v1 Scale).
    Scale,
    /// `pods/{name}/binding`.
    Binding,
    /// `pods/{name}/eviction` (policy/v1).
    Eviction,
    /// `namespaces/{name}/finalize`: only `spec.finalizers` (and status) change.
    Finalize,
    /// `pods/{name}/attach`, served by the node agent.
    Attach,
    /// `pods/{name}/exec`, served by the node agent.
    Exec,
    /// `pods/{name}/log`, served by the node agent.
    Log,
    /// `pods/{name}/portforward`, served by the node agent.
    PortForward,
    /// `nodes/{name}/proxy`, the node agent's own API.
    Proxy,
}

impl Subresource {
    /// The path segment.
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Eviction => "eviction",
            Subresource::Finalize => "finalize",
            Subresource::Attach => "attach",
            Subresource::Exec => "exec",
            Subresource::Log => "log",
            Subresource::PortForward => "portforward",
            Subresource::Proxy => "proxy",
        }
    }

    /// Whether the node agent serves it (proxied by [`crate::handlers::proxy`]).
    pub fn is_connect(self) -> bool {
        matches!(
            self,
            Subresource::Attach
                | Subresource::Exec
                | Subresource::Log
                | Subresource::PortForward
                | Subresource::Proxy
        )
    }
}

/// Converts a JSON object into the kind's typed form and back: unknown fields are dropped and
/// reported (for `fieldValidation`), type errors are reported. `None`: the object is already
/// exactly what the round trip would return.
pub type RoundTrip = fn(&Value) -> Result<Option<Value>, String>;

/// One served kind.
pub struct ResourceInfo {
    /// API group ("" = core).
    pub group: &'static str,
    /// Version, e.g. `v1`.
    pub version: &'static str,
    /// `apps/v1`, or `v1` in the core group: what [`ResourceInfo::api_version`] returns.
    pub group_version: &'static str,
    /// Plural resource, e.g. `deployments`.
    pub resource: &'static str,
    /// Singular, e.g. `deployment`.
    pub singular: &'static str,
    /// Kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (`deploy`).
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [Subresource],
    /// Storage key prefix without trailing slash, e.g. `/registry/deployments`.
    pub key_prefix: &'static str,
    /// The kind's strategy.
    pub strategy: Arc<dyn Strategy>,
    /// Typed round trip.
    pub round_trip: RoundTrip,
}

impl ResourceInfo {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> &'static str {
        self.group_version
    }

    /// `DeploymentList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// For error messages.
    pub fn qualified(&self) -> crate::error::Qualified<'_> {
        crate::error::Qualified {
            group: self.group,
            resource: self.resource,
        }
    }

    /// Whether the kind has the given subresource.
    pub fn has(&self, s: Subresource) -> bool {
        self.subresources.contains(&s)
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}/{ns}/{name}", self.key_prefix),
            _ => format!("{}/{name}", self.key_prefix),
        }
    }

    /// The storage prefix of a namespace's objects (or all of them).
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}/{ns}/", self.key_prefix),
            _ => format!("{}/", self.key_prefix),
        }
    }

    /// The verbs discovery advertises.
    pub fn verbs(&self) -> &'static [&'static str] {
        &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

/// All served kinds, indexed for routing.
pub struct Registry {
    resources: Vec<Arc<ResourceInfo>>,
    by_gvr: HashMap<(String, String, String), Arc<ResourceInfo>>,
    /// Storage key prefix → resource, for dispatching store events. Several resources may
    /// share one prefix (core and events.k8s.io events); the first registered owns it.
    by_prefix: Vec<(String, Arc<ResourceInfo>)>,
}

impl Registry {
    /// Builds the registry from resource descriptions.
    pub fn new(resources: Vec<ResourceInfo>) -> Registry {
        let resources: Vec<Arc<ResourceInfo>> = resources.into_iter().map(Arc::new).collect();
        let mut by_gvr = HashMap::new();
        let mut by_prefix: Vec<(String, Arc<ResourceInfo>)> = Vec::new();
        for r in &resources {
            by_gvr.insert(
                (
                    r.group.to_string(),
                    r.version.to_string(),
                    r.resource.to_string(),
                ),
                r.clone(),
            );
            if !by_prefix.iter().any(|(p, _)| p == r.key_prefix) {
                by_prefix.push((r.key_prefix.to_string(), r.clone()));
            }
        }
        Registry {
            resources,
            by_gvr,
            by_prefix,
        }
    }

    /// The registry of every built-in kind r8s serves.
    pub fn builtin() -> Registry {
        Registry::new(kinds::all())
    }

    /// Every resource, in registration order.
    pub fn all(&self) -> &[Arc<ResourceInfo>] {
        &self.resources
    }

    /// Looks a resource up by group, version and plural.
    pub fn get(&self, group: &str, version: &str, resource: &str) -> Option<&Arc<ResourceInfo>> {
        self.by_gvr
            .get(&(group.to_string(), version.to_string(), resource.to_string()))
    }

    /// Finds the resource that stores `key`.
    pub fn for_key(&self, key: &str) -> Option<&Arc<ResourceInfo>> {
        self.by_prefix
            .iter()
            .find(|(p, _)| {
                key.len() > p.len()
                    && key.starts_with(p.as_str())
                    && key.as_bytes()[p.len()] == b'/'
            })
            .map(|(_, r)| r)
    }

    /// The groups served, in discovery order, with their versions.
    pub fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for r in &self.resources {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version);
                    }
                }
                None => out.push((r.group, vec![r.version])),
            }
        }
        out
    }
}
