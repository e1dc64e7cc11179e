//! The measured phases: paced and closed-loop creates, GETs, LISTs and watch fan-out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::BenchError;
use crate::client::{Answer, Connector, H2Client};
use crate::pods::{namespace_body, pod_body};
use crate::stats::ErrorTally;

/// Latencies and outcome of a batch of requests.
#[derive(Debug, Default)]
pub struct Run {
    /// Latency of every request that got the expected status.
    pub latencies: Vec<Duration>,
    /// Number of requests that got the expected status.
    pub ok: usize,
    /// The others.
    pub errors: ErrorTally,
    /// Wall time from the start of the batch until its last answer.
    pub elapsed: Duration,
}

impl Run {
    /// Successful requests per second over [`Run::elapsed`].
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    fn absorb(&mut self, latencies: Vec<Duration>, ok: usize, errors: ErrorTally) {
        self.latencies.extend(latencies);
        self.ok += ok;
        self.errors.merge(errors);
    }
}

/// A request that did not get the expected status: a kind for grouping and the details.
#[derive(Debug)]
struct Failure {
    kind: String,
    detail: String,
}

fn check(
    res: Result<Answer, BenchError>,
    expect: StatusCode,
    method: &str,
    path: &str,
) -> Result<(), Failure> {
    match res {
        Ok(a) if a.status == expect => Ok(()),
        Ok(a) => Err(Failure {
            kind: format!("{method} {}", a.status.as_u16()),
            detail: format!("{method} {path} → {}: {}", a.status, a.text()),
        }),
        Err(e) => Err(Failure {
            kind: format!("{method} transport error"),
            detail: format!("{method} {path}: {e}"),
        }),
    }
}

/// `/api/v1/namespaces/{ns}/pods`.
pub fn pods_path(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}/pods")
}

/// The name of pod number `i` of a phase.
pub fn pod_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:06}")
}

/// Creates namespace `name` (an existing one is fine).
pub async fn ensure_namespace(client: &H2Client, name: &str) -> Result<(), BenchError> {
    let a = client
        .post("/api/v1/namespaces", namespace_body(name))
        .await?;
    if a.status == StatusCode::CREATED || a.status == StatusCode::CONFLICT {
        Ok(())
    } else {
        Err(BenchError::Unexpected(format!(
            "POST /api/v1/namespaces ({name}) → {}: {}",
            a.status,
            a.text()
        )))
    }
}

/// Open-loop creates: pod `i` is sent at `start + i / rate` whatever happened to the earlier
/// ones, and its latency counts from that scheduled instant (so a stalled client or server
/// cannot hide its own delay: no coordinated omission).
pub async fn paced_creates(
    client: &H2Client,
    ns: &str,
    prefix: &str,
    rate: u32,
    duration: Duration,
) -> Run {
    let total = (f64::from(rate) * duration.as_secs_f64()).round() as usize;
    let period = Duration::from_secs(1) / rate.max(1);
    let path: Arc<str> = pods_path(ns).into();
    let start = Instant::now() + Duration::from_millis(20);
    let mut set = JoinSet::new();
    for i in 0..total {
        let body = pod_body(ns, &pod_name(prefix, i));
        let at = start + period * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(at.into()).await;
        let c = client.clone();
        let path = path.clone();
        set.spawn(async move {
            let r = c.post(&path, body).await;
            (at.elapsed(), check(r, StatusCode::CREATED, "POST", &path))
        });
    }
    let mut run = Run::default();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((d, Ok(()))) => {
                run.latencies.push(d);
                run.ok += 1;
            }
            Ok((_, Err(f))) => run.errors.record(f.kind, || f.detail),
            Err(e) => run.errors.record("task failed", || e.to_string()),
        }
    }
    run.elapsed = start.elapsed();
    run
}

/// How long a closed-loop phase runs.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// Until this much time has passed (requests in flight then still complete).
    For(Duration),
    /// Until this many requests were sent.
    Count(usize),
}

