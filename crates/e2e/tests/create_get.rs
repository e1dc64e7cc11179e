//! `kubectl create` (generators send protobuf bodies) and `kubectl get` of every kind in the
//! default columns and with `-o wide|yaml|json|jsonpath|custom-columns`, `--sort-by`, `-l`,
//! `--field-selector` and `-A`.

#![allow(clippy::unwrap_used)]

use e2e::{Namespace, Table, assert_header, is_age, json, stderr, yaml};
use testsupport::{shared_server, unique_name};

/// A pod that no scheduler picks up (so it stays `Pending` with no node).
fn pending_pod(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {labels}\nspec:\n  schedulerName: e2e-no-scheduler\n  containers:\n  - name: app\n    image: nginx:1.14.2\n"
    )
}

#[test]
fn create_namespace_deployment_configmap_and_secret() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-create");

    // `kubectl create deployment` sends a protobuf body.
    let out = ns.kubectl_ok(&["create", "deployment", "nginx", "--image=nginx"]);
    assert_eq!(out.trim(), "deployment.apps/nginx created");
    let d = json(&ns.kubectl_ok(&[
        "get",
        "deployment",
        "nginx",
        "-o",
        "json",
        "--show-managed-fields",
    ]));
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["metadata"]["name"], "nginx");
    assert_eq!(d["metadata"]["namespace"], ns.name.as_str());
    assert_eq!(d["metadata"]["labels"]["app"], "nginx");
    assert_eq!(d["metadata"]["generation"], 1);
    assert!(d["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(d["metadata"]["resourceVersion"].as_str().is_some());
    assert!(d["metadata"]["creationTimestamp"].as_str().is_some());
    assert_eq!(d["spec"]["replicas"], 1, "defaulted");
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "nginx");
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate", "defaulted");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10, "defaulted");
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600, "defaulted");
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "nginx");
    assert_eq!(container["image"], "nginx");
    assert_eq!(
        container["imagePullPolicy"], "Always",
        "defaulted for :latest"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["restartPolicy"], "Always",
        "defaulted"
    );
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl-create"), "{managers:?}");

    let out = ns.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=color=blue",
        "--from-literal=size=10",
    ]);
    assert_eq!(out.trim(), "configmap/settings created");
    let cm = json(&ns.kubectl_ok(&["get", "configmap", "settings", "-o", "json"]));
    assert_eq!(
        cm["data"],
        serde_json::json!({"color": "blue", "size": "10"})
    );

    let out = ns.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=user=admin",
        "--from-literal=password=s3cr3t",
    ]);
    assert_eq!(out.trim(), "secret/creds created");
    let secret = json(&ns.kubectl_ok(&["get", "secret", "creds", "-o", "json"]));
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(
        secret["data"],
        serde_json::json!({"user": "YWRtaW4=", "password": "czNjcjN0"})
    );

    // Creating it again is a conflict.
    let again = ns.kubectl(&["create", "configmap", "settings", "--from-literal=a=b"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again)
            .contains("error: failed to create configmap: configmaps \"settings\" already exists"),
        "{}",
        stderr(&again)
    );
    // Creating into a namespace that does not exist is NotFound.
    let missing = srv.kubectl(&[
        "create",
        "configmap",
        "x",
        "-n",
        "e2e-no-such-namespace",
        "--from-literal=a=b",
    ]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains(
            "error: failed to create configmap: namespaces \"e2e-no-such-namespace\" not found"
        ),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn get_every_kind_in_default_columns() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-kinds");
    let node_name = unique_name("e2e-node");

    ns.kubectl_ok(&["create", "deployment", "web", "--image=nginx:1.14.2"]);
    ns.kubectl_ok(&[
        "create",
        "configmap",
        "cm1",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    ns.kubectl_ok(&["create", "secret", "generic", "s1", "--from-literal=k=v"]);
    ns.kubectl_ok(&["create", "serviceaccount", "robot"]);
    ns.kubectl_ok(&["create", "service", "clusterip", "svc1", "--tcp=80:8080"]);
    ns.kubectl_ok(&["create", "quota", "q1", "--hard=pods=10"]);
    let fixtures = format!(
        r#"{pod}---
apiVersion: v1
kind: Endpoints
metadata:
  name: ep1
subsets:
- addresses:
  - ip: 10.1.2.3
  ports:
  - port: 8080
    protocol: TCP
---
apiVersion: v1
kind: LimitRange
metadata:
  name: lr1
spec:
  limits:
  - type: Container
    default:
      cpu: 500m
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: rs1
spec:
  replicas: 2
  selector:
    matchLabels:
      app: rs1
  template:
    metadata:
      labels:
        app: rs1
    spec:
      schedulerName: e2e-no-scheduler
      containers:
      - name: app
        image: nginx:1.14.2
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: es1
  labels:
    kubernetes.io/service-name: svc1
addressType: IPv4
ports:
- name: http
  port: 8080
  protocol: TCP
endpoints:
- addresses:
  - 10.1.2.3
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: lease1
spec:
  holderIdentity: e2e-holder
  leaseDurationSeconds: 15
---
apiVersion: v1
kind: Event
metadata:
  name: ev1
involvedObject:
  apiVersion: v1
  kind: Pod
  name: p1
  namespace: {ns}
reason: Testing
message: hello from e2e
type: Normal
count: 1
firstTimestamp: "2025-01-01T00:00:00Z"
lastTimestamp: "2025-01-01T00:00:00Z"
source:
  component: e2e
---
apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: ev2
regarding:
  apiVersion: v1
  kind: Pod
  name: p1
  namespace: {ns}
reason: Probing
note: new style event
type: Warning
action: Probe
eventTime: "2025-01-01T00:00:00.000000Z"
reportingController: e2e.example.com/tester
reportingInstance: tester-1
"#,
        pod = pending_pod("p1", "{app: p1}"),
        ns = ns.name
    );
    let out = ns.kubectl_stdin_ok(&["create", "-f", "-"], &fixtures);
    for line in [
        "pod/p1 created",
        "endpoints/ep1 created",
        "limitrange/lr1 created",
        "replicaset.apps/rs1 created",
        "endpointslice.discovery.k8s.io/es1 created",
        "lease.coordination.k8s.io/lease1 created",
        "event/ev1 created",
        "event.events.k8s.io/ev2 created",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing {line:?} in:\n{out}"
        );
    }
    let node = format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {node_name}\n  labels:\n    node-role.kubernetes.io/worker: \"\"\n"
    );
    assert_eq!(
        srv.kubectl_stdin_ok(&["create", "-f", "-"], &node).trim(),
        format!("node/{node_name} created")
    );

    // pods
    let t = assert_header(
        &ns.kubectl_ok(&["get", "pods"]),
        &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
    );
    let p1 = t.row("p1");
    assert_eq!(&p1[1..4], ["0/1", "Pending", "0"]);
    assert!(is_age(&p1[4]));

    // services
    let out = ns.kubectl_ok(&["get", "services"]);
    let t = assert_header(
        &out,
        &[
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
    );
    assert_eq!(t.cell("svc1", "TYPE"), "ClusterIP");
    let ip = t.cell("svc1", "CLUSTER-IP");
    assert!(
        ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "cluster IP allocated: {out}"
    );
    assert_eq!(t.cell("svc1", "EXTERNAL-IP"), "<none>");
    assert_eq!(t.cell("svc1", "PORT(S)"), "80/TCP");

    // endpoints
    let t = assert_header(
        &ns.kubectl_ok(&["get", "endpoints", "ep1"]),
        &["NAME", "ENDPOINTS", "AGE"],
    );
    assert_eq!(t.cell("ep1", "ENDPOINTS"), "10.1.2.3:8080");

    // configmaps, secrets, serviceaccounts
    let t = assert_header(
        &ns.kubectl_ok(&["get", "configmaps", "cm1"]),
        &["NAME", "DATA", "AGE"],
    );
    assert_eq!(t.cell("cm1", "DATA"), "2");
    let t = assert_header(
        &ns.kubectl_ok(&["get", "secrets", "s1"]),
        &["NAME", "TYPE", "DATA", "AGE"],
    );
    assert_eq!(t.row("s1")[1..3], ["Opaque", "1"]);
    let t = assert_header(
        &ns.kubectl_ok(&["get", "serviceaccounts", "robot"]),
        &["NAME", "SECRETS", "AGE"],
    );
    assert_eq!(t.cell("robot", "SECRETS"), "0");

    // nodes (cluster-scoped): no conditions yet -> Unknown; role from the label.
    let t = assert_header(
        &srv.kubectl_ok(&["get", "nodes", &node_name]),
        &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
    );
    assert_eq!(t.row(&node_name)[1..3], ["Unknown", "worker"]);

    // events (core and events.k8s.io)
    let out = ns.kubectl_ok(&["get", "events"]);
    let t = assert_header(&out, &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    let ev1 = t.row_where("REASON", "Testing");
    assert_eq!(ev1[1..], ["Normal", "Testing", "pod/p1", "hello from e2e"]);
    let out = ns.kubectl_ok(&["get", "events.events.k8s.io"]);
    let t = assert_header(&out, &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    let ev2 = t.row_where("REASON", "Probing");
    assert_eq!(
        ev2[1..],
        ["Warning", "Probing", "pod/p1", "new style event"]
    );

    // resourcequotas, limitranges
    let t = assert_header(
        &ns.kubectl_ok(&["get", "resourcequotas"]),
        &["NAME", "REQUEST", "LIMIT", "AGE"],
    );
    assert!(is_age(t.cell("q1", "AGE")));
    let t = assert_header(
        &ns.kubectl_ok(&["get", "limitranges"]),
        &["NAME", "CREATED AT"],
    );
    let created = &t.row("lr1")[1];
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "RFC 3339 creation time: {created}"
    );

    // deployments, replicasets
    let out = ns.kubectl_ok(&["get", "deployments"]);
    let t = assert_header(&out, &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    let web = t.row("web");
    assert!(web[1].ends_with("/1"), "READY of 1 desired: {out}");
    assert!(web[2].parse::<u32>().is_ok() && web[3].parse::<u32>().is_ok());
    let t = assert_header(
        &ns.kubectl_ok(&["get", "replicasets", "rs1"]),
        &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
    );
    assert_eq!(t.cell("rs1", "DESIRED"), "2");

    // endpointslices, leases
    let t = assert_header(
        &ns.kubectl_ok(&["get", "endpointslices"]),
        &["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
    );
    assert_eq!(t.row("es1")[1..4], ["IPv4", "8080", "10.1.2.3"]);
    let t = assert_header(
        &ns.kubectl_ok(&["get", "leases"]),
        &["NAME", "HOLDER", "AGE"],
    );
    assert_eq!(t.cell("lease1", "HOLDER"), "e2e-holder");

    // Short names resolve to the same resources.
    let by_short = ns.kubectl_ok(&["get", "cm", "cm1", "-o", "name"]);
    assert_eq!(by_short.trim(), "configmap/cm1");
    let by_short = ns.kubectl_ok(&["get", "deploy,rs", "-o", "name"]);
    let mut names: Vec<&str> = by_short.lines().collect();
    names.sort_unstable();
    assert!(names.contains(&"deployment.apps/web"), "{by_short}");
    assert!(names.contains(&"replicaset.apps/rs1"), "{by_short}");

    srv.kubectl_ok(&["delete", "node", &node_name]);
}

#[test]
fn get_output_formats() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-output");
    // No replicas: the only pod here is p1.
    ns.kubectl_ok(&[
        "create",
        "deployment",
        "nginx",
        "--image=nginx:1.14.2",
        "--replicas=0",
    ]);
    ns.kubectl_ok(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=greeting=hello world",
    ]);
    ns.kubectl_stdin_ok(
        &["create", "-f", "-"],
        &pending_pod("p1", "{app: p1, tier: web}"),
    );

    // -o wide
    let out = ns.kubectl_ok(&["get", "pods", "-o", "wide"]);
    let t = assert_header(
        &out,
        &[
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES",
        ],
    );
    let p1 = t.row("p1");
    assert_eq!(p1[1..4], ["0/1", "Pending", "0"]);
    assert_eq!(p1[5..], ["<none>", "<none>", "<none>", "<none>"]);
    let out = ns.kubectl_ok(&["get", "deployments", "-o", "wide"]);
    let t = assert_header(
        &out,
        &[
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
        ],
    );
    assert_eq!(t.row("nginx")[5..], ["nginx", "nginx:1.14.2", "app=nginx"]);

    // -o yaml and -o json of one object and of a list
    let y = yaml(&ns.kubectl_ok(&["get", "configmap", "cfg", "-o", "yaml"]));
    assert_eq!(y["apiVersion"], "v1");
    assert_eq!(y["kind"], "ConfigMap");
    assert_eq!(y["metadata"]["name"], "cfg");
    assert_eq!(y["metadata"]["namespace"], ns.name.as_str());
    assert_eq!(y["data"]["greeting"], "hello world");
    let list = json(&ns.kubectl_ok(&["get", "pods", "-o", "json"]));
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["kind"], "Pod");
    assert_eq!(items[0]["metadata"]["name"], "p1");
    assert_eq!(items[0]["status"]["phase"], "Pending");

    // -o jsonpath
    assert_eq!(
        ns.jsonpath("configmap/cfg", "{.data.greeting}"),
        "hello world"
    );
    assert_eq!(
        ns.jsonpath(
            "deployment/nginx",
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.14.2"
    );
    assert_eq!(
        ns.kubectl_ok(&[
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.tier}{\"\\n\"}{end}"
        ]),
        "p1=web\n"
    );

    // -o custom-columns
    let out = ns.kubectl_ok(&[
        "get",
        "pods",
        "-o",
        "custom-columns=NAME:.metadata.name,PHASE:.status.phase,TIER:.metadata.labels.tier,IMAGE:.spec.containers[0].image",
    ]);
    let t = assert_header(&out, &["NAME", "PHASE", "TIER", "IMAGE"]);
    assert_eq!(t.rows, [["p1", "Pending", "web", "nginx:1.14.2"]]);

    // -o name
    assert_eq!(ns.kubectl_ok(&["get", "pods", "-o", "name"]), "pod/p1\n");
    assert_eq!(
        ns.kubectl_ok(&["get", "configmap/cfg", "deployment/nginx", "-o", "name"]),
        "configmap/cfg\ndeployment.apps/nginx\n"
    );
}

#[test]
fn get_with_sort_by_label_and_field_selectors() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-select");
    // Names sort a, b, c; ranks sort c, a, b.
    for (name, rank, tier) in [
        ("a-cm", "2", "web"),
        ("b-cm", "3", "db"),
        ("c-cm", "1", "web"),
    ] {
        ns.kubectl_ok(&[
            "create",
            "configmap",
            name,
            &format!("--from-literal=rank={rank}"),
        ]);
        ns.kubectl_ok(&[
            "label",
            "configmap",
            name,
            "set=sorting",
            &format!("tier={tier}"),
            &format!("rank={rank}"),
        ]);
    }

    let out = ns.kubectl_ok(&["get", "configmaps", "-l", "set=sorting"]);
    let t = assert_header(&out, &["NAME", "DATA", "AGE"]);
    assert_eq!(
        t.names(),
        ["a-cm", "b-cm", "c-cm"],
        "lists are sorted by name"
    );

    let out = ns.kubectl_ok(&[
        "get",
        "configmaps",
        "-l",
        "set=sorting",
        "--sort-by=.metadata.labels.rank",
    ]);
    assert_eq!(
        Table::parse(&out).names(),
        ["c-cm", "a-cm", "b-cm"],
        "{out}"
    );
    let out = ns.kubectl_ok(&[
        "get",
        "configmaps",
        "-l",
        "set=sorting",
        "--sort-by=.data.rank",
        "-o",
        "name",
    ]);
    assert_eq!(out, "configmap/c-cm\nconfigmap/a-cm\nconfigmap/b-cm\n");

    // Label selectors: equality, inequality, set-based, existence.
    let names = |selector: &str| {
        let out = ns.kubectl_ok(&["get", "configmaps", "-l", selector, "-o", "name"]);
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(names("tier=web"), ["configmap/a-cm", "configmap/c-cm"]);
    assert_eq!(names("set=sorting,tier!=web"), ["configmap/b-cm"]);
    assert_eq!(names("tier in (db,cache)"), ["configmap/b-cm"]);
    assert_eq!(names("set=sorting,rank notin (1,2)"), ["configmap/b-cm"]);
    assert_eq!(names("tier,!missing").len(), 3);
    let none = ns.kubectl(&["get", "configmaps", "-l", "tier=nope"]);
    assert!(none.status.success());
    assert_eq!(e2e::stdout(&none), "");
    assert_eq!(
        stderr(&none).trim(),
        format!("No resources found in {} namespace.", ns.name)
    );

    // Field selectors.
    let out = ns.kubectl_ok(&[
        "get",
        "configmaps",
        "--field-selector",
        "metadata.name=b-cm",
        "-o",
        "name",
    ]);
    assert_eq!(out, "configmap/b-cm\n");
    let out = ns.kubectl_ok(&[
        "get",
        "configmaps",
        "-l",
        "set=sorting",
        "--field-selector",
        "metadata.name!=b-cm",
        "-o",
        "name",
    ]);
    assert_eq!(out, "configmap/a-cm\nconfigmap/c-cm\n");
    ns.kubectl_stdin_ok(
        &["create", "-f", "-"],
        &pending_pod("pending-pod", "{app: x}"),
    );
    let out = ns.kubectl_ok(&[
        "get",
        "pods",
        "--field-selector",
        "status.phase=Pending,spec.nodeName=",
        "-o",
        "name",
    ]);
    assert_eq!(out, "pod/pending-pod\n");
    let out = ns.kubectl_ok(&[
        "get",
        "pods",
        "--field-selector",
        "status.phase=Running",
        "-o",
        "name",
    ]);
    assert_eq!(out, "");
    let bad = ns.kubectl(&["get", "configmaps", "--field-selector", "data.rank=1"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains(
            "\"data.rank\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        ),
        "{}",
        stderr(&bad)
    );
    // Pods have their own field labels, and their own message for unknown ones.
    let bad = ns.kubectl(&["get", "pods", "--field-selector", "spec.bogus=1"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("field label not supported: spec.bogus"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn get_all_namespaces() {
    let Some(srv) = shared_server() else { return };
    let ns1 = Namespace::create(srv, "e2e-all-a");
    let ns2 = Namespace::create(srv, "e2e-all-b");
    let marker = format!("marker={}", unique_name("m"));
    for (ns, name) in [(&ns1, "one"), (&ns2, "two")] {
        ns.kubectl_ok(&["create", "configmap", name, "--from-literal=k=v"]);
        ns.kubectl_ok(&["label", "configmap", name, &marker]);
    }
    let out = srv.kubectl_ok(&["get", "configmaps", "-A", "-l", &marker]);
    let t = assert_header(&out, &["NAMESPACE", "NAME", "DATA", "AGE"]);
    assert_eq!(t.rows.len(), 2, "{out}");
    assert_eq!(t.row("one")[0], ns1.name);
    assert_eq!(t.row("two")[0], ns2.name);
    assert_eq!(t.cell("one", "DATA"), "1");

    let out = srv.kubectl_ok(&[
        "get",
        "configmaps",
        "--all-namespaces",
        "-l",
        &marker,
        "-o",
        "custom-columns=NS:.metadata.namespace,NAME:.metadata.name",
        "--no-headers",
    ]);
    let mut lines: Vec<Vec<String>> = out.lines().map(e2e::columns).collect();
    lines.sort();
    let mut expected = vec![
        vec![ns1.name.clone(), "one".to_string()],
        vec![ns2.name.clone(), "two".to_string()],
    ];
    expected.sort();
    assert_eq!(lines, expected);

    // Namespaces are listed with -A too (cluster-scoped: no NAMESPACE column).
    let out = srv.kubectl_ok(&["get", "namespaces", "-A"]);
    let t = assert_header(&out, &["NAME", "STATUS", "AGE"]);
    assert_eq!(t.cell(&ns1.name, "STATUS"), "Active");
}
