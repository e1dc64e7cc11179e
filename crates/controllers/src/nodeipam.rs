//! The node IPAM controller (upstream `pkg/controller/nodeipam`, "node-ipam-controller", range
//! allocator): every node gets `spec.podCIDR`/`spec.podCIDRs`, one subnet of `--node-cidr-mask-size`
//! from each range of `--cluster-cidr`, never one in use by another node; a deleted node's
//! subnets are released. Allocations are recovered from the existing nodes at start.

pub mod cidrset;

use std::sync::Arc;

use informers::workqueue::{Requeue, run_workers};
use informers::{Event, EventType, Informer, Recorder, WorkQueue};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use parking_lot::Mutex;

use crate::Context;
use cidrset::{Cidr, CidrSet};

/// The controller's name.
pub const NAME: &str = "node-ipam-controller";
/// The event source of the range allocator (upstream `cidrAllocator`).
pub const EVENT_COMPONENT: &str = "cidrAllocator";
/// Concurrent node updates (upstream `cidrUpdateWorkers`).
const WORKERS: usize = 30;

/// A sync error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// Every subnet of the cluster CIDR is taken (upstream's words).
    #[error(
        "failed to allocate cidr from cluster cidr at idx:{0}: CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"
    )]
    Exhausted(usize),
}

struct Controller {
    client: kube::Client,
    nodes: Informer<Node>,
    sets: Mutex<Vec<CidrSet>>,
    /// Subnets handed to a node whose patch is not yet seen, by node name.
    pending: Mutex<std::collections::HashMap<String, Vec<Cidr>>>,
    queue: WorkQueue<String>,
    recorder: Recorder,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let mut sets = Vec::new();
    for part in ctx.config.cluster_cidr.split(',') {
        match part
            .trim()
            .parse::<Cidr>()
            .and_then(|c| CidrSet::new(c, ctx.config.node_cidr_mask_size))
        {
            Ok(s) => sets.push(s),
            Err(e) => {
                tracing::error!(cidr = part, error = %e, "invalid --cluster-cidr; node IPAM disabled");
                ctx.shutdown.cancelled().await;
                return;
            }
        }
    }
    let nodes = ctx.factory.informer::<Node>();
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        nodes: nodes.clone(),
        sets: Mutex::new(sets),
        pending: Mutex::new(Default::default()),
        queue: WorkQueue::new(ctx.shutdown.clone()),
        recorder: Recorder::new(
            ctx.client.clone(),
            EVENT_COMPONENT,
            None,
            ctx.shutdown.clone(),
        ),
    });
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        _ = nodes.wait_synced() => {}
    }
    // Occupy what existing nodes have before handing out anything.
    let mut events = nodes.subscribe();
    let mut initial = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let Event::Added(n) = ev {
            c.occupy(&n);
            initial.push(n);
        }
    }
    for n in initial {
        c.on_node(&n);
    }
    let handler = c.clone();
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = events.recv() => match ev {
                    Some(Event::Added(n) | Event::Updated(_, n)) => handler.on_node(&n),
                    Some(Event::Deleted(n)) => handler.release(&n),
                    None => return,
                },
            }
        }
    });
    let w = c.clone();
    run_workers(c.queue.clone(), WORKERS, NAME, move |name: String| {
        let w = w.clone();
        async move { w.sync(&name).await }
    })
    .await;
}

fn node_cidrs(node: &Node) -> Vec<String> {
    let spec = node.spec.as_ref();
    match spec.and_then(|s| s.pod_cidrs.clone()) {
        Some(v) if !v.is_empty() => v,
        _ => spec.and_then(|s| s.pod_cidr.clone()).into_iter().collect(),
    }
}

