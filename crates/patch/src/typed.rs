//! Schema-aware walks over objects, after structured-merge-diff's `typed` package: the field set
//! of an object (`ToFieldSet`), the comparison of two objects (`Compare`), the merge of an
//! applied configuration into a live object (`Merge`) and the removal of field paths
//! (`RemoveItems`).

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::SchemaNode;
use crate::fieldpath::{FieldSet, Path, PathElement, path_string};
use crate::schema::{ListKind, NodeKind};

/// How a value is treated at one place of the schema.
enum Shape<'a> {
    /// A scalar, an atomic map or list, or a value whose shape does not match the schema.
    Leaf,
    /// An object merged field by field.
    Fields,
    /// A list whose items are identified by key or value.
    Associative(Cow<'a, ListKind>),
}

fn shape<'a>(v: &Value, node: &SchemaNode<'a>) -> Shape<'a> {
    match v {
        Value::Object(_) => match node.kind() {
            NodeKind::Struct | NodeKind::Map | NodeKind::Unknown if !node.is_atomic_map() => {
                Shape::Fields
            }
            _ => Shape::Leaf,
        },
        Value::Array(_) => match node.kind() {
            NodeKind::List => match node.list_kind() {
                k if *k == ListKind::Atomic => Shape::Leaf,
                k => Shape::Associative(k),
            },
            _ => Shape::Leaf,
        },
        _ => Shape::Leaf,
    }
}

/// Whether the object `v` is merged and compared field by field at this place of the schema
/// (rather than as one atomic value).
pub(crate) fn merges_fields(v: &Value, node: &SchemaNode) -> bool {
    matches!(shape(v, node), Shape::Fields)
}

/// The path element of a list item (`listItemToPathElement`): its key fields (falling back to
/// the key field's schema default) for list-type maps, its value for sets.
pub(crate) fn item_path_element(
    item: &Value,
    kind: &ListKind,
    items: &SchemaNode,
) -> Result<PathElement, String> {
    match kind {
        ListKind::Map(keys) => {
            let Value::Object(m) = item else {
                return Err("associative list with keys may not have non-map elements".to_owned());
            };
            let mut fields = Vec::with_capacity(keys.len());
            for k in keys {
                let v = match m.get(k) {
                    Some(v) => v,
                    None => {
                        let field = items.field(k);
                        field.default_value().or_else(|| implied_key_default(k)).ok_or_else(|| {
                            format!(
                                "associative list with keys has an element that omits key field {k:?} (and doesn't have default value)"
                            )
                        })?
                    }
                };
                fields.push((k.as_str(), v));
            }
            Ok(PathElement::key(fields))
        }
        ListKind::Set => match item {
            Value::Object(_) | Value::Array(_) => {
                Err("associative list without keys has an element that's a map or list".to_owned())
            }
            v => Ok(PathElement::value(v)),
        },
        ListKind::Atomic => Err("invalid indexing of non-associative list".to_owned()),
    }
}

/// Defaults of list-map key fields that upstream's schemas declare (`+default="TCP"` on
/// `ContainerPort.protocol` and `ServicePort.protocol`) but that may be missing from the served
/// OpenAPI documents.
fn implied_key_default(key: &str) -> Option<&'static Value> {
    static TCP: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    (key == "protocol").then(|| TCP.get_or_init(|| Value::String("TCP".to_owned())))
}

