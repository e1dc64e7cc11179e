//! The informer against the real API server, in-process: list, watch, indexes and events.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use informers::{Event, EventType, Factory, Recorder};
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use tokio_util::sync::CancellationToken;

async fn server() -> (
    kube::Client,
    CancellationToken,
    apiserver::inprocess::TempServer,
) {
    let api = apiserver::inprocess::TempServer::start().await.unwrap();
    (api.client.clone(), api.shutdown.clone(), api)
}

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informer_lists_then_follows_changes() {
    let (client, shutdown, _dir) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("before"))
        .await
        .unwrap();
    let factory = Factory::new(client.clone(), shutdown.clone());
    let inf = factory.informer::<ConfigMap>();
    tokio::time::timeout(Duration::from_secs(10), inf.wait_synced())
        .await
        .unwrap();
    assert!(inf.get("default", "before").is_some());
    // The same informer is shared.
    assert_eq!(factory.informer::<ConfigMap>().len(), inf.len());
    let mut rx = inf.subscribe();
    let first = rx.recv().await.unwrap();
    assert!(matches!(first, Event::Added(_)));
    api.create(&PostParams::default(), &cm("after"))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(&ev, Event::Added(o) if o.metadata.name.as_deref() == Some("after")));
    api.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(&ev, Event::Deleted(o) if o.metadata.name.as_deref() == Some("before")));
    assert!(inf.get("default", "before").is_none());
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_writes_and_aggregates_events() {
    let (client, shutdown, _dir) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let obj = api
        .create(&PostParams::default(), &cm("subject"))
        .await
        .unwrap();
    let rec = Recorder::new(client.clone(), "test-controller", None, shutdown.clone());
    rec.event(&obj, EventType::Normal, "Tested", "it happened");
    let events: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let mut found = None;
    for _ in 0..100 {
        let l = events.list(&ListParams::default()).await.unwrap();
        if let Some(e) = l
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Tested"))
        {
            found = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = found.expect("event recorded");
    assert_eq!(e.involved_object.name.as_deref(), Some("subject"));
    assert_eq!(
        e.source.unwrap().component.as_deref(),
        Some("test-controller")
    );
    rec.event(&obj, EventType::Normal, "Tested", "it happened");
    let mut count = 0;
    for _ in 0..100 {
        let e = events
            .get(e.metadata.name.as_deref().unwrap())
            .await
            .unwrap();
        count = e.count.unwrap_or(0);
        if count == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count, 2);

    // client-go's spam filter: 25 events about one object at once, counting the two above.
    for i in 0..30 {
        rec.event(&obj, EventType::Normal, "Tested", format!("message {i}"));
    }
    let about_subject = || async {
        let l = events.list(&ListParams::default()).await.unwrap();
        l.items
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("subject"))
            .count()
    };
    let mut n = 0;
    for _ in 0..100 {
        n = about_subject().await;
        if n >= 24 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((n, about_subject().await), (24, 24));
    shutdown.cancel();
}
