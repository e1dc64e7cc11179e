//! GET, LIST and WATCH, served from the watch cache.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use store::Revision;
use tokio::sync::broadcast::error::RecvError;

use super::negotiate::{ResponseForm, response_form};
use super::table;
use super::{Query, Target, json_response};
use crate::ApiState;
use crate::cacher::{CacheError, CacheEvent, CachedObject, EventType};
use crate::error::ApiError;
use crate::registry::ResourceInfo;

impl From<CacheError> for ApiError {
    fn from(e: CacheError) -> ApiError {
        match e {
            CacheError::TooOld { .. } => ApiError::expired(e.to_string()),
            CacheError::TooLarge { .. } => {
                ApiError::timeout(format!("Too large resource version: {e}"))
            }
            CacheError::Store(s) => s.into(),
        }
    }
}

/// The object filter of a request: namespace plus label and field selectors.
pub struct Filter {
    namespace: Option<String>,
    name: Option<String>,
    labels: Option<printers::labels::Selector>,
    fields: Option<printers::fields::FieldSelector>,
}

impl Filter {
    /// Parses `labelSelector` and `fieldSelector` (400 on bad syntax or unsupported fields).
    pub fn from_query(t: &Target, q: &Query) -> Result<Filter, ApiError> {
        let labels = match q.get("labelSelector") {
            Some(s) => {
                let sel = printers::labels::Selector::parse(s).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?;
                (!sel.is_empty()).then_some(sel)
            }
            None => None,
        };
        let fields = match q.get("fieldSelector") {
            Some(s) => {
                let sel = printers::fields::FieldSelector::parse(s)
                    .and_then(|sel| sel.validate_for(t.r.group, t.r.resource))
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
                    .to_storage(t.r.group, t.r.resource);
                (!sel.is_empty()).then_some(sel)
            }
            None => None,
        };
        Ok(Filter {
            namespace: t.namespace.clone(),
            name: None,
            labels,
            fields,
        })
    }

    /// Whether an object passes.
    pub fn matches(&self, o: &CachedObject) -> bool {
        if let Some(ns) = &self.namespace
            && &o.namespace != ns
        {
            return false;
        }
        if let Some(n) = &self.name
            && &o.name != n
        {
            return false;
        }
        if let Some(l) = &self.labels
            && !l.matches(&o.labels)
        {
            return false;
        }
        if let Some(f) = &self.fields
            && !f.matches(|name| o.field(name).map(str::to_string))
        {
            return false;
        }
        true
    }
}

/// The selectable fields of an object, computed once when it enters the cache.
pub fn extract_fields(r: &ResourceInfo, v: &Value) -> Vec<(&'static str, String)> {
    printers::fields::supported_fields(r.group, r.resource)
        .iter()
        .filter(|f| !matches!(**f, "metadata.name" | "metadata.namespace"))
        .filter_map(|f| {
            printers::fields::field_value(r.group, r.resource, v, f).map(|val| (*f, val))
        })
        .collect()
}

/// `resourceVersion` parameter semantics for reads.
enum RvMatch {
    /// Unset: the latest, consistent.
    Latest,
    /// "0": whatever the cache has.
    Any,
    /// Not older than N.
    NotOlderThan(Revision),
    /// Exactly N.
    Exact(Revision),
}

fn parse_rv(s: &str) -> Result<Revision, ApiError> {
    s.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {s}")))
}

fn rv_match(q: &Query, list: bool) -> Result<RvMatch, ApiError> {
    let rv = q.get("resourceVersion");
    let m = q.get("resourceVersionMatch");
    match (rv, m) {
        (None, None) => Ok(RvMatch::Latest),
        (None, Some(_)) if list => Err(ApiError::invalid_params(
            "ListOptions",
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
            "resourceVersionMatch",
        )),
        (None, Some(_)) => Ok(RvMatch::Latest),
        (Some("0"), Some("Exact")) => Err(ApiError::invalid_params(
            "ListOptions",
            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            "resourceVersionMatch",
        )),
        (Some("0"), _) => Ok(RvMatch::Any),
        (Some(v), Some("Exact")) => Ok(RvMatch::Exact(parse_rv(v)?)),
        (Some(v), None | Some("NotOlderThan")) => Ok(RvMatch::NotOlderThan(parse_rv(v)?)),
        (Some(_), Some(other)) => Err(ApiError::invalid_params(
            "ListOptions",
            &format!(
                "Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\", \"\""
            ),
            "resourceVersionMatch",
        )),
    }
}

