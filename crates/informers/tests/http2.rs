//! The HTTP/2 client against the real API server over TLS: watches and requests of one client
//! share one connection, as client-go's do.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams, WatchEvent, WatchParams};
use tokio::net::TcpListener;

/// A TCP relay in front of `upstream` that counts the connections it accepts.
async fn counting_relay(
    upstream: std::net::SocketAddr,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_and_requests_share_one_connection() {
    let api = apiserver::inprocess::TempServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = apiserver::pki::Pki::at(dir.path());
    pki.ensure(&["127.0.0.1".to_string()]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    tokio::spawn(apiserver::server::serve_tls(
        listener,
        pki.server_config().unwrap(),
        apiserver::server::router(api.state.clone()),
        api.shutdown.clone(),
    ));
    let (relay, connections) = counting_relay(server_addr).await;
    let kubeconfig = dir.path().join("kubeconfig");
    pki.write_admin_kubeconfig(&kubeconfig, &format!("https://{relay}"))
        .unwrap();
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = informers::client::http2(config).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // Five watches open at once: over HTTP/1.1 each would hold a connection of its own.
    let mut watches = Vec::new();
    for _ in 0..5 {
        let stream = cms
            .watch(&WatchParams::default().timeout(30), "0")
            .await
            .unwrap();
        watches.push(stream.boxed());
    }
    // And twenty requests in flight together.
    let created = futures::future::join_all((0..20).map(|i| {
        let cms = cms.clone();
        async move {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(format!("cm-{i}")),
                    ..Default::default()
                },
                ..Default::default()
            };
            cms.create(&PostParams::default(), &cm).await
        }
    }))
    .await;
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    for w in &mut watches {
        let mut seen = 0;
        while seen < 20 {
            let ev = tokio::time::timeout(Duration::from_secs(10), w.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let WatchEvent::Added(cm) = ev
                && cm
                    .metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("cm-"))
            {
                seen += 1;
            }
        }
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    api.shutdown.cancel();
}
