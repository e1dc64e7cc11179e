//! `kubectl version`, `api-resources`, `api-versions`, `explain`, the unauthenticated health
//! endpoints and 401 for everything else without credentials.

#![allow(clippy::unwrap_used)]

use e2e::{Table, assert_header, json, stderr};
use testsupport::shared_server;

#[test]
fn kubectl_version_reports_client_and_server_1_35() {
    let Some(srv) = shared_server() else { return };
    let out = srv.kubectl(&["version"]);
    let text = e2e::stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.lines().any(|l| l.starts_with("Client Version: v1.")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Server Version: v1.35.")),
        "{text}"
    );
    // No skew warning: the server is within one minor of kubectl.
    assert!(!stderr(&out).contains("WARNING"), "{}", stderr(&out));

    let v = json(&srv.kubectl_ok(&["version", "-o", "json"]));
    let server = &v["serverVersion"];
    assert_eq!(server["major"], "1");
    assert_eq!(server["minor"], "35");
    assert!(
        server["gitVersion"].as_str().unwrap().starts_with("v1.35."),
        "{v}"
    );
    assert_eq!(server["platform"], "linux/amd64");
}

#[test]
fn api_resources_lists_every_kind_of_the_issue() {
    let Some(srv) = shared_server() else { return };
    let out = srv.kubectl_ok(&["api-resources"]);
    let table = assert_header(
        &out,
        &["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
    );
    // (name, shortnames, apiVersion, namespaced, kind); shortnames "" when there are none.
    let expected = [
        ("configmaps", "cm", "v1", "true", "ConfigMap"),
        ("endpoints", "ep", "v1", "true", "Endpoints"),
        ("events", "ev", "v1", "true", "Event"),
        ("limitranges", "limits", "v1", "true", "LimitRange"),
        ("namespaces", "ns", "v1", "false", "Namespace"),
        ("nodes", "no", "v1", "false", "Node"),
        ("pods", "po", "v1", "true", "Pod"),
        ("resourcequotas", "quota", "v1", "true", "ResourceQuota"),
        ("secrets", "", "v1", "true", "Secret"),
        ("serviceaccounts", "sa", "v1", "true", "ServiceAccount"),
        ("services", "svc", "v1", "true", "Service"),
        ("deployments", "deploy", "apps/v1", "true", "Deployment"),
        ("replicasets", "rs", "apps/v1", "true", "ReplicaSet"),
        ("leases", "", "coordination.k8s.io/v1", "true", "Lease"),
        (
            "endpointslices",
            "",
            "discovery.k8s.io/v1",
            "true",
            "EndpointSlice",
        ),
        ("events", "ev", "events.k8s.io/v1", "true", "Event"),
    ];
    for (name, short, api_version, namespaced, kind) in expected {
        let want: Vec<String> = [name, short, api_version, namespaced, kind]
            .into_iter()
            .map(str::to_string)
            .collect();
        assert!(
            table.rows.contains(&want),
            "api-resources lacks the row {want:?}:\n{out}"
        );
    }

    // Filtering by group and the -o name form.
    let apps = srv.kubectl_ok(&["api-resources", "--api-group=apps", "-o", "name"]);
    let names: Vec<&str> = apps.lines().collect();
    assert!(names.contains(&"deployments.apps"), "{apps}");
    assert!(names.contains(&"replicasets.apps"), "{apps}");
    assert!(!names.contains(&"pods"), "{apps}");

    let cluster_scoped = srv.kubectl_ok(&["api-resources", "--namespaced=false", "-o", "name"]);
    assert!(
        cluster_scoped.lines().any(|l| l == "namespaces"),
        "{cluster_scoped}"
    );
    assert!(
        !cluster_scoped.lines().any(|l| l == "pods"),
        "{cluster_scoped}"
    );
}

#[test]
fn api_versions_lists_the_served_group_versions() {
    let Some(srv) = shared_server() else { return };
    let out = srv.kubectl_ok(&["api-versions"]);
    let lines: Vec<&str> = out.lines().collect();
    for gv in [
        "v1",
        "apps/v1",
        "coordination.k8s.io/v1",
        "discovery.k8s.io/v1",
        "events.k8s.io/v1",
    ] {
        assert!(lines.contains(&gv), "api-versions lacks {gv}:\n{out}");
    }
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted, "kubectl prints api-versions sorted");
}

