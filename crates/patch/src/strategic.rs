//! Strategic merge patch, ported from upstream
//! `apimachinery/pkg/util/strategicpatch/patch.go` (`StrategicMergeMapPatchUsingLookupPatchMeta`
//! with the server-side options `MergeParallelList` and `IgnoreUnmatchedNulls`).

use serde_json::{Map, Value};

use crate::{PatchError, SchemaNode};

const DIRECTIVE_MARKER: &str = "$patch";
const DELETE_DIRECTIVE: &str = "delete";
const REPLACE_DIRECTIVE: &str = "replace";
const MERGE_DIRECTIVE: &str = "merge";
const RETAIN_KEYS_STRATEGY: &str = "retainKeys";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

/// Applies a strategic merge patch (`application/strategic-merge-patch+json`) to `original`
/// following the patch strategies and merge keys of `schema` (the schema of the object's kind).
///
/// Lists whose field has `x-kubernetes-patch-strategy: merge` are merged by
/// `x-kubernetes-patch-merge-key` (primitive lists as sets); other lists are replaced; `null`
/// deletes; the directives `$patch: replace|delete` (in maps and list elements),
/// `$setElementOrder/<list>`, `$retainKeys` and `$deleteFromPrimitiveList/<list>` are honoured,
/// with upstream's ordering rules. As upstream, `$patch: merge` is rejected.
///
/// An unknown schema gives [`PatchError::NoSchema`]: the API server answers 415 for strategic
/// merge patches of types it has no schema for (custom resources), and clients fall back to
/// merge patch.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    schema: SchemaNode,
) -> Result<Value, PatchError> {
    if !schema.is_known() {
        return Err(PatchError::NoSchema);
    }
    let Value::Object(patch) = patch else {
        return Err(PatchError::BadJsonDoc);
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::BadJsonDoc),
    };
    merge_map(original, patch.clone(), schema).map(Value::Object)
}

fn json(v: &Value) -> String {
    v.to_string()
}

fn no_merge_key(m: &Map<String, Value>, key: &str) -> PatchError {
    PatchError::NoMergeKey {
        map: json(&Value::Object(m.clone())),
        key: key.to_owned(),
    }
}

fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    PatchError::Invalid(format!(
        "expected a {expected}, but received a {}",
        type_name(actual)
    ))
}

/// Go's name of the decoded JSON type, for messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// The "reflect type" of a decoded JSON value; numbers are all float64 in Go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Slice,
    Map,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Slice,
        Value::Object(_) => Kind::Map,
    }
}

/// Splits a patch strategy into (has retainKeys, other strategy), as
/// `extractRetainKeysPatchStrategy`.
fn extract_retain_keys_patch_strategy(strategies: &[&str]) -> Result<(bool, String), PatchError> {
    match strategies {
        [] => Ok((false, String::new())),
        [one] if *one == RETAIN_KEYS_STRATEGY => Ok((true, String::new())),
        [one] => Ok((false, (*one).to_owned())),
        [a, b] if *a == RETAIN_KEYS_STRATEGY => Ok((true, (*b).to_owned())),
        [a, b] if *b == RETAIN_KEYS_STRATEGY => Ok((true, (*a).to_owned())),
        _ => Err(PatchError::Invalid(format!(
            "unexpected patch strategy: {strategies:?}"
        ))),
    }
}

fn field_strategy(node: &SchemaNode) -> Result<String, PatchError> {
    Ok(extract_retain_keys_patch_strategy(&node.patch_strategies())?.1)
}

