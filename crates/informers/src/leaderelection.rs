//! Leader election on a `coordination.k8s.io/v1` Lease, like client-go's
//! `tools/leaderelection` with a `resourcelock.LeaseLock`: several replicas of a component
//! (the controller manager, the scheduler of each `r8s server`) run a [`LeaderElector`] on
//! the same Lease and only the holder acts.
//!
//! As upstream:
//! - a candidate creates the Lease if it is missing, or takes it over once its holder has not
//!   renewed it for `leaseDurationSeconds`, measured with the *local* clock from the moment
//!   this candidate last saw the record change (remote timestamps are never compared with
//!   the local clock, so clock skew between servers does not matter);
//! - every write is an update carrying the observed `resourceVersion`, so of two candidates
//!   racing for an expired Lease only one can win (the other gets a conflict);
//! - taking the Lease over increments `leaseTransitions` and sets `acquireTime`;
//! - one difference in *when*, not in the rules: a waiting candidate also watches the Lease,
//!   so it sees each renewal as it happens and tries again the moment the observed lease
//!   expires or is released. client-go only polls every 1–2.2 retry periods, which adds up to
//!   2.2 periods to notice the last renewal and 2.2 more to notice the expiry (upstream
//!   timings: a crashed leader replaced after 13–24 s instead of 13–15 s);
//! - the leader renews every retry period; when it has not managed to renew for the renew
//!   deadline it stops leading;
//! - on shutdown the leader releases the Lease (client-go's `ReleaseOnCancel`): it clears
//!   `holderIdentity` and sets `leaseDurationSeconds` to 1, so the next candidate takes over
//!   within about one retry period instead of a full lease duration;
//! - it records `LeaderElection` events "`<identity>` became leader" and "`<identity>`
//!   stopped leading" on the Lease.
//!
//! This is not fencing: as upstream warns, a leader that is partitioned from the API server
//! keeps acting until its renew deadline passes, while others may take over after the lease
//! duration. `lease_duration > renew_deadline` keeps that window closed when clocks run at
//! the same rate.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::record::{EventType, Recorder};

/// client-go's `JitterFactor`: a candidate waits between one and 2.2 retry periods between
/// attempts to acquire.
const JITTER_FACTOR: f64 = 1.2;

/// Where the lock lives and who we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseLockConfig {
    /// Namespace of the Lease (`kube-system` for the control plane).
    pub namespace: String,
    /// Name of the Lease (`kube-controller-manager`, `kube-scheduler`).
    pub name: String,
    /// This candidate's identity, unique among candidates: see [`default_identity`].
    pub identity: String,
}

/// The identity upstream components use: `<hostname>_<uuid>`, unique per process start.
pub fn default_identity() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// Leader election timings (client-go's `LeaseDuration`, `RenewDeadline`, `RetryPeriod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long candidates wait, from the last change they observed of the Lease, before
    /// taking it over. Written to the Lease as whole seconds (at least 1).
    pub lease_duration: Duration,
    /// How long the leader keeps retrying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// Interval between attempts to acquire (jittered by up to 1.2×) or renew.
    pub retry_period: Duration,
}

impl Timings {
    /// Upstream's defaults (kube-controller-manager and kube-scheduler
    /// `--leader-elect-lease-duration=15s --leader-elect-renew-deadline=10s
    /// --leader-elect-retry-period=2s`).
    pub const fn upstream() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// A fast profile for small clusters and tests: lease duration 4 s, renew deadline 3 s,
    /// retry period 1 s. After a leader crashes, another takes over within about 5 s
    /// (upstream: about 17 s); the price is one Lease write per second per component and
    /// less tolerance to API server latency (a leader steps down when it could not renew
    /// for 3 s).
    pub const fn fast() -> Self {
        Self {
            lease_duration: Duration::from_secs(4),
            renew_deadline: Duration::from_secs(3),
            retry_period: Duration::from_secs(1),
        }
    }

