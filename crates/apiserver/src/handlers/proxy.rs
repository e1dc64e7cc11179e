//! The subresources served by the node agent: `pods/log`, `pods/exec`, `pods/attach`,
//! `pods/portforward` and `nodes/proxy`.
//!
//! Like upstream (`pkg/registry/core/pod/strategy.go` `LogLocation`, `ExecLocation`,
//! `AttachLocation`, `PortForwardLocation`; `pkg/registry/core/pod/rest/log.go`,
//! `subresources.go`), the request is validated against the pod, then proxied over HTTPS to the
//! agent on the pod's node (`status.addresses`, InternalIP first, and
//! `status.daemonEndpoints.kubeletEndpoint.Port`, default 10250) with the API server's kubelet
//! client certificate, the agent's serving certificate verified against the cluster CA.
//! Upgrade requests (WebSocket or SPDY) are forwarded and, after `101 Switching Protocols`,
//! bytes are copied both ways; logs are streamed as they come.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::Query;
use crate::ApiState;
use crate::error::{ApiError, Cause, Qualified};
use crate::metrics::Label;

/// The default port of the node agent's server.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

const PODS: Qualified<'static> = Qualified {
    group: "",
    resource: "pods",
};
const NODES: Qualified<'static> = Qualified {
    group: "",
    resource: "nodes",
};

/// A request for one of the agent-served subresources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyTarget {
    /// `namespaces/{ns}/pods/{name}/{log|exec|attach|portforward}`.
    Pod {
        /// Namespace.
        namespace: String,
        /// Pod name.
        name: String,
        /// `log`, `exec`, `attach` or `portforward`.
        sub: &'static str,
    },
    /// `nodes/{name}/proxy/{path}`.
    Node {
        /// Node name.
        name: String,
        /// The path below `proxy` (with a leading `/`).
        path: String,
    },
}

/// Recognizes the paths this module serves (`/api/v1/...` only).
pub fn match_path(path: &str) -> Option<ProxyTarget> {
    // Every other request passes here too: reject it before decoding anything.
    let rest = path.trim_start_matches('/');
    if !rest.starts_with("api/v1/namespaces/")
        && !rest.starts_with("api/v1/nodes/")
        && !rest.contains('%')
    {
        return None;
    }
    let segs: Vec<Cow<'_, str>> = rest
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy())
        .collect();
    let segs: Vec<&str> = segs.iter().map(|s| s.as_ref()).collect();
    match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, sub]
            if !ns.is_empty() && !name.is_empty() =>
        {
            let sub = match *sub {
                "log" => "log",
                "exec" => "exec",
                "attach" => "attach",
                "portforward" => "portforward",
                _ => return None,
            };
            Some(ProxyTarget::Pod {
                namespace: ns.to_string(),
                name: name.to_string(),
                sub,
            })
        }
        ["api", "v1", "nodes", name, "proxy", ..] if !name.is_empty() => {
            let raw_rest = path
                .trim_start_matches('/')
                .splitn(6, '/')
                .nth(5)
                .unwrap_or("");
            Some(ProxyTarget::Node {
                name: name.to_string(),
                path: format!("/{raw_rest}"),
            })
        }
        _ => None,
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "" | "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "strconv.ParseBool: parsing {v:?}: invalid syntax for {name}"
        ))),
    }
}

fn parse_int(name: &str, v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>().map_err(|_| {
        ApiError::bad_request(format!(
            "strconv.ParseInt: parsing {v:?}: invalid syntax for {name}"
        ))
    })
}

