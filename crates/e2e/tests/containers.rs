//! Real containers (issue 4): the server's node agent runs pods through containerd, runc and
//! CNI with images from the local registry (`images/setup.sh`), driven by the real kubectl.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use e2e::node::{NodeCluster, http_get, is_running_ready, pods_json};
use e2e::{Namespace, eventually, json, nginx_deployment};
use serde_json::Value;

/// `kubectl run -n <ns> <args>` (the namespace must come before `--`).
fn run(ns: &Namespace, args: &[&str]) {
    let mut all = vec!["-n", ns.name.as_str(), "run"];
    all.extend_from_slice(args);
    ns.server().kubectl_ok(&all);
}

fn pod_json(ns: &Namespace, name: &str) -> Value {
    json(&ns.kubectl_ok(&["get", "pod", name, "-o", "json"]))
}

fn nginx_page(ip: &str) -> Result<(), String> {
    let (code, body) = http_get(ip, 80, "/")?;
    if code == 200 && body.contains("Welcome to nginx!") {
        Ok(())
    } else {
        Err(format!("{code}: {body}"))
    }
}

/// The STATUS column kubectl prints for a pod.
fn status_column(ns: &Namespace, pod: &str) -> String {
    let out = ns.kubectl(&["get", "pod", pod, "--no-headers"]);
    if !out.status.success() {
        let all = ns.server().kubectl(&["get", "pods", "-A"]);
        return format!("{} (all pods: {})", e2e::stderr(&out), e2e::stdout(&all));
    }
    e2e::stdout(&out)
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string()
}

fn restarts(ns: &Namespace, pod: &str) -> i64 {
    pod_json(ns, pod)["status"]["containerStatuses"][0]["restartCount"]
        .as_i64()
        .unwrap_or(0)
}

#[test]
fn seed_demo_on_real_containers() {
    let Some(c) = NodeCluster::start(&[]) else {
        return;
    };
    let ns = Namespace::create(&c.server, "real");
    ns.kubectl_ok(&["create", "deployment", "nginx", "--image=nginx"]);
    let first = eventually(90, "the nginx pod Running and serving", || {
        let pods = pods_json(&ns, "app=nginx");
        let p = pods
            .iter()
            .find(|p| is_running_ready(p))
            .ok_or("no running pod")?;
        let ip = p["status"]["podIP"].as_str().ok_or("no IP")?.to_string();
        nginx_page(&ip)?;
        Ok((p["metadata"]["name"].as_str().unwrap().to_string(), ip))
    });
    assert!(first.0.starts_with("nginx-"), "{}", first.0);
    ns.kubectl_ok(&["delete", "pod", &first.0, "--wait=false"]);
    let second = eventually(90, "a replacement serving", || {
        let pods = pods_json(&ns, "app=nginx");
        let p = pods
            .iter()
            .find(|p| is_running_ready(p) && p["metadata"]["name"] != first.0.as_str())
            .ok_or("no replacement yet")?;
        let ip = p["status"]["podIP"].as_str().ok_or("no IP")?.to_string();
        nginx_page(&ip)?;
        Ok(ip)
    });
    assert!(!second.is_empty());
    // The old pod goes away for good (its containers stopped, the object deleted).
    eventually(60, "the old pod gone", || {
        let out = ns.kubectl(&["get", "pod", &first.0]);
        if out.status.success() {
            Err("still there".into())
        } else {
            Ok(())
        }
    });

    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &nginx_deployment("nginx:1.14.2"));
    eventually(120, "3 nginx-deployment pods Running and answering", || {
        let pods = pods_json(&ns, "app=nginx,pod-template-hash");
        let running: Vec<&Value> = pods
            .iter()
            .filter(|p| {
                is_running_ready(p)
                    && p["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .starts_with("nginx-deployment-")
            })
            .collect();
        if running.len() != 3 {
            return Err(format!("{} running", running.len()));
        }
        for p in running {
            nginx_page(p["status"]["podIP"].as_str().unwrap_or(""))?;
        }
        Ok(())
    });
    let table = ns.kubectl_ok(&["get", "pods", "-o", "wide"]);
    assert!(table.contains("node-1"), "{table}");
}

