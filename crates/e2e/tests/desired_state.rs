//! Desired state with the real kubectl: the controllers, the scheduler and simulated nodes
//! (`r8s server --sim-nodes N`) keep pods matching Deployments: the seed demo, scaling,
//! rolling updates and rollbacks, progress deadlines, cascading deletion, node loss.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use e2e::{Namespace, eventually, json, nginx_deployment, stderr};
use serde_json::Value;
use testsupport::{TestServer, new_server_with_args};

/// A pod as the tests see it.
#[derive(Debug, Clone)]
struct PodView {
    name: String,
    phase: String,
    ready: bool,
    node: String,
    terminating: bool,
    image: String,
}

fn pod_view(p: &Value) -> PodView {
    let ready = p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    PodView {
        name: p["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        phase: p["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        ready,
        node: p["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        terminating: p["metadata"]["deletionTimestamp"].is_string(),
        image: p["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

fn pods(ns: &Namespace, selector: &str) -> Vec<PodView> {
    let out = ns.kubectl_ok(&["get", "pods", "-l", selector, "-o", "json"]);
    json(&out)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(pod_view)
        .collect()
}

/// Waits until exactly `n` pods matching `selector` are Running and Ready and no other pod
/// (terminating aside) matches; returns them.
fn wait_running(ns: &Namespace, selector: &str, n: usize, secs: u64) -> Vec<PodView> {
    eventually(secs, &format!("{n} running pods {selector}"), || {
        let all = pods(ns, selector);
        let live: Vec<PodView> = all.iter().filter(|p| !p.terminating).cloned().collect();
        if live.len() == n && live.iter().all(|p| p.phase == "Running" && p.ready) {
            Ok(live)
        } else {
            Err(format!("{all:?}"))
        }
    })
}

fn server(nodes: usize, extra: &[&str]) -> Option<TestServer> {
    let n = nodes.to_string();
    let mut args = vec!["--sim-nodes", n.as_str()];
    args.extend_from_slice(extra);
    new_server_with_args(&args)
}

/// `nginx-<pod-template-hash>-<5 chars>`.
fn is_generated_name(name: &str, prefix: &str) -> bool {
    let Some(rest) = name.strip_prefix(&format!("{prefix}-")) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('-').collect();
    parts.len() == 2
        && (6..=10).contains(&parts[0].len())
        && parts[1].len() == 5
        && rest
            .chars()
            .all(|c| c == '-' || c.is_ascii_lowercase() || c.is_ascii_digit())
}

#[test]
fn seed_demo_create_deployment_then_delete_its_pod() {
    let Some(srv) = server(1, &[]) else { return };
    let ns = Namespace::create(&srv, "e2e-seed");
    ns.kubectl_ok(&["create", "deployment", "nginx", "--image=nginx"]);
    let first = wait_running(&ns, "app=nginx", 1, 60).remove(0);
    assert!(
        is_generated_name(&first.name, "nginx"),
        "pod name {} is nginx-<hash>-<5 chars>",
        first.name
    );
    assert_eq!(first.node, "sim-0000");

    let watch = srv.kubectl_spawn(&["get", "pods", "-w", "-n", &ns.name]);
    // The initial listing shows the running pod.
    let (line, _) = watch.wait_for_line(Duration::from_secs(30), |l| l.starts_with(&first.name));
    assert!(line.is_some(), "the watch lists {}", first.name);
    ns.kubectl_ok(&["delete", "pod", &first.name, "--wait=false"]);

    let second = eventually(60, "a replacement pod", || {
        let live: Vec<PodView> = pods(&ns, "app=nginx")
            .into_iter()
            .filter(|p| p.name != first.name && p.phase == "Running" && p.ready)
            .collect();
        live.first().cloned().ok_or_else(|| "none yet".to_string())
    });
    assert_ne!(second.name, first.name);
    assert!(is_generated_name(&second.name, "nginx"), "{}", second.name);

    // The watch shows the old pod Terminating and the new one Pending, then Running.
    let mut seen: Vec<String> = Vec::new();
    let mut saw = |what: &dyn Fn(&[String]) -> bool| -> bool {
        if what(&seen) {
            return true;
        }
        let (line, lines) = watch.wait_for_line(Duration::from_secs(30), |_| true);
        seen.extend(lines);
        line.is_some() && what(&seen)
    };
    let status_of = |l: &str, name: &str| -> Option<String> {
        let cols = e2e::columns(l);
        (cols.first().map(String::as_str) == Some(name)).then(|| cols[2].clone())
    };
    for _ in 0..20 {
        let done = saw(&|lines: &[String]| {
            let old: Vec<String> = lines
                .iter()
                .filter_map(|l| status_of(l, &first.name))
                .collect();
            let new: Vec<String> = lines
                .iter()
                .filter_map(|l| status_of(l, &second.name))
                .collect();
            let pending = new.iter().position(|s| s == "Pending");
            let running = new.iter().rposition(|s| s == "Running");
            old.iter().any(|s| s == "Terminating")
                && pending.is_some()
                && running.is_some_and(|r| pending.is_some_and(|p| p < r))
        });
        if done {
            watch.stop();
            return;
        }
    }
    panic!("watch did not show Terminating/Pending/Running: {seen:#?}");
}

/// Counts from a pod watch: the most pods alive at once and the fewest ready at once.
struct RolloutWatch {
    max_live: usize,
    min_ready: usize,
}

/// Watches pods (as JSON watch events) until `stop` says so, tracking live and ready counts
/// after every event once `armed` pods are ready.
fn track_rollout(
    srv: &TestServer,
    ns: &Namespace,
    selector: &str,
    act: impl FnOnce(),
    done: impl Fn(&HashMap<String, PodView>) -> bool,
) -> RolloutWatch {
    let watch = srv.kubectl_spawn(&[
        "get",
        "pods",
        "-l",
        selector,
        "-w",
        "--output-watch-events",
        "-o",
        "json",
        "-n",
        &ns.name,
    ]);
    let mut state: HashMap<String, PodView> = HashMap::new();
    let mut buf = String::new();
    let mut depth = 0i32;
    let mut acted = false;
    let mut act = Some(act);
    let mut result = RolloutWatch {
        max_live: 0,
        min_ready: usize::MAX,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        let Some(line) = watch.next_line(Duration::from_secs(2)) else {
            if !acted && !state.is_empty() {
                // The initial events are in: start the change.
                (act.take().unwrap())();
                acted = true;
            } else if acted && done(&state) {
                break;
            }
            continue;
        };
        depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
        buf.push_str(&line);
        buf.push('\n');
        if depth > 0 {
            continue;
        }
        let ev: Value = serde_json::from_str(&buf).unwrap();
        buf.clear();
        let pod = pod_view(&ev["object"]);
        if ev["type"] == "DELETED" {
            state.remove(&pod.name);
        } else {
            state.insert(pod.name.clone(), pod);
        }
        if acted {
            let live = state.values().filter(|p| !p.terminating).count();
            let ready = state.values().filter(|p| !p.terminating && p.ready).count();
            result.max_live = result.max_live.max(live);
            result.min_ready = result.min_ready.min(ready);
            if done(&state) {
                break;
            }
        }
    }
    watch.stop();
    assert!(acted, "the watch never listed the pods");
    assert!(done(&state), "the rollout did not finish: {state:#?}");
    result
}

#[test]
fn deployment_scale_rolling_update_undo_and_status() {
    let Some(srv) = server(3, &[]) else { return };
    let ns = Namespace::create(&srv, "e2e-rollout");
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &nginx_deployment("nginx:1.14.2"));
    wait_running(&ns, "app=nginx", 3, 60);
    let out = ns.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/nginx-deployment",
        "--timeout=60s",
    ]);
    assert!(out.contains("successfully rolled out"), "{out}");

    ns.kubectl_ok(&["scale", "deployment/nginx-deployment", "--replicas=10"]);
    let ten = wait_running(&ns, "app=nginx", 10, 60);
    // Spread over the three nodes by the scheduler's scoring.
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in &ten {
        *per_node.entry(p.node.clone()).or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "pods on every node: {per_node:?}");
    ns.kubectl_ok(&["scale", "deployment/nginx-deployment", "--replicas=2"]);
    wait_running(&ns, "app=nginx", 2, 60);
    ns.kubectl_ok(&["scale", "deployment/nginx-deployment", "--replicas=3"]);
    wait_running(&ns, "app=nginx", 3, 60);

    // maxSurge 25% of 3 → 1, maxUnavailable 25% of 3 → 0: at most 4 pods, never fewer than 3
    // ready.
    let counts = track_rollout(
        &srv,
        &ns,
        "app=nginx",
        || {
            ns.kubectl_ok(&[
                "set",
                "image",
                "deployment/nginx-deployment",
                "nginx=nginx:1.16.1",
            ]);
        },
        |state| {
            let live: Vec<&PodView> = state.values().filter(|p| !p.terminating).collect();
            live.len() == 3 && live.iter().all(|p| p.ready && p.image == "nginx:1.16.1")
        },
    );
    assert!(counts.max_live <= 4, "max pods alive {}", counts.max_live);
    assert!(counts.min_ready >= 3, "min ready {}", counts.min_ready);
    let out = ns.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/nginx-deployment",
        "--timeout=60s",
    ]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let history = ns.kubectl_ok(&["rollout", "history", "deployment/nginx-deployment"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    let rs = json(&ns.kubectl_ok(&["get", "rs", "-l", "app=nginx", "-o", "json"]));
    assert_eq!(
        rs["items"].as_array().unwrap().len(),
        2,
        "old and new ReplicaSets"
    );

    ns.kubectl_ok(&["rollout", "undo", "deployment/nginx-deployment"]);
    let image = ns.jsonpath(
        "deployment/nginx-deployment",
        "{.spec.template.spec.containers[0].image}",
    );
    assert_eq!(image, "nginx:1.14.2");
    ns.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/nginx-deployment",
        "--timeout=60s",
    ]);
    let back = wait_running(&ns, "app=nginx", 3, 60);
    assert!(back.iter().all(|p| p.image == "nginx:1.14.2"), "{back:?}");
    // The undo reused the first ReplicaSet: still two, the first one now at revision 3.
    let rs = json(&ns.kubectl_ok(&["get", "rs", "-l", "app=nginx", "-o", "json"]));
    let items = rs["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let active: Vec<&Value> = items
        .iter()
        .filter(|r| r["spec"]["replicas"] == 3)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(
        active[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
}

#[test]
fn deployment_that_never_becomes_ready_exceeds_its_progress_deadline() {
    let Some(srv) = server(1, &[]) else { return };
    let ns = Namespace::create(&srv, "e2e-deadline");
    let manifest = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
spec:
  replicas: 1
  progressDeadlineSeconds: 3
  selector:
    matchLabels: {app: stuck}
  template:
    metadata:
      labels: {app: stuck}
    spec:
      containers:
      - name: app
        image: nginx
        readinessProbe:
          exec:
            command: [\"false\"]
";
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], manifest);
    let out = srv.kubectl_timeout(
        &[
            "rollout",
            "status",
            "deployment/stuck",
            "--timeout=60s",
            "-n",
            &ns.name,
        ],
        None,
        Duration::from_secs(90),
    );
    let out = out.unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("exceeded its progress deadline"),
        "{}",
        stderr(&out)
    );
    let reason = ns.jsonpath(
        "deployment/stuck",
        "{.status.conditions[?(@.type==\"Progressing\")].reason}",
    );
    assert_eq!(reason, "ProgressDeadlineExceeded");
    let available = ns.jsonpath(
        "deployment/stuck",
        "{.status.conditions[?(@.type==\"Available\")].status}",
    );
    assert_eq!(available, "False");
}

fn count(ns: &Namespace, what: &str, selector: &str) -> usize {
    let out = ns.kubectl_ok(&["get", what, "-l", selector, "-o", "json"]);
    json(&out)["items"].as_array().unwrap().len()
}

#[test]
fn cascading_deletion_orphaning_and_namespace_deletion() {
    let Some(srv) = server(2, &[]) else { return };
    let ns = Namespace::create(&srv, "e2e-cascade");
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &nginx_deployment("nginx:1.14.2"));
    wait_running(&ns, "app=nginx", 3, 60);
    // Background (the default): the ReplicaSet and the pods go.
    ns.kubectl_ok(&["delete", "deployment", "nginx-deployment"]);
    eventually(60, "ReplicaSets and pods deleted", || {
        let (rs, po) = (
            count(&ns, "rs", "app=nginx"),
            count(&ns, "pods", "app=nginx"),
        );
        if rs == 0 && po == 0 {
            Ok(())
        } else {
            Err(format!("{rs} rs, {po} pods"))
        }
    });

    // Orphan: they stay, without owner.
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &nginx_deployment("nginx:1.14.2"));
    wait_running(&ns, "app=nginx", 3, 60);
    ns.kubectl_ok(&[
        "delete",
        "deployment",
        "nginx-deployment",
        "--cascade=orphan",
    ]);
    let out = ns.kubectl(&["get", "deployment", "nginx-deployment"]);
    assert!(!out.status.success());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&ns, "rs", "app=nginx"), 1);
    let live = wait_running(&ns, "app=nginx", 3, 10);
    assert_eq!(live.len(), 3);
    let rs = json(&ns.kubectl_ok(&["get", "rs", "-l", "app=nginx", "-o", "json"]));
    assert!(
        rs["items"][0]["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "the orphaned ReplicaSet has no owner: {}",
        rs["items"][0]["metadata"]
    );

    // Foreground: the deployment disappears after its dependents.
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &nginx_deployment("nginx:1.14.2"));
    eventually(60, "adoption of the orphaned ReplicaSet", || {
        let rs = json(&ns.kubectl_ok(&["get", "rs", "-l", "app=nginx", "-o", "json"]));
        let owned = rs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["metadata"]["ownerReferences"][0]["kind"] == "Deployment");
        if owned { Ok(()) } else { Err(rs.to_string()) }
    });
    ns.kubectl_ok(&[
        "delete",
        "deployment",
        "nginx-deployment",
        "--cascade=foreground",
    ]);
    eventually(60, "foreground deletion", || {
        let d = ns.kubectl(&["get", "deployment", "nginx-deployment"]);
        let (rs, po) = (
            count(&ns, "rs", "app=nginx"),
            count(&ns, "pods", "app=nginx"),
        );
        if !d.status.success() && rs == 0 && po == 0 {
            Ok(())
        } else {
            Err(format!(
                "deployment present: {}, {rs} rs, {po} pods",
                d.status.success()
            ))
        }
    });

    // Deleting the namespace removes everything in it, then the namespace.
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &nginx_deployment("nginx:1.14.2"));
    ns.kubectl_ok(&["create", "configmap", "cfg", "--from-literal=a=b"]);
    wait_running(&ns, "app=nginx", 3, 60);
    srv.kubectl_ok(&["delete", "namespace", &ns.name, "--timeout=60s"]);
    let out = srv.kubectl(&["get", "namespace", &ns.name]);
    assert!(!out.status.success(), "namespace gone");
    let left = srv.kubectl_ok(&["get", "pods,rs,deployments,configmaps", "-A", "-o", "json"]);
    let left = json(&left);
    assert!(
        left["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["metadata"]["namespace"] != ns.name.as_str()),
        "nothing left in the namespace"
    );
}

