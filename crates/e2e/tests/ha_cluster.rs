//! Issue 6 (high availability) with 3 etcd members and 3 servers on loopback, plus simulated
//! nodes from a separate `r8s sim` process: every server serves the same objects at the same
//! resourceVersions; when the server holding the controller manager's or the scheduler's Lease
//! is SIGKILLed another server's components act within 20 s; the servers keep working while
//! an etcd member is down and the member catches up when it is back; and a rolling restart
//! (SIGKILL, start, wait for ready; one server after the other) under continuous writes loses
//! no acknowledged write, duplicates nothing and never runs a Deployment with too many pods.
//!
//! Two tests, each with its own cluster, run one after the other (see [`SERIAL`]): the
//! failovers and the rolling restart in order on one cluster, and the etcd member outage on
//! another (so that a failure of one does not hide the other's result).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use e2e::etcd::EtcdCluster;
use e2e::eventually;
use serde_json::Value;
use testsupport::{TestServer, new_server_with_args, paths};

/// How long a failover may take (issue 6).
const FAILOVER: Duration = Duration::from_secs(20);
/// Namespace of the Deployments and pods.
const NS: &str = "ha";
/// Namespace of the checker's ConfigMaps.
const WRITES_NS: &str = "ha-writes";
/// Replicas of the Deployment nobody changes during the rolling restart.
const STEADY_REPLICAS: usize = 2;

/// `r8s sim` against one server; killed (by PID) when dropped, also if the test process dies.
struct Sim {
    child: Child,
    reaper: Option<Child>,
    log: PathBuf,
}