/// Closed-loop creates: `clients` tasks spread over `conns`, each sending its next pod as soon
/// as the previous one is acknowledged, until the budget is spent.
pub async fn closed_loop_creates(
    conns: &[H2Client],
    clients: usize,
    ns: &str,
    prefix: &str,
    budget: Budget,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let path: Arc<str> = pods_path(ns).into();
    let ns: Arc<str> = ns.into();
    let prefix: Arc<str> = prefix.into();
    let start = Instant::now();
    let mut set = JoinSet::new();
    for c in 0..clients {
        let client = conns[c % conns.len()].clone();
        let (next, path, ns, prefix) = (next.clone(), path.clone(), ns.clone(), prefix.clone());
        set.spawn(async move {
            let mut lat = Vec::new();
            let mut ok = 0;
            let mut errors = ErrorTally::default();
            loop {
                if let Budget::For(d) = budget
                    && start.elapsed() >= d
                {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if let Budget::Count(n) = budget
                    && i >= n
                {
                    break;
                }
                let body = pod_body(&ns, &pod_name(&prefix, i));
                let t0 = Instant::now();
                let r = client.post(&path, body).await;
                let d = t0.elapsed();
                match check(r, StatusCode::CREATED, "POST", &path) {
                    Ok(()) => {
                        lat.push(d);
                        ok += 1;
                    }
                    Err(f) => errors.record(f.kind, || f.detail),
                }
            }
            (lat, ok, errors)
        });
    }
    let mut run = Run::default();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((lat, ok, errors)) => run.absorb(lat, ok, errors),
            Err(e) => run.errors.record("task failed", || e.to_string()),
        }
    }
    run.elapsed = start.elapsed();
    run
}

/// Closed-loop GETs of random existing pods `prefix-000000 .. prefix-{pods-1}`: one task per
/// client, client `c` on `conns[c % conns.len()]`, for `duration`.
pub async fn random_gets(
    conns: &[H2Client],
    clients: usize,
    ns: &str,
    prefix: &str,
    pods: usize,
    duration: Duration,
) -> Run {
    let base: Arc<str> = pods_path(ns).into();
    let prefix: Arc<str> = prefix.into();
    let start = Instant::now();
    let mut set = JoinSet::new();
    for c in 0..clients {
        let client = conns[c % conns.len()].clone();
        let (base, prefix) = (base.clone(), prefix.clone());
        set.spawn(async move {
            let mut lat = Vec::new();
            let mut ok = 0;
            let mut errors = ErrorTally::default();
            while start.elapsed() < duration {
                let i = rand::random_range(0..pods.max(1));
                let path = format!("{base}/{}", pod_name(&prefix, i));
                let t0 = Instant::now();
                let r = client.get(&path).await;
                let d = t0.elapsed();
                match check(r, StatusCode::OK, "GET", &path) {
                    Ok(()) => {
                        lat.push(d);
                        ok += 1;
                    }
                    Err(f) => errors.record(f.kind, || f.detail),
                }
            }
            (lat, ok, errors)
        });
    }
    let mut run = Run::default();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((lat, ok, errors)) => run.absorb(lat, ok, errors),
            Err(e) => run.errors.record("task failed", || e.to_string()),
        }
    }
    run.elapsed = start.elapsed();
    run
}

/// Timings of repeated full LISTs.
#[derive(Debug)]
pub struct ListRun {
    /// Time from sending the request to the last byte of the body, per run.
    pub times: Vec<Duration>,
    /// Size of the last response body.
    pub bytes: usize,
    /// Number of items (JSON) or rows (Table) in the last response.
    pub items: usize,
}

/// Runs `GET path` with `accept` `runs` times, one after the other, and checks that the
/// response holds a list (`items`) or a Table (`rows`).
pub async fn repeated_lists(
    client: &H2Client,
    path: &str,
    accept: &str,
    runs: usize,
) -> Result<ListRun, BenchError> {
    let mut times = Vec::with_capacity(runs);
    let mut last = Bytes::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let a = client.send(Method::GET, path, accept, None).await?;
        times.push(t0.elapsed());
        if a.status != StatusCode::OK {
            return Err(BenchError::Unexpected(format!(
                "GET {path} (Accept: {accept}) → {}: {}",
                a.status,
                a.text()
            )));
        }
        last = a.body;
    }
    let items = count_entries(&last)?;
    Ok(ListRun {
        times,
        bytes: last.len(),
        items,
    })
}