/// The JSON of one object for the client, converted to the requested version if the resource
/// is served from another kind's storage (events.k8s.io events).
pub fn object_bytes(r: &ResourceInfo, o: &CachedObject) -> Bytes {
    match crate::conversion::from_storage(r) {
        Some(conv) => {
            let v = conv(o.value());
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
        }
        None => o.raw.clone(),
    }
}

/// The object as the client sees it, parsed.
pub fn object_value(r: &ResourceInfo, o: &CachedObject) -> Value {
    let v = o.value();
    match crate::conversion::from_storage(r) {
        Some(conv) => conv(v),
        None => v,
    }
}

/// GET of one object (also `/status`).
pub async fn get(
    state: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let form = response_form(headers)?;
    match rv_match(q, false)? {
        RvMatch::Latest => {
            state.cacher.wait_fresh().await?;
        }
        RvMatch::NotOlderThan(n) | RvMatch::Exact(n) => state.cacher.wait_for(n).await?,
        RvMatch::Any => {}
    }
    let name = t.name.as_deref().unwrap_or("");
    let o = state
        .cacher
        .get(&t.r, &t.key())
        .filter(|o| crate::conversion::visible(&t.r, o))
        .ok_or_else(|| ApiError::not_found(t.r.qualified(), name))?;
    match form {
        ResponseForm::Object => Ok(json_response(
            StatusCode::OK,
            object_bytes(&t.r, &o),
            "application/json",
        )),
        ResponseForm::Metadata => Ok(super::json_value(
            StatusCode::OK,
            &partial_metadata(&object_value(&t.r, &o)),
        )),
        ResponseForm::Table => {
            let obj = object_value(&t.r, &o);
            let tbl = table::table(&t.r, &[obj], q, Some(o.rv), None, None, true);
            Ok(json_response(
                StatusCode::OK,
                serde_json::to_vec(&tbl).unwrap_or_default(),
                table::TABLE_CONTENT_TYPE,
            ))
        }
    }
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(v: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": v.get("metadata").cloned().unwrap_or(json!({})),
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: Revision,
    start: String,
}

fn encode_continue(rv: Revision, last_key: &str) -> String {
    let tok = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: last_key.to_string(),
    };
    base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(&tok).unwrap_or_default())
}

fn decode_continue(s: &str) -> Result<ContinueToken, ApiError> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)".to_string())
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(s))
        .map_err(|_| bad())?;
    let tok: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if tok.v != "meta.k8s.io/v1" || tok.rv <= 0 {
        return Err(bad());
    }
    Ok(tok)
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// LIST.
pub async fn list(
    state: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let form = response_form(headers)?;
    if q.flag("sendInitialEvents") {
        return Err(ApiError::invalid_params(
            "ListOptions",
            "sendInitialEvents is forbidden for list",
            "sendInitialEvents",
        ));
    }
    let filter = Filter::from_query(t, q)?;
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0)
        .map(|l| l as usize)
        .unwrap_or(0);
    let prefix = t.r.prefix(t.namespace.as_deref());
    let visible = |o: &CachedObject| crate::conversion::visible(&t.r, o) && filter.matches(o);

    let (items, rv, next, remaining): (Vec<Arc<CachedObject>>, Revision, Option<String>, usize) =
        if let Some(c) = q.get("continue") {
            let tok = decode_continue(c)?;
            if state.cacher.revision() == tok.rv {
                let (snap, more, remaining) =
                    state
                        .cacher
                        .list(&t.r, &prefix, Some(&tok.start), limit, &visible);
                let next = more
                    .then(|| snap.items.last().map(|o| o.key.clone()))
                    .flatten();
                (snap.items, tok.rv, next, remaining)
            } else {
                let (items, _more, next) = state
                    .cacher
                    .list_from_store(&t.r, &prefix, Some(&tok.start), limit, tok.rv, &visible)
                    .await
                    .map_err(|e| match e {
                        CacheError::Store(store::StoreError::Compacted { .. }) => {
                            ApiError::expired(CONTINUE_EXPIRED)
                        }
                        other => other.into(),
                    })?;
                (items, tok.rv, next, 0)
            }
        } else {
            match rv_match(q, true)? {
                RvMatch::Latest => {
                    state.cacher.wait_fresh().await?;
                }
                RvMatch::NotOlderThan(n) => state.cacher.wait_for(n).await?,
                RvMatch::Any => {}
                RvMatch::Exact(n) => {
                    if state.cacher.revision() != n {
                        let (items, _more, next) = state
                            .cacher
                            .list_from_store(&t.r, &prefix, None, limit, n, &visible)
                            .await?;
                        return render_list(
                            t,
                            q,
                            form,
                            items,
                            n,
                            next.map(|k| encode_continue(n, &k)),
                            None,
                        )
                        .await;
                    }
                }
            }
            let (snap, more, remaining) = state.cacher.list(&t.r, &prefix, None, limit, &visible);
            let next = more
                .then(|| snap.items.last().map(|o| o.key.clone()))
                .flatten();
            (snap.items, snap.rv, next, remaining)
        };
    let cont = next.map(|k| encode_continue(rv, &k));
    let remaining = cont.as_ref().map(|_| remaining);
    render_list(t, q, form, items, rv, cont, remaining).await
}