/// The items of an associative list by path element, in list order of their first occurrence,
/// each with every item carrying that element. Items whose element cannot be computed are
/// passed to `on_error` with their index.
fn index_items<'v>(
    list: &'v [Value],
    kind: &ListKind,
    items: &SchemaNode,
    on_error: &mut dyn FnMut(usize, String),
) -> Vec<(PathElement, Vec<&'v Value>)> {
    let mut out: Vec<(PathElement, Vec<&Value>)> = Vec::with_capacity(list.len());
    let mut pos: Option<HashMap<PathElement, usize>> = None;
    for (i, item) in list.iter().enumerate() {
        match item_path_element(item, kind, items) {
            Ok(pe) => {
                // Short lists are searched linearly, longer ones through an index.
                let at = if list.len() <= 16 {
                    out.iter().position(|(p, _)| *p == pe)
                } else {
                    let pos = pos.get_or_insert_with(HashMap::new);
                    let at = pos.get(&pe).copied();
                    if at.is_none() {
                        pos.insert(pe.clone(), out.len());
                    }
                    at
                };
                match at {
                    Some(at) => out[at].1.push(item),
                    None => out.push((pe, vec![item])),
                }
            }
            Err(e) => on_error(i, e),
        }
    }
    out
}

/// A path from the root, as a chain of links on the stack (no allocation unless printed).
#[derive(Clone, Copy)]
pub(crate) struct PathLink<'p> {
    parent: Option<&'p PathLink<'p>>,
    elem: Option<&'p PathElement>,
    field: Option<&'p str>,
}

impl<'p> PathLink<'p> {
    /// The root (empty path).
    pub(crate) const ROOT: PathLink<'static> = PathLink {
        parent: None,
        elem: None,
        field: None,
    };

    fn field(&'p self, name: &'p str) -> PathLink<'p> {
        PathLink {
            parent: Some(self),
            elem: None,
            field: Some(name),
        }
    }

    fn elem(&'p self, pe: &'p PathElement) -> PathLink<'p> {
        PathLink {
            parent: Some(self),
            elem: Some(pe),
            field: None,
        }
    }

    /// Upstream's `Path.String()` of this path.
    pub(crate) fn render(&self) -> String {
        let mut links = Vec::new();
        let mut cur = Some(self);
        while let Some(l) = cur {
            links.push(l);
            cur = l.parent;
        }
        let mut out = String::new();
        for l in links.into_iter().rev() {
            if let Some(f) = l.field {
                out.push('.');
                out.push_str(f);
            } else if let Some(pe) = l.elem {
                out.push_str(&pe.to_string());
            }
        }
        out
    }
}

/// `ToFieldSet`: every leaf, every list item and every field of a map without named properties.
/// Errors (items of list-type maps lacking their keys) are collected; such items are skipped.
pub(crate) fn to_field_set(v: &Value, node: SchemaNode, errors: &mut Vec<String>) -> FieldSet {
    walk_field_set(v, &node, &PathLink::ROOT, errors).1
}

/// The field set below `v`, and whether `v` itself is a leaf (a member of its parent's set).
fn walk_field_set(
    v: &Value,
    node: &SchemaNode,
    path: &PathLink,
    errors: &mut Vec<String>,
) -> (bool, FieldSet) {
    let mut set = FieldSet::new();
    match (v, shape(v, node)) {
        (Value::Object(m), Shape::Fields) => {
            for (k, child) in m {
                let (leaf, sub) = walk_field_set(child, &node.field(k), &path.field(k), errors);
                let empty_map = child.as_object().is_some_and(Map::is_empty);
                let member = leaf || child.is_null() || empty_map || !node.has_property(k);
                attach(&mut set, k, member, sub);
            }
        }
        (Value::Array(list), Shape::Associative(kind)) => {
            let items = node.items();
            let mut on_error =
                |i: usize, e: String| errors.push(format!("{}: element {i}: {e}", path.render()));
            let indexed = index_items(list, &kind, &items, &mut on_error);
            for (pe, values) in indexed {
                let sub = match values.as_slice() {
                    [only] => walk_field_set(only, &items, &path.elem(&pe), errors).1,
                    _ => FieldSet::new(),
                };
                if !sub.is_empty() {
                    set.insert_child(pe.clone(), sub);
                }
                set.insert_member(pe);
            }
        }
        _ => return (true, set),
    }
    (false, set)
}