/// `mergeMap`: merges `patch` into `original`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: SchemaNode,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE_MARKER).cloned() {
        return handle_directive_in_merge_map(&directive, patch);
    }

    apply_retain_keys_directive(&mut original, &mut patch)?;
    merge_patch_into_original(&mut original, &mut patch, schema)?;

    for (key, patch_v) in patch {
        let mut k = key;
        let mut is_delete_list = false;
        if k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            k = extract_key(&k, DELETE_FROM_PRIMITIVE_LIST_PREFIX)?;
            is_delete_list = true;
        }

        if patch_v.is_null() {
            original.shift_remove(&k);
            continue;
        }

        let Some(orig_v) = original.get(&k) else {
            if !is_delete_list {
                set_or_remove(&mut original, k, patch_v);
            }
            continue;
        };

        if kind(orig_v) != kind(&patch_v) {
            if !is_delete_list {
                set_or_remove(&mut original, k, patch_v);
            }
            continue;
        }

        let Some(slot) = original.get_mut(&k) else {
            continue;
        };
        let orig_v = std::mem::take(slot);
        let merged = match (orig_v, patch_v) {
            (Value::Object(o), Value::Object(p)) => {
                let sub = schema.field(&k);
                let strategy = field_strategy(&sub)?;
                if strategy == REPLACE_DIRECTIVE {
                    Some(Value::Object(p))
                } else {
                    Some(Value::Object(merge_map(o, p, sub)?))
                }
            }
            (Value::Array(o), Value::Array(p)) => {
                let sub = schema.field(&k);
                let strategy = field_strategy(&sub)?;
                Some(Value::Array(merge_slice_handler(
                    o,
                    p,
                    sub.items(),
                    &strategy,
                    sub.patch_merge_key(),
                    is_delete_list,
                )?))
            }
            (_, p) => remove_directives(p),
        };
        match merged {
            Some(v) => {
                original.insert(k, v);
            }
            None => {
                original.shift_remove(&k);
            }
        }
    }
    Ok(original)
}

/// Takes a patch value for a key absent from (or of another type in) the original, dropping
/// nulls and directives as upstream does.
fn set_or_remove(original: &mut Map<String, Value>, k: String, mut patch_v: Value) {
    discard_null_values_from_patch(&mut patch_v);
    match remove_directives(patch_v) {
        Some(v) => {
            original.insert(k, v);
        }
        None => {
            original.shift_remove(&k);
        }
    }
}

/// `handleDirectiveInMergeMap`: `$patch: replace` keeps the patch, `$patch: delete` empties.
fn handle_directive_in_merge_map(
    directive: &Value,
    mut patch: Map<String, Value>,
) -> Result<Map<String, Value>, PatchError> {
    match directive.as_str() {
        Some(REPLACE_DIRECTIVE) => {
            patch.shift_remove(DIRECTIVE_MARKER);
            Ok(patch)
        }
        Some(DELETE_DIRECTIVE) => Ok(Map::new()),
        _ => Err(PatchError::BadPatchType {
            directive: directive_string(directive),
            map: json(&Value::Object(patch)),
        }),
    }
}

fn directive_string(v: &Value) -> String {
    v.as_str().map_or_else(|| json(v), str::to_owned)
}

/// `extractKey`: the list key after `<prefix>/`.
fn extract_key(s: &str, prefix: &str) -> Result<String, PatchError> {
    match s.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_owned()),
        _ => Err(match prefix {
            DELETE_FROM_PRIMITIVE_LIST_PREFIX => PatchError::BadPatchFormatForPrimitiveList,
            SET_ELEMENT_ORDER_PREFIX => PatchError::BadPatchFormatForSetElementOrderList,
            _ => PatchError::Invalid(format!("fail to find unknown prefix {prefix:?} in {s}")),
        }),
    }
}

/// `applyRetainKeysDirective`: clears the original's keys missing from `$retainKeys`.
fn apply_retain_keys_directive(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadPatchFormatForRetainKeys);
    };
    let retained = |k: &str| retain.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || k.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !retained(k) {
            return Err(PatchError::BadPatchFormatForRetainKeys);
        }
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

/// `mergePatchIntoOriginal`: merges each list that has a `$setElementOrder/<list>` directive and
/// orders it: `$setElementOrder` > order in the patch list > order in the live list.
fn merge_patch_into_original(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: SchemaNode,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for key in keys {
        let set_order = patch.shift_remove(&key).unwrap_or(Value::Null);
        let Value::Array(set_order) = set_order else {
            return Err(bad_arg_type("[]interface {}", &set_order));
        };
        let original_key = extract_key(&key, SET_ELEMENT_ORDER_PREFIX)?;
        let original_list = match original.get(&original_key) {
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
            None => None,
        };
        let patch_list = match patch.get(&original_key) {
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
            None => None,
        };
        let sub = schema.field(&original_key);
        let strategy = field_strategy(&sub)?;
        let merge_key = sub.patch_merge_key();
        validate_patch_with_set_order_list(
            patch_list.as_deref().unwrap_or(&[]),
            &set_order,
            merge_key,
        )?;

        let original_field = original_list.clone().unwrap_or_default();
        let patch_field = patch_list.clone().unwrap_or_default();
        let merged = match (original_list, patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => match remove_directives(Value::Array(p)) {
                Some(Value::Array(v)) => v,
                _ => continue,
            },
            (Some(o), Some(p)) => {
                merge_slice_handler(o, p, sub.items(), &strategy, merge_key, false)?
            }
            (None, None) => continue,
        };

        let (patch_items, server_only) = if merge_key.is_empty() {
            partition_primitives_by_present_in_list(merged, &set_order)
        } else {
            partition_maps_by_present_in_list(merged, &set_order, merge_key)?
        };
        let elem_kind = slice_element_type(&[&original_field, &patch_field])?;
        let both = normalize_element_order(
            patch_items,
            server_only,
            &set_order,
            &original_field,
            merge_key,
            elem_kind,
        )?;
        original.insert(original_key.clone(), Value::Array(both));
        patch.shift_remove(&original_key);
    }
    Ok(())
}

