//! An event recorder, like client-go's `record.EventRecorder`: `kubectl describe` shows what
//! controllers did. Recording never blocks: events go through a bounded queue (dropped, with a
//! debug log, when it is full, as client-go's broadcaster does) to background tasks that
//! write core/v1 Events, up to 16 at a time. A repeat of the same event on the same object
//! increments `count` and `lastTimestamp` of the existing Event instead of creating one; the
//! repeats of one event go through the same lane, in order, so a repeat is never written
//! before the Event it counts exists.

use std::collections::HashMap;
use std::sync::Arc;

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
    lanes: Arc<[mpsc::Sender<Pending>]>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

/// Queued events per lane.
const QUEUE: usize = 64;
/// Lanes: events written at once (the same event always takes the same lane).
const LANES: usize = 16;
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
        let sink = Arc::new(Sink {
            client,
            component: component.to_string(),
            host: host.map(str::to_string),
            seen: Arc::new(Mutex::new(HashMap::new())),
        });
        let lanes = (0..LANES)
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(sink.clone().run(rx, shutdown.clone()));
                tx
            })
            .collect();
        Self { lanes }
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
        let lane = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&p.regarding.uid, &p.regarding.name, &p.reason, &p.message).hash(&mut h);
            (h.finish() % self.lanes.len() as u64) as usize
        };
        if let Err(e) = self.lanes[lane].try_send(p) {
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
    /// Writes the events of one lane, in order.
    async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Pending>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                next = rx.recv() => match next {
                    Some(p) => self.write(p).await,
                    None => return,
                },
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
