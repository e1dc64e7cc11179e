//! The fast path of `record_managed_fields` against the slow path, on the served schemas.

use serde_json::{Value, json};

use super::{Taken, record_managed_fields_slow, record_managed_fields_traced};
use crate::{SchemaNode, update_managed_fields};

const T0: &str = "2026-11-26T11:00:00Z";
const T1: &str = "2026-11-26T12:00:00Z";
const T2: &str = "2026-11-26T12:05:00Z";
const T3: &str = "2026-11-26T12:10:00Z";
const LEASE_V1: &str = "coordination.k8s.io/v1";

fn lease_schema() -> SchemaNode<'static> {
    SchemaNode::for_kind("coordination.k8s.io", "v1", "Lease")
}

fn pod_schema() -> SchemaNode<'static> {
    SchemaNode::for_kind("", "v1", "Pod")
}

fn node_schema() -> SchemaNode<'static> {
    SchemaNode::for_kind("", "v1", "Node")
}

fn deployment_schema() -> SchemaNode<'static> {
    SchemaNode::for_kind("apps", "v1", "Deployment")
}

/// One update through both paths: asserts identical results (values and key order) and returns
/// the result and the path the traced function took.
#[allow(clippy::too_many_arguments)]
fn both(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    sub: Option<&str>,
    api_version: &str,
    schema: SchemaNode,
    now: &str,
) -> (Value, Taken) {
    let mut slow = new.clone();
    record_managed_fields_slow(old, &mut slow, manager, sub, api_version, schema, now);
    let mut fast = new.clone();
    let taken =
        record_managed_fields_traced(old, &mut fast, manager, sub, api_version, schema, now);
    assert_eq!(fast, slow, "{taken:?} path differs for {manager} {sub:?}");
    assert_eq!(fast.to_string(), slow.to_string(), "key order ({taken:?})");
    // The variant that may move the entries out of the old object gives the same result, and
    // takes them only when the objects differ otherwise.
    if let Some(old) = old {
        let mut taken_from = old.clone();
        let mut moved = new.clone();
        super::record_managed_fields_taking(
            &mut taken_from,
            &mut moved,
            manager,
            sub,
            api_version,
            schema,
            now,
        );
        assert_eq!(moved.to_string(), slow.to_string(), "taking variant");
        if taken_from != *old {
            assert_eq!(taken_from["metadata"]["managedFields"], json!([]));
            let content = |v: &Value| {
                let mut v = without_managed_fields(v);
                if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.shift_remove("resourceVersion");
                }
                v
            };
            assert_ne!(
                content(&taken_from),
                content(new),
                "entries taken from an old object equal to the new one"
            );
            assert_eq!(
                without_managed_fields(&taken_from),
                without_managed_fields(old)
            );
        }
    }
    (fast, taken)
}

/// A node Lease as the API server stores it after the kubelet created it.
fn lease() -> Value {
    let obj = json!({
        "apiVersion": LEASE_V1,
        "kind": "Lease",
        "metadata": {
            "name": "node-1",
            "namespace": "kube-node-lease",
            "uid": "6a1f7c2e-8a7d-4a3e-9d55-0f3c1b2a9e11",
            "resourceVersion": "100",
            "creationTimestamp": T0,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "node-1",
                "uid": "0b6c3a5e-1f2d-4c8b-a7e9-3d4f5a6b7c8d"}]
        },
        "spec": {
            "holderIdentity": "node-1",
            "leaseDurationSeconds": 40,
            "renewTime": "2026-11-26T11:00:00.000000Z"
        }
    });
    update_managed_fields(None, &obj, "kubelet", None, LEASE_V1, lease_schema(), T0)
}

fn renewed(lease: &Value, at: &str) -> Value {
    let mut n = lease.clone();
    n["spec"]["renewTime"] = json!(at);
    n
}

fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.shift_remove("managedFields");
    }
    v
}

fn lease_update(old: &Value, new: &Value, manager: &str, now: &str) -> (Value, Taken) {
    both(Some(old), new, manager, None, LEASE_V1, lease_schema(), now)
}