/// `validatePatchWithSetOrderList`: the patch list must follow the `$setElementOrder` order.
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    set_order: &[Value],
    merge_key: &str,
) -> Result<(), PatchError> {
    if set_order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<Value> = if merge_key.is_empty() {
        patch_list.to_vec()
    } else {
        extract_to_delete_items(patch_list.to_vec())?.0
    };
    let (mut pi, mut si) = (0, 0);
    while pi < non_delete.len() && si < set_order.len() {
        if contains_directive_marker(&non_delete[pi]) {
            pi += 1;
            continue;
        }
        if merge_key_value_equal(&non_delete[pi], &set_order[si], merge_key)? {
            pi += 1;
        }
        si += 1;
    }
    if pi < non_delete.len() && si >= set_order.len() {
        return Err(PatchError::Invalid(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER_PREFIX} list:\n{}\n",
            json(&Value::Array(patch_list.to_vec())),
            json(&Value::Array(set_order.to_vec()))
        )));
    }
    Ok(())
}

fn contains_directive_marker(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.contains_key(DIRECTIVE_MARKER))
}

fn merge_key_value_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool, PatchError> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let l = left
        .as_object()
        .ok_or_else(|| bad_arg_type("map[string]interface {}", left))?;
    let r = right
        .as_object()
        .ok_or_else(|| bad_arg_type("map[string]interface {}", right))?;
    let lv = l.get(merge_key).ok_or_else(|| no_merge_key(l, merge_key))?;
    let rv = r.get(merge_key).ok_or_else(|| no_merge_key(r, merge_key))?;
    Ok(lv == rv)
}

/// `mergeSliceHandler`: lists with the merge strategy (and deletion lists) are merged, others
/// are replaced by the patch.
fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: SchemaNode,
    strategy: &str,
    merge_key: &str,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if strategy == MERGE_DIRECTIVE || is_delete_list {
        merge_slice(original, patch, items, merge_key, is_delete_list)
    } else {
        Ok(patch)
    }
}

/// `mergeSlice`.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: SchemaNode,
    merge_key: &str,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let elem_kind = slice_element_type(&[&original, &patch])?;

    let (merged, original, patch) = if elem_kind != Kind::Map {
        if is_delete_list {
            return Ok(delete_from_slice(original, &patch));
        }
        let mut both = original.clone();
        both.extend(patch.iter().cloned());
        (deduplicate_scalars(both), original, patch)
    } else {
        if merge_key.is_empty() {
            return Err(PatchError::Invalid(
                "cannot merge lists without merge key for map".to_owned(),
            ));
        }
        let (original, patch) = merge_slice_with_special_elements(original, patch, merge_key)?;
        let merged = merge_slice_without_special_elements(
            original.clone(),
            patch.clone(),
            merge_key,
            items,
        )?;
        (merged, original, patch)
    };

    let (patch_items, server_only) = if merge_key.is_empty() {
        partition_primitives_by_present_in_list(merged, &patch)
    } else {
        partition_maps_by_present_in_list(merged, &patch, merge_key)?
    };
    normalize_element_order(
        patch_items,
        server_only,
        &patch,
        &original,
        merge_key,
        elem_kind,
    )
}

