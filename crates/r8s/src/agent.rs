//! The node agent: the kubelet, the service proxy and the cluster DNS server of one node,
//! sharing one API client and one set of informers.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The port the cluster DNS server listens on, on the node's address; the `kube-dns` Service
/// (port 53 on the DNS ClusterIP) leads there.
pub const DNS_PORT: u16 = 53;

/// How often the DNS endpoints are re-applied (they are re-created if someone deleted them).
const DNS_ENDPOINTS_PERIOD: Duration = Duration::from_secs(30);

/// What runs besides the kubelet.
pub struct Parts {
    /// The kubelet.
    pub kubelet: kubelet::Config,
    /// The service proxy, unless disabled.
    pub proxy: Option<proxy::Config>,
    /// The cluster DNS server, unless disabled: the resolv.conf whose nameservers answer
    /// names outside the cluster.
    pub dns_resolv_conf: Option<PathBuf>,
}

/// Runs the agent until `shutdown` (or until the kubelet fails).
pub async fn run(
    parts: Parts,
    client: kube::Client,
    factory: Arc<informers::Factory>,
    shutdown: CancellationToken,
) -> Result<(), kubelet::KubeletError> {
    let node_name = parts.kubelet.node_name.clone();
    let node_ip = parts
        .kubelet
        .node_ip
        .unwrap_or_else(kubelet::node::detect_node_ip);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(cfg) = parts.proxy {
        let services = factory.informer::<Service>();
        let slices = factory.informer::<EndpointSlice>();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let proxy = proxy::Proxy::new(cfg);
            if let Err(e) = proxy.run(services, slices, shutdown).await {
                tracing::error!(error = %e, "the service proxy stopped");
            }
        });
    }
    if let Some(resolv) = parts.dns_resolv_conf {
        let factory = factory.clone();
        let client = client.clone();
        let shutdown = shutdown.clone();
        let domain = parts.kubelet.cluster_domain.clone();
        tasks.spawn(async move {
            let upstreams = match tokio::fs::read_to_string(&resolv).await {
                Ok(text) => dns::upstreams_from_resolv_conf(&text),
                Err(e) => {
                    tracing::warn!(path = %resolv.display(), error = %e, "no resolv.conf: names outside the cluster will not resolve");
                    Vec::new()
                }
            };
            let mut config = dns::Config::new(SocketAddr::new(node_ip, DNS_PORT));
            config.cluster_domain = domain;
            config.upstreams = upstreams;
            let server = match dns::Server::bind(config).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "the cluster DNS server could not start");
                    return;
                }
            };
            let publisher = tokio::spawn(publish_dns_endpoints(
                client,
                node_name,
                node_ip,
                shutdown.clone(),
            ));
            let services = factory.informer::<Service>();
            let slices = factory.informer::<EndpointSlice>();
            if let Err(e) = server.run(services, slices, shutdown).await {
                tracing::error!(error = %e, "the cluster DNS server stopped");
            }
            publisher.abort();
        });
    }
    let result = kubelet::run(parts.kubelet, client, factory, shutdown.clone()).await;
    if result.is_err() {
        tasks.abort_all();
    }
    while tasks.join_next().await.is_some() {}
    result
}

/// Keeps `kube-system/kube-dns`'s endpoints pointing at this node's DNS server: the
/// EndpointSlice `kube-dns-<node>` and the Endpoints `kube-dns` (server-side apply, so a
/// deleted object comes back at the next round).
async fn publish_dns_endpoints(
    client: kube::Client,
    node: String,
    ip: IpAddr,
    shutdown: CancellationToken,
) {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    let endpoints: Api<Endpoints> = Api::namespaced(client, "kube-system");
    let pp = PatchParams::apply("r8s-agent").force();
    let slice_name = format!("kube-dns-{node}");
    let ports = json!([
        {"name": "dns", "port": DNS_PORT, "protocol": "UDP"},
        {"name": "dns-tcp", "port": DNS_PORT, "protocol": "TCP"}
    ]);
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": slice_name, "namespace": "kube-system", "labels": {
            "kubernetes.io/service-name": "kube-dns",
            "endpointslice.kubernetes.io/managed-by": "r8s-agent"
        }},
        "addressType": if ip.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [ip.to_string()], "nodeName": node,
                       "conditions": {"ready": true, "serving": true, "terminating": false}}],
        "ports": ports,
    });
    let eps = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "kube-dns", "namespace": "kube-system"},
        "subsets": [{"addresses": [{"ip": ip.to_string(), "nodeName": node}], "ports": ports}],
    });
    loop {
        if let Err(e) = slices.patch(&slice_name, &pp, &Patch::Apply(&slice)).await {
            tracing::warn!(error = %e, "publishing the cluster DNS EndpointSlice failed");
        }
        if let Err(e) = endpoints.patch("kube-dns", &pp, &Patch::Apply(&eps)).await {
            tracing::warn!(error = %e, "publishing the cluster DNS Endpoints failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(DNS_ENDPOINTS_PERIOD) => {}
        }
    }
}
