//! Shared indexed informers.
//!
//! [`Factory::informer`] returns the one [`Informer`] of a kind in this process, starting its
//! watcher on first use. The informer keeps every object as an `Arc<K>` (managedFields dropped,
//! as kube-controller-manager's informers do), keyed `namespace/name` (or `name` for
//! cluster-scoped kinds), with a `namespace` index and any index a consumer adds.
//! [`Informer::subscribe`] delivers the existing objects as `Added`, then every change, in order.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::stripped::Stripped;

/// A kind an informer can hold.
pub trait Object:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}
impl<T> Object for T where
    T: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// A change seen by an informer.
#[derive(Debug)]
pub enum Event<K> {
    /// A new object (or an existing one, on subscription).
    Added(Arc<K>),
    /// An object changed: old, new.
    Updated(Arc<K>, Arc<K>),
    /// An object was deleted (its last known state).
    Deleted(Arc<K>),
}

impl<K> Event<K> {
    /// The object after the change (the last state for a deletion).
    pub fn object(&self) -> &Arc<K> {
        match self {
            Event::Added(o) | Event::Updated(_, o) | Event::Deleted(o) => o,
        }
    }
}

impl<K> Clone for Event<K> {
    fn clone(&self) -> Self {
        match self {
            Event::Added(o) => Event::Added(o.clone()),
            Event::Updated(a, b) => Event::Updated(a.clone(), b.clone()),
            Event::Deleted(o) => Event::Deleted(o.clone()),
        }
    }
}

/// `namespace/name`, or `name` for cluster-scoped objects (client-go's MetaNamespaceKeyFunc).
pub fn key_of<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// The function of an index: the index values of an object.
pub type IndexFn<K> = Arc<dyn Fn(&K) -> Vec<String> + Send + Sync>;

struct Index<K> {
    func: IndexFn<K>,
    map: HashMap<String, HashSet<String>>,
}

impl<K> Index<K> {
    fn insert(&mut self, key: &str, obj: &K) {
        self.insert_values(key, (self.func)(obj));
    }
    fn insert_values(&mut self, key: &str, values: Vec<String>) {
        for v in values {
            self.map.entry(v).or_default().insert(key.to_string());
        }
    }
    fn remove(&mut self, key: &str, obj: &K) {
        self.remove_values(key, (self.func)(obj));
    }
    fn remove_values(&mut self, key: &str, values: Vec<String>) {
        for v in values {
            if let Some(set) = self.map.get_mut(&v) {
                set.remove(key);
                if set.is_empty() {
                    self.map.remove(&v);
                }
            }
        }
    }
}

struct State<K> {
    items: HashMap<String, Arc<K>>,
    indexes: HashMap<String, Index<K>>,
    handlers: Vec<mpsc::UnboundedSender<Event<K>>>,
}

impl<K> State<K> {
    fn dispatch(&mut self, ev: Event<K>) {
        self.handlers.retain(|h| h.send(ev.clone()).is_ok());
    }
    fn put(&mut self, key: String, obj: Arc<K>) -> Option<Arc<K>> {
        let old = self.items.insert(key.clone(), obj.clone());
        for idx in self.indexes.values_mut() {
            let values = (idx.func)(&obj);
            if let Some(old) = &old {
                let before = (idx.func)(old);
                if before == values {
                    // Most updates (status, heartbeats) leave the index as it is.
                    continue;
                }
                idx.remove_values(&key, before);
            }
            idx.insert_values(&key, values);
        }
        old
    }
    fn take(&mut self, key: &str) -> Option<Arc<K>> {
        let old = self.items.remove(key)?;
        for idx in self.indexes.values_mut() {
            idx.remove(key, &old);
        }
        Some(old)
    }
}

struct Inner<K> {
    state: RwLock<State<K>>,
    synced: tokio::sync::watch::Sender<bool>,
}

/// A shared, indexed cache of one kind, kept current by a watcher. Cheap to clone.
pub struct Informer<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// The name of the index every informer has: objects by namespace.
pub const NAMESPACE_INDEX: &str = "namespace";

