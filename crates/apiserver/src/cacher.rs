//! The watch cache (upstream `apiserver/pkg/storage/cacher`): every object of every resource in
//! memory, plus a window of recent events per resource, fed by one store watch. LIST, GET and
//! WATCH are served from here; the store is only read for continuations of paged lists at an
//! older revision.
//!
//! One dispatcher task applies store events in revision order. Each resource has its own lock;
//! broadcasts happen under it so that a watcher that snapshots and subscribes under the same
//! lock sees every event exactly once. A watcher that falls behind its broadcast buffer is cut
//! off (it re-lists); nothing ever waits for a watcher.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use codec::ordered::{find, member};
use futures::StreamExt;
use parking_lot::RwLock;
use serde_json::Value;
use store::{Event, KeyValue, Revision, Store};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::projection::Projection;
use crate::registry::{Registry, ResourceInfo};

/// How many events each resource keeps for watches that start in the past.
const WINDOW: usize = 10_000;
/// Broadcast buffer per resource; a watcher further behind than this is cut off.
const BROADCAST: usize = 4_096;

/// Extracts the values of a resource's selectable fields from an object.
pub type FieldExtractor = fn(&ResourceInfo, &Value) -> Vec<(&'static str, String)>;

/// The parts of a stored object the cache reads when it needs no other field.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    metadata: Option<HeadMeta<'a>>,
}

#[derive(serde::Deserialize)]
struct HeadMeta<'a> {
    #[serde(borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    namespace: Option<std::borrow::Cow<'a, str>>,
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "resourceVersion")]
    resource_version: Option<serde::de::IgnoredAny>,
}

/// One object as the cache holds it.
#[derive(Debug)]
pub struct CachedObject {
    /// Storage key.
    pub key: String,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its mod revision (= resourceVersion).
    pub rv: Revision,
    /// The object's JSON with `metadata.resourceVersion` set.
    pub raw: Bytes,
    /// Labels, for label selectors.
    pub labels: BTreeMap<String, String>,
    /// Selectable fields (besides metadata.name/namespace), for field selectors.
    pub fields: Vec<(&'static str, String)>,
    /// The parsed object, kept for small objects that this server wrote (see
    /// [`Cacher::remember_parsed`]): their next update starts from it instead of parsing `raw`.
    /// Dropped when a newer version replaces this one.
    pub parsed: parking_lot::Mutex<Option<Arc<Value>>>,
}

impl CachedObject {
    /// The largest object ([`CachedObject::raw`] bytes) whose parsed form is kept.
    pub const KEEP_PARSED_MAX: usize = 1536;

    /// The parsed object.
    pub fn value(&self) -> Value {
        match &*self.parsed.lock() {
            Some(v) => Value::clone(v),
            None => codec::json::from_slice(&self.raw).unwrap_or(Value::Null),
        }
    }

    /// The parsed object, shared when it is kept (no copy).
    pub fn shared_value(&self) -> Arc<Value> {
        match &*self.parsed.lock() {
            Some(v) => v.clone(),
            None => Arc::new(codec::json::from_slice(&self.raw).unwrap_or(Value::Null)),
        }
    }

    /// The parsed object, owned: the kept parsed form is taken from the cache (not copied, unless
    /// a reader still shares it); otherwise the stored bytes are parsed. For a writer that
    /// replaces the object: the cache gets the new object's parsed form after the write.
    pub fn take_value(&self) -> Value {
        let kept = self.parsed.lock().take();
        match kept {
            Some(v) => Arc::unwrap_or_clone(v),
            None => codec::json::from_slice(&self.raw).unwrap_or(Value::Null),
        }
    }

    /// The value of a selectable field.
    pub fn field(&self, name: &str) -> Option<&str> {
        match name {
            "metadata.name" => Some(&self.name),
            "metadata.namespace" => Some(&self.namespace),
            _ => self
                .fields
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str()),
        }
    }
}

/// Kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted.
    Deleted,
}

/// One change of one object.
#[derive(Debug, Clone)]
pub struct CacheEvent {
    /// Kind of change.
    pub type_: EventType,
    /// The revision of the change.
    pub rv: Revision,
    /// The object after the change (for deletes: the last state, with `rv` = deletion rev).
    pub obj: Arc<CachedObject>,
    /// The object before the change.
    pub prev: Option<Arc<CachedObject>>,
}

