//! POST, PUT, PATCH and DELETE: the generic write pipeline (upstream
//! `registry/generic/registry/store.go` with `rest.BeforeCreate`/`BeforeUpdate`).
//!
//! Order on create: decode → typed round trip (unknown fields per `fieldValidation`) → system
//! metadata → strategy defaulting → strategy validation + ObjectMeta validation (all errors,
//! 422) → managed fields → store (unless `dryRun`). Updates read the current object from the
//! watch cache and write with compare-and-swap on its revision, retrying on conflicts when the
//! client gave no `resourceVersion` (upstream `GuaranteedUpdate`).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use codec::ordered::member;
use http::{HeaderMap, HeaderValue, StatusCode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use store::{Revision, StoreError};

use super::negotiate::{self, BodyFormat};
use super::renewal;
use super::{Query, Target, json_value};
use crate::ApiState;
use crate::error::{ApiError, Cause};
use crate::object;
use crate::registry::strategy::StrategyCtx;
use crate::registry::{ResourceInfo, Subresource};

/// `fieldValidation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop them with a warning.
    Warn,
    /// Reject.
    Strict,
}

impl FieldValidation {
    /// From the query (default Warn, like upstream when unset... upstream defaults to Warn).
    pub fn from_query(q: &Query) -> Result<FieldValidation, ApiError> {
        match q.get("fieldValidation") {
            None | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}. Supported values are: Ignore, Warn, Strict"
            ))),
        }
    }
}

/// Collected `Warning` headers.
#[derive(Debug, Default)]
pub struct Warnings(pub Vec<String>);

impl Warnings {
    fn apply(&self, resp: &mut Response) {
        for w in &self.0 {
            let text = format!("299 - {}", json!(w));
            if let Ok(v) = HeaderValue::from_str(&text) {
                resp.headers_mut().append(http::header::WARNING, v);
            }
        }
    }
}

/// Paths present in `input` but dropped by the typed round trip (unknown fields).
pub fn unknown_fields(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    let mut path = path.to_owned();
    unknown_fields_at(input, output, &mut path, out);
}

/// [`unknown_fields`] with one path buffer, grown and cut back as the walk goes: a path is
/// only copied when it names an unknown field.
fn unknown_fields_at(input: &Value, output: &Value, path: &mut String, out: &mut Vec<String>) {
    let len = path.len();
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match o.get(k) {
                    Some(ov) => unknown_fields_at(v, ov, path, out),
                    None if v.is_null() => {}
                    None => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (idx, (iv, ov)) in i.iter().zip(o.iter()).enumerate() {
                let _ = write!(path, "[{idx}]");
                unknown_fields_at(iv, ov, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Round trip through the typed form, honouring `fieldValidation`.
pub fn normalize(
    r: &ResourceInfo,
    input: Value,
    fv: FieldValidation,
    warnings: &mut Warnings,
    patch_request: bool,
) -> Result<Value, ApiError> {
    let out = (r.round_trip)(&input).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {e}",
            kind = r.kind,
            v = r.version
        ))
    })?;
    // `None`: the input is its own normal form, so it has no unknown field.
    let Some(out) = out else {
        return Ok(match crate::conversion::to_storage(r) {
            Some(conv) => conv(input),
            None => input,
        });
    };
    let mut unknown = Vec::new();
    unknown_fields(&input, &out, "", &mut unknown);
    if !unknown.is_empty() {
        match fv {
            FieldValidation::Ignore => {}
            FieldValidation::Warn => {
                for u in &unknown {
                    warnings.0.push(format!("unknown field \"{u}\""));
                }
            }
            FieldValidation::Strict => {
                let msg = unknown
                    .iter()
                    .map(|u| format!("unknown field \"{u}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                if patch_request {
                    return Err(ApiError::invalid(
                        r.group,
                        r.kind,
                        "",
                        vec![Cause {
                            reason: "FieldValueInvalid".into(),
                            message: format!(
                                "Invalid value: \"{msg}\": strict decoding error: {msg}"
                            ),
                            field: "patch".into(),
                        }],
                    ));
                }
                return Err(ApiError::bad_request(format!(
                    "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {msg}",
                    kind = r.kind,
                    v = r.version
                )));
            }
        }
    }
    Ok(match crate::conversion::to_storage(r) {
        Some(conv) => conv(out),
        None => out,
    })
}

/// [`normalize`] for a PATCH of the status subresource. When the patched object equals the
/// current one but for its status (a kubelet or controller reporting status), only the status
/// goes through the round trip: the rest is the stored object, already in normal form, and
/// [`status_merge`] keeps the stored rest anyway. Anything else takes the full round trip.
fn normalize_status_patch(
    r: &ResourceInfo,
    mut patched: Value,
    old: &Value,
    fv: FieldValidation,
    warnings: &mut Warnings,
) -> Result<Value, ApiError> {
    let status_only = crate::conversion::to_storage(r).is_none()
        && member(&patched, "status").is_some_and(Value::is_object)
        && equal_but(&patched, old, "status");
    let Some(obj) = patched.as_object_mut().filter(|_| status_only) else {
        return normalize(r, patched, fv, warnings, true);
    };
    let mut probe = serde_json::Map::with_capacity(4);
    for k in ["apiVersion", "kind"] {
        if let Some(v) = obj.get(k) {
            probe.insert(k.into(), v.clone());
        }
    }
    probe.insert("metadata".into(), Value::Object(serde_json::Map::new()));
    let status = obj.get_mut("status").map(Value::take).unwrap_or_default();
    probe.insert("status".into(), status);
    let mut out = normalize(r, Value::Object(probe), fv, warnings, true)?;
    match out.get_mut("status").map(Value::take) {
        Some(s) => {
            obj.insert("status".into(), s);
        }
        None => {
            obj.shift_remove("status");
        }
    }
    Ok(patched)
}

/// Whether two objects have the same members with equal values, but for `except`.
fn equal_but(a: &Value, b: &Value, except: &str) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return false;
    };
    let len = |m: &serde_json::Map<String, Value>| m.len() - usize::from(m.contains_key(except));
    if len(a) != len(b) {
        return false;
    }
    let mut in_b = codec::ordered::Cursor::new(b);
    a.iter()
        .filter(|(k, _)| k.as_str() != except)
        .all(|(k, va)| {
            in_b.get(k)
                .is_some_and(|vb| codec::ordered::value_eq(va, vb))
        })
}