    /// Checks the constraints of client-go's `NewLeaderElector`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.lease_duration <= self.renew_deadline {
            return Err(Error::Config(
                "leaseDuration must be greater than renewDeadline",
            ));
        }
        if self.renew_deadline <= self.retry_period.mul_f64(JITTER_FACTOR) {
            return Err(Error::Config(
                "renewDeadline must be greater than retryPeriod*JitterFactor",
            ));
        }
        if self.lease_duration < Duration::from_secs(1) {
            // The Lease stores whole seconds.
            return Err(Error::Config("leaseDuration must be at least one second"));
        }
        if self.renew_deadline.is_zero() {
            return Err(Error::Config("renewDeadline must be greater than zero"));
        }
        if self.retry_period.is_zero() {
            return Err(Error::Config("retryPeriod must be greater than zero"));
        }
        Ok(())
    }
}

impl Default for Timings {
    fn default() -> Self {
        Self::upstream()
    }
}

/// Errors of [`LeaderElector::new`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid timings or lock configuration (messages as client-go's).
    #[error("{0}")]
    Config(&'static str),
}

/// How [`LeaderElector::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Shutdown came before this candidate acquired the Lease; `lead` was not called.
    NotAcquired,
    /// This candidate led, and stopped because of shutdown or because `lead`'s future
    /// ended; the Lease was released (or the release failed and it will expire).
    Released,
    /// This candidate led and lost the Lease (could not renew within the renew deadline).
    /// Upstream components exit in that case; callers may instead start a new elector.
    Lost,
}

/// The election record as client-go's `LeaderElectionRecord` (the Lease spec fields it
/// uses). Compared as a whole to notice that another candidate changed the Lease.
#[derive(Debug, Clone, PartialEq, Default)]
struct Record {
    holder_identity: String,
    lease_duration_seconds: i32,
    acquire_time: Option<Timestamp>,
    renew_time: Option<Timestamp>,
    leader_transitions: i32,
}

impl Record {
    fn from_spec(spec: Option<&LeaseSpec>) -> Self {
        let Some(spec) = spec else {
            return Self::default();
        };
        Self {
            holder_identity: spec.holder_identity.clone().unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or_default(),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            leader_transitions: spec.lease_transitions.unwrap_or_default(),
        }
    }

    /// Writes the record into `spec`, keeping the fields it does not own (strategy,
    /// preferredHolder), as client-go's `LeaderElectionRecordToLeaseSpec` for the fields it
    /// sets.
    fn to_spec(&self, mut spec: LeaseSpec) -> LeaseSpec {
        spec.holder_identity = Some(self.holder_identity.clone());
        spec.lease_duration_seconds = Some(self.lease_duration_seconds);
        spec.acquire_time = self.acquire_time.map(MicroTime);
        spec.renew_time = self.renew_time.map(MicroTime);
        spec.lease_transitions = Some(self.leader_transitions);
        spec
    }
}

/// What this candidate last observed: the record, the local time it last changed, and the
/// Lease object (whose `resourceVersion` the next update carries).
#[derive(Debug)]
struct Observed {
    record: Record,
    time: Instant,
    lease: Option<Lease>,
}

impl Observed {
    fn is_leader(&self, identity: &str) -> bool {
        self.record.holder_identity == identity
    }

    /// client-go's `isLeaseValid`: the observed record has not yet expired by the local clock.
    fn lease_valid(&self, now: Instant) -> bool {
        let d = Duration::from_secs(u64::try_from(self.record.lease_duration_seconds).unwrap_or(0));
        self.time + d > now
    }

    /// When the observed record expires by the local clock (`None` before anything was
    /// observed).
    fn expiry(&self) -> Option<Instant> {
        self.lease.as_ref()?;
        let d = Duration::from_secs(u64::try_from(self.record.lease_duration_seconds).unwrap_or(0));
        Some(self.time + d)
    }

    fn set(&mut self, record: Record, lease: Lease) {
        self.record = record;
        self.time = Instant::now();
        self.lease = Some(lease);
    }
}

