//! Leader election against the real API server, in-process: acquisition, waiting candidates,
//! take-over after a crash, release on shutdown, lost leadership, and a race of candidates
//! that must never lead at the same time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use informers::leaderelection::{
    LeaderElector, LeaseLockConfig, Outcome, Timings, default_identity,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::api::{Api, ListParams, PostParams};
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const NS: &str = "kube-system";

/// Short timings for the tests that do not exercise [`Timings::fast`].
const QUICK: Timings = Timings {
    lease_duration: Duration::from_secs(2),
    renew_deadline: Duration::from_millis(1500),
    retry_period: Duration::from_millis(250),
};

struct Candidate {
    identity: String,
    leading: tokio::sync::watch::Receiver<bool>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Outcome>,
}

/// Lead intervals `(identity, start, end)`; `end` is set when the lead future ends or is
/// dropped (a crashed process).
type Intervals = Arc<Mutex<Vec<(String, Instant, Option<Instant>)>>>;

struct EndGuard {
    log: Intervals,
    index: usize,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.log.lock()[self.index].2 = Some(Instant::now());
    }
}

fn start(client: &kube::Client, lease: &str, timings: Timings, log: &Intervals) -> Candidate {
    let identity = default_identity();
    let elector = LeaderElector::new(
        client.clone(),
        LeaseLockConfig {
            namespace: NS.into(),
            name: lease.into(),
            identity: identity.clone(),
        },
        timings,
    )
    .unwrap();
    let leading = elector.subscribe();
    let shutdown = CancellationToken::new();
    let log = log.clone();
    let id = identity.clone();
    let task = tokio::spawn(elector.run(shutdown.clone(), move |token| async move {
        let index = {
            let mut l = log.lock();
            l.push((id, Instant::now(), None));
            l.len() - 1
        };
        let _guard = EndGuard { log, index };
        token.cancelled().await;
    }));
    Candidate {
        identity,
        leading,
        shutdown,
        task,
    }
}

async fn lease(client: &kube::Client, name: &str) -> Lease {
    Api::<Lease>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap()
}

fn holder(l: &Lease) -> String {
    l.spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default()
}

fn transitions(l: &Lease) -> i32 {
    l.spec.as_ref().and_then(|s| s.lease_transitions).unwrap()
}

/// Waits until `c` leads; returns how long that took.
async fn until_leading(c: &mut Candidate, within: Duration) -> Duration {
    let t0 = Instant::now();
    tokio::time::timeout(within, c.leading.wait_for(|l| *l))
        .await
        .unwrap_or_else(|_| panic!("{} did not lead within {within:?}", c.identity))
        .unwrap();
    t0.elapsed()
}

async fn server() -> apiserver::inprocess::TempServer {
    apiserver::inprocess::TempServer::start().await.unwrap()
}