#[test]
fn failures_show_upstream_statuses() {
    let Some(c) = NodeCluster::start(&[]) else {
        return;
    };
    let ns = Namespace::create(&c.server, "fail");
    // A crashing container: CrashLoopBackOff, restarts counting up with growing back-off.
    run(
        &ns,
        &[
            "crash",
            "--image=busybox",
            "--",
            "sh",
            "-c",
            "echo boom; exit 3",
        ],
    );
    let t0 = Instant::now();
    eventually(60, "CrashLoopBackOff", || {
        let s = status_column(&ns, "crash");
        if s == "CrashLoopBackOff" {
            Ok(())
        } else {
            Err(s)
        }
    });
    let p = pod_json(&ns, "crash");
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3, "{cs}");
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error", "{cs}");
    assert!(
        cs["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .starts_with("back-off 10s restarting failed container=crash pod=crash_"),
        "{cs}"
    );
    eventually(60, "a back-off of 20s", || {
        let p = pod_json(&ns, "crash");
        let m = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if m.starts_with("back-off 20s") {
            Ok(())
        } else {
            Err(m)
        }
    });
    // Back-off 0 + 10 s + 20 s: three restarts take at least 30 s.
    let r = restarts(&ns, "crash");
    assert!(r >= 2, "restarts {r}");
    assert!(t0.elapsed() >= Duration::from_secs(10));

    // A memory hog in a 32Mi limit is OOMKilled.
    ns.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: busybox
    command: ["sh", "-c", "tail /dev/zero"]
    resources:
      limits:
        memory: 32Mi
"#,
    );
    eventually(60, "OOMKilled", || {
        let s = status_column(&ns, "hog");
        if s == "OOMKilled" { Ok(()) } else { Err(s) }
    });
    let p = pod_json(&ns, "hog");
    assert_eq!(p["status"]["phase"], "Failed");
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        137
    );

    // A missing image: ErrImagePull, then ImagePullBackOff.
    run(&ns, &["missing", "--image=doesnotexist:1.0"]);
    let mut seen = Vec::new();
    eventually(60, "ErrImagePull then ImagePullBackOff", || {
        let s = status_column(&ns, "missing");
        if !seen.contains(&s) {
            seen.push(s.clone());
        }
        if s == "ImagePullBackOff" {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    assert!(seen.contains(&"ErrImagePull".to_string()), "{seen:?}");
    let events = ns.kubectl_ok(&["describe", "pod", "missing"]);
    assert!(
        events.contains("Failed to pull image \"doesnotexist:1.0\""),
        "{events}"
    );

    // A completed pod shows Completed.
    run(
        &ns,
        &["done", "--image=busybox", "--restart=Never", "--", "true"],
    );
    eventually(60, "Completed", || {
        let s = status_column(&ns, "done");
        if s == "Completed" { Ok(()) } else { Err(s) }
    });
    assert_eq!(pod_json(&ns, "done")["status"]["phase"], "Succeeded");
}

#[test]
fn bad_input_gets_a_clear_status() {
    let Some(c) = NodeCluster::start(&[]) else {
        return;
    };
    let ns = Namespace::create(&c.server, "bad");
    run(&ns, &["fine", "--image=busybox", "--", "sleep", "3600"]);
    // An invalid image name (kubectl run refuses it, so through YAML).
    ns.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: badname
spec:
  containers:
  - name: c
    image: "Not A Valid/Image"
"#,
    );
    eventually(60, "InvalidImageName", || {
        let s = status_column(&ns, "badname");
        if s == "InvalidImageName" {
            Ok(())
        } else {
            Err(s)
        }
    });
    // More memory than the node has: Pending with the scheduler's reason.
    ns.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: huge
spec:
  containers:
  - name: c
    image: busybox
    resources:
      requests:
        memory: 100Ti
"#,
    );
    eventually(30, "FailedScheduling", || {
        let d = ns.kubectl_ok(&["describe", "pod", "huge"]);
        if d.contains("0/1 nodes are available: 1 Insufficient memory.") {
            Ok(())
        } else {
            Err(d)
        }
    });
    // A hostPath of type Directory that does not exist: the pod waits, with an event.
    ns.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: nodir
spec:
  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    hostPath:
      path: /nonexistent/r8s-e2e
      type: Directory
"#,
    );
    eventually(30, "FailedMount", || {
        let d = ns.kubectl_ok(&["describe", "pod", "nodir"]);
        if d.contains("FailedMount") && d.contains("/nonexistent/r8s-e2e") {
            Ok(())
        } else {
            Err(d)
        }
    });
    assert_eq!(status_column(&ns, "nodir"), "ContainerCreating");
    // Nothing else is disturbed.
    eventually(30, "the good pod Running", || {
        let p = pod_json(&ns, "fine");
        if is_running_ready(&p) {
            Ok(())
        } else {
            Err(p["status"].to_string())
        }
    });
}