/// [`normalize`] for the body of an update. When its metadata is that of the cached object
/// this server wrote (in normal form, then) but for the resourceVersion and without
/// managedFields (a heartbeat: the kubelet sends its Lease back with a new renewTime), only the
/// rest of the object is put through the round trip.
fn normalize_update(
    state: &ApiState,
    r: &ResourceInfo,
    key: &str,
    mut input: Value,
    fv: FieldValidation,
    warnings: &mut Warnings,
) -> Result<Value, ApiError> {
    let meta_as_stored = member(&input, "metadata")
        .is_some_and(|m| member(m, "managedFields").is_none())
        && state.cacher.get(r, key).is_some_and(|cached| {
            cached
                .parsed
                .lock()
                .as_deref()
                .is_some_and(|old| crate::meta_validation::metadata_unchanged(&input, old))
        });
    if meta_as_stored && rest_is_normal(r, &mut input) {
        return Ok(match crate::conversion::to_storage(r) {
            Some(conv) => conv(input),
            None => input,
        });
    }
    normalize(r, input, fv, warnings, false)
}

/// Whether the object but its metadata is its own normal form (the round trip of the object
/// with empty metadata changes nothing).
fn rest_is_normal(r: &ResourceInfo, input: &mut Value) -> bool {
    let Some(slot) = input.get_mut("metadata") else {
        return false;
    };
    let meta = std::mem::replace(slot, Value::Object(serde_json::Map::new()));
    let normal = r.strategy.is_normal_form(input) || matches!((r.round_trip)(input), Ok(None));
    if let Some(slot) = input.get_mut("metadata") {
        *slot = meta;
    }
    normal
}

fn invalid(r: &ResourceInfo, name: &str, errs: api::field::ErrorList) -> ApiError {
    ApiError::invalid(
        r.group,
        r.kind,
        name,
        errs.iter()
            .map(|e| Cause {
                reason: e.reason().to_string(),
                message: e.body(),
                field: e.field.clone(),
            })
            .collect(),
    )
}

/// Checks `apiVersion`/`kind` of a body against the resource (filling them in when absent).
fn check_type(r: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    let expected_av = r.api_version();
    let av = member(obj, "apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = member(obj, "kind").and_then(Value::as_str).unwrap_or("");
    if !av.is_empty() && av != expected_av {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({expected_av})"
        )));
    }
    if !kind.is_empty() && kind != r.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            r.kind
        )));
    }
    // Usually both are sent and right: nothing to write then.
    let (fill_av, fill_kind) = (av.is_empty(), kind.is_empty());
    if let Some(o) = obj.as_object_mut() {
        if fill_av {
            o.insert("apiVersion".into(), json!(expected_av));
        }
        if fill_kind {
            o.insert("kind".into(), json!(r.kind));
        }
    }
    Ok(())
}

/// Ensures the namespace of a namespaced create exists and is not terminating.
async fn check_namespace(
    state: &ApiState,
    r: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
) -> Result<(), ApiError> {
    if !r.namespaced {
        return Ok(());
    }
    let Some(ns) = ns else {
        return Err(ApiError::bad_request(
            "the namespace of the object must be set",
        ));
    };
    let Some(nsr) = state.registry.get("", "v1", "namespaces") else {
        return Ok(());
    };
    let key = nsr.key(None, ns);
    state.cacher.wait_fresh().await?;
    match state.cacher.get(nsr, &key) {
        None => Err(ApiError::not_found(nsr.qualified(), ns)),
        // Upstream's NamespaceLifecycle admission: a namespace being deleted is in phase
        // Terminating (read from the cached selectable field, without parsing the namespace).
        Some(o) if o.field("status.phase") == Some("Terminating") => {
            Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                r.qualified().display(),
                name
            )))
        }
        Some(_) => Ok(()),
    }
}

fn dry_run(q: &Query) -> Result<bool, ApiError> {
    match q.get("dryRun") {
        None => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid dryRun value: {other}. Supported values are: All"
        ))),
    }
}

pub fn field_manager(q: &Query, headers: &HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager") {
        return m.to_string();
    }
    // Upstream derives it from the user agent: the part before the first '/'.
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.split('/').next().unwrap_or("").to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The result of a successful write.
pub struct Written {
    /// The object as stored, with its resourceVersion.
    pub obj: Value,
    /// The revision of the write.
    pub rv: Revision,
    /// The bytes written to the store (`obj` without its resourceVersion), when this call wrote
    /// them: the response is made from them instead of serializing `obj` again.
    pub stored: Option<Bytes>,
}

impl Written {
    fn new(obj: Value, rv: Revision) -> Written {
        Written {
            obj,
            rv,
            stored: None,
        }
    }

    /// The response for the client of `r`: `obj` as that client sees it.
    pub fn into_response(self, r: &ResourceInfo, code: StatusCode) -> Response {
        match self.stored_response(r, code) {
            Some(resp) => resp,
            None => json_value(code, &crate::conversion::present(r, self.obj)),
        }
    }

    /// The response made from the stored bytes, when this call stored them and the client of
    /// `r` sees the storage form.
    fn stored_response(&self, r: &ResourceInfo, code: StatusCode) -> Option<Response> {
        if crate::conversion::from_storage(r).is_some() {
            return None;
        }
        let raw = object::with_resource_version(self.stored.as_deref()?, self.rv)?;
        Some(super::json_response(code, raw, "application/json"))
    }
}