impl Controller {
    /// Marks a node's subnets used (upstream `occupyCIDRs`).
    fn occupy(&self, node: &Node) {
        let mut sets = self.sets.lock();
        for (idx, s) in node_cidrs(node).iter().enumerate() {
            let Some(set) = sets.get_mut(idx) else {
                tracing::warn!(node = ?node.metadata.name, cidr = %s, "node has a CIDR beyond the cluster CIDRs");
                continue;
            };
            match s.parse::<Cidr>() {
                Ok(c) => {
                    if let Err(e) = set.occupy(c) {
                        tracing::warn!(node = ?node.metadata.name, cidr = %s, error = %e, "cannot occupy the node's CIDR");
                    }
                }
                Err(e) => {
                    tracing::warn!(node = ?node.metadata.name, cidr = %s, error = %e, "invalid node CIDR")
                }
            }
        }
    }

    fn on_node(&self, node: &Node) {
        if node_cidrs(node).is_empty() {
            self.queue
                .add(node.metadata.name.clone().unwrap_or_default());
        } else {
            let name = node.metadata.name.as_deref().unwrap_or("");
            // Our own patch seen: the reservation is now the node's.
            self.pending.lock().remove(name);
            // Idempotent: the node may have been given its CIDRs by someone else.
            self.occupy(node);
        }
    }

    /// Upstream `ReleaseCIDR`.
    fn release(&self, node: &Node) {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let mut cidrs: Vec<Cidr> = node_cidrs(node)
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        if let Some(p) = self.pending.lock().remove(name)
            && cidrs.is_empty()
        {
            cidrs = p;
        }
        let mut sets = self.sets.lock();
        for (idx, c) in cidrs.into_iter().enumerate() {
            if let Some(set) = sets.get_mut(idx) {
                set.release(c);
            }
        }
    }

    /// Allocates subnets to a node without any and writes them (upstream
    /// `AllocateOrOccupyCIDR` + `updateCIDRsAllocation`).
    async fn sync(&self, name: &str) -> Result<Requeue, Error> {
        let Some(node) = self.nodes.get("", name) else {
            self.release_pending(name);
            return Ok(Requeue::No);
        };
        if !node_cidrs(&node).is_empty() {
            return Ok(Requeue::No);
        }
        let existing = self.pending.lock().get(name).cloned();
        let cidrs = match existing {
            Some(c) => c,
            None => {
                let mut sets = self.sets.lock();
                let mut got = Vec::new();
                let mut failed = None;
                for (idx, set) in sets.iter_mut().enumerate() {
                    match set.allocate_next() {
                        Some(c) => got.push(c),
                        None => {
                            failed = Some(idx);
                            break;
                        }
                    }
                }
                if let Some(exhausted) = failed {
                    for (idx, c) in got.into_iter().enumerate() {
                        sets[idx].release(c);
                    }
                    drop(sets);
                    self.recorder.event(
                        node.as_ref(),
                        EventType::Normal,
                        "CIDRNotAvailable",
                        format!("Node {name} status is now: CIDRNotAvailable"),
                    );
                    // Retried with the queue's back-off (5 ms doubling up to 1000 s), as
                    // upstream's range allocator does: a node may be deleted and free a
                    // subnet, and thousands of waiting nodes cost little.
                    return Err(Error::Exhausted(exhausted));
                }
                self.pending.lock().insert(name.to_string(), got.clone());
                got
            }
        };
        let strs: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = serde_json::json!({"spec": {"podCIDR": strs[0], "podCIDRs": strs}});
        match api
            .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => {
                tracing::info!(node = name, cidrs = ?strs, "Set Node PodCIDR");
                Ok(Requeue::No)
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                self.release_pending(name);
                Ok(Requeue::No)
            }
            Err(e) => {
                self.recorder.event(
                    node.as_ref(),
                    EventType::Normal,
                    "CIDRAssignmentFailed",
                    format!("Node {name} status is now: CIDRAssignmentFailed"),
                );
                Err(e.into())
            }
        }
    }

    fn release_pending(&self, name: &str) {
        if let Some(p) = self.pending.lock().remove(name) {
            let mut sets = self.sets.lock();
            for (idx, c) in p.into_iter().enumerate() {
                if let Some(set) = sets.get_mut(idx) {
                    set.release(c);
                }
            }
        }
    }
}
