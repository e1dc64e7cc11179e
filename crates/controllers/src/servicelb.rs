//! The LoadBalancer status controller ("service-lb-controller"), like k3s's ServiceLB without
//! its svclb pods: every Service of type LoadBalancer without `spec.loadBalancerClass` gets
//! the addresses of the Ready, schedulable nodes as `status.loadBalancer.ingress` (InternalIP
//! and ExternalIP, `ipMode: VIP`, sorted), kept up to date as nodes come and go; the ingress is
//! cleared when the Service stops being a LoadBalancer. Events follow upstream's service
//! controller (`EnsuringLoadBalancer`/`EnsuredLoadBalancer`,
//! `DeletingLoadBalancer`/`DeletedLoadBalancer`). Traffic to those addresses is the service
//! proxy's business (NodePorts and load balancer IPs).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use informers::workqueue::{Requeue, run_workers};
use informers::{Event, EventType, Informer, Recorder, WorkQueue, key_of};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, Node, Service};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::Context;

/// The controller's name.
pub const NAME: &str = "service-lb-controller";
/// Nodes with this label are left out of load balancers (upstream
/// `LabelNodeExcludeBalancers`).
pub const LABEL_EXCLUDE_BALANCERS: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
const WORKERS: usize = 2;

/// A sync error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

struct Controller {
    client: kube::Client,
    services: Informer<Service>,
    nodes: Informer<Node>,
    queue: WorkQueue<String>,
    recorder: Recorder,
}

/// Whether the controller handles this Service: type LoadBalancer, no loadBalancerClass.
pub fn wants_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none()
    }) && svc.metadata.deletion_timestamp.is_none()
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether a node's addresses belong in load balancer status: Ready, schedulable, not
/// excluded, not being deleted.
pub fn node_included(node: &Node) -> bool {
    node_ready(node)
        && !node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false)
        && !node
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(LABEL_EXCLUDE_BALANCERS))
        && node.metadata.deletion_timestamp.is_none()
}

/// The InternalIP and ExternalIP addresses of the included nodes, sorted and deduplicated.
pub fn ingress_for(nodes: &[Arc<Node>]) -> Vec<LoadBalancerIngress> {
    let ips: BTreeSet<IpAddr> = nodes
        .iter()
        .filter(|n| node_included(n))
        .flat_map(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.addresses.clone())
                .unwrap_or_default()
        })
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    ips.into_iter()
        .map(|ip| LoadBalancerIngress {
            ip: Some(ip.to_string()),
            ip_mode: Some("VIP".into()),
            ..Default::default()
        })
        .collect()
}

fn current_ingress(svc: &Service) -> Vec<LoadBalancerIngress> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default()
}

/// What in a node matters to load balancers.
fn node_lb_state(n: &Node) -> (bool, Option<Vec<(String, String)>>) {
    (
        node_included(n),
        n.status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(|a| {
                a.iter()
                    .map(|a| (a.type_.clone(), a.address.clone()))
                    .collect()
            }),
    )
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        services: ctx.factory.informer::<Service>(),
        nodes: ctx.factory.informer::<Node>(),
        queue: WorkQueue::new(ctx.shutdown.clone()),
        recorder: Recorder::new(ctx.client.clone(), NAME, None, ctx.shutdown.clone()),
    });
    let mut svc_events = c.services.subscribe();
    let mut node_events = c.nodes.subscribe();
    let handler = c.clone();
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = svc_events.recv() => match ev {
                    Some(Event::Added(s) | Event::Updated(_, s)) => {
                        handler.queue.add(key_of(s.as_ref()));
                    }
                    Some(Event::Deleted(_)) => {}
                    None => return,
                },
                ev = node_events.recv() => {
                    let changed = match &ev {
                        Some(Event::Added(n) | Event::Deleted(n)) => node_included(n),
                        Some(Event::Updated(o, n)) => node_lb_state(o) != node_lb_state(n),
                        None => return,
                    };
                    if changed {
                        handler.queue_all_load_balancers();
                    }
                }
            }
        }
    });
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        _ = async { c.services.wait_synced().await; c.nodes.wait_synced().await } => {}
    }
    let w = c.clone();
    run_workers(c.queue.clone(), WORKERS, NAME, move |key: String| {
        let w = w.clone();
        async move { w.sync(&key).await }
    })
    .await;
}

impl Controller {
    fn queue_all_load_balancers(&self) {
        for s in self.services.list() {
            if wants_load_balancer(&s) {
                self.queue.add(key_of(s.as_ref()));
            }
        }
    }

    async fn sync(&self, key: &str) -> Result<Requeue, Error> {
        let Some(svc) = self.services.get_key(key) else {
            return Ok(Requeue::No);
        };
        let current = current_ingress(&svc);
        let has_class = svc
            .spec
            .as_ref()
            .is_some_and(|s| s.load_balancer_class.is_some());
        let desired = if wants_load_balancer(&svc) {
            ingress_for(&self.nodes.list())
        } else if has_class || current.is_empty() {
            // Another implementation's, or nothing to clear.
            return Ok(Requeue::No);
        } else {
            Vec::new()
        };
        if desired == current {
            return Ok(Requeue::No);
        }
        let ensuring = !desired.is_empty() || wants_load_balancer(&svc);
        let (before, after, msg_before, msg_after) = if ensuring {
            (
                "EnsuringLoadBalancer",
                "EnsuredLoadBalancer",
                "Ensuring load balancer",
                "Ensured load balancer",
            )
        } else {
            (
                "DeletingLoadBalancer",
                "DeletedLoadBalancer",
                "Deleting load balancer",
                "Deleted load balancer",
            )
        };
        self.recorder
            .event(svc.as_ref(), EventType::Normal, before, msg_before);
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let api: Api<Service> = Api::namespaced(self.client.clone(), &ns);
        let patch = if desired.is_empty() {
            json!({"status": {"loadBalancer": {"ingress": null}}})
        } else {
            json!({"status": {"loadBalancer": {"ingress": desired}}})
        };
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Requeue::No),
            Err(e) => return Err(e.into()),
        }
        self.recorder
            .event(svc.as_ref(), EventType::Normal, after, msg_after);
        Ok(Requeue::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ready: bool, unschedulable: bool, addrs: &[(&str, &str)]) -> Arc<Node> {
        let addresses: Vec<_> = addrs
            .iter()
            .map(|(t, a)| json!({"type": t, "address": a}))
            .collect();
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"unschedulable": unschedulable},
                "status": {
                    "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
                    "addresses": addresses,
                },
            }))
            .expect("valid node"),
        )
    }

    #[test]
    fn ingress_lists_ready_schedulable_nodes_sorted() {
        let nodes = vec![
            node(
                "b",
                true,
                false,
                &[
                    ("InternalIP", "10.0.0.9"),
                    ("ExternalIP", "203.0.113.5"),
                    ("Hostname", "b"),
                ],
            ),
            node("a", true, false, &[("InternalIP", "10.0.0.10")]),
            node("c", false, false, &[("InternalIP", "10.0.0.11")]),
            node("d", true, true, &[("InternalIP", "10.0.0.12")]),
        ];
        let ips: Vec<String> = ingress_for(&nodes)
            .into_iter()
            .map(|i| {
                assert_eq!(i.ip_mode.as_deref(), Some("VIP"));
                i.ip.unwrap_or_default()
            })
            .collect();
        assert_eq!(ips, ["10.0.0.9", "10.0.0.10", "203.0.113.5"]);
    }
}