/// All values of a (repeatable) query parameter.
fn all(query: Option<&str>, key: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn flag(q: &Query, name: &str) -> Result<bool, ApiError> {
    match q.0.get(name) {
        Some(v) => parse_bool(name, v),
        None => Ok(false),
    }
}

fn names(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Upstream's `ValidateContainer`: the container to use for `pod`.
pub fn validate_container(container: Option<&str>, pod: &Value) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let containers = names(pod["spec"].get("containers"));
    match container {
        None | Some("") => match containers.len() {
            1 => Ok(containers[0].clone()),
            0 => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            _ => {
                let init = names(pod["spec"].get("initContainers"));
                let mut msg = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    containers.join(" ")
                );
                if !init.is_empty() {
                    msg.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                Err(ApiError::bad_request(msg))
            }
        },
        Some(c) => {
            let known = containers
                .iter()
                .chain(names(pod["spec"].get("initContainers")).iter())
                .chain(names(pod["spec"].get("ephemeralContainers")).iter())
                .any(|n| n == c);
            if known {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
    }
}

fn invalid_log_option(name: &str, field: &str, message: String) -> ApiError {
    ApiError::invalid(
        "",
        "PodLogOptions",
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: field.into(),
        }],
    )
}

/// The agent path and query of a `pods/log` request (upstream `LogLocation`).
pub fn log_location(pod: &Value, query: Option<&str>) -> Result<(String, String), ApiError> {
    let q = Query::parse(query);
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let container = validate_container(q.get("container"), pod)?;
    let mut params = url::form_urlencoded::Serializer::new(String::new());
    if flag(&q, "follow")? {
        params.append_pair("follow", "true");
    }
    if flag(&q, "previous")? {
        params.append_pair("previous", "true");
    }
    if flag(&q, "timestamps")? {
        params.append_pair("timestamps", "true");
    }
    let since_seconds = q
        .get("sinceSeconds")
        .map(|v| parse_int("sinceSeconds", v))
        .transpose()?;
    let since_time = q
        .get("sinceTime")
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v).map_err(|_| {
                ApiError::bad_request(format!(
                    "parsing time {v:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse as RFC3339"
                ))
            })
        })
        .transpose()?;
    let tail = q
        .get("tailLines")
        .map(|v| parse_int("tailLines", v))
        .transpose()?;
    let limit = q
        .get("limitBytes")
        .map(|v| parse_int("limitBytes", v))
        .transpose()?;
    if let Some(t) = tail
        && t < 0
    {
        return Err(invalid_log_option(
            name,
            "tailLines",
            format!("Invalid value: {t}: must be greater than or equal to 0"),
        ));
    }
    if let Some(l) = limit
        && l < 1
    {
        return Err(invalid_log_option(
            name,
            "limitBytes",
            format!("Invalid value: {l}: must be greater than 0"),
        ));
    }
    if let Some(s) = since_seconds
        && s < 1
    {
        return Err(invalid_log_option(
            name,
            "sinceSeconds",
            format!("Invalid value: {s}: must be greater than 0"),
        ));
    }
    if since_seconds.is_some() && since_time.is_some() {
        return Err(invalid_log_option(
            name,
            "",
            "at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
        ));
    }
    if let Some(s) = since_seconds {
        params.append_pair("sinceSeconds", &s.to_string());
    }
    if let Some(t) = since_time {
        params.append_pair(
            "sinceTime",
            &t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        );
    }
    if let Some(t) = tail {
        params.append_pair("tailLines", &t.to_string());
    }
    if let Some(l) = limit {
        params.append_pair("limitBytes", &l.to_string());
    }
    Ok((
        format!(
            "/containerLogs/{}/{}/{}",
            enc(ns),
            enc(name),
            enc(&container)
        ),
        params.finish(),
    ))
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The agent path and query of a `pods/exec` or `pods/attach` request (upstream
/// `streamLocation`).
pub fn stream_location(
    pod: &Value,
    sub: &str,
    query: Option<&str>,
) -> Result<(String, String), ApiError> {
    let q = Query::parse(query);
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let container = validate_container(q.get("container"), pod)?;
    let mut params = url::form_urlencoded::Serializer::new(String::new());
    for p in ["stdin", "stdout", "stderr", "tty"] {
        if flag(&q, p)? {
            params.append_pair(p, "1");
        }
    }
    if sub == "exec" {
        for c in all(query, "command") {
            params.append_pair("command", &c);
        }
    }
    Ok((
        format!("/{sub}/{}/{}/{}", enc(ns), enc(name), enc(&container)),
        params.finish(),
    ))
}

/// The agent's address for `node`: `status.addresses` (InternalIP, then Hostname, InternalDNS,
/// ExternalIP, ExternalDNS) and the daemon endpoint port.
pub fn node_address(node: &Value) -> Option<(String, u16)> {
    let addrs = node["status"]["addresses"].as_array()?;
    let host = [
        "InternalIP",
        "Hostname",
        "InternalDNS",
        "ExternalIP",
        "ExternalDNS",
    ]
    .iter()
    .find_map(|t| {
        addrs
            .iter()
            .find(|a| a["type"] == *t)
            .and_then(|a| a["address"].as_str())
            .filter(|a| !a.is_empty())
    })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Some((host.to_string(), port))
}

/// Serves one agent-proxied request.
pub async fn handle(state: &Arc<ApiState>, target: ProxyTarget, req: Request) -> Response {
    let start = std::time::Instant::now();
    let label = match &target {
        ProxyTarget::Pod { sub, .. } => Label {
            verb: if *sub == "log" { "GET" } else { "CONNECT" },
            resource: "pods",
            subresource: Some(sub),
        },
        ProxyTarget::Node { .. } => Label {
            verb: "CONNECT",
            resource: "nodes",
            subresource: Some("proxy"),
        },
    };
    let resp = match route(state, target, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    state
        .metrics
        .observe(label, resp.status().as_u16(), start.elapsed());
    resp
}

async fn get_object(
    state: &Arc<ApiState>,
    resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let Some(r) = state.registry.get("", "v1", resource).cloned() else {
        return Ok(None);
    };
    state.cacher.wait_fresh().await?;
    Ok(state
        .cacher
        .get(&r, &r.key(namespace, name))
        .map(|o| super::read::object_value(&r, &o)))
}

async fn route(
    state: &Arc<ApiState>,
    target: ProxyTarget,
    req: Request,
) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_string);
    let (node_name, path, query, resource, name) = match target {
        ProxyTarget::Pod {
            namespace,
            name,
            sub,
        } => {
            let allowed = match sub {
                "log" => method == Method::GET,
                _ => method == Method::GET || method == Method::POST,
            };
            if !allowed {
                return Err(ApiError::method_not_allowed(
                    method.as_str(),
                    Qualified {
                        group: "",
                        resource: "pods",
                    },
                ));
            }
            let pod = get_object(state, "pods", Some(&namespace), &name)
                .await?
                .ok_or_else(|| ApiError::not_found(PODS, &name))?;
            let (path, q) = match sub {
                "log" => log_location(&pod, query.as_deref())?,
                "exec" | "attach" => stream_location(&pod, sub, query.as_deref())?,
                _ => {
                    let mut params = url::form_urlencoded::Serializer::new(String::new());
                    for p in all(query.as_deref(), "ports") {
                        params.append_pair("port", &p);
                    }
                    (
                        format!("/portForward/{}/{}", enc(&namespace), enc(&name)),
                        params.finish(),
                    )
                }
            };
            let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
            if node.is_empty() {
                if sub == "log" {
                    // Upstream: no location, an empty stream.
                    return Ok(text_response(StatusCode::OK, Bytes::new()));
                }
                return Err(ApiError::bad_request(format!(
                    "pod {name} does not have a host assigned"
                )));
            }
            (node.to_string(), path, q, format!("pods/{sub}"), name)
        }
        ProxyTarget::Node { name, path } => {
            let q = query.unwrap_or_default();
            (name.clone(), path, q, "nodes/proxy".to_string(), name)
        }
    };
    let node = get_object(state, "nodes", None, &node_name)
        .await?
        .ok_or_else(|| ApiError::not_found(NODES, &node_name))?;
    let (host, port) = node_address(&node)
        .ok_or_else(|| ApiError::internal("no preferred addresses found; known addresses: []"))?;
    let Some(tls) = state.kubelet_tls.clone() else {
        return Err(ApiError {
            code: 503,
            reason: "ServiceUnavailable",
            message: "this API server has no client certificate for node agents".into(),
            details: None,
            causes: Vec::new(),
            retry_after: None,
        });
    };
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    forward(tls, &host, port, uri, req, &resource, &name).await
}

