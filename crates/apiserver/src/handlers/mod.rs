//! The generic REST handlers: one path parser and one set of verbs for every kind.
//!
//! `/api/v1/...` and `/apis/<group>/<version>/...` are parsed into a [`Target`]
//! (resource, namespace, name, subresource), then dispatched by method to [`read`] (get, list,
//! watch) or [`write`] (create, update, patch, delete). Per-kind behaviour comes only from the
//! registry's strategies.

pub mod negotiate;
pub mod proxy;
pub mod read;
pub mod renewal;
pub mod subresources;
pub mod table;
pub mod write;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::Value;

use crate::ApiState;
use crate::error::ApiError;
use crate::metrics::Label;
use crate::registry::{ResourceInfo, Subresource};

/// Parsed query parameters (last value wins, like Go's `url.Values.Get`).
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(q: Option<&str>) -> Query {
        let mut m = HashMap::new();
        if let Some(q) = q {
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                m.insert(k.into_owned(), v.into_owned());
            }
        }
        Query(m)
    }

    /// A parameter's value, if present and not empty.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | "True"))
    }

    /// Whether the parameter is present (even empty).
    pub fn has(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }
}

/// What a request addresses.
#[derive(Clone)]
pub struct Target {
    /// The resource.
    pub r: Arc<ResourceInfo>,
    /// The namespace from the path.
    pub namespace: Option<String>,
    /// The object name, for item requests.
    pub name: Option<String>,
    /// The subresource, if any.
    pub sub: Option<Subresource>,
}

impl Target {
    /// The storage key of the addressed object.
    pub fn key(&self) -> String {
        self.r.key(
            self.namespace.as_deref(),
            self.name.as_deref().unwrap_or(""),
        )
    }
}

/// Parses the path below `/api/v1` or `/apis/<g>/<v>`.
pub fn parse_target(
    state: &ApiState,
    group: &str,
    version: &str,
    segs: &[&str],
) -> Result<Target, ApiError> {
    let lookup = |res: &str| {
        state
            .registry
            .get(group, version, res)
            .cloned()
            .ok_or_else(ApiError::path_not_found)
    };
    let sub_of = |r: &ResourceInfo, s: &str| -> Result<Subresource, ApiError> {
        let sub = match s {
            "status" => Subresource::Status,
            "scale" => Subresource::Scale,
            "binding" => Subresource::Binding,
            "eviction" => Subresource::Eviction,
            "finalize" => Subresource::Finalize,
            _ => return Err(ApiError::path_not_found()),
        };
        if r.has(sub) {
            Ok(sub)
        } else {
            Err(ApiError::path_not_found())
        }
    };
    let t = |r: Arc<ResourceInfo>,
             ns: Option<&str>,
             name: Option<&str>,
             sub: Option<Subresource>| Target {
        r,
        namespace: ns.map(str::to_string),
        name: name.map(str::to_string),
        sub,
    };
    match segs {
        ["namespaces", ns, res, rest @ ..]
            if !(rest.is_empty() && matches!(*res, "status" | "finalize")) =>
        {
            let r = lookup(res)?;
            if !r.namespaced {
                return Err(ApiError::path_not_found());
            }
            match rest {
                [] => Ok(t(r, Some(ns), None, None)),
                [name] => Ok(t(r, Some(ns), Some(name), None)),
                [name, sub] => {
                    let s = sub_of(&r, sub)?;
                    Ok(t(r, Some(ns), Some(name), Some(s)))
                }
                _ => Err(ApiError::path_not_found()),
            }
        }
        [res] => Ok(t(lookup(res)?, None, None, None)),
        [res, name] => {
            let r = lookup(res)?;
            if r.namespaced {
                return Err(ApiError::path_not_found());
            }
            Ok(t(r, None, Some(name), None))
        }
        [res, name, sub] => {
            let r = lookup(res)?;
            if r.namespaced {
                return Err(ApiError::path_not_found());
            }
            let s = sub_of(&r, sub)?;
            Ok(t(r, None, Some(name), Some(s)))
        }
        _ => Err(ApiError::path_not_found()),
    }
}

