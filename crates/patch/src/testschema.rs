//! Hand-written excerpts of upstream's OpenAPI v3 component schemas (same format and
//! extensions as `api/openapi-spec/v3/apis__apps__v1_openapi.json`), for tests.

use serde_json::{Map, Value, json};

use crate::SchemaNode;

fn r(name: &str) -> Value {
    json!({"allOf": [{"$ref": format!("#/components/schemas/{name}")}], "default": {}})
}

fn array_of(name: &str) -> Value {
    json!({"type": "array", "items": r(name)})
}

fn with(mut base: Value, ext: Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut base, ext) {
        b.extend(e);
    }
    base
}

fn build() -> Map<String, Value> {
    let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
    let string_map =
        json!({"type": "object", "additionalProperties": {"type": "string", "default": ""}});
    json!({
        "io.k8s.api.apps.v1.Deployment": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": r(meta),
                "spec": r("io.k8s.api.apps.v1.DeploymentSpec"),
                "status": r("io.k8s.api.apps.v1.DeploymentStatus")
            }
        },
        "io.k8s.api.apps.v1.DeploymentSpec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer", "format": "int32"},
                "paused": {"type": "boolean"},
                "selector": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"}]},
                "strategy": with(r("io.k8s.api.apps.v1.DeploymentStrategy"), json!({"x-kubernetes-patch-strategy": "retainKeys"})),
                "template": r("io.k8s.api.core.v1.PodTemplateSpec")
            }
        },
        "io.k8s.api.apps.v1.DeploymentStrategy": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "rollingUpdate": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.RollingUpdateDeployment"}]}
            }
        },
        "io.k8s.api.apps.v1.RollingUpdateDeployment": {
            "type": "object",
            "properties": {
                "maxSurge": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]},
                "maxUnavailable": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]}
            }
        },
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
        "io.k8s.api.apps.v1.DeploymentStatus": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer"},
                "conditions": with(array_of("io.k8s.api.apps.v1.DeploymentCondition"), json!({
                    "x-kubernetes-list-map-keys": ["type"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "type", "x-kubernetes-patch-strategy": "merge"
                }))
            }
        },
        "io.k8s.api.apps.v1.DeploymentCondition": {
            "type": "object",
            "properties": {"type": {"type": "string", "default": ""}, "status": {"type": "string", "default": ""}}
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector": {
            "type": "object",
            "properties": {
                "matchLabels": string_map,
                "matchExpressions": {"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "atomic"}
            },
            "x-kubernetes-map-type": "atomic"
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "uid": {"type": "string"},
                "resourceVersion": {"type": "string"},
                "generation": {"type": "integer"},
                "creationTimestamp": {"type": "string", "format": "date-time"},
                "labels": string_map,
                "annotations": string_map,
                "finalizers": {
                    "type": "array", "items": {"type": "string", "default": ""},
                    "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"
                },
                "ownerReferences": with(array_of("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference"), json!({
                    "x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge"
                })),
                "managedFields": with(array_of("io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"), json!({"x-kubernetes-list-type": "atomic"}))
            }
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference": {
            "type": "object",
            "properties": {"uid": {"type": "string", "default": ""}, "name": {"type": "string", "default": ""}, "kind": {"type": "string", "default": ""}},
            "x-kubernetes-map-type": "atomic"
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry": {
            "type": "object",
            "properties": {"manager": {"type": "string"}, "fieldsV1": {"type": "object"}}
        },
        "io.k8s.api.core.v1.PodTemplateSpec": {
            "type": "object",
            "properties": {"metadata": r(meta), "spec": r("io.k8s.api.core.v1.PodSpec")}
        },
        "io.k8s.api.core.v1.PodSpec": {
            "type": "object",
            "required": ["containers"],
            "properties": {
                "containers": with(array_of("io.k8s.api.core.v1.Container"), json!({
                    "x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"
                })),
                "initContainers": with(array_of("io.k8s.api.core.v1.Container"), json!({
                    "x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"
                })),
                "volumes": with(array_of("io.k8s.api.core.v1.Volume"), json!({
                    "x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge,retainKeys"
                })),
                "tolerations": with(array_of("io.k8s.api.core.v1.Toleration"), json!({"x-kubernetes-list-type": "atomic"})),
                "nodeSelector": with(string_map.clone(), json!({"x-kubernetes-map-type": "atomic"})),
                "restartPolicy": {"type": "string"}
            }
        },
        "io.k8s.api.core.v1.Toleration": {
            "type": "object",
            "properties": {"key": {"type": "string"}, "operator": {"type": "string"}, "effect": {"type": "string"}}
        },
        "io.k8s.api.core.v1.Container": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "default": ""},
                "image": {"type": "string"},
                "args": {"type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "atomic"},
                "command": {"type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "atomic"},
                "ports": with(array_of("io.k8s.api.core.v1.ContainerPort"), json!({
                    "x-kubernetes-list-map-keys": ["containerPort", "protocol"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "containerPort", "x-kubernetes-patch-strategy": "merge"
                })),
                "env": with(array_of("io.k8s.api.core.v1.EnvVar"), json!({
                    "x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"
                })),
                "volumeMounts": with(array_of("io.k8s.api.core.v1.VolumeMount"), json!({
                    "x-kubernetes-list-map-keys": ["mountPath"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "mountPath", "x-kubernetes-patch-strategy": "merge"
                })),
                "resources": r("io.k8s.api.core.v1.ResourceRequirements")
            }
        },
        "io.k8s.api.core.v1.ResourceRequirements": {
            "type": "object",
            "properties": {"limits": string_map, "requests": string_map}
        },
        "io.k8s.api.core.v1.ContainerPort": {
            "type": "object",
            "properties": {
                "containerPort": {"type": "integer", "default": 0},
                "name": {"type": "string"},
                "protocol": {"type": "string"}
            }
        },
        "io.k8s.api.core.v1.EnvVar": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "value": {"type": "string"}}
        },
        "io.k8s.api.core.v1.VolumeMount": {
            "type": "object",
            "properties": {"name": {"type": "string", "default": ""}, "mountPath": {"type": "string", "default": ""}}
        },
        "io.k8s.api.core.v1.Volume": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "default": ""},
                "emptyDir": {"type": "object", "properties": {"medium": {"type": "string"}}},
                "configMap": {"type": "object", "properties": {"name": {"type": "string"}}},
                "hostPath": {"type": "object", "properties": {"path": {"type": "string"}}}
            }
        },
        "io.k8s.api.core.v1.ConfigMap": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": r(meta),
                "data": string_map,
                "binaryData": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}}
            }
        }
    })
    .as_object()
    .cloned()
    .expect("literal object")
}

/// The test schemas.
pub(crate) fn schemas() -> &'static Map<String, Value> {
    static SCHEMAS: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    SCHEMAS.get_or_init(build)
}

/// The schema node of a test Deployment.
pub(crate) fn deployment() -> SchemaNode<'static> {
    SchemaNode::named(schemas(), "io.k8s.api.apps.v1.Deployment")
}

/// The schema node of a test ConfigMap.
pub(crate) fn config_map() -> SchemaNode<'static> {
    SchemaNode::named(schemas(), "io.k8s.api.core.v1.ConfigMap")
}
