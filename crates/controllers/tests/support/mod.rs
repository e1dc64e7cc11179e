//! Shared by the controller tests: a real API server (in-process, SQLite in a temp dir) and a
//! kube client to it. Include with `mod support;`.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A running in-process API server; shuts down when dropped.
pub struct Server {
    /// Client as an administrator.
    pub client: kube::Client,
    /// Shared informers over `client`.
    pub factory: Arc<informers::Factory>,
    /// Cancelled on drop.
    pub shutdown: CancellationToken,
    _api: apiserver::inprocess::TempServer,
}

/// Starts an API server.
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

impl Server {
    /// A controller context with default settings.
    pub fn context(&self, config: controllers::Config) -> Arc<controllers::Context> {
        Arc::new(controllers::Context {
            client: self.client.clone(),
            factory: self.factory.clone(),
            config,
            shutdown: self.shutdown.clone(),
        })
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
