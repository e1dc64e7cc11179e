//! The patch functions against the served schemas of crate `openapi`.

use serde_json::json;

use crate::{SchemaNode, apply, strategic_merge_patch, update_managed_fields};

fn deployment() -> SchemaNode<'static> {
    SchemaNode::for_kind("apps", "v1", "Deployment")
}

fn manifest(image: &str, replicas: i64) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {
                    "containers": [{"name": "c", "image": image, "ports": [{"containerPort": 80}]}],
                    "volumes": [{"name": "v", "hostPath": {"path": "/tmp"}}]
                }
            }
        }
    })
}

#[test]
fn served_schemas_are_found() {
    assert!(deployment().is_known());
    assert!(!SchemaNode::for_kind("example.com", "v1", "Widget").is_known());
}

#[test]
fn strategic_merge_patch_with_served_schema() {
    let live = manifest("nginx:1.25", 2);
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "c"}],
        "containers": [{"image": "nginx:1.27", "name": "c"}],
        "volumes": [{"name": "v", "$retainKeys": ["emptyDir", "name"], "emptyDir": {}}]
    }}}});
    let got = strategic_merge_patch(&live, &patch, deployment()).unwrap();
    let spec = &got["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"],
        json!([{"name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}])
    );
    assert_eq!(spec["volumes"], json!([{"name": "v", "emptyDir": {}}]));
}

#[test]
fn server_side_apply_with_served_schema() {
    let created = apply(
        None,
        &manifest("nginx:1.25", 2),
        "helm",
        "apps/v1",
        false,
        deployment(),
        "2026-11-26T12:00:00Z",
    )
    .unwrap();
    let fields = &created["metadata"]["managedFields"][0]["fieldsV1"];
    assert_eq!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {},
            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}})
    );
    assert_eq!(fields["f:spec"]["f:selector"], json!({}));

    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(4);
    let scaled = update_managed_fields(
        Some(&created),
        &scaled,
        "kube-controller-manager",
        Some("scale"),
        "apps/v1",
        deployment(),
        "2026-11-26T12:01:00Z",
    );
    let err = apply(
        Some(&scaled),
        &manifest("nginx:1.25", 2),
        "helm",
        "apps/v1",
        false,
        deployment(),
        "2026-11-26T12:02:00Z",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kube-controller-manager\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
}
