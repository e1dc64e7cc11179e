//! Field paths and field sets as in `sigs.k8s.io/structured-merge-diff/fieldpath`, with the
//! `FieldsV1` encoding of `metadata.managedFields` (`f:<field>`, `k:{<keys>}`, `v:<value>`,
//! `i:<index>`, `.` for the element itself).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// One step of a field path. The derived order is upstream's: fields, then keys, then values,
/// then indexes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of an object (`f:name`, printed `.name`).
    Field(String),
    /// An item of a list-type map, by its key fields sorted by name with compact-JSON values
    /// (`k:{"name":"nginx"}`, printed `[name="nginx"]`).
    Key(Vec<(String, String)>),
    /// An item of a set, by its compact-JSON value (`v:"a"`, printed `[="a"]`).
    Value(String),
    /// A list item by position (`i:0`, printed `[0]`).
    Index(usize),
}

impl PathElement {
    /// The key of a list-map item from its key fields.
    pub fn key<'a>(fields: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Self {
        let mut pairs: Vec<(String, String)> = fields
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_string()))
            .collect();
        pairs.sort();
        PathElement::Key(pairs)
    }

    /// The element of a set item.
    pub fn value(v: &Value) -> Self {
        PathElement::Value(v.to_string())
    }

    /// The `FieldsV1` key of this element.
    pub fn serialize(&self) -> String {
        match self {
            PathElement::Field(f) => {
                let mut s = String::with_capacity(f.len() + 2);
                s.push_str("f:");
                s.push_str(f);
                s
            }
            PathElement::Key(pairs) => {
                let body: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                    .collect();
                format!("k:{{{}}}", body.join(","))
            }
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` key.
    pub fn deserialize(s: &str) -> Result<Self, String> {
        let (kind, rest) = s
            .split_once(':')
            .filter(|(k, _)| k.len() == 1)
            .ok_or_else(|| format!("missing colon: {s}"))?;
        match kind {
            "f" => Ok(PathElement::Field(rest.to_owned())),
            "v" => {
                let v: Value = serde_json::from_str(rest).map_err(|e| e.to_string())?;
                Ok(PathElement::value(&v))
            }
            "k" => {
                let v: Map<String, Value> =
                    serde_json::from_str(rest).map_err(|e| e.to_string())?;
                Ok(PathElement::key(v.iter().map(|(k, v)| (k.as_str(), v))))
            }
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|e| format!("{e}")),
            _ => Err("unknown path element type".to_owned()),
        }
    }
}

/// Upstream's `value.ToString` of a compact-JSON value.
fn value_string(json: &str) -> String {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::String(s)) => format!("{:?}", s),
        _ => json.to_owned(),
    }
}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(pairs) => {
                let parts: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", value_string(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the root of an object.
pub type Path = Vec<PathElement>;

/// Upstream's `Path.String()`: `.spec.template.spec.containers[name="nginx"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of field paths, stored as upstream: the members ending at this level and the children
/// sets below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the set has no paths.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds a path (the empty path is ignored).
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                if !self.members.contains(last) {
                    self.members.insert(last.clone());
                }
            }
            [first, rest @ ..] => match self.children.get_mut(first) {
                Some(c) => c.insert(rest),
                None => self.children.entry(first.clone()).or_default().insert(rest),
            },
        }
    }

    /// Adds the one-element path `pe`.
    pub(crate) fn insert_member(&mut self, pe: PathElement) {
        self.members.insert(pe);
    }

    /// Adds the paths of `set` below `pe` (merged with those already there).
    pub(crate) fn insert_child(&mut self, pe: PathElement, set: FieldSet) {
        if set.is_empty() {
            return;
        }
        match self.children.get_mut(&pe) {
            Some(c) => c.union_owned(set),
            None => {
                self.children.insert(pe, set);
            }
        }
    }

    /// Removes the one-element path `pe` and every path below it.
    pub(crate) fn remove_recursive(&mut self, pe: &PathElement) {
        self.members.remove(pe);
        self.children.remove(pe);
    }

    /// Removes the one-element path `pe` (not the paths below it).
    pub(crate) fn remove_member(&mut self, pe: &PathElement) {
        self.members.remove(pe);
    }

    /// The paths below `pe`, mutably.
    pub(crate) fn child_mut(&mut self, pe: &PathElement) -> Option<&mut FieldSet> {
        self.children.get_mut(pe)
    }

    /// Drops the children left empty below `pe`.
    pub(crate) fn prune_child(&mut self, pe: &PathElement) {
        if self.children.get(pe).is_some_and(FieldSet::is_empty) {
            self.children.remove(pe);
        }
    }

    /// Whether the set contains exactly this path.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether the set contains this path or any path below it.
    pub fn has_prefix(&self, path: &[PathElement]) -> bool {
        match path {
            [] => !self.is_empty(),
            [last] => {
                self.members.contains(last)
                    || self.children.get(last).is_some_and(|c| !c.is_empty())
            }
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has_prefix(rest)),
        }
    }

    /// The paths below `pe`, without the `pe` prefix.
    pub fn with_prefix(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    /// The union of both sets.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.union_with(other);
        out
    }

    /// Adds the paths of `other` to this set.
    pub fn union_with(&mut self, other: &FieldSet) {
        for m in &other.members {
            if !self.members.contains(m) {
                self.members.insert(m.clone());
            }
        }
        for (pe, c) in &other.children {
            match self.children.get_mut(pe) {
                Some(mine) => mine.union_with(c),
                None => {
                    self.children.insert(pe.clone(), c.clone());
                }
            }
        }
    }

    /// Adds the paths of `other` to this set, consuming it.
    pub fn union_owned(&mut self, other: FieldSet) {
        if self.members.is_empty() && self.children.is_empty() {
            *self = other;
            return;
        }
        self.members.extend(other.members);
        for (pe, c) in other.children {
            match self.children.get_mut(&pe) {
                Some(mine) => mine.union_owned(c),
                None => {
                    self.children.insert(pe, c);
                }
            }
        }
    }

    /// Removes the paths of `other` from this set, as [`FieldSet::difference`] (children left
    /// empty are dropped). Returns whether any path was removed.
    pub fn subtract(&mut self, other: &FieldSet) -> bool {
        let mut removed = false;
        if !other.members.is_empty() {
            let before = self.members.len();
            self.members.retain(|m| !other.members.contains(m));
            removed = self.members.len() != before;
        }
        for (pe, o) in &other.children {
            if let Some(c) = self.children.get_mut(pe) {
                removed |= c.subtract(o);
                if c.is_empty() {
                    self.children.remove(pe);
                    removed = true;
                }
            }
        }
        removed
    }

    /// The paths of `self` that are not in `other` (upstream `Difference`: a member of `other`
    /// does not remove the children of `self` below it).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, c) in &self.children {
            let d = match other.children.get(pe) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                children.insert(pe.clone(), d);
            }
        }
        FieldSet { members, children }
    }

    /// The paths of `self` that are not in `other` nor below a member of `other`.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, c) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            let d = match other.children.get(pe) {
                Some(o) => c.recursive_difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                children.insert(pe.clone(), d);
            }
        }
        FieldSet { members, children }
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, c) in &self.children {
            if let Some(o) = other.children.get(pe) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    children.insert(pe.clone(), i);
                }
            }
        }
        FieldSet { members, children }
    }

    /// Every path, in upstream's iteration order (members, then children, each sorted).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(p);
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The `FieldsV1` JSON of this set.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::with_capacity(
            usize::from(include_self) + self.members.len() + self.children.len(),
        );
        let empty = || Value::Object(Map::new());
        if include_self && !(self.members.is_empty() && self.children.is_empty()) {
            out.insert(".".to_owned(), empty());
        }
        // Members and non-empty children, merged in path-element order.
        let mut members = self.members.iter().peekable();
        let mut children = self
            .children
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .peekable();
        loop {
            let (pe, member, child) = match (members.peek(), children.peek()) {
                (None, None) => break,
                (Some(m), Some((c, _))) if *m == *c => {
                    let child = children.next().map(|(_, c)| c);
                    (members.next().expect("peeked"), true, child)
                }
                (Some(m), Some((c, _))) if *m > *c => {
                    let (pe, child) = children.next().expect("peeked");
                    (pe, false, Some(child))
                }
                (Some(_), _) => (members.next().expect("peeked"), true, None),
                (None, Some(_)) => {
                    let (pe, child) = children.next().expect("peeked");
                    (pe, false, Some(child))
                }
            };
            let value = match child {
                Some(c) => Value::Object(c.emit(member)),
                None => empty(),
            };
            out.insert(pe.serialize(), value);
        }
        out
    }

    /// Parses `FieldsV1` JSON.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        let Value::Object(m) = v else {
            return Err("FieldsV1 must be a JSON object".to_owned());
        };
        let mut set = FieldSet::new();
        for (k, child) in m {
            if k == "." {
                continue;
            }
            let pe = PathElement::deserialize(k)?;
            let Value::Object(cm) = child else {
                return Err(format!("FieldsV1 entry {k} must be a JSON object"));
            };
            if cm.is_empty() || cm.contains_key(".") {
                set.members.insert(pe.clone());
            }
            let sub = FieldSet::from_fields_v1(child)?;
            if !sub.is_empty() {
                set.children.insert(pe, sub);
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(s: &str) -> PathElement {
        PathElement::Field(s.to_owned())
    }

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}},
                "f:finalizers": {"v:\"a\"": {}},
                "f:replicas": {}
            }
        });
        let set = FieldSet::from_fields_v1(&v).unwrap();
        let nginx = PathElement::key([("name", &json!("nginx"))]);
        assert!(set.has(&[f("spec"), f("containers"), nginx.clone()]));
        assert!(set.has(&[f("spec"), f("containers"), nginx.clone(), f("image")]));
        assert!(!set.has(&[f("spec"), f("containers")]));
        assert!(set.has(&[f("spec"), f("finalizers"), PathElement::value(&json!("a"))]));
        assert_eq!(set.to_fields_v1(), v);
        let strings: Vec<String> = set.paths().iter().map(|p| path_string(p)).collect();
        assert_eq!(
            strings,
            vec![
                ".metadata.labels.app",
                ".spec.replicas",
                ".spec.containers[name=\"nginx\"]",
                ".spec.containers[name=\"nginx\"].image",
                ".spec.containers[name=\"nginx\"].name",
                ".spec.finalizers[=\"a\"]",
            ]
        );
    }

    #[test]
    fn multi_key_serialization_sorts_keys() {
        let pe = PathElement::key([("protocol", &json!("TCP")), ("containerPort", &json!(80))]);
        assert_eq!(pe.serialize(), r#"k:{"containerPort":80,"protocol":"TCP"}"#);
        assert_eq!(pe.to_string(), r#"[containerPort=80,protocol="TCP"]"#);
        assert_eq!(PathElement::deserialize(&pe.serialize()).unwrap(), pe);
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::new();
        a.insert(&[f("spec"), f("replicas")]);
        a.insert(&[f("spec"), f("paused")]);
        let mut b = FieldSet::new();
        b.insert(&[f("spec"), f("replicas")]);
        b.insert(&[f("data")]);
        let i = a.intersection(&b);
        assert_eq!(i.paths(), vec![vec![f("spec"), f("replicas")]]);
        let d = a.difference(&b);
        assert_eq!(d.paths(), vec![vec![f("spec"), f("paused")]]);
        let u = a.union(&b);
        assert_eq!(u.paths().len(), 3);
        assert!(u.has_prefix(&[f("spec")]));
        assert!(!d.has_prefix(&[f("data")]));
        let mut spec = FieldSet::new();
        spec.insert(&[f("spec")]);
        assert!(a.recursive_difference(&spec).is_empty());
        assert!(!a.difference(&spec).is_empty());
    }
}
