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

/// The items of an associative list by path element, with their first index, in list order.
/// Items whose element cannot be computed are reported in `errors`.
fn index_items<'v>(
    list: &'v [Value],
    kind: &ListKind,
    items: &SchemaNode,
    path: &Path,
    errors: &mut Vec<String>,
) -> Vec<(PathElement, Vec<&'v Value>)> {
    let mut out: Vec<(PathElement, Vec<&Value>)> = Vec::new();
    let mut pos: HashMap<PathElement, usize> = HashMap::new();
    for (i, item) in list.iter().enumerate() {
        match item_path_element(item, kind, items) {
            Ok(pe) => {
                if let Some(&at) = pos.get(&pe) {
                    out[at].1.push(item);
                } else {
                    pos.insert(pe.clone(), out.len());
                    out.push((pe, vec![item]));
                }
            }
            Err(e) => errors.push(format!("{}: element {i}: {e}", path_string(path))),
        }
    }
    out
}

/// `ToFieldSet`: every leaf, every list item and every field of a map without named properties.
/// Errors (items of list-type maps lacking their keys) are collected; such items are skipped.
pub(crate) fn to_field_set(v: &Value, node: SchemaNode, errors: &mut Vec<String>) -> FieldSet {
    let mut set = FieldSet::new();
    walk_field_set(v, &node, &mut Vec::new(), &mut set, errors);
    set
}

fn walk_field_set(
    v: &Value,
    node: &SchemaNode,
    path: &mut Path,
    set: &mut FieldSet,
    errors: &mut Vec<String>,
) {
    match (v, shape(v, node)) {
        (Value::Object(m), Shape::Fields) => {
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                walk_field_set(child, &node.field(k), path, set, errors);
                let empty_map = child.as_object().is_some_and(Map::is_empty);
                if child.is_null() || empty_map || !node.has_property(k) {
                    set.insert(path);
                }
                path.pop();
            }
        }
        (Value::Array(list), Shape::Associative(kind)) => {
            let items = node.items();
            for (pe, values) in index_items(list, &kind, &items, path, errors) {
                path.push(pe);
                if let [only] = values.as_slice() {
                    walk_field_set(only, &items, path, set, errors);
                }
                set.insert(path);
                path.pop();
            }
        }
        _ => set.insert(path),
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

/// `Compare(lhs, rhs)`. Fields that Go always encodes in the typed objects upstream compares
/// (structs, and `required` properties, i.e. fields without `omitempty`) count as always
/// present: they are not reported as added or removed themselves, only their contents are.
pub(crate) fn compare(lhs: Option<&Value>, rhs: Option<&Value>, node: SchemaNode) -> Comparison {
    let mut cmp = Comparison::default();
    walk_compare(lhs, rhs, &node, &mut Vec::new(), true, &mut cmp);
    cmp
}

fn walk_compare(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    node: &SchemaNode,
    path: &mut Path,
    always_present: bool,
    cmp: &mut Comparison,
) {
    let shape_of = |v: Option<&Value>| v.map(|v| shape(v, node));
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
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
        match (lhs, rhs) {
            (None, Some(_)) => cmp.added.insert(path),
            (Some(_), None) => cmp.removed.insert(path),
            (Some(l), Some(r)) if l != r => cmp.modified.insert(path),
            _ => {}
        }
        return;
    }
    match (lhs.or(rhs), ls.or(rs)) {
        (Some(Value::Object(_)), _) => {
            let empty_map = Map::new();
            let lm = lhs.and_then(Value::as_object).unwrap_or(&empty_map);
            let rm = rhs.and_then(Value::as_object).unwrap_or(&empty_map);
            let keys = lm.keys().chain(rm.keys().filter(|k| !lm.contains_key(*k)));
            for k in keys {
                path.push(PathElement::Field(k.clone()));
                let child = node.field(k);
                let present = child.kind() == NodeKind::Struct || node.is_required(k);
                walk_compare(lm.get(k), rm.get(k), &child, path, present, cmp);
                path.pop();
            }
        }
        (Some(Value::Array(_)), Some(Shape::Associative(kind))) => {
            let items = node.items();
            let mut errors = Vec::new();
            let empty_list = Vec::new();
            let ll = lhs.and_then(Value::as_array).unwrap_or(&empty_list);
            let rl = rhs.and_then(Value::as_array).unwrap_or(&empty_list);
            let li = index_items(ll, &kind, &items, path, &mut errors);
            let ri = index_items(rl, &kind, &items, path, &mut errors);
            fn find<'v>(idx: &[(PathElement, Vec<&'v Value>)], pe: &PathElement) -> Vec<&'v Value> {
                idx.iter()
                    .find(|(p, _)| p == pe)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            }
            let mut all: Vec<PathElement> = li.iter().map(|(p, _)| p.clone()).collect();
            all.extend(
                ri.iter()
                    .map(|(p, _)| p.clone())
                    .filter(|p| !li.iter().any(|(q, _)| q == p)),
            );
            for pe in all {
                let (lv, rv) = (find(&li, &pe), find(&ri, &pe));
                path.push(pe);
                match (lv.as_slice(), rv.as_slice()) {
                    ([] | [_], [] | [_]) => {
                        walk_compare(
                            lv.first().copied(),
                            rv.first().copied(),
                            &items,
                            path,
                            false,
                            cmp,
                        );
                    }
                    (l, r) if l.len() >= 2 && r.len() >= 2 => {
                        if l != r {
                            cmp.modified.insert(path);
                        }
                    }
                    (l, _) if l.len() >= 2 => cmp.removed.insert(path),
                    _ => cmp.added.insert(path),
                }
                path.pop();
            }
        }
        _ => {}
    }
    if !always_present {
        match (lhs, rhs) {
            (None, Some(_)) => cmp.added.insert(path),
            (Some(_), None) => cmp.removed.insert(path),
            _ => {}
        }
    }
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
