//! The grpc handler, as upstream's `pkg/probe/grpc`: `grpc.health.v1.Health/Check` with the
//! probe's `service` over plaintext HTTP/2; `SERVING` is success. Like grpc-go's blocking dial,
//! connecting is retried until the timeout.

use std::time::Duration;

use tonic::Code;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{ProbeOutcome, USER_AGENT, go_duration};

/// Calls Health/Check on `host:port` for `service` within `timeout`.
pub async fn run_grpc(host: &str, port: u16, service: &str, timeout: Duration) -> ProbeOutcome {
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let endpoint = match Endpoint::from_shared(format!("http://{addr}")) {
        Ok(e) => e,
        Err(e) => {
            return ProbeOutcome::Failure(format!(
                "error: failed to connect service at {addr:?}: {e}"
            ));
        }
    };
    let endpoint = match endpoint.user_agent(USER_AGENT) {
        Ok(e) => e.connect_timeout(timeout),
        Err(e) => {
            return ProbeOutcome::Failure(format!(
                "error: failed to connect service at {addr:?}: {e}"
            ));
        }
    };
    let timed_out = || {
        ProbeOutcome::Failure(format!(
            "timeout: failed to connect service {addr:?} within {}: context deadline exceeded",
            go_duration(timeout)
        ))
    };
    let channel = loop {
        match tokio::time::timeout_at(deadline, endpoint.connect()).await {
            Err(_) => return timed_out(),
            Ok(Ok(c)) => break c,
            Ok(Err(_)) => {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return timed_out();
                }
                tokio::time::sleep((deadline - now).min(Duration::from_millis(100))).await;
            }
        }
    };
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    let rpc_timeout = || {
        ProbeOutcome::Failure(format!(
            "timeout: health rpc did not complete within {}",
            go_duration(timeout)
        ))
    };
    match tokio::time::timeout_at(deadline, client.check(request)).await {
        Err(_) => rpc_timeout(),
        Ok(Err(status)) => match status.code() {
            Code::Unimplemented => ProbeOutcome::Failure(format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                status.message()
            )),
            Code::DeadlineExceeded => rpc_timeout(),
            code => ProbeOutcome::Failure(format!(
                "error: health rpc probe failed: rpc error: code = {code:?} desc = {}",
                status.message()
            )),
        },
        Ok(Ok(resp)) => {
            let status = resp.into_inner().status();
            if status == ServingStatus::Serving {
                ProbeOutcome::Success("service is serving".to_string())
            } else {
                ProbeOutcome::Failure(format!(
                    "service unhealthy (responded with {:?})",
                    status.as_str_name()
                ))
            }
        }
    }
}