async fn render_list(
    t: &Target,
    q: &Query,
    form: ResponseForm,
    items: Vec<Arc<CachedObject>>,
    rv: Revision,
    cont: Option<String>,
    remaining: Option<usize>,
) -> Result<Response, ApiError> {
    let items_len = items.len();
    match form {
        ResponseForm::Object => {
            // Assembled from the cached JSON of each item, without re-serializing objects.
            let meta = list_meta(rv, cont.as_deref(), remaining);
            let head = format!(
                "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
                json!(t.r.list_kind()),
                json!(t.r.api_version()),
                meta
            );
            let total: usize = items.iter().map(|o| o.raw.len() + 1).sum();
            let mut buf = BytesMut::with_capacity(head.len() + total + 2);
            buf.put_slice(head.as_bytes());
            for (i, o) in items.iter().enumerate() {
                if i > 0 {
                    buf.put_u8(b',');
                }
                buf.put_slice(&object_bytes(&t.r, o));
            }
            buf.put_slice(b"]}");
            Ok(json_response(
                StatusCode::OK,
                buf.freeze(),
                "application/json",
            ))
        }
        ResponseForm::Metadata => {
            let list = json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": list_meta(rv, cont.as_deref(), remaining),
                "items": items.iter().map(|o| partial_metadata(&object_value(&t.r, o))).collect::<Vec<_>>(),
            });
            Ok(super::json_value(StatusCode::OK, &list))
        }
        ResponseForm::Table => {
            let r = t.r.clone();
            let q = q.clone();
            let render = move || table::list_bytes(&r, &items, &q, rv, cont.as_deref(), remaining);
            // Large tables are CPU work: keep them off the async workers.
            let body = if items_len > 100 {
                tokio::task::spawn_blocking(render)
                    .await
                    .map_err(ApiError::internal)?
            } else {
                render()
            };
            Ok(json_response(
                StatusCode::OK,
                body,
                table::TABLE_CONTENT_TYPE,
            ))
        }
    }
}

fn list_meta(rv: Revision, cont: Option<&str>, remaining: Option<usize>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("resourceVersion".into(), json!(rv.to_string()));
    if let Some(c) = cont {
        m.insert("continue".into(), json!(c));
    }
    if let Some(n) = remaining
        && n > 0
    {
        m.insert("remainingItemCount".into(), json!(n));
    }
    Value::Object(m)
}