/// Builds a JSON response.
pub fn json_response(
    code: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response {
    let mut resp = Response::new(Body::from(body.into()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}

/// Serializes a value as a JSON response.
pub fn json_value(code: StatusCode, v: &Value) -> Response {
    json_response(
        code,
        serde_json::to_vec(v).unwrap_or_default(),
        "application/json",
    )
}

/// The entry point for every `/api/v1/...` and `/apis/<g>/<v>/...` resource path.
pub async fn resource_request(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    if let Some(target) = proxy::match_path(req.uri().path()) {
        return proxy::handle(&state, target, req).await;
    }
    let method = req.method().clone();
    // A clone of the Uri shares its bytes.
    let uri = req.uri().clone();
    let path = uri.path();
    let query = Query::parse(uri.query());
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let start = std::time::Instant::now();
    let (resp, label) = match route(&state, &method, path, &query, &headers, body).await {
        Ok((r, label)) => (r, label),
        Err((e, label)) => (e.into_response(), label),
    };
    state
        .metrics
        .observe(label, resp.status().as_u16(), start.elapsed());
    resp
}

/// The method as a metrics verb.
fn static_verb(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

async fn route(
    state: &Arc<ApiState>,
    method: &Method,
    path: &str,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Response, Label), (ApiError, Label)> {
    let unknown = Label {
        verb: static_verb(method),
        resource: "",
        subresource: None,
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err((ApiError::path_not_found(), unknown)),
    };
    let decoded: Vec<Cow<'_, str>> = rest
        .iter()
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy())
        .collect();
    let refs: Vec<&str> = decoded.iter().map(|s| s.as_ref()).collect();
    let target = parse_target(state, group, version, &refs).map_err(|e| (e, unknown))?;
    let watch = query.flag("watch");
    let verb = match (method, target.name.is_some(), watch) {
        (&Method::GET, _, true) => "WATCH",
        (&Method::GET, false, false) => "LIST",
        (&Method::GET, true, false) => "GET",
        (&Method::POST, _, _) => "POST",
        (&Method::PUT, _, _) => "PUT",
        (&Method::PATCH, _, _) => "PATCH",
        (&Method::DELETE, false, _) => "DELETECOLLECTION",
        (&Method::DELETE, true, _) => "DELETE",
        _ => static_verb(method),
    };
    let label = Label {
        verb,
        resource: target.r.resource,
        subresource: target.sub.map(Subresource::name),
    };
    let err = |e: ApiError| (e, label);

    let needs_body = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let body_bytes = if needs_body {
        read_body(body).await.map_err(err)?
    } else {
        Bytes::new()
    };

    let resp = match (method, &target.name, target.sub) {
        (&Method::GET, _, None) if watch => read::watch(state, &target, query, headers).await,
        (&Method::GET, None, None) => read::list(state, &target, query, headers).await,
        (&Method::GET, Some(_), None) => read::get(state, &target, query, headers).await,
        (&Method::GET, Some(_), Some(Subresource::Status)) => {
            read::get(state, &target, query, headers).await
        }
        (&Method::GET, Some(_), Some(Subresource::Scale)) => {
            subresources::get_scale(state, &target).await
        }
        (&Method::POST, None, None) => {
            write::create(state, &target, query, headers, &body_bytes).await
        }
        (&Method::POST, Some(_), Some(Subresource::Binding)) => {
            subresources::bind(state, &target, query, headers, &body_bytes).await
        }
        (&Method::POST, Some(_), Some(Subresource::Eviction)) => {
            subresources::evict(state, &target, query, headers, &body_bytes).await
        }
        (&Method::PUT, Some(_), None | Some(Subresource::Status | Subresource::Finalize)) => {
            write::update(state, &target, query, headers, &body_bytes).await
        }
        (&Method::PUT, Some(_), Some(Subresource::Scale)) => {
            subresources::update_scale(state, &target, query, headers, &body_bytes, false).await
        }
        (&Method::PATCH, Some(_), None | Some(Subresource::Status)) => {
            write::patch(state, &target, query, headers, &body_bytes).await
        }
        (&Method::PATCH, Some(_), Some(Subresource::Scale)) => {
            subresources::update_scale(state, &target, query, headers, &body_bytes, true).await
        }
        (&Method::DELETE, Some(_), None) => {
            write::delete(state, &target, query, headers, &body_bytes).await
        }
        (&Method::DELETE, None, None) => {
            write::delete_collection(state, &target, query, headers, &body_bytes).await
        }
        _ => Err(ApiError::method_not_allowed(
            method.as_str(),
            target.r.qualified(),
        )),
    };
    resp.map(|r| (r, label)).map_err(err)
}

/// The whole request body, at most [`negotiate::MAX_BODY`] bytes (`413` beyond). A body of one
/// DATA frame (a heartbeat's, most API calls') is that frame's buffer, not copied.
pub(crate) async fn read_body(mut body: Body) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut first = Bytes::new();
    let mut more: Option<bytes::BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("error reading request body: {e}")))?;
        // Trailers carry no body.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let total = more.as_ref().map_or(first.len(), |m| m.len()) + data.len();
        if total > negotiate::MAX_BODY {
            return Err(ApiError::too_large());
        }
        match &mut more {
            Some(m) => m.extend_from_slice(&data),
            None if first.is_empty() => first = data,
            None => {
                let mut m = bytes::BytesMut::with_capacity(total);
                m.extend_from_slice(&first);
                m.extend_from_slice(&data);
                more = Some(m);
            }
        }
    }
    Ok(more.map_or(first, bytes::BytesMut::freeze))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(chunks: Vec<&'static [u8]>) -> Body {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c)));
        Body::from_stream(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn bodies_are_read_whole_from_any_number_of_frames() {
        assert_eq!(read_body(chunked(vec![])).await.unwrap(), Bytes::new());
        assert_eq!(read_body(chunked(vec![b"{}"])).await.unwrap(), "{}");
        let body = read_body(chunked(vec![b"{\"a\"", b"", b":", b"1}"])).await;
        assert_eq!(body.unwrap(), "{\"a\":1}");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413() {
        static BIG: [u8; negotiate::MAX_BODY] = [b' '; negotiate::MAX_BODY];
        let at_limit = read_body(chunked(vec![&BIG[..10], &BIG[10..]])).await;
        assert_eq!(at_limit.unwrap().len(), negotiate::MAX_BODY);
        let over = read_body(chunked(vec![&BIG[..], b"x"])).await.unwrap_err();
        assert_eq!(over.code, 413);
        let over = read_body(chunked(vec![b"x", &BIG[..]])).await.unwrap_err();
        assert_eq!(over.code, 413);
    }
}