#[test]
fn lost_node_pods_are_evicted_and_replaced() {
    let Some(srv) = server(
        3,
        &[
            "--node-monitor-period",
            "500ms",
            "--node-monitor-grace-period",
            "4s",
            "--default-unreachable-toleration-seconds",
            "2",
            "--default-not-ready-toleration-seconds",
            "2",
            "--lease-renew-interval",
            "1s",
        ],
    ) else {
        return;
    };
    let ns = Namespace::create(&srv, "e2e-nodeloss");
    ns.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=6",
    ]);
    let before = wait_running(&ns, "app=web", 6, 60);
    let victim = before[0].node.clone();
    let on_victim: Vec<String> = before
        .iter()
        .filter(|p| p.node == victim)
        .map(|p| p.name.clone())
        .collect();
    srv.kubectl_ok(&["annotate", "node", &victim, "sim.r8s.io/heartbeat=stopped"]);
    eventually(30, "the node NotReady", || {
        let out = srv.kubectl_ok(&["get", "node", &victim]);
        if out.contains("NotReady") {
            Ok(())
        } else {
            Err(out)
        }
    });
    let taints = srv.kubectl_ok(&[
        "get",
        "node",
        &victim,
        "-o",
        "jsonpath={.spec.taints[*].key}",
    ]);
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
    // The pods there are evicted after their 2 s toleration and replaced elsewhere.
    let after = eventually(60, "replacements on other nodes", || {
        let all = pods(&ns, "app=web");
        let live: Vec<PodView> = all
            .iter()
            .filter(|p| !p.terminating && p.phase == "Running" && p.ready)
            .cloned()
            .collect();
        if live.len() == 6 && live.iter().all(|p| p.node != victim) {
            Ok(all)
        } else {
            Err(format!("{all:?}"))
        }
    });
    for name in &on_victim {
        let p = after.iter().find(|p| &p.name == name);
        assert!(
            p.is_none_or(|p| p.terminating),
            "pod {name} on the lost node was evicted"
        );
    }
    let out = srv.kubectl_ok(&["describe", "pod", &on_victim[0], "-n", &ns.name]);
    assert!(out.contains("TaintManagerEviction"), "{out}");
}