/// Adds field `k` (as a member when `member`) with the paths `sub` below it to `set`.
fn attach(set: &mut FieldSet, k: &str, member: bool, sub: FieldSet) {
    let has_sub = !sub.is_empty();
    match (member, has_sub) {
        (false, false) => {}
        (true, false) => set.insert_member(PathElement::Field(k.to_owned())),
        (false, true) => set.insert_child(PathElement::Field(k.to_owned()), sub),
        (true, true) => {
            let pe = PathElement::Field(k.to_owned());
            set.insert_member(pe.clone());
            set.insert_child(pe, sub);
        }
    }
}

/// Metadata fields the server sets; never part of any field set nor compared.
pub(crate) const SERVER_METADATA: [&str; 7] = [
    "managedFields",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
    "clusterName",
];

/// Which part of an object a walk sees: the object as field ownership sees it, without
/// server-set metadata and restricted to the scope of an operation, without copying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// The whole root object but `status` (the main resource).
    Main,
    /// Only `status` of the root object (the status subresource).
    Status,
    /// The whole root object (other subresources, e.g. `scale`).
    All,
    /// `metadata` below the root: without the server-set fields.
    Metadata,
    /// Every field (below the root and `metadata`).
    Everything,
}

impl View {
    /// Whether field `k` of the object is seen.
    pub(crate) fn sees(self, k: &str) -> bool {
        match self {
            View::Main => k != "status",
            View::Status => k == "status",
            View::Metadata => !SERVER_METADATA.contains(&k),
            View::All | View::Everything => true,
        }
    }

    /// The view of field `k` of the object.
    pub(crate) fn child(self, k: &str) -> View {
        match self {
            View::Main | View::Status | View::All if k == "metadata" => View::Metadata,
            _ => View::Everything,
        }
    }

    /// Field `k` of `m`, if seen.
    fn get<'v>(self, m: &'v Map<String, Value>, k: &str) -> Option<&'v Value> {
        if self.sees(k) { m.get(k) } else { None }
    }

    /// Whether `m` has no seen field.
    fn is_empty(self, m: &Map<String, Value>) -> bool {
        match self {
            View::Everything => m.is_empty(),
            _ => !m.keys().any(|k| self.sees(k)),
        }
    }

    /// Whether both values are equal as seen.
    pub(crate) fn eq(self, l: &Value, r: &Value) -> bool {
        match (self, l, r) {
            (View::Everything, _, _) => l == r,
            (_, Value::Object(lm), Value::Object(rm)) => {
                let seen = |m: &Map<String, Value>| m.keys().filter(|k| self.sees(k)).count();
                seen(lm) == seen(rm)
                    && lm
                        .iter()
                        .filter(|(k, _)| self.sees(k))
                        .all(|(k, v)| rm.get(k) == Some(v))
            }
            _ => l == r,
        }
    }
}

/// The result of comparing two objects (`typed.Comparison`).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    /// Paths present before and absent after.
    pub removed: FieldSet,
    /// Leaves present on both sides with different values.
    pub modified: FieldSet,
    /// Paths absent before and present after.
    pub added: FieldSet,
}

impl Comparison {
    fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.modified.is_empty() && self.added.is_empty()
    }

    /// Adds the comparison `sub` of the value at `pe` (whose own path is in the sets flagged by
    /// `own`) below `pe`.
    fn attach(&mut self, pe: impl FnOnce() -> PathElement, own: Own, sub: Comparison) {
        if own == Own::None && sub.is_empty() {
            return;
        }
        let Comparison {
            removed,
            modified,
            added,
        } = sub;
        // The element goes into each set that needs it: cloned for all but the last.
        let mut uses = usize::from(own != Own::None)
            + usize::from(!removed.is_empty())
            + usize::from(!modified.is_empty())
            + usize::from(!added.is_empty());
        let mut pe = Some(pe());
        let mut take = || {
            uses -= 1;
            if uses == 0 {
                pe.take().expect("taken once, last")
            } else {
                pe.clone().expect("present until its last use")
            }
        };
        match own {
            Own::None => {}
            Own::Added => self.added.insert_member(take()),
            Own::Removed => self.removed.insert_member(take()),
            Own::Modified => self.modified.insert_member(take()),
        }
        for (set, sub) in [
            (&mut self.removed, removed),
            (&mut self.modified, modified),
            (&mut self.added, added),
        ] {
            if !sub.is_empty() {
                set.insert_child(take(), sub);
            }
        }
    }
}