fn text_response(code: StatusCode, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Headers not forwarded to the agent.
fn skip_header(name: &header::HeaderName) -> bool {
    name == header::HOST
        || name == header::AUTHORIZATION
        || name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::COOKIE
        || name == header::SEC_WEBSOCKET_EXTENSIONS
        || name.as_str().starts_with("impersonate-")
}

/// The error for a non-success agent answer (upstream `GenericHttpResponseChecker`).
fn agent_error(code: StatusCode, body: &[u8], resource: &str, name: &str) -> ApiError {
    if let Ok(v) = serde_json::from_slice::<Value>(body)
        && v["kind"] == "Status"
        && let Some(msg) = v["message"].as_str()
    {
        return ApiError {
            code: code.as_u16(),
            reason: reason_for(code),
            message: msg.to_string(),
            details: None,
            causes: Vec::new(),
            retry_after: None,
        };
    }
    let text = String::from_utf8_lossy(body).trim_end().to_string();
    match code {
        StatusCode::BAD_REQUEST => ApiError::bad_request(text),
        StatusCode::INTERNAL_SERVER_ERROR => ApiError {
            code: 500,
            reason: "InternalError",
            message: format!("Internal error occurred: {text}"),
            details: None,
            causes: Vec::new(),
            retry_after: None,
        },
        _ => ApiError {
            code: code.as_u16(),
            reason: reason_for(code),
            message: if text.is_empty() {
                format!("the server could not find the requested resource ( {resource} {name})")
            } else {
                text
            },
            details: None,
            causes: Vec::new(),
            retry_after: None,
        },
    }
}

fn reason_for(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

async fn forward(
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    uri: String,
    mut req: Request,
    resource: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let dial_err = |e: &dyn std::fmt::Display| ApiError {
        code: 500,
        reason: "InternalError",
        message: format!("Internal error occurred: error dialing backend: {e}"),
        details: None,
        causes: Vec::new(),
        retry_after: None,
    };
    let server_name = match host.parse::<IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => {
            rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| dial_err(&e))?
        }
    };
    let addr = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    };
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(&addr).await?;
        let _ = tcp.set_nodelay(true);
        tokio_rustls::TlsConnector::from(tls)
            .connect(server_name, tcp)
            .await
    };
    let stream = match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(dial_err(&e)),
        Err(_) => return Err(dial_err(&format!("dial tcp {addr}: i/o timeout"))),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| dial_err(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "node agent connection ended");
        }
    });
    let upgrade = is_upgrade(req.headers());
    let mut out = http::Request::builder()
        .method(req.method().clone())
        .uri(uri.as_str());
    for (k, v) in req.headers() {
        if !skip_header(k) {
            out = out.header(k, v);
        }
    }
    out = out.header(header::HOST, addr.as_str());
    let client_upgrade = if upgrade {
        req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    if upgrade && client_upgrade.is_none() {
        return Err(ApiError::bad_request(
            "Upgrade request required over an HTTP/1.1 connection",
        ));
    }
    let body = if upgrade || matches!(*req.method(), Method::GET | Method::HEAD) {
        http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync()
    } else {
        req.into_body()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .boxed_unsync()
    };
    let out = out.body(body).map_err(|e| dial_err(&e))?;
    let mut resp = sender.send_request(out).await.map_err(|e| dial_err(&e))?;
    let status = resp.status();
    if upgrade && status == StatusCode::SWITCHING_PROTOCOLS {
        let backend_upgrade = hyper::upgrade::on(&mut resp);
        let headers = resp.headers().clone();
        let client_upgrade =
            client_upgrade.expect("checked above: upgrade requests carry OnUpgrade");
        tokio::spawn(async move {
            let (client, backend) = match tokio::join!(client_upgrade, backend_upgrade) {
                (Ok(c), Ok(b)) => (c, b),
                (c, b) => {
                    tracing::debug!(client = ?c.err(), backend = ?b.err(), "upgrade failed");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut backend = TokioIo::new(backend);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
        });
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *r.headers_mut() = headers;
        return Ok(r);
    }
    if !status.is_success() {
        let body = http_body_util::Limited::new(resp.into_body(), 64 << 10)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        return Err(agent_error(status, &body, resource, name));
    }
    let headers = resp.headers().clone();
    let mut r = Response::new(Body::new(resp.into_body()));
    *r.status_mut() = status;
    for h in [header::CONTENT_TYPE, header::CONTENT_ENCODING] {
        if let Some(v) = headers.get(&h) {
            r.headers_mut().insert(h, v.clone());
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"},
               "spec": {"nodeName": "n1",
                        "initContainers": [{"name": "init"}],
                        "containers": [{"name": "a"}, {"name": "b"}]}})
    }

    #[test]
    fn paths() {
        assert_eq!(
            match_path("/api/v1/namespaces/ns/pods/p/log"),
            Some(ProxyTarget::Pod {
                namespace: "ns".into(),
                name: "p".into(),
                sub: "log"
            })
        );
        assert_eq!(match_path("/api/v1/namespaces/ns/pods/p/status"), None);
        assert_eq!(match_path("/api/v1/namespaces/ns/pods/p"), None);
        assert_eq!(
            match_path("/api/v1/nodes/n1/proxy/healthz"),
            Some(ProxyTarget::Node {
                name: "n1".into(),
                path: "/healthz".into()
            })
        );
        assert_eq!(
            match_path("/api/v1/nodes/n1/proxy"),
            Some(ProxyTarget::Node {
                name: "n1".into(),
                path: "/".into()
            })
        );
    }

    #[test]
    fn container_choice_messages_match_upstream() {
        let e = validate_container(None, &pod()).expect_err("ambiguous");
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [init]"
        );
        let e = validate_container(Some("zz"), &pod()).expect_err("unknown");
        assert_eq!(e.message, "container zz is not valid for pod p");
        assert_eq!(
            validate_container(Some("init"), &pod()).expect("init"),
            "init"
        );
        let single = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "only"}]}});
        assert_eq!(validate_container(None, &single).expect("single"), "only");
    }

    #[test]
    fn log_locations() {
        let (path, q) = log_location(
            &pod(),
            Some("container=a&follow=true&tailLines=5&timestamps=true&limitBytes=10"),
        )
        .expect("valid");
        assert_eq!(path, "/containerLogs/ns/p/a");
        assert_eq!(q, "follow=true&timestamps=true&tailLines=5&limitBytes=10");
        let e = log_location(&pod(), Some("container=a&tailLines=-1")).expect_err("negative");
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            log_location(&pod(), Some("container=a&follow=maybe"))
                .expect_err("bad bool")
                .code,
            400
        );
        let (_, q) = log_location(
            &pod(),
            Some("container=a&sinceTime=2026-01-02T03:04:05.5%2B01:00"),
        )
        .expect("since");
        assert_eq!(q, "sinceTime=2026-01-02T02%3A04%3A05Z");
    }

    #[test]
    fn stream_locations() {
        let (path, q) = stream_location(
            &pod(),
            "exec",
            Some(
                "container=b&command=sh&command=-c&command=exit+3&stdin=true&stdout=true&tty=false",
            ),
        )
        .expect("valid");
        assert_eq!(path, "/exec/ns/p/b");
        assert_eq!(q, "stdin=1&stdout=1&command=sh&command=-c&command=exit+3");
    }

    #[test]
    fn node_addresses() {
        let n = json!({"status": {"addresses": [{"type": "Hostname", "address": "h"}, {"type": "InternalIP", "address": "10.0.0.1"}],
                                  "daemonEndpoints": {"kubeletEndpoint": {"Port": 12345}}}});
        assert_eq!(node_address(&n), Some(("10.0.0.1".into(), 12345)));
        let n = json!({"status": {"addresses": [{"type": "Hostname", "address": "h"}]}});
        assert_eq!(node_address(&n), Some(("h".into(), 10250)));
        assert_eq!(node_address(&json!({})), None);
    }

    #[test]
    fn agent_errors_become_status() {
        let e = agent_error(
            StatusCode::BAD_REQUEST,
            b"container \"c\" in pod \"p\" is waiting to start: ContainerCreating\n",
            "pods/log",
            "p",
        );
        assert_eq!(e.code, 400);
        assert_eq!(e.reason, "BadRequest");
        assert_eq!(
            e.message,
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
        );
    }
}