#[test]
fn lease_renewal_takes_the_fast_path() {
    let lease = lease();
    assert_eq!(
        lease["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:renewTime"],
        json!({})
    );
    // managedFields sent back unchanged, as the kubelet does.
    let new = renewed(&lease, "2026-11-26T12:00:00.000000Z");
    let (got, taken) = lease_update(&lease, &new, "kubelet", T1);
    assert_eq!(taken, Taken::Fast);
    assert_eq!(got["metadata"]["managedFields"][0]["time"], json!(T1));
    assert_eq!(
        got["spec"]["renewTime"],
        json!("2026-11-26T12:00:00.000000Z")
    );
    // Renewed again from the result.
    let (again, taken) = lease_update(&got, &renewed(&got, "2026-11-26T12:00:10Z"), "kubelet", T2);
    assert_eq!(taken, Taken::Fast);
    assert_eq!(again["metadata"]["managedFields"][0]["time"], json!(T2));

    // managedFields omitted (and `null`).
    let (got, taken) = lease_update(&lease, &without_managed_fields(&new), "kubelet", T1);
    assert_eq!(taken, Taken::Fast);
    assert_eq!(got["metadata"]["managedFields"][0]["time"], json!(T1));
    let mut null = new.clone();
    null["metadata"]["managedFields"] = Value::Null;
    assert_eq!(lease_update(&lease, &null, "kubelet", T1).1, Taken::Fast);

    // Nothing changed (only server-set metadata): the managedFields stay as they are.
    let mut same = lease.clone();
    same["metadata"]["resourceVersion"] = json!("101");
    let (got, taken) = lease_update(&lease, &same, "kubelet", T1);
    assert_eq!(taken, Taken::Fast);
    assert_eq!(
        got["metadata"]["managedFields"],
        lease["metadata"]["managedFields"]
    );
    assert_eq!(
        lease_update(&lease, &without_managed_fields(&lease), "someone", T1).1,
        Taken::Fast
    );

    // Without a known schema objects are merged field by field as well.
    let (_, taken) = both(
        Some(&lease),
        &new,
        "kubelet",
        None,
        LEASE_V1,
        SchemaNode::none(),
        T1,
    );
    assert_eq!(taken, Taken::Fast);
}

/// The Lease with a second Update manager owning a label, at `time` (or without time).
fn lease_with_labeler(time: Option<&str>) -> Value {
    let lease = lease();
    let mut labeled = lease.clone();
    labeled["metadata"]["labels"] = json!({"zone": "a"});
    let (mut labeled, taken) = lease_update(&lease, &labeled, "labeler", T2);
    assert_eq!(taken, Taken::Slow);
    let entries = labeled["metadata"]["managedFields"].as_array_mut().unwrap();
    assert_eq!(entries[1]["manager"], json!("labeler"));
    match time {
        Some(t) => entries[1]["time"] = json!(t),
        None => {
            entries[1].as_object_mut().unwrap().shift_remove("time");
            entries.swap(0, 1);
        }
    }
    labeled
}

#[test]
fn entries_are_re_sorted_by_time() {
    let labeled = lease_with_labeler(Some(T2));
    // kubelet (T0) then labeler (T2); renewed at T3: kubelet moves last.
    let (got, taken) = lease_update(&labeled, &renewed(&labeled, "x"), "kubelet", T3);
    assert_eq!(taken, Taken::Fast);
    let managers: Vec<&Value> = got["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["manager"])
        .collect();
    assert_eq!(managers, [&json!("labeler"), &json!("kubelet")]);
    // Renewed at T1 (before the labeler's time): kubelet stays first.
    let (_, taken) = lease_update(&labeled, &renewed(&labeled, "x"), "kubelet", T1);
    assert_eq!(taken, Taken::Fast);
    // Same time as the labeler: then by manager name.
    let (_, taken) = lease_update(&labeled, &renewed(&labeled, "x"), "kubelet", T2);
    assert_eq!(taken, Taken::Fast);
    // The labeler changes its label.
    let mut relabeled = labeled.clone();
    relabeled["metadata"]["labels"]["zone"] = json!("b");
    let (_, taken) = lease_update(&labeled, &relabeled, "labeler", T3);
    assert_eq!(taken, Taken::Fast);
    // An entry without time gets one, where the encoder writes it.
    let untimed = lease_with_labeler(None);
    let mut relabeled = untimed.clone();
    relabeled["metadata"]["labels"]["zone"] = json!("b");
    let (got, taken) = lease_update(&untimed, &relabeled, "labeler", T3);
    assert_eq!(taken, Taken::Fast);
    let keys: Vec<&String> = got["metadata"]["managedFields"][1]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        keys,
        [
            "manager",
            "operation",
            "apiVersion",
            "time",
            "fieldsType",
            "fieldsV1"
        ]
    );
}

