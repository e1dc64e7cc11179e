//! The pod lifecycle event generator: relists the runtime's containers and sandboxes every
//! second (containerd 1.6 has no CRI event stream) and wakes the worker of every pod whose
//! containers changed state. It also removes sandboxes no pod owns any more.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::cri::api;
use crate::pods::Shared;
use crate::pods::spec::LABEL_POD_UID;

/// How often the runtime is relisted (upstream's `plegRelistPeriod`).
pub const RELIST_PERIOD: Duration = Duration::from_secs(1);

/// Runs the relist loop until shutdown.
pub async fn run(sh: Arc<Shared>) {
    let mut last: HashMap<String, (String, i32)> = HashMap::new();
    let mut tick = tokio::time::interval(RELIST_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut orphan_check = 0u32;
    loop {
        tokio::select! {
            _ = sh.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut rt = sh.cri.runtime.clone();
        let Ok(list) = rt
            .list_containers(api::ListContainersRequest { filter: None })
            .await
        else {
            continue;
        };
        let mut now: HashMap<String, (String, i32)> = HashMap::new();
        for c in list.into_inner().containers {
            let uid = c.labels.get(LABEL_POD_UID).cloned().unwrap_or_default();
            now.insert(c.id, (uid, c.state));
        }
        let mut changed: HashSet<String> = HashSet::new();
        for (id, (uid, state)) in &now {
            if last.get(id).map(|(_, s)| s) != Some(state) {
                changed.insert(uid.clone());
            }
        }
        for (id, (uid, _)) in &last {
            if !now.contains_key(id) {
                changed.insert(uid.clone());
            }
        }
        last = now;
        for uid in changed {
            sh.wake_existing(&uid);
        }
        orphan_check += 1;
        if orphan_check.is_multiple_of(10) && sh.pods.has_synced() {
            remove_orphans(&sh).await;
        }
    }
}

/// Removes sandboxes of pods that are neither bound to this node nor handled by a worker
/// (deleted while the agent was down).
pub async fn remove_orphans(sh: &Arc<Shared>) {
    let mut rt = sh.cri.runtime.clone();
    let Ok(list) = rt
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
    else {
        return;
    };
    let known: HashSet<String> = sh
        .pods
        .list()
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    let mut orphans: HashSet<String> = HashSet::new();
    for s in list.into_inner().items {
        let Some(uid) = s.labels.get(LABEL_POD_UID) else {
            continue;
        };
        if !known.contains(uid) && !sh.has_worker(uid) {
            orphans.insert(uid.clone());
        }
    }
    for uid in orphans {
        tracing::info!(pod_uid = %uid, "removing the sandbox of a pod that no longer exists");
        if let Err(e) = crate::pods::sync::remove_pod(sh, &uid).await {
            tracing::warn!(pod_uid = %uid, error = %e, "removing an orphaned pod");
        }
    }
}
