//! `kubectl apply` (client-side three-way merge), `apply --server-side` with conflicts and
//! `--force-conflicts`, and `kubectl diff`.

#![allow(clippy::unwrap_used)]

use e2e::{Namespace, json, nginx_deployment, stderr, stdout};
use testsupport::shared_server;

#[test]
fn apply_creates_then_reapply_updates_and_keeps_fields_set_by_others() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-apply");
    let v1 = nginx_deployment("nginx:1.14.2").replace(
        "    app: nginx\nspec:",
        "    app: nginx\n    tier: web\nspec:",
    );

    let out = ns.kubectl_stdin_ok(&["apply", "-f", "-"], &v1);
    assert_eq!(out.trim(), "deployment.apps/nginx-deployment created");
    let d = json(&ns.kubectl_ok(&["get", "deployment", "nginx-deployment", "-o", "json"]));
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["labels"]["app"], "nginx");
    assert_eq!(d["metadata"]["labels"]["tier"], "web");
    assert_eq!(d["metadata"]["generation"], 1);
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.14.2");
    assert_eq!(container["ports"][0]["containerPort"], 80);
    assert_eq!(container["ports"][0]["protocol"], "TCP", "defaulted");
    let last_applied =
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("apply records the last-applied configuration");
    let last_applied = json(last_applied);
    assert_eq!(last_applied["spec"]["replicas"], 3);

    // Applying the same manifest again changes nothing.
    let out = ns.kubectl_stdin_ok(&["apply", "-f", "-"], &v1);
    assert_eq!(out.trim(), "deployment.apps/nginx-deployment unchanged");

    // Others change the object.
    let out = ns.kubectl_ok(&["annotate", "deployment", "nginx-deployment", "owner=team-a"]);
    assert_eq!(out.trim(), "deployment.apps/nginx-deployment annotated");
    let out = ns.kubectl_ok(&["label", "deployment", "nginx-deployment", "env=prod"]);
    assert_eq!(out.trim(), "deployment.apps/nginx-deployment labeled");

    // A changed manifest: new image, the `tier` label dropped.
    let v2 = nginx_deployment("nginx:1.16.1");
    let out = ns.kubectl_stdin_ok(&["apply", "-f", "-"], &v2);
    assert_eq!(out.trim(), "deployment.apps/nginx-deployment configured");
    let d = json(&ns.kubectl_ok(&["get", "deployment", "nginx-deployment", "-o", "json"]));
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.16.1"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    assert_eq!(d["metadata"]["annotations"]["owner"], "team-a", "kept: {d}");
    assert_eq!(d["metadata"]["labels"]["env"], "prod", "kept: {d}");
    assert_eq!(d["metadata"]["labels"]["app"], "nginx");
    assert!(
        d["metadata"]["labels"].get("tier").is_none(),
        "removed from the manifest, so removed from the object: {d}"
    );
    // Deployments bump their generation on spec and on annotation changes (annotations are
    // copied to ReplicaSets): `annotate` made it 2, the re-apply (image and last-applied
    // annotation) 3; `label` did not count.
    assert_eq!(d["metadata"]["generation"], 3, "{d}");
    assert_eq!(d["spec"]["replicas"], 3);

    // The change is visible in the table too.
    let out = ns.kubectl_ok(&["get", "deployment", "nginx-deployment", "-o", "wide"]);
    let t = e2e::Table::parse(&out);
    assert_eq!(t.cell("nginx-deployment", "IMAGES"), "nginx:1.16.1");
    assert!(t.cell("nginx-deployment", "READY").ends_with("/3"), "{out}");
}

#[test]
fn server_side_apply_reports_conflicts_and_force_conflicts_takes_ownership() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-ssa");
    let manifest = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  a: \"{value}\"\n  b: \"keep\"\n"
        )
    };

    let out = ns.kubectl_stdin_ok(&["apply", "--server-side", "-f", "-"], &manifest("1"));
    assert_eq!(out.trim(), "configmap/shared serverside-applied");
    let cm = json(&ns.kubectl_ok(&[
        "get",
        "configmap",
        "shared",
        "-o",
        "json",
        "--show-managed-fields",
    ]));
    assert_eq!(cm["data"], serde_json::json!({"a": "1", "b": "keep"}));
    let entries = cm["metadata"]["managedFields"].as_array().unwrap();
    let kubectl = entries
        .iter()
        .find(|e| e["manager"] == "kubectl")
        .unwrap_or_else(|| panic!("no managedFields entry for kubectl: {cm}"));
    assert_eq!(kubectl["operation"], "Apply");
    assert_eq!(kubectl["apiVersion"], "v1");
    assert_eq!(kubectl["fieldsType"], "FieldsV1");
    assert!(
        kubectl["fieldsV1"]["f:data"]["f:a"].is_object(),
        "{kubectl}"
    );

    // Another manager applying a different value for the same field: 409 conflict.
    let other = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  a: \"{value}\"\n"
        )
    };
    let out = ns.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        &other("2"),
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Apply failed with 1 conflict: conflict with \"kubectl\": .data.a"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        ns.jsonpath("configmap/shared", "{.data.a}"),
        "1",
        "unchanged after a conflict"
    );

    // Applying the same value is not a conflict (shared ownership).
    let out = ns.kubectl_stdin_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=sharer",
            "-f",
            "-",
        ],
        &other("1"),
    );
    assert_eq!(out.trim(), "configmap/shared serverside-applied");

    // --force-conflicts takes the field over.
    let out = ns.kubectl_stdin_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &other("2"),
    );
    assert_eq!(out.trim(), "configmap/shared serverside-applied");
    let cm = json(&ns.kubectl_ok(&[
        "get",
        "configmap",
        "shared",
        "-o",
        "json",
        "--show-managed-fields",
    ]));
    assert_eq!(cm["data"], serde_json::json!({"a": "2", "b": "keep"}));
    let entries = cm["metadata"]["managedFields"].as_array().unwrap();
    let owner = entries.iter().find(|e| e["manager"] == "other").unwrap();
    assert!(owner["fieldsV1"]["f:data"]["f:a"].is_object(), "{cm}");
    let kubectl = entries.iter().find(|e| e["manager"] == "kubectl").unwrap();
    assert!(
        kubectl["fieldsV1"]["f:data"].get("f:a").is_none(),
        "kubectl lost .data.a: {cm}"
    );
    assert!(kubectl["fieldsV1"]["f:data"]["f:b"].is_object(), "{cm}");
}

