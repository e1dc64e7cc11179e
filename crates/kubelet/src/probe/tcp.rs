//! The tcpSocket handler, as upstream's `pkg/probe/tcp`: success if a TCP connection opens
//! within the timeout (it is closed right away).

use std::time::Duration;

use super::ProbeOutcome;

/// Connects to `host:port` within `timeout`.
pub async fn run_tcp(host: &str, port: u16, timeout: Duration) -> ProbeOutcome {
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Err(_) => ProbeOutcome::Failure(format!("dial tcp {addr}: i/o timeout")),
        Ok(Err(e)) => ProbeOutcome::Failure(super::http::dial_error(&addr, &e)),
        Ok(Ok(stream)) => {
            drop(stream);
            ProbeOutcome::Success(String::new())
        }
    }
}
