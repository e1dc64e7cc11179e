//! A [`Store`] over an etcd v3 cluster (the `etcd-client` gRPC client).
//!
//! The mapping is the one the Kubernetes API server uses: a store revision is etcd's revision (so a
//! `resourceVersion` is an etcd mod revision), `create` is a transaction guarded by
//! `create_revision == 0`, `update` and conditional `delete` are transactions guarded by the key's
//! `mod_revision`, reads at a revision are etcd ranges at that revision, and watches are etcd
//! watches from `after + 1` with previous values.
//!
//! Two details differ from raw etcd, so that the store keeps the [`Store`] contract:
//! - etcd's revision 1 is the empty cluster (its first write gets revision 2). No write ever has
//!   revision 1, so a cluster that was never written reports revision 0 ("before the first write"),
//!   like every other backend, and a read at revision 0 reads etcd's empty revision 1.
//! - `compact(r)` compacts etcd at `r - 1`: the trait keeps the previous values of the events from
//!   `r` on (a watch with `after = r - 1` gets full events), and etcd looks those up at the
//!   event's revision minus one. Reads and watches below `r` are refused by the store itself, so
//!   the compacted revision the store reports is `r`; a compaction etcd reports (made by another
//!   client at `c`) is taken as the store revision `c + 1`.
//!
//! With several members, the store keeps one connection per member and sends every request to
//! the member that answered last, moving on to the next member when one cannot be reached
//! (etcd-client's balancer keeps sending a share of the requests to a stopped member). A read,
//! or any request etcd refused before acting on it (the member could not be connected to, or
//! has no leader), is sent again to the next member; a write whose outcome is unknown (the
//! connection broke or the deadline passed after it was sent) is not, and fails with an error
//! saying so. Every request has a deadline ([`EtcdOptions::request_timeout`]). Watches ask etcd
//! to cancel them when their member loses its leader, ask for a progress report when they have
//! been quiet for a while, and when a watch breaks, goes quiet or is cancelled, it is opened
//! again on another member from the revision after the last event delivered: the watcher sees
//! every event once, in order.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    GetResponse, Identity, KvClient, TlsOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
    WatchClient, WatchOptions,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{Event, KeyValue, RangeResult, Result, Revision, Store, StoreError, WatchStream};

/// How long the store waits for etcd to report its compaction revision on a probe watch.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest gRPC message the store accepts from etcd (the API server's `MaxCallRecvMsgSize`,
/// `math.MaxInt32`): a list of many objects, or a watch response replaying many revisions, is far
/// larger than gRPC's 4 MiB default.
const MAX_MESSAGE: usize = (1 << 31) - 1;

/// How long a watch may be quiet before the store asks etcd for a progress report on it.
const WATCH_QUIET: Duration = Duration::from_secs(3);

/// How long etcd may take to answer a progress request (or any message to arrive) before the
/// watch is taken for dead and opened again on another member.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(3);

/// How long opening a watch on one member may take (until etcd confirms it).
const OPEN_WATCH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a lost watch is tried on the members before the watcher gets the error.
const RESUME_TIMEOUT: Duration = Duration::from_secs(60);

/// The pause after every member failed a request in a row (e.g. while they elect a leader).
const ROUND_BACKOFF: Duration = Duration::from_millis(200);

/// TLS material for the connection to etcd (PEM files, as `--datastore-cafile`,
/// `--datastore-certfile` and `--datastore-keyfile`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA bundle that signed the etcd servers' certificates.
    pub ca_file: Option<PathBuf>,
    /// The client certificate presented to etcd (needs `key_file`).
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (needs `cert_file`).
    pub key_file: Option<PathBuf>,
}

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// The client URLs of the etcd members, e.g. `https://10.0.0.1:2379`. With TLS they must be
    /// `https://` URLs.
    pub endpoints: Vec<String>,
    /// TLS material; `None` for plain `http://` endpoints.
    pub tls: Option<EtcdTls>,
    /// Prepended to every key in etcd (and stripped from the keys read back), so several clusters
    /// can share one etcd. Empty by default: the store's keys (`/registry/...`) are etcd's keys.
    pub prefix: String,
    /// How many events a watcher may have buffered before it is cut off with
    /// [`StoreError::WatcherLagged`].
    pub watch_buffer: usize,
    /// How long connecting to an endpoint may take.
    pub connect_timeout: Duration,
    /// How long one store request may take in all, including retries on other members. A write
    /// that is not answered in time fails (it may or may not have been applied).
    pub request_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            tls: None,
            prefix: String::new(),
            watch_buffer: 10_000,
            connect_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// An invalid etcd datastore configuration (see [`EtcdOptions::from_datastore_flags`]).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EtcdConfigError {
    /// No endpoint was given.
    #[error("no etcd endpoint given")]
    NoEndpoint,
    /// An endpoint is not an `http://` or `https://` URL.
    #[error("datastore endpoint {0:?} is not an etcd http:// or https:// URL")]
    NotEtcd(String),
    /// TLS files were given for a plain `http://` endpoint.
    #[error("datastore endpoint {0} is http://, but TLS files were given (use https://)")]
    TlsOverHttp(String),
    /// Only one of the client certificate and its key was given.
    #[error(
        "a datastore client certificate needs both --datastore-certfile and --datastore-keyfile"
    )]
    HalfClientCertificate,
}

