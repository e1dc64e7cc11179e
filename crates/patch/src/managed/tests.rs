use super::*;
use crate::testschema::{config_map, deployment};

const T1: &str = "2026-11-26T12:00:00Z";
const T2: &str = "2026-11-26T12:05:00Z";
const T3: &str = "2026-11-26T12:10:00Z";

fn config(image: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "default", "labels": {"app": "app"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

fn apply_ok(live: Option<&Value>, applied: &Value, manager: &str, force: bool, now: &str) -> Value {
    apply(live, applied, manager, "apps/v1", force, deployment(), now).unwrap()
}

fn entries(obj: &Value) -> Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["manager"] == manager))
        .unwrap_or_else(|| panic!("no entry for {manager} in {obj}"))
}

fn owns(obj: &Value, manager: &str, path: &[&str]) -> bool {
    let set = FieldSet::from_fields_v1(&entry(obj, manager)["fieldsV1"]).unwrap();
    let path: Vec<PathElement> = path
        .iter()
        .map(|p| PathElement::deserialize(p).unwrap())
        .collect();
    set.has(&path)
}

/// A PUT/PATCH by `manager` changing the stored object with `f`.
fn update(obj: &Value, manager: &str, now: &str, f: impl FnOnce(&mut Value)) -> Value {
    let mut new = obj.clone();
    f(&mut new);
    update_managed_fields(Some(obj), &new, manager, None, "apps/v1", deployment(), now)
}

#[test]
fn create_by_apply() {
    let obj = apply_ok(None, &config("nginx:1.25", 2), "kubectl", false, T1);
    assert_eq!(obj["spec"]["replicas"], 2);
    assert_eq!(obj["metadata"]["name"], "app");
    assert_eq!(
        entries(&obj),
        vec![json!({
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                        }}}
                    }
                }
            }
        })]
    );
}

#[test]
fn reapply_changes_image() {
    let obj = apply_ok(None, &config("nginx:1.25", 2), "kubectl", false, T1);
    let obj2 = apply_ok(Some(&obj), &config("nginx:1.27", 2), "kubectl", false, T2);
    let containers = &obj2["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        containers,
        &json!([{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}])
    );
    let e = entry(&obj2, "kubectl");
    assert_eq!(e["time"], T2);
    assert_eq!(e["fieldsV1"], entry(&obj, "kubectl")["fieldsV1"]);
    assert_eq!(entries(&obj2).len(), 1);
    // Re-applying the same configuration changes nothing, not even the time.
    let obj3 = apply_ok(Some(&obj2), &config("nginx:1.27", 2), "kubectl", false, T3);
    assert_eq!(obj3, obj2);
}

#[test]
fn conflict_with_updater_then_force() {
    let obj = apply_ok(None, &config("nginx:1.25", 2), "kubectl", false, T1);
    let scaled = update(&obj, "kubectl-edit", T2, |o| {
        o["spec"]["replicas"] = json!(5)
    });
    assert_eq!(scaled["spec"]["replicas"], 5);
    assert!(owns(&scaled, "kubectl-edit", &["f:spec", "f:replicas"]));
    assert!(!owns(&scaled, "kubectl", &["f:spec", "f:replicas"]));
    assert!(owns(&scaled, "kubectl", &["f:spec", "f:selector"]));

    let err = apply(
        Some(&scaled),
        &config("nginx:1.25", 3),
        "kubectl",
        "apps/v1",
        false,
        deployment(),
        T3,
    )
    .unwrap_err();
    let ApplyError::Conflicts(conflicts) = &err else {
        panic!("expected conflicts, got {err:?}");
    };
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas"
    );
    assert_eq!(err.status_code(), 409);
    assert_eq!(conflicts[0].field, ".spec.replicas");
    assert_eq!(
        conflicts[0].cause_message(),
        "conflict with \"kubectl-edit\" using apps/v1"
    );

    // Applying the value the other manager set is no conflict: ownership is shared.
    let shared = apply_ok(
        Some(&scaled),
        &config("nginx:1.25", 5),
        "kubectl",
        false,
        T3,
    );
    assert!(owns(&shared, "kubectl", &["f:spec", "f:replicas"]));
    assert!(owns(&shared, "kubectl-edit", &["f:spec", "f:replicas"]));

    // force takes ownership.
    let forced = apply_ok(Some(&scaled), &config("nginx:1.25", 3), "kubectl", true, T3);
    assert_eq!(forced["spec"]["replicas"], 3);
    assert!(owns(&forced, "kubectl", &["f:spec", "f:replicas"]));
    assert!(
        entries(&forced)
            .iter()
            .all(|e| e["manager"] != "kubectl-edit"),
        "the updater owned nothing else: {forced}"
    );
}