/// Creates an object (already decoded and normalized). Used by POST, apply-create and internal
/// callers.
pub async fn create_object(
    state: &ApiState,
    r: &ResourceInfo,
    ns: Option<&str>,
    mut obj: Value,
    manager: Option<&str>,
    dry: bool,
) -> Result<Written, ApiError> {
    if r.namespaced {
        let body_ns = object::meta_str(&obj, "namespace").unwrap_or("");
        if let Some(ns) = ns
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let name_given = !object::name(&obj).is_empty();
    let gen_given = object::meta_str(&obj, "generateName").is_some_and(|g| !g.is_empty());
    if !name_given && !gen_given {
        return Err(invalid(
            r,
            "",
            vec![api::field::required(
                &api::field::Path::new("metadata").child("name"),
                "name or generateName is required",
            )],
        ));
    }
    check_namespace(state, r, ns, object::name(&obj)).await?;
    let strategy = r.strategy.clone();
    object::prepare_create_meta(
        &mut obj,
        if r.namespaced { ns } else { None },
        strategy.tracks_generation(),
    );
    // Upstream order: scheme defaults, field manager, admission, PrepareForCreate.
    strategy.default_fields(&mut obj);
    if let Some(m) = manager {
        crate::patching::track_create(r, &mut obj, m);
    }
    strategy.admit(&mut obj);
    strategy.prepare_for_create(&mut obj, StrategyCtx { namespace: ns });
    let reservation = allocate_cluster_ip(state, r, &mut obj)?;
    let release = |state: &ApiState| state.service_alloc.release(&reservation);
    let mut errs = strategy.validate(&obj);
    errs.extend(crate::meta_validation::validate_object_meta(r, &obj));
    if !errs.is_empty() {
        release(state);
        let name = object::name(&obj).to_string();
        return Err(invalid(r, &name, errs));
    }
    let name = object::name(&obj).to_string();
    if dry {
        release(state);
        return Ok(Written::new(obj, 0));
    }
    let result = store_create(state, r, ns, obj, name_given, &name).await;
    if let Ok(w) = &result {
        // Keep the reservation until the cache shows the Service.
        state.cacher.wait_for(w.rv).await.ok();
    }
    release(state);
    result
}

/// Services get a ClusterIP from the service range and their NodePorts (upstream: the service
/// REST storage's `beginCreate`).
fn allocate_cluster_ip(
    state: &ApiState,
    r: &ResourceInfo,
    obj: &mut Value,
) -> Result<crate::service_alloc::Reservation, ApiError> {
    if !(r.group.is_empty() && r.resource == "services") {
        return Ok(Default::default());
    }
    state.service_alloc.allocate_create(&state.cacher, r, obj)
}

/// The allocation step of a Service update (upstream `beginUpdate`), run between defaulting
/// and validation by [`prepare_update_with`]; reservations are collected in `reserved`.
fn service_update_alloc<'a>(
    state: &'a ApiState,
    r: &'a ResourceInfo,
    sub: Option<Subresource>,
    reserved: &'a mut Vec<crate::service_alloc::Reservation>,
) -> impl FnMut(&mut Value, &Value) -> Result<(), ApiError> + 'a {
    move |new, old| {
        if sub.is_none() && r.group.is_empty() && r.resource == "services" {
            let res = state
                .service_alloc
                .allocate_update(&state.cacher, r, new, old)?;
            reserved.push(res);
        }
        Ok(())
    }
}

/// Keeps Service reservations until the cache shows the write, then drops them.
async fn release_service_reservations(
    state: &ApiState,
    rv: Option<Revision>,
    reserved: Vec<crate::service_alloc::Reservation>,
) {
    if reserved.iter().all(|r| r.is_empty()) {
        return;
    }
    if let Some(rv) = rv {
        state.cacher.wait_for(rv).await.ok();
    }
    for r in &reserved {
        state.service_alloc.release(r);
    }
}