impl EtcdOptions {
    /// Options from k3s' flags: `--datastore-endpoint` (comma-separated etcd client URLs, e.g.
    /// `https://a:2379,https://b:2379`), `--datastore-cafile`, `--datastore-certfile` and
    /// `--datastore-keyfile`; the other options keep their defaults.
    pub fn from_datastore_flags(
        endpoint: &str,
        ca_file: Option<PathBuf>,
        cert_file: Option<PathBuf>,
        key_file: Option<PathBuf>,
    ) -> Result<Self, EtcdConfigError> {
        let endpoints: Vec<String> = endpoint
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if endpoints.is_empty() {
            return Err(EtcdConfigError::NoEndpoint);
        }
        if cert_file.is_some() != key_file.is_some() {
            return Err(EtcdConfigError::HalfClientCertificate);
        }
        let tls = (ca_file.is_some() || cert_file.is_some()).then_some(EtcdTls {
            ca_file,
            cert_file,
            key_file,
        });
        for e in &endpoints {
            if e.starts_with("http://") {
                if tls.is_some() {
                    return Err(EtcdConfigError::TlsOverHttp(e.clone()));
                }
            } else if !e.starts_with("https://") {
                return Err(EtcdConfigError::NotEtcd(e.clone()));
            }
        }
        Ok(Self {
            endpoints,
            tls,
            ..Self::default()
        })
    }
}

/// A [`Store`] backed by an etcd v3 cluster.
///
/// Dropping the store (or [`Self::close`]) ends its watches with [`StoreError::Closed`]; later
/// calls fail with `Closed`.
pub struct EtcdStore {
    inner: Arc<Inner>,
    watch_buffer: usize,
    cancel: CancellationToken,
}

/// What the store's watch tasks share with it.
struct Inner {
    /// One client per etcd member, in the order of [`EtcdOptions::endpoints`].
    members: Vec<Member>,
    /// The member requests go to first: the last one that answered.
    preferred: AtomicUsize,
    prefix: String,
    /// The store's compacted revision, as far as this client knows it.
    compacted: AtomicI64,
    /// See [`EtcdOptions::request_timeout`].
    request_timeout: Duration,
}

/// The clients of one etcd member (each over its own connection).
struct Member {
    endpoint: String,
    kv: KvClient,
    watch: WatchClient,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.inner.prefix)
            .field("compacted", &self.inner.compacted.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// How an etcd request failed.
enum Failure {
    /// `mvcc: required revision has been compacted`.
    Compacted,
    /// `mvcc: required revision is a future revision`.
    Future,
    /// Anything else.
    Other(StoreError),
}

/// What a failed request says about whether it took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// etcd never got the request, or refused it before acting on it: sending it again (to any
    /// member) is always safe.
    NotApplied,
    /// The request may or may not have taken effect (the connection broke after it was sent,
    /// etcd timed out waiting for its leader): only a read may be sent again.
    Unknown,
    /// etcd answered: sending it again gets the same answer.
    Final,
}

/// The messages of errors etcd (or the connection) gives before a request was acted on.
const NOT_APPLIED: [&str; 8] = [
    "tcp connect error",
    "error trying to connect",
    "connection refused",
    "dns error",
    "etcdserver: no leader",
    "etcdserver: too many requests",
    "raft proposal dropped",
    "etcdserver: not capable",
];

/// gRPC codes (`tonic::Code` values) of failures whose outcome is unknown: Cancelled, Unknown,
/// DeadlineExceeded, Internal, Unavailable.
const UNKNOWN_CODES: [i32; 5] = [1, 2, 4, 13, 14];

/// An error with all its sources, e.g. `status: transport error: tcp connect error: ...`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

fn outcome_of(code: Option<i32>, description: &str) -> Outcome {
    let lower = description.to_ascii_lowercase();
    if NOT_APPLIED.iter().any(|m| lower.contains(m)) {
        return Outcome::NotApplied;
    }
    match code {
        Some(code) if UNKNOWN_CODES.contains(&code) => Outcome::Unknown,
        Some(_) => Outcome::Final,
        None => Outcome::Unknown,
    }
}

/// Whether a failed request took effect, and the error's full description.
fn outcome(err: &etcd_client::Error) -> (Outcome, String) {
    match err {
        etcd_client::Error::GRpcStatus(status) => {
            let description = error_chain(status);
            (
                outcome_of(Some(i32::from(status.code())), &description),
                description,
            )
        }
        // Building a channel: nothing was sent.
        etcd_client::Error::TransportError(e) => (Outcome::NotApplied, error_chain(e)),
        etcd_client::Error::IoError(e) => {
            let description = error_chain(e);
            (outcome_of(None, &description), description)
        }
        other => (Outcome::Final, other.to_string()),
    }
}

