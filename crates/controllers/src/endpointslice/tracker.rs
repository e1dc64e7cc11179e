//! Which slice versions this controller wrote or deleted (upstream `EndpointSliceTracker`), so
//! that it ignores the informer events of its own writes and never syncs from a cache that has
//! not yet seen them.
//!
//! Upstream tracks `metadata.generation`; r8s tracks `resourceVersion` (a store revision, so
//! ordered), which every write changes.

use std::collections::HashMap;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use parking_lot::Mutex;

use super::reconciler::LABEL_SERVICE_NAME;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// At least this resourceVersion.
    Version(u64),
    /// The slice is being deleted.
    Deletion,
}

/// The service key (`namespace/name`) of a slice, from its service-name label.
pub fn service_key_of(slice: &EndpointSlice) -> Option<String> {
    let svc = slice.metadata.labels.as_ref()?.get(LABEL_SERVICE_NAME)?;
    if svc.is_empty() {
        return None;
    }
    Some(format!(
        "{}/{svc}",
        slice.metadata.namespace.as_deref().unwrap_or("")
    ))
}

fn rv(slice: &EndpointSlice) -> u64 {
    slice
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn uid(slice: &EndpointSlice) -> String {
    slice.metadata.uid.clone().unwrap_or_default()
}

/// Per service, per slice UID: the version this controller expects the cache to reach.
#[derive(Debug, Default)]
pub struct SliceTracker {
    by_service: Mutex<HashMap<String, HashMap<String, Expect>>>,
}

impl SliceTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a slice this controller created or updated (the API's answer).
    pub fn update(&self, slice: &EndpointSlice) {
        if let Some(k) = service_key_of(slice) {
            self.by_service
                .lock()
                .entry(k)
                .or_default()
                .insert(uid(slice), Expect::Version(rv(slice)));
        }
    }

    /// Records a slice this controller deleted.
    pub fn expect_deletion(&self, slice: &EndpointSlice) {
        if let Some(k) = service_key_of(slice) {
            self.by_service
                .lock()
                .entry(k)
                .or_default()
                .insert(uid(slice), Expect::Deletion);
        }
    }

    /// Whether the slice is tracked.
    pub fn has(&self, slice: &EndpointSlice) -> bool {
        service_key_of(slice).is_some_and(|k| {
            self.by_service
                .lock()
                .get(&k)
                .is_some_and(|m| m.contains_key(&uid(slice)))
        })
    }

    /// Whether an informer event of this slice calls for a sync: not when it is (at most) the
    /// version this controller wrote, nor a slice it deleted.
    pub fn should_sync(&self, slice: &EndpointSlice) -> bool {
        let Some(k) = service_key_of(slice) else {
            return true;
        };
        match self
            .by_service
            .lock()
            .get(&k)
            .and_then(|m| m.get(&uid(slice)))
        {
            None => true,
            Some(Expect::Deletion) => false,
            Some(Expect::Version(v)) => rv(slice) > *v,
        }
    }

    /// Forgets a deleted slice; whether its deletion was expected.
    pub fn handle_deletion(&self, slice: &EndpointSlice) -> bool {
        let Some(k) = service_key_of(slice) else {
            return true;
        };
        let mut g = self.by_service.lock();
        let Some(m) = g.get_mut(&k) else {
            return true;
        };
        !matches!(m.remove(&uid(slice)), Some(Expect::Version(_)))
    }

    /// Whether the cached `slices` of service `key` predate this controller's writes: a
    /// tracked slice older than written, present though deleted, or absent though written.
    pub fn stale_slices(&self, key: &str, slices: &[std::sync::Arc<EndpointSlice>]) -> bool {
        let g = self.by_service.lock();
        let Some(m) = g.get(key) else {
            return false;
        };
        let mut seen = std::collections::HashSet::new();
        for s in slices {
            let u = uid(s);
            match m.get(&u) {
                Some(Expect::Deletion) => return true,
                Some(Expect::Version(v)) if *v > rv(s) => return true,
                _ => {}
            }
            seen.insert(u);
        }
        m.iter()
            .any(|(u, e)| matches!(e, Expect::Version(_)) && !seen.contains(u))
    }

    /// Forgets a deleted service.
    pub fn delete_service(&self, key: &str) {
        self.by_service.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn slice(uid: &str, rv: u64) -> EndpointSlice {
        let mut s = EndpointSlice::default();
        s.metadata.namespace = Some("ns".into());
        s.metadata.uid = Some(uid.into());
        s.metadata.resource_version = Some(rv.to_string());
        s.metadata.labels = Some([(LABEL_SERVICE_NAME.to_string(), "svc".to_string())].into());
        s
    }

    #[test]
    fn own_writes_are_ignored_and_stale_caches_detected() {
        let t = SliceTracker::new();
        assert!(t.should_sync(&slice("a", 5)));
        t.update(&slice("a", 7));
        assert!(!t.should_sync(&slice("a", 7)));
        assert!(t.should_sync(&slice("a", 8)));
        // The cache has version 5 of a: stale; 7: fine; missing: stale.
        assert!(t.stale_slices("ns/svc", &[Arc::new(slice("a", 5))]));
        assert!(!t.stale_slices("ns/svc", &[Arc::new(slice("a", 7))]));
        assert!(t.stale_slices("ns/svc", &[]));
        t.expect_deletion(&slice("a", 7));
        assert!(t.stale_slices("ns/svc", &[Arc::new(slice("a", 7))]));
        assert!(!t.stale_slices("ns/svc", &[]));
        assert!(t.handle_deletion(&slice("a", 7)));
        // An unexpected deletion of a written slice.
        t.update(&slice("b", 9));
        assert!(!t.handle_deletion(&slice("b", 9)));
    }
}
