//! exec, attach and port-forward.
//!
//! The runtime (containerd's CRI streaming server) does the real work: CRI `Exec`, `Attach` and
//! `PortForward` return a one-time URL on it. Like upstream's kubelet, requests whose protocol
//! the runtime speaks are proxied there as they are (SPDY/3.1 with `v4.channel.k8s.io` …
//! `portforward.k8s.io`, and WebSocket `v4.channel.k8s.io`). What containerd 1.6 does not speak
//! is translated here:
//! - WebSocket `v5.channel.k8s.io` (kubectl ≥ 1.30 exec/attach/cp): each binary message's first
//!   byte is the channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize, 255 close). It is
//!   relayed to a SPDY/3.1 `v4.channel.k8s.io` session with the runtime, one SPDY stream per
//!   channel, because SPDY can half-close stdin (`[255, 0]` becomes a DATA frame with FIN) where
//!   v4 WebSocket cannot — `kubectl cp` relies on stdin EOF.
//! - WebSocket `SPDY/3.1+portforward.k8s.io` (kubectl ≥ 1.31 port-forward): SPDY frames tunneled
//!   in binary messages. The tunnel is unwrapped and the SPDY byte stream is proxied to the
//!   runtime's port-forward (which connects to the port inside the pod's network namespace,
//!   like upstream).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::spdy::{self, Frame};
use super::{Body, State, text};

/// The remote command protocol of kubectl ≥ 1.30 over WebSocket.
pub const STREAM_PROTOCOL_V5: &str = "v5.channel.k8s.io";
/// The newest remote command protocol containerd 1.6 speaks.
pub const STREAM_PROTOCOL_V4: &str = "v4.channel.k8s.io";
/// Port-forward over SPDY.
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
/// Port-forward: SPDY tunneled in WebSocket.
pub const PORT_FORWARD_TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Channel numbers of the WebSocket remote command protocols.
mod channel {
    pub const STDIN: u8 = 0;
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    pub const ERROR: u8 = 3;
    pub const RESIZE: u8 = 4;
    pub const CLOSE: u8 = 255;
}

/// SPDY stream ids used towards the runtime (client-initiated streams are odd).
mod sid {
    pub const ERROR: u32 = 1;
    pub const STDIN: u32 = 3;
    pub const STDOUT: u32 = 5;
    pub const STDERR: u32 = 7;
    pub const RESIZE: u32 = 9;
}

/// The streams a remote command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamOptions {
    /// stdin is attached.
    pub stdin: bool,
    /// stdout is attached.
    pub stdout: bool,
    /// stderr is attached (never with a TTY).
    pub stderr: bool,
    /// A TTY (stdout carries both outputs; resize events flow).
    pub tty: bool,
}

impl StreamOptions {
    /// Parses `stdin`, `stdout`, `stderr`, `tty` (`1` or `true`; upstream's API server sends
    /// `1`, kubectl sends `true`).
    pub fn from_query(query: Option<&str>) -> (StreamOptions, Vec<String>) {
        let mut o = StreamOptions::default();
        let mut command = Vec::new();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let on = matches!(v.as_ref(), "1" | "true" | "True");
            match k.as_ref() {
                "stdin" | "input" => o.stdin = on,
                "stdout" | "output" => o.stdout = on,
                "stderr" | "error" => o.stderr = on,
                "tty" => o.tty = on,
                "command" => command.push(v.into_owned()),
                _ => {}
            }
        }
        if o.tty {
            o.stderr = false;
        }
        (o, command)
    }
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case(token)))
    })
}

fn ws_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn is_websocket(headers: &HeaderMap) -> bool {
    header_has(headers, header::UPGRADE, "websocket")
}