/// Number of `items` of a list or `rows` of a Table.
pub fn count_entries(body: &[u8]) -> Result<usize, BenchError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| BenchError::Unexpected(format!("list body is not JSON: {e}")))?;
    v.get("items")
        .or_else(|| v.get("rows"))
        .and_then(serde_json::Value::as_array)
        .map(Vec::len)
        .ok_or_else(|| BenchError::Unexpected("list body has neither items nor rows".into()))
}

/// `metadata.resourceVersion` of a LIST of `path`.
pub async fn list_resource_version(client: &H2Client, path: &str) -> Result<String, BenchError> {
    let a = client.get(path).await?;
    if a.status != StatusCode::OK {
        return Err(BenchError::Unexpected(format!(
            "GET {path} → {}: {}",
            a.status,
            a.text()
        )));
    }
    let v: serde_json::Value = serde_json::from_slice(&a.body)
        .map_err(|e| BenchError::Unexpected(format!("GET {path}: not JSON: {e}")))?;
    v.pointer("/metadata/resourceVersion")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| BenchError::Unexpected(format!("GET {path}: no metadata.resourceVersion")))
}

/// If `line` is an `ADDED` watch event for pod `prefix-NNNNNN`, returns `NNNNNN`.
///
/// Looks for the first `"name":"prefix-` (the pod's `metadata.name` comes before any container
/// name in the server's encoding, and container names never start with the prefix).
pub fn added_event_index(line: &[u8], prefix: &str) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?;
    if !text.starts_with("{\"type\":\"ADDED\"") {
        return None;
    }
    let needle = format!("\"name\":\"{prefix}-");
    let at = text.find(&needle)? + needle.len();
    let digits: &str = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// What the watch phase observed.
#[derive(Debug, Default)]
pub struct WatchRun {
    /// Watchers whose request got 200 (including any that only got it after the setup wait).
    pub established: usize,
    /// Watchers whose request got 200 within the setup wait (60 s).
    pub established_in_setup: usize,
    /// Time to open every watch (from the first request to the last 200), or the setup wait.
    pub setup: Duration,
    /// Writes acknowledged with 201.
    pub writes_ok: usize,
    /// For every (watcher, acknowledged write): receipt time minus acknowledgement time
    /// (0 when the event arrived before the acknowledgement).
    pub latencies: Vec<Duration>,
    /// For every (watcher, acknowledged write): receipt time minus the time the create request
    /// was sent (an upper bound of commit → delivery that needs no ordering assumption).
    pub from_send: Vec<Duration>,
    /// Events that arrived before their write's acknowledgement did.
    pub early: usize,
    /// Per write: time from its acknowledgement until the last watcher had it (writes that
    /// every watcher received).
    pub fanout: Vec<Duration>,
    /// Events expected (`established × writes_ok`).
    pub expected: usize,
    /// Events received.
    pub received: usize,
    /// Failed watches and writes.
    pub errors: ErrorTally,
}

/// Parameters of [`watch_fanout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchPlan {
    /// Concurrent watchers on the namespace.
    pub watchers: usize,
    /// Watch streams per HTTP/2 connection.
    pub per_conn: usize,
    /// Pods created while the watchers listen.
    pub writes: usize,
    /// Pause between two writes.
    pub interval: Duration,
    /// How long to wait for late events after the last write.
    pub drain: Duration,
}

/// What one watcher saw: whether its watch got 200 (at any time), the arrival time of each
/// expected event, and why its stream ended early, if it did.
struct Receipts {
    established: bool,
    got: Vec<Option<Instant>>,
    ended: Option<String>,
}