/// A candidate for one Lease. Create one per process start (the identity is unique), then
/// [`run`](Self::run) it.
pub struct LeaderElector {
    api: Api<Lease>,
    client: Client,
    lock: LeaseLockConfig,
    timings: Timings,
    recorder: Option<Recorder>,
    leader: watch::Sender<bool>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("lock", &self.lock)
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// A candidate for the Lease `lock.namespace/lock.name` as `lock.identity`. Fails when the
    /// timings break client-go's constraints or the identity is empty.
    pub fn new(client: Client, lock: LeaseLockConfig, timings: Timings) -> Result<Self, Error> {
        timings.validate()?;
        if lock.identity.is_empty() {
            return Err(Error::Config("Lock identity is empty"));
        }
        if lock.name.is_empty() || lock.namespace.is_empty() {
            return Err(Error::Config("Lock namespace and name must not be empty"));
        }
        let (leader, _) = watch::channel(false);
        Ok(Self {
            api: Api::namespaced(client.clone(), &lock.namespace),
            client,
            lock,
            timings,
            recorder: None,
            leader,
        })
    }

    /// Records the `LeaderElection` events with `recorder` (upstream: the component's own
    /// recorder). Without it, [`run`](Self::run) records them with a recorder whose
    /// component is the Lease's name (`kube-controller-manager`, `kube-scheduler`).
    pub fn with_event_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.lock.identity
    }

    /// Whether this candidate currently leads (acquired and not yet lost or released).
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// A receiver following [`is_leader`](Self::is_leader); it stays usable after `run`
    /// consumed the elector (it then ends on `false`).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    /// Campaigns for the Lease until `shutdown`; once acquired, calls `lead(token)` and
    /// drives its future while renewing. `token` is cancelled when leadership is lost or
    /// `shutdown` fires. Returns after `lead`'s future ended (at once if shutdown came before
    /// acquiring). On shutdown, or if `lead`'s future ends by itself, the Lease is renewed
    /// until that future has ended and then released, so the work guarded by the Lease has
    /// stopped before another candidate can take over.
    pub async fn run<F, Fut>(self, shutdown: CancellationToken, lead: F) -> Outcome
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        let desc = format!("{}/{}", self.lock.namespace, self.lock.name);
        let mut obs = Observed {
            record: Record::default(),
            time: Instant::now(),
            lease: None,
        };
        // The recorder's background task ends once this (its only sender) is dropped and the
        // queue is drained, so that "stopped leading" is still written after shutdown.
        let recorder = self.recorder.clone().unwrap_or_else(|| {
            Recorder::new(
                self.client.clone(),
                &self.lock.name,
                None,
                CancellationToken::new(),
            )
        });

        tracing::info!(lease = %desc, identity = %self.lock.identity, "attempting to acquire leader lease");
        // Changes of the Lease, seen as they happen: a candidate then measures the lease
        // duration from the holder's last renewal itself rather than from its next poll (up to
        // 2.2 retry periods later), and tries again the moment the observed lease expires or
        // is released. Timings and the acquire rules stay client-go's.
        let mut changes = Box::pin(
            kube::runtime::watcher(
                self.api.clone(),
                kube::runtime::watcher::Config::default()
                    .fields(&format!("metadata.name={}", self.lock.name)),
            )
            .default_backoff()
            .applied_objects(),
        );
        loop {
            if shutdown.is_cancelled() {
                return Outcome::NotAcquired;
            }
            if self.try_acquire_or_renew(&mut obs).await {
                break;
            }
            tracing::debug!(lease = %desc, holder = %obs.record.holder_identity, "failed to acquire lease");
            let next_poll = Instant::now() + jittered(self.timings.retry_period);
            loop {
                let wake = obs.expiry().map_or(next_poll, |e| e.min(next_poll));
                tokio::select! {
                    _ = shutdown.cancelled() => return Outcome::NotAcquired,
                    _ = tokio::time::sleep_until(wake) => break,
                    Some(Ok(lease)) = changes.next() => {
                        let record = Record::from_spec(lease.spec.as_ref());
                        if record != obs.record {
                            obs.record = record;
                            obs.time = Instant::now();
                            obs.lease = Some(lease);
                        }
                        if obs.record.holder_identity.is_empty() {
                            break;
                        }
                    }
                }
            }
        }
        // The leader needs no watch.
        drop(changes);
        tracing::info!(lease = %desc, identity = %self.lock.identity, "successfully acquired lease");
        self.record_event(&recorder, &obs, "became leader");
        self.leader.send_replace(true);

        let token = CancellationToken::new();
        let lead_done = CancellationToken::new();
        let lead_fut = lead(token.clone());
        let leading = async {
            lead_fut.await;
            lead_done.cancel();
        };
        let renewing = self.renew(&mut obs, &shutdown, &token, &lead_done, &desc);
        let ((), lost) = tokio::join!(leading, renewing);

        self.leader.send_replace(false);
        self.record_event(&recorder, &obs, "stopped leading");
        if lost {
            tracing::error!(lease = %desc, identity = %self.lock.identity, "leaderelection lost");
            return Outcome::Lost;
        }
        self.release(&mut obs, &desc).await;
        Outcome::Released
    }

    /// Renews every retry period until `lead_done` (returns false) or until renewing failed
    /// for the renew deadline (cancels `token`, returns true). Cancels `token` on shutdown
    /// but keeps renewing until `lead_done`.
    async fn renew(
        &self,
        obs: &mut Observed,
        shutdown: &CancellationToken,
        token: &CancellationToken,
        lead_done: &CancellationToken,
        desc: &str,
    ) -> bool {
        let mut last_renew = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = lead_done.cancelled() => {
                    token.cancel();
                    return false;
                }
                _ = shutdown.cancelled(), if !token.is_cancelled() => {
                    tracing::info!(lease = %desc, "stopping: waiting for the leader's work to end before releasing the lease");
                    token.cancel();
                }
                _ = tokio::time::sleep(self.timings.retry_period) => {
                    let left = self.timings.renew_deadline.saturating_sub(last_renew.elapsed());
                    let renewed = matches!(
                        tokio::time::timeout(left, self.try_acquire_or_renew(obs)).await,
                        Ok(true)
                    );
                    if renewed {
                        tracing::trace!(lease = %desc, "successfully renewed lease");
                        last_renew = Instant::now();
                    } else if last_renew.elapsed() >= self.timings.renew_deadline
                        || !obs.is_leader(&self.lock.identity)
                    {
                        tracing::info!(lease = %desc, "failed to renew lease: timed out waiting for the condition");
                        self.leader.send_replace(false);
                        token.cancel();
                        return true;
                    }
                }
            }
        }
    }

    /// client-go's `tryAcquireOrRenew`.
    async fn try_acquire_or_renew(&self, obs: &mut Observed) -> bool {
        let now = Timestamp::now();
        let identity = &self.lock.identity;
        let mut desired = Record {
            holder_identity: identity.clone(),
            lease_duration_seconds: i32::try_from(self.timings.lease_duration.as_secs())
                .unwrap_or(i32::MAX),
            acquire_time: Some(now),
            renew_time: Some(now),
            leader_transitions: 0,
        };

        // 1. Fast path: the leader updates optimistically, assuming the Lease it observed
        //    last is current.
        if obs.is_leader(identity)
            && obs.lease_valid(Instant::now())
            && let Some(lease) = obs.lease.clone()
        {
            desired.acquire_time = obs.record.acquire_time;
            desired.leader_transitions = obs.record.leader_transitions;
            match self.update(lease, &desired).await {
                Ok(lease) => {
                    obs.set(desired, lease);
                    return true;
                }
                Err(e) => tracing::error!(
                    error = %e,
                    "Failed to update lock optimitically, falling back to slow path"
                ),
            }
        }

        // 2. Get or create the Lease.
        let lease = match self.api.get_opt(&self.lock.name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.lock.name.clone()),
                        namespace: Some(self.lock.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(desired.to_spec(LeaseSpec::default())),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(lease) => {
                        obs.set(desired, lease);
                        true
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "error initially creating leader election record");
                        false
                    }
                };
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    lease = %format!("{}/{}", self.lock.namespace, self.lock.name),
                    "error retrieving resource lock"
                );
                return false;
            }
        };

        // 3. Check the holder and how long ago (by our clock) the record last changed.
        let record = Record::from_spec(lease.spec.as_ref());
        if record != obs.record {
            obs.record = record.clone();
            obs.time = Instant::now();
        }
        obs.lease = Some(lease.clone());
        if !record.holder_identity.is_empty()
            && obs.lease_valid(Instant::now())
            && !obs.is_leader(identity)
        {
            tracing::trace!(holder = %record.holder_identity, "lock is held and has not yet expired");
            return false;
        }

        // 4. Take over (or renew through the slow path).
        if obs.is_leader(identity) {
            desired.acquire_time = record.acquire_time;
            desired.leader_transitions = record.leader_transitions;
        } else {
            desired.leader_transitions = record.leader_transitions.saturating_add(1);
        }
        match self.update(lease, &desired).await {
            Ok(lease) => {
                obs.set(desired, lease);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "Failed to update lock");
                false
            }
        }
    }

    /// Replaces the Lease's spec, with `lease`'s resourceVersion as precondition.
    async fn update(&self, mut lease: Lease, record: &Record) -> Result<Lease, kube::Error> {
        lease.spec = Some(record.to_spec(lease.spec.take().unwrap_or_default()));
        self.api
            .replace(&self.lock.name, &PostParams::default(), &lease)
            .await
    }

    /// client-go's `release`: clears the holder, keeping the transitions count.
    async fn release(&self, obs: &mut Observed, desc: &str) {
        if !obs.is_leader(&self.lock.identity) {
            return;
        }
        let Some(lease) = obs.lease.clone() else {
            return;
        };
        let now = Timestamp::now();
        let record = Record {
            holder_identity: String::new(),
            lease_duration_seconds: 1,
            acquire_time: Some(now),
            renew_time: Some(now),
            leader_transitions: obs.record.leader_transitions,
        };
        match self.update(lease, &record).await {
            Ok(lease) => {
                tracing::info!(lease = %desc, "released leader lease");
                obs.set(record, lease);
            }
            Err(e) => tracing::error!(error = %e, lease = %desc, "Failed to release lock"),
        }
    }

    /// `LeaseLock.RecordEvent`: a Normal `LeaderElection` event on the Lease.
    fn record_event(&self, recorder: &Recorder, obs: &Observed, what: &str) {
        let Some(lease) = &obs.lease else {
            return;
        };
        recorder.event_ref(
            lease.object_ref(&()),
            EventType::Normal,
            "LeaderElection",
            format!("{} {what}", self.lock.identity),
        );
    }
}