#[test]
fn lease_updates_the_fast_path_leaves_to_the_slow_path() {
    let lease = lease();
    let new = renewed(&lease, "2026-11-26T12:00:00Z");
    let slow = |old: &Value, new: &Value, manager: &str| {
        let (_, taken) = lease_update(old, new, manager, T1);
        assert_eq!(taken, Taken::Slow, "{manager}: {new}");
    };
    // By a manager without an entry, or with an entry of another API version.
    slow(&lease, &new, "intruder");
    let (_, taken) = both(
        Some(&lease),
        &new,
        "kubelet",
        None,
        "coordination.k8s.io/v1beta1",
        lease_schema(),
        T1,
    );
    assert_eq!(taken, Taken::Slow);
    // Through a subresource (another manager identity).
    let (_, taken) = both(
        Some(&lease),
        &new,
        "kubelet",
        Some("scale"),
        LEASE_V1,
        lease_schema(),
        T1,
    );
    assert_eq!(taken, Taken::Slow);
    // A field added, removed, set to null, turned into an object.
    let mut added = new.clone();
    added["spec"]["leaseTransitions"] = json!(1);
    slow(&lease, &added, "kubelet");
    let mut removed = new.clone();
    removed["spec"]
        .as_object_mut()
        .unwrap()
        .shift_remove("holderIdentity");
    slow(&lease, &removed, "kubelet");
    let mut null = new.clone();
    null["spec"]["renewTime"] = Value::Null;
    slow(&lease, &null, "kubelet");
    let mut object = new.clone();
    object["spec"]["renewTime"] = json!({"at": 1});
    slow(&lease, &object, "kubelet");
    // A change in a list item (the owner reference).
    let mut owner = new.clone();
    owner["metadata"]["ownerReferences"][0]["name"] = json!("node-2");
    slow(&lease, &owner, "kubelet");
    // The name (never owned, even when the managedFields claim it).
    let mut claims_name = lease.clone();
    claims_name["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"] = json!({
        "f:name": {},
        "f:ownerReferences": lease["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"]["f:ownerReferences"].clone()
    });
    let mut renamed = claims_name.clone();
    renamed["metadata"]["name"] = json!("node-2");
    slow(&claims_name, &renamed, "kubelet");
    let mut rekinded = claims_name.clone();
    rekinded["kind"] = json!("Other");
    slow(&claims_name, &rekinded, "kubelet");

    // A field owned by another manager too (shared through an apply of the same value).
    let applied = crate::apply(
        Some(&lease),
        &json!({"apiVersion": LEASE_V1, "kind": "Lease",
            "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
            "spec": {"renewTime": "2026-11-26T11:00:00.000000Z"}}),
        "sharer",
        LEASE_V1,
        false,
        lease_schema(),
        T0,
    )
    .unwrap();
    slow(&applied, &renewed(&applied, "y"), "kubelet");
    // ... but not the holder identity, owned by the kubelet alone.
    let mut holder = applied.clone();
    holder["spec"]["holderIdentity"] = json!("node-1b");
    let (_, taken) = lease_update(&applied, &holder, "kubelet", T1);
    assert_eq!(taken, Taken::Fast);
    // The field owned only by another manager.
    let labeled = lease_with_labeler(Some(T2));
    let mut relabeled = labeled.clone();
    relabeled["metadata"]["labels"]["zone"] = json!("b");
    slow(&labeled, &relabeled, "kubelet");
    // One field of the changes owned by the updater, another by someone else.
    let mut both_changed = relabeled.clone();
    both_changed["spec"]["renewTime"] = json!("z");
    slow(&labeled, &both_changed, "kubelet");
}