#[test]
fn removed_fields_are_pruned_unless_owned_by_others() {
    let mut cfg = config("nginx:1.25", 2);
    cfg["metadata"]["labels"]["extra"] = json!("x");
    cfg["metadata"]["annotations"] = json!({"note": "n"});
    cfg["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox"}));
    let obj = apply_ok(None, &cfg, "kubectl", false, T1);
    // Another manager also sets the annotation to the same value.
    let obj = update(&obj, "other", T2, |o| {
        o["metadata"]["annotations"]["note"] = json!("n");
        o["metadata"]["labels"]["mine"] = json!("m");
    });
    assert!(owns(&obj, "other", &["f:metadata", "f:labels", "f:mine"]));
    let obj = apply_ok(
        None.or(Some(&obj)),
        &obj_with_note(&obj),
        "other-applier",
        false,
        T2,
    );

    let obj2 = apply_ok(Some(&obj), &config("nginx:1.25", 2), "kubectl", false, T3);
    assert_eq!(
        obj2["metadata"]["labels"],
        json!({"app": "app", "mine": "m"})
    );
    assert_eq!(obj2["metadata"]["annotations"], json!({"note": "n"}));
    assert_eq!(
        obj2["spec"]["template"]["spec"]["containers"],
        json!([{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}])
    );
    assert!(!owns(
        &obj2,
        "kubectl",
        &["f:metadata", "f:annotations", "f:note"]
    ));
}

/// An apply by a second applier owning the `note` annotation.
fn obj_with_note(obj: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app", "annotations": {"note": obj["metadata"]["annotations"]["note"].clone()}}
    })
}