#[test]
fn placement_by_taints_affinity_anti_affinity_spread_and_resources() {
    let Some(srv) = server(3, &["--node-cpu", "4"]) else {
        return;
    };
    let ns = Namespace::create(&srv, "e2e-placement");
    srv.kubectl_ok(&["taint", "node", "sim-0000", "dedicated=gpu:NoSchedule"]);
    srv.kubectl_ok(&["label", "node", "sim-0001", "disk=ssd"]);

    let pod = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\nspec:\n  containers:\n  - name: app\n    image: nginx\n{extra}"
        )
    };
    let node_of = |name: &str| -> String {
        eventually(30, &format!("{name} scheduled"), || {
            let n = ns.jsonpath(&format!("pod/{name}"), "{.spec.nodeName}");
            if n.is_empty() {
                Err("unscheduled".into())
            } else {
                Ok(n)
            }
        })
    };

    // Node affinity (required).
    ns.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &pod(
            "affine",
            "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions:\n          - {key: disk, operator: In, values: [ssd]}\n",
        ),
    );
    assert_eq!(node_of("affine"), "sim-0001");
    // nodeSelector onto the tainted node: only with a toleration.
    ns.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &pod(
            "tolerant",
            "  nodeSelector: {kubernetes.io/hostname: sim-0000}\n  tolerations:\n  - {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}\n",
        ),
    );
    assert_eq!(node_of("tolerant"), "sim-0000");
    // Anti-affinity: 3 replicas on 3 distinct untainted-or-tolerated nodes is impossible (one
    // node is tainted), so exactly 2 run and the third explains itself.
    let anti = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: anti}