impl<K: Object> Default for Informer<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Object> Informer<K> {
    /// An empty informer that nothing feeds yet (see [`Informer::run`]).
    pub fn new() -> Self {
        let (synced, _) = tokio::sync::watch::channel(false);
        let inf = Self {
            inner: Arc::new(Inner {
                state: RwLock::new(State {
                    items: HashMap::new(),
                    indexes: HashMap::new(),
                    handlers: Vec::new(),
                }),
                synced,
            }),
        };
        inf.add_index(
            NAMESPACE_INDEX,
            Arc::new(|o: &K| o.meta().namespace.iter().cloned().collect()),
        );
        inf
    }

    /// Adds an index (idempotent by name); existing objects are indexed at once.
    pub fn add_index(&self, name: &str, func: IndexFn<K>) {
        let mut st = self.inner.state.write();
        if st.indexes.contains_key(name) {
            return;
        }
        let mut idx = Index {
            func,
            map: HashMap::new(),
        };
        for (k, o) in &st.items {
            idx.insert(k, o);
        }
        st.indexes.insert(name.to_string(), idx);
    }

    /// Subscribes to changes: every current object arrives first as `Added`.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Event<K>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut st = self.inner.state.write();
        for o in st.items.values() {
            let _ = tx.send(Event::Added(o.clone()));
        }
        st.handlers.push(tx);
        rx
    }

    /// Waits until the first complete list has been loaded.
    pub async fn wait_synced(&self) {
        let mut rx = self.inner.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Whether the first complete list has been loaded.
    pub fn has_synced(&self) -> bool {
        *self.inner.synced.borrow()
    }

    /// The object with this key (`namespace/name` or `name`).
    pub fn get_key(&self, key: &str) -> Option<Arc<K>> {
        self.inner.state.read().items.get(key).cloned()
    }

    /// The object `namespace/name` (`namespace` empty for cluster-scoped kinds).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        if namespace.is_empty() {
            return self.get_key(name);
        }
        thread_local! {
            // The `namespace/name` key, built without allocating (controllers look objects up
            // by the thousand: node lifecycle reads every node's Lease every few seconds).
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with_borrow_mut(|key| {
            key.clear();
            key.push_str(namespace);
            key.push('/');
            key.push_str(name);
            self.get_key(key)
        })
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.inner.state.read().items.values().cloned().collect()
    }

    /// Every key.
    pub fn keys(&self) -> Vec<String> {
        self.inner.state.read().items.keys().cloned().collect()
    }

    /// The objects of a namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.by_index(NAMESPACE_INDEX, namespace)
    }

    /// The objects whose index `name` has the value `value`.
    pub fn by_index(&self, name: &str, value: &str) -> Vec<Arc<K>> {
        let st = self.inner.state.read();
        let Some(idx) = st.indexes.get(name) else {
            return Vec::new();
        };
        idx.map
            .get(value)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| st.items.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many objects have the value `value` in index `name`.
    pub fn count_by_index(&self, name: &str, value: &str) -> usize {
        let st = self.inner.state.read();
        st.indexes
            .get(name)
            .and_then(|i| i.map.get(value))
            .map_or(0, HashSet::len)
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.inner.state.read().items.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies an added or modified object (what the watcher does; public for tests).
    pub fn apply(&self, mut obj: K) {
        obj.meta_mut().managed_fields = None;
        let key = key_of(&obj);
        let obj = Arc::new(obj);
        let mut st = self.inner.state.write();
        match st.put(key, obj.clone()) {
            Some(old) => st.dispatch(Event::Updated(old, obj)),
            None => st.dispatch(Event::Added(obj)),
        }
    }

    /// Applies a deletion (what the watcher does; public for tests).
    pub fn delete(&self, obj: &K) {
        let key = key_of(obj);
        let mut st = self.inner.state.write();
        if let Some(old) = st.take(&key) {
            st.dispatch(Event::Deleted(old));
        }
    }

    /// Replaces the whole content after a (re)list: emits the differences.
    pub fn replace(&self, objs: HashMap<String, K>) {
        let mut st = self.inner.state.write();
        let gone: Vec<String> = st
            .items
            .keys()
            .filter(|k| !objs.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(old) = st.take(&k) {
                st.dispatch(Event::Deleted(old));
            }
        }
        for (k, mut o) in objs {
            if let Some(cur) = st.items.get(&k)
                && cur.meta().resource_version == o.meta().resource_version
                && cur.meta().uid == o.meta().uid
            {
                continue;
            }
            o.meta_mut().managed_fields = None;
            let o = Arc::new(o);
            match st.put(k, o.clone()) {
                Some(old) => st.dispatch(Event::Updated(old, o)),
                None => st.dispatch(Event::Added(o)),
            }
        }
        drop(st);
        self.inner.synced.send_replace(true);
    }

    /// Feeds the informer from a watcher on every namespace until `shutdown`; the watcher
    /// re-lists and re-watches by itself, with back-off, after errors. Objects are decoded
    /// without their managedFields ([`Stripped`]).
    pub async fn run(self, client: Client, config: watcher::Config, shutdown: CancellationToken) {
        let api: Api<Stripped<K>> = Api::all(client);
        let stream = watcher(api, config)
            .default_backoff()
            .map(|ev| ev.map(unstrip));
        futures::pin_mut!(stream);
        let mut buffer: Option<HashMap<String, K>> = None;
        loop {
            let ev = tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = stream.next() => ev,
            };
            match ev {
                None => return,
                Some(Err(e)) => {
                    tracing::debug!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                }
                Some(Ok(watcher::Event::Init)) => buffer = Some(HashMap::new()),
                Some(Ok(watcher::Event::InitApply(o))) => {
                    buffer
                        .get_or_insert_with(HashMap::new)
                        .insert(key_of(&o), o);
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    self.replace(buffer.take().unwrap_or_default());
                }
                Some(Ok(watcher::Event::Apply(o))) => self.apply(o),
                Some(Ok(watcher::Event::Delete(o))) => self.delete(&o),
            }
        }
    }
}

