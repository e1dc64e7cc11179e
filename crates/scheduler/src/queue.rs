//! The scheduling queue (upstream `internal/queue`): activeQ ordered by priority then queue
//! time, backoffQ ordered by back-off expiry, and the unschedulable pods, moved back when a
//! cluster event concerns a plugin that rejected them or after 5 minutes. When activeQ is
//! empty, pods are popped from backoffQ at once (upstream `SchedulerPopFromBackoffQ`).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use crate::framework::PluginSet;
use crate::types::pod_key;

/// How long a pod stays unschedulable without an event before it is retried (upstream
/// `podMaxInUnschedulablePodsDuration`).
pub const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);

/// A pod waiting to be scheduled.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    /// The latest version of the pod.
    pub pod: Arc<Pod>,
    /// Its key.
    pub key: String,
    /// Scheduling attempts so far (incremented on pop).
    pub attempts: u32,
    /// Queue time (a sequence number; later is larger).
    pub seq: u64,
    /// Plugins that rejected it last time (empty: any event may help).
    pub unschedulable_plugins: PluginSet,
    /// When its back-off ends.
    pub backoff_until: Instant,
    /// When it became unschedulable.
    pub unschedulable_since: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
}

#[derive(Debug)]
struct Entry {
    place: Place,
    generation: u64,
    qp: QueuedPod,
}

#[derive(Debug, PartialEq, Eq)]
struct ActiveItem {
    priority: i32,
    seq: u64,
    generation: u64,
    key: String,
}

impl Ord for ActiveItem {
    fn cmp(&self, o: &Self) -> Ordering {
        self.priority
            .cmp(&o.priority)
            .then_with(|| o.seq.cmp(&self.seq))
            .then_with(|| o.generation.cmp(&self.generation))
    }
}

impl PartialOrd for ActiveItem {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// The scheduling queue.
#[derive(Debug)]
pub struct SchedulingQueue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<ActiveItem>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    unschedulable: HashSet<String>,
    next_seq: u64,
    next_gen: u64,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl SchedulingQueue {
    /// An empty queue with these back-offs.
    pub fn new(initial_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            unschedulable: HashSet::new(),
            next_seq: 0,
            next_gen: 0,
            initial_backoff,
            max_backoff,
        }
    }

    /// Pods in the queue (active, backoff and unschedulable).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the queue holds no pod.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Pods ready to pop now (activeQ and backoffQ).
    pub fn has_poppable(&self) -> bool {
        self.entries.len() > self.unschedulable.len()
    }