impl Sim {
    /// Simulated nodes joined with the cluster's token, talking to `first` first and failing
    /// over to the other `servers`.
    fn start(first: &TestServer, servers: &[TestServer], nodes: usize) -> Sim {
        let bin = paths::r8s_binary().expect("the r8s binary (the servers run it)");
        let log = first.scratch_dir().join("sim.log");
        let file = std::fs::File::create(&log).unwrap();
        let token = std::fs::read_to_string(first.data_dir().join("token")).unwrap();
        let urls: Vec<String> = std::iter::once(first)
            .chain(servers.iter().filter(|s| s.port() != first.port()))
            .map(|s| format!("https://127.0.0.1:{}", s.port()))
            .collect();
        let child = Command::new(bin)
            .arg("sim")
            .arg("-d")
            .arg(first.scratch_dir())
            .args(["--server", &urls.join(","), "--token", token.trim()])
            .args(["--nodes", &nodes.to_string()])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let reaper = testsupport::server::spawn_reaper(child.id());
        Sim { child, reaper, log }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(mut reaper) = self.reaper.take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kubectl that may fail (a server may be down): stdout, or stderr as the error.
fn try_kubectl(s: &TestServer, args: &[&str]) -> Result<String, String> {
    match s.kubectl_timeout(args, None, Duration::from_secs(15)) {
        Ok(out) if out.status.success() => Ok(e2e::stdout(&out)),
        Ok(out) => Err(e2e::stderr(&out)),
        Err(timed_out) => Err(timed_out.to_string()),
    }
}

/// The first server that is running.
fn running(servers: &[TestServer]) -> &TestServer {
    servers
        .iter()
        .find(|s| s.pid().is_some())
        .expect("a running server")
}

/// The index of the server holding Lease `kube-system/<lease>`: the holder identity read
/// through a running server, found in that server's log (`attempting to acquire leader lease
/// ... identity=<id>`; a restarted server campaigns with a new identity).
fn holder(servers: &[TestServer], lease: &str) -> Result<usize, String> {
    let id = try_kubectl(
        running(servers),
        &[
            "-n",
            "kube-system",
            "get",
            "lease",
            lease,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    )?;
    if id.is_empty() {
        return Err(format!("Lease {lease} has no holder"));
    }
    let needle = format!("identity={id}");
    let found: Vec<usize> = (0..servers.len())
        .filter(|&i| {
            servers[i]
                .logs()
                .lines()
                .any(|l| l.contains("attempting to acquire leader lease") && l.contains(&needle))
        })
        .collect();
    match found[..] {
        [i] => Ok(i),
        _ => Err(format!(
            "holder {id} of {lease} is in the logs of servers {found:?}"
        )),
    }
}

/// The pods in `ns` matching `selector` that are not being deleted.
fn live_pods(s: &TestServer, ns: &str, selector: &str) -> Result<Vec<Value>, String> {
    let out = try_kubectl(s, &["-n", ns, "get", "pods", "-l", selector, "-o", "json"])?;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    Ok(v["items"]
        .as_array()
        .ok_or("no items")?
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect())
}

fn names(pods: &[Value]) -> BTreeSet<String> {
    pods.iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `f` until it succeeds or `deadline` passes (then panics with its last error).
fn before<T>(deadline: Instant, what: &str, f: impl FnMut() -> Result<T, String>) -> T {
    let secs = deadline
        .saturating_duration_since(Instant::now())
        .as_secs()
        .max(1);
    let v = eventually(secs, what, f);
    assert!(
        Instant::now() <= deadline + Duration::from_millis(500),
        "{what}: too late"
    );
    v
}

fn ready_nodes(s: &TestServer) -> Result<usize, String> {
    let v: Value = serde_json::from_str(&try_kubectl(s, &["get", "nodes", "-o", "json"])?)
        .map_err(|e| e.to_string())?;
    Ok(v["items"]
        .as_array()
        .ok_or("no items")?
        .iter()
        .filter(|n| {
            n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .count())
}

/// `kubectl create configmap`, treating AlreadyExists as success (an earlier attempt that
/// failed on the client side may have been written).
fn create_configmap(s: &TestServer, ns: &str, name: &str, value: &str) -> Result<(), String> {
    let literal = format!("--from-literal=value={value}");
    match try_kubectl(s, &["-n", ns, "create", "configmap", name, &literal]) {
        Ok(_) => Ok(()),
        Err(e) if e.contains("AlreadyExists") || e.contains("already exists") => Ok(()),
        Err(e) => Err(e),
    }
}

/// The ConfigMaps of `ns` as (name, resourceVersion, data.value), in list order.
fn configmaps(s: &TestServer, ns: &str) -> Result<Vec<(String, String, String)>, String> {
    let out = try_kubectl(s, &["-n", ns, "get", "configmaps", "-o", "json"])?;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    Ok(v["items"]
        .as_array()
        .ok_or("no items")?
        .iter()
        .map(|cm| {
            (
                cm["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                cm["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                cm["data"]["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// The tests of this file run one after the other: each runs 3 etcd members and 3 servers,
/// and two such clusters at once would starve this 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

/// 3 etcd members and 3 servers sharing them (`--fast-leader-election`); `None` when the test
/// is skipped (no kubectl outside CI).
fn cluster() -> Option<(EtcdCluster, Vec<TestServer>)> {
    let started = Instant::now();
    let etcd = EtcdCluster::start(3);
    let endpoints = etcd.endpoints();
    let args = [
        "--datastore-endpoint",
        endpoints.as_str(),
        "--fast-leader-election",
    ];
    // The first server makes the cluster; the other two join it with its token, so all
    // three share one CA.
    let first = new_server_with_args(&args)?;
    let token = std::fs::read_to_string(first.data_dir().join("token"))
        .expect("the first server's join token");
    let url = format!("https://127.0.0.1:{}", first.port());
    let mut join_args = args.to_vec();
    join_args.extend(["--server", url.as_str(), "--token", token.trim()]);
    let joined: Option<Vec<TestServer>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| new_server_with_args(&join_args)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut servers = vec![first];
    servers.extend(joined?);
    let servers = Some(servers);
    eprintln!("cluster up after {:?}", started.elapsed());
    Some((etcd, servers?))
}

/// The cluster helper itself, without r8s: a stopped member misses writes and answers
/// nothing; started again with its data directory it catches up.
#[test]
fn etcd_cluster_member_catches_up() {
    let etcd = EtcdCluster::start(3);
    etcd.put(0, "/e2e/before", "1").unwrap();
    let member = eventually(10, "an etcd leader", || {
        etcd.leader().ok_or_else(|| "no agreed leader".to_string())
    });
    etcd.stop_member(member);
    assert!(!etcd.is_running(member));
    assert!(!etcd.healthy(member));
    assert!(etcd.keys(member, "/e2e/").is_err());
    let other = (member + 1) % etcd.len();
    eventually(10, "a write with one member stopped", || {
        etcd.put(other, "/e2e/during", "2")
    });
    let target = etcd.revision(other).unwrap();
    etcd.start_member(member);
    eventually(10, "the restarted member to catch up", || {
        let keys = etcd.keys(member, "/e2e/")?;
        let revision = etcd.revision(member)?;
        if keys == ["/e2e/before", "/e2e/during"] && revision >= target {
            Ok(())
        } else {
            Err(format!("{keys:?} at {revision} (want {target})"))
        }
    });
    etcd.kill_member(other);
    assert!(!etcd.is_running(other));
    etcd.start_member(other);
    assert_eq!(
        etcd.keys(other, "/e2e/").unwrap(),
        ["/e2e/before", "/e2e/during"]
    );
}

/// Same objects everywhere, controller-manager and scheduler failover, then a rolling restart
/// under continuous writes.
#[test]
fn failover_and_rolling_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let started = Instant::now();
    let Some((etcd, servers)) = cluster() else {
        return;
    };
    same_objects_everywhere(&servers);
    let sim = controller_manager_failover(&servers);
    scheduler_failover(&servers, &sim);
    rolling_restart_under_writes(&servers, &etcd);
    eprintln!("done after {:?}", started.elapsed());
    drop(sim);
}

/// Stop the etcd leader: every server keeps reading and writing, controllers keep acting;
/// start it again: it catches up.
#[test]
fn etcd_member_down_and_back() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let started = Instant::now();
    let Some((etcd, servers)) = cluster() else {
        return;
    };
    servers[0].kubectl_ok(&["create", "namespace", NS]);
    servers[1].kubectl_ok(&[
        "-n",
        NS,
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
    ]);
    eventually(30, "3 web pods", || {
        let n = live_pods(&servers[2], NS, "app=web")?.len();
        if n == 3 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    });
    member_down_and_back(&servers, &etcd);
    eprintln!("done after {:?}", started.elapsed());
}

/// Every server serves the same objects at the same resourceVersions, and a write through one
/// server is read at once through the others (reads are consistent, not from a stale cache).
fn same_objects_everywhere(servers: &[TestServer]) {
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    a.kubectl_ok(&["create", "namespace", NS]);
    b.kubectl_ok(&["create", "namespace", WRITES_NS]);
    a.kubectl_ok(&[
        "-n",
        NS,
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
    ]);
    c.kubectl_ok(&[
        "-n",
        NS,
        "create",
        "deployment",
        "steady",
        "--image=nginx",
        &format!("--replicas={STEADY_REPLICAS}"),
    ]);
    for (i, s) in servers.iter().enumerate() {
        let name = format!("hello-{i}");
        s.kubectl_ok(&["-n", NS, "create", "configmap", &name, "--from-literal=k=v"]);
        let path = "jsonpath={.metadata.uid} {.metadata.resourceVersion} {.data.k}";
        let seen: Vec<String> = servers
            .iter()
            .map(|o| o.kubectl_ok(&["-n", NS, "get", "configmap", &name, "-o", path]))
            .collect();
        assert!(
            seen.iter().all(|x| x == &seen[0] && x.ends_with(" v")),
            "{name} written through server {i} reads differently: {seen:?}"
        );
    }
    eventually(30, "the same objects through every server", || {
        let get = |s: &TestServer, what: &str, ns: &str| {
            let path = "jsonpath={range .items[*]}{.metadata.name}={.metadata.uid}@{.metadata.resourceVersion} {end}";
            try_kubectl(s, &["-n", ns, "get", what, "-o", path])
        };
        let views: Vec<String> = servers
            .iter()
            .map(|s| {
                Ok(format!(
                    "{} | {} | {}",
                    get(s, "namespaces", NS)?,
                    get(s, "deployments", NS)?,
                    get(s, "configmaps", NS)?
                ))
            })
            .collect::<Result<_, String>>()?;
        if views.iter().all(|v| v == &views[0]) {
            Ok(())
        } else {
            Err(format!("{views:#?}"))
        }
    });
    eventually(60, "3 web and 2 steady pods", || {
        let web = live_pods(a, NS, "app=web")?.len();
        let steady = live_pods(b, NS, "app=steady")?.len();
        if web == 3 && steady == STEADY_REPLICAS {
            Ok(())
        } else {
            Err(format!("web {web}, steady {steady}"))
        }
    });
}

/// SIGKILL the server holding the kube-controller-manager Lease: within 20 s another server's
/// controllers replace a deleted pod and converge a scaled Deployment. Returns the simulated
/// nodes, started afterwards against a server that does not hold the scheduler's Lease.
fn controller_manager_failover(servers: &[TestServer]) -> Sim {
    let kcm = eventually(30, "the controller manager's holder", || {
        holder(servers, "kube-controller-manager")
    });
    let survivor = &servers[(kcm + 1) % servers.len()];
    let before_pods = names(&live_pods(survivor, NS, "app=web").unwrap());
    let victim = before_pods.iter().next().unwrap().clone();
    let old_holder = survivor.kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "lease",
        "kube-controller-manager",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);

    servers[kcm].kill9();
    let killed = Instant::now();
    survivor.kubectl_ok(&["-n", NS, "delete", "pod", &victim, "--wait=false"]);
    survivor.kubectl_ok(&["-n", NS, "scale", "deployment", "web", "--replicas=4"]);
    before(
        killed + FAILOVER,
        "another controller manager to replace the pod and scale up",
        || {
            let pods = names(&live_pods(survivor, NS, "app=web")?);
            let status = try_kubectl(
                survivor,
                &[
                    "-n",
                    NS,
                    "get",
                    "deployment",
                    "web",
                    "-o",
                    "jsonpath={.status.replicas} {.status.observedGeneration} {.metadata.generation}",
                ],
            )?;
            let s: Vec<&str> = status.split_whitespace().collect();
            if pods.len() == 4
                && !pods.contains(&victim)
                && s.len() == 3
                && s[0] == "4"
                && s[1] == s[2]
            {
                Ok(())
            } else {
                Err(format!("pods {pods:?}, status {status}"))
            }
        },
    );
    eprintln!("controller manager failover after {:?}", killed.elapsed());
    let new_holder = holder(servers, "kube-controller-manager").unwrap();
    assert_ne!(new_holder, kcm, "the killed server still holds the Lease");
    let id = survivor.kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "lease",
        "kube-controller-manager",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_ne!(id, old_holder);
    servers[kcm].restart();

    // Nodes for the scheduler, from a server the scheduler failover will not kill.
    let sched = eventually(30, "the scheduler's holder", || {
        holder(servers, "kube-scheduler")
    });
    let sim_server = &servers[(sched + 1) % servers.len()];
    let sim = Sim::start(sim_server, servers, 3);
    eventually(30, "3 Ready simulated nodes", || {
        match ready_nodes(sim_server) {
            Ok(3) => Ok(()),
            Ok(n) => Err(format!("{n} Ready nodes; sim log:\n{}", sim.logs())),
            Err(e) => Err(e),
        }
    });
    sim
}

/// SIGKILL the server holding the kube-scheduler Lease: within 20 s a new pod is bound by
/// another server's scheduler.
fn scheduler_failover(servers: &[TestServer], sim: &Sim) {
    // Before: the current scheduler binds every pod.
    eventually(30, "every web pod bound", || {
        let pods = live_pods(running(servers), NS, "app=web")?;
        let bound = pods
            .iter()
            .filter(|p| {
                p["spec"]["nodeName"]
                    .as_str()
                    .is_some_and(|n| !n.is_empty())
            })
            .count();
        if pods.len() == 4 && bound == 4 {
            Ok(())
        } else {
            Err(format!("{bound} of {} bound", pods.len()))
        }
    });
    let sched = holder(servers, "kube-scheduler").unwrap();
    let survivor = &servers[(sched + 1) % servers.len()];
    servers[sched].kill9();
    let killed = Instant::now();
    survivor.kubectl_ok(&[
        "-n",
        NS,
        "run",
        "late",
        "--image=nginx",
        "--restart=Never",
        "--labels=app=late",
    ]);
    let node = before(
        killed + FAILOVER,
        "another scheduler to bind a new pod",
        || {
            let node = try_kubectl(
                survivor,
                &[
                    "-n",
                    NS,
                    "get",
                    "pod",
                    "late",
                    "-o",
                    "jsonpath={.spec.nodeName}",
                ],
            )?;
            if node.is_empty() {
                Err("not bound".to_string())
            } else {
                Ok(node)
            }
        },
    );
    eprintln!(
        "scheduler failover after {:?}: late on {node}",
        killed.elapsed()
    );
    assert!(node.starts_with("sim-"), "bound to {node}");
    let new_holder = holder(servers, "kube-scheduler").unwrap();
    assert_ne!(new_holder, sched, "the killed server still holds the Lease");
    servers[sched].restart();
    assert_eq!(
        ready_nodes(running(servers)).unwrap(),
        3,
        "sim log:\n{}",
        sim.logs()
    );
}

/// Stop the etcd leader: reads, writes and controllers keep working through every server;
/// start it again: it catches up with what was written meanwhile.
fn member_down_and_back(servers: &[TestServer], etcd: &EtcdCluster) {
    let member = eventually(10, "an etcd leader", || {
        etcd.leader().ok_or_else(|| "no agreed leader".to_string())
    });
    etcd.stop_member(member);
    let stopped = Instant::now();
    let mut written = BTreeSet::new();
    for (i, s) in servers.iter().enumerate() {
        // The first write may wait for a new etcd leader and for the client to drop the member.
        let name = format!("down-{i}-0");
        eventually(30, &format!("a write through server {i}"), || {
            create_configmap(s, NS, &name, &name)
                .map_err(|e| format!("{e}\n--- server {i} log ---\n{}", s.log_tail(40)))
        });
        written.insert(name);
    }
    eprintln!("writes resumed {:?} after the etcd stop", stopped.elapsed());
    // Then writes and reads go through at once.
    for round in 1..4 {
        for (i, s) in servers.iter().enumerate() {
            let name = format!("down-{i}-{round}");
            if let Err(e) = create_configmap(s, NS, &name, &name) {
                panic!("writing {name} through server {i} with etcd member {member} down: {e}");
            }
            let got = try_kubectl(
                &servers[(i + 1) % servers.len()],
                &[
                    "-n",
                    NS,
                    "get",
                    "configmap",
                    &name,
                    "-o",
                    "jsonpath={.data.value}",
                ],
            );
            assert_eq!(got.as_deref(), Ok(name.as_str()), "reading {name}");
            written.insert(name);
        }
    }
    // Watches survive: a deleted pod is replaced.
    let pods = names(&live_pods(&servers[0], NS, "app=web").unwrap());
    let victim = pods.iter().next().unwrap().clone();
    servers[0].kubectl_ok(&["-n", NS, "delete", "pod", &victim, "--wait=false"]);
    eventually(20, "a replacement pod with an etcd member down", || {
        let now = names(&live_pods(&servers[1], NS, "app=web")?);
        if now.len() == pods.len() && !now.contains(&victim) {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });

    let other = (member + 1) % etcd.len();
    let prefix = format!("/registry/configmaps/{NS}/");
    let expected: Vec<String> = written.iter().map(|n| format!("{prefix}{n}")).collect();
    let stale = etcd.keys(member, &prefix);
    assert!(stale.is_err(), "member {member} answers while stopped");
    etcd.start_member(member);
    let target = etcd.revision(other).unwrap();
    eventually(30, &format!("etcd member {member} to catch up"), || {
        let keys = etcd.keys(member, &prefix)?;
        let missing: Vec<&String> = expected.iter().filter(|k| !keys.contains(k)).collect();
        let revision = etcd.revision(member)?;
        if missing.is_empty() && revision >= target {
            Ok(())
        } else {
            Err(format!(
                "revision {revision} < {target} or missing {missing:?}"
            ))
        }
    });
    eventually(10, "the same configmap keys on every member", || {
        let all: Vec<Vec<String>> = (0..etcd.len())
            .map(|i| etcd.keys(i, &prefix))
            .collect::<Result<_, _>>()?;
        if all.iter().all(|k| k == &all[0]) {
            Ok(())
        } else {
            Err(format!("{all:?}"))
        }
    });
}

/// The outcome of one checker thread's writes.
#[derive(Default)]
struct Writes {
    /// Name → value of every write kubectl reported as created.
    acked: BTreeMap<String, String>,
    /// Names whose write failed (they may or may not exist).
    failed: BTreeSet<String>,
}

/// Several threads write ConfigMaps with sequential names round-robin through all servers
/// while the servers are SIGKILLed and restarted one after the other; a poller watches the
/// `steady` Deployment's pods. Afterwards every acknowledged write is there exactly once with
/// its data, nothing else appeared, every server and etcd member agrees, and `steady` never had
/// more than its replicas nor any new pod.
fn rolling_restart_under_writes(servers: &[TestServer], etcd: &EtcdCluster) {
    let steady_before = eventually(30, "steady's pods", || {
        let p = names(&live_pods(&servers[0], NS, "app=steady")?);
        if p.len() == STEADY_REPLICAS {
            Ok(p)
        } else {
            Err(format!("{p:?}"))
        }
    });
    let stop = AtomicBool::new(false);
    let writes = Mutex::new(Writes::default());
    let observations = Mutex::new((0usize, 0usize, BTreeSet::new()));
    std::thread::scope(|scope| {
        for t in 0..3 {
            let (stop, writes) = (&stop, &writes);
            scope.spawn(move || {
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("w{t}-{seq:04}");
                    let value = format!("{t}/{seq}");
                    let s = &servers[(t + seq) % servers.len()];
                    let literal = format!("--from-literal=value={value}");
                    let ok = try_kubectl(
                        s,
                        &["-n", WRITES_NS, "create", "configmap", &name, &literal],
                    )
                    .is_ok_and(|out| out.trim() == format!("configmap/{name} created"));
                    let mut w = writes.lock().unwrap();
                    if ok {
                        w.acked.insert(name, value);
                    } else {
                        w.failed.insert(name);
                    }
                    drop(w);
                    seq += 1;
                    std::thread::sleep(Duration::from_millis(if ok { 50 } else { 200 }));
                }
            });
        }
        {
            let (stop, observations) = (&stop, &observations);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if let Ok(pods) = live_pods(&servers[n % servers.len()], NS, "app=steady") {
                        let mut o = observations.lock().unwrap();
                        o.0 += 1;
                        o.1 = o.1.max(pods.len());
                        o.2.extend(names(&pods));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        std::thread::sleep(Duration::from_secs(2));
        for (i, s) in servers.iter().enumerate() {
            let t = Instant::now();
            s.kill9();
            std::thread::sleep(Duration::from_secs(1));
            s.restart();
            eprintln!("server {i} back after {:?}", t.elapsed());
            std::thread::sleep(Duration::from_secs(2));
        }
        stop.store(true, Ordering::Relaxed);
    });

    let writes = writes.into_inner().unwrap();
    let (polls, max_live, seen) = observations.into_inner().unwrap();
    eprintln!(
        "{} acknowledged writes, {} failed; {polls} polls of steady, at most {max_live} pods",
        writes.acked.len(),
        writes.failed.len()
    );
    assert!(
        writes.acked.len() >= 30,
        "too few acknowledged writes to judge: {}",
        writes.acked.len()
    );
    assert!(polls >= 20, "too few polls of steady's pods: {polls}");
    assert!(
        max_live <= STEADY_REPLICAS,
        "steady had {max_live} live pods (replicas {STEADY_REPLICAS})"
    );
    assert_eq!(
        seen, steady_before,
        "steady, which nobody changed, got new pods"
    );

    // Every server lists every acknowledged write once, with its data, and nothing unknown.
    let mut views = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let list = eventually(15, "the checker's ConfigMaps", || configmaps(s, WRITES_NS));
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for (name, _, _) in &list {
            *count.entry(name).or_default() += 1;
        }
        let dups: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
        assert!(dups.is_empty(), "server {i} lists duplicates: {dups:?}");
        let by_name: BTreeMap<&str, &str> = list
            .iter()
            .map(|(n, _, v)| (n.as_str(), v.as_str()))
            .collect();
        for (name, value) in &writes.acked {
            assert_eq!(
                by_name.get(name.as_str()),
                Some(&value.as_str()),
                "acknowledged write {name} through server {i}"
            );
        }
        for name in by_name.keys() {
            assert!(
                *name == "kube-root-ca.crt"
                    || writes.acked.contains_key(*name)
                    || writes.failed.contains(*name),
                "server {i} lists {name}, which nobody wrote"
            );
        }
        // (kube-root-ca.crt is the controller manager's: the servers share one CA, so it is
        // written once and compared like the rest)
        views.push(list);
    }
    assert!(
        views.iter().all(|v| v == &views[0]),
        "the servers list different ConfigMaps or resourceVersions"
    );

    // etcd holds exactly those objects, on every member.
    let prefix = format!("/registry/configmaps/{WRITES_NS}/");
    let listed: Vec<String> = {
        let mut k: Vec<String> = views[0]
            .iter()
            .map(|(n, _, _)| format!("{prefix}{n}"))
            .collect();
        k.sort();
        k
    };
    eventually(
        15,
        "every etcd member to hold exactly the listed ConfigMaps",
        || {
            for i in 0..etcd.len() {
                let keys = etcd.keys(i, &prefix)?;
                if keys != listed {
                    return Err(format!(
                        "member {i}: {} keys, {} listed",
                        keys.len(),
                        listed.len()
                    ));
                }
            }
            Ok(())
        },
    );

    // Everything still works afterwards: writes through each server, steady unchanged.
    for (i, s) in servers.iter().enumerate() {
        let name = format!("after-{i}");
        s.kubectl_ok(&[
            "-n",
            WRITES_NS,
            "create",
            "configmap",
            &name,
            "--from-literal=value=x",
        ]);
    }
    let steady_after = names(&live_pods(&servers[2], NS, "app=steady").unwrap());
    assert_eq!(steady_after, steady_before);
}