/// `exec` (or `attach`) in `ns/pod`'s `container`.
pub(crate) async fn exec(
    state: &Arc<State>,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
    container: &str,
    attach: bool,
) -> Response<Body> {
    let (opts, command) = StreamOptions::from_query(req.uri().query());
    if !opts.stdin && !opts.stdout && !opts.stderr {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 of stdin, stdout, stderr",
        );
    }
    if !attach && command.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        );
    }
    let c = match state.view.container(ns, pod, container, false) {
        Ok(c) => c,
        Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
    };
    if !c.running {
        return text(
            StatusCode::BAD_REQUEST,
            format!("container {container} is not running in pod {pod}"),
        );
    }
    let mut rt = state.cri.runtime.clone();
    let url = if attach {
        rt.attach(crate::cri::api::AttachRequest {
            container_id: c.id.clone(),
            stdin: opts.stdin,
            tty: opts.tty,
            stdout: opts.stdout,
            stderr: opts.stderr,
        })
        .await
        .map(|r| r.into_inner().url)
    } else {
        rt.exec(crate::cri::api::ExecRequest {
            container_id: c.id.clone(),
            cmd: command,
            tty: opts.tty,
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        })
        .await
        .map(|r| r.into_inner().url)
    };
    let url = match url {
        Ok(u) => u,
        Err(status) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to get the streaming URL: {}", status.message()),
            );
        }
    };
    if is_websocket(req.headers())
        && ws_protocols(req.headers())
            .iter()
            .any(|p| p == STREAM_PROTOCOL_V5)
    {
        return websocket_v5(req, &url, opts, state.shutdown.clone()).await;
    }
    proxy_upgrade(req, &url).await
}

/// `portForward` to `ns/pod`.
pub(crate) async fn port_forward(
    state: &Arc<State>,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
) -> Response<Body> {
    let Some(sandbox) = state.view.sandbox(ns, pod) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod {pod} in namespace {ns} not found or not running"),
        );
    };
    let mut rt = state.cri.runtime.clone();
    let url = match rt
        .port_forward(crate::cri::api::PortForwardRequest {
            pod_sandbox_id: sandbox.id.clone(),
            port: Vec::new(),
        })
        .await
    {
        Ok(r) => r.into_inner().url,
        Err(status) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to get the streaming URL: {}", status.message()),
            );
        }
    };
    if is_websocket(req.headers())
        && ws_protocols(req.headers())
            .iter()
            .any(|p| p == PORT_FORWARD_TUNNEL_PROTOCOL)
    {
        return websocket_tunnel(req, &url, state.shutdown.clone()).await;
    }
    proxy_upgrade(req, &url).await
}

/// Splits `http://host:port/path` into the address and the path.
fn split_url(url: &str) -> Result<(String, String), String> {
    let u = url::Url::parse(url).map_err(|e| format!("invalid streaming URL {url:?}: {e}"))?;
    let host = u.host_str().ok_or_else(|| format!("no host in {url:?}"))?;
    let port = u.port_or_known_default().unwrap_or(80);
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut path = u.path().to_string();
    if let Some(q) = u.query() {
        path.push('?');
        path.push_str(q);
    }
    Ok((authority, path))
}

/// Opens a SPDY/3.1 connection to the runtime's streaming URL, negotiating `protocol`.
pub async fn spdy_connect(url: &str, protocol: &str) -> Result<TcpStream, String> {
    let (authority, path) = split_url(url)?;
    let mut tcp = TcpStream::connect(&authority)
        .await
        .map_err(|e| format!("connecting to {authority}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n\r\n"
    );
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("writing to {authority}: {e}"))?;
    // Read the response head byte by byte: what follows it is already SPDY.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 << 10 {
            return Err("response head too large".into());
        }
        let b = tcp
            .read_u8()
            .await
            .map_err(|e| format!("reading the upgrade response from {authority}: {e}"))?;
        head.push(b);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status_line = head.lines().next().unwrap_or("").to_string();
    if status_line.split_whitespace().nth(1) != Some("101") {
        let mut rest = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(1), tcp.read(&mut rest))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        return Err(format!(
            "unable to upgrade connection: {} {}",
            status_line,
            String::from_utf8_lossy(&rest[..n]).trim()
        ));
    }
    Ok(tcp)
}

