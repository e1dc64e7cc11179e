//! An event recorder, like client-go's `record.EventRecorder`: `kubectl describe` shows what
//! controllers did. Recording never blocks: events go through a bounded queue (dropped, with a
//! debug log, when it is full, as client-go's broadcaster does) to background tasks that
//! write core/v1 Events, up to 16 at a time. A repeat of the same event on the same object
//! increments `count` and `lastTimestamp` of the existing Event instead of creating one; the
//! repeats of one event go through the same lane, in order, so a repeat is never written
//! before the Event it counts exists.
//!
//! Like client-go's `EventSourceObjectSpamFilter`, each source may record at most 25 events
//! about one object at once, then one per 5 minutes: a ReplicaSet scaled to 10,000 replicas
//! gets 25 `SuccessfulCreate` events, not 10,000 writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

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
    spam: Arc<SpamFilter>,
}

/// client-go's defaults (`defaultSpamBurst`, `defaultSpamQPS`, `maxLruCacheEntries`).
const SPAM_BURST: f64 = 25.0;
const SPAM_QPS: f64 = 1.0 / 300.0;
const SPAM_CACHE: usize = 4096;

/// client-go's `EventSourceObjectSpamFilter`: a token bucket per source and involved object.
#[derive(Debug)]
struct SpamFilter {
    /// `source.component` and `source.host`, the first part of every key.
    source: String,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant) -> f64 {
        (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * SPAM_QPS)
            .min(SPAM_BURST)
    }
}

impl SpamFilter {
    fn new(component: &str, host: Option<&str>) -> Self {
        Self {
            source: format!("{component}{}", host.unwrap_or_default()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an event about `r` may be recorded at `now` (upstream `getSpamKey`: the source,
    /// then the object's kind, namespace, name, UID and apiVersion).
    fn allow(&self, r: &ObjectReference, now: Instant) -> bool {
        let key = [
            self.source.as_str(),
            r.kind.as_deref().unwrap_or_default(),
            r.namespace.as_deref().unwrap_or_default(),
            r.name.as_deref().unwrap_or_default(),
            r.uid.as_deref().unwrap_or_default(),
            r.api_version.as_deref().unwrap_or_default(),
        ]
        .concat();
        let mut buckets = self.buckets.lock();
        if buckets.len() >= SPAM_CACHE && !buckets.contains_key(&key) {
            // A full bucket holds nothing a new one would not; then, as an LRU would, forget.
            buckets.retain(|_, b| b.refilled(now) < SPAM_BURST);
            if buckets.len() >= SPAM_CACHE {
                buckets.clear();
            }
        }
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: SPAM_BURST,
            at: now,
        });
        b.tokens = b.refilled(now);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
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
        Self {
            lanes,
            spam: Arc::new(SpamFilter::new(component, host)),
        }
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
        if !self.spam.allow(&regarding, Instant::now()) {
            tracing::debug!(reason, "event dropped: too many about this object");
            return;
        }
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
        match crate::write::create(&api, &PostParams::default(), &ev).await {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pod(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some("default".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            api_version: Some("v1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn spam_filter_allows_a_burst_of_25_per_object_then_one_per_5_minutes() {
        let f = SpamFilter::new("replicaset-controller", None);
        let t0 = Instant::now();
        let a = pod("a");
        assert_eq!((0..30).filter(|_| f.allow(&a, t0)).count(), 25);
        // Another object, or another source about the same object, has its own bucket.
        assert!(f.allow(&pod("b"), t0));
        assert!(SpamFilter::new("default-scheduler", None).allow(&a, t0));
        assert!(!f.allow(&a, t0 + Duration::from_secs(299)));
        assert!(f.allow(&a, t0 + Duration::from_secs(301)));
        assert!(!f.allow(&a, t0 + Duration::from_secs(302)));
        // After long enough, the whole burst again.
        let later = t0 + Duration::from_secs(300 * 30);
        assert_eq!((0..30).filter(|_| f.allow(&a, later)).count(), 25);
    }

    #[test]
    fn spam_filter_memory_is_bounded() {
        let f = SpamFilter::new("c", None);
        let t0 = Instant::now();
        for i in 0..SPAM_CACHE + 10 {
            assert!(f.allow(&pod(&format!("p{i}")), t0));
        }
        assert!(f.buckets.lock().len() <= SPAM_CACHE);
    }
}