/// Opens `plan.watchers` watches on the pods of `ns` (from its current resourceVersion), then
/// creates `plan.writes` pods one by one through `writer`, and measures, for every watcher, the
/// time from each create's acknowledgement to that watcher's receipt of the `ADDED` event.
pub async fn watch_fanout(
    connector: &Connector,
    writer: &H2Client,
    ns: &str,
    prefix: &str,
    plan: WatchPlan,
) -> Result<WatchRun, BenchError> {
    let list_path = pods_path(ns);
    let rv = list_resource_version(writer, &list_path).await?;
    let watch_path: Arc<str> =
        format!("{list_path}?watch=true&resourceVersion={rv}&timeoutSeconds=600").into();
    let n_conns = plan.watchers.div_ceil(plan.per_conn.max(1)).max(1);
    let mut conns = Vec::with_capacity(n_conns);
    for _ in 0..n_conns {
        conns.push(connector.h2().await?);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(plan.watchers.max(1));
    let prefix_arc: Arc<str> = prefix.into();
    let setup_start = Instant::now();
    let mut set: JoinSet<Receipts> = JoinSet::new();
    for w in 0..plan.watchers {
        let client = conns[w % n_conns].clone();
        set.spawn(watcher(
            client,
            watch_path.clone(),
            plan.writes,
            prefix_arc.clone(),
            ready_tx.clone(),
            stop_rx.clone(),
        ));
    }
    drop(ready_tx);
    let mut run = WatchRun::default();
    let setup_deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut answered = 0;
    while answered < plan.watchers {
        match tokio::time::timeout_at(setup_deadline, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => run.established_in_setup += 1,
            Ok(Some(Err(e))) => run.errors.record("watch start failed", || e),
            Ok(None) => break,
            Err(_) => {
                let n = plan.watchers - answered;
                run.errors.record("watch not answered within 60 s", || {
                    format!(
                        "{n} of {} watches got no response head within 60 s \
                         ({} streams per HTTP/2 connection)",
                        plan.watchers, plan.per_conn
                    )
                });
                break;
            }
        }
        answered += 1;
    }
    run.setup = setup_start.elapsed();
    // Let the server finish registering the last watchers before the first write.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut acks: Vec<Option<Instant>> = Vec::with_capacity(plan.writes);
    let mut sends: Vec<Instant> = Vec::with_capacity(plan.writes);
    let start = Instant::now();
    for i in 0..plan.writes {
        let body = pod_body(ns, &pod_name(prefix, i));
        let at = start + plan.interval * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(at.into()).await;
        sends.push(Instant::now());
        let r = writer.post(&list_path, body).await;
        let ack = Instant::now();
        match check(r, StatusCode::CREATED, "POST", &list_path) {
            Ok(()) => {
                acks.push(Some(ack));
                run.writes_ok += 1;
            }
            Err(f) => {
                acks.push(None);
                run.errors.record(f.kind, || f.detail);
            }
        }
    }

    let drain_deadline = tokio::time::Instant::now() + plan.drain;
    let mut results: Vec<Receipts> = Vec::with_capacity(plan.watchers);
    let mut stopped = false;
    loop {
        let next = if stopped {
            Ok(set.join_next().await)
        } else {
            tokio::time::timeout_at(drain_deadline, set.join_next()).await
        };
        match next {
            Ok(Some(Ok(r))) => results.push(r),
            Ok(Some(Err(e))) => run.errors.record("watch task failed", || e.to_string()),
            Ok(None) => break,
            Err(_) => {
                let _ = stop_tx.send(true);
                stopped = true;
            }
        }
    }
    drop(conns);

    let mut last_receipt: Vec<Option<Instant>> = acks.clone();
    let mut all_got: Vec<bool> = vec![true; acks.len()];
    for Receipts {
        established,
        got,
        ended,
    } in &results
    {
        if *established {
            run.established += 1;
        }
        if let Some(e) = ended {
            run.errors.record("watch stream ended early", || e.clone());
        }
        for (i, ack) in acks.iter().enumerate() {
            let Some(ack) = ack else { continue };
            match got.get(i).copied().flatten() {
                Some(rcv) => {
                    run.received += 1;
                    if rcv < *ack {
                        run.early += 1;
                    }
                    run.latencies.push(rcv.saturating_duration_since(*ack));
                    run.from_send.push(rcv.saturating_duration_since(sends[i]));
                    if let Some(Some(last)) = last_receipt.get_mut(i)
                        && rcv > *last
                    {
                        *last = rcv;
                    }
                }
                None => all_got[i] = false,
            }
        }
    }
    run.expected = run.established * run.writes_ok;
    for (i, ack) in acks.iter().enumerate() {
        if let (Some(ack), Some(last), true) = (ack, last_receipt[i], all_got[i])
            && run.established > 0
        {
            run.fanout.push(last.saturating_duration_since(*ack));
        }
    }
    Ok(run)
}

/// One watcher: reports on `ready` when its watch answered (or failed), then records the
/// arrival time of each expected `ADDED` event until it has them all or `stop` fires.
async fn watcher(
    client: H2Client,
    path: Arc<str>,
    writes: usize,
    prefix: Arc<str>,
    ready: mpsc::Sender<Result<(), String>>,
    mut stop: watch::Receiver<bool>,
) -> Receipts {
    let mut out = Receipts {
        established: false,
        got: vec![None; writes],
        ended: None,
    };
    let started = tokio::select! {
        r = client.start(Method::GET, &path, "application/json", None) => r,
        _ = stop.changed() => {
            out.ended = Some("stopped before the watch started".into());
            return out;
        }
    };
    let resp = match started {
        Ok(r) if r.status() == StatusCode::OK => r,
        Ok(r) => {
            let status = r.status();
            let body = match r.into_body().collect().await {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                Err(e) => e.to_string(),
            };
            let _ = ready
                .send(Err(format!("GET {path} → {status}: {body}")))
                .await;
            return out;
        }
        Err(e) => {
            let _ = ready.send(Err(format!("GET {path}: {e}"))).await;
            return out;
        }
    };
    out.established = true;
    let _ = ready.send(Ok(())).await;
    drop(ready);
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut count = 0;
    while count < writes {
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = stop.changed() => break,
        };
        let data = match frame {
            None => {
                out.ended = Some(format!(
                    "the server ended the watch after {count} of {writes} events"
                ));
                return out;
            }
            Some(Err(e)) => {
                out.ended = Some(format!("watch stream error after {count} events: {e}"));
                return out;
            }
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
        };
        let now = Instant::now();
        let scan_from = buf.len();
        buf.extend_from_slice(&data);
        let mut line_start = 0;
        let mut pos = scan_from;
        while let Some(off) = buf[pos..].iter().position(|&b| b == b'\n') {
            let end = pos + off;
            if let Some(i) = added_event_index(&buf[line_start..end], &prefix)
                && let Some(slot) = out.got.get_mut(i)
                && slot.is_none()
            {
                *slot = Some(now);
                count += 1;
            }
            line_start = end + 1;
            pos = line_start;
        }
        buf.drain(..line_start);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_event_index_reads_the_pod_number() {
        let line = br#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"watch-000042","namespace":"w"},"spec":{"containers":[{"name":"app"}]}}}"#;
        assert_eq!(added_event_index(line, "watch"), Some(42));
    }

    #[test]
    fn added_event_index_ignores_other_events_and_pods() {
        let modified = br#"{"type":"MODIFIED","object":{"metadata":{"name":"watch-000001"}}}"#;
        assert_eq!(added_event_index(modified, "watch"), None);
        let other = br#"{"type":"ADDED","object":{"metadata":{"name":"other-000001"}}}"#;
        assert_eq!(added_event_index(other, "watch"), None);
        let bookmark = br#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"5"}}}"#;
        assert_eq!(added_event_index(bookmark, "watch"), None);
        assert_eq!(added_event_index(b"\xff\xfe", "watch"), None);
    }

    #[test]
    fn count_entries_reads_items_or_rows() {
        assert_eq!(count_entries(br#"{"items":[{},{},{}]}"#).ok(), Some(3));
        assert_eq!(
            count_entries(br#"{"kind":"Table","rows":[{}]}"#).ok(),
            Some(1)
        );
        assert!(count_entries(br#"{"kind":"Status"}"#).is_err());
        assert!(count_entries(b"not json").is_err());
    }

    #[test]
    fn pod_names_sort_in_creation_order() {
        assert_eq!(pod_name("list", 7), "list-000007");
        assert!(pod_name("list", 9) < pod_name("list", 10));
    }

    #[test]
    fn run_rate_is_successes_per_second() {
        let run = Run {
            ok: 300,
            elapsed: Duration::from_millis(1500),
            ..Run::default()
        };
        assert!((run.rate() - 200.0).abs() < 1e-9);
        assert_eq!(Run::default().rate(), 0.0);
    }
}
