//! Table-driven tests asserting upstream's exact field paths and messages.

use serde_json::json;

use super::*;
use crate::defaults;
use crate::field::ErrorList;

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("valid test object")
}

fn messages(errs: &ErrorList) -> Vec<String> {
    errs.iter().map(crate::field::Error::message).collect()
}

fn deployment(spec: serde_json::Value) -> k8s_openapi::api::apps::v1::Deployment {
    let mut d: k8s_openapi::api::apps::v1::Deployment =
        from(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}));
    defaults::default_deployment(&mut d);
    d
}

fn good_template() -> serde_json::Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
}

#[test]
fn deployment_three_errors_with_paths() {
    let d = deployment(json!({
        "replicas": -1,
        "selector": {"matchLabels": {"app": "other"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": ""}]}}
    }));
    let errs = validate_deployment(&d);
    assert_eq!(
        messages(&errs),
        vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
            "spec.template.spec.containers[0].image: Required value",
        ]
    );
    let reasons: Vec<&str> = errs.iter().map(|e| e.reason()).collect();
    assert_eq!(
        reasons,
        vec![
            "FieldValueInvalid",
            "FieldValueInvalid",
            "FieldValueRequired"
        ]
    );
    assert_eq!(
        errs[1].body(),
        "Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`"
    );
}

#[test]
fn deployment_cases() {
    let cases: Vec<(&str, serde_json::Value, Vec<&str>)> = vec![
        (
            "valid",
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": good_template()}),
            vec![],
        ),
        (
            "missing selector",
            json!({"template": good_template()}),
            vec!["spec.selector: Required value"],
        ),
        (
            "progress deadline not above minReady",
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": good_template(),
                   "minReadySeconds": 10, "progressDeadlineSeconds": 10, "revisionHistoryLimit": -1}),
            vec![
                "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
                "spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds",
            ],
        ),
        (
            "recreate with rollingUpdate",
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": good_template(),
                   "strategy": {"type": "Recreate", "rollingUpdate": {}}}),
            vec![
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
            ],
        ),
        (
            "both zero",
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": good_template(),
                   "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}),
            vec![
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0",
            ],
        ),
        (
            "restartPolicy",
            json!({"selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "nginx"}]}}}),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ],
        ),
    ];
    for (name, spec, want) in cases {
        assert_eq!(
            messages(&validate_deployment(&deployment(spec))),
            want,
            "{name}"
        );
    }
}

#[test]
fn deployment_selector_immutable() {
    let mut old = deployment(
        json!({"selector": {"matchLabels": {"app": "web"}}, "template": good_template()}),
    );
    old.metadata.resource_version = Some("1".into());
    let mut new = deployment(
        json!({"selector": {"matchLabels": {"app": "web", "x": "y"}},
        "template": {"metadata": {"labels": {"app": "web", "x": "y"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}),
    );
    new.metadata.resource_version = Some("1".into());
    assert_eq!(
        messages(&validate_deployment_update(&new, &old)),
        vec![
            "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"web\",\"x\":\"y\"}}: field is immutable"
        ]
    );
}

#[test]
fn replica_set_cases() {
    let mut rs: k8s_openapi::api::apps::v1::ReplicaSet = from(json!({
        "metadata": {"name": "rs", "namespace": "default"},
        "spec": {"replicas": -2, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }));
    defaults::default_replica_set(&mut rs);
    assert_eq!(
        messages(&validate_replica_set(&rs)),
        vec![
            "spec.replicas: Invalid value: -2: must be greater than or equal to 0",
            "spec.template.metadata.labels: Invalid value: {\"a\":\"c\"}: `selector` does not match template `labels`",
        ]
    );
}

fn pod(spec: serde_json::Value) -> k8s_openapi::api::core::v1::Pod {
    let mut p: k8s_openapi::api::core::v1::Pod =
        from(json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec}));
    defaults::default_pod(&mut p);
    p
}

#[test]
fn pod_cases() {
    let cases: Vec<(&str, serde_json::Value, Vec<&str>)> = vec![
        (
            "valid",
            json!({"containers": [{"name": "c", "image": "nginx"}]}),
            vec![],
        ),
        (
            "no containers",
            json!({"containers": []}),
            vec!["spec.containers: Required value"],
        ),
        (
            "bad and duplicate names",
            json!({"containers": [{"name": "A", "image": "x"}, {"name": "b", "image": "x"}, {"name": "b", "image": "x"}]}),
            vec![
                "spec.containers[0].name: Invalid value: \"A\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "spec.containers[2].name: Duplicate value: \"b\"",
            ],
        ),
        (
            "ports",
            json!({"containers": [{"name": "c", "image": "x", "ports": [
                {"containerPort": 70000}, {"containerPort": 80, "protocol": "HTTP"}]}]}),
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ],
        ),
        (
            "volumes",
            json!({"containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "missing", "mountPath": "/a"}]}],
                   "volumes": [{"name": "v", "emptyDir": {}, "configMap": {"name": "cm"}}, {"name": "w", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]}),
            vec![
                "spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[2].name: Duplicate value: \"w\"",
                "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
            ],
        ),
        (
            "resources",
            json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}),
            vec![
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            ],
        ),
        (
            "enums",
            json!({"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Sometimes", "dnsPolicy": "Weird"}),
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.dnsPolicy: Unsupported value: \"Weird\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
            ],
        ),
        (
            "env",
            json!({"containers": [{"name": "c", "image": "x", "env": [{"name": ""}, {"name": "A=B"}]}]}),
            vec![
                "spec.containers[0].env[0].name: Required value",
                "spec.containers[0].env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            ],
        ),
    ];
    for (name, spec, want) in cases {
        assert_eq!(messages(&validate_pod(&pod(spec))), want, "{name}");
    }
}