/// A watcher event of [`Stripped`] objects as one of the kind's.
fn unstrip<K>(ev: watcher::Event<Stripped<K>>) -> watcher::Event<K> {
    match ev {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(Stripped(o)) => watcher::Event::InitApply(o),
        watcher::Event::InitDone => watcher::Event::InitDone,
        watcher::Event::Apply(Stripped(o)) => watcher::Event::Apply(o),
        watcher::Event::Delete(Stripped(o)) => watcher::Event::Delete(o),
    }
}

/// Extension helpers for `Arc<K>` objects from informers.
pub trait ObjectExt {
    /// Whether `metadata.deletionTimestamp` is set.
    fn is_deleting(&self) -> bool;
}

impl<K: Resource> ObjectExt for K {
    fn is_deleting(&self) -> bool {
        self.meta().deletion_timestamp.is_some()
    }
}

/// The shared informers of one process: one per kind, started on first use.
pub struct Factory {
    client: Client,
    informers: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    shutdown: CancellationToken,
}

impl Factory {
    /// A factory whose informers use `client` and stop at `shutdown`.
    pub fn new(client: Client, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            client,
            informers: Mutex::new(HashMap::new()),
            shutdown,
        })
    }

    /// The client.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The shutdown token.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The informer of kind `K` over all namespaces, started if it was not yet.
    pub fn informer<K: Object>(&self) -> Informer<K> {
        let mut map = self.informers.lock();
        if let Some(inf) = map
            .get(&TypeId::of::<K>())
            .and_then(|b| b.downcast_ref::<Informer<K>>())
        {
            return inf.clone();
        }
        let inf = Informer::<K>::new();
        map.insert(TypeId::of::<K>(), Box::new(inf.clone()));
        // One unpaginated list from the watch cache (resourceVersion=0), then a watch.
        let mut config = watcher::Config::default().any_semantic();
        config.page_size = None;
        tokio::spawn(
            inf.clone()
                .run(self.client.clone(), config, self.shutdown.clone()),
        );
        inf
    }
}