spec:
  replicas: 3
  selector: {matchLabels: {app: anti}}
  template:
    metadata: {labels: {app: anti}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: anti}}
            topologyKey: kubernetes.io/hostname
      containers:
      - {name: app, image: nginx}
";
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], anti);
    let placed = eventually(30, "two anti-affine pods placed", || {
        let all = pods(&ns, "app=anti");
        let nodes: Vec<String> = all
            .iter()
            .filter(|p| !p.node.is_empty())
            .map(|p| p.node.clone())
            .collect();
        if all.len() == 3 && nodes.len() == 2 {
            Ok(nodes)
        } else {
            Err(format!("{all:?}"))
        }
    });
    assert_ne!(placed[0], placed[1]);
    assert!(!placed.contains(&"sim-0000".to_string()));
    let pending = pods(&ns, "app=anti")
        .into_iter()
        .find(|p| p.node.is_empty())
        .unwrap();
    let msg = eventually(30, "FailedScheduling event", || {
        let out = ns.kubectl_ok(&["describe", "pod", &pending.name]);
        if out.contains("FailedScheduling") {
            Ok(out)
        } else {
            Err(out)
        }
    });
    assert!(
        msg.contains("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match pod anti-affinity rules."),
        "{msg}"
    );

    // Topology spread: 4 pods with maxSkew 1 over the two schedulable nodes → 2 and 2 (the
    // tainted node is no domain, as nodeTaintsPolicy is Honor).
    let spread = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 4
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        nodeTaintsPolicy: Honor
        labelSelector: {matchLabels: {app: spread}}
      containers:
      - {name: app, image: nginx}