#[test]
fn requested_and_old_managed_fields_the_fast_path_leaves_to_the_slow_path() {
    let lease = lease();
    let new = renewed(&lease, "2026-11-26T12:00:00Z");
    let slow = |old: &Value, new: &Value| {
        let (_, taken) = lease_update(old, new, "kubelet", T1);
        assert_eq!(taken, Taken::Slow, "{old}\n{new}");
    };
    // Requested managedFields that differ from the stored ones, or reset them.
    let mut requested = new.clone();
    requested["metadata"]["managedFields"][0]["time"] = json!(T3);
    slow(&lease, &requested);
    let mut reset = new.clone();
    reset["metadata"]["managedFields"] = json!([]);
    slow(&lease, &reset);
    reset["metadata"]["managedFields"] = json!([{}]);
    slow(&lease, &reset);
    // No stored managedFields (or empty).
    let bare = without_managed_fields(&lease);
    slow(&bare, &without_managed_fields(&new));
    let mut empty = lease.clone();
    empty["metadata"]["managedFields"] = json!([]);
    slow(&empty, &without_managed_fields(&new));
    // Created: no old object.
    let (_, taken) = both(None, &new, "kubelet", None, LEASE_V1, lease_schema(), T1);
    assert_eq!(taken, Taken::Slow);

    // Stored managedFields the encoder would not write as they are: re-encoded by the slow
    // path.
    let entry = lease["metadata"]["managedFields"][0].clone();
    let with_entries = |entries: Value| {
        let mut old = lease.clone();
        old["metadata"]["managedFields"] = entries;
        old
    };
    let mut reordered = serde_json::Map::new();
    for k in [
        "operation",
        "manager",
        "apiVersion",
        "time",
        "fieldsType",
        "fieldsV1",
    ] {
        reordered.insert(k.to_owned(), entry[k].clone());
    }
    let fields = &entry["fieldsV1"];
    let variants = [
        json!([reordered]),
        json!([entry, entry]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1", "fieldsV1": fields, "subresource": ""}]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": 5,
            "fieldsType": "FieldsV1", "fieldsV1": fields}]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1", "fieldsV1": fields, "extra": 1}]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV2", "fieldsV1": fields}]),
        json!([{"manager": "kubelet", "operation": "Patch", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1", "fieldsV1": fields}]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": "", "time": T0,
            "fieldsType": "FieldsV1", "fieldsV1": fields}]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:renewTime": {}, "f:holderIdentity": {}}}}]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {".": {}, "f:spec": {"f:renewTime": {}}}}]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:renewTime": {".": {}}}}}]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:renewTime": {}, ".": {}}}}]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {".": {"x": 1}, "f:renewTime": {}}}}]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"k:{ \"uid\": \"1\" }": {}}, "f:spec": {"f:renewTime": {}}}}]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:renewTime": {}, "i:01": {}}}}]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:renewTime": []}}}]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1", "fieldsV1": {}}, entry]),
        json!([{"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1", "fieldsV1": fields},
            {"manager": "a", "operation": "Apply", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {}}}}]),
    ];
    for entries in variants {
        let old = with_entries(entries);
        let new = renewed(&old, "2026-11-26T12:00:00Z");
        slow(&old, &new);
        slow(&old, &without_managed_fields(&new));
    }
    // The same, but canonical, takes the fast path.
    let canonical = json!([
        {"manager": "a", "operation": "Apply", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {}}}},
        {"manager": "kubelet", "operation": "Update", "apiVersion": LEASE_V1, "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:ownerReferences": {".": {}, "k:{\"uid\":\"1\"}": {
                ".": {}, "f:name": {}}}}, "f:spec": {"f:renewTime": {}}}}
    ]);
    let old = with_entries(canonical);
    let (_, taken) = lease_update(&old, &renewed(&old, "x"), "kubelet", T1);
    assert_eq!(taken, Taken::Fast);

    // More than ten Update managers: capped by the slow path.
    let mut many = Vec::new();
    for i in 0..11 {
        let mut e = entry.clone();
        e["manager"] = json!(format!("m{i:02}"));
        e["time"] = json!(format!("2026-11-26T10:00:{i:02}Z"));
        if i > 0 {
            e["fieldsV1"] = json!({"f:metadata": {"f:labels": {format!("f:l{i}"): {}}}});
        }
        many.push(e);
    }
    let many = with_entries(Value::Array(many));
    let (_, taken) = lease_update(&many, &new, "m00", T1);
    assert_eq!(taken, Taken::Slow);
}