#[test]
fn timings_are_validated_like_client_go() {
    assert!(Timings::upstream().validate().is_ok());
    assert!(Timings::fast().validate().is_ok());
    assert_eq!(Timings::default(), Timings::upstream());
    assert_eq!(Timings::upstream().lease_duration, Duration::from_secs(15));
    let bad = Timings {
        lease_duration: Duration::from_secs(10),
        ..Timings::upstream()
    };
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "leaseDuration must be greater than renewDeadline"
    );
    let bad = Timings {
        renew_deadline: Duration::from_millis(2400),
        ..Timings::upstream()
    };
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "renewDeadline must be greater than retryPeriod*JitterFactor"
    );
    let id = default_identity();
    let (host, uuid) = id.rsplit_once('_').unwrap();
    assert!(!host.is_empty());
    assert_eq!(uuid.len(), 36, "{id}");
    assert_ne!(default_identity(), id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_candidate_acquires_second_waits_and_takes_over_after_a_crash() {
    let api = server().await;
    let c = &api.client;
    let log = Intervals::default();
    let fast = Timings::fast();

    let mut a = start(c, "kube-controller-manager", fast, &log);
    until_leading(&mut a, Duration::from_secs(10)).await;
    let l = lease(c, "kube-controller-manager").await;
    let spec = l.spec.clone().unwrap();
    assert_eq!(holder(&l), a.identity);
    assert_eq!(spec.lease_duration_seconds, Some(4));
    assert_eq!(spec.lease_transitions, Some(0));
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());

    // A second candidate waits while the first renews, even past a lease duration.
    let mut b = start(c, "kube-controller-manager", fast, &log);
    tokio::time::sleep(fast.lease_duration + fast.retry_period * 2).await;
    assert!(!*b.leading.borrow(), "the second candidate must wait");
    assert!(*a.leading.borrow());
    let renewed = lease(c, "kube-controller-manager").await;
    assert_eq!(holder(&renewed), a.identity);
    assert!(
        renewed
            .spec
            .as_ref()
            .unwrap()
            .renew_time
            .as_ref()
            .unwrap()
            .0
            > spec.renew_time.as_ref().unwrap().0,
        "the leader renews"
    );
    assert_eq!(
        renewed.spec.as_ref().unwrap().acquire_time,
        spec.acquire_time
    );

    // The first one crashes (its task dies without releasing).
    a.task.abort();
    let crashed = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let last_renewal = lease(c, "kube-controller-manager")
        .await
        .spec
        .unwrap()
        .renew_time
        .unwrap()
        .0;
    until_leading(&mut b, Duration::from_secs(15)).await;
    let waited = crashed.elapsed();
    // Not before the lease expired: the last renewal was at most a retry period (plus the
    // write) before the crash.
    assert!(
        waited >= fast.lease_duration - fast.retry_period * 2,
        "took over too early: {waited:?}"
    );
    // One lease duration after the last renewal, plus a little for the writes: the candidate
    // watches the Lease, so it sees the last renewal as it happens and tries again the moment
    // the lease expires (client-go's polling adds up to 2.2 retry periods for each).
    let acquired = lease(c, "kube-controller-manager")
        .await
        .spec
        .unwrap()
        .acquire_time
        .unwrap()
        .0;
    let after = acquired.duration_since(last_renewal);
    assert!(
        after
            <= k8s_openapi::jiff::SignedDuration::try_from(fast.lease_duration).unwrap()
                + k8s_openapi::jiff::SignedDuration::from_millis(400),
        "took over {after:?} after the last renewal"
    );
    let l = lease(c, "kube-controller-manager").await;
    assert_eq!(holder(&l), b.identity);
    assert_eq!(transitions(&l), 1);
    assert_ne!(l.spec.as_ref().unwrap().acquire_time, spec.acquire_time);

    // "became leader" events on the Lease, like upstream.
    let events: Api<CoreEvent> = Api::namespaced(c.clone(), NS);
    let mut found = Vec::new();
    for _ in 0..100 {
        found = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("LeaderElection"))
            .collect();
        if found.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let messages: Vec<_> = found.iter().filter_map(|e| e.message.clone()).collect();
    assert!(
        messages.contains(&format!("{} became leader", a.identity)),
        "{messages:?}"
    );
    assert!(
        messages.contains(&format!("{} became leader", b.identity)),
        "{messages:?}"
    );
    let e = &found[0];
    assert_eq!(e.involved_object.kind.as_deref(), Some("Lease"));
    assert_eq!(
        e.involved_object.name.as_deref(),
        Some("kube-controller-manager")
    );
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert_eq!(
        e.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("kube-controller-manager")
    );

    b.shutdown.cancel();
    assert_eq!(b.task.await.unwrap(), Outcome::Released);
    api.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_on_shutdown_hands_over_within_a_retry_period() {
    let api = server().await;
    let c = &api.client;
    let log = Intervals::default();
    let fast = Timings::fast();

    let mut a = start(c, "kube-scheduler", fast, &log);
    until_leading(&mut a, Duration::from_secs(10)).await;
    let mut b = start(c, "kube-scheduler", fast, &log);
    // Let b observe the held Lease first.
    tokio::time::sleep(fast.retry_period * 3).await;
    assert!(!*b.leading.borrow());

    a.shutdown.cancel();
    let released = Instant::now();
    assert_eq!(a.task.await.unwrap(), Outcome::Released);
    assert!(!*a.leading.borrow());
    // a's lead callback ended before its run returned.
    assert!(log.lock()[0].2.is_some());
    let took = until_leading(&mut b, Duration::from_secs(10)).await;
    let waited = released.elapsed();
    assert!(
        waited < fast.lease_duration,
        "a released Lease is taken over within ~a retry period, took {waited:?} ({took:?})"
    );
    let l = lease(c, "kube-scheduler").await;
    assert_eq!(holder(&l), b.identity);
    assert_eq!(transitions(&l), 1);
    assert_eq!(l.spec.as_ref().unwrap().lease_duration_seconds, Some(4));

    // The last one releases too: holder cleared, duration 1 s, transitions kept.
    b.shutdown.cancel();
    assert_eq!(b.task.await.unwrap(), Outcome::Released);
    let l = lease(c, "kube-scheduler").await;
    assert_eq!(holder(&l), "");
    assert_eq!(l.spec.as_ref().unwrap().lease_duration_seconds, Some(1));
    assert_eq!(transitions(&l), 1);
    api.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_before_acquiring_does_not_call_lead() {
    let api = server().await;
    let c = &api.client;
    let log = Intervals::default();
    let mut a = start(c, "l", QUICK, &log);
    until_leading(&mut a, Duration::from_secs(10)).await;
    let b = start(c, "l", QUICK, &log);
    tokio::time::sleep(QUICK.retry_period * 2).await;
    b.shutdown.cancel();
    assert_eq!(b.task.await.unwrap(), Outcome::NotAcquired);
    assert_eq!(log.lock().len(), 1);
    assert_eq!(holder(&lease(c, "l").await), a.identity);
    a.shutdown.cancel();
    assert_eq!(a.task.await.unwrap(), Outcome::Released);
    api.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_whose_lease_is_taken_stops_leading() {
    let api = server().await;
    let c = &api.client;
    let log = Intervals::default();
    let mut a = start(c, "stolen", QUICK, &log);
    until_leading(&mut a, Duration::from_secs(10)).await;

    // Someone else overwrites the Lease (e.g. an operator, or a candidate with a skewed
    // configuration).
    let leases: Api<Lease> = Api::namespaced(c.clone(), NS);
    let mut l = leases.get("stolen").await.unwrap();
    l.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
    l.spec.as_mut().unwrap().lease_duration_seconds = Some(3600);
    leases
        .replace("stolen", &PostParams::default(), &l)
        .await
        .unwrap();

    let outcome = tokio::time::timeout(QUICK.renew_deadline * 2, a.task)
        .await
        .expect("the leader notices it lost the lease")
        .unwrap();
    assert_eq!(outcome, Outcome::Lost);
    assert!(!*a.leading.borrow());
    assert!(log.lock()[0].2.is_some(), "the lead token was cancelled");
    // Losing does not release: the other holder keeps the Lease.
    assert_eq!(holder(&lease(c, "stolen").await), "intruder");
    api.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_candidates_never_lead_at_the_same_time() {
    let api = server().await;
    let c = &api.client;
    let log = Intervals::default();
    let rounds = 4;
    let mut candidates: Vec<Candidate> = (0..3).map(|_| start(c, "race", QUICK, &log)).collect();
    for round in 0..rounds {
        // Wait for one leader among the running candidates.
        let deadline = Instant::now() + Duration::from_secs(15);
        let leader = loop {
            if let Some(i) = candidates.iter().position(|c| *c.leading.borrow()) {
                break i;
            }
            assert!(Instant::now() < deadline, "no leader in round {round}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // Keep leading for a while with others campaigning, then stop it: crash (abort)
        // on even rounds, release on odd ones. Fresh candidates join each round.
        tokio::time::sleep(QUICK.retry_period * 3).await;
        let gone = candidates.swap_remove(leader);
        if round % 2 == 0 {
            gone.task.abort();
            let _ = gone.task.await;
        } else {
            gone.shutdown.cancel();
            assert_eq!(gone.task.await.unwrap(), Outcome::Released);
        }
        candidates.push(start(c, "race", QUICK, &log));
    }
    // One more leader after the last round, then stop everyone.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !candidates.iter().any(|c| *c.leading.borrow()) {
        assert!(Instant::now() < deadline, "no final leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in &candidates {
        c.shutdown.cancel();
    }
    for c in candidates {
        c.task.await.unwrap();
    }

    let log = log.lock().clone();
    assert_eq!(
        log.len(),
        rounds + 1,
        "one lead per round plus the last: {log:?}"
    );
    let mut intervals: Vec<_> = log
        .iter()
        .map(|(id, s, e)| (id.clone(), *s, e.expect("every lead ended")))
        .collect();
    intervals.sort_by_key(|i| i.1);
    for w in intervals.windows(2) {
        assert!(
            w[0].2 <= w[1].1,
            "{} led until {:?} but {} started at {:?}",
            w[0].0,
            w[0].2,
            w[1].0,
            w[1].1
        );
        assert_ne!(w[0].0, w[1].0);
    }
    // Every acquisition after the first (creation) is a transition.
    assert_eq!(transitions(&lease(c, "race").await), rounds as i32);
    api.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_candidates_on_a_free_lease_only_one_wins() {
    let api = server().await;
    let c = &api.client;
    // A released Lease: every candidate's first attempt (immediate, without jitter) sees it
    // free and tries to take it with the same resourceVersion.
    let free: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "free", "namespace": NS},
        "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 7}
    }))
    .unwrap();
    Api::<Lease>::namespaced(c.clone(), NS)
        .create(&PostParams::default(), &free)
        .await
        .unwrap();
    let log = Intervals::default();
    let candidates: Vec<_> = (0..8).map(|_| start(c, "free", QUICK, &log)).collect();
    tokio::time::sleep(QUICK.retry_period * 4).await;
    let leaders: Vec<_> = candidates
        .iter()
        .filter(|c| *c.leading.borrow())
        .map(|c| c.identity.clone())
        .collect();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    assert_eq!(log.lock().len(), 1, "{:?}", log.lock());
    let l = lease(c, "free").await;
    assert_eq!(holder(&l), leaders[0]);
    assert_eq!(transitions(&l), 8);
    for c in &candidates {
        c.shutdown.cancel();
    }
    for c in candidates {
        c.task.await.unwrap();
    }
    api.shutdown.cancel();
}

/// A client to `inner` whose requests fail while `down` is set (the API server unreachable
/// from this candidate only).
fn flaky(inner: kube::Client, down: Arc<std::sync::atomic::AtomicBool>) -> kube::Client {
    let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let inner = inner.clone();
        let down = down.clone();
        async move {
            if down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(std::io::Error::other("connection refused"));
            }
            inner.send(req).await.map_err(std::io::Error::other)
        }
    });
    kube::Client::new(svc, "default")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_that_cannot_renew_steps_down_after_the_renew_deadline() {
    let api = server().await;
    let c = &api.client;
    let log = Intervals::default();
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut a = start(&flaky(c.clone(), down.clone()), "cut", QUICK, &log);
    until_leading(&mut a, Duration::from_secs(10)).await;
    let mut b = start(c, "cut", QUICK, &log);
    tokio::time::sleep(QUICK.retry_period * 3).await;
    assert!(*a.leading.borrow() && !*b.leading.borrow());

    down.store(true, std::sync::atomic::Ordering::SeqCst);
    let cut = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), &mut a.task)
        .await
        .expect("the leader steps down")
        .unwrap();
    let stepped_down = cut.elapsed();
    assert_eq!(outcome, Outcome::Lost);
    // It kept leading through transient failures, at most the renew deadline after its last
    // successful renewal (itself at most a retry period before the cut).
    assert!(
        stepped_down >= QUICK.renew_deadline - QUICK.retry_period * 2,
        "stepped down too early: {stepped_down:?}"
    );
    assert!(
        stepped_down <= QUICK.renew_deadline + QUICK.retry_period * 2,
        "stepped down too late: {stepped_down:?}"
    );
    // The other candidate takes over once the lease expired, after a stopped leading.
    until_leading(&mut b, Duration::from_secs(10)).await;
    // (The lead callback runs just after the watch flips.)
    while log.lock().len() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = log.lock().clone();
    assert!(log[0].2.unwrap() <= log[1].1, "{log:?}");
    b.shutdown.cancel();
    b.task.await.unwrap();
    api.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_elected_campaigns_again_after_losing_the_lease() {
    let api = server().await;
    let c = &api.client;
    let terms = Arc::new(Mutex::new(0_u32));
    let shutdown = CancellationToken::new();
    let identity = default_identity();
    let lock = LeaseLockConfig {
        namespace: NS.into(),
        name: "again".into(),
        identity: identity.clone(),
    };
    let t = terms.clone();
    let task = tokio::spawn(informers::leaderelection::run_elected(
        c.clone(),
        lock,
        QUICK,
        shutdown.clone(),
        move |token| {
            let t = t.clone();
            async move {
                *t.lock() += 1;
                token.cancelled().await;
            }
        },
    ));
    let leases: Api<Lease> = Api::namespaced(c.clone(), NS);
    let deadline = Instant::now() + Duration::from_secs(10);
    while *terms.lock() < 1 {
        assert!(Instant::now() < deadline, "never led");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Someone takes the Lease for one second: the elector loses it, then takes it back.
    let mut l = leases.get("again").await.unwrap();
    l.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
    l.spec.as_mut().unwrap().lease_duration_seconds = Some(1);
    leases
        .replace("again", &PostParams::default(), &l)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while *terms.lock() < 2 {
        assert!(Instant::now() < deadline, "did not lead again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(holder(&leases.get("again").await.unwrap()), identity);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("returns on shutdown")
        .unwrap();
    assert_eq!(holder(&leases.get("again").await.unwrap()), "");
    assert_eq!(*terms.lock(), 2);
    api.shutdown.cancel();
}