/// Convenience: the name of an object ("" if unset).
pub fn name_of<K: Resource>(obj: &K) -> String {
    obj.meta().name.clone().unwrap_or_default()
}

/// Convenience: the namespace of an object ("" if unset).
pub fn namespace_of<K: Resource>(obj: &K) -> String {
    obj.namespace().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ObjectMeta;

    fn pod(ns: &str, name: &str, rv: &str, node: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                node_name: node.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node_index() -> IndexFn<Pod> {
        Arc::new(|p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .into_iter()
                .collect()
        })
    }

    #[tokio::test]
    async fn events_carry_old_and_new_and_deletions() {
        let inf = Informer::<Pod>::new();
        inf.apply(pod("a", "p1", "1", None));
        let mut rx = inf.subscribe();
        assert!(
            matches!(rx.recv().await, Some(Event::Added(p)) if p.metadata.name.as_deref() == Some("p1"))
        );
        inf.apply(pod("a", "p1", "2", Some("n1")));
        match rx.recv().await {
            Some(Event::Updated(old, new)) => {
                assert_eq!(old.metadata.resource_version.as_deref(), Some("1"));
                assert_eq!(new.metadata.resource_version.as_deref(), Some("2"));
            }
            other => panic!("unexpected {other:?}"),
        }
        inf.delete(&pod("a", "p1", "3", None));
        assert!(matches!(rx.recv().await, Some(Event::Deleted(_))));
        assert!(inf.is_empty());
    }

    #[tokio::test]
    async fn indexes_follow_updates() {
        let inf = Informer::<Pod>::new();
        inf.add_index("node", node_index());
        inf.apply(pod("a", "p1", "1", Some("n1")));
        inf.apply(pod("b", "p2", "1", Some("n1")));
        assert_eq!(inf.by_index("node", "n1").len(), 2);
        inf.apply(pod("a", "p1", "2", Some("n2")));
        assert_eq!(inf.by_index("node", "n1").len(), 1);
        assert_eq!(inf.by_index("node", "n2").len(), 1);
        assert_eq!(inf.list_namespace("a").len(), 1);
        assert_eq!(
            inf.get("b", "p2").unwrap().metadata.name.as_deref(),
            Some("p2")
        );
        // An index added later covers existing objects.
        inf.add_index(
            "uid",
            Arc::new(|p: &Pod| p.metadata.uid.iter().cloned().collect()),
        );
        assert_eq!(inf.by_index("uid", "uid-p2").len(), 1);
    }

    #[tokio::test]
    async fn replace_emits_only_differences_and_marks_synced() {
        let inf = Informer::<Pod>::new();
        inf.apply(pod("a", "keep", "1", None));
        inf.apply(pod("a", "gone", "1", None));
        inf.apply(pod("a", "changed", "1", None));
        let mut rx = inf.subscribe();
        for _ in 0..3 {
            rx.recv().await;
        }
        assert!(!inf.has_synced());
        let mut next = HashMap::new();
        for p in [
            pod("a", "keep", "1", None),
            pod("a", "changed", "2", None),
            pod("a", "new", "1", None),
        ] {
            next.insert(key_of(&p), p);
        }
        inf.replace(next);
        assert!(inf.has_synced());
        let mut seen = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            seen.push(match ev {
                Event::Added(p) => format!("add {}", p.metadata.name.clone().unwrap()),
                Event::Updated(_, p) => format!("update {}", p.metadata.name.clone().unwrap()),
                Event::Deleted(p) => format!("delete {}", p.metadata.name.clone().unwrap()),
            });
        }
        seen.sort();
        assert_eq!(seen, vec!["add new", "delete gone", "update changed"]);
    }
}