#[test]
fn agent_crash_keeps_containers_running() {
    let Some(c) = NodeCluster::start(&[]) else {
        return;
    };
    let ns = Namespace::create(&c.server, "failstatic");
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], &nginx_deployment("nginx"));
    let ips = eventually(120, "3 pods serving", || {
        let pods = pods_json(&ns, "app=nginx");
        let ips: Vec<String> = pods
            .iter()
            .filter(|p| is_running_ready(p))
            .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
            .collect();
        if ips.len() != 3 {
            return Err(format!("{ips:?}"));
        }
        for ip in &ips {
            nginx_page(ip)?;
        }
        Ok(ips)
    });
    let before: Vec<String> = pods_json(&ns, "app=nginx")
        .iter()
        .map(|p| p["status"]["containerStatuses"][0]["containerID"].to_string())
        .collect();
    c.server.kill9();
    for ip in &ips {
        nginx_page(ip).unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    for ip in &ips {
        nginx_page(ip).unwrap();
    }
    c.server.restart();
    // Status keeps flowing: a new pod starts, and the old ones were not restarted.
    ns.kubectl_ok(&["scale", "deployment", "nginx-deployment", "--replicas=4"]);
    eventually(90, "4 pods Running", || {
        let n = pods_json(&ns, "app=nginx")
            .iter()
            .filter(|p| is_running_ready(p))
            .count();
        if n == 4 { Ok(()) } else { Err(n.to_string()) }
    });
    let after: Vec<String> = pods_json(&ns, "app=nginx")
        .iter()
        .map(|p| p["status"]["containerStatuses"][0]["containerID"].to_string())
        .collect();
    for id in &before {
        assert!(after.contains(id), "{id} was restarted: {after:?}");
    }
    for p in pods_json(&ns, "app=nginx") {
        assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    }
}

#[test]
fn probes_restart_and_gate_readiness() {
    let Some(c) = NodeCluster::start(&[]) else {
        return;
    };
    let ns = Namespace::create(&c.server, "probes");
    ns.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: live
spec:
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec:
        command: ["cat", "/tmp/healthy"]
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata:
  name: unready
  labels:
    app: unready
spec:
  containers:
  - name: web
    image: nginx
    readinessProbe:
      httpGet:
        path: /nope
        port: 80
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: ready
  labels:
    app: unready
spec:
  containers:
  - name: web
    image: nginx
    readinessProbe:
      httpGet:
        path: /
        port: 80
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: unready
  ports:
  - port: 80
"#,
    );
    // A failing liveness probe restarts the container.
    eventually(60, "a liveness restart", || {
        let r = restarts(&ns, "live");
        if r >= 1 { Ok(()) } else { Err(r.to_string()) }
    });
    let d = ns.kubectl_ok(&["describe", "pod", "live"]);
    assert!(d.contains("Liveness probe failed"), "{d}");
    assert!(
        d.contains("Container c failed liveness probe, will be restarted"),
        "{d}"
    );
    // A failing readiness probe: Running but 0/1, and only not-ready in the endpoints.
    let ready_ip = eventually(60, "the ready pod Ready", || {
        let p = pod_json(&ns, "ready");
        if is_running_ready(&p) {
            Ok(p["status"]["podIP"].as_str().unwrap().to_string())
        } else {
            Err(p["status"].to_string())
        }
    });
    let p = pod_json(&ns, "unready");
    assert_eq!(p["status"]["phase"], "Running");
    let line = ns.kubectl_ok(&["get", "pod", "unready", "--no-headers"]);
    assert_eq!(line.split_whitespace().nth(1), Some("0/1"), "{line}");
    let unready_ip = p["status"]["podIP"].as_str().unwrap().to_string();
    eventually(
        30,
        "endpoints with one ready and one not-ready address",
        || {
            let e = json(&ns.kubectl_ok(&["get", "endpoints", "web", "-o", "json"]));
            let subset = &e["subsets"][0];
            let ips = |k: &str| -> Vec<String> {
                subset[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["ip"].as_str().map(str::to_string))
                    .collect()
            };
            if ips("addresses") == vec![ready_ip.clone()]
                && ips("notReadyAddresses") == vec![unready_ip.clone()]
            {
                Ok(())
            } else {
                Err(e.to_string())
            }
        },
    );
}

