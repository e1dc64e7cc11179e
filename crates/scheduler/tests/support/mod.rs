//! Shared by the scheduler tests: a real API server (in-process, SQLite in a temp dir), a kube
//! client to it, the scheduler running, and helpers to create nodes and pods.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A running in-process API server with the scheduler; shuts down when dropped.
pub struct Server {
    /// Client as an administrator.
    pub client: kube::Client,
    /// Shared informers over `client`.
    pub factory: Arc<informers::Factory>,
    /// Cancelled on drop.
    pub shutdown: CancellationToken,
    _api: apiserver::inprocess::TempServer,
}

/// Starts an API server (without the scheduler).
pub async fn server() -> Server {
    let api = apiserver::inprocess::TempServer::start().await.unwrap();
    let factory = informers::Factory::new(api.client.clone(), api.shutdown.clone());
    Server {
        client: api.client.clone(),
        factory,
        shutdown: api.shutdown.clone(),
        _api: api,
    }
}

/// Starts an API server and the scheduler with `config`.
pub async fn with_scheduler(config: scheduler::Config) -> Server {
    let s = server().await;
    tokio::spawn(scheduler::run(
        s.client.clone(),
        s.factory.clone(),
        config,
        s.shutdown.clone(),
    ));
    s
}

impl Server {
    /// Creates a node with labels, taints and allocatable cpu/memory/pods (set through the
    /// status subresource, as a kubelet does).
    pub async fn node(
        &self,
        name: &str,
        labels: Value,
        taints: Value,
        cpu: &str,
        mem: &str,
        pods: u32,
    ) {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut labels = labels;
        labels["kubernetes.io/hostname"] = json!(name);
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
        }))
        .unwrap();
        api.create(&PostParams::default(), &node).await.unwrap();
        let res = json!({"cpu": cpu, "memory": mem, "pods": pods.to_string()});
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"capacity": res, "allocatable": res}})),
        )
        .await
        .unwrap();
    }

    /// Creates a pod from a JSON spec fragment.
    pub async fn pod(&self, name: &str, labels: Value, spec: Value) {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
        }
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": spec,
        }))
        .unwrap();
        Api::<Pod>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    }

    /// A pod with one container requesting `cpu` (and `mem` if not empty).
    pub async fn pod_requesting(&self, name: &str, cpu: &str, mem: &str) {
        let mut req = json!({"cpu": cpu});
        if !mem.is_empty() {
            req["memory"] = json!(mem);
        }
        self.pod(
            name,
            json!({}),
            json!({"containers": [{"name": "c", "image": "busybox", "resources": {"requests": req}}]}),
        )
        .await;
    }

    /// The pod's node once bound.
    pub async fn bound_node(&self, name: &str) -> String {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        eventually(20, &format!("pod {name} bound"), || {
            let api = api.clone();
            async move {
                api.get(name)
                    .await
                    .ok()
                    .and_then(|p| p.spec.and_then(|s| s.node_name))
            }
        })
        .await
    }

    /// The pod's spec.nodeName now.
    pub async fn node_of(&self, name: &str) -> Option<String> {
        Api::<Pod>::namespaced(self.client.clone(), "default")
            .get(name)
            .await
            .unwrap()
            .spec
            .and_then(|s| s.node_name)
    }

    /// The message of the first event `reason` about pod `name`.
    pub async fn event_message(&self, name: &str, reason: &str) -> String {
        let api: Api<Event> = Api::namespaced(self.client.clone(), "default");
        eventually(20, &format!("{reason} event for {name}"), || {
            let api = api.clone();
            async move {
                let list = api.list(&ListParams::default()).await.ok()?;
                list.items
                    .into_iter()
                    .filter(|e| {
                        e.involved_object.name.as_deref() == Some(name)
                            && e.reason.as_deref() == Some(reason)
                    })
                    .filter_map(|e| e.message)
                    .next_back()
            }
        })
        .await
    }

    /// Waits until the pod's event `reason` has exactly `message`.
    pub async fn wait_event(&self, name: &str, reason: &str, message: &str) {
        let api: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let found = eventually(
            20,
            &format!("{reason} event {message:?} for {name}"),
            || {
                let api = api.clone();
                async move {
                    let list = api.list(&ListParams::default()).await.ok()?;
                    let msgs: Vec<String> = list
                        .items
                        .into_iter()
                        .filter(|e| {
                            e.involved_object.name.as_deref() == Some(name)
                                && e.reason.as_deref() == Some(reason)
                        })
                        .filter_map(|e| e.message)
                        .collect();
                    msgs.iter().any(|m| m == message).then_some(msgs)
                }
            },
        )
        .await;
        assert!(!found.is_empty());
    }

    /// Deletes a pod at once.
    pub async fn delete_pod(&self, name: &str) {
        Api::<Pod>::namespaced(self.client.clone(), "default")
            .delete(name, &kube::api::DeleteParams::default().grace_period(0))
            .await
            .unwrap();
    }
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