/// Proxies the request to `url` as it is and, after `101 Switching Protocols`, copies bytes
/// both ways (upstream's UpgradeAwareHandler).
async fn proxy_upgrade(mut req: Request<Incoming>, url: &str) -> Response<Body> {
    let (authority, path) = match split_url(url) {
        Ok(x) => x,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let tcp = match TcpStream::connect(&authority).await {
        Ok(t) => t,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("error dialing backend: {e}"),
            );
        }
    };
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await {
        Ok(x) => x,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("error dialing backend: {e}"),
            );
        }
    };
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "streaming backend connection ended");
        }
    });
    let mut out = Request::builder().method(req.method().clone()).uri(path);
    for (k, v) in req.headers() {
        if k == header::HOST || k == header::CONTENT_LENGTH || k == header::TRANSFER_ENCODING {
            continue;
        }
        out = out.header(k, v);
    }
    out = out.header(header::HOST, authority.as_str());
    let out = match out.body(http_body_util::Empty::<Bytes>::new()) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let client_upgrade = hyper::upgrade::on(&mut req);
    let mut resp = match sender.send_request(out).await {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("error proxying: {e}"),
            );
        }
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = super::read_small(resp.into_body()).await;
        let mut r = Response::new(super::full(body));
        *r.status_mut() = status;
        if let Some(ct) = headers.get(header::CONTENT_TYPE) {
            r.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
        }
        return r;
    }
    let backend_upgrade = hyper::upgrade::on(&mut resp);
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
    let mut r = Response::new(super::full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *r.headers_mut() = resp.headers().clone();
    r
}

/// The 101 answer accepting a WebSocket with `protocol`, or an error response.
fn accept_websocket(
    req: &Request<Incoming>,
    protocol: &str,
) -> Result<Response<Body>, &'static str> {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return Err("missing Sec-WebSocket-Key");
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut r = Response::new(super::full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Ok(v) = HeaderValue::from_str(protocol) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    Ok(r)
}

/// WebSocket v5 (kubectl) ↔ SPDY v4 (runtime).
async fn websocket_v5(
    mut req: Request<Incoming>,
    url: &str,
    opts: StreamOptions,
    shutdown: tokio_util::sync::CancellationToken,
) -> Response<Body> {
    let backend = match spdy_connect(url, STREAM_PROTOCOL_V4).await {
        Ok(t) => t,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let resp = match accept_websocket(&req, STREAM_PROTOCOL_V5) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            r = relay_v5(ws, backend, opts) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "exec stream ended with error");
                }
            }
            _ = shutdown.cancelled() => {}
        }
    });
    resp
}

/// Maps a SPDY stream id of the runtime session to the v5 channel.
fn channel_of(stream_id: u32) -> Option<u8> {
    match stream_id {
        sid::STDOUT => Some(channel::STDOUT),
        sid::STDERR => Some(channel::STDERR),
        sid::ERROR => Some(channel::ERROR),
        _ => None,
    }
}

/// What a v5 message from kubectl becomes towards the runtime.
pub fn v5_to_spdy(msg: &[u8]) -> Option<Frame> {
    let (&ch, data) = msg.split_first()?;
    match ch {
        channel::STDIN => Some(Frame::Data {
            stream_id: sid::STDIN,
            flags: 0,
            data: Bytes::copy_from_slice(data),
        }),
        channel::RESIZE => Some(Frame::Data {
            stream_id: sid::RESIZE,
            flags: 0,
            data: Bytes::copy_from_slice(data),
        }),
        channel::CLOSE if data.first() == Some(&channel::STDIN) => Some(Frame::Data {
            stream_id: sid::STDIN,
            flags: spdy::FLAG_FIN,
            data: Bytes::new(),
        }),
        _ => None,
    }
}