struct ResourceCache {
    objects: BTreeMap<String, Arc<CachedObject>>,
    window: VecDeque<Arc<CacheEvent>>,
    /// Every event of this resource with rv > window_start is in `window`.
    window_start: Revision,
    /// The rv of the last event applied to this resource.
    last_rv: Revision,
    tx: broadcast::Sender<Arc<CacheEvent>>,
    /// Parsed forms of versions written but not applied yet (see [`Cacher::remember_parsed`]).
    parsed_pending: HashMap<String, (Revision, Arc<Value>)>,
}

/// Errors of cache reads.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The watch starts before the window.
    #[error("too old resource version: {requested} ({oldest})")]
    TooOld {
        /// Requested rv.
        requested: Revision,
        /// Oldest rv servable.
        oldest: Revision,
    },
    /// The cache did not reach the requested revision in time.
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLarge {
        /// Requested rv.
        requested: Revision,
        /// Cache rv.
        current: Revision,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// A snapshot for a LIST.
pub struct ListSnapshot {
    /// Matching objects in key order.
    pub items: Vec<Arc<CachedObject>>,
    /// The revision of the snapshot.
    pub rv: Revision,
}

/// A started watch: initial (or replayed) events, then live ones.
pub struct CacheWatch {
    /// Events to send first, in order.
    pub initial: Vec<Arc<CacheEvent>>,
    /// Revision of the snapshot (for the initial-events-end bookmark).
    pub snapshot_rv: Revision,
    /// Live events.
    pub rx: broadcast::Receiver<Arc<CacheEvent>>,
    /// Events with rv <= this were already covered by `initial`.
    pub skip_until: Revision,
}

/// The watch cache.
pub struct Cacher {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    resources: HashMap<&'static str, RwLock<ResourceCache>>,
    rv: AtomicI64,
    rv_tx: watch::Sender<Revision>,
    fields: FieldExtractor,
    /// Key prefixes of the resources with selectable fields besides name and namespace, with
    /// the members of their objects that those are read from.
    with_fields: HashMap<&'static str, Projection>,
    /// Versions being written, by key, with what their writer knows of them (see
    /// [`Cacher::announce`]); only kept when the store's events carry the written bytes.
    announced: parking_lot::Mutex<HashMap<String, Announced>>,
    /// [`Store::events_share_written_bytes`] of the store.
    announcing: bool,
}

/// A version about to be written, announced by its writer: the stored bytes (kept, so that the
/// same allocation is recognized in the store's event) with the name, namespace, labels and
/// selectable fields of the object they encode.
struct Announced {
    value: Bytes,
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    fields: Vec<(&'static str, String)>,
}

impl Cacher {
    /// Loads every object from the store and starts following its changes.
    pub async fn start(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        fields: FieldExtractor,
        cancel: CancellationToken,
    ) -> Result<Arc<Cacher>, store::StoreError> {
        let mut resources = HashMap::new();
        for r in registry.all() {
            resources.entry(r.key_prefix).or_insert_with(|| {
                RwLock::new(ResourceCache {
                    parsed_pending: HashMap::new(),
                    objects: BTreeMap::new(),
                    window: VecDeque::new(),
                    window_start: 0,
                    last_rv: 0,
                    tx: broadcast::channel(BROADCAST).0,
                })
            });
        }
        let (rv_tx, _) = watch::channel(0);
        // Kinds sharing a storage prefix (core and events.k8s.io Events) share the projection:
        // it keeps the members of them all.
        let mut with_fields: HashMap<&'static str, Projection> = HashMap::new();
        for r in registry.all().iter().filter(|r| {
            printers::fields::supported_fields(r.group, r.resource)
                .iter()
                .any(|f| !matches!(*f, "metadata.name" | "metadata.namespace"))
        }) {
            with_fields
                .entry(r.key_prefix)
                .or_default()
                .add_paths(printers::fields::field_paths(r.group, r.resource));
        }
        let announcing = store.events_share_written_bytes();
        let cacher = Arc::new(Cacher {
            store,
            registry,
            resources,
            rv: AtomicI64::new(0),
            rv_tx,
            fields,
            with_fields,
            announced: Default::default(),
            announcing,
        });
        let rev = cacher.load().await?;
        let stream = cacher.store.watch("/registry/", rev).await?;
        let c = cacher.clone();
        tokio::spawn(async move { c.follow(stream, cancel).await });
        Ok(cacher)
    }

    async fn load(&self) -> Result<Revision, store::StoreError> {
        let page = self.store.range("/registry/", None, 0, None).await?;
        for kv in &page.kvs {
            if let Some(r) = self.registry.for_key(&kv.key)
                && let Some(obj) = self.build(r, kv, kv.mod_revision)
                && let Some(rc) = self.resources.get(r.key_prefix)
            {
                rc.write().objects.insert(kv.key.clone(), Arc::new(obj));
            }
        }
        for rc in self.resources.values() {
            let mut rc = rc.write();
            rc.window_start = page.revision;
            rc.last_rv = page.revision;
        }
        self.rv.store(page.revision, Ordering::SeqCst);
        self.rv_tx.send_replace(page.revision);
        Ok(page.revision)
    }

    async fn follow(self: Arc<Self>, mut stream: store::WatchStream, cancel: CancellationToken) {
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return,
                n = stream.next() => n,
            };
            let lost = match next {
                Some(Ok(ev)) => {
                    self.apply(ev);
                    continue;
                }
                Some(Err(e)) => e.to_string(),
                None => "the store ended the watch".to_string(),
            };
            tracing::warn!(error = %lost, "watch cache lost its store watch; re-listing");
            // Until a re-list succeeds: a cache that stops following serves stale data forever.
            let mut backoff = Duration::from_millis(200);
            stream = loop {
                match self.relist().await {
                    Ok(s) => break s,
                    Err(e) => {
                        tracing::error!(error = %e, "watch cache re-list failed; retrying");
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            };
        }
    }

    /// Re-reads the store after a lost watch and emits the differences as events.
    async fn relist(&self) -> Result<store::WatchStream, store::StoreError> {
        let page = self.store.range("/registry/", None, 0, None).await?;
        let mut seen = std::collections::HashSet::new();
        for kv in &page.kvs {
            seen.insert(kv.key.clone());
            let changed = self
                .registry
                .for_key(&kv.key)
                .and_then(|r| self.resources.get(r.key_prefix))
                .map(|rc| {
                    rc.read()
                        .objects
                        .get(&kv.key)
                        .is_none_or(|o| o.rv != kv.mod_revision)
                })
                .unwrap_or(false);
            if changed {
                self.apply(Event::Put {
                    kv: kv.clone(),
                    prev: None,
                });
            }
        }
        let mut gone = Vec::new();
        for rc in self.resources.values() {
            for (k, o) in &rc.read().objects {
                if !seen.contains(k) {
                    gone.push(o.clone());
                }
            }
        }
        for o in gone {
            self.apply(Event::Delete {
                prev: KeyValue {
                    key: o.key.clone(),
                    value: o.raw.clone(),
                    create_revision: 0,
                    mod_revision: o.rv,
                },
                revision: page.revision,
            });
        }
        self.rv.store(page.revision, Ordering::SeqCst);
        self.rv_tx.send_replace(page.revision);
        self.store.watch("/registry/", page.revision).await
    }

    fn build(&self, r: &ResourceInfo, kv: &KeyValue, rv: Revision) -> Option<CachedObject> {
        // Without parsing the whole object when its stored bytes can be served as they are.
        if let Some(obj) = self.build_announced(kv, rv) {
            return Some(obj);
        }
        match self.with_fields.get(r.key_prefix) {
            None => {
                if let Some(obj) = Self::build_raw(kv, rv) {
                    return Some(obj);
                }
            }
            Some(projection) => {
                if let Some(mut obj) = Self::build_raw(kv, rv)
                    && let Ok(part) = projection.parse(&kv.value)
                {
                    obj.fields = (self.fields)(r, &part);
                    return Some(obj);
                }
            }
        }
        let mut v = codec::json::from_slice(&kv.value).ok()?;
        crate::object::set_resource_version(&mut v, rv);
        let meta = v.get("metadata")?;
        let name = meta.get("name")?.as_str()?.to_string();
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let labels = meta
            .get("labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let fields = (self.fields)(r, &v);
        let raw = Bytes::from(serde_json::to_vec(&v).ok()?);
        Some(CachedObject {
            key: kv.key.clone(),
            namespace,
            name,
            rv,
            raw,
            labels,
            fields,
            parsed: Default::default(),
        })
    }

    /// [`Cacher::build`] of a version whose writer announced it ([`Cacher::announce`]): the
    /// event carries the very bytes announced, so nothing is parsed. Any announcement for the
    /// key is consumed.
    fn build_announced(&self, kv: &KeyValue, rv: Revision) -> Option<CachedObject> {
        let a = {
            let mut announced = self.announced.lock();
            if announced.is_empty() {
                return None;
            }
            announced.remove(&kv.key)?
        };
        // The same allocation, kept alive by the announcement: the same bytes.
        if a.value.as_ptr() != kv.value.as_ptr() || a.value.len() != kv.value.len() {
            return None;
        }
        let raw = crate::object::with_resource_version(&kv.value, rv)?;
        Some(CachedObject {
            key: kv.key.clone(),
            namespace: a.namespace,
            name: a.name,
            rv,
            raw: Bytes::from(raw),
            labels: a.labels,
            fields: a.fields,
            parsed: Default::default(),
        })
    }

    /// Tells the cache that `value`, the encoding (without resourceVersion) of `obj`, is about
    /// to be written at `key`, so that applying the write's event needs no parse of it (the
    /// selectable fields are read from `obj`). Only with a store whose events carry the written
    /// bytes; an announcement whose write fails must be withdrawn ([`Cacher::withdraw`]).
    pub fn announce(&self, r: &ResourceInfo, key: &str, value: &Bytes, obj: &Value) {
        if !self.announcing {
            return;
        }
        let Some(meta) = member(obj, "metadata").and_then(Value::as_object) else {
            return;
        };
        let text = |k: &str| find(meta, k).and_then(Value::as_str);
        let Some(name) = text("name") else { return };
        if find(meta, "resourceVersion").is_some() {
            return;
        }
        let mut labels = BTreeMap::new();
        if let Some(l) = find(meta, "labels") {
            let Some(l) = l.as_object() else { return };
            for (k, v) in l {
                let Some(v) = v.as_str() else { return };
                labels.insert(k.clone(), v.to_owned());
            }
        }
        // Read as `build` reads them: with the resource that owns the key (core and
        // events.k8s.io Events share their storage).
        let fields = if self.with_fields.contains_key(r.key_prefix) {
            let Some(owner) = self.registry.for_key(key) else {
                return;
            };
            (self.fields)(owner, obj)
        } else {
            Vec::new()
        };
        let a = Announced {
            value: value.clone(),
            namespace: text("namespace").unwrap_or("").to_owned(),
            name: name.to_owned(),
            labels,
            fields,
        };
        self.announced.lock().insert(key.to_owned(), a);
    }

    /// [`Cacher::announce`] for a write made from the cached text of the current version
    /// `cur`, which keeps its name, namespace and labels: `fields` are the new version's
    /// selectable fields, in the order the cache reads them.
    pub fn announce_unparsed(
        &self,
        key: &str,
        value: &Bytes,
        cur: &CachedObject,
        fields: Vec<(&'static str, String)>,
    ) {
        if !self.announcing {
            return;
        }
        let a = Announced {
            value: value.clone(),
            namespace: cur.namespace.clone(),
            name: cur.name.clone(),
            labels: cur.labels.clone(),
            fields,
        };
        self.announced.lock().insert(key.to_owned(), a);
    }

    /// Withdraws the announcement of a write that failed.
    pub fn withdraw(&self, key: &str) {
        let mut announced = self.announced.lock();
        if !announced.is_empty() {
            announced.remove(key);
        }
    }

    /// [`Cacher::build`] for resources without selectable fields, without parsing the whole
    /// object: only its name, namespace and labels are read, and the resourceVersion is spliced
    /// into the stored bytes. `None` when that does not apply (the stored value already has a
    /// resourceVersion, or is not what this expects): the caller parses it.
    fn build_raw(kv: &KeyValue, rv: Revision) -> Option<CachedObject> {
        let head: Head = serde_json::from_slice(&kv.value).ok()?;
        let meta = head.metadata?;
        if meta.resource_version.is_some() {
            return None;
        }
        let raw = crate::object::with_resource_version(&kv.value, rv)?;
        Some(CachedObject {
            key: kv.key.clone(),
            namespace: meta.namespace.map(String::from).unwrap_or_default(),
            name: meta.name?.into_owned(),
            rv,
            raw: Bytes::from(raw),
            labels: meta.labels.unwrap_or_default(),
            fields: Vec::new(),
            parsed: Default::default(),
        })
    }

    fn apply(&self, ev: Event) {
        let rev = ev.revision();
        let Some(r) = self.registry.for_key(ev.key()).cloned() else {
            self.bump(rev);
            return;
        };
        let Some(rc) = self.resources.get(r.key_prefix) else {
            self.bump(rev);
            return;
        };
        let built = match &ev {
            Event::Put { kv, .. } => self.build(&r, kv, kv.mod_revision),
            Event::Delete { prev, revision } => self.build(&r, prev, *revision),
        };
        let Some(obj) = built else {
            tracing::warn!(key = ev.key(), "undecodable object in store; skipped");
            self.bump(rev);
            return;
        };
        let obj = Arc::new(obj);
        {
            let mut rc = rc.write();
            let prev = match &ev {
                Event::Put { .. } => rc.objects.insert(obj.key.clone(), obj.clone()),
                Event::Delete { .. } => rc.objects.remove(&obj.key),
            };
            if let Some(p) = &prev {
                // Old versions stay in the event window; their parsed form is not needed.
                p.parsed.lock().take();
            }
            if !rc.parsed_pending.is_empty()
                && let Some((pending_rv, parsed)) = rc.parsed_pending.remove(&obj.key)
                && pending_rv == rev
                && matches!(ev, Event::Put { .. })
                && obj.raw.len() <= CachedObject::KEEP_PARSED_MAX
            {
                *obj.parsed.lock() = Some(parsed);
            }
            let type_ = match (&ev, &prev) {
                (Event::Delete { .. }, _) => EventType::Deleted,
                (Event::Put { .. }, Some(_)) => EventType::Modified,
                (Event::Put { .. }, None) => EventType::Added,
            };
            let ce = Arc::new(CacheEvent {
                type_,
                rv: rev,
                obj,
                prev,
            });
            rc.window.push_back(ce.clone());
            while rc.window.len() > WINDOW {
                if let Some(old) = rc.window.pop_front() {
                    rc.window_start = old.rv;
                }
            }
            rc.last_rv = rev;
            // Sending on a broadcast channel never blocks; doing it under the lock keeps
            // snapshot+subscribe atomic for watchers.
            let _ = rc.tx.send(ce);
        }
        self.bump(rev);
    }

    fn bump(&self, rev: Revision) {
        self.rv.fetch_max(rev, Ordering::SeqCst);
        self.rv_tx.send_if_modified(|cur| {
            if *cur < rev {
                *cur = rev;
                true
            } else {
                false
            }
        });
    }

    /// The revision the cache has caught up to.
    pub fn revision(&self) -> Revision {
        self.rv.load(Ordering::SeqCst)
    }

    /// Waits (up to 3 s, like upstream) until the cache has seen revision `rev`.
    pub async fn wait_for(&self, rev: Revision) -> Result<(), CacheError> {
        if self.revision() >= rev {
            return Ok(());
        }
        let mut rx = self.rv_tx.subscribe();
        let res = tokio::time::timeout(Duration::from_secs(3), rx.wait_for(|r| *r >= rev)).await;
        match res {
            Ok(Ok(_)) => Ok(()),
            _ => Err(CacheError::TooLarge {
                requested: rev,
                current: self.revision(),
            }),
        }
    }

    /// Waits until the cache reflects every write acknowledged so far (a consistent read).
    pub async fn wait_fresh(&self) -> Result<Revision, CacheError> {
        let current = self.store.current_revision().await?;
        self.wait_for(current).await?;
        Ok(self.revision().max(current))
    }

    fn rc(&self, r: &ResourceInfo) -> &RwLock<ResourceCache> {
        self.resources
            .get(r.key_prefix)
            .expect("every registered resource has a cache")
    }

    /// One object.
    pub fn get(&self, r: &ResourceInfo, key: &str) -> Option<Arc<CachedObject>> {
        self.rc(r).read().objects.get(key).cloned()
    }

    /// Keeps `obj`, the parsed form of an object this server just wrote at `rv` (`stored_len`
    /// bytes in the store), with that version of the cached object if it is small
    /// ([`CachedObject::KEEP_PARSED_MAX`]); the version may be applied before or after this
    /// call. `obj` must equal what parsing the cached bytes gives.
    pub fn remember_parsed(
        &self,
        r: &ResourceInfo,
        key: &str,
        rv: Revision,
        stored_len: usize,
        obj: Value,
    ) {
        if stored_len > CachedObject::KEEP_PARSED_MAX {
            return;
        }
        let mut rc = self.rc(r).write();
        match rc.objects.get(key) {
            Some(cached) if cached.rv == rv => *cached.parsed.lock() = Some(Arc::new(obj)),
            Some(cached) if cached.rv > rv => {}
            _ if rc.last_rv >= rv => {}
            _ => {
                rc.parsed_pending
                    .insert(key.to_owned(), (rv, Arc::new(obj)));
            }
        }
    }

    /// Every object under `prefix` that passes `filter`, with keys strictly after `start_after`.
    /// Returns at most `limit` items (0 = all) and whether more matched.
    pub fn list(
        &self,
        r: &ResourceInfo,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        filter: &(dyn Fn(&CachedObject) -> bool + Sync),
    ) -> (ListSnapshot, bool, usize) {
        let rc = self.rc(r).read();
        let rv = rc.last_rv.max(self.revision());
        let lower = match start_after {
            Some(k) => Bound::Excluded(k.to_string()),
            None => Bound::Included(prefix.to_string()),
        };
        let mut items = Vec::new();
        let mut more = false;
        let mut remaining = 0usize;
        for (k, o) in rc.objects.range((lower, Bound::Unbounded)) {
            if !k.starts_with(prefix) {
                break;
            }
            if !filter(o) {
                continue;
            }
            if limit > 0 && items.len() >= limit {
                more = true;
                remaining += 1;
                continue;
            }
            items.push(o.clone());
        }
        (ListSnapshot { items, rv }, more, remaining)
    }

    /// Starts a watch. `from`: `None` = send the current state as ADDED events first;
    /// `Some(n)` = every change after revision `n`.
    pub fn watch(
        &self,
        r: &ResourceInfo,
        prefix: &str,
        from: Option<Revision>,
        filter: &(dyn Fn(&CachedObject) -> bool + Sync),
    ) -> Result<CacheWatch, CacheError> {
        let rc = self.rc(r).read();
        let snapshot_rv = rc.last_rv.max(self.revision());
        match from {
            None => {
                let initial = rc
                    .objects
                    .range(prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .filter(|(_, o)| filter(o))
                    .map(|(_, o)| {
                        Arc::new(CacheEvent {
                            type_: EventType::Added,
                            rv: o.rv,
                            obj: o.clone(),
                            prev: None,
                        })
                    })
                    .collect();
                Ok(CacheWatch {
                    initial,
                    snapshot_rv,
                    rx: rc.tx.subscribe(),
                    skip_until: snapshot_rv,
                })
            }
            Some(n) => {
                if n < rc.window_start {
                    return Err(CacheError::TooOld {
                        requested: n,
                        oldest: rc.window_start + 1,
                    });
                }
                let initial = rc
                    .window
                    .iter()
                    .filter(|e| e.rv > n && e.obj.key.starts_with(prefix))
                    .cloned()
                    .collect();
                Ok(CacheWatch {
                    initial,
                    snapshot_rv,
                    rx: rc.tx.subscribe(),
                    skip_until: snapshot_rv,
                })
            }
        }
    }

    /// Reads a page from the store at an older revision (continuations of paged lists).
    pub async fn list_from_store(
        &self,
        r: &ResourceInfo,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: Revision,
        filter: &(dyn Fn(&CachedObject) -> bool + Sync),
    ) -> Result<(Vec<Arc<CachedObject>>, bool, Option<String>), CacheError> {
        let mut items = Vec::new();
        let mut cursor = start_after.map(str::to_string);
        loop {
            // One more than the limit tells whether a continuation is needed; unlimited
            // lists read everything in one range.
            let want = if limit == 0 {
                0
            } else {
                (limit + 1).saturating_sub(items.len()).max(1)
            };
            let page = self
                .store
                .range(prefix, cursor.as_deref(), want, Some(at))
                .await?;
            let last_key = page.kvs.last().map(|kv| kv.key.clone());
            for kv in &page.kvs {
                if let Some(o) = self.build(r, kv, kv.mod_revision)
                    && filter(&o)
                {
                    items.push(Arc::new(o));
                }
            }
            if limit > 0 && items.len() > limit {
                items.truncate(limit);
                let next = items.last().map(|o| o.key.clone());
                return Ok((items, true, next));
            }
            if !page.more || last_key.is_none() {
                return Ok((items, false, None));
            }
            cursor = last_key;
        }
    }
}
