use super::*;
use serde_json::json;

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("valid test object")
}

#[test]
fn image_pull_policy_by_tag() {
    let cases = [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("registry:5000/nginx", "Always"),
        ("registry:5000/nginx:1.0", "IfNotPresent"),
        ("nginx@sha256:abcd", "IfNotPresent"),
        ("nginx:latest@sha256:abcd", "Always"),
    ];
    for (image, want) in cases {
        assert_eq!(default_pull_policy(image), want, "{image}");
    }
}

#[test]
fn pod_defaults_match_upstream() {
    let mut pod: Pod = from(json!({
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{
            "name": "c", "image": "nginx:1.25",
            "ports": [{"containerPort": 80}],
            "resources": {"limits": {"cpu": "1"}},
            "livenessProbe": {"httpGet": {"port": 80}}
        }], "volumes": [{"name": "v"}]}
    }));
    default_pod(&mut pod);
    let scheme_only = serde_json::to_value(&pod).expect("serializable");
    assert!(scheme_only["spec"].get("tolerations").is_none());
    assert!(scheme_only["spec"].get("priority").is_none());
    assert!(scheme_only["spec"].get("serviceAccountName").is_none());
    admit_pod(&mut pod);
    let v = serde_json::to_value(&pod).expect("serializable");
    let spec = &v["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["serviceAccount"], "default");
    assert_eq!(
        spec["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ])
    );
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(c["resources"]["requests"]["cpu"], "1");
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
               "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(spec["volumes"][0], json!({"name": "v", "emptyDir": {}}));

    // Idempotent.
    let before = pod.clone();
    default_pod(&mut pod);
    admit_pod(&mut pod);
    assert_eq!(pod, before);
}

#[test]
fn deployment_defaults_match_upstream() {
    let mut d: Deployment = from(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    }));
    default_deployment(&mut d);
    let v = serde_json::to_value(&d).expect("serializable");
    let spec = &v["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    let t = &spec["template"]["spec"];
    assert_eq!(t["restartPolicy"], "Always");
    assert_eq!(t["containers"][0]["imagePullPolicy"], "Always");
    // Pod-only defaults are not applied to templates.
    assert!(t.get("enableServiceLinks").is_none());
    assert!(t.get("priority").is_none());

    let mut recreate: Deployment =
        from(json!({"spec": {"selector": {}, "template": {}, "strategy": {"type": "Recreate"}}}));
    default_deployment(&mut recreate);
    assert!(
        recreate
            .spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.rolling_update.as_ref())
            .is_none()
    );
}

#[test]
fn replica_set_defaults() {
    let mut rs: ReplicaSet = from(
        json!({"spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}),
    );
    default_replica_set(&mut rs);
    let v = serde_json::to_value(&rs).expect("serializable");
    assert_eq!(v["spec"]["replicas"], 1);
    assert_eq!(v["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
}

#[test]
fn service_defaults_match_upstream() {
    let mut svc: Service =
        from(json!({"spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}));
    default_service(&mut svc);
    let v = serde_json::to_value(&svc).expect("serializable");
    let spec = &v["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(
        spec["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert!(spec.get("externalTrafficPolicy").is_none());

    let mut lb: Service = from(
        json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 443, "targetPort": "https"}], "sessionAffinity": "ClientIP"}}),
    );
    default_service(&mut lb);
    let v = serde_json::to_value(&lb).expect("serializable");
    assert_eq!(v["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(v["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(v["spec"]["ports"][0]["targetPort"], "https");
    assert_eq!(
        v["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );

    let mut ext: Service =
        from(json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}));
    default_service(&mut ext);
    let v = serde_json::to_value(&ext).expect("serializable");
    assert!(v["spec"].get("ipFamilies").is_none());
    assert!(v["spec"].get("ipFamilyPolicy").is_none());
    assert!(v["spec"].get("internalTrafficPolicy").is_none());
}

#[test]
fn namespace_secret_and_others() {
    let mut ns: Namespace = from(json!({"metadata": {"name": "team-a"}}));
    default_namespace(&mut ns);
    let v = serde_json::to_value(&ns).expect("serializable");
    assert_eq!(
        v["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    assert_eq!(v["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(v["status"]["phase"], "Active");

    let mut s: Secret = from(json!({"metadata": {"name": "s"}}));
    default_secret(&mut s);
    assert_eq!(s.type_.as_deref(), Some("Opaque"));

    let mut lr: LimitRange = from(
        json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]}}),
    );
    default_limit_range(&mut lr);
    let v = serde_json::to_value(&lr).expect("serializable");
    assert_eq!(v["spec"]["limits"][0]["default"], json!({"cpu": "2"}));
    assert_eq!(
        v["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "2", "memory": "1Mi"})
    );

    let mut es: EndpointSlice =
        from(json!({"addressType": "IPv4", "endpoints": [], "ports": [{"port": 80}]}));
    default_endpoint_slice(&mut es);
    let v = serde_json::to_value(&es).expect("serializable");
    assert_eq!(
        v["ports"][0],
        json!({"name": "", "port": 80, "protocol": "TCP"})
    );

    let mut ep: Endpoints =
        from(json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}));
    default_endpoints(&mut ep);
    let v = serde_json::to_value(&ep).expect("serializable");
    assert_eq!(v["subsets"][0]["ports"][0]["protocol"], "TCP");

    let mut node: Node = from(json!({"status": {"capacity": {"cpu": "4"}}}));
    default_node(&mut node);
    let v = serde_json::to_value(&node).expect("serializable");
    assert_eq!(v["status"]["allocatable"], json!({"cpu": "4"}));
}