/// The realistic Pod of `testdata/pod.json` after a create, an edit and a status update.
fn pod_history() -> (Value, Value) {
    let pod: Value = serde_json::from_str(include_str!("../../testdata/pod.json")).unwrap();
    let ps = pod_schema();
    let created = update_managed_fields(None, &pod, "kubectl-create", None, "v1", ps, T0);
    let mut edited = created.clone();
    edited["metadata"]["labels"]["pod-template-hash"] = json!("5c8b7f9d6e");
    edited["spec"]["containers"][1]["image"] = json!("registry.example.com/mesh/proxy:2.10.0");
    let (updated, _) = both(Some(&created), &edited, "kubectl-edit", None, "v1", ps, T1);
    let mut status = updated.clone();
    status["status"] = json!({"phase": "Waiting", "podIP": "10.0.0.7", "hostIP": "192.168.0.2",
        "conditions": [{"type": "Ready", "status": "False"}]});
    let (status, taken) = both(
        Some(&updated),
        &status,
        "kubelet",
        Some("status"),
        "v1",
        ps,
        T2,
    );
    assert_eq!(taken, Taken::Slow);
    (updated, status)
}

#[test]
fn pod_updates_match_the_slow_path() {
    let (updated, pod) = pod_history();
    let ps = pod_schema();
    let update = |new: &Value, manager: &str, sub: Option<&str>| {
        both(Some(&pod), new, manager, sub, "v1", ps, T3).1
    };
    // The kubelet's status: phase owned by it alone -> fast; a condition (list item) -> slow.
    let mut running = pod.clone();
    running["status"]["phase"] = json!("Running");
    assert_eq!(update(&running, "kubelet", Some("status")), Taken::Fast);
    // Stale managedFields sent along are ignored by a subresource write.
    let mut stale = running.clone();
    stale["metadata"]["managedFields"] = updated["metadata"]["managedFields"].clone();
    assert_eq!(update(&stale, "kubelet", Some("status")), Taken::Fast);
    // Spec changes are not seen through the status subresource (and status not through the
    // main resource).
    let mut spec_too = running.clone();
    spec_too["spec"]["nodeName"] = json!("ignored");
    assert_eq!(update(&spec_too, "kubelet", Some("status")), Taken::Fast);
    // Even without metadata (created for the managedFields, as the slow path does).
    let mut bare = running.clone();
    bare.as_object_mut().unwrap().shift_remove("metadata");
    assert_eq!(update(&bare, "kubelet", Some("status")), Taken::Fast);
    assert_eq!(update(&running, "kubectl-edit", None), Taken::Fast);
    let mut ready = pod.clone();
    ready["status"]["conditions"][0]["status"] = json!("True");
    assert_eq!(update(&ready, "kubelet", Some("status")), Taken::Slow);
    // A container image (list item), by its owner.
    let mut image = pod.clone();
    image["spec"]["containers"][0]["image"] = json!("app:2");
    assert_eq!(update(&image, "kubectl-create", None), Taken::Slow);
    // A label owned by the editor alone -> fast; by the creator -> slow (the editor owns it).
    let mut label = pod.clone();
    label["metadata"]["labels"]["pod-template-hash"] = json!("0");
    assert_eq!(update(&label, "kubectl-edit", None), Taken::Fast);
    assert_eq!(update(&label, "kubectl-create", None), Taken::Slow);
}

