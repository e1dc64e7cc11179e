//! Relaying queries for names outside the cluster to the upstream resolvers.
//!
//! The query bytes are relayed as they came (same ID, same EDNS), over UDP from a fresh
//! socket with a random source port connected to the upstream (so only that upstream's
//! answers are read), or over TCP for TCP clients and when the UDP answer is truncated. Each
//! upstream is tried once, in order, within the per-attempt timeout. This server never
//! recurses itself.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The upstream answer to `query` (raw bytes), or `None` when every upstream failed.
pub(crate) async fn relay(
    query: &[u8],
    tcp: bool,
    upstreams: &[SocketAddr],
    timeout: Duration,
) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    for upstream in upstreams {
        let attempt = async {
            if tcp {
                return over_tcp(query, *upstream).await;
            }
            let answer = over_udp(query, *upstream).await?;
            if answer.get(2).is_some_and(|flags| flags & 0x02 != 0) {
                // TC: ask again over TCP for the whole answer.
                return over_tcp(query, *upstream).await.or(Some(answer));
            }
            Some(answer)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Some(answer)) if answer.get(..2) == Some(id) => return Some(answer),
            Ok(_) => tracing::debug!(%upstream, "upstream DNS server failed"),
            Err(_) => tracing::debug!(%upstream, "upstream DNS server timed out"),
        }
    }
    None
}

async fn over_udp(query: &[u8], upstream: SocketAddr) -> Option<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await.ok()?;
    sock.connect(upstream).await.ok()?;
    sock.send(query).await.ok()?;
    let mut buf = vec![0u8; 65_535];
    loop {
        // A connected socket reports ICMP port unreachable as an error: fail at once.
        let n = sock.recv(&mut buf).await.ok()?;
        // Ignore stray datagrams that are not the answer to this query.
        if n >= 12 && buf[..2] == query[..2] && buf[2] & 0x80 != 0 {
            buf.truncate(n);
            return Some(buf);
        }
    }
}

async fn over_tcp(query: &[u8], upstream: SocketAddr) -> Option<Vec<u8>> {
    let len = u16::try_from(query.len()).ok()?;
    let mut stream = TcpStream::connect(upstream).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let mut out = Vec::with_capacity(query.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(query);
    stream.write_all(&out).await.ok()?;
    let n = stream.read_u16().await.ok()?;
    let mut buf = vec![0u8; usize::from(n)];
    stream.read_exact(&mut buf).await.ok()?;
    Some(buf)
}