/// What a frame from the runtime becomes towards kubectl (`None`: nothing to send).
pub fn spdy_to_v5(frame: &Frame) -> Option<Vec<u8>> {
    match frame {
        Frame::Data {
            stream_id, data, ..
        } if !data.is_empty() => {
            let ch = channel_of(*stream_id)?;
            let mut out = Vec::with_capacity(data.len() + 1);
            out.push(ch);
            out.extend_from_slice(data);
            Some(out)
        }
        _ => None,
    }
}

/// The SYN_STREAM frames that open a remote command session (error stream first, like
/// client-go).
pub fn open_streams(opts: StreamOptions) -> Vec<Frame> {
    let mut v = vec![(sid::ERROR, "error")];
    if opts.stdin {
        v.push((sid::STDIN, "stdin"));
    }
    if opts.stdout {
        v.push((sid::STDOUT, "stdout"));
    }
    if opts.stderr {
        v.push((sid::STDERR, "stderr"));
    }
    if opts.tty {
        v.push((sid::RESIZE, "resize"));
    }
    v.into_iter()
        .map(|(id, kind)| Frame::SynStream {
            stream_id: id,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: vec![("streamtype".to_string(), kind.to_string())],
        })
        .collect()
}

async fn relay_v5<S>(
    ws: WebSocketStream<S>,
    backend: TcpStream,
    opts: StreamOptions,
) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut rd, mut wr) = backend.into_split();
    let (ftx, mut frx) = mpsc::channel::<Frame>(64);
    // SPDY writer.
    let writer = tokio::spawn(async move {
        let mut enc = spdy::Encoder::new();
        let mut buf = BytesMut::new();
        while let Some(f) = frx.recv().await {
            buf.clear();
            if enc.encode(&f, &mut buf).is_err() {
                break;
            }
            if wr.write_all(&buf).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    for f in open_streams(opts) {
        ftx.send(f).await.map_err(|_| "runtime connection closed")?;
    }
    // kubectl → runtime.
    let to_backend = {
        let ftx = ftx.clone();
        tokio::spawn(async move {
            while let Some(msg) = ws_rx.next().await {
                match msg {
                    Ok(Message::Binary(b)) => {
                        if let Some(f) = v5_to_spdy(&b)
                            && ftx.send(f).await.is_err()
                        {
                            break;
                        }
                    }
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
    };
    // runtime → kubectl.
    let mut dec = spdy::Decoder::new();
    let mut buf = BytesMut::with_capacity(32 << 10);
    let result = 'outer: loop {
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(Frame::Ping(id))) => {
                    let _ = ftx.send(Frame::Ping(id)).await;
                }
                Ok(Some(Frame::GoAway { .. })) => break 'outer Ok(()),
                Ok(Some(f)) => {
                    if let Some(m) = spdy_to_v5(&f)
                        && ws_tx.send(Message::Binary(m.into())).await.is_err()
                    {
                        break 'outer Err("kubectl went away".to_string());
                    }
                }
                Ok(None) => break,
                Err(e) => break 'outer Err(e.to_string()),
            }
        }
        tokio::select! {
            n = rd.read_buf(&mut buf) => match n {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(e.to_string()),
            },
            _ = ftx.closed() => break Ok(()),
        }
        if to_backend.is_finished() {
            // kubectl is gone: nothing can be delivered any more.
            break Ok(());
        }
    };
    let _ = ws_tx
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    let _ = ws_tx.close().await;
    to_backend.abort();
    drop(ftx);
    let _ = writer.await;
    result
}

/// WebSocket `SPDY/3.1+portforward.k8s.io` (kubectl) ↔ SPDY `portforward.k8s.io` (runtime).
async fn websocket_tunnel(
    mut req: Request<Incoming>,
    url: &str,
    shutdown: tokio_util::sync::CancellationToken,
) -> Response<Body> {
    let backend = match spdy_connect(url, PORT_FORWARD_PROTOCOL).await {
        Ok(t) => t,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let resp = match accept_websocket(&req, PORT_FORWARD_TUNNEL_PROTOCOL) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            _ = tunnel(ws, backend) => {}
            _ = shutdown.cancelled() => {}
        }
    });
    resp
}