#[test]
fn pod_update_rules() {
    let mut old = pod(json!({"containers": [{"name": "c", "image": "nginx:1"}]}));
    old.metadata.resource_version = Some("3".into());
    let mut new = old.clone();
    new.spec.as_mut().expect("spec").containers[0].image = Some("nginx:2".into());
    new.metadata.labels = Some([("x".to_owned(), "y".to_owned())].into());
    assert!(validate_pod_update(&new, &old).is_empty());

    let mut bad = old.clone();
    bad.spec.as_mut().expect("spec").restart_policy = Some("Never".into());
    let errs = validate_pod_update(&bad, &old);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec");
    assert_eq!(errs[0].reason(), "FieldValueForbidden");
    assert!(errs[0].message().starts_with(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
    ));
}

#[test]
fn pod_status_and_binding() {
    let mut old =
        pod(json!({"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}));
    old.metadata.resource_version = Some("1".into());
    old.status = Some(from(
        json!({"containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0}}}]}),
    ));
    let mut new = old.clone();
    new.status = Some(from(
        json!({"containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
        "state": {"running": {}}}], "podIPs": [{"ip": "bad"}]}),
    ));
    assert_eq!(
        messages(&validate_pod_status_update(&new, &old)),
        vec![
            "status.containerStatuses[0].state: Forbidden: may not be transitioned to non-terminated state",
            "status.podIPs[0]: Invalid value: \"bad\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ]
    );
    let b: k8s_openapi::api::core::v1::Binding =
        from(json!({"metadata": {"name": "p"}, "target": {"kind": "Pod"}}));
    assert_eq!(
        messages(&validate_binding(&b)),
        vec![
            "target.kind: Unsupported value: \"Pod\": supported values: \"Node\", \"<empty>\"",
            "target.name: Required value",
        ]
    );
}

#[test]
fn service_cases() {
    let svc = |spec: serde_json::Value| {
        let mut s: k8s_openapi::api::core::v1::Service =
            from(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}));
        defaults::default_service(&mut s);
        s
    };
    let cases: Vec<(&str, serde_json::Value, Vec<&str>)> = vec![
        (
            "valid",
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
            vec![],
        ),
        ("no ports", json!({}), vec!["spec.ports: Required value"]),
        (
            "bad type and port",
            json!({"type": "Bogus", "ports": [{"port": 0}]}),
            vec![
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.type: Unsupported value: \"Bogus\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ],
        ),
        (
            "multi-port names required",
            json!({"ports": [{"port": 80}, {"port": 81}]}),
            vec![
                "spec.ports[0].name: Required value",
                "spec.ports[1].name: Required value",
            ],
        ),
        (
            "bad clusterIP",
            json!({"clusterIP": "10.0.0.300", "ports": [{"port": 80}]}),
            vec![
                "spec.clusterIPs[0]: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ],
        ),
        (
            "nodePort on ClusterIP",
            json!({"ports": [{"port": 80, "nodePort": 30000}]}),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        ),
    ];
    for (name, spec, want) in cases {
        assert_eq!(messages(&validate_service(&svc(spec))), want, "{name}");
    }
    // Service names are DNS-1035 labels.
    let mut s = svc(json!({"ports": [{"port": 80}]}));
    s.metadata.name = Some("1web".into());
    assert_eq!(validate_service(&s)[0].field, "metadata.name");
}

#[test]
fn config_map_and_secret() {
    let cm: k8s_openapi::api::core::v1::ConfigMap = from(json!({
        "metadata": {"name": "cm", "namespace": "default"},
        "data": {"bad key": "x", "big": "a".repeat(1024 * 1024)}
    }));
    assert_eq!(
        messages(&validate_config_map(&cm)),
        vec![
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ": Too long: may not be more than 1048576 bytes",
        ]
    );
    let mut tls: k8s_openapi::api::core::v1::Secret = from(json!({
        "metadata": {"name": "s", "namespace": "default"}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}
    }));
    defaults::default_secret(&mut tls);
    assert_eq!(
        messages(&validate_secret(&tls)),
        vec!["data[tls.key]: Required value"]
    );
    let mut old = tls.clone();
    old.metadata.resource_version = Some("1".into());
    let mut new = old.clone();
    new.type_ = Some("Opaque".into());
    assert_eq!(
        messages(&validate_secret_update(&new, &old)),
        vec!["type: Invalid value: \"Opaque\": field is immutable"]
    );
}

#[test]
fn namespace_and_meta() {
    let mut ns: k8s_openapi::api::core::v1::Namespace =
        from(json!({"metadata": {"name": "Bad.Name"}}));
    defaults::default_namespace(&mut ns);
    let errs = validate_namespace(&ns);
    assert_eq!(errs[0].field, "metadata.name");
    assert!(errs[0].detail.starts_with("a lowercase RFC 1123 label"));
    let ok: k8s_openapi::api::core::v1::Namespace =
        from(json!({"metadata": {"name": "ok", "finalizers": ["custom"]}}));
    assert_eq!(
        messages(&validate_namespace(&ok)),
        vec![
            "metadata.finalizers[0]: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
        ]
    );
}

#[test]
fn other_kinds() {
    let lease: k8s_openapi::api::coordination::v1::Lease = from(json!({
        "metadata": {"name": "l", "namespace": "kube-node-lease"},
        "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}
    }));
    assert_eq!(
        messages(&validate_lease(&lease)),
        vec![
            "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
            "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
        ]
    );
    let es: k8s_openapi::api::discovery::v1::EndpointSlice = from(json!({
        "metadata": {"name": "es", "namespace": "default"}, "addressType": "IPv4",
        "endpoints": [{"addresses": []}, {"addresses": ["127.0.0.1"]}], "ports": [{"port": 80}]
    }));
    assert_eq!(
        messages(&validate_endpoint_slice(&es)),
        vec![
            "endpoints[0].addresses: Required value: must contain at least 1 address",
            "endpoints[1].addresses[0]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            "ports[0].protocol: Required value",
        ]
    );
    let ev: k8s_openapi::api::events::v1::Event = from(json!({
        "metadata": {"name": "e", "namespace": "default"}, "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingController": "ctl", "reportingInstance": "i", "action": "A", "reason": "R", "type": "Odd"
    }));
    assert_eq!(
        messages(&validate_events_event(&ev)),
        vec!["type: Invalid value: \"\": has invalid value: Odd"]
    );
    let rq: k8s_openapi::api::core::v1::ResourceQuota = from(json!({
        "metadata": {"name": "q", "namespace": "default"}, "spec": {"hard": {"pods": "1.5", "foo": "1"}}
    }));
    assert_eq!(
        messages(&validate_resource_quota(&rq)),
        vec![
            "spec.hard[foo]: Invalid value: \"foo\": must be a standard resource type or fully qualified",
            "spec.hard[foo]: Invalid value: \"foo\": must be a standard resource for quota",
            "spec.hard[pods]: Invalid value: \"1.5\": must be an integer",
        ]
    );
    let lr: k8s_openapi::api::core::v1::LimitRange = from(json!({
        "metadata": {"name": "lr", "namespace": "default"},
        "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}
    }));
    assert_eq!(
        messages(&validate_limit_range(&lr)),
        vec![
            "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1"
        ]
    );
}
