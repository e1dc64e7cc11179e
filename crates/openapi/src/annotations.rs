//! Hand-maintained annotations that the `k8s-openapi` sources do not carry: the strategic merge
//! patch tags of upstream's Go struct fields (`patchStrategy:"…" patchMergeKey:"…"`), list-map
//! keys where upstream declares more keys than the patch merge key, and structs declared
//! `+structType=atomic` (rendered as `x-kubernetes-map-type: atomic` on the definition).
//!
//! Sources: `k8s.io/api` and `k8s.io/apimachinery` v0.35 type definitions, as rendered in
//! upstream's `api/openapi-spec/v3/*.json`.

use crate::schemas::ListType;

/// `(definition, property, x-kubernetes-patch-strategy, x-kubernetes-patch-merge-key)`.
pub(crate) const PATCH_STRATEGIES: &[(&str, &str, &str, Option<&str>)] = &[
    // meta/v1
    (META_OBJECT_META, "finalizers", "merge", None),
    (META_OBJECT_META, "ownerReferences", "merge", Some("uid")),
    // core/v1 pods
    (CORE_POD_SPEC, "containers", "merge", Some("name")),
    (CORE_POD_SPEC, "initContainers", "merge", Some("name")),
    (CORE_POD_SPEC, "ephemeralContainers", "merge", Some("name")),
    (CORE_POD_SPEC, "imagePullSecrets", "merge", Some("name")),
    (CORE_POD_SPEC, "volumes", "merge,retainKeys", Some("name")),
    (CORE_POD_SPEC, "hostAliases", "merge", Some("ip")),
    (
        CORE_POD_SPEC,
        "topologySpreadConstraints",
        "merge",
        Some("topologyKey"),
    ),
    (CORE_POD_SPEC, "schedulingGates", "merge", Some("name")),
    (
        CORE_POD_SPEC,
        "resourceClaims",
        "merge,retainKeys",
        Some("name"),
    ),
    (CORE_CONTAINER, "env", "merge", Some("name")),
    (CORE_CONTAINER, "ports", "merge", Some("containerPort")),
    (CORE_CONTAINER, "volumeMounts", "merge", Some("mountPath")),
    (CORE_CONTAINER, "volumeDevices", "merge", Some("devicePath")),
    (CORE_EPHEMERAL_CONTAINER, "env", "merge", Some("name")),
    (
        CORE_EPHEMERAL_CONTAINER,
        "ports",
        "merge",
        Some("containerPort"),
    ),
    (
        CORE_EPHEMERAL_CONTAINER,
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        CORE_EPHEMERAL_CONTAINER,
        "volumeDevices",
        "merge",
        Some("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.ContainerStatus",
        "allocatedResourcesStatus",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "podIPs",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "hostIPs",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "resourceClaimStatuses",
        "merge,retainKeys",
        Some("name"),
    ),
    // core/v1 others
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "merge", None),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "addresses",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.ReplicationControllerStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.ComponentStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        "merge",
        Some("port"),
    ),
    (
        "io.k8s.api.core.v1.ServiceStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        "merge",
        Some("name"),
    ),
    // apps/v1
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        "retainKeys",
        None,
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.DaemonSetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    // batch/v1, autoscaling/v2, policy/v1
    (
        "io.k8s.api.batch.v1.JobStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    // networking
    (
        "io.k8s.api.networking.v1.ServiceCIDRStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.networking.v1beta1.ServiceCIDRStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    // flowcontrol
    (
        "io.k8s.api.flowcontrol.v1.FlowSchemaStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    // admissionregistration
    (
        "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration",
        "webhooks",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration",
        "webhooks",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1.MutatingWebhook",
        "matchConditions",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingWebhook",
        "matchConditions",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec",
        "matchConditions",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec",
        "variables",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1alpha1.MutatingAdmissionPolicySpec",
        "matchConditions",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.admissionregistration.v1beta1.MutatingAdmissionPolicySpec",
        "matchConditions",
        "merge",
        Some("name"),
    ),
    // resource.k8s.io
    (
        "io.k8s.api.resource.v1.ResourceClaimStatus",
        "reservedFor",
        "merge",
        Some("uid"),
    ),
    (
        "io.k8s.api.resource.v1beta1.ResourceClaimStatus",
        "reservedFor",
        "merge",
        Some("uid"),
    ),
    (
        "io.k8s.api.resource.v1beta2.ResourceClaimStatus",
        "reservedFor",
        "merge",
        Some("uid"),
    ),
    // storage.k8s.io
    (
        "io.k8s.api.storage.v1.CSINodeSpec",
        "drivers",
        "merge",
        Some("name"),
    ),
    // apiregistration.k8s.io
    (
        "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
];

/// List types where upstream differs from what the `k8s-openapi` merge strategy implies (it
/// keys lists by the patch merge key alone, and treats `+listType=atomic` lists that carry a
/// patch merge key as maps).
pub(crate) const LIST_TYPE_OVERRIDES: &[(&str, &str, ListType)] = &[
    (
        CORE_CONTAINER,
        "ports",
        ListType::Map(&["containerPort", "protocol"]),
    ),
    (
        CORE_EPHEMERAL_CONTAINER,
        "ports",
        ListType::Map(&["containerPort", "protocol"]),
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        ListType::Map(&["port", "protocol"]),
    ),
    (
        CORE_POD_SPEC,
        "topologySpreadConstraints",
        ListType::Map(&["topologyKey", "whenUnsatisfiable"]),
    ),
    (
        "io.k8s.api.batch.v1.JobStatus",
        "conditions",
        ListType::Atomic,
    ),
];

/// Definitions declared `+structType=atomic` upstream (`x-kubernetes-map-type: atomic`).
pub(crate) const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.core.v1.SecretReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.FileKeySelector",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.ConfigMapEnvSource",
    "io.k8s.api.core.v1.SecretEnvSource",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.TopologySelectorTerm",
];

const META_OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const CORE_POD_SPEC: &str = "io.k8s.api.core.v1.PodSpec";
const CORE_CONTAINER: &str = "io.k8s.api.core.v1.Container";
const CORE_EPHEMERAL_CONTAINER: &str = "io.k8s.api.core.v1.EphemeralContainer";
