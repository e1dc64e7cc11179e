//! The ServiceAccount controller (upstream `pkg/controller/serviceaccount`,
//! "serviceaccount-controller"): every active namespace has a `default` ServiceAccount,
//! re-created if it is deleted.

use std::sync::Arc;

use informers::workqueue::{Requeue, run_workers};
use informers::{Event, Informer, WorkQueue};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};

use crate::Context;

/// The controller's name.
pub const NAME: &str = "serviceaccount-controller";
/// The ServiceAccounts every namespace gets (upstream `DefaultServiceAccountsControllerOptions`).
pub const SERVICE_ACCOUNTS_TO_ENSURE: &[&str] = &["default"];
/// Concurrent syncs (upstream runs this controller with one worker).
const WORKERS: usize = 1;

/// A sync error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

struct Controller {
    client: kube::Client,
    namespaces: Informer<Namespace>,
    accounts: Informer<ServiceAccount>,
    queue: WorkQueue<String>,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        namespaces: ctx.factory.informer::<Namespace>(),
        accounts: ctx.factory.informer::<ServiceAccount>(),
        queue: WorkQueue::new(ctx.shutdown.clone()),
    });
    let mut ns_events = c.namespaces.subscribe();
    let mut sa_events = c.accounts.subscribe();
    let queue = c.queue.clone();
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = ns_events.recv() => match ev {
                    Some(Event::Added(ns) | Event::Updated(_, ns)) => {
                        queue.add(ns.metadata.name.clone().unwrap_or_default());
                    }
                    Some(Event::Deleted(_)) => {}
                    None => return,
                },
                ev = sa_events.recv() => match ev {
                    // Only deletions matter: the namespace may need its account back.
                    Some(Event::Deleted(sa)) => {
                        if SERVICE_ACCOUNTS_TO_ENSURE.contains(&sa.metadata.name.as_deref().unwrap_or("")) {
                            queue.add(sa.metadata.namespace.clone().unwrap_or_default());
                        }
                    }
                    Some(_) => {}
                    None => return,
                },
            }
        }
    });
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        _ = async { c.namespaces.wait_synced().await; c.accounts.wait_synced().await } => {}
    }
    let w = c.clone();
    run_workers(c.queue.clone(), WORKERS, NAME, move |ns: String| {
        let w = w.clone();
        async move { w.sync(&ns).await }
    })
    .await;
}

impl Controller {
    /// Upstream `syncNamespace`: creates the missing accounts of an active namespace.
    async fn sync(&self, name: &str) -> Result<Requeue, Error> {
        let Some(ns) = self.namespaces.get("", name) else {
            return Ok(Requeue::No);
        };
        let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
        if ns.metadata.deletion_timestamp.is_some() || phase.is_some_and(|p| p != "Active") {
            return Ok(Requeue::No);
        }
        for sa_name in SERVICE_ACCOUNTS_TO_ENSURE {
            if self.accounts.get(name, sa_name).is_some() {
                continue;
            }
            let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), name);
            let sa = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some((*sa_name).to_string()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match api.create(&PostParams::default(), &sa).await {
                Ok(_) => {}
                // Already there (the cache lags), or the namespace is being deleted.
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 || s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Requeue::No)
    }
}
