//! replicaset (to be written).

use std::sync::Arc;

use crate::Context;

/// Runs the controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    ctx.shutdown.cancelled().await;
}
