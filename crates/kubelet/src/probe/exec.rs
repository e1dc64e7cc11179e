//! The exec handler: CRI `ExecSync` in the container with the probe's timeout; exit code 0 is
//! success, the output (stdout then stderr) is the message, as upstream's prober.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;

use super::ProbeOutcome;
use crate::cri::{Cri, api};

/// Extra time the runtime gets beyond the probe's timeout to report (upstream waits the CRI
/// timeout on top; the runtime enforces the probe timeout itself).
const RUNTIME_GRACE: Duration = Duration::from_secs(10);

/// Runs `cmd` in the container with `timeout`.
pub async fn run_exec(
    cri: &Cri,
    container_id: &str,
    cmd: Vec<String>,
    timeout: Duration,
) -> ProbeOutcome {
    let joined = cmd.join(" ");
    let mut rt = cri.runtime.clone();
    let req = api::ExecSyncRequest {
        container_id: container_id.to_string(),
        cmd,
        timeout: timeout.as_secs() as i64,
    };
    let timed_out = || ProbeOutcome::Failure(format!("command {joined:?} timed out"));
    match tokio::time::timeout(timeout + RUNTIME_GRACE, rt.exec_sync(req)).await {
        Err(_) => timed_out(),
        Ok(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => timed_out(),
        Ok(Err(status))
            if status.message().contains("timeout") && status.message().contains("exceeded") =>
        {
            timed_out()
        }
        Ok(Err(status)) => ProbeOutcome::Unknown(format!(
            "rpc error: code = {:?} desc = {}",
            status.code(),
            status.message()
        )),
        Ok(Ok(resp)) => {
            let resp = resp.into_inner();
            let mut out = resp.stdout;
            out.extend_from_slice(&resp.stderr);
            let out = String::from_utf8_lossy(&out).into_owned();
            if resp.exit_code == 0 {
                ProbeOutcome::Success(out)
            } else {
                ProbeOutcome::Failure(out)
            }
        }
    }
}

/// Upstream `ExpandContainerCommandOnlyStatic`: `$(VAR)` from the container's literal env
/// values, `$$` as `$`, unknown references kept as written.
pub fn expand_command(cmd: &[String], container: &Container) -> Vec<String> {
    let vars: HashMap<&str, &str> = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value.as_deref().map(|v| (e.name.as_str(), v)))
        .collect();
    cmd.iter().map(|s| expand(s, &vars)).collect()
}

fn expand(s: &str, vars: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_static_env() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "env": [{"name": "F", "value": "/tmp/ok"}]
        }))
        .expect("valid container");
        assert_eq!(
            expand_command(
                &["cat".into(), "$(F)".into(), "$$(F)".into(), "$(X)".into()],
                &c
            ),
            vec!["cat", "/tmp/ok", "$(F)", "$(X)"]
        );
    }
}
