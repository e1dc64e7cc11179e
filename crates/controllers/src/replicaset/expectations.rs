//! Upstream `ControllerExpectations` + `UIDTrackingControllerExpectations`
//! (`pkg/controller/controller_utils.go`): what creations and deletions a controller waits to
//! observe through its informer before it syncs again, so it never acts twice on a stale cache.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Expectations older than this are ignored (upstream `ExpectationsTimeout`).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Expectation {
    add: i64,
    del: i64,
    timestamp: Instant,
}

#[derive(Debug, Default)]
struct State {
    counts: HashMap<String, Expectation>,
    /// Keys (`namespace/name`) of the pods whose deletion is expected, per controller.
    deletions: HashMap<String, HashSet<String>>,
}

/// Per-controller-key expectations of creations and deletions (thread-safe).
#[derive(Debug, Default)]
pub struct Expectations {
    state: Mutex<State>,
}

impl Expectations {
    /// No expectations.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the controller may sync: its expectations are fulfilled, expired, or absent.
    pub fn satisfied(&self, key: &str) -> bool {
        let st = self.state.lock();
        match st.counts.get(key) {
            Some(e) => (e.add <= 0 && e.del <= 0) || e.timestamp.elapsed() > EXPECTATIONS_TIMEOUT,
            None => true,
        }
    }

    /// Expects `adds` creations (replaces earlier expectations).
    pub fn expect_creations(&self, key: &str, adds: usize) {
        let mut st = self.state.lock();
        st.counts.insert(
            key.to_string(),
            Expectation {
                add: i64::try_from(adds).unwrap_or(i64::MAX),
                del: 0,
                timestamp: Instant::now(),
            },
        );
    }

    /// Expects the deletion of these pods (keys `namespace/name`; replaces earlier
    /// expectations).
    pub fn expect_deletions(&self, key: &str, pod_keys: Vec<String>) {
        let mut st = self.state.lock();
        let set: HashSet<String> = pod_keys.into_iter().collect();
        st.counts.insert(
            key.to_string(),
            Expectation {
                add: 0,
                del: i64::try_from(set.len()).unwrap_or(i64::MAX),
                timestamp: Instant::now(),
            },
        );
        st.deletions.insert(key.to_string(), set);
    }

    /// One expected creation was observed (or will never happen).
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.state.lock().counts.get_mut(key) {
            e.add -= 1;
        }
    }

    /// The deletion of pod `pod_key` was observed: counts only if it was expected, once.
    pub fn deletion_observed(&self, key: &str, pod_key: &str) {
        let mut st = self.state.lock();
        let removed = st.deletions.get_mut(key).is_some_and(|s| s.remove(pod_key));
        if removed && let Some(e) = st.counts.get_mut(key) {
            e.del -= 1;
        }
    }

    /// Forgets everything about a controller (it was deleted).
    pub fn delete(&self, key: &str) {
        let mut st = self.state.lock();
        st.counts.remove(key);
        st.deletions.remove(key);
    }

    /// The pending (adds, dels) of a controller, if it has expectations.
    pub fn pending(&self, key: &str) -> Option<(i64, i64)> {
        self.state.lock().counts.get(key).map(|e| (e.add, e.del))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_must_all_be_observed() {
        let e = Expectations::new();
        assert!(e.satisfied("ns/rs"));
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
    }

    #[test]
    fn deletions_count_once_per_expected_pod() {
        let e = Expectations::new();
        e.expect_deletions("ns/rs", vec!["ns/a".into(), "ns/b".into()]);
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/other");
        assert!(!e.satisfied("ns/rs"));
        assert_eq!(e.pending("ns/rs"), Some((0, 1)));
        e.deletion_observed("ns/rs", "ns/b");
        assert!(e.satisfied("ns/rs"));
        e.delete("ns/rs");
        assert_eq!(e.pending("ns/rs"), None);
    }
}