#[test]
fn streaming_logs_exec_port_forward_cp() {
    let Some(c) = NodeCluster::start(&[]) else {
        return;
    };
    let ns = Namespace::create(&c.server, "stream");
    run(&ns, &["web", "--image=nginx"]);
    let ip = eventually(60, "nginx Running", || {
        let p = pod_json(&ns, "web");
        if is_running_ready(&p) {
            Ok(p["status"]["podIP"].as_str().unwrap().to_string())
        } else {
            Err(p["status"].to_string())
        }
    });
    // logs -f follows the access log as requests arrive.
    let mut args = vec!["-n", ns.name.as_str()];
    args.extend(["logs", "-f", "web"]);
    let follow = c.server.kubectl_spawn(&args);
    // (A fresh pod IP may still be in the host's neighbour cache with an earlier pod's MAC.)
    eventually(30, "nginx answering", || nginx_page(&ip));
    http_get(&ip, 80, "/followed-1").unwrap();
    let (line, seen) =
        follow.wait_for_line(Duration::from_secs(20), |l| l.contains("GET /followed-1"));
    assert!(line.is_some(), "{seen:?}");
    http_get(&ip, 80, "/followed-2").unwrap();
    let (line, seen) =
        follow.wait_for_line(Duration::from_secs(20), |l| l.contains("GET /followed-2"));
    assert!(line.is_some(), "{seen:?}");
    follow.stop();
    let tail = ns.kubectl_ok(&["logs", "web", "--tail=1"]);
    assert!(tail.contains("GET /followed-2"), "{tail}");
    assert_eq!(tail.lines().count(), 1, "{tail}");

    // exec returns the command's exit code.
    let out = c.server.kubectl(&[
        "-n",
        &ns.name,
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "echo out; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", e2e::stderr(&out));
    assert_eq!(e2e::stdout(&out), "out\n");
    // exec -it through a pseudo-terminal.
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| {
        e2e::node::workspace_root()
            .join(".venv/bin/kubectl")
            .display()
            .to_string()
    });
    let cmdline = format!(
        "{kubectl} --kubeconfig {} -n {} exec -it web -- sh -c 'tty; echo rows=$(stty size)'",
        c.server.kubeconfig_path().display(),
        ns.name
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env("KUBERC", "off")
        .output()
        .unwrap();
    let text = e2e::stdout(&out);
    assert!(out.status.success(), "{text} {}", e2e::stderr(&out));
    assert!(text.contains("/dev/pts/"), "{text}");

    // port-forward.
    let follow = c
        .server
        .kubectl_spawn(&["-n", &ns.name, "port-forward", "pod/web", ":80"]);
    let (line, seen) = follow.wait_for_line(Duration::from_secs(20), |l| {
        l.starts_with("Forwarding from 127.0.0.1:")
    });
    let line = line.unwrap_or_else(|| panic!("{seen:?}"));
    let port: u16 = line
        .trim_start_matches("Forwarding from 127.0.0.1:")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for _ in 0..3 {
        let (code, body) = http_get("127.0.0.1", port, "/").unwrap();
        assert_eq!(code, 200);
        assert!(body.contains("Welcome to nginx!"));
    }
    follow.stop();

    // cp in and out (tar over exec, stdin closed at the end).
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("data.txt");
    let content: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&src, &content).unwrap();
    let dest = format!("{}/web:/tmp/data.txt", ns.name);
    c.server.kubectl_ok(&["cp", src.to_str().unwrap(), &dest]);
    let back = dir.path().join("back.txt");
    c.server.kubectl_ok(&["cp", &dest, back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), content);
}

