//! Namespace deletion: when a namespace is marked for deletion (phase Terminating), delete
//! everything in it, then remove its `kubernetes` finalizer so it disappears (upstream's
//! namespace controller, `pkg/controller/namespace/deletion`).
//!
//! It runs inside the API server for now and uses the same write path as clients; it moves to
//! the controllers crate with the other controllers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::ApiState;
use crate::handlers::write::{self, DeleteOptions, UpdateOutcome};
use crate::object;

/// Watches namespaces and finalizes the ones being deleted.
pub async fn run(state: Arc<ApiState>, cancel: CancellationToken) {
    let Some(nsr) = state.registry.get("", "v1", "namespaces").cloned() else {
        return;
    };
    let mut in_progress: HashSet<String> = HashSet::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            Some(n) = done_rx.recv() => { in_progress.remove(&n); }
            _ = tick.tick() => {}
        }
        let (snap, _, _) = state
            .cacher
            .list(&nsr, &nsr.prefix(None), None, 0, &|_| true);
        for o in snap.items {
            if in_progress.contains(&o.name) {
                continue;
            }
            let v = o.value();
            if !object::is_deleting(&v) {
                continue;
            }
            in_progress.insert(o.name.clone());
            let state = state.clone();
            let done = done_tx.clone();
            let name = o.name.clone();
            tokio::spawn(async move {
                if let Err(e) = finalize(&state, &name).await {
                    tracing::debug!(namespace = %name, error = %e, "namespace not yet finalized");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                let _ = done.send(name);
            });
        }
    }
}

/// Deletes the content of a namespace; when nothing is left, removes the finalizer.
async fn finalize(state: &ApiState, ns: &str) -> Result<(), crate::error::ApiError> {
    let mut remaining = 0usize;
    let opts = DeleteOptions {
        propagation: Some("Background".into()),
        ..Default::default()
    };
    let mut seen_prefixes = HashSet::new();
    for r in state.registry.all() {
        if !r.namespaced || !seen_prefixes.insert(r.key_prefix) {
            continue;
        }
        let (snap, _, _) = state
            .cacher
            .list(r, &r.prefix(Some(ns)), None, 0, &|_| true);
        for o in snap.items {
            remaining += 1;
            let v = o.value();
            if object::is_deleting(&v) {
                continue;
            }
            match write::delete_object(state, r, &o.key, &o.name, &opts).await {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(namespace = ns, name = %o.name, error = %e, "deleting namespace content")
                }
            }
        }
    }
    if remaining > 0 {
        // Look again once the cache has seen the deletes: objects with finalizers or grace
        // periods go away later, and the namespace waits for them.
        state.cacher.wait_fresh().await?;
        let left = state
            .registry
            .all()
            .iter()
            .filter(|r| r.namespaced)
            .any(|r| {
                let (snap, _, _) = state
                    .cacher
                    .list(r, &r.prefix(Some(ns)), None, 1, &|_| true);
                !snap.items.is_empty()
            });
        if left {
            return Err(crate::error::ApiError::conflict_msg(
                crate::error::Qualified {
                    group: "",
                    resource: "namespaces",
                },
                ns,
                "namespace still has content",
            ));
        }
    }
    let Some(nsr) = state.registry.get("", "v1", "namespaces").cloned() else {
        return Ok(());
    };
    write::guaranteed_update(state, &nsr, &nsr.key(None, ns), ns, None, false, |cur| {
        let Some(cur) = cur else {
            return Ok(UpdateOutcome::Unchanged);
        };
        let mut new: Value = cur.clone();
        new["spec"]["finalizers"] = json!([]);
        if let Some(o) = new.get_mut("spec").and_then(Value::as_object_mut) {
            o.remove("finalizers");
        }
        Ok(UpdateOutcome::Write(new))
    })
    .await
    .map(|_| ())
    .or_else(|e| if e.code == 404 { Ok(()) } else { Err(e) })
}