/// Every scalar leaf of `v`, as JSON pointers.
fn leaves(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let k = k.replace('~', "~0").replace('/', "~1");
                leaves(c, &format!("{prefix}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                leaves(c, &format!("{prefix}/{i}"), out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

fn changed_scalar(v: &Value) -> Value {
    match v {
        Value::String(s) => json!(format!("{s}-changed")),
        Value::Number(n) => json!(n.as_i64().unwrap_or(0) + 1),
        Value::Bool(b) => json!(!b),
        _ => json!("now-a-string"),
    }
}

/// Every leaf of the Pod changed, set to null, removed or given a sibling, by every manager,
/// through the main resource and the status subresource: both paths agree; the fast path is
/// taken exactly for the leaves reached through field-by-field objects that their updater
/// alone owns.
#[test]
fn every_pod_leaf_change_matches_the_slow_path() {
    let (_, pod) = pod_history();
    let ps = pod_schema();
    let mut pointers = Vec::new();
    leaves(&without_managed_fields(&pod), "", &mut pointers);
    assert!(pointers.len() > 50, "{}", pointers.len());
    let mut fast = 0;
    let mut total = 0;
    for ptr in &pointers {
        let mut variants = Vec::new();
        let mut changed = pod.clone();
        let leaf = changed.pointer_mut(ptr).unwrap();
        *leaf = changed_scalar(leaf);
        variants.push(changed);
        let mut null = pod.clone();
        *null.pointer_mut(ptr).unwrap() = Value::Null;
        variants.push(null);
        let (parent, last) = ptr.rsplit_once('/').unwrap();
        if let Some(Value::Object(m)) = pod.pointer(parent) {
            let mut removed = pod.clone();
            let pm = removed
                .pointer_mut(parent)
                .unwrap()
                .as_object_mut()
                .unwrap();
            pm.shift_remove(&last.replace("~1", "/").replace("~0", "~"));
            variants.push(removed);
            let mut added = pod.clone();
            let pm = added.pointer_mut(parent).unwrap().as_object_mut().unwrap();
            pm.insert(format!("zz{}", m.len()), json!("new"));
            variants.push(added);
        }
        for new in &variants {
            for (manager, sub) in [
                ("kubectl-create", None),
                ("kubectl-edit", None),
                ("kubelet", Some("status")),
                ("kubelet", None),
                ("nobody", None),
            ] {
                let (_, taken) = both(Some(&pod), new, manager, sub, "v1", ps, T3);
                total += 1;
                if taken == Taken::Fast {
                    fast += 1;
                }
            }
        }
    }
    // Status leaves change through the main resource without effect, spec ones through the
    // status subresource: many fast outcomes, but far from all.
    println!("{fast} fast of {total}");
    assert!(fast > 50 && fast < total / 2, "{fast} of {total}");
}

#[test]
fn node_condition_and_atomic_changes_take_the_slow_path() {
    let ns = node_schema();
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
        "spec": {"podCIDR": "10.244.1.0/24"},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "lastHeartbeatTime": T0,
                    "lastTransitionTime": T0, "reason": "KubeletReady", "message": "ready"}
            ],
            "nodeInfo": {"kubeletVersion": "v1.35.0", "machineID": "m"},
            "capacity": {"cpu": "2", "memory": "4Gi"}
        }
    });
    let created = update_managed_fields(None, &node, "kubelet", None, "v1", ns, T0);
    let mut status = created.clone();
    status["status"]["capacity"]["cpu"] = json!("3");
    let (status, _) = both(
        Some(&created),
        &status,
        "kubelet",
        Some("status"),
        "v1",
        ns,
        T1,
    );
    let mut heartbeat = status.clone();
    heartbeat["status"]["conditions"][0]["lastHeartbeatTime"] = json!(T2);
    let (_, taken) = both(
        Some(&status),
        &heartbeat,
        "kubelet",
        Some("status"),
        "v1",
        ns,
        T2,
    );
    assert_eq!(taken, Taken::Slow);
    // A scalar in a map of quantities, owned by the kubelet's status entry.
    let mut capacity = status.clone();
    capacity["status"]["capacity"]["cpu"] = json!("4");
    let (_, taken) = both(
        Some(&status),
        &capacity,
        "kubelet",
        Some("status"),
        "v1",
        ns,
        T2,
    );
    assert_eq!(taken, Taken::Fast);
    // Memory, which nobody owns (the status write changed only the CPU).
    let mut memory = status.clone();
    memory["status"]["capacity"]["memory"] = json!("8Gi");
    let (_, taken) = both(
        Some(&status),
        &memory,
        "kubelet",
        Some("status"),
        "v1",
        ns,
        T2,
    );
    assert_eq!(taken, Taken::Slow);

    // An atomic map (a Deployment's label selector), even when the managedFields claim the
    // leaf inside it.
    let ds = deployment_schema();
    let dep: Value = serde_json::from_str(include_str!("../../testdata/deployment.json")).unwrap();
    let created = update_managed_fields(None, &dep, "ctl", None, "apps/v1", ds, T0);
    assert_eq!(
        created["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:selector"],
        json!({})
    );
    let mut claimed = created.clone();
    claimed["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:selector"] =
        json!({"f:matchLabels": {"f:app": {}}});
    for old in [&created, &claimed] {
        let mut selector = old.clone();
        selector["spec"]["selector"]["matchLabels"]["app"] = json!("other");
        let (_, taken) = both(Some(old), &selector, "ctl", None, "apps/v1", ds, T1);
        assert_eq!(taken, Taken::Slow);
    }
    // The replicas through the scale subresource, by the manager owning them there.
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(5);
    let (scaled_once, taken) = both(
        Some(&created),
        &scaled,
        "hpa",
        Some("scale"),
        "apps/v1",
        ds,
        T1,
    );
    assert_eq!(taken, Taken::Slow);
    let mut scaled = scaled_once.clone();
    scaled["spec"]["replicas"] = json!(6);
    let (_, taken) = both(
        Some(&scaled_once),
        &scaled,
        "hpa",
        Some("scale"),
        "apps/v1",
        ds,
        T2,
    );
    assert_eq!(taken, Taken::Fast);
    // The same manager through the main resource is another identity.
    let (_, taken) = both(Some(&scaled_once), &scaled, "hpa", None, "apps/v1", ds, T2);
    assert_eq!(taken, Taken::Slow);
}

