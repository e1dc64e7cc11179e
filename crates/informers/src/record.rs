//! An event recorder, like client-go's `record.EventRecorder`: `kubectl describe` shows what
//! controllers did. Recording never blocks: events go through a bounded queue (dropped, with a
//! debug log, when it is full, as client-go's broadcaster does) to a background task that
//! writes core/v1 Events, up to 16 at a time. A repeat of the same event on the same object
//! increments `count` and `lastTimestamp` of the existing Event instead of creating one.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event as CoreEvent, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something to look at.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

#[derive(Debug)]
struct Pending {
    regarding: ObjectReference,
    type_: EventType,
    reason: String,
    message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AggKey {
    uid: String,
    kind: String,
    namespace: String,
    name: String,
    field_path: String,
    type_: EventType,
    reason: String,
    message: String,
}

#[derive(Debug, Clone)]
struct Seen {
    name: String,
    count: i32,
}

/// Records events for one component (`source.component`, `reportingComponent`). Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

const QUEUE: usize = 1000;
const CACHE: usize = 4096;

impl Recorder {
    /// A recorder for `component` (e.g. `replicaset-controller`), on `host` if given (the
    /// kubelet's node name), writing until `shutdown`.
    pub fn new(
        client: Client,
        component: &str,
        host: Option<&str>,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let sink = Sink {
            client,
            component: component.to_string(),
            host: host.map(str::to_string),
            seen: Arc::new(Mutex::new(HashMap::new())),
        };
        tokio::spawn(sink.run(rx, shutdown));
        Self { tx }
    }

    /// Records an event about `obj`.
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.event_ref(obj.object_ref(&()), type_, reason, message);
    }

    /// Records an event about the object `regarding`.
    pub fn event_ref(
        &self,
        regarding: ObjectReference,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let p = Pending {
            regarding,
            type_,
            reason: reason.to_string(),
            message: message.into(),
        };
        if let Err(e) = self.tx.try_send(p) {
            tracing::debug!(error = %e, "event dropped: the recorder queue is full");
        }
    }
}

struct Sink {
    client: Client,
    component: String,
    host: Option<String>,
    seen: Arc<Mutex<HashMap<AggKey, Seen>>>,
}

impl Sink {
    async fn run(self, rx: mpsc::Receiver<Pending>, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let stream = tokio_stream_from(rx)
            .map(|p| {
                let this = this.clone();
                async move { this.write(p).await }
            })
            .buffer_unordered(16);
        futures::pin_mut!(stream);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                next = stream.next() => if next.is_none() { return },
            }
        }
    }

    async fn write(&self, p: Pending) {
        let r = &p.regarding;
        // Events of cluster-scoped objects live in "default", as upstream.
        let namespace = r
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let key = AggKey {
            uid: r.uid.clone().unwrap_or_default(),
            kind: r.kind.clone().unwrap_or_default(),
            namespace: namespace.clone(),
            name: r.name.clone().unwrap_or_default(),
            field_path: r.field_path.clone().unwrap_or_default(),
            type_: p.type_,
            reason: p.reason.clone(),
            message: p.message.clone(),
        };
        let now = Timestamp::now();
        let previous = self.seen.lock().get(&key).cloned();
        let api: Api<CoreEvent> = Api::namespaced(self.client.clone(), &namespace);
        if let Some(prev) = previous {
            let count = prev.count + 1;
            let patch = serde_json::json!({"count": count, "lastTimestamp": Time(now)});
            match api
                .patch(&prev.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    if let Some(s) = self.seen.lock().get_mut(&key) {
                        s.count = count;
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "event update failed; creating a new one");
                    self.seen.lock().remove(&key);
                }
            }
        }
        let name = format!("{}.{:x}", key.name, now.as_nanosecond());
        let ev = CoreEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: p.regarding.clone(),
            reason: Some(p.reason.clone()),
            message: Some(p.message.clone()),
            type_: Some(p.type_.as_str().to_string()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone().unwrap_or_else(|| self.component.clone())),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &ev).await {
            Ok(_) => {
                let mut seen = self.seen.lock();
                if seen.len() >= CACHE {
                    seen.clear();
                }
                seen.insert(key, Seen { name, count: 1 });
            }
            Err(e) => tracing::debug!(error = %e, reason = %p.reason, "event not recorded"),
        }
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