/// In which set of a comparison a path itself is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Own {
    None,
    Added,
    Removed,
    Modified,
}

/// `Compare(lhs, rhs)` of the parts of both objects `view` sees (a non-object is seen as `{}`).
/// Fields that Go always encodes in the typed objects upstream compares (structs, and
/// `required` properties, i.e. fields without `omitempty`) count as always present: they are
/// not reported as added or removed themselves, only their contents are.
pub(crate) fn compare(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    node: SchemaNode,
    view: View,
) -> Comparison {
    let empty = Value::Object(Map::new());
    fn root<'v>(v: Option<&'v Value>, view: View, empty: &'v Value) -> Option<&'v Value> {
        match (v, view) {
            (Some(Value::Object(_)), _) | (None, _) | (_, View::Everything) => v,
            (Some(_), _) => Some(empty),
        }
    }
    let mut cmp = Comparison::default();
    walk_compare(
        root(lhs, view, &empty),
        root(rhs, view, &empty),
        &node,
        view,
        true,
        &mut cmp,
    );
    cmp
}

/// Compares the values at one path; the comparison of the paths below goes to `cmp`, the
/// path's own status is returned.
fn walk_compare(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    node: &SchemaNode,
    view: View,
    always_present: bool,
    cmp: &mut Comparison,
) -> Own {
    let shape_of = |v: Option<&Value>| v.map(|v| shape(v, node));
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => view.is_empty(m),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    let (ls, rs) = (shape_of(lhs), shape_of(rhs));
    let same_kind = match (lhs, rhs) {
        (Some(l), Some(r)) => std::mem::discriminant(l) == std::mem::discriminant(r),
        _ => true,
    };
    let leaf = !same_kind
        || (empty(lhs) && empty(rhs))
        || matches!(ls, Some(Shape::Leaf))
        || matches!(rs, Some(Shape::Leaf));
    if leaf {
        return match (lhs, rhs) {
            (None, Some(_)) => Own::Added,
            (Some(_), None) => Own::Removed,
            (Some(l), Some(r)) if !view.eq(l, r) => Own::Modified,
            _ => Own::None,
        };
    }
    match (lhs.or(rhs), ls.or(rs)) {
        (Some(Value::Object(_)), _) => {
            let empty_map = Map::new();
            let lm = lhs.and_then(Value::as_object).unwrap_or(&empty_map);
            let rm = rhs.and_then(Value::as_object).unwrap_or(&empty_map);
            let keys = lm
                .keys()
                .chain(rm.keys().filter(|k| !lm.contains_key(*k)))
                .filter(|k| view.sees(k));
            for k in keys {
                let child = node.field(k);
                let present = child.kind() == NodeKind::Struct || node.is_required(k);
                let mut sub = Comparison::default();
                let own = walk_compare(
                    view.get(lm, k),
                    view.get(rm, k),
                    &child,
                    view.child(k),
                    present,
                    &mut sub,
                );
                cmp.attach(|| PathElement::Field(k.clone()), own, sub);
            }
        }
        (Some(Value::Array(_)), Some(Shape::Associative(kind))) => {
            let items = node.items();
            let empty_list = Vec::new();
            let ll = lhs.and_then(Value::as_array).unwrap_or(&empty_list);
            let rl = rhs.and_then(Value::as_array).unwrap_or(&empty_list);
            let mut ignore = |_: usize, _: String| {};
            let li = index_items(ll, &kind, &items, &mut ignore);
            let mut ri = index_items(rl, &kind, &items, &mut ignore);
            let mut visit = |pe: PathElement, lv: &[&Value], rv: &[&Value]| {
                let mut sub = Comparison::default();
                let own = match (lv, rv) {
                    ([] | [_], [] | [_]) => walk_compare(
                        lv.first().copied(),
                        rv.first().copied(),
                        &items,
                        View::Everything,
                        false,
                        &mut sub,
                    ),
                    (l, r) if l.len() >= 2 && r.len() >= 2 => {
                        if l != r {
                            Own::Modified
                        } else {
                            Own::None
                        }
                    }
                    (l, _) if l.len() >= 2 => Own::Removed,
                    _ => Own::Added,
                };
                cmp.attach(|| pe, own, sub);
            };
            for (pe, lv) in li {
                let rv = match ri.iter().position(|(p, _)| *p == pe) {
                    Some(at) => ri.swap_remove(at).1,
                    None => Vec::new(),
                };
                visit(pe, &lv, &rv);
            }
            // `swap_remove` reorders what is left; the sets are sorted anyway.
            for (pe, rv) in ri {
                visit(pe, &[], &rv);
            }
        }
        _ => {}
    }
    if !always_present {
        match (lhs, rhs) {
            (None, Some(_)) => return Own::Added,
            (Some(_), None) => return Own::Removed,
            _ => {}
        }
    }
    Own::None
}