#[test]
fn server_side_apply_conflicts_with_an_update_manager_and_creates_deployments() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-ssa2");
    ns.kubectl_ok(&["create", "configmap", "made", "--from-literal=a=1"]);
    let out = ns.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: made\ndata:\n  a: \"2\"\n",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "Apply failed with 1 conflict: conflict with \"kubectl-create\" using v1: .data.a"
        ),
        "{}",
        stderr(&out)
    );

    // Server-side apply creates objects too (helm 4 installs this way).
    let out = ns.kubectl_stdin_ok(
        &["apply", "--server-side", "-f", "-"],
        &nginx_deployment("nginx:1.14.2"),
    );
    assert_eq!(
        out.trim(),
        "deployment.apps/nginx-deployment serverside-applied"
    );
    assert_eq!(
        ns.jsonpath("deployment/nginx-deployment", "{.spec.replicas}"),
        "3"
    );
    // Re-applying with one field changed updates just that field.
    let out = ns.kubectl_stdin_ok(
        &["apply", "--server-side", "-f", "-"],
        &nginx_deployment("nginx:1.14.2").replace("replicas: 3", "replicas: 4"),
    );
    assert_eq!(
        out.trim(),
        "deployment.apps/nginx-deployment serverside-applied"
    );
    assert_eq!(
        ns.jsonpath("deployment/nginx-deployment", "{.spec.replicas}"),
        "4"
    );
    assert_eq!(
        ns.jsonpath("deployment/nginx-deployment", "{.metadata.generation}"),
        "2"
    );
}

#[test]
fn diff_exits_1_with_a_diff_and_0_when_identical() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-diff");
    let v1 = nginx_deployment("nginx:1.14.2");
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &v1);

    let same = ns.kubectl_stdin(&["diff", "-f", "-"], &v1);
    assert_eq!(
        same.status.code(),
        Some(0),
        "identical: stdout {} stderr {}",
        stdout(&same),
        stderr(&same)
    );
    assert_eq!(stdout(&same), "");

    let changed = ns.kubectl_stdin(&["diff", "-f", "-"], &nginx_deployment("nginx:1.16.1"));
    assert_eq!(
        changed.status.code(),
        Some(1),
        "different: stdout {} stderr {}",
        stdout(&changed),
        stderr(&changed)
    );
    let diff = stdout(&changed);
    assert!(
        diff.lines()
            .any(|l| l.starts_with('-') && l.trim_end().ends_with("image: nginx:1.14.2")),
        "{diff}"
    );
    assert!(
        diff.lines()
            .any(|l| l.starts_with('+') && l.trim_end().ends_with("image: nginx:1.16.1")),
        "{diff}"
    );
    // The generation line changes too (the dry-run bumped it), nothing unrelated does.
    assert!(
        !diff
            .lines()
            .any(|l| l.starts_with('+') && l.contains("replicas:")),
        "{diff}"
    );
    // diff is a dry run: nothing changed on the server.
    assert_eq!(
        ns.jsonpath(
            "deployment/nginx-deployment",
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.14.2"
    );
    assert_eq!(
        ns.jsonpath("deployment/nginx-deployment", "{.metadata.generation}"),
        "1"
    );

    // A new object diffs against nothing.
    let new = ns.kubectl_stdin(
        &["diff", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: brand-new\ndata:\n  k: v\n",
    );
    assert_eq!(new.status.code(), Some(1), "{}", stderr(&new));
    assert!(
        stdout(&new).contains("+  name: brand-new"),
        "{}",
        stdout(&new)
    );
    let gone = ns.kubectl(&["get", "configmap", "brand-new"]);
    assert!(!gone.status.success(), "diff must not create the object");
}