#[test]
fn explain_prints_the_field_documentation() {
    let Some(srv) = shared_server() else { return };
    let out = srv.kubectl_ok(&["explain", "deployment.spec.replicas"]);
    assert!(out.contains("GROUP:      apps"), "{out}");
    assert!(out.contains("KIND:       Deployment"), "{out}");
    assert!(out.contains("VERSION:    v1"), "{out}");
    assert!(out.contains("FIELD: replicas <integer>"), "{out}");
    assert!(out.contains("DESCRIPTION:"), "{out}");
    let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("Number of desired pods. This is a pointer to distinguish between explicit zero and not specified. Defaults to 1."),
        "{out}"
    );

    let top = srv.kubectl_ok(&["explain", "pods"]);
    assert!(top.contains("KIND:       Pod"), "{top}");
    assert!(top.contains("spec\t<PodSpec>"), "{top}");
}

#[test]
fn health_and_version_endpoints_answer_without_credentials() {
    let Some(srv) = shared_server() else { return };
    let anon = srv.http_anonymous().unwrap();
    for path in ["/readyz", "/livez", "/healthz"] {
        let resp = anon.get(path).unwrap();
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        assert_eq!(resp.text(), "ok", "{path}");
    }
    let version = anon.get("/version").unwrap();
    assert_eq!(version.status, 200, "{}", version.text());
    let v = version.json().unwrap();
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "35");
}

#[test]
fn requests_without_credentials_get_401() {
    let Some(srv) = shared_server() else { return };
    let anon = srv.http_anonymous().unwrap();
    for path in [
        "/api",
        "/apis",
        "/api/v1/namespaces",
        "/api/v1/namespaces/default/configmaps",
        "/apis/apps/v1/deployments",
        "/openapi/v3",
    ] {
        let resp = anon.get(path).unwrap();
        assert_eq!(resp.status, 401, "GET {path}: {}", resp.text());
        let status = resp.json().unwrap();
        assert_eq!(status["kind"], "Status", "{status}");
        assert_eq!(status["apiVersion"], "v1", "{status}");
        assert_eq!(status["status"], "Failure", "{status}");
        assert_eq!(status["reason"], "Unauthorized", "{status}");
        assert_eq!(status["message"], "Unauthorized", "{status}");
        assert_eq!(status["code"], 401, "{status}");
    }
    // A write without credentials is refused and changes nothing.
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"anon-write"}}"#;
    let resp = anon
        .send_json("POST", "/api/v1/namespaces/default/configmaps", body)
        .unwrap();
    assert_eq!(resp.status, 401, "{}", resp.text());
    let get = srv
        .http()
        .unwrap()
        .get("/api/v1/namespaces/default/configmaps/anon-write")
        .unwrap();
    assert_eq!(get.status, 404, "{}", get.text());

    // kubectl with a kubeconfig that has the CA but no client certificate, only a token the
    // server does not know (a user with no credentials at all makes kubectl prompt for a
    // password instead of sending the request).
    let kc = testsupport::Kubeconfig::load(&srv.kubeconfig_path()).unwrap();
    let ca_path = srv.scratch_dir().join("anon-ca.crt");
    std::fs::write(&ca_path, &kc.ca_pem).unwrap();
    let anon_kubeconfig = srv.scratch_dir().join("anon-kubeconfig.yaml");
    std::fs::write(
        &anon_kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: r8s\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: nobody\n  user:\n    token: not-a-valid-token\ncontexts:\n- name: r8s\n  context:\n    cluster: r8s\n    user: nobody\ncurrent-context: r8s\n",
            srv.base_url(),
            ca_path.display()
        ),
    )
    .unwrap();
    let out = srv
        .kubectl_timeout(
            &[
                "--kubeconfig",
                anon_kubeconfig.to_str().unwrap(),
                "get",
                "namespaces",
            ],
            None,
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("error: You must be logged in to the server (Unauthorized)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn default_namespaces_exist_and_are_active() {
    let Some(srv) = shared_server() else { return };
    let out = srv.kubectl_ok(&["get", "namespaces"]);
    let table: Table = assert_header(&out, &["NAME", "STATUS", "AGE"]);
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert_eq!(table.cell(ns, "STATUS"), "Active", "{out}");
        assert!(e2e::is_age(table.cell(ns, "AGE")), "{out}");
    }
}