#[test]
fn client_side_apply_then_server_side_apply_shares_ownership() {
    let mut created = config("nginx:1.25", 2);
    created["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{}"});
    let obj = update_managed_fields(
        None,
        &created,
        "kubectl-client-side-apply",
        None,
        "apps/v1",
        deployment(),
        T1,
    );
    let csa = entry(&obj, "kubectl-client-side-apply");
    assert_eq!(csa["operation"], "Update");
    assert_eq!(
        csa["fieldsV1"]["f:metadata"],
        json!({
            "f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
            "f:labels": {".": {}, "f:app": {}}
        })
    );
    assert_eq!(
        csa["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"nginx\"}": {
            ".": {}, "f:image": {}, "f:name": {},
            "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
        }})
    );

    let applied = apply_ok(Some(&obj), &config("nginx:1.25", 2), "kubectl", false, T2);
    assert!(owns(&applied, "kubectl", &["f:spec", "f:replicas"]));
    assert!(owns(
        &applied,
        "kubectl-client-side-apply",
        &["f:spec", "f:replicas"]
    ));
    assert_eq!(entries(&applied).len(), 2);
    // kubectl's server-side apply refreshes client-side apply's annotation.
    let last =
        applied["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap();
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["spec"]["replicas"], 2);

    // A different value is a conflict with the client-side applier.
    let err = apply(
        Some(&applied),
        &config("nginx:1.25", 4),
        "kubectl",
        "apps/v1",
        false,
        deployment(),
        T3,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let obj = apply_ok(None, &config("nginx:1.25", 2), "kubectl", false, T1);
    let obj = update(&obj, "b-manager", T2, |o| {
        o["spec"]["replicas"] = json!(7);
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:9");
    });
    let obj = update(&obj, "a-manager", T2, |o| {
        o["metadata"]["labels"]["app"] = json!("changed");
    });
    let err = apply(
        Some(&obj),
        &config("nginx:1.25", 2),
        "kubectl",
        "apps/v1",
        false,
        deployment(),
        T3,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 3 conflicts: conflicts with \"a-manager\" using apps/v1:\n- .metadata.labels.app\nconflicts with \"b-manager\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );
    let ApplyError::Conflicts(c) = err else {
        panic!("expected conflicts")
    };
    assert_eq!(c.len(), 3);
}

#[test]
fn apply_errors() {
    let mut with_mf = config("x", 1);
    with_mf["metadata"]["managedFields"] = json!([]);
    let err = apply(None, &with_mf, "m", "apps/v1", false, deployment(), T1).unwrap_err();
    assert_eq!(err, ApplyError::ManagedFieldsNotNil);
    assert_eq!(err.to_string(), "metadata.managedFields must be nil");

    let err = apply(
        None,
        &config("x", 1),
        "m",
        "apps/v1beta1",
        false,
        deployment(),
        T1,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Incorrect version specified in apply patch. Specified patch version: apps/v1, expected: apps/v1beta1"
    );

    let mut nameless = config("x", 1);
    nameless["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"value": "x"}]);
    let err = apply(None, &nameless, "m", "apps/v1", false, deployment(), T1).unwrap_err();
    assert!(
        matches!(&err, ApplyError::Invalid(m) if m.contains("omits key field \"name\"")),
        "{err}"
    );
    assert_eq!(
        apply(None, &json!([]), "m", "apps/v1", false, deployment(), T1),
        Err(ApplyError::NotAnObject)
    );
}

#[test]
fn first_apply_to_untracked_object_records_before_first_apply() {
    let live = config("nginx:1.25", 2);
    let obj = apply_ok(
        Some(&live),
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"}, "spec": {"replicas": 3}}),
        "helm",
        true,
        T1,
    );
    assert_eq!(obj["spec"]["replicas"], 3);
    assert!(owns(&obj, "helm", &["f:spec", "f:replicas"]));
    assert!(owns(&obj, "before-first-apply", &["f:spec", "f:selector"]));
    assert!(!owns(&obj, "before-first-apply", &["f:spec", "f:replicas"]));
    // Without force the same apply conflicts with the synthetic manager.
    let err = apply(Some(&live), &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"}, "spec": {"replicas": 3}}), "helm", "apps/v1", false, deployment(), T1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn apply_ignores_status_and_server_metadata() {
    let mut live = apply_ok(None, &config("nginx:1.25", 2), "kubectl", false, T1);
    live["status"] = json!({"replicas": 2});
    live["metadata"]["resourceVersion"] = json!("7");
    let mut cfg = config("nginx:1.25", 2);
    cfg["status"] = json!({"replicas": 9});
    cfg["metadata"]["resourceVersion"] = json!("7");
    let obj = apply_ok(Some(&live), &cfg, "kubectl", false, T2);
    assert_eq!(obj["status"], json!({"replicas": 2}));
    assert_eq!(obj["metadata"]["resourceVersion"], "7");
    assert!(entry(&obj, "kubectl")["fieldsV1"].get("f:status").is_none());
    assert_eq!(entry(&obj, "kubectl")["time"], T1);
}

#[test]
fn update_managed_fields_rules() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}, "data": {"a": "1"}});
    let created = update_managed_fields(None, &cm, "kubectl-create", None, "v1", config_map(), T1);
    assert_eq!(
        entries(&created),
        vec![json!({
            "manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "time": T1,
            "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {".": {}, "f:a": {}}}
        })]
    );

    // A change by another manager moves the changed field, keeps the rest.
    let mut new = created.clone();
    new["data"]["a"] = json!("2");
    new["data"]["b"] = json!("3");
    let updated = update_managed_fields(
        Some(&created),
        &new,
        "kubectl-edit",
        None,
        "v1",
        config_map(),
        T2,
    );
    assert_eq!(entries(&updated).len(), 2);
    assert_eq!(
        entry(&updated, "kubectl-create")["fieldsV1"],
        json!({"f:data": {}})
    );
    assert_eq!(
        entry(&updated, "kubectl-edit")["fieldsV1"],
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );
    assert_eq!(
        entries(&updated)[1]["manager"],
        "kubectl-edit",
        "sorted by time"
    );

    // A no-op update leaves the entries alone.
    let same = update_managed_fields(Some(&updated), &updated, "x", None, "v1", config_map(), T3);
    assert_eq!(entries(&same), entries(&updated));

    // Removing a field takes it from its owner.
    let mut removed = updated.clone();
    removed["data"].as_object_mut().unwrap().shift_remove("b");
    let removed =
        update_managed_fields(Some(&updated), &removed, "y", None, "v1", config_map(), T3);
    assert_eq!(
        entry(&removed, "kubectl-edit")["fieldsV1"],
        json!({"f:data": {"f:a": {}}})
    );

    // managedFields sent in the request replace the stored ones; [] clears them.
    let mut reset = updated.clone();
    reset["metadata"]["managedFields"] = json!([]);
    let reset = update_managed_fields(Some(&updated), &reset, "z", None, "v1", config_map(), T3);
    assert!(reset["metadata"].get("managedFields").is_none());

    // Objects without managedFields are not tracked on update.
    let untracked = update_managed_fields(Some(&cm), &cm, "z", None, "v1", config_map(), T3);
    assert!(untracked["metadata"].get("managedFields").is_none());
}

