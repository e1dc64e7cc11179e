//! Simulated nodes against a real (in-process) API server.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use support::{Server, eventually, server};

fn config(nodes: usize) -> sim::Config {
    sim::Config {
        nodes,
        renew_interval: Duration::from_millis(200),
        ..Default::default()
    }
}

async fn start(srv: &Server, cfg: sim::Config) -> sim::Sim {
    sim::start(
        srv.client.clone(),
        srv.factory.clone(),
        cfg,
        srv.shutdown.clone(),
    )
    .await
    .unwrap()
}

fn pod(name: &str, node: &str, probe_cmd: Option<&str>) -> Pod {
    let probe = probe_cmd
        .map(|c| format!(r#","readinessProbe":{{"exec":{{"command":["{c}"]}}}}"#))
        .unwrap_or_default();
    serde_json::from_str(&format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default"}},
            "spec":{{"nodeName":"{node}","containers":[{{"name":"app","image":"nginx:1.27"{probe}}}]}}}}"#
    ))
    .unwrap()
}

async fn set_pod_cidr(srv: &Server, node: &str, cidr: &str) {
    let nodes: Api<Node> = Api::all(srv.client.clone());
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})),
        )
        .await
        .unwrap();
}

fn condition(pod: &Pod, type_: &str) -> Option<(String, Option<String>, Option<String>)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn renew_time(leases: &Api<Lease>, name: &str) -> Option<k8s_openapi::jiff::Timestamp> {
    let l = leases.get_opt(name).await.ok()??;
    l.spec?.renew_time.map(|t| t.0)
}

#[tokio::test]
async fn nodes_register_with_capacity_ready_and_an_owned_lease() {
    let srv = server().await;
    start(&srv, config(3)).await;
    let nodes: Api<Node> = Api::all(srv.client.clone());
    let leases: Api<Lease> = Api::namespaced(srv.client.clone(), sim::LEASE_NAMESPACE);
    for (i, name) in ["sim-0000", "sim-0001", "sim-0002"].iter().enumerate() {
        let node = eventually(10, "node registered", || async {
            nodes.get_opt(name).await.unwrap()
        })
        .await;
        let labels = node.metadata.labels.clone().unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], *name);
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
        assert_eq!(labels["type"], "sim");
        let status = node.status.clone().unwrap();
        let cap = status.capacity.unwrap();
        assert_eq!(cap["cpu"].0, "32");
        assert_eq!(cap["memory"].0, "256Gi");
        assert_eq!(cap["pods"].0, "110");
        assert!(cap.contains_key("ephemeral-storage"));
        assert_eq!(status.allocatable.unwrap()["pods"].0, "110");
        let conds = status.conditions.unwrap();
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("kubelet is posting ready status")
        );
        let mem = conds.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!(mem.status, "False");
        assert_eq!(mem.reason.as_deref(), Some("KubeletHasSufficientMemory"));
        let addrs = status.addresses.unwrap();
        assert_eq!(addrs[0].type_, "InternalIP");
        assert_eq!(addrs[0].address, format!("10.200.0.{}", i + 1));
        assert_eq!(addrs[1].type_, "Hostname");
        let info = status.node_info.unwrap();
        assert_eq!(info.kubelet_version, "v1.35.0");
        assert_eq!(info.container_runtime_version, "sim://1.0");
        assert_eq!(
            status
                .daemon_endpoints
                .unwrap()
                .kubelet_endpoint
                .unwrap()
                .port,
            10250
        );

        let lease = eventually(10, "lease created", || async {
            leases.get_opt(name).await.unwrap()
        })
        .await;
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some(*name));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        let owner = &lease.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", *name));
        assert_eq!(Some(&owner.uid), node.metadata.uid.as_ref());
    }
}