async fn store_create(
    state: &ApiState,
    r: &ResourceInfo,
    ns: Option<&str>,
    mut obj: Value,
    name_given: bool,
    name: &str,
) -> Result<Written, ApiError> {
    let strategy = r.strategy.clone();
    let mut attempts = 0;
    loop {
        let key = r.key(if r.namespaced { ns } else { None }, object::name(&obj));
        let bytes = Bytes::from(serde_json::to_vec(&obj).map_err(ApiError::internal)?);
        let stored = object::resource_version(&obj)
            .is_none()
            .then(|| bytes.clone());
        state.cacher.announce(r, &key, &bytes, &obj);
        let res = state.store.create(&key, bytes).await;
        if res.is_err() {
            state.cacher.withdraw(&key);
        }
        match res {
            Ok(rv) => {
                object::set_resource_version(&mut obj, rv);
                return Ok(Written { obj, rv, stored });
            }
            Err(StoreError::AlreadyExists(_)) if !name_given && attempts < 5 => {
                attempts += 1;
                object::meta_mut(&mut obj).remove("name");
                object::prepare_create_meta(
                    &mut obj,
                    if r.namespaced { ns } else { None },
                    strategy.tracks_generation(),
                );
            }
            Err(StoreError::AlreadyExists(_)) => {
                return Err(ApiError::already_exists(r.qualified(), name));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The body of a POST or PUT, with its `fieldValidation` and `dryRun` options.
fn decode_body(
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Value, FieldValidation, bool), ApiError> {
    let fv = FieldValidation::from_query(q)?;
    let dry = dry_run(q)?;
    let format = negotiate::body_format(headers)?;
    let mut obj = negotiate::decode(body, format, t.r.kind)?;
    check_type(&t.r, &mut obj)?;
    Ok((obj, fv, dry))
}

/// POST to a collection.
pub async fn create(
    state: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let (obj, fv, dry) = decode_body(t, q, headers, body)?;
    let mut warnings = Warnings::default();
    let obj = normalize(&t.r, obj, fv, &mut warnings, false)?;
    let manager = field_manager(q, headers);
    let w = create_object(
        state,
        &t.r,
        t.namespace.as_deref(),
        obj,
        Some(&manager),
        dry,
    )
    .await?;
    let mut resp = w.into_response(&t.r, StatusCode::CREATED);
    warnings.apply(&mut resp);
    Ok(resp)
}

/// What an update computes from the current object.
pub enum UpdateOutcome {
    /// Store this object.
    Write(Value),
    /// Nothing to do (return the current object unchanged).
    Unchanged,
}

/// Reads the current object and writes `f(current)` with compare-and-swap, retrying on
/// conflicts (upstream `GuaranteedUpdate`). `precondition`: the client's resourceVersion.
/// If the new object is being deleted and has no finalizers left, it is deleted instead.
pub async fn guaranteed_update<F>(
    state: &ApiState,
    r: &ResourceInfo,
    key: &str,
    name: &str,
    precondition: Option<Revision>,
    dry: bool,
    mut f: F,
) -> Result<Written, ApiError>
where
    F: FnMut(Option<&mut Value>) -> Result<UpdateOutcome, ApiError>,
{
    // Read-your-writes: start from a cache that has seen every acknowledged write.
    state.cacher.wait_fresh().await?;
    let mut waited_fresh = true;
    for _ in 0..16 {
        if let Some(p) = precondition {
            state.cacher.wait_for(p).await.ok();
        }
        let cur = state.cacher.get(r, key);
        // Owned, so that `f` can move parts of it into the new object (it reports whether the
        // objects differ through its outcome, and the comparison below still sees them differ).
        let mut cur_v = cur.as_ref().map(|c| c.take_value());
        if let (Some(p), Some(c)) = (precondition, &cur)
            && p != c.rv
        {
            if p > c.rv || !waited_fresh {
                state.cacher.wait_fresh().await?;
                waited_fresh = true;
                continue;
            }
            return Err(ApiError::conflict(r.qualified(), name));
        }
        if cur.is_none() && !waited_fresh {
            state.cacher.wait_fresh().await?;
            waited_fresh = true;
            continue;
        }
        let outcome = f(cur_v.as_mut())?;
        let mut new = match outcome {
            UpdateOutcome::Unchanged => {
                return cur_v
                    .map(|obj| Written::new(obj, cur.as_ref().map(|c| c.rv).unwrap_or(0)))
                    .ok_or_else(|| ApiError::not_found(r.qualified(), name));
            }
            UpdateOutcome::Write(v) => v,
        };
        let Some(cur) = cur else {
            // Create on update (allowed by the caller's closure).
            if dry {
                return Ok(Written::new(new, 0));
            }
            object::clear_resource_version(&mut new);
            let bytes = Bytes::from(serde_json::to_vec(&new).map_err(ApiError::internal)?);
            match state.store.create(key, bytes).await {
                Ok(rv) => {
                    object::set_resource_version(&mut new, rv);
                    return Ok(Written::new(new, rv));
                }
                Err(StoreError::AlreadyExists(_)) => {
                    state.cacher.wait_fresh().await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        };
        object::clear_resource_version(&mut new);
        if cur_v
            .as_ref()
            .is_some_and(|old| object::equal_ignoring_resource_version(&new, old))
        {
            let mut obj = new;
            object::set_resource_version(&mut obj, cur.rv);
            return Ok(Written::new(obj, cur.rv));
        }
        if dry {
            object::set_resource_version(&mut new, cur.rv);
            return Ok(Written::new(new, cur.rv));
        }
        let finalize = ready_to_remove(&new);
        let mut stored = None;
        let res = if finalize {
            state
                .store
                .delete(key, Some(cur.rv))
                .await
                .map(|(rv, _)| rv)
        } else {
            // About the size of the current version: written without growing the buffer.
            let mut buf = Vec::with_capacity(cur.raw.len() + cur.raw.len() / 4);
            serde_json::to_writer(&mut buf, &new).map_err(ApiError::internal)?;
            let bytes = Bytes::from(buf);
            state.cacher.announce(r, key, &bytes, &new);
            stored = Some(bytes.clone());
            let res = state.store.update(key, bytes, cur.rv).await;
            if res.is_err() {
                state.cacher.withdraw(key);
            }
            res
        };
        match res {
            Ok(rv) => {
                object::set_resource_version(&mut new, rv);
                return Ok(Written {
                    obj: new,
                    rv,
                    stored,
                });
            }
            Err(StoreError::Conflict { actual, .. }) => {
                if precondition.is_some() {
                    return Err(ApiError::conflict(r.qualified(), name));
                }
                state.cacher.wait_for(actual).await.ok();
            }
            Err(StoreError::NotFound(_)) => {
                state.cacher.wait_fresh().await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(r.qualified(), name))
}

/// An update made from the cached text of the current version instead of its parsed form:
/// `f` returns the bytes to store and the new version's selectable fields (its name,
/// namespace and labels are the current one's), or `None` when the text is not one it handles.
/// Retries on conflicts as [`guaranteed_update`] does. `Ok(None)`: nothing was written (`f`
/// declined, or the object does not exist); the caller then takes the parsed path, which
/// handles every case and error.
pub async fn update_raw<F>(
    state: &ApiState,
    r: &ResourceInfo,
    key: &str,
    mut f: F,
) -> Result<Option<Revision>, ApiError>
where
    F: FnMut(&crate::cacher::CachedObject) -> Option<(Vec<u8>, Vec<(&'static str, String)>)>,
{
    // Read-your-writes, as in `guaranteed_update`.
    state.cacher.wait_fresh().await?;
    for _ in 0..16 {
        let Some(cur) = state.cacher.get(r, key) else {
            return Ok(None);
        };
        let Some((bytes, fields)) = f(&cur) else {
            return Ok(None);
        };
        let bytes = Bytes::from(bytes);
        state.cacher.announce_unparsed(key, &bytes, &cur, fields);
        match state.store.update(key, bytes, cur.rv).await {
            Ok(rv) => return Ok(Some(rv)),
            Err(e) => {
                state.cacher.withdraw(key);
                match e {
                    StoreError::Conflict { actual, .. } => {
                        state.cacher.wait_for(actual).await.ok();
                    }
                    StoreError::NotFound(_) => return Ok(None),
                    e => return Err(e.into()),
                }
            }
        }
    }
    Ok(None)
}

/// Applies the update rules of a kind to a full new object: system metadata kept, status or
/// spec kept depending on the subresource, generation bumped on spec change, defaulting and
/// validation.
pub fn prepare_update(
    r: &ResourceInfo,
    sub: Option<Subresource>,
    new: Value,
    old: &Value,
) -> Result<Value, ApiError> {
    prepare_update_with(r, sub, new, old, &mut |_, _| Ok(()))
}

/// The object a status (or finalize) write stores: the old object with the new status, and in
/// its metadata the new managedFields (when given) and annotations. Upstream status strategies
/// reset only the spec (and some kinds' labels or owner references): annotations written with
/// the status are kept, which is how the deployment controller records revisions without a new
/// generation. A finalize write (namespaces) also takes the new spec (`spec.finalizers`).
///
/// Parts of `new` equal to the old object's are moved from `new` rather than copied from `old`
/// (a status write usually sends the rest of the object back unchanged).
fn status_merge(old: &Value, mut new: Value, finalize: bool) -> Value {
    let (Some(old_map), Some(new_map)) = (old.as_object(), new.as_object_mut()) else {
        return old.clone();
    };
    let mut new_meta = match new_map.remove("metadata") {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let mut out = serde_json::Map::with_capacity(old_map.len() + 1);
    for (k, old_v) in old_map {
        let v = match k.as_str() {
            "status" => match new_map.remove("status") {
                Some(s) => s,
                None => continue,
            },
            "spec" if finalize => new_map.remove("spec").unwrap_or_else(|| old_v.clone()),
            "metadata" => match old_v.as_object() {
                Some(old_meta) => Value::Object(status_merge_meta(old_meta, &mut new_meta)),
                None => old_v.clone(),
            },
            _ => take_if_equal(new_map, k, old_v),
        };
        out.insert(k.clone(), v);
    }
    for (k, wanted) in [("spec", finalize), ("status", true)] {
        if wanted
            && !old_map.contains_key(k)
            && let Some(v) = new_map.remove(k)
        {
            out.insert(k.into(), v);
        }
    }
    Value::Object(out)
}

/// The metadata of [`status_merge`]: the old metadata, with the new managedFields (when
/// given) and annotations.
fn status_merge_meta(
    old: &serde_json::Map<String, Value>,
    new: &mut serde_json::Map<String, Value>,
) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::with_capacity(old.len() + 1);
    for (k, old_v) in old {
        let v = match k.as_str() {
            "annotations" => match new.remove("annotations") {
                Some(a) => a,
                None => continue,
            },
            "managedFields" => new.remove("managedFields").unwrap_or_else(|| old_v.clone()),
            _ => take_if_equal(new, k, old_v),
        };
        out.insert(k.clone(), v);
    }
    for k in ["managedFields", "annotations"] {
        if let Some(v) = new.remove(k) {
            out.insert(k.into(), v);
        }
    }
    out
}

/// `map[key]` moved out when it equals `old`; otherwise a copy of `old`.
fn take_if_equal(map: &mut serde_json::Map<String, Value>, key: &str, old: &Value) -> Value {
    match map.get_mut(key) {
        Some(v) if v == old => v.take(),
        _ => old.clone(),
    }
}

/// [`prepare_update`] with an allocation step run after defaulting and before validation
/// (Service ClusterIPs and NodePorts).
pub fn prepare_update_with(
    r: &ResourceInfo,
    sub: Option<Subresource>,
    mut new: Value,
    old: &Value,
    alloc: &mut dyn FnMut(&mut Value, &Value) -> Result<(), ApiError>,
) -> Result<Value, ApiError> {
    let strategy = &r.strategy;
    object::keep_update_meta(&mut new, old);
    // Unconditional updates take the current resourceVersion (upstream
    // `AllowUnconditionalUpdate`), so the metadata validation sees one.
    if object::resource_version(&new).is_none()
        && let Some(rv) = object::resource_version(old).map(str::to_string)
    {
        object::meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
    }
    let name = object::name(old).to_string();
    if strategy.has_status_subresource() {
        match sub {
            Some(Subresource::Status | Subresource::Finalize) => {
                let merged = status_merge(old, new, sub == Some(Subresource::Finalize));
                let errs = strategy.validate_status_update(&merged, old);
                if !errs.is_empty() {
                    return Err(invalid(r, &name, errs));
                }
                return Ok(merged);
            }
            _ => match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            },
        }
    }
    strategy.prepare_for_update(&mut new, old);
    alloc(&mut new, old)?;
    if strategy.tracks_generation() {
        let gen_old = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let spec_changed = new.get("spec") != old.get("spec")
            || (r.resource == "deployments"
                && new.pointer("/metadata/annotations") != old.pointer("/metadata/annotations"))
            // EndpointSlices have no spec: upstream bumps the generation when their content
            // or labels change.
            || (r.resource == "endpointslices"
                && (["endpoints", "ports", "addressType"]
                    .iter()
                    .any(|f| new.get(*f) != old.get(*f))
                    || new.pointer("/metadata/labels") != old.pointer("/metadata/labels")));
        let g = if spec_changed { gen_old + 1 } else { gen_old };
        object::meta_mut(&mut new).insert("generation".into(), json!(g));
    }
    let meta_check =
        |n: &ObjectMeta, o: &ObjectMeta| crate::meta_validation::validate_updated_meta(r, n, o);
    let errs = strategy.validate_update(&new, old, &meta_check);
    if !errs.is_empty() {
        return Err(invalid(r, &name, errs));
    }
    Ok(new)
}

/// Whether an object marked for deletion can be removed from the store: no finalizers (nor, for
/// namespaces, `spec.finalizers`) left and no grace period pending.
pub fn ready_to_remove(obj: &Value) -> bool {
    object::is_deleting(obj)
        && object::finalizers(obj).is_empty()
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|a| {
                a.is_empty() || obj.get("kind").and_then(Value::as_str) != Some("Namespace")
            })
        && member(obj, "metadata")
            .and_then(|m| member(m, "deletionGracePeriodSeconds"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
}

/// The name and namespace an update's body gives (if any) are the URL's.
fn check_update_target(t: &Target, name: &str, obj: &Value) -> Result<(), ApiError> {
    let body_name = object::name(obj);
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if t.r.namespaced
        && let (Some(body_ns), Some(ns)) = (object::meta_str(obj, "namespace"), &t.namespace)
        && !body_ns.is_empty()
        && body_ns != ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

fn parse_precondition(rv: Option<&str>) -> Result<Option<Revision>, ApiError> {
    match rv {
        None => Ok(None),
        Some(s) => s
            .parse::<Revision>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}"))),
    }
}

/// PUT of an object or its status.
pub async fn update(
    state: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let key = t.key();
    let renewal = renewal::applies(&t.r, t.sub);
    // A Lease renewal sent as the last one was, but for its resourceVersion and renewTime, is
    // recognized from its bytes: it is not decoded (the bytes around those values passed the
    // checks below for this object already).
    let recognized = match renewal && !dry_run(q)? {
        true => state
            .cacher
            .get(&t.r, &key)
            .and_then(|cur| state.renewals.recognize(&key, body, cur.rv)),
        false => None,
    };
    let (obj, fv, dry, precondition) = match &recognized {
        Some(rec) => (None, FieldValidation::from_query(q)?, false, Some(rec.rv)),
        None => {
            let (obj, fv, dry) = decode_body(t, q, headers, body)?;
            check_update_target(t, &name, &obj)?;
            let precondition = parse_precondition(object::resource_version(&obj))?;
            (Some(obj), fv, dry, precondition)
        }
    };
    let mut warnings = Warnings::default();
    // A renewal is recognized from the body as sent: it needs no normalization.
    let renewal = renewal && !dry;
    let obj = match obj {
        Some(obj) if !renewal => Some(normalize_update(state, &t.r, &key, obj, fv, &mut warnings)?),
        obj => obj,
    };
    let manager = field_manager(q, headers);
    let r = t.r.clone();
    let sub = t.sub;
    let ns = t.namespace.clone();
    let mut created = false;
    // A PUT that creates (endpoints) needs an existing, active namespace like a POST.
    if r.strategy.allow_create_on_update() && sub.is_none() && state.cacher.get(&r, &key).is_none()
    {
        check_namespace(state, &r, ns.as_deref(), &name).await?;
    }
    let mut reserved = Vec::new();
    let mut alloc = service_update_alloc(state, &r, sub, &mut reserved);
    // The first attempt consumes the decoded body (normalized unless it may be a renewal); a
    // retry (after a conflict) decodes it again, which is cheaper than copying it for every
    // request.
    let mut first = obj;
    // The resourceVersion and renewTime of the body, when it renewed the Lease (`None` when it
    // was recognized: `recognized` has them).
    let mut renewed_with: Option<Option<(String, String)>> = None;
    let take_body = |first: &mut Option<Value>, warnings: &mut Warnings| match first.take() {
        Some(obj) if renewal => normalize_update(state, &t.r, &key, obj, fv, warnings),
        Some(obj) => Ok(obj),
        None => {
            let (obj, _, _) = decode_body(t, q, headers, body)?;
            normalize(&t.r, obj, fv, &mut Warnings::default(), false)
        }
    };
    let result = guaranteed_update(state, &r, &key, &name, precondition, dry, |cur| match cur {
        None => {
            if r.strategy.allow_create_on_update() && sub.is_none() {
                created = true;
                let mut o = take_body(&mut first, &mut warnings)?;
                object::prepare_create_meta(&mut o, ns.as_deref(), r.strategy.tracks_generation());
                r.strategy.default_fields(&mut o);
                crate::patching::track_create(&r, &mut o, &manager);
                r.strategy.admit(&mut o);
                r.strategy.prepare_for_create(
                    &mut o,
                    StrategyCtx {
                        namespace: ns.as_deref(),
                    },
                );
                let mut errs = r.strategy.validate(&o);
                errs.extend(crate::meta_validation::validate_object_meta(&r, &o));
                if !errs.is_empty() {
                    return Err(invalid(&r, &name, errs));
                }
                Ok(UpdateOutcome::Write(o))
            } else {
                Err(ApiError::not_found(r.qualified(), &name))
            }
        }
        Some(old) => {
            renewed_with = None;
            if renewal {
                let (av, now) = (r.api_version(), object::now_rfc3339());
                if let Some(rec) = &recognized {
                    let time = rec.renew_time.clone();
                    if let Some(new) = renewal::renew(old, time, &manager, av, &now) {
                        renewed_with = Some(None);
                        return Ok(UpdateOutcome::Write(new));
                    }
                } else if let Some(body) = &first
                    && let Some(new) = renewal::renewed(old, body, &manager, av, &now)
                {
                    let sent_rv = object::resource_version(body).unwrap_or_default();
                    let time = new.pointer("/spec/renewTime").and_then(Value::as_str);
                    renewed_with = Some(Some((
                        sent_rv.to_owned(),
                        time.unwrap_or_default().to_owned(),
                    )));
                    return Ok(UpdateOutcome::Write(new));
                }
            }
            let body = take_body(&mut first, &mut warnings)?;
            let mut new = prepare_update_with(&r, sub, body, old, &mut alloc)?;
            crate::patching::track_update_taking(&r, old, &mut new, &manager, sub);
            Ok(UpdateOutcome::Write(new))
        }
    })
    .await;
    drop(alloc);
    release_service_reservations(state, result.as_ref().ok().map(|w| w.rv), reserved).await;
    let w = result?;
    match (renewed_with, &recognized) {
        (Some(Some((sent_rv, renew_time))), _) => {
            state
                .renewals
                .remember(&key, w.rv, body, &sent_rv, &renew_time)
        }
        (Some(None), Some(rec)) => state.renewals.remember_recognized(&key, w.rv, body, rec),
        _ => {}
    }
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = match w.stored_response(&t.r, code) {
        Some(resp) => {
            // The next update of this object (a heartbeat, typically) starts from it.
            let stored_len = w.stored.as_ref().map_or(0, Bytes::len);
            state
                .cacher
                .remember_parsed(&t.r, &key, w.rv, stored_len, w.obj);
            resp
        }
        None => w.into_response(&t.r, code),
    };
    warnings.apply(&mut resp);
    Ok(resp)
}

/// PATCH of an object or its status: JSON patch, merge patch, strategic merge patch or
/// server-side apply.
pub async fn patch(
    state: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let fv = FieldValidation::from_query(q)?;
    let dry = dry_run(q)?;
    let ptype = crate::patching::PatchType::from_content_type(&negotiate::media_type(headers))?;
    let name = t.name.clone().unwrap_or_default();
    let patch_doc = crate::patching::parse_patch(ptype, body)?;
    let force = q.flag("force");
    let manager = match ptype {
        crate::patching::PatchType::Apply => match q.get("fieldManager") {
            Some(m) => m.to_string(),
            None => {
                return Err(ApiError::bad_request(
                    "fieldManager is required for apply requests",
                ));
            }
        },
        _ => field_manager(q, headers),
    };
    if ptype != crate::patching::PatchType::Apply && force {
        return Err(ApiError::invalid_params(
            "PatchOptions",
            "Forbidden: may not be specified for non-apply patch",
            "force",
        ));
    }
    let r = t.r.clone();
    let sub = t.sub;
    let ns = t.namespace.clone();
    let mut warnings = Warnings::default();
    let mut created = false;
    // A resourceVersion inside the patch is a precondition.
    let precondition = match &patch_doc {
        crate::patching::PatchDoc::Json(v) if ptype != crate::patching::PatchType::JsonPatch => {
            parse_precondition(object::resource_version(v))?
        }
        _ => None,
    };
    if ptype == crate::patching::PatchType::Apply
        && let crate::patching::PatchDoc::Json(v) = &patch_doc
    {
        let mut probe = v.clone();
        check_type(&r, &mut probe)?;
        let bn = object::name(v);
        if !bn.is_empty() && bn != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({bn}) does not match the name on the URL ({name})"
            )));
        }
    }
    if ptype == crate::patching::PatchType::Apply && r.namespaced {
        let cur = state.cacher.get(&r, &t.key());
        if cur.is_none() {
            check_namespace(state, &r, ns.as_deref(), &name).await?;
        }
    }
    let mut reserved = Vec::new();
    let mut update_reserved = Vec::new();
    let mut alloc = service_update_alloc(state, &r, sub, &mut update_reserved);
    let result = guaranteed_update(
        state,
        &r,
        &t.key(),
        &name,
        precondition,
        dry,
        |cur| match cur {
            None => {
                if ptype != crate::patching::PatchType::Apply || sub.is_some() {
                    return Err(ApiError::not_found(r.qualified(), &name));
                }
                let crate::patching::PatchDoc::Json(applied) = &patch_doc else {
                    return Err(ApiError::bad_request("invalid apply patch"));
                };
                let mut applied = applied.clone();
                check_type(&r, &mut applied)?;
                object::meta_mut(&mut applied).insert("name".into(), json!(name));
                let mut o = normalize(&r, applied, fv, &mut warnings, true)?;
                o = crate::patching::apply(&r, None, &o, &manager, force)?;
                object::prepare_create_meta(&mut o, ns.as_deref(), r.strategy.tracks_generation());
                r.strategy.default_fields(&mut o);
                r.strategy.admit(&mut o);
                r.strategy.prepare_for_create(
                    &mut o,
                    StrategyCtx {
                        namespace: ns.as_deref(),
                    },
                );
                reserved.push(allocate_cluster_ip(state, &r, &mut o)?);
                let mut errs = r.strategy.validate(&o);
                errs.extend(crate::meta_validation::validate_object_meta(&r, &o));
                if !errs.is_empty() {
                    return Err(invalid(&r, &name, errs));
                }
                created = true;
                Ok(UpdateOutcome::Write(o))
            }
            Some(old) => {
                // The object as this API presents it (a copy only when converted).
                let converted = crate::conversion::from_storage(&r).map(|c| c(old.clone()));
                let presented = converted.as_ref().unwrap_or(old);
                let patched = match (&patch_doc, ptype) {
                    (
                        crate::patching::PatchDoc::Json(applied),
                        crate::patching::PatchType::Apply,
                    ) => {
                        let mut applied = applied.clone();
                        check_type(&r, &mut applied)?;
                        let applied = normalize(&r, applied, fv, &mut warnings, true)?;
                        crate::patching::apply(&r, Some(presented), &applied, &manager, force)?
                    }
                    _ => crate::patching::patch(&r, presented, &patch_doc, ptype)?,
                };
                let mut patched = patched;
                check_type(&r, &mut patched)?;
                let normalized = if sub == Some(Subresource::Status) {
                    normalize_status_patch(&r, patched, old, fv, &mut warnings)?
                } else {
                    normalize(&r, patched, fv, &mut warnings, true)?
                };
                let mut new = prepare_update_with(&r, sub, normalized, old, &mut alloc)?;
                if ptype != crate::patching::PatchType::Apply {
                    crate::patching::track_update(&r, old, &mut new, &manager, sub);
                }
                Ok(UpdateOutcome::Write(new))
            }
        },
    )
    .await;
    drop(alloc);
    reserved.extend(update_reserved);
    release_service_reservations(state, result.as_ref().ok().map(|w| w.rv), reserved).await;
    let w = result?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = w.into_response(&t.r, code);
    warnings.apply(&mut resp);
    Ok(resp)
}

/// `DeleteOptions`, from the body or the query.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    /// `propagationPolicy`.
    pub propagation: Option<String>,
    /// `gracePeriodSeconds`.
    pub grace: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub rv: Option<String>,
    /// `dryRun: [All]`.
    pub dry: bool,
}

impl DeleteOptions {
    /// Parses options from a DELETE request.
    pub fn parse(q: &Query, headers: &HeaderMap, body: &Bytes) -> Result<DeleteOptions, ApiError> {
        let mut o = DeleteOptions {
            propagation: q.get("propagationPolicy").map(str::to_string),
            grace: q.get("gracePeriodSeconds").and_then(|s| s.parse().ok()),
            uid: None,
            rv: None,
            dry: dry_run(q)?,
        };
        if q.get("orphanDependents") == Some("true") && o.propagation.is_none() {
            o.propagation = Some("Orphan".into());
        }
        if !body.is_empty() {
            let format = negotiate::body_format(headers)?;
            let v = match format {
                BodyFormat::Protobuf => codec::decode_protobuf(body)
                    .map(|d| d.object)
                    .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?,
                _ => negotiate::yaml_to_json(body)
                    .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?,
            };
            if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
                o.propagation = Some(p.to_string());
            }
            if v.get("orphanDependents").and_then(Value::as_bool) == Some(true)
                && o.propagation.is_none()
            {
                o.propagation = Some("Orphan".into());
            }
            if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
                o.grace = Some(g);
            }
            if let Some(u) = v.pointer("/preconditions/uid").and_then(Value::as_str) {
                o.uid = Some(u.to_string());
            }
            if let Some(r) = v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
            {
                o.rv = Some(r.to_string());
            }
            if let Some(d) = v.get("dryRun").and_then(Value::as_array)
                && d.iter().any(|x| x == "All")
            {
                o.dry = true;
            }
        }
        if let Some(p) = &o.propagation
            && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::invalid_params(
                "DeleteOptions",
                &format!(
                    "Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
                "propagationPolicy",
            ));
        }
        Ok(o)
    }
}

/// Deletes one object following upstream's rules: finalizers and Foreground/Orphan policies
/// mark the object with a deletionTimestamp; graceful kinds get a grace period; everything
/// else is removed at once. Returns the final object and whether it is gone.
pub async fn delete_object(
    state: &ApiState,
    r: &ResourceInfo,
    key: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(Value, bool), ApiError> {
    let mut gone = false;
    let w = guaranteed_update(state, r, key, name, None, opts.dry, |cur| {
        let Some(cur) = cur else {
            return Err(ApiError::not_found(r.qualified(), name));
        };
        // Preconditions (upstream `checkPreconditions`).
        for (want, field, label) in [
            (&opts.uid, "uid", "UID"),
            (&opts.rv, "resourceVersion", "ResourceVersion"),
        ] {
            let have = object::meta_str(cur, field).unwrap_or("");
            if let Some(want) = want
                && want != have
            {
                return Err(ApiError::conflict_msg(
                    r.qualified(),
                    name,
                    &format!(
                        "Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"
                    ),
                ));
            }
        }
        let mut new = cur.clone();
        let mut fins = object::finalizers(cur);
        match opts.propagation.as_deref() {
            Some("Foreground") => {
                if !fins.iter().any(|f| f == "foregroundDeletion") {
                    fins.push("foregroundDeletion".into());
                }
                fins.retain(|f| f != "orphan");
            }
            Some("Orphan") => {
                if !fins.iter().any(|f| f == "orphan") {
                    fins.push("orphan".into());
                }
                fins.retain(|f| f != "foregroundDeletion");
            }
            _ => {}
        }
        // Namespaces always go through their finalizer ("kubernetes" in spec.finalizers).
        let ns_pending = r.resource == "namespaces"
            && cur
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
        let grace = r.strategy.graceful_delete(cur, opts.grace);
        let graceful = grace.is_some_and(|g| g > 0);
        if fins.is_empty() && !ns_pending && !graceful {
            // Delete at once: mark with an empty finalizer list and a deletionTimestamp; the
            // update path turns that into a store delete.
            gone = true;
            let m = object::meta_mut(&mut new);
            if !m.contains_key("deletionTimestamp") {
                m.insert("deletionTimestamp".into(), json!(object::now_rfc3339()));
            }
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            m.remove("finalizers");
            return Ok(UpdateOutcome::Write(new));
        }
        let m = object::meta_mut(&mut new);
        if !m.contains_key("deletionTimestamp") {
            let when = chrono::Utc::now() + chrono::Duration::seconds(grace.unwrap_or(0).max(0));
            m.insert("deletionTimestamp".into(), json!(when.format("%Y-%m-%dT%H:%M:%SZ").to_string()));
            m.insert("deletionGracePeriodSeconds".into(), json!(grace.unwrap_or(0).max(0)));
        } else if let Some(g) = grace {
            // A shorter grace period may shorten a pending graceful deletion.
            let cur_g = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
            if g < cur_g {
                m.insert("deletionGracePeriodSeconds".into(), json!(g));
            }
        }
        if fins.is_empty() {
            m.remove("finalizers");
        } else {
            m.insert("finalizers".into(), json!(fins));
        }
        if r.resource == "namespaces" {
            new["status"] = json!({"phase": "Terminating"});
        }
        // Graceful deletion whose grace reached zero with no finalizers: delete now.
        if object::finalizers(&new).is_empty()
            && !ns_pending
            && new.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64) == Some(0)
        {
            gone = true;
        }
        if new == *cur {
            return Ok(UpdateOutcome::Unchanged);
        }
        Ok(UpdateOutcome::Write(new))
    })
    .await?;
    Ok((w.obj, gone))
}

/// DELETE of one object.
pub async fn delete(
    state: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let opts = DeleteOptions::parse(q, headers, body)?;
    let name = t.name.clone().unwrap_or_default();
    let (obj, gone) = delete_object(state, &t.r, &t.key(), &name, &opts).await?;
    let obj = crate::conversion::present(&t.r, obj);
    if gone && !returns_deleted_object(&t.r) {
        let uid = object::meta_str(&obj, "uid").unwrap_or("").to_string();
        let mut details = serde_json::Map::new();
        details.insert("name".into(), json!(name));
        if !t.r.group.is_empty() {
            details.insert("group".into(), json!(t.r.group));
        }
        details.insert("kind".into(), json!(t.r.resource));
        details.insert("uid".into(), json!(uid));
        return Ok(json_value(
            StatusCode::OK,
            &json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":details}),
        ));
    }
    Ok(json_value(StatusCode::OK, &obj))
}

fn returns_deleted_object(r: &ResourceInfo) -> bool {
    r.group.is_empty() && matches!(r.resource, "pods" | "services" | "namespaces")
}

/// DELETE of a collection (with selectors).
pub async fn delete_collection(
    state: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let opts = DeleteOptions::parse(q, headers, body)?;
    let filter = super::read::Filter::from_query(t, q)?;
    state.cacher.wait_fresh().await?;
    let prefix = t.r.prefix(t.namespace.as_deref());
    let (snap, _, _) = state.cacher.list(&t.r, &prefix, None, 0, &|o| {
        crate::conversion::visible(&t.r, o) && filter.matches(o)
    });
    let mut items = Vec::new();
    for o in snap.items {
        match delete_object(state, &t.r, &o.key, &o.name, &opts).await {
            Ok((obj, _)) => items.push(crate::conversion::present(&t.r, obj)),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_value(
        StatusCode::OK,
        &json!({
            "kind": t.r.list_kind(),
            "apiVersion": t.r.api_version(),
            "metadata": {"resourceVersion": state.cacher.revision().to_string()},
            "items": items,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status merge as it was written first: a copy of the old object, then the new parts.
    fn status_merge_by_copy(old: &Value, new: &Value, finalize: bool) -> Value {
        let mut merged = old.clone();
        match new.get("status") {
            Some(s) => merged["status"] = s.clone(),
            None => {
                merged.as_object_mut().unwrap().shift_remove("status");
            }
        }
        if let Some(mf) = new.pointer("/metadata/managedFields").cloned() {
            object::meta_mut(&mut merged).insert("managedFields".into(), mf);
        }
        match new.pointer("/metadata/annotations").cloned() {
            Some(a) => {
                object::meta_mut(&mut merged).insert("annotations".into(), a);
            }
            None => {
                object::meta_mut(&mut merged).shift_remove("annotations");
            }
        }
        if finalize && let Some(spec) = new.get("spec") {
            merged["spec"] = spec.clone();
        }
        merged
    }

    #[test]
    fn status_merge_keeps_all_but_status_managed_fields_and_annotations() {
        let old = json!({"apiVersion":"v1","kind":"Pod",
            "metadata":{"name":"p","labels":{"a":"1"},"annotations":{"x":"1"},
                "managedFields":[{"manager":"m","operation":"Update"}],"resourceVersion":"5"},
            "spec":{"nodeName":"n1","containers":[{"name":"c","image":"i"}]},
            "status":{"phase":"Pending"}});
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = old.clone();
            f(&mut v);
            v
        };
        let cases = [
            // A kubelet's status write: the rest sent back unchanged.
            with(&|v| v["status"] = json!({"phase":"Running","podIP":"10.0.0.2"})),
            // A status write cannot change the spec or labels.
            with(&|v| {
                v["status"]["phase"] = json!("Running");
                v["spec"]["nodeName"] = json!("n2");
                v["metadata"]["labels"] = json!({"b":"2"});
                v["metadata"]["uid"] = json!("u");
            }),
            with(&|v| {
                v.as_object_mut().unwrap().shift_remove("status");
            }),
            with(&|v| {
                object::meta_mut(v).shift_remove("annotations");
                object::meta_mut(v).shift_remove("managedFields");
            }),
            with(&|v| {
                v["metadata"]["annotations"] = json!({"y":"2"});
                v["metadata"]["managedFields"] = json!([]);
            }),
            with(&|v| {
                v.as_object_mut().unwrap().shift_remove("metadata");
                v.as_object_mut().unwrap().shift_remove("spec");
            }),
            json!({"status":{"phase":"Failed"},"spec":{"finalizers":["kubernetes"]}}),
        ];
        for (i, new) in cases.iter().enumerate() {
            for finalize in [false, true] {
                let want = status_merge_by_copy(&old, new, finalize);
                let got = status_merge(&old, new.clone(), finalize);
                assert_eq!(got, want, "case {i}, finalize {finalize}");
                assert_eq!(
                    serde_json::to_string(&got).unwrap(),
                    serde_json::to_string(&want).unwrap(),
                    "key order, case {i}, finalize {finalize}"
                );
            }
        }
        // Old objects without a status or a spec take the new ones where the write may set them.
        let bare = json!({"metadata":{"name":"ns"}});
        let new =
            json!({"metadata":{"name":"ns"},"spec":{"finalizers":[]},"status":{"phase":"Active"}});
        assert_eq!(
            status_merge(&bare, new.clone(), true),
            json!({"metadata":{"name":"ns"},"spec":{"finalizers":[]},"status":{"phase":"Active"}})
        );
        assert_eq!(
            status_merge(&bare, new, false),
            json!({"metadata":{"name":"ns"},"status":{"phase":"Active"}})
        );
    }

    #[test]
    fn unknown_fields_are_found_with_paths() {
        let input = json!({"metadata":{"name":"a","bogus":1},"spec":{"containers":[{"name":"c","foo":true}]},"x":null});
        let output = json!({"metadata":{"name":"a"},"spec":{"containers":[{"name":"c"}]}});
        let mut out = Vec::new();
        unknown_fields(&input, &output, "", &mut out);
        assert_eq!(
            out,
            vec![
                "metadata.bogus".to_string(),
                "spec.containers[0].foo".to_string()
            ]
        );
    }
}