impl Failure {
    /// The error of a request that is neither a read nor a watch (where compaction and future
    /// revisions have no meaning of their own).
    fn into_error(self) -> StoreError {
        match self {
            Failure::Compacted => backend("mvcc: required revision has been compacted"),
            Failure::Future => backend("mvcc: required revision is a future revision"),
            Failure::Other(err) => err,
        }
    }
}

fn classify(err: etcd_client::Error) -> Failure {
    if let etcd_client::Error::GRpcStatus(status) = &err {
        let msg = status.message();
        if msg.contains("required revision has been compacted") {
            return Failure::Compacted;
        }
        if msg.contains("required revision is a future revision") {
            return Failure::Future;
        }
    }
    Failure::Other(backend(err))
}

/// What a watch task does next.
enum Follow {
    /// The watcher dropped its stream.
    Gone,
    /// The watch ends with this error.
    End(StoreError),
    /// The member's watch broke (the reason): open it again elsewhere.
    Lost(String),
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("etcd: {err}"))
}

/// The store revision of an etcd header revision: etcd's revision 1 is the never-written cluster.
fn store_revision(etcd_revision: i64) -> Revision {
    if etcd_revision <= 1 { 0 } else { etcd_revision }
}

/// The end of the key interval of everything starting with `prefix` (`\0`, "to the end", when no
/// key is above the prefix).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

async fn read_pem(path: &std::path::Path) -> Result<Vec<u8>> {
    tokio::fs::read(path)
        .await
        .map_err(|e| backend(format_args!("reading {}: {e}", path.display())))
}

impl EtcdStore {
    /// Connects to etcd and checks that it answers (within `connect_timeout`).
    pub async fn connect(opts: EtcdOptions) -> Result<Self> {
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(opts.connect_timeout)
            .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10))
            .with_require_leader(true);
        if let Some(tls) = &opts.tls {
            let mut config = TlsOptions::new();
            if let Some(ca) = &tls.ca_file {
                config = config.ca_certificate(Certificate::from_pem(read_pem(ca).await?));
            }
            match (&tls.cert_file, &tls.key_file) {
                (Some(cert), Some(key)) => {
                    config = config.identity(Identity::from_pem(
                        read_pem(cert).await?,
                        read_pem(key).await?,
                    ));
                }
                (None, None) => {}
                _ => {
                    return Err(backend(
                        "a client certificate needs both a certificate file and a key file",
                    ));
                }
            }
            connect = connect.with_tls(config);
        }
        if opts.endpoints.is_empty() {
            return Err(backend("no endpoint given"));
        }
        // One client (one connection) per member, so the store picks the member.
        let mut members = Vec::with_capacity(opts.endpoints.len());
        for endpoint in &opts.endpoints {
            let client = Client::connect([endpoint.as_str()], Some(connect.clone()))
                .await
                .map_err(|e| backend(format_args!("{endpoint}: {e}")))?;
            members.push(Member {
                endpoint: endpoint.clone(),
                kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE),
                watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE),
            });
        }
        let store = Self {
            inner: Arc::new(Inner {
                members,
                preferred: AtomicUsize::new(0),
                prefix: opts.prefix,
                compacted: AtomicI64::new(0),
                request_timeout: opts.request_timeout.max(Duration::from_millis(1)),
            }),
            watch_buffer: opts.watch_buffer.max(1),
            cancel: CancellationToken::new(),
        };
        match tokio::time::timeout(opts.connect_timeout, store.inner.load_compacted()).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(backend(format_args!(
                    "no answer from {} within {:?}",
                    opts.endpoints.join(","),
                    opts.connect_timeout
                )));
            }
        }
        Ok(store)
    }

    /// Ends every watch with [`StoreError::Closed`]; later calls fail with `Closed`. Idempotent.
    pub fn close(&self) {
        self.cancel.cancel();
    }

    fn check_open(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// A range read at `at` (latest when `None`), with the store's revision checks; returns the
    /// response and the revision the read was served at.
    async fn read(
        &self,
        key: Vec<u8>,
        opts: GetOptions,
        at: Option<Revision>,
    ) -> Result<(GetResponse, Revision)> {
        self.check_open()?;
        let mut opts = opts;
        if let Some(rev) = at {
            self.inner.check_not_compacted(rev)?;
            opts = opts.with_revision(rev.max(1));
        }
        let resp = match self.inner.get(key, opts).await {
            Ok(resp) => resp,
            Err(err) => return Err(self.inner.read_error(err, at.unwrap_or(0)).await),
        };
        let current = store_revision(resp.header().map_or(0, |h| h.revision()));
        match at {
            None => Ok((resp, current)),
            // Only possible at revision 1 of a never-written cluster.
            Some(rev) if rev > current => Err(StoreError::FutureRevision {
                requested: rev,
                current,
            }),
            Some(rev) => Ok((resp, rev)),
        }
    }

    /// Runs a transaction whose else branch reads `key`, mapping a failed comparison to
    /// `NotFound` (no key) or `Conflict` (another mod revision).
    async fn guarded(&self, key: &str, txn: Txn, expected: Revision) -> Result<TxnResponse> {
        self.check_open()?;
        let resp = self.inner.txn(txn).await?;
        if resp.succeeded() {
            return Ok(resp);
        }
        let actual = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => Some(get.kvs().first().map(|kv| kv.mod_revision())),
            _ => None,
        });
        match actual {
            Some(Some(actual)) => Err(StoreError::Conflict {
                key: key.to_owned(),
                expected,
                actual,
            }),
            Some(None) => Err(StoreError::NotFound(key.to_owned())),
            None => Err(backend("transaction failed without a read of the key")),
        }
    }
}