#[tokio::test]
async fn leases_are_renewed_and_the_annotation_stops_and_resumes_them() {
    let srv = server().await;
    start(&srv, config(2)).await;
    let leases: Api<Lease> = Api::namespaced(srv.client.clone(), sim::LEASE_NAMESPACE);
    let first = eventually(10, "lease", || renew_time(&leases, "sim-0001")).await;
    eventually(10, "renewTime advances", || async {
        renew_time(&leases, "sim-0001").await.filter(|t| *t > first)
    })
    .await;

    let nodes: Api<Node> = Api::all(srv.client.clone());
    let annotate = |v: serde_json::Value| {
        let nodes = nodes.clone();
        async move {
            nodes
                .patch(
                    "sim-0001",
                    &PatchParams::default(),
                    &Patch::Merge(
                        serde_json::json!({"metadata": {"annotations": {sim::HEARTBEAT_ANNOTATION: v}}}),
                    ),
                )
                .await
                .unwrap();
        }
    };
    annotate(serde_json::json!("stopped")).await;
    // Let a renewal in flight finish, then the lease must stay still.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped_at = renew_time(&leases, "sim-0001").await.unwrap();
    let other = renew_time(&leases, "sim-0000").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(renew_time(&leases, "sim-0001").await.unwrap(), stopped_at);
    // The other node keeps renewing.
    assert!(renew_time(&leases, "sim-0000").await.unwrap() > other);

    // A pod bound to the stopped node is not acted on.
    set_pod_cidr(&srv, "sim-0001", "10.42.1.0/24").await;
    let pods: Api<Pod> = Api::namespaced(srv.client.clone(), "default");
    pods.create(&PostParams::default(), &pod("on-dead", "sim-0001", None))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let p = pods.get("on-dead").await.unwrap();
    assert_ne!(
        p.status.and_then(|s| s.phase).as_deref(),
        Some("Running"),
        "a stopped node must not run pods"
    );

    // Removing the annotation resumes the heartbeat and the pod handling.
    annotate(serde_json::Value::Null).await;
    eventually(10, "renewTime advances again", || async {
        renew_time(&leases, "sim-0001")
            .await
            .filter(|t| *t > stopped_at)
    })
    .await;
    eventually(10, "pod Running after resume", || async {
        let p = pods.get("on-dead").await.unwrap();
        (p.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn handle_stops_heartbeat() {
    let srv = server().await;
    let sim = start(&srv, config(1)).await;
    let leases: Api<Lease> = Api::namespaced(srv.client.clone(), sim::LEASE_NAMESPACE);
    eventually(10, "lease", || renew_time(&leases, "sim-0000")).await;
    assert!(sim.set_heartbeat("sim-0000", false));
    assert!(!sim.set_heartbeat("other", false));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = renew_time(&leases, "sim-0000").await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(renew_time(&leases, "sim-0000").await.unwrap(), t);
    sim.set_heartbeat("sim-0000", true);
    eventually(10, "renewal resumes", || async {
        renew_time(&leases, "sim-0000").await.filter(|n| *n > t)
    })
    .await;
}

#[tokio::test]
async fn bound_pod_runs_with_an_ip_from_the_pod_cidr() {
    let srv = server().await;
    start(&srv, config(1)).await;
    let nodes: Api<Node> = Api::all(srv.client.clone());
    eventually(10, "node", || async {
        nodes.get_opt("sim-0000").await.unwrap()
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(srv.client.clone(), "default");
    pods.create(&PostParams::default(), &pod("web", "sim-0000", None))
        .await
        .unwrap();
    // No podCIDR yet: the pod waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p = pods.get("web").await.unwrap();
    assert!(p.status.and_then(|s| s.pod_ip).is_none());

    set_pod_cidr(&srv, "sim-0000", "10.42.5.0/24").await;
    let p = eventually(10, "pod Running and Ready", || async {
        let p = pods.get("web").await.unwrap();
        let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
        let ready = condition(&p, "Ready")?.0 == "True";
        (running && ready).then_some(p)
    })
    .await;
    let status = p.status.clone().unwrap();
    let ip = status.pod_ip.clone().unwrap();
    assert!(
        ip.starts_with("10.42.5."),
        "pod IP {ip} outside the podCIDR"
    );
    assert_eq!(status.pod_ips.unwrap()[0].ip, ip);
    assert_eq!(status.host_ip.as_deref(), Some("10.200.0.1"));
    assert!(status.start_time.is_some());
    for t in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "PodScheduled",
    ] {
        assert_eq!(
            condition(&p, t).map(|c| c.0).as_deref(),
            Some("True"),
            "{t}"
        );
    }
    let cs = &status.container_statuses.unwrap()[0];
    assert!(cs.ready);
    assert_eq!(cs.started, Some(true));
    assert_eq!(cs.restart_count, 0);
    assert_eq!(cs.image, "nginx:1.27");
    assert_eq!(cs.image_id, "sim://nginx:1.27");
    let uid = p.metadata.uid.clone().unwrap();
    assert_eq!(cs.container_id.clone().unwrap(), format!("sim://{uid}-app"));
    assert!(cs.state.as_ref().unwrap().running.is_some());

    // A second pod gets another address.
    pods.create(&PostParams::default(), &pod("web2", "sim-0000", None))
        .await
        .unwrap();
    let ip2 = eventually(10, "second pod IP", || async {
        pods.get("web2").await.unwrap().status?.pod_ip
    })
    .await;
    assert!(ip2.starts_with("10.42.5."));
    assert_ne!(ip, ip2);
}

#[tokio::test]
async fn false_readiness_probe_keeps_the_pod_not_ready() {
    let srv = server().await;
    start(&srv, config(1)).await;
    let nodes: Api<Node> = Api::all(srv.client.clone());
    eventually(10, "node", || async {
        nodes.get_opt("sim-0000").await.unwrap()
    })
    .await;
    set_pod_cidr(&srv, "sim-0000", "10.42.0.0/24").await;
    let pods: Api<Pod> = Api::namespaced(srv.client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod("never", "sim-0000", Some("/bin/false")),
    )
    .await
    .unwrap();
    let p = eventually(10, "pod Running", || async {
        let p = pods.get("never").await.unwrap();
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(p)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p2 = pods.get("never").await.unwrap();
    for p in [&p, &p2] {
        let (status, reason, message) = condition(p, "Ready").unwrap();
        assert_eq!(status, "False");
        assert_eq!(reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            message.as_deref(),
            Some("containers with unready status: [app]")
        );
        assert_eq!(condition(p, "ContainersReady").unwrap().0, "False");
        assert!(
            !p.status
                .as_ref()
                .unwrap()
                .container_statuses
                .as_ref()
                .unwrap()[0]
                .ready
        );
    }
}

#[tokio::test]
async fn deleted_pod_is_terminated_and_removed() {
    let srv = server().await;
    start(&srv, config(1)).await;
    let nodes: Api<Node> = Api::all(srv.client.clone());
    eventually(10, "node", || async {
        nodes.get_opt("sim-0000").await.unwrap()
    })
    .await;
    set_pod_cidr(&srv, "sim-0000", "10.42.0.0/24").await;
    let pods: Api<Pod> = Api::namespaced(srv.client.clone(), "default");
    pods.create(&PostParams::default(), &pod("doomed", "sim-0000", None))
        .await
        .unwrap();
    eventually(10, "pod Running", || async {
        let p = pods.get("doomed").await.unwrap();
        (p.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    let mut events = srv.factory.informer::<Pod>().subscribe();
    // A graceful deletion (30 s by default): the simulated kubelet finishes it at once.
    pods.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    eventually(5, "pod removed", || async {
        pods.get_opt("doomed")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    // On the way, the containers stopped with exit code 0 and the pod Succeeded.
    let mut succeeded = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
        let p = ev.object();
        if p.metadata.name.as_deref() != Some("doomed") {
            continue;
        }
        if let informers::Event::Deleted(_) = ev {
            break;
        }
        let Some(status) = p.status.as_ref() else {
            continue;
        };
        if status.phase.as_deref() == Some("Succeeded") {
            assert!(p.metadata.deletion_timestamp.is_some());
            let term = status.container_statuses.as_ref().unwrap()[0]
                .state
                .as_ref()
                .unwrap()
                .terminated
                .clone()
                .unwrap();
            assert_eq!(term.exit_code, 0);
            assert_eq!(term.reason.as_deref(), Some("Completed"));
            assert_eq!(
                condition(p, "Ready").unwrap().1.as_deref(),
                Some("PodCompleted")
            );
            succeeded = true;
        }
    }
    assert!(
        succeeded,
        "the pod was not reported Succeeded before its removal"
    );
}

#[tokio::test]
async fn node_marked_not_ready_by_someone_else_reports_ready_again() {
    let srv = server().await;
    start(&srv, config(1)).await;
    let nodes: Api<Node> = Api::all(srv.client.clone());
    eventually(10, "node", || async {
        nodes.get_opt("sim-0000").await.unwrap()
    })
    .await;
    // What the node lifecycle controller does when leases go stale.
    let patch = serde_json::json!({"status": {"conditions": [{
        "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped posting node status.",
    }]}});
    nodes
        .patch_status(
            "sim-0000",
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
        .unwrap();
    eventually(5, "Ready True again", || async {
        let n = nodes.get("sim-0000").await.unwrap();
        let c = n
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (c.status == "True" && c.reason.as_deref() == Some("KubeletReady")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn resumed_node_renews_its_lease_at_once() {
    let srv = server().await;
    let cfg = sim::Config {
        nodes: 1,
        renew_interval: Duration::from_secs(120),
        ..Default::default()
    };
    start(&srv, cfg).await;
    let leases: Api<Lease> = Api::namespaced(srv.client.clone(), sim::LEASE_NAMESPACE);
    let t0 = eventually(10, "lease", || renew_time(&leases, "sim-0000")).await;
    let nodes: Api<Node> = Api::all(srv.client.clone());
    let annotate = |v: serde_json::Value| {
        let nodes = nodes.clone();
        async move {
            let patch =
                serde_json::json!({"metadata": {"annotations": {sim::HEARTBEAT_ANNOTATION: v}}});
            nodes
                .patch("sim-0000", &PatchParams::default(), &Patch::Merge(patch))
                .await
                .unwrap();
        }
    };
    annotate(serde_json::json!("stopped")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    annotate(serde_json::Value::Null).await;
    // Long before the next 120 s slot.
    eventually(3, "lease renewed on resume", || async {
        renew_time(&leases, "sim-0000").await.filter(|t| *t > t0)
    })
    .await;
}

#[tokio::test]
async fn restarted_sim_adopts_its_nodes_and_keeps_pod_ips() {
    let srv = server().await;
    let first = srv.shutdown.child_token();
    sim::start(
        srv.client.clone(),
        srv.factory.clone(),
        config(1),
        first.clone(),
    )
    .await
    .unwrap();
    let nodes: Api<Node> = Api::all(srv.client.clone());
    let uid = eventually(10, "node", || async {
        nodes.get_opt("sim-0000").await.unwrap()?.metadata.uid
    })
    .await;
    set_pod_cidr(&srv, "sim-0000", "10.42.9.0/24").await;
    let pods: Api<Pod> = Api::namespaced(srv.client.clone(), "default");
    pods.create(&PostParams::default(), &pod("before", "sim-0000", None))
        .await
        .unwrap();
    let ip1 = eventually(10, "first pod IP", || async {
        pods.get("before").await.unwrap().status?.pod_ip
    })
    .await;
    first.cancel();
    // While no simulated kubelet runs, a pod is bound; then the simulation restarts.
    pods.create(&PostParams::default(), &pod("after", "sim-0000", None))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sim = start(&srv, config(1)).await;
    let ip2 = eventually(10, "second pod IP", || async {
        pods.get("after").await.unwrap().status?.pod_ip
    })
    .await;
    assert_ne!(ip1, ip2, "an IP of a live pod was handed out again");
    assert!(sim.is_active("sim-0000"));
    // The node was adopted, not recreated.
    assert_eq!(nodes.get("sim-0000").await.unwrap().metadata.uid, Some(uid));
}