/// Copies WebSocket binary messages ↔ a byte stream.
pub async fn tunnel<S>(ws: WebSocketStream<S>, backend: TcpStream)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut rd, mut wr) = backend.into_split();
    let up = async move {
        while let Some(Ok(msg)) = ws_rx.next().await {
            match msg {
                Message::Binary(b) if wr.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 32 << 10];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ws_tx
                        .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = ws_tx
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        let _ = ws_tx.close().await;
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_options() {
        let (o, cmd) = StreamOptions::from_query(Some(
            "command=sh&command=-c&command=echo+hi&stdin=true&stdout=1&stderr=true&tty=true",
        ));
        assert_eq!(cmd, vec!["sh", "-c", "echo hi"]);
        assert_eq!(
            o,
            StreamOptions {
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true
            }
        );
    }

    #[test]
    fn v5_messages_become_spdy_frames() {
        assert_eq!(
            v5_to_spdy(&[0, b'h', b'i']),
            Some(Frame::Data {
                stream_id: sid::STDIN,
                flags: 0,
                data: Bytes::from_static(b"hi")
            })
        );
        assert_eq!(
            v5_to_spdy(b"\x04{\"Width\":80,\"Height\":24}"),
            Some(Frame::Data {
                stream_id: sid::RESIZE,
                flags: 0,
                data: Bytes::from_static(b"{\"Width\":80,\"Height\":24}")
            })
        );
        // Close of stdin is a half-close (FIN) of the stdin stream.
        assert_eq!(
            v5_to_spdy(&[255, 0]),
            Some(Frame::Data {
                stream_id: sid::STDIN,
                flags: spdy::FLAG_FIN,
                data: Bytes::new()
            })
        );
        assert_eq!(v5_to_spdy(&[255, 3]), None);
        assert_eq!(v5_to_spdy(&[]), None);
    }

    #[test]
    fn spdy_frames_become_v5_messages() {
        let d = |id, data: &'static [u8]| Frame::Data {
            stream_id: id,
            flags: 0,
            data: Bytes::from_static(data),
        };
        assert_eq!(
            spdy_to_v5(&d(sid::STDOUT, b"out")),
            Some(b"\x01out".to_vec())
        );
        assert_eq!(
            spdy_to_v5(&d(sid::STDERR, b"err")),
            Some(b"\x02err".to_vec())
        );
        let status = br#"{"metadata":{},"status":"Success"}"#;
        let mut want = vec![3u8];
        want.extend_from_slice(status);
        assert_eq!(spdy_to_v5(&d(sid::ERROR, status)), Some(want));
        assert_eq!(spdy_to_v5(&d(sid::STDOUT, b"")), None);
        assert_eq!(spdy_to_v5(&Frame::Ping(1)), None);
    }

    #[test]
    fn streams_opened_match_options() {
        let names = |o| {
            open_streams(o)
                .iter()
                .map(|f| f.header("streamtype").unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(StreamOptions {
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true
            }),
            vec!["error", "stdin", "stdout", "resize"]
        );
        assert_eq!(
            names(StreamOptions {
                stdin: false,
                stdout: true,
                stderr: true,
                tty: false
            }),
            vec!["error", "stdout", "stderr"]
        );
    }

    #[test]
    fn urls_split() {
        assert_eq!(
            split_url("http://127.0.0.1:35000/exec/abc").expect("url"),
            ("127.0.0.1:35000".to_string(), "/exec/abc".to_string())
        );
        assert_eq!(
            split_url("http://[::1]:1/portforward/x").expect("url").0,
            "[::1]:1"
        );
    }
}
