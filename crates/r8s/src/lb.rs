//! The agent's client-side load balancer (k3s's): a TCP proxy on loopback that the agent's API
//! client talks to. Each connection goes to the server that answered last, or to the next one
//! that accepts a connection, so when a server goes away the client's reconnects land on
//! another. TLS passes through untouched: every server's certificate is signed by the cluster
//! CA and names 127.0.0.1. The list of servers grows from the API servers' identity Leases.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long one server gets to accept a connection before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Servers {
    /// `host:port` of every known server, in the order they are tried.
    list: Vec<String>,
    /// Index of the server the last connection went to.
    current: usize,
}

/// A running load balancer.
#[derive(Clone)]
pub struct LoadBalancer {
    addr: SocketAddr,
    servers: Arc<Mutex<Servers>>,
}

impl LoadBalancer {
    /// Listens on a free loopback port and forwards to `servers` (`host:port`) until
    /// `shutdown`.
    pub async fn start(
        servers: Vec<String>,
        shutdown: CancellationToken,
    ) -> std::io::Result<LoadBalancer> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let lb = LoadBalancer {
            addr: listener.local_addr()?,
            servers: Arc::new(Mutex::new(Servers {
                list: servers,
                current: 0,
            })),
        };
        let this = lb.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    c = listener.accept() => c,
                };
                match conn {
                    Ok((client, _)) => {
                        let this = this.clone();
                        let shutdown = shutdown.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = shutdown.cancelled() => {}
                                _ = this.forward(client) => {}
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "load balancer: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(lb)
    }

    /// The `https://127.0.0.1:<port>` URL clients use.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The known servers, in the order they are tried.
    #[cfg(test)]
    pub fn servers(&self) -> Vec<String> {
        self.servers.lock().list.clone()
    }

    /// Adds servers not yet known (servers are never dropped: one that is down is skipped).
    pub fn add_servers(&self, more: impl IntoIterator<Item = String>) {
        let mut s = self.servers.lock();
        for m in more {
            if !s.list.contains(&m) {
                tracing::info!(server = %m, "load balancer: new server");
                s.list.push(m);
            }
        }
    }

    async fn forward(&self, mut client: TcpStream) {
        let (list, start) = {
            let s = self.servers.lock();
            (s.list.clone(), s.current)
        };
        for i in 0..list.len() {
            let idx = (start + i) % list.len();
            let target = &list[idx];
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target.as_str())).await {
                Ok(Ok(mut server)) => {
                    if idx != start {
                        tracing::info!(server = %target, "load balancer: switched server");
                        self.servers.lock().current = idx;
                    }
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    return;
                }
                Ok(Err(e)) => {
                    tracing::debug!(server = %target, error = %e, "load balancer: connect failed")
                }
                Err(_) => tracing::debug!(server = %target, "load balancer: connect timed out"),
            }
        }
        tracing::warn!(servers = ?list, "load balancer: no server accepts connections");
    }
}

/// How often the servers' identity Leases are read.
const DISCOVERY_PERIOD: Duration = Duration::from_secs(10);

/// Adds every server that publishes an identity Lease (`kube-system`, label
/// `apiserver.kubernetes.io/identity=kube-apiserver`) to `lb`, now and every 10 s, until
/// `shutdown`.
pub async fn discover_servers(client: kube::Client, lb: LoadBalancer, shutdown: CancellationToken) {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: kube::Api<Lease> = kube::Api::namespaced(client, "kube-system");
    let params = kube::api::ListParams::default().labels(&format!(
        "{}=kube-apiserver",
        apiserver::bootstrap_services::IDENTITY_LABEL
    ));
    loop {
        match leases.list(&params).await {
            Ok(list) => lb.add_servers(list.items.iter().filter_map(|l| {
                l.metadata
                    .annotations
                    .as_ref()?
                    .get(apiserver::bootstrap_services::ADVERTISE_ANNOTATION)
                    .cloned()
            })),
            Err(e) => tracing::debug!(error = %e, "listing the API servers failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(DISCOVERY_PERIOD) => {}
        }
    }
}

/// `host:port` of an `https://host:port` URL.
pub fn host_port(url: &str) -> Option<String> {
    let rest = url.trim().strip_prefix("https://")?;
    let hp = rest.split('/').next()?;
    if hp.is_empty() {
        return None;
    }
    Some(
        if hp
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            hp.to_string()
        } else {
            format!("{hp}:6443")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn urls_give_host_ports() {
        assert_eq!(
            host_port("https://10.0.0.1:6443").as_deref(),
            Some("10.0.0.1:6443")
        );
        assert_eq!(
            host_port("https://a.example/").as_deref(),
            Some("a.example:6443")
        );
        assert_eq!(host_port("http://x:1"), None);
    }

    /// An echo server that prefixes its answers with `tag`.
    async fn echo(tag: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    let n = s.read(&mut buf).await.unwrap();
                    s.write_all(tag.as_bytes()).await.unwrap();
                    s.write_all(&buf[..n]).await.unwrap();
                });
            }
        });
        (addr, task)
    }

    async fn ask(lb: &LoadBalancer) -> String {
        let mut c = TcpStream::connect(lb.addr).await.unwrap();
        c.write_all(b"hi").await.unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn fails_over_to_the_next_server() {
        let (a, task_a) = echo("a:").await;
        let (b, _task_b) = echo("b:").await;
        let shutdown = CancellationToken::new();
        let lb = LoadBalancer::start(vec![a.to_string()], shutdown.clone())
            .await
            .unwrap();
        lb.add_servers([b.to_string(), a.to_string()]);
        assert_eq!(lb.servers(), vec![a.to_string(), b.to_string()]);
        assert_eq!(ask(&lb).await, "a:hi");
        // Server a goes away: connections go to b, and stay there.
        task_a.abort();
        let _ = task_a.await;
        assert_eq!(ask(&lb).await, "b:hi");
        assert_eq!(ask(&lb).await, "b:hi");
        shutdown.cancel();
    }
}