/// `mergeSliceWithSpecialElements`: handles `$patch: delete|replace` list elements; returns the
/// new original and the patch without them.
fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut without_special = Vec::with_capacity(patch.len());
    let mut replace = false;
    for v in patch {
        let Value::Object(m) = &v else {
            return Err(bad_arg_type("map[string]interface {}", &v));
        };
        match m.get(DIRECTIVE_MARKER) {
            None => without_special.push(v),
            Some(directive) => match directive.as_str() {
                Some(DELETE_DIRECTIVE) => {
                    let value = m.get(merge_key).ok_or_else(|| no_merge_key(m, merge_key))?;
                    original = delete_matching_entries(original, merge_key, value)?;
                }
                Some(REPLACE_DIRECTIVE) => replace = true,
                Some(MERGE_DIRECTIVE) => {
                    return Err(PatchError::Invalid(
                        "merging lists cannot yet be specified in the patch".to_owned(),
                    ));
                }
                _ => {
                    return Err(PatchError::BadPatchType {
                        directive: directive_string(directive),
                        map: json(&v),
                    });
                }
            },
        }
    }
    if replace {
        return Ok((without_special, Vec::new()));
    }
    Ok((original, without_special))
}

fn delete_matching_entries(
    mut original: Vec<Value>,
    merge_key: &str,
    value: &Value,
) -> Result<Vec<Value>, PatchError> {
    while let Some((_, idx)) = find_map_in_slice_based_on_key_value(&original, merge_key, value)? {
        original.remove(idx);
    }
    Ok(original)
}

/// `mergeSliceWithoutSpecialElements`: merges elements with equal merge key, appends the rest.
fn merge_slice_without_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    items: SchemaNode,
) -> Result<Vec<Value>, PatchError> {
    for v in patch {
        let Value::Object(m) = v else {
            return Err(bad_arg_type("map[string]interface {}", &v));
        };
        let value = m
            .get(merge_key)
            .cloned()
            .ok_or_else(|| no_merge_key(&m, merge_key))?;
        match find_map_in_slice_based_on_key_value(&original, merge_key, &value)? {
            Some((orig_map, idx)) => {
                original[idx] = Value::Object(merge_map(orig_map, m, items)?);
            }
            None => original.push(Value::Object(m)),
        }
    }
    Ok(original)
}

/// A map element of a list and its index.
type FoundMap = Option<(Map<String, Value>, usize)>;

fn find_map_in_slice_based_on_key_value(
    list: &[Value],
    key: &str,
    value: &Value,
) -> Result<FoundMap, PatchError> {
    for (i, v) in list.iter().enumerate() {
        let Value::Object(m) = v else {
            return Err(PatchError::Invalid(format!(
                "value for key {i} is not a map"
            )));
        };
        if m.get(key) == Some(value) {
            return Ok(Some((m.clone(), i)));
        }
    }
    Ok(None)
}

/// `deleteFromSlice`: removes the scalars listed in `to_delete`.
fn delete_from_slice(current: Vec<Value>, to_delete: &[Value]) -> Vec<Value> {
    current
        .into_iter()
        .filter(|v| !to_delete.contains(v))
        .collect()
}

/// `deduplicateScalars`, including its way of reordering.
fn deduplicate_scalars(mut s: Vec<Value>) -> Vec<Value> {
    if s.is_empty() {
        return s;
    }
    let mut length = s.len() - 1;
    let mut i = 0;
    while i < length {
        let mut j = i + 1;
        while j <= length {
            if s[i] == s[j] {
                s[j] = s[length].clone();
                s.truncate(length);
                length -= 1;
                continue;
            }
            j += 1;
        }
        i += 1;
    }
    s
}

/// `sliceElementType`: all elements of all slices have the same type, which is not a list.
fn slice_element_type(slices: &[&[Value]]) -> Result<Kind, PatchError> {
    let mut prev: Option<Kind> = None;
    for s in slices {
        for v in s.iter() {
            let k = kind(v);
            match prev {
                None => {
                    if k == Kind::Slice {
                        return Err(PatchError::NoListOfLists);
                    }
                    prev = Some(k);
                }
                Some(p) if p != k => {
                    let all: Vec<Value> = slices.iter().map(|s| Value::Array(s.to_vec())).collect();
                    return Err(PatchError::Invalid(format!(
                        "list element types are not identical: {}",
                        json(&Value::Array(all))
                    )));
                }
                Some(_) => {}
            }
        }
    }
    prev.ok_or_else(|| PatchError::Invalid("no elements in any of the given slices".to_owned()))
}

fn partition_primitives_by_present_in_list(
    original: Vec<Value>,
    partition_by: &[Value],
) -> (Vec<Value>, Vec<Value>) {
    original.into_iter().partition(|v| partition_by.contains(v))
}