impl Inner {
    /// Runs a KV request on the preferred member and, when it fails without an answer from etcd,
    /// on the next ones, until [`EtcdOptions::request_timeout`] has passed. `idempotent` requests
    /// (reads, compactions) are sent again whatever the failure; the others only when etcd cannot
    /// have acted on them.
    async fn call<T, F, Fut>(&self, idempotent: bool, mut op: F) -> Result<T, Failure>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let n = self.members.len();
        let deadline = Instant::now() + self.request_timeout;
        // A read may go on to the next member when one does not answer in half the time.
        let attempt_timeout = if idempotent && n > 1 {
            self.request_timeout / 2
        } else {
            self.request_timeout
        };
        let mut index = self.preferred.load(Ordering::Acquire) % n;
        let mut failures = 0usize;
        loop {
            let member = &self.members[index];
            let budget = deadline
                .saturating_duration_since(Instant::now())
                .min(attempt_timeout);
            let description = match tokio::time::timeout(budget, op(member.kv.clone())).await {
                Ok(Ok(value)) => {
                    self.prefer(index);
                    return Ok(value);
                }
                Ok(Err(err)) => {
                    let (outcome, description) = outcome(&err);
                    match outcome {
                        Outcome::Final => return Err(classify(err)),
                        Outcome::Unknown if !idempotent => {
                            self.avoid(index);
                            return Err(Failure::Other(backend(format_args!(
                                "{}: {description} (the write may or may not have been applied)",
                                member.endpoint
                            ))));
                        }
                        Outcome::Unknown | Outcome::NotApplied => description,
                    }
                }
                Err(_) => {
                    self.avoid(index);
                    if !idempotent {
                        return Err(Failure::Other(backend(format_args!(
                            "{}: no answer within {budget:?} (the write may or may not have been \
                             applied)",
                            member.endpoint
                        ))));
                    }
                    format!("no answer within {budget:?}")
                }
            };
            tracing::debug!(endpoint = %member.endpoint, error = %description, "etcd request failed; trying the next member");
            failures += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Failure::Other(backend(format_args!(
                    "{}: {description}",
                    member.endpoint
                ))));
            }
            index = (index + 1) % n;
            if failures.is_multiple_of(n) {
                tokio::time::sleep(ROUND_BACKOFF.min(remaining)).await;
            }
        }
    }

    /// Sends the next requests to member `index`, which just answered.
    fn prefer(&self, index: usize) {
        let before = self.preferred.swap(index, Ordering::AcqRel);
        if before != index {
            tracing::info!(endpoint = %self.members[index].endpoint, "etcd: using this member");
        }
    }

    /// Moves the next requests away from member `index` (unless another request did already).
    fn avoid(&self, index: usize) {
        let next = (index + 1) % self.members.len();
        let _ = self
            .preferred
            .compare_exchange(index, next, Ordering::AcqRel, Ordering::Acquire);
    }

    /// A range read (retried on other members).
    async fn get(&self, key: Vec<u8>, opts: GetOptions) -> Result<GetResponse, Failure> {
        self.call(true, |mut kv| {
            let (key, opts) = (key.clone(), opts.clone());
            async move { kv.get(key, Some(opts)).await }
        })
        .await
    }

    /// A transaction with writes (sent again only when etcd cannot have acted on it).
    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.call(false, |mut kv| {
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
        .map_err(Failure::into_error)
    }

    fn full_key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.prefix.len() + key.len());
        full.extend_from_slice(self.prefix.as_bytes());
        full.extend_from_slice(key.as_bytes());
        full
    }

    /// A key no store key can collide with, for requests that only want a header.
    fn probe_key(&self) -> Vec<u8> {
        let mut key = self.full_key("");
        key.push(0);
        key
    }

    /// Converts an etcd key-value, stripping the prefix.
    fn kv_of(&self, kv: etcd_client::KeyValue) -> Result<KeyValue> {
        let (create_revision, mod_revision) = (kv.create_revision(), kv.mod_revision());
        let (key, value) = kv.into_key_value();
        let Some(stripped) = key.strip_prefix(self.prefix.as_bytes()) else {
            return Err(backend(format_args!(
                "key {} is outside the prefix {}",
                String::from_utf8_lossy(&key),
                self.prefix
            )));
        };
        let key = std::str::from_utf8(stripped)
            .map_err(|_| {
                backend(format_args!(
                    "key {} is not UTF-8",
                    String::from_utf8_lossy(stripped)
                ))
            })?
            .to_owned();
        Ok(KeyValue {
            key,
            value: Bytes::from(value),
            create_revision,
            mod_revision,
        })
    }

    fn event_of(&self, event: &etcd_client::Event) -> Result<Event> {
        let Some(kv) = event.kv() else {
            return Err(backend("watch event without a key"));
        };
        let prev = event.prev_kv().map(|p| self.kv_of(p.clone())).transpose()?;
        match event.event_type() {
            EventType::Put => Ok(Event::Put {
                kv: self.kv_of(kv.clone())?,
                prev,
            }),
            EventType::Delete => {
                let revision = kv.mod_revision();
                let prev = prev.ok_or_else(|| {
                    backend(format_args!(
                        "delete event of {} at revision {revision} without its previous value",
                        String::from_utf8_lossy(kv.key())
                    ))
                })?;
                Ok(Event::Delete { prev, revision })
            }
        }
    }

    fn check_not_compacted(&self, requested: Revision) -> Result<()> {
        let compacted = self.compacted.load(Ordering::Acquire);
        if requested < compacted {
            Err(StoreError::Compacted {
                requested,
                compacted,
            })
        } else {
            Ok(())
        }
    }

    /// Records that etcd is compacted at `etcd_revision`; returns the store's compacted revision.
    fn note_etcd_compacted(&self, etcd_revision: i64) -> Revision {
        let rev = etcd_revision + 1;
        self.compacted.fetch_max(rev, Ordering::AcqRel).max(rev)
    }

    async fn current_revision(&self) -> Result<Revision> {
        let resp = self
            .get(self.probe_key(), GetOptions::new().with_count_only())
            .await
            .map_err(Failure::into_error)?;
        Ok(store_revision(resp.header().map_or(0, |h| h.revision())))
    }

    /// The error for a failed read at `requested`.
    async fn read_error(&self, err: Failure, requested: Revision) -> StoreError {
        match err {
            Failure::Compacted => self.compacted_error(requested).await,
            Failure::Future => match self.current_revision().await {
                Ok(current) => StoreError::FutureRevision { requested, current },
                Err(err) => err,
            },
            Failure::Other(err) => err,
        }
    }

    /// The `Compacted` error for `requested`, which etcd said is compacted.
    async fn compacted_error(&self, requested: Revision) -> StoreError {
        match self.learn_compacted(requested).await {
            Ok(compacted) => StoreError::Compacted {
                requested,
                compacted,
            },
            Err(err) => err,
        }
    }

    /// Asks etcd for its compaction revision, knowing that `rev` is compacted: a watch from a
    /// compacted revision is cancelled with the compaction revision (etcd has no other API for it).
    async fn learn_compacted(&self, rev: Revision) -> Result<Revision> {
        let probe = async {
            let opts = WatchOptions::new().with_start_revision(rev.max(1));
            let member = self.preferred.load(Ordering::Acquire) % self.members.len();
            let mut stream = self.members[member]
                .watch
                .clone()
                .watch(self.probe_key(), Some(opts))
                .await
                .map_err(backend)?;
            loop {
                match stream.message().await.map_err(backend)? {
                    Some(resp) if resp.compact_revision() > 0 => {
                        return Ok(self.note_etcd_compacted(resp.compact_revision()));
                    }
                    Some(resp) if resp.canceled() => {
                        return Err(backend(format_args!(
                            "watch cancelled: {}",
                            resp.cancel_reason()
                        )));
                    }
                    Some(_) => {}
                    None => return Err(backend("watch ended without a compaction revision")),
                }
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT, probe)
            .await
            .unwrap_or_else(|_| {
                Err(backend(
                    "etcd did not report its compaction revision in time",
                ))
            })
    }

    /// Learns etcd's compaction (made before this client connected): revision 1 can only be read
    /// if etcd was never compacted.
    async fn load_compacted(&self) -> Result<()> {
        let opts = GetOptions::new().with_count_only().with_revision(1);
        match self.get(self.probe_key(), opts).await {
            Ok(_) => Ok(()),
            Err(err) => match err {
                Failure::Compacted => self.learn_compacted(1).await.map(|_| ()),
                Failure::Future => Ok(()),
                Failure::Other(err) => Err(err),
            },
        }
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision> {
        self.check_open()?;
        self.inner.current_revision().await
    }

    /// The compacted revision as far as this client knows it: its own compactions, the one etcd
    /// had when the store connected, and any etcd reported since in an error.
    async fn compacted_revision(&self) -> Result<Revision> {
        self.check_open()?;
        Ok(self.inner.compacted.load(Ordering::Acquire))
    }

    async fn get(&self, key: &str, at: Option<Revision>) -> Result<(Option<KeyValue>, Revision)> {
        let (mut resp, served) = self
            .read(self.inner.full_key(key), GetOptions::new(), at)
            .await?;
        let kv = resp
            .take_kvs()
            .into_iter()
            .next()
            .map(|kv| self.inner.kv_of(kv))
            .transpose()?;
        Ok((kv, served))
    }

    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: Option<Revision>,
    ) -> Result<RangeResult> {
        let full_prefix = self.inner.full_key(prefix);
        let end = prefix_end(&full_prefix);
        let mut start = if full_prefix.is_empty() {
            vec![0]
        } else {
            full_prefix
        };
        if let Some(after) = start_after {
            let mut after = self.inner.full_key(after);
            after.push(0);
            if after > start {
                start = after;
            }
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let opts = GetOptions::new().with_range(end).with_limit(limit);
        let (mut resp, revision) = self.read(start, opts, at).await?;
        let more = resp.more();
        let kvs = resp
            .take_kvs()
            .into_iter()
            .map(|kv| self.inner.kv_of(kv))
            .collect::<Result<Vec<_>>>()?;
        Ok(RangeResult {
            kvs,
            revision,
            more,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        self.check_open()?;
        let full = self.inner.full_key(key);
        let txn = Txn::new()
            .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(full, Vec::from(value), None)]);
        let resp = self.inner.txn(txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists(key.to_owned()));
        }
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        let full = self.inner.full_key(key);
        let txn = Txn::new()
            .when([
                Compare::version(full.clone(), CompareOp::Greater, 0),
                Compare::mod_revision(full.clone(), CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(full.clone(), Vec::from(value), None)])
            .or_else([TxnOp::get(full, None)]);
        let resp = self.guarded(key, txn, expected).await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let full = self.inner.full_key(key);
        let prev_opts = DeleteOptions::new().with_prev_key();
        let (revision, prev) = match expected {
            None => {
                self.check_open()?;
                let mut resp = self
                    .inner
                    .call(false, |mut kv| {
                        let (full, prev_opts) = (full.clone(), prev_opts.clone());
                        async move { kv.delete(full, Some(prev_opts)).await }
                    })
                    .await
                    .map_err(Failure::into_error)?;
                let revision = resp.header().map_or(0, |h| h.revision());
                (revision, resp.take_prev_kvs().into_iter().next())
            }
            Some(expected) => {
                let txn = Txn::new()
                    .when([
                        Compare::version(full.clone(), CompareOp::Greater, 0),
                        Compare::mod_revision(full.clone(), CompareOp::Equal, expected),
                    ])
                    .and_then([TxnOp::delete(full.clone(), Some(prev_opts))])
                    .or_else([TxnOp::get(full, None)]);
                let resp = self.guarded(key, txn, expected).await?;
                let revision = resp.header().map_or(0, |h| h.revision());
                let prev = resp.op_responses().into_iter().find_map(|op| match op {
                    TxnOpResponse::Delete(mut del) => del.take_prev_kvs().into_iter().next(),
                    _ => None,
                });
                (revision, prev)
            }
        };
        let Some(prev) = prev else {
            return Err(StoreError::NotFound(key.to_owned()));
        };
        Ok((revision, self.inner.kv_of(prev)?))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.check_open()?;
        let requested = after.max(0) + 1;
        self.inner.check_not_compacted(requested)?;
        let full_prefix = self.inner.full_key(prefix);
        let end = prefix_end(&full_prefix);
        let start = if full_prefix.is_empty() {
            vec![0]
        } else {
            full_prefix
        };
        // etcd only reports a compacted start revision asynchronously on the watch; a read at it
        // answers at once (a future revision is fine: the watch waits for it).
        let check = GetOptions::new().with_count_only().with_revision(requested);
        if let Err(err) = self.inner.get(self.inner.probe_key(), check).await {
            match err {
                Failure::Compacted => return Err(self.inner.compacted_error(requested).await),
                Failure::Future => {}
                Failure::Other(err) => return Err(err),
            }
        }
        let range = WatchRange { start, end };
        let first = self.inner.preferred.load(Ordering::Acquire);
        let deadline = Instant::now() + self.inner.request_timeout;
        let (stream, member) = self
            .inner
            .open_watch_anywhere(first, &range, requested, deadline, &self.cancel)
            .await?;

        let (tx, rx) = mpsc::channel(self.watch_buffer);
        let (end_tx, end_rx) = oneshot::channel();
        tokio::spawn(forward(
            Watching {
                stream,
                member,
                range,
                next: requested,
            },
            tx,
            end_tx,
            self.inner.clone(),
            self.cancel.clone(),
        ));
        let events = futures::stream::unfold((rx, Some(end_rx)), |(mut rx, end_rx)| async move {
            if let Some(event) = rx.recv().await {
                return Some((Ok(event), (rx, end_rx)));
            }
            // The forwarder is done: its last word (if any) ends the stream.
            let err = end_rx?.await.ok()?;
            Some((Err(err), (rx, None)))
        });
        Ok(Box::pin(events))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.check_open()?;
        let current = self.inner.current_revision().await?;
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        if revision <= self.inner.compacted.load(Ordering::Acquire) {
            return Ok(());
        }
        // Keep the state at `revision - 1`: it holds the previous values of the events from
        // `revision` on.
        if revision - 1 > 1 {
            let compact = self
                .inner
                .call(true, |mut kv| async move {
                    kv.compact(revision - 1, None).await
                })
                .await;
            match compact {
                Ok(_) => {}
                Err(err) => match err {
                    // Someone compacted etcd further already.
                    Failure::Compacted => {}
                    Failure::Future => {
                        return Err(StoreError::FutureRevision {
                            requested: revision,
                            current: self.inner.current_revision().await?,
                        });
                    }
                    Failure::Other(err) => return Err(err),
                },
            }
        }
        self.inner.compacted.fetch_max(revision, Ordering::AcqRel);
        Ok(())
    }
}

/// The key range of a watch: `[start, end)` in etcd.
struct WatchRange {
    start: Vec<u8>,
    end: Vec<u8>,
}

/// A watch as its task follows it.
struct Watching {
    /// The etcd watch on `member`.
    stream: etcd_client::WatchStream,
    /// The index of the member the watch is on.
    member: usize,
    range: WatchRange,
    /// The revision of the next event the watcher is to get.
    next: Revision,
}

impl Inner {
    /// Opens a watch of `range` from revision `from` on member `index`, and waits (at most
    /// `timeout`) until etcd confirms it.
    async fn open_watch(
        &self,
        index: usize,
        range: &WatchRange,
        from: Revision,
        timeout: Duration,
    ) -> Result<etcd_client::WatchStream, String> {
        let member = &self.members[index];
        let opts = WatchOptions::new()
            .with_range(range.end.clone())
            .with_start_revision(from)
            .with_prev_key();
        let open = async {
            let mut stream = member
                .watch
                .clone()
                .watch(range.start.clone(), Some(opts))
                .await
                .map_err(|e| outcome(&e).1)?;
            // etcd answers a watch request with a `created` response before anything else.
            match stream.message().await {
                Ok(Some(resp)) if resp.created() && !resp.canceled() => Ok(stream),
                Ok(Some(resp)) => Err(format!("watch not created: {}", resp.cancel_reason())),
                Ok(None) => Err("the watch stream ended".to_owned()),
                Err(e) => Err(outcome(&e).1),
            }
        };
        match tokio::time::timeout(timeout, open).await {
            Ok(opened) => opened.map_err(|e| format!("{}: {e}", member.endpoint)),
            Err(_) => Err(format!("{}: no answer within {timeout:?}", member.endpoint)),
        }
    }

    /// Opens a watch of `range` from `from` on the first member that takes it, trying them in
    /// turn from `first` until `deadline`; returns the watch and its member.
    async fn open_watch_anywhere(
        &self,
        first: usize,
        range: &WatchRange,
        from: Revision,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<(etcd_client::WatchStream, usize)> {
        let n = self.members.len();
        let mut index = first % n;
        let mut failures = 0usize;
        loop {
            if cancel.is_cancelled() {
                return Err(StoreError::Closed);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = OPEN_WATCH_TIMEOUT.min(remaining.max(Duration::from_millis(100)));
            let error = match self.open_watch(index, range, from, timeout).await {
                Ok(stream) => return Ok((stream, index)),
                Err(error) => error,
            };
            failures += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(backend(format_args!("opening a watch: {error}")));
            }
            tracing::debug!(%error, "etcd: opening a watch failed; trying the next member");
            index = (index + 1) % n;
            if failures.is_multiple_of(n) {
                tokio::select! {
                    () = cancel.cancelled() => return Err(StoreError::Closed),
                    () = tokio::time::sleep(ROUND_BACKOFF.min(remaining)) => {}
                }
            }
        }
    }
}

/// Moves the events of a watch into the watcher's bounded channel; a full channel cuts the
/// watcher off (etcd and the writers never wait for it). When the member's watch breaks, goes
/// quiet or is cancelled, the watch is opened again (on another member when there is one) from
/// the revision after the last event delivered. The reason the watch ended goes to `end`.
async fn forward(
    mut watching: Watching,
    tx: mpsc::Sender<Event>,
    end: oneshot::Sender<StoreError>,
    inner: Arc<Inner>,
    cancel: CancellationToken,
) {
    let n = inner.members.len();
    let outcome = loop {
        let reason = match follow(&inner, &mut watching, &tx, &cancel).await {
            Follow::Gone => return,
            Follow::End(err) => break err,
            Follow::Lost(reason) => reason,
        };
        let lost = watching.member;
        tracing::warn!(
            endpoint = %inner.members[lost].endpoint,
            %reason,
            next = watching.next,
            "etcd watch lost; opening it again"
        );
        let preferred = inner.preferred.load(Ordering::Acquire) % n;
        let first = if preferred == lost {
            lost + 1
        } else {
            preferred
        };
        let deadline = Instant::now() + RESUME_TIMEOUT;
        let reopened = tokio::select! {
            () = tx.closed() => return,
            reopened = inner.open_watch_anywhere(first, &watching.range, watching.next, deadline, &cancel) => reopened,
        };
        match reopened {
            Ok((stream, member)) => {
                tracing::info!(
                    endpoint = %inner.members[member].endpoint,
                    next = watching.next,
                    "etcd watch opened again"
                );
                watching.stream = stream;
                watching.member = member;
            }
            Err(err) => break err,
        }
    };
    let _ = end.send(outcome);
}

/// Follows the member's watch until it ends, breaks or goes quiet (no answer to a progress
/// request), or the watcher is gone.
async fn follow(
    inner: &Inner,
    watching: &mut Watching,
    tx: &mpsc::Sender<Event>,
    cancel: &CancellationToken,
) -> Follow {
    let mut asked = false;
    loop {
        let wait = if asked { PROGRESS_TIMEOUT } else { WATCH_QUIET };
        let message = tokio::select! {
            () = cancel.cancelled() => return Follow::End(StoreError::Closed),
            () = tx.closed() => return Follow::Gone,
            message = tokio::time::timeout(wait, watching.stream.message()) => message,
        };
        let resp = match message {
            Err(_) if asked => {
                return Follow::Lost(format!(
                    "no answer to a progress request within {PROGRESS_TIMEOUT:?}"
                ));
            }
            Err(_) => {
                // Quiet: a live member answers a progress request at once.
                if let Err(err) = watching.stream.request_progress().await {
                    return Follow::Lost(format!("requesting progress: {err}"));
                }
                asked = true;
                continue;
            }
            Ok(Ok(Some(resp))) => resp,
            Ok(Ok(None)) => return Follow::Lost("the watch stream ended".to_owned()),
            Ok(Err(err)) => return Follow::Lost(outcome(&err).1),
        };
        asked = false;
        if resp.compact_revision() > 0 {
            let compacted = inner.note_etcd_compacted(resp.compact_revision());
            return Follow::End(StoreError::Compacted {
                requested: watching.next,
                compacted,
            });
        }
        if resp.canceled() {
            return Follow::Lost(format!("watch cancelled: {}", resp.cancel_reason()));
        }
        // A watch opened again starts at `next`; older events were delivered already.
        let floor = watching.next;
        for event in resp.events() {
            let event = match inner.event_of(event) {
                Ok(event) => event,
                Err(err) => return Follow::End(err),
            };
            if event.revision() < floor {
                continue;
            }
            watching.next = event.revision() + 1;
            match tx.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Follow::End(StoreError::WatcherLagged);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Follow::Gone,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"/a\xff"), b"/b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn datastore_flags() {
        let opts = EtcdOptions::from_datastore_flags(
            "https://a:2379, https://b:2379,",
            Some("/ca.crt".into()),
            Some("/client.crt".into()),
            Some("/client.key".into()),
        )
        .expect("valid flags");
        assert_eq!(opts.endpoints, ["https://a:2379", "https://b:2379"]);
        assert_eq!(
            opts.tls,
            Some(EtcdTls {
                ca_file: Some("/ca.crt".into()),
                cert_file: Some("/client.crt".into()),
                key_file: Some("/client.key".into()),
            })
        );
        assert_eq!(opts.prefix, "");

        let plain = EtcdOptions::from_datastore_flags("http://127.0.0.1:2379", None, None, None)
            .expect("plain http");
        assert_eq!(plain.tls, None);
        let flags = |e: &str, ca: Option<&str>, cert: Option<&str>, key: Option<&str>| {
            EtcdOptions::from_datastore_flags(
                e,
                ca.map(Into::into),
                cert.map(Into::into),
                key.map(Into::into),
            )
        };
        assert_eq!(
            flags(" , ", None, None, None),
            Err(EtcdConfigError::NoEndpoint)
        );
        assert_eq!(
            flags("mysql://u@tcp(db)/k3s", None, None, None),
            Err(EtcdConfigError::NotEtcd("mysql://u@tcp(db)/k3s".to_owned()))
        );
        assert_eq!(
            flags("http://a:2379", Some("/ca"), None, None),
            Err(EtcdConfigError::TlsOverHttp("http://a:2379".to_owned()))
        );
        assert_eq!(
            flags("https://a:2379", None, Some("/c"), None),
            Err(EtcdConfigError::HalfClientCertificate)
        );
    }

    #[test]
    fn only_failures_before_etcd_acted_are_safe_to_send_again() {
        let refused = "status: Unavailable, message: \"error trying to connect: tcp connect error: \
                       Connection refused (os error 111)\"";
        assert_eq!(outcome_of(Some(14), refused), Outcome::NotApplied);
        assert_eq!(
            outcome_of(Some(14), "etcdserver: no leader"),
            Outcome::NotApplied
        );
        assert_eq!(
            outcome_of(Some(14), "etcdserver: request timed out"),
            Outcome::Unknown
        );
        assert_eq!(
            outcome_of(Some(14), "etcdserver: leader changed"),
            Outcome::Unknown
        );
        assert_eq!(
            outcome_of(None, "connection reset by peer"),
            Outcome::Unknown
        );
        assert_eq!(
            outcome_of(
                Some(11),
                "etcdserver: mvcc: required revision has been compacted"
            ),
            Outcome::Final
        );
        assert_eq!(
            outcome_of(Some(3), "etcdserver: key is not provided"),
            Outcome::Final
        );
    }

    #[test]
    fn revision_one_is_the_empty_store() {
        assert_eq!(store_revision(1), 0);
        assert_eq!(store_revision(0), 0);
        assert_eq!(store_revision(2), 2);
    }
}