#[test]
fn status_subresource_owns_only_status() {
    let obj = apply_ok(None, &config("nginx:1.25", 2), "kubectl", false, T1);
    let mut new = obj.clone();
    new["status"] = json!({"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]});
    new["spec"]["replicas"] = json!(9);
    let out = update_managed_fields(
        Some(&obj),
        &new,
        "kube-controller-manager",
        Some("status"),
        "apps/v1",
        deployment(),
        T2,
    );
    let e = entry(&out, "kube-controller-manager");
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {"f:conditions": {".": {}, "k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}}, "f:replicas": {}}})
    );
    assert!(owns(&out, "kubectl", &["f:spec", "f:replicas"]));
}

#[test]
fn caps_update_managers() {
    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    let mut obj = update_managed_fields(
        None,
        &cm,
        "m0",
        None,
        "v1",
        config_map(),
        "2026-01-01T00:00:00Z",
    );
    for i in 0..12 {
        let mut new = obj.clone();
        new["data"][format!("k{i}")] = json!("v");
        obj = update_managed_fields(
            Some(&obj),
            &new,
            &format!("m{i:02}"),
            None,
            "v1",
            config_map(),
            &format!("2026-01-01T00:00:{i:02}Z"),
        );
    }
    let list = entries(&obj);
    assert_eq!(list.len(), 10);
    assert!(list.iter().any(|e| e["manager"] == "ancient-changes"));
}

#[test]
fn apply_without_schema_merges_maps_and_replaces_lists() {
    let cr = |size: i64, items: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": size, "items": items}});
    let none = SchemaNode::none;
    let obj = apply(
        None,
        &cr(1, json!([1, 2])),
        "helm",
        "example.com/v1",
        false,
        none(),
        T1,
    )
    .unwrap();
    assert_eq!(
        entry(&obj, "helm")["fieldsV1"],
        json!({"f:spec": {".": {}, "f:items": {}, "f:size": {}}})
    );
    let mut edited = obj.clone();
    edited["spec"]["size"] = json!(5);
    let edited = update_managed_fields(
        Some(&obj),
        &edited,
        "kubectl-edit",
        None,
        "example.com/v1",
        none(),
        T2,
    );
    let err = apply(
        Some(&edited),
        &cr(2, json!([3])),
        "helm",
        "example.com/v1",
        false,
        none(),
        T3,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using example.com/v1: .spec.size"
    );
    let forced = apply(
        Some(&edited),
        &cr(2, json!([3])),
        "helm",
        "example.com/v1",
        true,
        none(),
        T3,
    )
    .unwrap();
    assert_eq!(forced["spec"], json!({"size": 2, "items": [3]}));
}

#[test]
fn list_map_items_merge_in_upstream_order() {
    let with_containers = |names: &[&str]| {
        let mut c = config("i", 1);
        c["spec"]["template"]["spec"]["containers"] = Value::Array(
            names
                .iter()
                .map(|n| json!({"name": n, "image": "i"}))
                .collect(),
        );
        c
    };
    let live = update_managed_fields(
        None,
        &with_containers(&["a", "b", "c"]),
        "creator",
        None,
        "apps/v1",
        deployment(),
        T1,
    );
    let obj = apply_ok(
        Some(&live),
        &with_containers(&["c", "a"]),
        "kubectl",
        false,
        T2,
    );
    let names: Vec<&str> = obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["b", "c", "a"]);
    let obj = apply_ok(
        Some(&live),
        &with_containers(&["b", "d"]),
        "kubectl",
        false,
        T2,
    );
    let names: Vec<&str> = obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "b", "c", "d"]);
}

/// The entries a write leaves as they were are copied from the stored object, which gives what
/// encoding their sets again would; an entry that loses fields is encoded again.
#[test]
fn unchanged_entries_are_copied_and_changed_ones_encoded_again() {
    let created = update_managed_fields(
        None,
        &config("nginx:1", 1),
        "creator",
        None,
        "apps/v1",
        deployment(),
        T1,
    );
    let encoded_again = |obj: &Value| {
        for e in entries(obj) {
            let set = FieldSet::from_fields_v1(&e["fieldsV1"]).unwrap();
            assert_eq!(e["fieldsV1"].to_string(), set.to_fields_v1().to_string());
        }
    };
    // A status write by another manager leaves the creator's entry as it was.
    let mut reported = created.clone();
    reported["status"] = json!({"replicas": 1, "readyReplicas": 1});
    let reported = update_managed_fields(
        Some(&created),
        &reported,
        "controller",
        Some("status"),
        "apps/v1",
        deployment(),
        T2,
    );
    assert_eq!(entry(&reported, "creator"), entry(&created, "creator"));
    assert!(owns(
        &reported,
        "controller",
        &["f:status", "f:readyReplicas"]
    ));
    encoded_again(&reported);
    // Another manager changes a label and the image: the creator loses both, keeps the rest.
    let relabeled = update(&reported, "labeler", T3, |d| {
        d["metadata"]["labels"]["app"] = json!("other");
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    });
    assert!(!owns(
        &relabeled,
        "creator",
        &["f:metadata", "f:labels", "f:app"]
    ));
    assert!(owns(&relabeled, "creator", &["f:spec", "f:replicas"]));
    assert!(owns(
        &relabeled,
        "labeler",
        &["f:metadata", "f:labels", "f:app"]
    ));
    assert_eq!(
        entry(&relabeled, "controller"),
        entry(&reported, "controller")
    );
    encoded_again(&relabeled);
}