fn partition_maps_by_present_in_list(
    original: Vec<Value>,
    partition_by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut patch = Vec::with_capacity(original.len());
    let mut server_only = Vec::with_capacity(original.len());
    for v in original {
        let Value::Object(m) = &v else {
            return Err(bad_arg_type("map[string]interface {}", &v));
        };
        let value = m.get(merge_key).ok_or_else(|| no_merge_key(m, merge_key))?;
        if find_map_in_slice_based_on_key_value(partition_by, merge_key, value)?.is_some() {
            patch.push(v);
        } else {
            server_only.push(v);
        }
    }
    Ok((patch, server_only))
}

/// `normalizeElementOrder`: sorts the patch items by `patch_order` and the server-only items by
/// `server_order`, then interleaves them.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>, PatchError> {
    let patch = normalize_slice_order(patch, patch_order, merge_key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    Ok(merge_sorted_slice(
        server_only,
        patch,
        server_order,
        merge_key,
        kind,
    ))
}

/// `index`: position of `v` in `l`, by merge key for maps and by value otherwise.
fn index(l: &[Value], v: &Value, merge_key: &str, kind: Kind) -> Option<usize> {
    let key_of = |item: &Value| -> Option<Value> {
        if kind == Kind::Map {
            item.as_object().and_then(|m| m.get(merge_key)).cloned()
        } else {
            Some(item.clone())
        }
    };
    let needle = key_of(v);
    l.iter().position(|item| key_of(item) == needle)
}

/// `normalizeSliceOrder`: stable-sorts `to_sort` by `order` (Go's insertion sort, so that the
/// same non-strict comparator gives the same result), `$patch: delete` items last.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>, PatchError> {
    let (mut to_sort, to_delete) = if kind == Kind::Map {
        validate_merge_key_in_lists(merge_key, &[&to_sort, order])?;
        extract_to_delete_items(to_sort)?
    } else {
        (to_sort, Vec::new())
    };
    let less = |a: &Value, b: &Value| match (
        index(order, a, merge_key, kind),
        index(order, b, merge_key, kind),
    ) {
        (Some(ia), Some(ib)) => ia < ib,
        _ => true,
    };
    for i in 1..to_sort.len() {
        let mut j = i;
        while j > 0 && less(&to_sort[j], &to_sort[j - 1]) {
            to_sort.swap(j, j - 1);
            j -= 1;
        }
    }
    to_sort.extend(to_delete);
    Ok(to_sort)
}

fn validate_merge_key_in_lists(merge_key: &str, lists: &[&[Value]]) -> Result<(), PatchError> {
    for list in lists {
        for item in list.iter() {
            let Value::Object(m) = item else {
                return Err(bad_arg_type("map[string]interface {}", item));
            };
            if !m.contains_key(merge_key) {
                return Err(no_merge_key(m, merge_key));
            }
        }
    }
    Ok(())
}

/// `extractToDeleteItems`: splits `$patch: delete` items off.
fn extract_to_delete_items(l: Vec<Value>) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for v in l {
        let Value::Object(m) = &v else {
            return Err(bad_arg_type("map[string]interface {}", &v));
        };
        if m.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some(DELETE_DIRECTIVE) {
            delete.push(v);
        } else {
            keep.push(v);
        }
    }
    Ok((keep, delete))
}

/// `mergeSortedSlice`: inserts the `left` items into `right`, keeping both relative orders and
/// using `server_order` to place them.
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Vec<Value> {
    let size = left.len() + right.len();
    let mut out = Vec::with_capacity(size);
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    while out.len() < size {
        let take_left = match (left.peek(), right.peek()) {
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index(server_order, l, merge_key, kind), index(server_order, r, merge_key, kind)),
                (Some(li), Some(ri)) if li < ri
            ),
            (None, None) => break,
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some(v) = next {
            out.push(v);
        }
    }
    out
}

/// `removeDirectives`: drops maps carrying `$patch` (returns `None` when `obj` itself is one).
fn remove_directives(obj: Value) -> Option<Value> {
    match obj {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE_MARKER) {
                return None;
            }
            Some(Value::Object(
                m.into_iter()
                    .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// `discardNullValuesFromPatch`: removes `null` map values everywhere.
fn discard_null_values_from_patch(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_null_values_from_patch);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_null_values_from_patch),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
