//! Bodies captured from the real kubectl v1.35.2 (`kubectl create …` against a local listener),
//! compared with the JSON the same command prints with `--dry-run=client -o json`, i.e. the JSON
//! a JSON client sends for the same object.

use std::path::PathBuf;

use codec::{PROTOBUF_CONTENT_TYPE, decode_protobuf, is_protobuf_content_type};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Go's JSON writes `"creationTimestamp": null`; serde treats that like an absent field.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Decodes `<name>.pb`, checks it equals `<name>.json` exactly and as the typed object.
fn check<K: DeserializeOwned + PartialEq + std::fmt::Debug>(
    name: &str,
    api_version: &str,
    kind: &str,
) -> K {
    let decoded = decode_protobuf(&fixture(&format!("{name}.pb"))).expect("decodes");
    assert_eq!(decoded.api_version, api_version);
    assert_eq!(decoded.kind, kind);
    let mut expected: Value =
        serde_json::from_slice(&fixture(&format!("{name}.json"))).expect("fixture JSON");
    strip_nulls(&mut expected);
    assert_eq!(
        decoded.object,
        expected,
        "{name}: got {}",
        serde_json::to_string_pretty(&decoded.object).unwrap_or_default()
    );
    let typed: K = serde_json::from_value(decoded.object).expect("deserializes into k8s-openapi");
    let expected_typed: K = serde_json::from_value(expected).expect("fixture deserializes");
    assert_eq!(typed, expected_typed);
    typed
}

#[test]
fn content_type_helpers() {
    assert!(is_protobuf_content_type(PROTOBUF_CONTENT_TYPE));
    assert!(is_protobuf_content_type(
        "application/vnd.kubernetes.protobuf; charset=utf-8"
    ));
    assert!(!is_protobuf_content_type("application/json"));
    assert!(!is_protobuf_content_type(
        "application/vnd.kubernetes.protobuf-x"
    ));
}

#[test]
fn kubectl_create_deployment() {
    let d: Deployment = check("deployment", "apps/v1", "Deployment");
    assert_eq!(d.metadata.name.as_deref(), Some("nginx"));
    // Go sends namespace "", resourceVersion "", generation 0, an empty creationTimestamp…: all dropped.
    assert_eq!(d.metadata.namespace, None);
    assert_eq!(d.metadata.resource_version, None);
    assert_eq!(d.metadata.generation, None);
    assert_eq!(d.metadata.creation_timestamp, None);
    let labels = d.metadata.labels.expect("labels");
    assert_eq!(labels.get("app").map(String::as_str), Some("nginx"));
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.min_ready_seconds, None);
    assert_eq!(spec.paused, None);
    let match_labels = spec.selector.match_labels.expect("matchLabels");
    assert_eq!(match_labels.get("app").map(String::as_str), Some("nginx"));
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(pod.containers.len(), 1);
    assert_eq!(pod.containers[0].name, "nginx");
    assert_eq!(pod.containers[0].image.as_deref(), Some("nginx"));
    assert_eq!(pod.host_network, None);
    // Present (empty) structs stay, as in Go's JSON.
    assert!(pod.containers[0].resources.is_some());
    assert!(spec.strategy.is_some());
}

#[test]
fn kubectl_create_deployment_replicas_and_ports() {
    let d: Deployment = check("deploy3", "apps/v1", "Deployment");
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let containers = spec.template.spec.expect("pod spec").containers;
    assert_eq!(containers.len(), 2);
    let ports = containers[0].ports.as_ref().expect("ports");
    assert_eq!(ports[0].container_port, 80);
}

#[test]
fn kubectl_create_secret_with_binary_data() {
    let s: Secret = check("secret", "v1", "Secret");
    let data = s.data.expect("data");
    assert_eq!(
        data.get("bin"),
        Some(&ByteString(b"\x00\x01\x02\xff\xfebinary".to_vec()))
    );
    assert_eq!(data.get("user"), Some(&ByteString(b"admin".to_vec())));
    assert_eq!(s.immutable, None);
}

#[test]
fn kubectl_create_configmap_with_binary_data() {
    let c: ConfigMap = check("configmap", "v1", "ConfigMap");
    assert_eq!(
        c.data.expect("data").get("key").map(String::as_str),
        Some("value")
    );
    let binary = c.binary_data.expect("binaryData");
    assert_eq!(
        binary.get("bin"),
        Some(&ByteString(b"\x00\x01\x02\xff\xfebinary".to_vec()))
    );
}

#[test]
fn kubectl_create_namespace() {
    let ns: Namespace = check("namespace", "v1", "Namespace");
    assert_eq!(ns.metadata.name.as_deref(), Some("team-a"));
}

#[test]
fn kubectl_create_service_int_or_string() {
    let svc: Service = check("service", "v1", "Service");
    let port = &svc.spec.expect("spec").ports.expect("ports")[0];
    assert_eq!(port.port, 80);
    assert_eq!(port.target_port, Some(IntOrString::Int(8080)));
    let np: Service = check("servicenp", "v1", "Service");
    let port = &np.spec.expect("spec").ports.expect("ports")[0];
    assert_eq!(port.target_port, Some(IntOrString::String("https".into())));
}

#[test]
fn kubectl_create_quota_quantities() {
    let q: ResourceQuota = check("quota", "v1", "ResourceQuota");
    let hard = q.spec.expect("spec").hard.expect("hard");
    assert_eq!(hard.get("memory"), Some(&Quantity("1Gi".into())));
    assert_eq!(hard.get("cpu"), Some(&Quantity("1".into())));
}

#[test]
fn kubectl_create_other_kinds() {
    let job: Job = check("job", "batch/v1", "Job");
    let command = job
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0]
        .command
        .clone();
    assert_eq!(command, Some(vec!["echo".to_owned(), "hi".to_owned()]));
    let cj: CronJob = check("cronjob", "batch/v1", "CronJob");
    assert_eq!(cj.spec.expect("spec").schedule, "*/5 * * * *");
    let pdb: PodDisruptionBudget = check("pdb", "policy/v1", "PodDisruptionBudget");
    assert_eq!(
        pdb.spec.expect("spec").min_available,
        Some(IntOrString::String("50%".into()))
    );
    let sa: ServiceAccount = check("sa", "v1", "ServiceAccount");
    assert_eq!(sa.metadata.name.as_deref(), Some("builder"));
    let pc: PriorityClass = check("pc", "scheduling.k8s.io/v1", "PriorityClass");
    assert_eq!(pc.value, 1000);
    let ing: Ingress = check("ingress", "networking.k8s.io/v1", "Ingress");
    assert_eq!(
        ing.spec.expect("spec").rules.expect("rules")[0]
            .host
            .as_deref(),
        Some("example.com")
    );
}

#[test]
fn kubectl_auth_can_i_self_subject_access_review() {
    let decoded = decode_protobuf(&fixture("selfsubjectaccessreview.pb")).expect("decodes");
    assert_eq!(decoded.api_version, "authorization.k8s.io/v1");
    assert_eq!(decoded.kind, "SelfSubjectAccessReview");
    let review: SelfSubjectAccessReview =
        serde_json::from_value(decoded.object.clone()).expect("typed");
    let attrs = review.spec.resource_attributes.expect("resourceAttributes");
    assert_eq!(attrs.verb.as_deref(), Some("get"));
    assert_eq!(attrs.resource.as_deref(), Some("pods"));
    assert_eq!(attrs.namespace.as_deref(), Some("default"));
    // `status.allowed` has no omitempty in Go, so Go's JSON carries `false`.
    assert_eq!(decoded.object["status"]["allowed"], Value::Bool(false));
}
