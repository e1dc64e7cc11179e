//! Timing of the managed-fields bookkeeping the API server does on every write.
//!
//! `cargo run --release -p patch --example managed_bench [iterations]` prints the mean µs per
//! call of: the create of a realistic Pod (two containers with env, ports, volume mounts,
//! resources and probes, as stored after defaulting), an update of that Pod changing one field,
//! and a server-side apply creating a Deployment.

use std::hint::black_box;
use std::time::Instant;

use patch::{SchemaNode, apply, update_managed_fields};
use serde_json::{Value, json};

const T1: &str = "2026-11-26T12:00:00Z";
const T2: &str = "2026-11-26T12:05:00Z";

/// The Pod of the `bench` crate (~1.5 KB as sent), as the API server passes it on create: after
/// defaulting and admission, with `uid`, `resourceVersion`, `creationTimestamp` and `status`.
fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "create-000123",
            "namespace": "bench-create",
            "uid": "6f1f5c1e-3b7a-4d8e-9a61-2f0e7c1b9d42",
            "resourceVersion": "12345",
            "creationTimestamp": T1,
            "labels": {
                "app.kubernetes.io/name": "checkout",
                "app.kubernetes.io/component": "api",
                "app.kubernetes.io/part-of": "shop",
                "pod-template-hash": "7d9f8c6b5d"
            },
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}
        },
        "spec": {
            "serviceAccountName": "checkout",
            "serviceAccount": "checkout",
            "terminationGracePeriodSeconds": 30,
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "fsGroup": 2000},
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example.com/shop/checkout:1.24.3",
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [
                        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
                    ],
                    "env": [
                        {"name": "GOMAXPROCS", "value": "2"},
                        {"name": "DB_HOST", "value": "postgres.shop.svc.cluster.local"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}
                    ],
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "256Mi"},
                        "limits": {"cpu": "1", "memory": "512Mi"}
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                        "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/checkout", "readOnly": true},
                        {"name": "tmp", "mountPath": "/tmp"}
                    ],
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File"
                },
                {
                    "name": "proxy",
                    "image": "registry.example.com/mesh/proxy:2.9.0",
                    "ports": [{"name": "proxy", "containerPort": 15001, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent"
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "checkout-config", "defaultMode": 420}},
                {"name": "tmp", "emptyDir": {}}
            ],
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
            "priority": 0,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"}
    })
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80}],
                        "env": [{"name": "MODE", "value": "production"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/", "port": 80}}
                    }]
                }
            }
        }
    })
}

/// Runs `f` `n` times (after a warm-up) and prints the mean µs per call.
fn time(label: &str, n: u32, mut f: impl FnMut() -> Value) {
    for _ in 0..n.min(100) {
        black_box(f());
    }
    let start = Instant::now();
    for _ in 0..n {
        black_box(f());
    }
    let per_call = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("{label:<40} {per_call:>8.1} µs/call");
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let lookup = openapi::schemas();
    let pod_schema = SchemaNode::named(lookup, "io.k8s.api.core.v1.Pod");
    let deployment_schema = SchemaNode::named(lookup, "io.k8s.api.apps.v1.Deployment");

    let pod = pod();
    println!(
        "pod: {} bytes of JSON; {n} iterations",
        serde_json::to_vec(&pod).map_or(0, |v| v.len())
    );
    let created = update_managed_fields(None, &pod, "kubectl-create", None, "v1", pod_schema, T1);
    let mut changed = created.clone();
    changed["metadata"]["labels"]["pod-template-hash"] = json!("5c8b7f9d6e");

    time("create Pod (update_managed_fields None)", n, || {
        update_managed_fields(None, &pod, "kubectl-create", None, "v1", pod_schema, T1)
    });
    time("update Pod, one label changed", n, || {
        update_managed_fields(
            Some(&created),
            &changed,
            "kubectl-edit",
            None,
            "v1",
            pod_schema,
            T2,
        )
    });
    let deployment = deployment();
    time("apply Deployment (create)", n, || {
        apply(
            None,
            &deployment,
            "kubectl",
            "apps/v1",
            false,
            deployment_schema,
            T1,
        )
        .unwrap_or_default()
    });
}
