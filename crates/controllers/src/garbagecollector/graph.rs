//! The dependency graph of the garbage collector (upstream `graph.go` and the event
//! processing of `graph_builder.go`): one compact node per object UID with its owner
//! references and the UIDs of its dependents. [`Graph::process`] applies one observed change
//! and says which nodes to look at.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// `orphan`: the owner waits for its dependents to be orphaned.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// `foregroundDeletion`: the owner waits for its blocking dependents to be deleted.
pub const FINALIZER_DELETE_DEPENDENTS: &str = "foregroundDeletion";
/// How many absent owners are remembered (upstream `absentOwnerCache` size).
const ABSENT_OWNER_CACHE: usize = 500;

/// What identifies an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// `group/version` or `v1`.
    pub api_version: Arc<str>,
    /// Kind.
    pub kind: Arc<str>,
    /// Namespace (`None` for cluster-scoped objects, or unknown for a virtual owner).
    pub namespace: Option<Arc<str>>,
    /// Name.
    pub name: Box<str>,
    /// UID.
    pub uid: Box<str>,
}

/// The group of an `apiVersion`.
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// One object in the graph.
#[derive(Debug, Clone)]
pub struct GraphNode {
    /// The object.
    pub identity: Identity,
    /// Its owner references.
    pub owners: Vec<OwnerReference>,
    /// The UIDs of the objects it owns.
    pub dependents: HashSet<Box<str>>,
    /// Being deleted with the `foregroundDeletion` finalizer.
    pub deleting_dependents: bool,
    /// Has a deletionTimestamp.
    pub being_deleted: bool,
    /// Being deleted with the `orphan` finalizer.
    pub orphaning: bool,
    /// Only known from a dependent's owner reference, not observed.
    pub virtual_: bool,
}

/// The metadata of an observed object, as the graph keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The object.
    pub identity: Identity,
    /// Owner references.
    pub owners: Vec<OwnerReference>,
    /// Has a deletionTimestamp.
    pub deleting: bool,
    /// Has the `orphan` finalizer.
    pub orphan_finalizer: bool,
    /// Has the `foregroundDeletion` finalizer.
    pub foreground_finalizer: bool,
}

impl Observed {
    /// From an object's metadata, with its apiVersion and kind.
    pub fn from_meta(
        api_version: Arc<str>,
        kind: Arc<str>,
        ns: Option<Arc<str>>,
        m: &ObjectMeta,
    ) -> Self {
        Self {
            identity: Identity {
                api_version,
                kind,
                namespace: ns,
                name: m.name.clone().unwrap_or_default().into(),
                uid: m.uid.clone().unwrap_or_default().into(),
            },
            owners: m.owner_references.clone().unwrap_or_default(),
            deleting: m.deletion_timestamp.is_some(),
            orphan_finalizer: has_finalizer(m, FINALIZER_ORPHAN),
            foreground_finalizer: has_finalizer(m, FINALIZER_DELETE_DEPENDENTS),
        }
    }

    /// Whether two versions of one object's metadata give equal [`Observed`]s (same kind),
    /// without building them: most updates (status, heartbeats) change nothing the graph keeps.
    pub fn same_in_graph(a: &ObjectMeta, b: &ObjectMeta) -> bool {
        let has = has_finalizer;
        a.name.as_deref().unwrap_or_default() == b.name.as_deref().unwrap_or_default()
            && a.uid.as_deref().unwrap_or_default() == b.uid.as_deref().unwrap_or_default()
            && a.namespace == b.namespace
            && a.owner_references.as_deref().unwrap_or_default()
                == b.owner_references.as_deref().unwrap_or_default()
            && a.deletion_timestamp.is_some() == b.deletion_timestamp.is_some()
            && has(a, FINALIZER_ORPHAN) == has(b, FINALIZER_ORPHAN)
            && has(a, FINALIZER_DELETE_DEPENDENTS) == has(b, FINALIZER_DELETE_DEPENDENTS)
    }
}

