use super::*;
use crate::testschema::{config_map, deployment};
use serde_json::json;

fn deploy() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "app",
            "labels": {"app": "app", "tier": "web"},
            "finalizers": ["a", "b"]
        },
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "nginx:1.25", "args": ["-a", "-b"],
                         "ports": [{"containerPort": 80, "protocol": "TCP"}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                        {"name": "sidecar", "image": "busybox"}
                    ],
                    "volumes": [{"name": "v", "hostPath": {"path": "/tmp"}}]
                }
            }
        }
    })
}

/// `deploy()` with `f` applied to it.
fn deploy_with(f: impl FnOnce(&mut Value)) -> Value {
    let mut d = deploy();
    f(&mut d);
    d
}

fn containers(d: &mut Value) -> &mut Value {
    &mut d["spec"]["template"]["spec"]["containers"]
}

#[test]
fn kubectl_bodies() {
    let last_applied = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"name":"app","namespace":"default"},"spec":{"replicas":3}}"#;
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "kubectl set image",
            json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"c"},{"name":"sidecar"}],"containers":[{"image":"nginx:1.27","name":"c"}]}}}}),
            deploy_with(|d| containers(d)[0]["image"] = json!("nginx:1.27")),
        ),
        (
            "kubectl rollout restart",
            json!({"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-26T12:33:23Z"}}}}}),
            deploy_with(|d| {
                d["spec"]["template"]["metadata"]["annotations"] =
                    json!({"kubectl.kubernetes.io/restartedAt": "2026-11-26T12:33:23Z"})
            }),
        ),
        (
            "kubectl apply three-way patch",
            json!({
                "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
                "spec": {"replicas": 3, "template": {"spec": {
                    "$setElementOrder/containers": [{"name": "c"}, {"name": "sidecar"}],
                    "containers": [{"env": [{"name": "A", "value": "9"}], "name": "c", "$setElementOrder/env": [{"name": "A"}, {"name": "B"}]}]
                }}}
            }),
            deploy_with(|d| {
                d["metadata"]["annotations"] =
                    json!({"kubectl.kubernetes.io/last-applied-configuration": last_applied});
                d["spec"]["replicas"] = json!(3);
                containers(d)[0]["env"][0]["value"] = json!("9");
            }),
        ),
        (
            "kubectl rollout pause",
            json!({"spec": {"paused": true}}),
            deploy_with(|d| d["spec"]["paused"] = json!(true)),
        ),
    ];
    for (name, patch, want) in cases {
        let got = strategic_merge_patch(&deploy(), &patch, deployment()).unwrap();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn directives_and_strategies() {
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "null deletes fields and map keys",
            json!({"metadata": {"labels": {"tier": null}}, "spec": {"strategy": null}}),
            deploy_with(|d| {
                d["metadata"]["labels"] = json!({"app": "app"});
                d["spec"].as_object_mut().unwrap().shift_remove("strategy");
            }),
        ),
        (
            "new merge-list item without order goes first",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "new", "image": "x"}]}}}}),
            deploy_with(|d| {
                let list = containers(d).as_array_mut().unwrap();
                list.insert(0, json!({"name": "new", "image": "x"}));
            }),
        ),
        (
            "setElementOrder places a new item",
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "new"}, {"name": "sidecar"}],
                "containers": [{"name": "new", "image": "x"}]
            }}}}),
            deploy_with(|d| {
                let list = containers(d).as_array_mut().unwrap();
                list.insert(1, json!({"name": "new", "image": "x"}));
            }),
        ),
        (
            "setElementOrder alone reorders",
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "c"}]}}}}),
            deploy_with(|d| {
                containers(d).as_array_mut().unwrap().reverse();
            }),
        ),
        (
            "list without merge strategy is replaced",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "args": ["-z"]}]}}}}),
            deploy_with(|d| containers(d)[0]["args"] = json!(["-z"])),
        ),
        (
            "merge by containerPort merge key",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}]}}}}),
            deploy_with(|d| {
                containers(d)[0]["ports"] = json!([
                    {"containerPort": 80, "name": "http", "protocol": "TCP"},
                    {"containerPort": 443}
                ])
            }),
        ),
        (
            "primitive merge list is merged as a set",
            json!({"metadata": {"finalizers": ["b", "c"]}}),
            json!(["a", "b", "c"]),
        ),
        (
            "deleteFromPrimitiveList",
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            deploy_with(|d| d["metadata"]["finalizers"] = json!(["b"])),
        ),
        (
            "deleteFromPrimitiveList with setElementOrder",
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "$setElementOrder/finalizers": ["c", "b"], "finalizers": ["c"]}}),
            deploy_with(|d| d["metadata"]["finalizers"] = json!(["c", "b"])),
        ),
        (
            "$patch: delete list element",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}),
            deploy_with(|d| {
                containers(d).as_array_mut().unwrap().pop();
            }),
        ),
        (
            "$patch: replace list",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "i"}, {"$patch": "replace"}]}}}}),
            deploy_with(|d| *containers(d) = json!([{"name": "only", "image": "i"}])),
        ),
        (
            "$patch: replace map",
            json!({"metadata": {"labels": {"$patch": "replace", "x": "y"}}}),
            deploy_with(|d| d["metadata"]["labels"] = json!({"x": "y"})),
        ),
        (
            "$patch: delete map",
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
            deploy_with(|d| d["metadata"]["labels"] = json!({})),
        ),
        (
            "$patch directive in a map absent from the original is dropped",
            json!({"metadata": {"annotations": {"$patch": "replace", "a": "b"}}}),
            deploy(),
        ),
        (
            "$retainKeys clears other keys",
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            deploy_with(|d| d["spec"]["strategy"] = json!({"type": "Recreate"})),
        ),
        (
            "$retainKeys inside a merged list item",
            json!({"spec": {"template": {"spec": {"volumes": [{"name": "v", "$retainKeys": ["emptyDir", "name"], "emptyDir": {}}]}}}}),
            deploy_with(|d| {
                d["spec"]["template"]["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}])
            }),
        ),
        (
            "type change replaces",
            json!({"spec": {"strategy": "oops"}}),
            deploy_with(|d| d["spec"]["strategy"] = json!("oops")),
        ),
        (
            "fields unknown to the schema: maps merged, lists replaced, nulls dropped",
            json!({"spec": {"extra": {"a": 1, "b": null, "l": [1]}}}),
            deploy_with(|d| d["spec"]["extra"] = json!({"a": 1, "l": [1]})),
        ),
    ];
    for (name, patch, want) in cases {
        let got = strategic_merge_patch(&deploy(), &patch, deployment()).unwrap();
        if name == "primitive merge list is merged as a set" {
            let mut got = got["metadata"]["finalizers"].as_array().unwrap().clone();
            got.sort_by_key(|v| v.to_string());
            assert_eq!(Value::Array(got), want, "{name}");
        } else {
            assert_eq!(got, want, "{name}");
        }
    }
}

