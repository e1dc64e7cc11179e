//! What the API server's integration tests share: a state over a store, with a test token.

use std::collections::HashMap;
use std::sync::Arc;

use apiserver::ApiState;
use apiserver::cacher::Cacher;
use apiserver::registry::Registry;
use apiserver::server::User;
use tokio_util::sync::CancellationToken;

/// The bearer token of the `system:masters` test user.
pub const TOKEN: &str = "test-token";

/// An API server state (watch cache started) over `store`, with the test token; its
/// `shutdown` token stops the cache.
pub async fn state_over(store: Arc<dyn store::Store>) -> Arc<ApiState> {
    let registry = Arc::new(Registry::builtin());
    let cancel = CancellationToken::new();
    let cacher = Cacher::start(
        store.clone(),
        registry.clone(),
        apiserver::handlers::read::extract_fields,
        cancel.clone(),
    )
    .await
    .expect("the watch cache starts");
    let mut tokens = HashMap::new();
    tokens.insert(
        TOKEN.to_string(),
        User {
            name: "admin".into(),
            groups: vec!["system:masters".into()],
        },
    );
    Arc::new(ApiState::new(
        registry,
        store,
        cacher,
        cancel,
        tokens,
        "127.0.0.1:6443".into(),
    ))
}