/// Rough timing of the Lease renewal:
/// `cargo test -p patch --release -- --ignored --nocapture lease_renewal_timing`.
#[test]
#[ignore]
fn lease_renewal_timing() {
    let lease = lease();
    let schema = lease_schema();
    let new = renewed(&lease, "2026-11-26T12:00:00.000000Z");
    let omitted = without_managed_fields(&new);
    const N: u32 = 100_000;
    for (name, body) in [
        ("managedFields sent back", &new),
        ("managedFields omitted", &omitted),
    ] {
        let mut timings = Vec::new();
        for slow in [true, false] {
            let start = std::time::Instant::now();
            for _ in 0..N {
                let mut out = body.clone();
                if slow {
                    record_managed_fields_slow(
                        Some(&lease),
                        &mut out,
                        "kubelet",
                        None,
                        LEASE_V1,
                        schema,
                        T1,
                    );
                } else {
                    let taken = record_managed_fields_traced(
                        Some(&lease),
                        &mut out,
                        "kubelet",
                        None,
                        LEASE_V1,
                        schema,
                        T1,
                    );
                    assert_eq!(taken, Taken::Fast);
                }
                std::hint::black_box(&out);
            }
            timings.push(start.elapsed() / N);
        }
        // The clone of the body, included in both.
        let start = std::time::Instant::now();
        for _ in 0..N {
            std::hint::black_box(body.clone());
        }
        let clone = start.elapsed() / N;
        println!(
            "{name}: slow {:?}/call, fast {:?}/call (each including a {clone:?} clone of the body)",
            timings[0], timings[1]
        );
    }
}