/// `Merge(live, config)`: the applied configuration merged into the live object. Objects are
/// merged field by field (atomic ones replaced), associative lists item by item keeping
/// upstream's ordering, everything else is taken from the configuration; `null` in the
/// configuration removes the field.
pub(crate) fn merge(
    lhs: Option<&Value>,
    rhs: &Value,
    node: &SchemaNode,
    path: &mut Path,
    errors: &mut Vec<String>,
) -> Option<Value> {
    let Some(lhs) = lhs else {
        return strip_nulls(rhs);
    };
    if std::mem::discriminant(lhs) != std::mem::discriminant(rhs) {
        return strip_nulls(rhs);
    }
    match (lhs, rhs, shape(rhs, node)) {
        (Value::Object(lm), Value::Object(rm), Shape::Fields) => {
            let mut out = Map::new();
            for (k, lv) in lm {
                match rm.get(k) {
                    None => {
                        out.insert(k.clone(), lv.clone());
                    }
                    Some(rv) => {
                        path.push(PathElement::Field(k.clone()));
                        if let Some(v) = merge(Some(lv), rv, &node.field(k), path, errors) {
                            out.insert(k.clone(), v);
                        }
                        path.pop();
                    }
                }
            }
            for (k, rv) in rm {
                if lm.contains_key(k) {
                    continue;
                }
                if let Some(v) = strip_nulls(rv) {
                    out.insert(k.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
        (Value::Array(ll), Value::Array(rl), Shape::Associative(kind)) => {
            if ll.is_empty() && rl.is_empty() {
                return Some(rhs.clone());
            }
            Some(Value::Array(merge_list(ll, rl, &kind, node, path, errors)))
        }
        _ => strip_nulls(rhs),
    }
}

/// The configuration value without its `null` fields (a `null` value itself gives `None`).
fn strip_nulls(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => Some(Value::Object(
            m.iter()
                .filter_map(|(k, v)| strip_nulls(v).map(|v| (k.clone(), v)))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// `mergingWalker.visitListItems`: merges list items by path element; the result follows the
/// configuration's order, with live-only items kept where they were relative to shared items.
fn merge_list(
    lhs: &[Value],
    rhs: &[Value],
    kind: &ListKind,
    node: &SchemaNode,
    path: &mut Path,
    errors: &mut Vec<String>,
) -> Vec<Value> {
    let items = node.items();
    let index = |list: &[Value], errors: &mut Vec<String>| -> Vec<(PathElement, Value)> {
        let mut out = Vec::new();
        for (i, item) in list.iter().enumerate() {
            match item_path_element(item, kind, &items) {
                Ok(pe) => out.push((pe, item.clone())),
                Err(e) => errors.push(format!("{}: element {i}: {e}", path_string(path))),
            }
        }
        out
    };
    let l = index(lhs, errors);
    let r = index(rhs, errors);
    let mut seen = std::collections::HashSet::new();
    for (pe, _) in &r {
        if !seen.insert(pe.clone()) {
            errors.push(format!(
                "{}: duplicate entries for key {pe}",
                path_string(path)
            ));
        }
    }
    let in_l = |pe: &PathElement| l.iter().find(|(p, _)| p == pe).map(|(_, v)| v);
    let in_r = |pe: &PathElement| r.iter().find(|(p, _)| p == pe).map(|(_, v)| v);

    let mut shared: std::collections::VecDeque<&PathElement> = r
        .iter()
        .map(|(p, _)| p)
        .filter(|p| in_l(p).is_some())
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs: std::collections::HashSet<PathElement> = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(l.len().max(r.len()));
    let (mut li, mut ri) = (0, 0);
    let mut merge_item = |pe: &PathElement,
                          lv: Option<&Value>,
                          rv: Option<&Value>,
                          path: &mut Path,
                          errors: &mut Vec<String>| {
        path.push(pe.clone());
        let v = match rv {
            Some(rv) => merge(lv, rv, &items, path, errors),
            None => lv.cloned(),
        };
        path.pop();
        if let Some(v) = v {
            out.push(v);
        }
    };
    while li < l.len() || ri < r.len() {
        if li < l.len() && ri < r.len() {
            let pe = &l[li].0;
            if *pe == r[ri].0 {
                merged_rhs.insert(pe.clone());
                merge_item(pe, in_l(pe), in_r(pe), path, errors);
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if in_r(pe).is_some() && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < l.len() {
            let pe = &l[li].0;
            if in_r(pe).is_none() {
                merge_item(pe, Some(&l[li].1), None, path, errors);
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
            }
        }
        if ri < r.len() {
            let pe = &r[ri].0;
            merged_rhs.insert(pe.clone());
            merge_item(pe, in_l(pe), in_r(pe), path, errors);
            ri += 1;
            if next_shared.is_some_and(|n| n == pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

/// `RemoveItems`: the object without the given paths. Maps and lists emptied by the removal
/// are removed as well.
pub(crate) fn remove_items(v: &Value, to_remove: &FieldSet, node: &SchemaNode) -> Option<Value> {
    match (v, shape(v, node)) {
        (Value::Object(m), Shape::Fields) if !m.is_empty() => {
            let mut out = Map::new();
            for (k, child) in m {
                let pe = PathElement::Field(k.clone());
                if to_remove.has(std::slice::from_ref(&pe)) {
                    continue;
                }
                match to_remove.with_prefix(&pe).filter(|s| !s.is_empty()) {
                    Some(sub) => {
                        if let Some(c) = remove_items(child, sub, &node.field(k)) {
                            out.insert(k.clone(), c);
                        }
                    }
                    None => {
                        out.insert(k.clone(), child.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (Value::Array(list), Shape::Associative(kind)) if !list.is_empty() => {
            let items = node.items();
            let mut out = Vec::new();
            for item in list {
                let Ok(pe) = item_path_element(item, &kind, &items) else {
                    out.push(item.clone());
                    continue;
                };
                if to_remove.has(std::slice::from_ref(&pe)) {
                    continue;
                }
                match to_remove.with_prefix(&pe).filter(|s| !s.is_empty()) {
                    Some(sub) => {
                        if let Some(c) = remove_items(item, sub, &items) {
                            out.push(c);
                        }
                    }
                    None => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        _ => Some(v.clone()),
    }
}