#[test]
fn config_map_volume_follows_updates_and_secret_env() {
    let Some(c) = NodeCluster::start(&[]) else {
        return;
    };
    let ns = Namespace::create(&c.server, "vol");
    ns.kubectl_ok(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=greeting=hello",
    ]);
    ns.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=s3cret",
    ]);
    ns.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: app
spec:
  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
    env:
    - name: PASSWORD
      valueFrom:
        secretKeyRef:
          name: creds
          key: password
    volumeMounts:
    - name: cfg
      mountPath: /etc/cfg
  volumes:
  - name: cfg
    configMap:
      name: cfg
"#,
    );
    eventually(60, "app Running", || {
        let p = pod_json(&ns, "app");
        if is_running_ready(&p) {
            Ok(())
        } else {
            Err(p["status"].to_string())
        }
    });
    let exec = |cmd: &str| -> String {
        c.server
            .kubectl_ok(&["-n", &ns.name, "exec", "app", "--", "sh", "-c", cmd])
    };
    assert_eq!(exec("cat /etc/cfg/greeting"), "hello");
    assert_eq!(exec("echo $PASSWORD"), "s3cret\n");
    ns.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  greeting: bonjour\n",
    );
    eventually(30, "the mounted file updated in place", || {
        let v = exec("cat /etc/cfg/greeting");
        if v == "bonjour" { Ok(()) } else { Err(v) }
    });
    assert_eq!(restarts(&ns, "app"), 0);
}

#[test]
fn init_containers_hooks_and_volumes() {
    let Some(c) = NodeCluster::start(&[]) else {
        return;
    };
    let ns = Namespace::create(&c.server, "init");
    ns.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: app
  labels:
    tier: web
spec:
  terminationGracePeriodSeconds: 10
  initContainers:
  - name: first
    image: busybox
    command: ["sh", "-c", "echo first >> /work/order"]
    volumeMounts:
    - {name: work, mountPath: /work}
  - name: second
    image: busybox
    command: ["sh", "-c", "echo second >> /work/order"]
    volumeMounts:
    - {name: work, mountPath: /work}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo main >> /work/order; sleep 3600"]
    lifecycle:
      postStart:
        exec:
          command: ["sh", "-c", "echo poststart > /work/hook"]
      preStop:
        exec:
          command: ["sh", "-c", "echo prestop > /host/prestop"]
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: mem, mountPath: /mem}
    - {name: info, mountPath: /info}
    - {name: host, mountPath: /host}
  volumes:
  - name: work
    emptyDir: {}
  - name: mem
    emptyDir:
      medium: Memory
  - name: info
    downwardAPI:
      items:
      - path: labels
        fieldRef:
          fieldPath: metadata.labels
  - name: host
    hostPath:
      path: HOSTDIR
      type: DirectoryOrCreate
"#
        .replace(
            "HOSTDIR",
            &c.server
                .scratch_dir()
                .join("hostpath")
                .display()
                .to_string(),
        )
        .as_str(),
    );
    eventually(60, "app Running", || {
        let p = pod_json(&ns, "app");
        if is_running_ready(&p) {
            Ok(())
        } else {
            Err(p["status"].to_string())
        }
    });
    let exec = |cmd: &str| -> String {
        c.server.kubectl_ok(&[
            "-n", &ns.name, "exec", "app", "-c", "main", "--", "sh", "-c", cmd,
        ])
    };
    eventually(10, "main started after both init containers", || {
        let v = exec("cat /work/order");
        if v == "first\nsecond\nmain\n" {
            Ok(())
        } else {
            Err(v)
        }
    });
    assert_eq!(exec("cat /work/hook"), "poststart\n");
    assert!(exec("grep ' /mem ' /proc/mounts").contains("tmpfs"));
    assert_eq!(exec("cat /info/labels"), "tier=\"web\"");
    let p = pod_json(&ns, "app");
    let inits = p["status"]["initContainerStatuses"].as_array().unwrap();
    assert_eq!(inits.len(), 2);
    for s in inits {
        assert_eq!(s["state"]["terminated"]["reason"], "Completed", "{s}");
    }
    // Deletion runs the preStop hook before the container stops.
    ns.kubectl_ok(&["delete", "pod", "app", "--wait=true", "--timeout=60s"]);
    let marker = c.server.scratch_dir().join("hostpath").join("prestop");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "prestop\n");
}