/// Runs `component` only while holding the Lease of `lock`, until `shutdown`: campaigns,
/// calls `component(token)` once leading (`token` is cancelled when leadership ends), and
/// after losing the Lease campaigns again with the same identity (upstream components exit
/// on "leaderelection lost" and are restarted by their supervisor; in one `r8s server`
/// process the other components keep running). Returns on shutdown, when `component`'s
/// future ended by itself, or at once if `timings` or `lock` are invalid (logged).
pub async fn run_elected<F, Fut>(
    client: Client,
    lock: LeaseLockConfig,
    timings: Timings,
    shutdown: CancellationToken,
    component: F,
) where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let desc = format!("{}/{}", lock.namespace, lock.name);
    while !shutdown.is_cancelled() {
        let elector = match LeaderElector::new(client.clone(), lock.clone(), timings) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, lease = %desc, "invalid leader election configuration");
                return;
            }
        };
        match elector.run(shutdown.clone(), &component).await {
            Outcome::Lost => {
                tracing::warn!(lease = %desc, "leadership lost; campaigning again");
            }
            Outcome::NotAcquired | Outcome::Released => return,
        }
    }
}

/// `wait.Jitter(period, JitterFactor)`: between `period` and `period * (1 + 1.2)`.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 + JITTER_FACTOR * rand::random::<f64>())
}