";
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], spread);
    let spread_pods = wait_running(&ns, "app=spread", 4, 60);
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in &spread_pods {
        *per_node.entry(p.node.clone()).or_default() += 1;
    }
    assert_eq!(
        per_node.values().copied().collect::<Vec<_>>(),
        vec![2, 2],
        "{per_node:?}"
    );

    // Resource fit: 3 cpu fits on a 4-cpu node once; the second such pod cannot go where the
    // first is, nor onto the tainted node.
    let big = |name: &str| pod(name, "    resources:\n      requests: {cpu: \"3\"}\n");
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &big("big-1"));
    let n1 = node_of("big-1");
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &big("big-2"));
    let n2 = node_of("big-2");
    assert_ne!(n1, n2);
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &big("big-3"));
    let msg = eventually(30, "FailedScheduling for big-3", || {
        let out = ns.kubectl_ok(&["describe", "pod", "big-3"]);
        if out.contains("FailedScheduling") {
            Ok(out)
        } else {
            Err(out)
        }
    });
    assert!(
        msg.contains("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."),
        "{msg}"
    );
    // Removing the taint lets the pending pod schedule there.
    srv.kubectl_ok(&["taint", "node", "sim-0000", "dedicated=gpu:NoSchedule-"]);
    assert_eq!(node_of("big-3"), "sim-0000");
}