    /// Whether the pod with `key` is queued.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The back-off after `attempts` attempts: initial, doubled per attempt, capped.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        if attempts == 0 {
            return Duration::ZERO;
        }
        let mut d = self.initial_backoff;
        for _ in 1..attempts {
            if d > self.max_backoff.saturating_sub(d) {
                return self.max_backoff;
            }
            d += d;
        }
        d.min(self.max_backoff)
    }

    fn place(&mut self, qp: QueuedPod, place: Place) {
        self.next_gen += 1;
        let generation = self.next_gen;
        let key = qp.key.clone();
        match place {
            Place::Active => self.active.push(ActiveItem {
                priority: priority(&qp.pod),
                seq: qp.seq,
                generation,
                key: key.clone(),
            }),
            Place::Backoff => {
                self.backoff
                    .push(Reverse((qp.backoff_until, generation, key.clone())))
            }
            Place::Unschedulable => {
                self.unschedulable.insert(key.clone());
            }
        }
        if place != Place::Unschedulable {
            self.unschedulable.remove(&key);
        }
        self.entries.insert(
            key,
            Entry {
                place,
                generation,
                qp,
            },
        );
    }

    /// Adds a new pending pod to activeQ (or updates it if queued).
    pub fn add(&mut self, pod: Arc<Pod>, now: Instant) {
        let key = pod_key(&pod);
        if self.entries.contains_key(&key) {
            self.update(pod, now);
            return;
        }
        self.next_seq += 1;
        let qp = QueuedPod {
            pod,
            key,
            attempts: 0,
            seq: self.next_seq,
            unschedulable_plugins: PluginSet::EMPTY,
            backoff_until: now,
            unschedulable_since: now,
        };
        self.place(qp, Place::Active);
    }

    /// Updates a queued pod; an unschedulable pod whose spec or labels changed is retried.
    pub fn update(&mut self, pod: Arc<Pod>, now: Instant) {
        let key = pod_key(&pod);
        let Some(e) = self.entries.get_mut(&key) else {
            self.add(pod, now);
            return;
        };
        let changed = e.qp.pod.spec != pod.spec || e.qp.pod.metadata.labels != pod.metadata.labels;
        e.qp.pod = pod;
        if e.place == Place::Unschedulable && changed {
            let qp = e.qp.clone();
            self.requeue(qp, now);
        }
    }

    /// Removes a pod.
    pub fn delete(&mut self, key: &str) {
        if self.entries.remove(key).is_some() {
            self.unschedulable.remove(key);
        }
    }

    fn requeue(&mut self, qp: QueuedPod, now: Instant) {
        if qp.backoff_until > now {
            self.place(qp, Place::Backoff);
        } else {
            self.place(qp, Place::Active);
        }
    }

    /// Pops the next pod: the head of activeQ, else the head of backoffQ.
    pub fn pop(&mut self) -> Option<QueuedPod> {
        while let Some(item) = self.active.pop() {
            if self
                .entries
                .get(&item.key)
                .is_some_and(|e| e.generation == item.generation && e.place == Place::Active)
            {
                return self.take(&item.key);
            }
        }
        while let Some(Reverse((_, generation, key))) = self.backoff.pop() {
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.generation == generation && e.place == Place::Backoff)
            {
                return self.take(&key);
            }
        }
        None
    }

    fn take(&mut self, key: &str) -> Option<QueuedPod> {
        let mut e = self.entries.remove(key)?;
        e.qp.attempts += 1;
        Some(e.qp)
    }

    /// Puts back a pod that failed: unschedulable until an event concerning `plugins` (empty:
    /// any event), or to backoffQ when `retry` (errors, binding failures).
    pub fn add_failed(&mut self, mut qp: QueuedPod, plugins: PluginSet, retry: bool, now: Instant) {
        self.next_seq += 1;
        qp.seq = self.next_seq;
        qp.backoff_until = now + self.backoff_duration(qp.attempts);
        qp.unschedulable_plugins = plugins;
        qp.unschedulable_since = now;
        if retry {
            self.place(qp, Place::Backoff);
        } else {
            self.place(qp, Place::Unschedulable);
        }
    }

    /// A cluster event that may help pods rejected by `plugins`: moves them to backoffQ or
    /// activeQ. Returns how many moved.
    pub fn move_for_event(&mut self, plugins: PluginSet, now: Instant) -> usize {
        if plugins.is_empty() || self.unschedulable.is_empty() {
            return 0;
        }
        let keys: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|k| {
                self.entries.get(*k).is_some_and(|e| {
                    e.qp.unschedulable_plugins.is_empty()
                        || e.qp.unschedulable_plugins.intersects(plugins)
                })
            })
            .cloned()
            .collect();
        let n = keys.len();
        for k in keys {
            if let Some(e) = self.entries.get(&k) {
                let qp = e.qp.clone();
                self.requeue(qp, now);
            }
        }
        n
    }

    /// Periodic flush: backoffQ pods whose back-off ended go to activeQ; pods unschedulable for
    /// longer than [`MAX_IN_UNSCHEDULABLE`] are retried.
    pub fn flush(&mut self, now: Instant) {
        while let Some(Reverse((until, generation, key))) = self.backoff.peek() {
            if *until > now {
                break;
            }
            let (generation, key) = (*generation, key.clone());
            self.backoff.pop();
            if let Some(e) = self.entries.get(&key)
                && e.generation == generation
                && e.place == Place::Backoff
            {
                let qp = e.qp.clone();
                self.place(qp, Place::Active);
            }
        }
        let stale: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|k| {
                self.entries.get(*k).is_some_and(|e| {
                    now.duration_since(e.qp.unschedulable_since) > MAX_IN_UNSCHEDULABLE
                })
            })
            .cloned()
            .collect();
        for k in stale {
            if let Some(e) = self.entries.get(&k) {
                let qp = e.qp.clone();
                self.requeue(qp, now);
            }
        }
    }

    /// The pods currently unschedulable (keys).
    pub fn unschedulable_keys(&self) -> Vec<String> {
        self.unschedulable.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Plugin;
    use crate::testutil::pod;

    fn p(name: &str, prio: i32) -> Arc<Pod> {
        let mut p = pod(name, &[], &[]);
        p.spec.as_mut().unwrap().priority = Some(prio);
        Arc::new(p)
    }

    fn q() -> SchedulingQueue {
        SchedulingQueue::new(Duration::from_secs(1), Duration::from_secs(10))
    }

    fn name(qp: &QueuedPod) -> &str {
        qp.pod.metadata.name.as_deref().unwrap()
    }

    #[test]
    fn priority_then_fifo() {
        let now = Instant::now();
        let mut q = q();
        q.add(p("a", 0), now);
        q.add(p("b", 10), now);
        q.add(p("c", 0), now);
        q.add(p("d", 10), now);
        let order: Vec<String> =
            std::iter::from_fn(|| q.pop().map(|x| name(&x).to_string())).collect();
        assert_eq!(order, vec!["b", "d", "a", "c"]);
        assert!(q.is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let q = q();
        let secs: Vec<u64> = (0..7).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(secs, vec![0, 1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn unschedulable_pods_move_on_relevant_events_only() {
        let now = Instant::now();
        let mut q = q();
        q.add(p("a", 0), now);
        q.add(p("b", 0), now);
        let a = q.pop().unwrap();
        let b = q.pop().unwrap();
        assert_eq!(a.attempts, 1);
        q.add_failed(a, Plugin::NodeResourcesFit.bit(), false, now);
        q.add_failed(b, Plugin::TaintToleration.bit(), false, now);
        assert!(q.pop().is_none(), "unschedulable pods are not popped");
        assert_eq!(q.move_for_event(Plugin::NodeAffinity.bit(), now), 0);
        assert_eq!(q.move_for_event(Plugin::NodeResourcesFit.bit(), now), 1);
        // Still backing off (1 s): in backoffQ, but popped at once since activeQ is empty.
        let a = q.pop().unwrap();
        assert_eq!(name(&a), "a");
        assert_eq!(a.attempts, 2);
        assert!(q.pop().is_none());
        assert_eq!(q.len(), 1);
        // After 5 minutes the other one is retried anyway.
        q.flush(now + MAX_IN_UNSCHEDULABLE + Duration::from_secs(1));
        assert_eq!(name(&q.pop().unwrap()), "b");
    }

    #[test]
    fn active_pods_go_before_backoff_and_backoff_expires_into_active() {
        let now = Instant::now();
        let mut q = q();
        q.add(p("a", 0), now);
        let a = q.pop().unwrap();
        q.add_failed(a, PluginSet::EMPTY, true, now);
        q.add(p("b", 0), now);
        assert_eq!(name(&q.pop().unwrap()), "b");
        q.flush(now + Duration::from_secs(2));
        assert_eq!(name(&q.pop().unwrap()), "a");
    }

    #[test]
    fn updates_retry_unschedulable_pods_and_deletes_remove() {
        let now = Instant::now();
        let mut q = q();
        q.add(p("a", 0), now);
        let a = q.pop().unwrap();
        q.add_failed(a, Plugin::NodeAffinity.bit(), false, now);
        // A status-only update does not retry.
        let mut same = (*p("a", 0)).clone();
        same.status = Some(Default::default());
        q.update(Arc::new(same), now);
        assert!(q.pop().is_none());
        let mut changed = (*p("a", 0)).clone();
        changed.metadata.labels = Some(crate::testutil::labels(&[("x", "y")]));
        q.update(Arc::new(changed), now);
        assert_eq!(name(&q.pop().unwrap()), "a");
        q.add(p("c", 0), now);
        q.delete("uid-c");
        assert!(q.pop().is_none());
        // A pod rejected for an unknown reason moves on any event.
        q.add(p("d", 0), now);
        let d = q.pop().unwrap();
        q.add_failed(d, PluginSet::EMPTY, false, now);
        assert_eq!(q.move_for_event(Plugin::NodePorts.bit(), now), 1);
    }
}
