//! Content negotiation: decoding request bodies (JSON, YAML, protobuf) and choosing the response
//! form from `Accept` (plain JSON, Table, PartialObjectMetadata).

use http::HeaderMap;
use serde_json::Value;

use crate::error::ApiError;

/// The largest request body accepted (upstream: 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
    /// `application/vnd.kubernetes.protobuf`.
    Protobuf,
}

/// The request's `Content-Type` media type without parameters, lowercased.
pub fn media_type(headers: &HeaderMap) -> String {
    raw_media_type(headers).to_ascii_lowercase()
}

/// The media type of the Content-Type header as sent (any case), without parameters.
fn raw_media_type(headers: &HeaderMap) -> &str {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim())
        .unwrap_or_default()
}

/// The body format of a create/update request.
pub fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let media = raw_media_type(headers);
    let is = |known: &[&str]| known.iter().any(|k| media.eq_ignore_ascii_case(k));
    if is(&["", "application/json", "*/*"]) {
        Ok(BodyFormat::Json)
    } else if is(&["application/yaml", "application/x-yaml", "text/yaml"]) {
        Ok(BodyFormat::Yaml)
    } else if is(&["application/vnd.kubernetes.protobuf"]) {
        Ok(BodyFormat::Protobuf)
    } else {
        Err(ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
        ]))
    }
}

/// Decodes a body into JSON. Errors are 400 BadRequest naming what was expected.
pub fn decode(body: &[u8], format: BodyFormat, expected_kind: &str) -> Result<Value, ApiError> {
    let v = match format {
        BodyFormat::Json => codec::json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "{expected_kind} in version \"v1\" cannot be handled as a {expected_kind}: {e}"
            ))
        })?,
        BodyFormat::Yaml => yaml_to_json(body).map_err(|e| {
            ApiError::bad_request(format!(
                "{expected_kind} cannot be handled as a {expected_kind}: error converting YAML to JSON: {e}"
            ))
        })?,
        BodyFormat::Protobuf => codec::decode_protobuf(body)
            .map(|d| d.object)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "{expected_kind} cannot be handled as a {expected_kind}: {e}"
                ))
            })?,
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "{expected_kind} in version \"v1\" cannot be handled as a {expected_kind}: json: cannot unmarshal {} into Go value of type struct",
            json_type(&v)
        )));
    }
    Ok(v)
}

/// Converts a YAML document (or JSON, which is YAML) into JSON.
pub fn yaml_to_json(body: &[u8]) -> Result<Value, String> {
    // JSON is the common case and serde_json is much faster.
    if let Ok(v) = codec::json::from_slice(body) {
        return Ok(v);
    }
    let y: serde_yaml::Value = serde_yaml::from_slice(body).map_err(|e| e.to_string())?;
    serde_json::to_value(y).map_err(|e| e.to_string())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What the client wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseForm {
    /// The object(s) as JSON.
    Object,
    /// A `meta.k8s.io/v1` Table.
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// Picks the response form from `Accept`, in the client's order of preference.
pub fn response_form(headers: &HeaderMap) -> Result<ResponseForm, ApiError> {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.is_empty() {
        return Ok(ResponseForm::Object);
    }
    let mut saw_unsupported_as = false;
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let mt = params.next().unwrap_or("").to_ascii_lowercase();
        let mut as_ = None;
        let mut g = None;
        for p in params {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = Some(v.trim().to_string()),
                    "g" => g = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let json_like = matches!(
            mt.as_str(),
            "application/json"
                | "*/*"
                | "application/*"
                | "application/vnd.kubernetes.protobuf"
                | "application/yaml"
        );
        if !json_like {
            continue;
        }
        match (as_.as_deref(), g.as_deref()) {
            (None, _) => return Ok(ResponseForm::Object),
            (Some("Table"), Some("meta.k8s.io")) => return Ok(ResponseForm::Table),
            (Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                return Ok(ResponseForm::Metadata);
            }
            _ => saw_unsupported_as = true,
        }
    }
    if saw_unsupported_as {
        return Err(ApiError::not_acceptable(accept));
    }
    // Only unknown media types: answer JSON anyway, as clients decode by Content-Type.
    Ok(ResponseForm::Object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(accept: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(http::header::ACCEPT, accept.parse().unwrap());
        m
    }

    #[test]
    fn accept_table_and_metadata() {
        assert_eq!(
            response_form(&h("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")).unwrap(),
            ResponseForm::Table
        );
        assert_eq!(
            response_form(&h(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            ))
            .unwrap(),
            ResponseForm::Metadata
        );
        assert_eq!(
            response_form(&h("application/vnd.kubernetes.protobuf,application/json")).unwrap(),
            ResponseForm::Object
        );
        assert!(response_form(&h("application/json;as=Foo;g=x")).is_err());
    }

    #[test]
    fn yaml_bodies_decode() {
        let v =
            yaml_to_json(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n")
                .unwrap();
        assert_eq!(v["data"]["k"], "v");
        assert!(decode(b"{not json", BodyFormat::Json, "ConfigMap").is_err());
    }
}