/// Whether the metadata lists finalizer `f`.
fn has_finalizer(m: &ObjectMeta, f: &str) -> bool {
    m.finalizers
        .as_ref()
        .is_some_and(|v| v.iter().any(|x| x == f))
}

/// A change to apply to the graph.
#[derive(Debug, Clone)]
pub enum Change {
    /// An object was added or updated.
    Upsert(Observed),
    /// An object was deleted.
    Delete(Observed),
    /// The API server says this (virtual) object does not exist.
    VirtualDelete(Identity),
    /// After a re-list: the UIDs that exist of a group and kind; others are gone.
    Resync {
        /// API group.
        group: String,
        /// Kind.
        kind: String,
        /// UIDs listed.
        uids: HashSet<String>,
    },
}

/// What to process after a change.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Actions {
    /// UIDs for `attemptToDelete`.
    pub delete: Vec<String>,
    /// UIDs for `attemptToOrphan`.
    pub orphan: Vec<String>,
}

/// The graph.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<Box<str>, GraphNode>,
    absent: HashSet<String>,
    absent_order: VecDeque<String>,
}

impl Graph {
    /// A node by UID.
    pub fn get(&self, uid: &str) -> Option<&GraphNode> {
        self.nodes.get(uid)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether an owner UID is known to be absent.
    pub fn is_absent(&self, uid: &str) -> bool {
        self.absent.contains(uid)
    }

    /// Remembers an absent owner UID.
    pub fn add_absent(&mut self, uid: &str) {
        if self.absent.insert(uid.to_string()) {
            self.absent_order.push_back(uid.to_string());
            if self.absent_order.len() > ABSENT_OWNER_CACHE
                && let Some(old) = self.absent_order.pop_front()
            {
                self.absent.remove(&old);
            }
        }
    }

    /// The dependents of `uid` whose reference to it has `blockOwnerDeletion` (upstream
    /// `blockingDependents`), with whether each is itself deleting its dependents.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<(String, bool)> {
        let Some(n) = self.nodes.get(uid) else {
            return Vec::new();
        };
        n.dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|o| o.uid == uid && o.block_owner_deletion == Some(true))
            })
            .map(|d| (d.identity.uid.to_string(), d.deleting_dependents))
            .collect()
    }

    /// Applies a change.
    pub fn process(&mut self, change: Change) -> Actions {
        let mut act = Actions::default();
        match change {
            Change::Upsert(o) => self.upsert(o, &mut act),
            Change::Delete(o) => {
                if self.nodes.contains_key(&*o.identity.uid) {
                    self.remove(&o.identity.uid, &mut act);
                }
            }
            Change::VirtualDelete(id) => {
                let remove = match self.nodes.get(&*id.uid) {
                    // A real node is removed only by its own deletion event.
                    Some(n) => n.virtual_ || n.identity == id,
                    None => false,
                };
                if remove {
                    self.remove(&id.uid, &mut act);
                }
            }
            Change::Resync { group, kind, uids } => {
                let gone: Vec<Box<str>> = self
                    .nodes
                    .values()
                    .filter(|n| {
                        !n.virtual_
                            && *n.identity.kind == *kind
                            && group_of(&n.identity.api_version) == group
                            && !uids.contains(&*n.identity.uid)
                    })
                    .map(|n| n.identity.uid.clone())
                    .collect();
                for uid in gone {
                    self.remove(&uid, &mut act);
                }
            }
        }
        act
    }

    fn upsert(&mut self, o: Observed, act: &mut Actions) {
        let uid = o.identity.uid.clone();
        let existing = self.nodes.get_mut(&uid);
        match existing {
            None => {
                let node = GraphNode {
                    identity: o.identity.clone(),
                    owners: o.owners.clone(),
                    dependents: HashSet::new(),
                    deleting_dependents: false,
                    being_deleted: o.deleting,
                    orphaning: false,
                    virtual_: false,
                };
                self.nodes.insert(uid.clone(), node);
                let owners = o.owners.clone();
                self.add_dependent_to_owners(&uid, &owners, act);
            }
            Some(n) => {
                if n.virtual_ {
                    // Observed at last: take the real identity; dependents that named it
                    // otherwise are checked again.
                    n.virtual_ = false;
                    if n.identity != o.identity {
                        n.identity = o.identity.clone();
                        act.delete
                            .extend(n.dependents.iter().map(|d| d.to_string()));
                    }
                }
                let old = std::mem::replace(&mut n.owners, o.owners.clone());
                n.being_deleted = o.deleting;
                let added: Vec<OwnerReference> = o
                    .owners
                    .iter()
                    .filter(|r| !old.iter().any(|x| x.uid == r.uid))
                    .cloned()
                    .collect();
                let removed: Vec<OwnerReference> = old
                    .iter()
                    .filter(|r| !o.owners.iter().any(|x| x.uid == r.uid))
                    .cloned()
                    .collect();
                // Owners waiting for this dependent that it no longer blocks
                // (upstream `addUnblockedOwnersToDeleteQueue`).
                let mut unblocked: Vec<String> = removed
                    .iter()
                    .filter(|r| r.block_owner_deletion == Some(true))
                    .map(|r| r.uid.clone())
                    .collect();
                for r in &old {
                    if r.block_owner_deletion == Some(true)
                        && o.owners
                            .iter()
                            .any(|x| x.uid == r.uid && x.block_owner_deletion != Some(true))
                    {
                        unblocked.push(r.uid.clone());
                    }
                }
                for u in unblocked {
                    if self
                        .nodes
                        .get(u.as_str())
                        .is_some_and(|x| x.deleting_dependents)
                    {
                        act.delete.push(u);
                    }
                }
                self.add_dependent_to_owners(&uid, &added, act);
                for r in &removed {
                    if let Some(owner) = self.nodes.get_mut(r.uid.as_str()) {
                        owner.dependents.remove(&uid);
                    }
                }
            }
        }
        self.process_transitions(&o, act);
    }

    /// Upstream `processTransitions`.
    fn process_transitions(&mut self, o: &Observed, act: &mut Actions) {
        let Some(n) = self.nodes.get_mut(&*o.identity.uid) else {
            return;
        };
        let orphaning = o.deleting && o.orphan_finalizer;
        let was_orphaning = std::mem::replace(&mut n.orphaning, orphaning);
        if orphaning && !was_orphaning {
            act.orphan.push(o.identity.uid.to_string());
            return;
        }
        let deleting_dependents = o.deleting && o.foreground_finalizer;
        if deleting_dependents && !n.deleting_dependents {
            n.deleting_dependents = true;
            act.delete
                .extend(n.dependents.iter().map(|d| d.to_string()));
            act.delete.push(o.identity.uid.to_string());
        } else if !deleting_dependents {
            n.deleting_dependents = false;
        }
    }

    /// Upstream `addDependentToOwners`: owners not in the graph get a virtual node, to be
    /// checked against the API server.
    fn add_dependent_to_owners(&mut self, uid: &str, owners: &[OwnerReference], act: &mut Actions) {
        let ns = self
            .nodes
            .get(uid)
            .and_then(|n| n.identity.namespace.clone());
        for r in owners {
            match self.nodes.get_mut(r.uid.as_str()) {
                Some(owner) => {
                    owner.dependents.insert(uid.into());
                }
                None => {
                    let mut dependents = HashSet::new();
                    dependents.insert(uid.into());
                    self.nodes.insert(
                        r.uid.clone().into(),
                        GraphNode {
                            identity: Identity {
                                api_version: r.api_version.as_str().into(),
                                kind: r.kind.as_str().into(),
                                namespace: ns.clone(),
                                name: r.name.as_str().into(),
                                uid: r.uid.as_str().into(),
                            },
                            owners: Vec::new(),
                            dependents,
                            deleting_dependents: false,
                            being_deleted: false,
                            orphaning: false,
                            virtual_: true,
                        },
                    );
                    act.delete.push(r.uid.clone());
                }
            }
        }
    }

    /// Removes a node: its dependents are checked (their owner is gone) and owners waiting
    /// for their dependents are checked again.
    fn remove(&mut self, uid: &str, act: &mut Actions) {
        let Some(n) = self.nodes.remove(uid) else {
            return;
        };
        for r in &n.owners {
            if let Some(owner) = self.nodes.get_mut(r.uid.as_str()) {
                owner.dependents.remove(uid);
                if owner.deleting_dependents {
                    act.delete.push(r.uid.clone());
                }
            }
        }
        if !n.dependents.is_empty() {
            self.add_absent(uid);
        }
        act.delete
            .extend(n.dependents.iter().map(|d| d.to_string()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn obs(kind: &str, name: &str, uid: &str, owners: &[(&str, &str, bool)]) -> Observed {
        Observed {
            identity: Identity {
                api_version: "v1".into(),
                kind: kind.into(),
                namespace: Some("ns".into()),
                name: name.into(),
                uid: uid.into(),
            },
            owners: owners
                .iter()
                .map(|(k, u, b)| OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: (*k).into(),
                    name: format!("{u}-name"),
                    uid: (*u).into(),
                    block_owner_deletion: Some(*b),
                    controller: Some(true),
                })
                .collect(),
            deleting: false,
            orphan_finalizer: false,
            foreground_finalizer: false,
        }
    }

    #[test]
    fn same_in_graph_agrees_with_comparing_the_observed() {
        let base = ObjectMeta {
            name: Some("n".into()),
            namespace: Some("ns".into()),
            uid: Some("u".into()),
            resource_version: Some("1".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: "n".into(),
                uid: "o".into(),
                ..Default::default()
            }]),
            finalizers: Some(vec!["example.com/x".into()]),
            ..Default::default()
        };
        let variants: Vec<(&str, ObjectMeta)> = vec![
            (
                "resourceVersion",
                ObjectMeta {
                    resource_version: Some("2".into()),
                    ..base.clone()
                },
            ),
            (
                "labels",
                ObjectMeta {
                    labels: Some([("a".to_string(), "b".to_string())].into()),
                    ..base.clone()
                },
            ),
            (
                "other finalizer",
                ObjectMeta {
                    finalizers: Some(vec!["example.com/y".into()]),
                    ..base.clone()
                },
            ),
            (
                "name",
                ObjectMeta {
                    name: Some("m".into()),
                    ..base.clone()
                },
            ),
            (
                "uid",
                ObjectMeta {
                    uid: None,
                    ..base.clone()
                },
            ),
            (
                "namespace",
                ObjectMeta {
                    namespace: None,
                    ..base.clone()
                },
            ),
            (
                "owners",
                ObjectMeta {
                    owner_references: None,
                    ..base.clone()
                },
            ),
            (
                "deleting",
                ObjectMeta {
                    deletion_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                    )),
                    ..base.clone()
                },
            ),
            (
                "orphan",
                ObjectMeta {
                    finalizers: Some(vec![FINALIZER_ORPHAN.into()]),
                    ..base.clone()
                },
            ),
            (
                "foreground",
                ObjectMeta {
                    finalizers: Some(vec![FINALIZER_DELETE_DEPENDENTS.into()]),
                    ..base.clone()
                },
            ),
        ];
        let observe = |m: &ObjectMeta| {
            Observed::from_meta(
                "v1".into(),
                "Lease".into(),
                m.namespace.as_deref().map(Into::into),
                m,
            )
        };
        let mut unchanged = 0;
        for (what, m) in &variants {
            let same = observe(&base) == observe(m);
            assert_eq!(Observed::same_in_graph(&base, m), same, "{what}");
            assert_eq!(Observed::same_in_graph(m, &base), same, "{what}");
            unchanged += usize::from(same);
        }
        // The first three change nothing the graph keeps; the others each change something.
        assert_eq!(unchanged, 3);
    }

    #[test]
    fn unknown_owner_becomes_virtual_and_is_checked() {
        let mut g = Graph::default();
        let a = g.process(Change::Upsert(obs(
            "Pod",
            "p",
            "p1",
            &[("ReplicaSet", "rs1", true)],
        )));
        assert_eq!(a.delete, vec!["rs1".to_string()]);
        assert!(g.get("rs1").unwrap().virtual_);
        // Observed: no longer virtual, dependents kept.
        let mut rs = obs("ReplicaSet", "rs1-name", "rs1", &[]);
        rs.identity.api_version = "apps/v1".into();
        let a = g.process(Change::Upsert(rs));
        assert_eq!(a, Actions::default());
        assert!(!g.get("rs1").unwrap().virtual_);
        assert_eq!(g.get("rs1").unwrap().dependents.len(), 1);
        // The owner goes: its dependent is checked, the owner is remembered absent.
        let a = g.process(Change::Delete(obs("ReplicaSet", "rs1-name", "rs1", &[])));
        assert_eq!(a.delete, vec!["p1".to_string()]);
        assert!(g.is_absent("rs1"));
    }

    #[test]
    fn foreground_and_orphan_transitions() {
        let mut g = Graph::default();
        g.process(Change::Upsert(obs("ReplicaSet", "rs", "rs1", &[])));
        g.process(Change::Upsert(obs(
            "Pod",
            "p",
            "p1",
            &[("ReplicaSet", "rs1", true)],
        )));
        let mut rs = obs("ReplicaSet", "rs", "rs1", &[]);
        rs.deleting = true;
        rs.foreground_finalizer = true;
        let a = g.process(Change::Upsert(rs.clone()));
        assert_eq!(a.delete, vec!["p1".to_string(), "rs1".to_string()]);
        assert_eq!(
            g.blocking_dependents("rs1"),
            vec![("p1".to_string(), false)]
        );
        // Same state again: no new work.
        assert_eq!(g.process(Change::Upsert(rs)), Actions::default());
        // The dependent goes: the owner is checked again.
        let a = g.process(Change::Delete(obs("Pod", "p", "p1", &[])));
        assert_eq!(a.delete, vec!["rs1".to_string()]);

        let mut rs2 = obs("ReplicaSet", "rs2", "rs2", &[]);
        g.process(Change::Upsert(rs2.clone()));
        rs2.deleting = true;
        rs2.orphan_finalizer = true;
        assert_eq!(
            g.process(Change::Upsert(rs2)).orphan,
            vec!["rs2".to_string()]
        );
    }

    #[test]
    fn unblocking_and_resync() {
        let mut g = Graph::default();
        let mut rs = obs("ReplicaSet", "rs", "rs1", &[]);
        rs.deleting = true;
        rs.foreground_finalizer = true;
        g.process(Change::Upsert(rs));
        g.process(Change::Upsert(obs(
            "Pod",
            "p",
            "p1",
            &[("ReplicaSet", "rs1", true)],
        )));
        // The dependent drops blockOwnerDeletion: the owner is checked.
        let a = g.process(Change::Upsert(obs(
            "Pod",
            "p",
            "p1",
            &[("ReplicaSet", "rs1", false)],
        )));
        assert_eq!(a.delete, vec!["rs1".to_string()]);
        // A re-list without the pod removes it.
        let a = g.process(Change::Resync {
            group: String::new(),
            kind: "Pod".into(),
            uids: HashSet::new(),
        });
        assert_eq!(a.delete, vec!["rs1".to_string()]);
        assert!(g.get("p1").is_none());
        assert!(g.get("rs1").unwrap().dependents.is_empty());
    }
}
