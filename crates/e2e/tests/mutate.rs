//! `kubectl patch` (strategic, merge, json), `label`, `annotate`, `scale`, `delete` and
//! `delete namespace`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use e2e::{Namespace, json, nginx_deployment, stderr, stdout};
use testsupport::shared_server;

fn container(d: &serde_json::Value) -> &serde_json::Value {
    &d["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn patch_strategic_merge_and_json() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-patch");
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &nginx_deployment("nginx:1.14.2"));
    let get = || json(&ns.kubectl_ok(&["get", "deployment", "nginx-deployment", "-o", "json"]));

    // Strategic merge (kubectl's default): containers merge by name, ports are kept.
    let out = ns.kubectl_ok(&[
        "patch",
        "deployment",
        "nginx-deployment",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.16.1"}]}}}}"#,
    ]);
    assert_eq!(out.trim(), "deployment.apps/nginx-deployment patched");
    let d = get();
    assert_eq!(container(&d)["image"], "nginx:1.16.1");
    assert_eq!(
        container(&d)["ports"][0]["containerPort"],
        80,
        "kept by strategic merge: {d}"
    );
    assert_eq!(d["metadata"]["generation"], 2);

    // Strategic merge with an explicit type.
    let out = ns.kubectl_ok(&[
        "patch",
        "deployment",
        "nginx-deployment",
        "--type=strategic",
        "-p",
        r#"{"metadata":{"labels":{"patched":"strategic"}}}"#,
    ]);
    assert_eq!(out.trim(), "deployment.apps/nginx-deployment patched");
    assert_eq!(get()["metadata"]["labels"]["patched"], "strategic");

    // A patch that changes nothing says so.
    let out = ns.kubectl_ok(&[
        "patch",
        "deployment",
        "nginx-deployment",
        "-p",
        r#"{"metadata":{"labels":{"patched":"strategic"}}}"#,
    ]);
    assert_eq!(
        out.trim(),
        "deployment.apps/nginx-deployment patched (no change)"
    );

    // Merge patch: lists are replaced whole, so the ports go; null deletes a key.
    let out = ns.kubectl_ok(&[
        "patch",
        "deployment",
        "nginx-deployment",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"patched":null,"merged":"yes"}},"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.17"}]}}}}"#,
    ]);
    assert_eq!(out.trim(), "deployment.apps/nginx-deployment patched");
    let d = get();
    assert_eq!(container(&d)["image"], "nginx:1.17");
    assert!(
        container(&d).get("ports").is_none(),
        "replaced by merge patch: {d}"
    );
    assert!(d["metadata"]["labels"].get("patched").is_none(), "{d}");
    assert_eq!(d["metadata"]["labels"]["merged"], "yes");

    // JSON patch.
    let out = ns.kubectl_ok(&[
        "patch",
        "deployment",
        "nginx-deployment",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":5},{"op":"add","path":"/metadata/annotations/json","value":"patched"}]"#,
    ]);
    assert_eq!(out.trim(), "deployment.apps/nginx-deployment patched");
    let d = get();
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["annotations"]["json"], "patched");

    // A failing JSON patch `test` changes nothing. (The deployment controller may still write
    // the status meanwhile, so the spec, annotations and generation are compared rather than
    // the resourceVersion.)
    let before = (
        d["spec"].clone(),
        d["metadata"]["annotations"].clone(),
        d["metadata"]["generation"].clone(),
    );
    let out = ns.kubectl(&[
        "patch",
        "deployment",
        "nginx-deployment",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":7}]"#,
    ]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let d = get();
    assert_eq!(d["spec"]["replicas"], 5);
    let after = (
        d["spec"].clone(),
        d["metadata"]["annotations"].clone(),
        d["metadata"]["generation"].clone(),
    );
    assert_eq!(after, before);

    // An invalid result is rejected with 422 and changes nothing.
    let out = ns.kubectl(&[
        "patch",
        "deployment",
        "nginx-deployment",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":-1}}"#,
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("The Deployment \"nginx-deployment\" is invalid"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("spec.replicas"), "{}", stderr(&out));
    assert_eq!(get()["spec"]["replicas"], 5);
}

#[test]
fn label_and_annotate() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-label");
    ns.kubectl_ok(&["create", "configmap", "cm", "--from-literal=k=v"]);

    assert_eq!(
        ns.kubectl_ok(&["label", "configmap", "cm", "env=prod", "team=a"])
            .trim(),
        "configmap/cm labeled"
    );
    assert_eq!(
        ns.jsonpath("configmap/cm", "{.metadata.labels.env}"),
        "prod"
    );
    let out = ns.kubectl(&["label", "configmap", "cm", "env=dev"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("'env' already has a value (prod), and --overwrite is false"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        ns.kubectl_ok(&["label", "configmap", "cm", "env=dev", "--overwrite"])
            .trim(),
        "configmap/cm labeled"
    );
    assert_eq!(ns.jsonpath("configmap/cm", "{.metadata.labels.env}"), "dev");
    assert_eq!(
        ns.kubectl_ok(&["label", "configmap", "cm", "team-"]).trim(),
        "configmap/cm unlabeled"
    );
    let labels =
        json(&ns.kubectl_ok(&["get", "configmap", "cm", "-o", "json"]))["metadata"]["labels"]
            .clone();
    assert_eq!(labels, serde_json::json!({"env": "dev"}));
    // -L shows a label as a column.
    let out = ns.kubectl_ok(&["get", "configmap", "cm", "-L", "env"]);
    let t = e2e::assert_header(&out, &["NAME", "DATA", "AGE", "ENV"]);
    assert_eq!(t.cell("cm", "ENV"), "dev");

    assert_eq!(
        ns.kubectl_ok(&["annotate", "configmap", "cm", "note=hello world"])
            .trim(),
        "configmap/cm annotated"
    );
    assert_eq!(
        ns.jsonpath("configmap/cm", "{.metadata.annotations.note}"),
        "hello world"
    );
    assert_eq!(
        ns.kubectl_ok(&["annotate", "configmap", "cm", "note-"])
            .trim(),
        "configmap/cm annotated"
    );
    assert_eq!(
        ns.jsonpath("configmap/cm", "{.metadata.annotations.note}"),
        ""
    );

    // Label by selector across several objects.
    ns.kubectl_ok(&["create", "configmap", "cm2", "--from-literal=k=v"]);
    let out = ns.kubectl_ok(&["label", "configmaps", "--all", "bulk=yes"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert!(lines.contains(&"configmap/cm labeled"), "{out}");
    assert!(lines.contains(&"configmap/cm2 labeled"), "{out}");
}

#[test]
fn scale_a_deployment() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-scale");
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &nginx_deployment("nginx:1.14.2"));
    let out = ns.kubectl_ok(&["scale", "deployment", "nginx-deployment", "--replicas=5"]);
    assert_eq!(out.trim(), "deployment.apps/nginx-deployment scaled");
    assert_eq!(
        ns.jsonpath("deployment/nginx-deployment", "{.spec.replicas}"),
        "5"
    );
    // The scale subresource.
    let scale = json(&ns.kubectl_ok(&[
        "get",
        "--raw",
        &format!(
            "/apis/apps/v1/namespaces/{}/deployments/nginx-deployment/scale",
            ns.name
        ),
    ]));
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "app=nginx");
    // A precondition that does not hold.
    let out = ns.kubectl(&[
        "scale",
        "deployment",
        "nginx-deployment",
        "--current-replicas=2",
        "--replicas=1",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Expected replicas to be 2, was 5"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        ns.jsonpath("deployment/nginx-deployment", "{.spec.replicas}"),
        "5"
    );
    let out = ns.kubectl_ok(&["scale", "deployment", "nginx-deployment", "--replicas=0"]);
    assert_eq!(out.trim(), "deployment.apps/nginx-deployment scaled");
    assert_eq!(
        ns.jsonpath("deployment/nginx-deployment", "{.spec.replicas}"),
        "0"
    );
}

#[test]
fn delete_returns_promptly() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-delete");
    ns.kubectl_ok(&["create", "configmap", "doomed", "--from-literal=k=v"]);
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &nginx_deployment("nginx:1.14.2"));

    for (args, expected) in [
        (
            vec!["delete", "configmap", "doomed"],
            "configmap \"doomed\" deleted",
        ),
        (
            vec!["delete", "deployment", "nginx-deployment"],
            "deployment.apps \"nginx-deployment\" deleted",
        ),
    ] {
        let mut all = args.clone();
        all.extend(["-n", &ns.name]);
        let started = Instant::now();
        let out = srv
            .kubectl_timeout(&all, None, Duration::from_secs(60))
            .unwrap_or_else(|t| panic!("kubectl {} hung: {t}", args.join(" ")));
        let took = started.elapsed();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).starts_with(expected), "{}", stdout(&out));
        assert!(
            took < Duration::from_secs(10),
            "kubectl {} took {took:?}",
            args.join(" ")
        );
    }
    let gone = ns.kubectl(&["get", "configmap", "doomed"]);
    assert!(!gone.status.success());
    assert!(
        stderr(&gone).contains("Error from server (NotFound): configmaps \"doomed\" not found"),
        "{}",
        stderr(&gone)
    );
    let missing = ns.kubectl(&["delete", "configmap", "doomed"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("Error from server (NotFound): configmaps \"doomed\" not found"),
        "{}",
        stderr(&missing)
    );
    let ignored = ns.kubectl(&["delete", "configmap", "doomed", "--ignore-not-found"]);
    assert!(ignored.status.success(), "{}", stderr(&ignored));

    // Delete by label selector.
    for name in ["l1", "l2", "l3"] {
        ns.kubectl_ok(&["create", "configmap", name, "--from-literal=k=v"]);
    }
    ns.kubectl_ok(&["label", "configmap", "l1", "l2", "group=g"]);
    let out = ns.kubectl_ok(&["delete", "configmaps", "-l", "group=g"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("configmap \"l1\" deleted"), "{out}");
    assert!(lines[1].starts_with("configmap \"l2\" deleted"), "{out}");
    assert_eq!(
        ns.kubectl_ok(&["get", "configmaps", "-l", "group=g", "-o", "name"]),
        ""
    );
    assert_eq!(ns.jsonpath("configmap/l3", "{.metadata.name}"), "l3");
}

#[test]
fn delete_namespace_removes_it_and_its_contents() {
    let Some(srv) = shared_server() else { return };
    let name = testsupport::unique_name("e2e-delns");
    srv.kubectl_ok(&["create", "namespace", &name]);
    srv.kubectl_ok(&[
        "create",
        "configmap",
        "inside",
        "-n",
        &name,
        "--from-literal=k=v",
    ]);
    srv.kubectl_stdin_ok(
        &["apply", "-n", &name, "-f", "-"],
        &nginx_deployment("nginx:1.14.2"),
    );

    let started = Instant::now();
    let out = srv
        .kubectl_timeout(
            &["delete", "namespace", &name],
            None,
            Duration::from_secs(90),
        )
        .unwrap_or_else(|t| panic!("kubectl delete namespace hung: {t}"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("namespace \"{name}\" deleted")),
        "{}",
        stdout(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    let gone = srv.kubectl(&["get", "namespace", &name]);
    assert!(!gone.status.success());
    assert!(
        stderr(&gone).contains(&format!(
            "Error from server (NotFound): namespaces \"{name}\" not found"
        )),
        "{}",
        stderr(&gone)
    );
    // Its contents went with it.
    let http = srv.http().unwrap();
    let cm = http
        .get(&format!("/api/v1/namespaces/{name}/configmaps/inside"))
        .unwrap();
    assert_eq!(cm.status, 404, "{}", cm.text());
    let all = json(&srv.kubectl_ok(&["get", "deployments", "-A", "-o", "json"]));
    assert!(
        !all["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["metadata"]["namespace"] == name.as_str()),
        "deployments of the deleted namespace remain"
    );
}
