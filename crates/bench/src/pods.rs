//! Request bodies: a pod with a realistic spec (~1.5 KB of JSON) and a namespace.

use bytes::Bytes;
use serde_json::json;

/// A Deployment-style pod `name` in `namespace`: two containers with ports, env, resources,
/// probes and mounts, plus labels, annotations, volumes and tolerations, about 1.5 KB as JSON.
pub fn pod_body(namespace: &str, name: &str) -> Bytes {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "checkout",
                "app.kubernetes.io/component": "api",
                "app.kubernetes.io/part-of": "shop",
                "pod-template-hash": "7d9f8c6b5d",
            },
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
            },
        },
        "spec": {
            // No scheduler takes it: this benchmark measures the API server alone.
            "schedulerName": "bench-unscheduled",
            "serviceAccountName": "checkout",
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
                        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                    ],
                    "env": [
                        {"name": "GOMAXPROCS", "value": "2"},
                        {"name": "DB_HOST", "value": "postgres.shop.svc.cluster.local"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    ],
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "256Mi"},
                        "limits": {"cpu": "1", "memory": "512Mi"},
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http"},
                        "periodSeconds": 5,
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/checkout", "readOnly": true},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                },
                {
                    "name": "proxy",
                    "image": "registry.example.com/mesh/proxy:2.9.0",
                    "ports": [{"name": "proxy", "containerPort": 15001}],
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                },
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "checkout-config"}},
                {"name": "tmp", "emptyDir": {}},
            ],
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ],
        },
    });
    Bytes::from(serde_json::to_vec(&pod).expect("a json! value always serializes"))
}

/// A Namespace object named `name`.
pub fn namespace_body(name: &str) -> Bytes {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    Bytes::from(serde_json::to_vec(&ns).expect("a json! value always serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_is_about_one_and_a_half_kilobytes() {
        let body = pod_body("bench-create", "create-000123");
        assert!(
            (1300..=1700).contains(&body.len()),
            "pod body is {} bytes",
            body.len()
        );
    }

    #[test]
    fn pod_carries_name_and_namespace() {
        let v: serde_json::Value =
            serde_json::from_slice(&pod_body("ns1", "p-7")).expect("valid json");
        assert_eq!(v["metadata"]["name"], "p-7");
        assert_eq!(v["metadata"]["namespace"], "ns1");
        assert_eq!(v["kind"], "Pod");
        assert_eq!(v["spec"]["containers"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn namespace_body_names_the_namespace() {
        let v: serde_json::Value = serde_json::from_slice(&namespace_body("x")).expect("json");
        assert_eq!(v["kind"], "Namespace");
        assert_eq!(v["metadata"]["name"], "x");
    }
}