#[test]
fn errors() {
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "$patch: merge in a list",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "$patch": "merge"}]}}}}),
            422,
            "merging lists cannot yet be specified in the patch",
        ),
        (
            "$patch: merge in a map",
            json!({"metadata": {"labels": {"$patch": "merge"}}}),
            422,
            "unknown patch type: merge in map: {\"$patch\":\"merge\"}",
        ),
        (
            "merge key missing",
            json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
            422,
            "map: {\"image\":\"x\"} does not contain declared merge key: name",
        ),
        (
            "retainKeys not listing a patched key",
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
            400,
            "invalid patch format of retainKeys",
        ),
        (
            "deleteFromPrimitiveList without list name",
            json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
            400,
            "invalid patch format of primitive list",
        ),
        (
            "setElementOrder not matching the patch order",
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "c"}],
                "containers": [{"name": "c", "image": "1"}, {"name": "sidecar", "image": "2"}]
            }}}}),
            422,
            "doesn't match $setElementOrder list",
        ),
        (
            "mixed element types",
            json!({"metadata": {"finalizers": [["x"]]}}),
            422,
            "list element types are not identical",
        ),
    ];
    for (name, patch, code, message) in cases {
        let err = strategic_merge_patch(&deploy(), &patch, deployment()).unwrap_err();
        assert_eq!(err.status_code(), code, "{name}: {err}");
        assert!(err.to_string().contains(message), "{name}: {err}");
    }
    let err = strategic_merge_patch(&deploy(), &json!({}), SchemaNode::none()).unwrap_err();
    assert_eq!(err, PatchError::NoSchema);
    assert_eq!(err.status_code(), 415);
    let nested = deploy_with(|d| d["metadata"]["finalizers"] = json!([["y"]]));
    let err = strategic_merge_patch(
        &nested,
        &json!({"metadata": {"finalizers": [["x"]]}}),
        deployment(),
    )
    .unwrap_err();
    assert_eq!(err, PatchError::NoListOfLists);
    let err = strategic_merge_patch(&deploy(), &json!([]), deployment()).unwrap_err();
    assert_eq!(err, PatchError::BadJsonDoc);
}

#[test]
fn config_map_data_merges() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    let got =
        strategic_merge_patch(&cm, &json!({"data": {"a": null, "c": "3"}}), config_map()).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "2", "c": "3"}})
    );
}