#[test]
fn rollout_pause_resume_restart_and_history() {
    let Some(srv) = server(2, &[]) else { return };
    let ns = Namespace::create(&srv, "e2e-pause");
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &nginx_deployment("nginx:1.14.2"));
    wait_running(&ns, "app=nginx", 3, 60);
    ns.kubectl_ok(&["rollout", "pause", "deployment/nginx-deployment"]);
    ns.kubectl_ok(&[
        "set",
        "image",
        "deployment/nginx-deployment",
        "nginx=nginx:1.16.1",
    ]);
    let reason = eventually(30, "DeploymentPaused", || {
        let r = ns.jsonpath(
            "deployment/nginx-deployment",
            "{.status.conditions[?(@.type==\"Progressing\")].reason}",
        );
        if r == "DeploymentPaused" {
            Ok(r)
        } else {
            Err(r)
        }
    });
    assert_eq!(reason, "DeploymentPaused");
    std::thread::sleep(Duration::from_secs(2));
    let paused = wait_running(&ns, "app=nginx", 3, 10);
    assert!(
        paused.iter().all(|p| p.image == "nginx:1.14.2"),
        "no rollout while paused: {paused:?}"
    );
    ns.kubectl_ok(&["rollout", "resume", "deployment/nginx-deployment"]);
    ns.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/nginx-deployment",
        "--timeout=60s",
    ]);
    let resumed = wait_running(&ns, "app=nginx", 3, 60);
    assert!(
        resumed.iter().all(|p| p.image == "nginx:1.16.1"),
        "{resumed:?}"
    );

    // restart: new pods from a template annotated with restartedAt.
    let before: Vec<String> = resumed.iter().map(|p| p.name.clone()).collect();
    ns.kubectl_ok(&["rollout", "restart", "deployment/nginx-deployment"]);
    ns.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/nginx-deployment",
        "--timeout=60s",
    ]);
    let restarted = wait_running(&ns, "app=nginx", 3, 60);
    assert!(
        restarted.iter().all(|p| !before.contains(&p.name)),
        "every pod replaced: {before:?} → {restarted:?}"
    );
    let history = ns.kubectl_ok(&["rollout", "history", "deployment/nginx-deployment"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2", "3"], "{history}");
    let rev2 = ns.kubectl_ok(&[
        "rollout",
        "history",
        "deployment/nginx-deployment",
        "--revision=2",
    ]);
    assert!(rev2.contains("nginx:1.16.1"), "{rev2}");
}
