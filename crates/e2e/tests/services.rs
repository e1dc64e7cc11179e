//! Services on real containers (issue 5): ClusterIPs and NodePorts through the agent's
//! nftables proxy, names through its cluster DNS, driven by the real kubectl.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::node::{NodeCluster, http_get, is_running_ready, pods_json};
use e2e::{Namespace, eventually, json};

/// One request of a load loop: when it started and how it ended.
type Attempt = (Instant, Result<(), String>);

/// The IPs of the ready pods matching `selector`, once there are `n`.
fn ready_ips(ns: &Namespace, selector: &str, n: usize) -> BTreeSet<String> {
    eventually(120, &format!("{n} ready pods {selector}"), || {
        let ips: BTreeSet<String> = pods_json(ns, selector)
            .iter()
            .filter(|p| is_running_ready(p))
            .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
            .collect();
        if ips.len() == n {
            Ok(ips)
        } else {
            Err(format!("{ips:?}"))
        }
    })
}

/// The addresses in the Endpoints object of a Service (ready ones).
/// The ready addresses in the EndpointSlices of a Service (what the proxy follows).
fn slice_ready_ips(ns: &Namespace, svc: &str) -> BTreeSet<String> {
    let sel = format!("kubernetes.io/service-name={svc}");
    let v = json(&ns.kubectl_ok(&["get", "endpointslices", "-l", &sel, "-o", "json"]));
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] != false)
        .filter_map(|e| e["addresses"][0].as_str().map(str::to_string))
        .collect()
}