/// WATCH (also WatchList with `sendInitialEvents=true`).
pub async fn watch(
    state: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let form = response_form(headers)?;
    let mut filter = Filter::from_query(t, q)?;
    if let Some(name) = &t.name {
        // Watch of one object (legacy form): like a metadata.name field selector.
        filter.name = Some(name.clone());
    }
    let send_initial = q.get("sendInitialEvents").map(|v| v == "true" || v == "1");
    let rv_match_param = q.get("resourceVersionMatch");
    if let Some(si) = send_initial {
        if rv_match_param != Some("NotOlderThan") {
            return Err(ApiError::invalid_params(
                "ListOptions",
                "sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan",
                "sendInitialEvents",
            ));
        }
        let _ = si;
    } else if rv_match_param.is_some() {
        return Err(ApiError::invalid_params(
            "ListOptions",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            "resourceVersionMatch",
        ));
    }
    let rv = q.get("resourceVersion");
    let bookmarks = q.flag("allowWatchBookmarks");
    let initial_end_bookmark = send_initial == Some(true);

    // Where the watch starts.
    let from: Option<Revision> = match (send_initial, rv) {
        (Some(true), None) => {
            state.cacher.wait_fresh().await?;
            None
        }
        (Some(true), Some("0")) => None,
        (Some(true), Some(v)) => {
            state.cacher.wait_for(parse_rv(v)?).await?;
            None
        }
        (_, None) => {
            state.cacher.wait_fresh().await?;
            None
        }
        (_, Some("0")) => None,
        (_, Some(v)) => {
            let n = parse_rv(v)?;
            state.cacher.wait_for(n).await?;
            Some(n)
        }
    };
    let prefix = t.r.prefix(t.namespace.as_deref());
    let r = t.r.clone();
    let visible = move |o: &CachedObject| crate::conversion::visible(&r, o);
    let w = match state
        .cacher
        .watch(&t.r, &prefix, from, &|o| visible(o) && filter.matches(o))
    {
        Ok(w) => w,
        Err(CacheError::TooOld { requested, oldest }) => {
            // Like the watch cache: 200 with one ERROR event, then close.
            let status =
                ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
                    .to_status();
            let line = format!("{}\n", json!({"type":"ERROR","object":status}));
            return Ok(json_response(StatusCode::OK, line, "application/json"));
        }
        Err(e) => return Err(e.into()),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let table_q = q.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let cancel = state.shutdown.clone();
    let r = t.r.clone();
    tokio::spawn(async move {
        let mut enc = Encoder {
            r: r.clone(),
            form,
            q: table_q,
            first_table: true,
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        for ev in &w.initial {
            if tx.send(Ok(enc.event(ev, ev.type_))).await.is_err() {
                return;
            }
        }
        if initial_end_bookmark {
            let line = enc.bookmark(w.snapshot_rv, true);
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let mut rx = w.rx;
        let mut last_rv = w.skip_until;
        let mut ticker = tokio::time::interval(Duration::from_secs(60));
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = cancel.cancelled() => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(Ok(enc.bookmark(last_rv, false))).await.is_err() { return; }
                }
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= w.skip_until { continue; }
                        last_rv = ev.rv;
                        if !visible(&ev.obj) { continue; }
                        let now = filter.matches(&ev.obj);
                        let before = ev.prev.as_ref().is_some_and(|p| filter.matches(p));
                        let ty = match (ev.type_, before, now) {
                            (EventType::Deleted, _, true) => EventType::Deleted,
                            (EventType::Deleted, _, false) => continue,
                            (_, false, true) => EventType::Added,
                            (_, true, true) => EventType::Modified,
                            (_, true, false) => EventType::Deleted,
                            (_, false, false) => continue,
                        };
                        if tx.send(Ok(enc.event(&ev, ty))).await.is_err() { return; }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::info!(resource = r.resource, skipped = n, "closing watcher that fell behind");
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let ct = if form == ResponseForm::Table {
        table::TABLE_CONTENT_TYPE
    } else {
        "application/json"
    };
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ct),
    );
    Ok(resp)
}

struct Encoder {
    r: Arc<ResourceInfo>,
    form: ResponseForm,
    q: Query,
    first_table: bool,
}

impl Encoder {
    fn event(&mut self, ev: &CacheEvent, ty: EventType) -> Bytes {
        let t = match ty {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        };
        let mut buf = BytesMut::new();
        buf.put_slice(b"{\"type\":\"");
        buf.put_slice(t.as_bytes());
        buf.put_slice(b"\",\"object\":");
        match self.form {
            ResponseForm::Object => buf.put_slice(&object_bytes(&self.r, &ev.obj)),
            ResponseForm::Metadata => buf.put_slice(
                &serde_json::to_vec(&partial_metadata(&object_value(&self.r, &ev.obj)))
                    .unwrap_or_default(),
            ),
            ResponseForm::Table => {
                let obj = object_value(&self.r, &ev.obj);
                let tbl =
                    table::table(&self.r, &[obj], &self.q, None, None, None, self.first_table);
                self.first_table = false;
                buf.put_slice(&serde_json::to_vec(&tbl).unwrap_or_default());
            }
        }
        buf.put_slice(b"}\n");
        buf.freeze()
    }

    fn bookmark(&self, rv: Revision, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.r.kind, "apiVersion": self.r.api_version(), "metadata": meta});
        Bytes::from(format!("{}\n", json!({"type":"BOOKMARK","object":obj})))
    }
}
