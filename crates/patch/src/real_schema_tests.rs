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

/// The realistic Pod of the benchmark (`testdata/pod.json`, as the API server stores it on
/// create) and a Deployment, through creates, updates, a status update, applies, a scale and a
/// conflict. The outputs in `testdata/expected.json` were produced before the managed-fields
/// code was optimized; they pin its results exactly.
#[test]
fn managed_fields_of_realistic_objects_are_pinned() {
    let pod: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/pod.json")).unwrap();
    let dep: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/deployment.json")).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/expected.json")).unwrap();
    let lookup = openapi::schemas();
    let ps = SchemaNode::named(lookup, "io.k8s.api.core.v1.Pod");
    let ds = SchemaNode::named(lookup, "io.k8s.api.apps.v1.Deployment");
    let (t1, t2, t3) = (
        "2026-11-26T12:00:00Z",
        "2026-11-26T12:05:00Z",
        "2026-11-26T12:10:00Z",
    );
    let check = |key: &str, got: &serde_json::Value| {
        assert_eq!(got, &expected[key], "{key}");
        // Same key order too (the stored JSON keeps it).
        assert_eq!(got.to_string(), expected[key].to_string(), "{key}");
    };

    let created = update_managed_fields(None, &pod, "kubectl-create", None, "v1", ps, t1);
    check("podCreated", &created);
    // An edit: a label, an image, an env var dropped, a port added, a toleration dropped.
    let mut edited = created.clone();
    edited["metadata"]["labels"]["pod-template-hash"] = json!("5c8b7f9d6e");
    edited["spec"]["containers"][1]["image"] = json!("registry.example.com/mesh/proxy:2.10.0");
    edited["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .remove(1);
    edited["spec"]["containers"][1]["ports"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "admin", "containerPort": 15000, "protocol": "TCP"}));
    edited["spec"]["tolerations"].as_array_mut().unwrap().pop();
    let updated =
        update_managed_fields(Some(&created), &edited, "kubectl-edit", None, "v1", ps, t2);
    check("podUpdated", &updated);
    let mut status = updated.clone();
    status["status"] = json!({"phase": "Running", "podIP": "10.0.0.7",
        "conditions": [{"type": "Ready", "status": "True"}]});
    status["spec"]["nodeName"] = json!("ignored-through-status");
    let status = update_managed_fields(
        Some(&updated),
        &status,
        "kubelet",
        Some("status"),
        "v1",
        ps,
        t3,
    );
    check("podStatus", &status);

    let applied = apply(None, &dep, "kubectl", "apps/v1", false, ds, t1).unwrap();
    check("deploymentApplied", &applied);
    let mut dep2 = dep.clone();
    dep2["spec"]["replicas"] = json!(5);
    dep2["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "MODE", "value": "canary"}, {"name": "EXTRA", "value": "1"}]);
    dep2["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("readinessProbe");
    let reapplied = apply(Some(&applied), &dep2, "kubectl", "apps/v1", false, ds, t2).unwrap();
    check("deploymentReapplied", &reapplied);
    let mut scaled = reapplied.clone();
    scaled["spec"]["replicas"] = json!(7);
    let scaled = update_managed_fields(
        Some(&reapplied),
        &scaled,
        "kube-controller-manager",
        Some("scale"),
        "apps/v1",
        ds,
        t3,
    );
    check("deploymentScaled", &scaled);
    let conflict = apply(Some(&scaled), &dep2, "kubectl", "apps/v1", false, ds, t3).unwrap_err();
    assert_eq!(json!(conflict.to_string()), expected["conflict"]);
    let forced = apply(Some(&scaled), &dep2, "kubectl", "apps/v1", true, ds, t3).unwrap();
    check("deploymentForced", &forced);

    // The same through a lookup that only delegates to the served schemas (as the API server's).
    struct Delegate;
    impl crate::SchemaLookup for Delegate {
        fn get(&self, name: &str) -> Option<&serde_json::Value> {
            openapi::schemas().get(name)
        }
    }
    let ps = SchemaNode::named(&Delegate, "io.k8s.api.core.v1.Pod");
    let created = update_managed_fields(None, &pod, "kubectl-create", None, "v1", ps, t1);
    check("podCreated", &created);

    // And with references followed on every step instead of through the compiled graph.
    let ps = SchemaNode::dynamic(lookup, "io.k8s.api.core.v1.Pod");
    let created = update_managed_fields(None, &pod, "kubectl-create", None, "v1", ps, t1);
    check("podCreated", &created);
    let updated =
        update_managed_fields(Some(&created), &edited, "kubectl-edit", None, "v1", ps, t2);
    check("podUpdated", &updated);
}