fn endpoint_ips(ns: &Namespace, svc: &str) -> BTreeSet<String> {
    let v = json(&ns.kubectl_ok(&["get", "endpoints", svc, "-o", "json"]));
    v["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(str::to_string))
        .collect()
}

/// Starts a busybox pod to run commands from inside the cluster network.
fn client_pod(ns: &Namespace) {
    ns.server().kubectl_ok(&[
        "-n",
        &ns.name,
        "run",
        "client",
        "--image=busybox",
        "--restart=Never",
        "--",
        "sleep",
        "3600",
    ]);
    eventually(90, "the client pod Running", || {
        let p = json(&ns.kubectl_ok(&["get", "pod", "client", "-o", "json"]));
        if is_running_ready(&p) {
            Ok(())
        } else {
            Err(p["status"].to_string())
        }
    });
}

/// Runs a shell command in the client pod: exit success and output.
fn in_client(ns: &Namespace, script: &str) -> (bool, String) {
    // The namespace must come before `--`.
    let out = ns
        .server()
        .kubectl(&["-n", &ns.name, "exec", "client", "--", "sh", "-c", script]);
    let mut text = e2e::stdout(&out);
    text.push_str(&e2e::stderr(&out));
    (out.status.success(), text)
}

fn node_ip(ns: &Namespace) -> String {
    ns.server().kubectl_ok(&[
        "get",
        "node",
        "node-1",
        "-o",
        "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
    ])
}

#[test]
fn expose_resolve_and_follow_pods() {
    let Some(c) = NodeCluster::start(&[]) else {
        return;
    };
    let ns = Namespace::create(&c.server, "svc");
    let n = ns.name.clone();

    // The API server's own Service and the cluster DNS Service exist from the start.
    let k = json(&ns.server().kubectl_ok(&[
        "get",
        "service",
        "kubernetes",
        "-n",
        "default",
        "-o",
        "json",
    ]));
    assert_eq!(k["spec"]["clusterIP"], "10.43.0.1", "{k}");
    let dns = json(&ns.server().kubectl_ok(&[
        "get",
        "service",
        "kube-dns",
        "-n",
        "kube-system",
        "-o",
        "json",
    ]));
    assert_eq!(dns["spec"]["clusterIP"], "10.43.0.10", "{dns}");

    ns.kubectl_ok(&["create", "deployment", "nginx", "--image=nginx"]);
    ns.kubectl_ok(&["expose", "deployment", "nginx", "--port", "80"]);
    let ips = ready_ips(&ns, "app=nginx", 1);
    let svc = json(&ns.kubectl_ok(&["get", "service", "nginx", "-o", "json"]));
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(cluster_ip.starts_with("10.43."), "{svc}");
    let table = ns.kubectl_ok(&["get", "service", "nginx"]);
    assert!(
        table.contains(&cluster_ip) && table.contains("80/TCP"),
        "{table}"
    );
    // `get endpoints` and `get ep` show the pod's IP and port.
    eventually(30, "endpoints list the pod", || {
        let got = endpoint_ips(&ns, "nginx");
        if got == ips {
            Ok(())
        } else {
            Err(format!("{got:?} != {ips:?}"))
        }
    });
    let ep = ns.kubectl_ok(&["get", "ep", "nginx"]);
    let pod_ip = ips.iter().next().unwrap().clone();
    assert!(ep.contains(&format!("{pod_ip}:80")), "{ep}");

    // From a pod: the short name, the namespaced name and the full name all reach nginx.
    client_pod(&ns);
    for name in [
        "nginx".to_string(),
        format!("nginx.{n}"),
        format!("nginx.{n}.svc.cluster.local"),
    ] {
        let (ok, out) = in_client(&ns, &format!("timeout 10 wget -qO- http://{name}/"));
        assert!(ok && out.contains("Welcome to nginx!"), "{name}: {out}");
    }
    // DNS answers the ClusterIP; the host reaches it too.
    let (ok, out) = in_client(&ns, &format!("nslookup nginx.{n}.svc.cluster.local"));
    assert!(ok && out.contains(&cluster_ip), "{out}");
    let (code, body) = http_get(&cluster_ip, 80, "/").unwrap();
    assert!(code == 200 && body.contains("Welcome to nginx!"));

    // A load loop through the Service while the backend pod is replaced.
    let stop = Arc::new(AtomicBool::new(false));
    let results: Arc<Mutex<Vec<Attempt>>> = Arc::default();
    let looper = {
        let (stop, results, ip) = (stop.clone(), results.clone(), cluster_ip.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let r = match http_get(&ip, 80, "/") {
                    Ok((200, b)) if b.contains("Welcome to nginx!") => Ok(()),
                    Ok((code, _)) => Err(format!("status {code}")),
                    Err(e) => Err(e),
                };
                results.lock().unwrap().push((started, r));
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let old = pods_json(&ns, "app=nginx")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    ns.kubectl_ok(&["delete", "pod", &old, "--wait=false"]);
    let switched = eventually(120, "the endpoints switch to the replacement", || {
        let got = slice_ready_ips(&ns, "nginx");
        if got.len() == 1 && !got.contains(&pod_ip) {
            Ok(Instant::now())
        } else {
            Err(format!("{got:?}"))
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    looper.join().unwrap();
    let results = results.lock().unwrap();
    // Requests started once the switch was seen (one started before may still time out on
    // the old pod, whose network namespace is gone).
    let after: Vec<_> = results.iter().filter(|(t, _)| *t > switched).collect();
    assert!(after.len() > 20, "the loop kept running: {}", after.len());
    let failures: Vec<_> = after.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "requests failed after the endpoints switched: {failures:?}"
    );
    assert!(results.iter().filter(|(_, r)| r.is_ok()).count() > 20);
}

#[test]
fn spread_nodeport_headless_readiness_and_scale_to_zero() {
    let Some(c) = NodeCluster::start(&[]) else {
        return;
    };
    let ns = Namespace::create(&c.server, "svc");
    let n = ns.name.clone();
    // Each pod serves its own name; it is ready while /tmp/ready exists.
    let manifest = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: who
spec:
  replicas: 3
  selector:
    matchLabels: {app: who}
  template:
    metadata:
      labels: {app: who}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: httpd
        image: busybox
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /www"]
        ports:
        - {name: web, containerPort: 8080}
        readinessProbe:
          exec: {command: ["cat", "/tmp/ready"]}
          periodSeconds: 1
          failureThreshold: 1
"#;
    ns.kubectl_stdin_ok(&["apply", "-f", "-"], manifest);
    ns.kubectl_ok(&[
        "expose",
        "deployment",
        "who",
        "--port",
        "80",
        "--target-port",
        "web",
        "--type",
        "NodePort",
    ]);
    ns.kubectl_ok(&[
        "expose",
        "deployment",
        "who",
        "--name",
        "who-headless",
        "--cluster-ip",
        "None",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let ips = ready_ips(&ns, "app=who", 3);
    let names: BTreeSet<String> = pods_json(&ns, "app=who")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    client_pod(&ns);

    // Requests through the Service spread over the 3 pods.
    let seen = eventually(60, "requests reach all 3 pods", || {
        let (_, out) = in_client(
            &ns,
            "for i in $(seq 1 40); do timeout 5 wget -qO- http://who/; done",
        );
        let seen: BTreeSet<String> = out.lines().map(|l| l.trim().to_string()).collect();
        if seen == names {
            Ok(seen)
        } else {
            Err(format!("{seen:?} != {names:?}"))
        }
    });
    assert_eq!(seen.len(), 3);

    // The NodePort answers on the node's address.
    let svc = json(&ns.kubectl_ok(&["get", "service", "who", "-o", "json"]));
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
    assert!((30000..=32767).contains(&node_port), "{svc}");
    let node = node_ip(&ns);
    let (code, body) = http_get(&node, node_port, "/").unwrap();
    assert_eq!(code, 200);
    assert!(names.contains(body.trim()), "{body}");

    // Type LoadBalancer is answered with the node's address, where the port then answers.
    ns.kubectl_ok(&[
        "expose",
        "deployment",
        "who",
        "--name",
        "who-lb",
        "--type",
        "LoadBalancer",
        "--port",
        "8081",
        "--target-port",
        "web",
    ]);
    let lb = eventually(60, "the LoadBalancer gets the node's address", || {
        let v = json(&ns.kubectl_ok(&["get", "service", "who-lb", "-o", "json"]));
        match v["status"]["loadBalancer"]["ingress"][0]["ip"].as_str() {
            Some(ip) => Ok(ip.to_string()),
            None => Err(v["status"].to_string()),
        }
    });
    assert_eq!(lb, node);
    let row = ns.kubectl_ok(&["get", "service", "who-lb", "--no-headers"]);
    assert!(row.contains(&node) && row.contains("8081:"), "{row}");
    let (code, body) = eventually(30, "the LoadBalancer address answers", || {
        http_get(&node, 8081, "/")
    });
    assert_eq!(code, 200);
    assert!(names.contains(body.trim()), "{body}");

    // Bad requests are refused with the field named, and change nothing.
    let out = ns.kubectl(&[
        "create",
        "service",
        "clusterip",
        "outside",
        "--tcp=80",
        "--clusterip=192.168.1.1",
    ]);
    let err = e2e::stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("spec.clusterIPs") && err.contains("is not in the valid range"),
        "{err}"
    );
    let taken = node_port.to_string();
    let out = ns.kubectl(&[
        "create",
        "service",
        "nodeport",
        "taken",
        "--tcp=80",
        "--node-port",
        &taken,
    ]);
    let err = e2e::stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("spec.ports[0].nodePort")
            && err.contains("provided port is already allocated"),
        "{err}"
    );
    let out = ns.kubectl(&[
        "create",
        "service",
        "clusterip",
        "dup",
        "--tcp=80:80",
        "--tcp=80:81",
    ]);
    let err = e2e::stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("spec.ports[1]: Duplicate value"), "{err}");
    assert!(!ns.kubectl(&["get", "service", "dup"]).status.success());
    assert!(!ns.kubectl(&["get", "service", "outside"]).status.success());
    assert!(!ns.kubectl(&["get", "service", "taken"]).status.success());

    // The headless Service resolves to the pod IPs.
    let (ok, out) = in_client(&ns, &format!("nslookup who-headless.{n}.svc.cluster.local"));
    assert!(ok, "{out}");
    for ip in &ips {
        assert!(out.contains(ip.as_str()), "{ip} missing: {out}");
    }

    // A pod failing its readiness probe leaves the rotation.
    let victim = names.iter().next().unwrap().clone();
    ns.server()
        .kubectl_ok(&["-n", &ns.name, "exec", &victim, "--", "rm", "/tmp/ready"]);
    eventually(60, "the unready pod leaves the endpoints", || {
        let got = endpoint_ips(&ns, "who");
        if got.len() == 2 {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    let (_, out) = in_client(
        &ns,
        "for i in $(seq 1 30); do timeout 5 wget -qO- http://who/; done",
    );
    let seen: BTreeSet<String> = out.lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(seen.len(), 2, "{out}");
    assert!(!seen.contains(&victim), "{victim} still answered: {out}");

    // Scaled to zero: connections are refused at once, from the host and from a pod.
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    ns.kubectl_ok(&["scale", "deployment", "who", "--replicas=0"]);
    // (Terminating pods still serve until they are gone, as upstream's proxy does when no
    // endpoint is ready.)
    eventually(60, "the pods gone", || {
        let left = pods_json(&ns, "app=who").len();
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} left"))
        }
    });
    assert!(endpoint_ips(&ns, "who").is_empty());
    eventually(10, "the ClusterIP refuses connections", || {
        let started = Instant::now();
        match http_get(&cluster_ip, 80, "/") {
            Err(e) if started.elapsed() < Duration::from_secs(1) => Ok(e),
            other => Err(format!("{other:?} after {:?}", started.elapsed())),
        }
    });
    let started = Instant::now();
    let (ok, out) = in_client(&ns, "timeout 5 wget -qO- http://who/");
    assert!(!ok, "{out}");
    assert!(out.contains("refused"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}
