//! `ApiError`: every failure of a request, rendered as a `metav1.Status` with upstream's reasons,
//! codes and messages (`apimachinery/pkg/api/errors/errors.go`).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

/// One cause of an error (`details.causes[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// e.g. `FieldValueInvalid`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// The field path, e.g. `spec.replicas`.
    pub field: String,
}

/// A failed API request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`.
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `Status.details.{name,group,kind}`.
    pub details: Option<Box<(String, String, String)>>,
    /// `Status.details.causes`.
    pub causes: Vec<Cause>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

/// The resource an error is about: its group and plural (or kind, for Invalid).
#[derive(Debug, Clone, Copy)]
pub struct Qualified<'a> {
    /// API group ("" for core).
    pub group: &'a str,
    /// Plural resource name, e.g. `deployments`.
    pub resource: &'a str,
}

impl Qualified<'_> {
    /// `deployments.apps`, or `pods` for the core group.
    pub fn display(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            causes: Vec::new(),
            retry_after: None,
        }
    }

    fn with_details(mut self, name: &str, group: &str, kind: &str) -> ApiError {
        self.details = Some(Box::new((
            name.to_string(),
            group.to_string(),
            kind.to_string(),
        )));
        self
    }

    /// 404 `deployments.apps "web" not found`.
    pub fn not_found(q: Qualified<'_>, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", q.display()),
        )
        .with_details(name, q.group, q.resource)
    }

    /// 409 `configmaps "cfg" already exists`.
    pub fn already_exists(q: Qualified<'_>, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", q.display()),
        )
        .with_details(name, q.group, q.resource)
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(q: Qualified<'_>, name: &str) -> ApiError {
        Self::conflict_msg(
            q,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict with a custom explanation.
    pub fn conflict_msg(q: Qualified<'_>, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                q.display()
            ),
        )
        .with_details(name, q.group, q.resource)
    }

    /// 422 Invalid: `Deployment.apps "web" is invalid: [a, b]`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let msgs: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let joined = if msgs.len() == 1 {
            msgs[0].clone()
        } else {
            format!("[{}]", msgs.join(", "))
        };
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {joined}"),
        )
        .with_details(name, group, kind);
        e.causes = causes;
        e
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "Forbidden", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 404 for a path that names no resource.
    pub fn path_not_found() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str, q: Qualified<'_>) -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "{method} is not supported on resources of kind \"{}\"",
                q.display()
            ),
        )
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable(accept: &str) -> ApiError {
        ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "the server was unable to respond with a content type that the client supports ({accept})"
            ),
        )
    }

    /// 410 Expired (too old resource version).
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    /// 410 Gone.
    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Gone", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large() -> ApiError {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(supported: &[&str]) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                supported.join(", ")
            ),
        )
    }

    /// 500 InternalError; the detail is logged, the client gets a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {detail}"),
        )
    }

    /// 504 Timeout with Retry-After.
    pub fn timeout(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(504, "Timeout", message);
        e.retry_after = Some(1);
        e
    }

    /// 422 with a single message and no field (e.g. query parameter validation).
    pub fn invalid_params(kind: &str, message: &str, field: &str) -> ApiError {
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{kind} is invalid: {field}: {message}"),
        );
        e.causes = vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: message.into(),
            field: field.into(),
        }];
        e
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.details.is_some() || !self.causes.is_empty() || self.retry_after.is_some() {
            let mut d = serde_json::Map::new();
            if let Some(details) = &self.details {
                let (name, group, kind) = details.as_ref();
                if !name.is_empty() {
                    d.insert("name".into(), json!(name));
                }
                if !group.is_empty() {
                    d.insert("group".into(), json!(group));
                }
                d.insert("kind".into(), json!(kind));
            }
            if !self.causes.is_empty() {
                d.insert(
                    "causes".into(),
                    Value::Array(
                        self.causes
                            .iter()
                            .map(|c| {
                                let mut m = serde_json::Map::new();
                                m.insert("reason".into(), json!(c.reason));
                                m.insert("message".into(), json!(c.message));
                                if !c.field.is_empty() {
                                    m.insert("field".into(), json!(c.field));
                                }
                                Value::Object(m)
                            })
                            .collect(),
                    ),
                );
            }
            if let Some(s) = self.retry_after {
                d.insert("retryAfterSeconds".into(), json!(s));
            }
            status["details"] = Value::Object(d);
        }
        status
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> ApiError {
        match e {
            store::StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            store::StoreError::FutureRevision { .. } => {
                ApiError::timeout("Too large resource version")
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut resp = Response::new(axum::body::Body::from(body));
        *resp.status_mut() =
            StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shapes_match_upstream() {
        let e = ApiError::not_found(
            Qualified {
                group: "apps",
                resource: "deployments",
            },
            "web",
        );
        assert_eq!(
            e.to_status(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"deployments.apps \"web\" not found","reason":"NotFound",
                   "details":{"name":"web","group":"apps","kind":"deployments"},"code":404})
        );
        let e = ApiError::conflict(
            Qualified {
                group: "",
                resource: "configmaps",
            },
            "cfg",
        );
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on configmaps \"cfg\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let e = ApiError::invalid(
            "apps",
            "Deployment",
            "web",
            vec![
                Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: -1: must be greater than or equal to 0".into(),
                    field: "spec.replicas".into(),
                },
                Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "spec.template.spec.containers[0].image".into(),
                },
            ],
        );
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: [spec.replicas: Invalid value: -1: must be greater than or equal to 0, spec.template.spec.containers[0].image: Required value]"
        );
        assert_eq!(
            e.to_status()["details"]["causes"][1]["field"],
            "spec.template.spec.containers[0].image"
        );
    }
}
