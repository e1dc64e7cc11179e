//! Field paths and field-level validation errors, as upstream
//! `k8s.io/apimachinery/pkg/util/validation/field`.
//!
//! An [`Error`] renders exactly like upstream's `field.Error`: [`Error::message`] is
//! `Error()` (`spec.replicas: Invalid value: -1: must be greater than or equal to 0`) and
//! [`Error::body`] is `ErrorBody()` (the same text without the field, which is what the API
//! server puts in `details.causes[].message`).

use std::fmt;

/// The path from some root to a particular field, e.g. `spec.template.spec.containers[0].name`.
///
/// Paths are cheap immutable values: [`Path::child`], [`Path::index`] and [`Path::key`] return
/// a new path and leave the receiver untouched. A path is kept rendered (one string), so
/// extending it is one allocation: validation builds many paths and renders few (only those
/// of errors).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Path {
    /// The rendered path.
    rendered: String,
    /// Whether the path has a segment (a root named `""` has one; the default path has none):
    /// a child is joined with `.` only after a segment, as upstream's `Path.String`.
    rooted: bool,
}

impl Path {
    /// A root path with one field name (upstream `field.NewPath`).
    pub fn new(name: &str) -> Self {
        Self {
            rendered: name.to_owned(),
            rooted: true,
        }
    }

    /// The path of the named child field.
    #[must_use]
    pub fn child(&self, name: &str) -> Self {
        let dot = self.rooted && !name.is_empty();
        let mut rendered = String::with_capacity(self.rendered.len() + 1 + name.len());
        rendered.push_str(&self.rendered);
        if dot {
            rendered.push('.');
        }
        rendered.push_str(name);
        Self {
            rendered,
            rooted: true,
        }
    }

    /// The path subscripted by a list index: `containers[0]`.
    #[must_use]
    pub fn index(&self, index: usize) -> Self {
        self.subscript(&index.to_string())
    }

    /// The path subscripted by a map key: `labels[app]`.
    #[must_use]
    pub fn key(&self, key: &str) -> Self {
        self.subscript(key)
    }

    fn subscript(&self, s: &str) -> Self {
        let mut rendered = String::with_capacity(self.rendered.len() + 2 + s.len());
        rendered.push_str(&self.rendered);
        rendered.push('[');
        rendered.push_str(s);
        rendered.push(']');
        Self {
            rendered,
            rooted: true,
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rendered)
    }
}

/// Why a field is invalid; matches upstream `field.ErrorType` / `metav1.CauseType` 1:1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// `FieldValueNotFound`: a requested value was not found.
    NotFound,
    /// `FieldValueRequired`: a required value was not provided.
    Required,
    /// `FieldValueDuplicate`: a value that must be unique is not.
    Duplicate,
    /// `FieldValueInvalid`: a malformed value.
    Invalid,
    /// `FieldValueNotSupported`: a value outside an enumeration.
    NotSupported,
    /// `FieldValueForbidden`: a valid value not permitted under the current conditions.
    Forbidden,
    /// `FieldValueTooLong`: a value is too long.
    TooLong,
    /// `FieldValueTooMany`: a list has too many items.
    TooMany,
    /// `InternalError`: an error not caused by user input.
    Internal,
    /// `FieldValueTypeInvalid`: the value does not match the schema type.
    TypeInvalid,
}

impl ErrorType {
    /// The machine-readable reason (upstream `CauseType`), e.g. `FieldValueRequired`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotFound => "FieldValueNotFound",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Internal => "InternalError",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The canonical human-readable text, e.g. `Required value`.
    pub fn as_text(self) -> &'static str {
        match self {
            Self::NotFound => "Not found",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        }
    }

    /// Whether upstream's `ErrorBody` prints the bad value for this type.
    fn shows_value(self) -> bool {
        !matches!(
            self,
            Self::Required | Self::Forbidden | Self::TooLong | Self::Internal
        )
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_text())
    }
}

/// A bad value, rendered the way upstream's `ErrorBody` renders it: strings quoted like Go's
/// `%q`, integers and booleans plain, anything else as compact JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadValue(pub String);

impl BadValue {
    /// Renders any serializable value as compact JSON, as Go's `json.Marshal` does (including
    /// its HTML escaping of `<`, `>` and `&`).
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        let s = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
        Self(go_json_escape(&s))
    }

    /// A value already rendered by the caller, used verbatim.
    pub fn raw(rendered: impl Into<String>) -> Self {
        Self(rendered.into())
    }
}

impl From<&str> for BadValue {
    fn from(v: &str) -> Self {
        Self(go_quote(v))
    }
}
impl From<&String> for BadValue {
    fn from(v: &String) -> Self {
        Self(go_quote(v))
    }
}
impl From<String> for BadValue {
    fn from(v: String) -> Self {
        Self(go_quote(&v))
    }
}
macro_rules! bad_value_plain {
    ($($t:ty),*) => {$(
        impl From<$t> for BadValue {
            fn from(v: $t) -> Self {
                Self(v.to_string())
            }
        }
    )*};
}
bad_value_plain!(i32, i64, u32, u64, usize, bool);

impl From<&serde_json::Value> for BadValue {
    fn from(v: &serde_json::Value) -> Self {
        Self::json(v)
    }
}

/// Quotes a string like Go's `strconv.Quote` (`%q`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let n = c as u32;
                if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Applies the escaping Go's `encoding/json` does beyond serde_json: `<`, `>`, `&`, U+2028
/// and U+2029 become `\u` escapes.
fn go_json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A field-level validation error (upstream `field.Error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Why the field is invalid.
    pub type_: ErrorType,
    /// The field path, e.g. `spec.replicas`.
    pub field: String,
    /// The offending value as rendered in the message; `None` when it is not shown.
    pub bad_value: Option<String>,
    /// Additional detail, appended after the value.
    pub detail: String,
}

impl Error {
    /// The `details.causes[].reason` of this error, e.g. `FieldValueInvalid`.
    pub fn reason(&self) -> &'static str {
        self.type_.reason()
    }

    /// The message without the field (upstream `ErrorBody()`), used as
    /// `details.causes[].message`.
    pub fn body(&self) -> String {
        let mut s = self.type_.as_text().to_owned();
        if self.type_.shows_value()
            && let Some(v) = &self.bad_value
        {
            s.push_str(": ");
            s.push_str(v);
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// The full message (upstream `Error()`): `<field>: <body>`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }

    fn new(type_: ErrorType, path: &Path, bad_value: Option<String>, detail: String) -> Self {
        Self {
            type_,
            field: path.to_string(),
            bad_value,
            detail,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Error {}

/// A list of field errors (upstream `field.ErrorList`).
pub type ErrorList = Vec<Error>;

/// "Value not found" (upstream `field.NotFound`).
pub fn not_found(path: &Path, value: impl Into<BadValue>) -> Error {
    Error::new(
        ErrorType::NotFound,
        path,
        Some(value.into().0),
        String::new(),
    )
}

/// "Required value" (upstream `field.Required`).
pub fn required(path: &Path, detail: &str) -> Error {
    Error::new(ErrorType::Required, path, None, detail.to_owned())
}

/// "Duplicate value" (upstream `field.Duplicate`).
pub fn duplicate(path: &Path, value: impl Into<BadValue>) -> Error {
    Error::new(
        ErrorType::Duplicate,
        path,
        Some(value.into().0),
        String::new(),
    )
}

/// "Invalid value" (upstream `field.Invalid`).
pub fn invalid(path: &Path, value: impl Into<BadValue>, detail: &str) -> Error {
    Error::new(
        ErrorType::Invalid,
        path,
        Some(value.into().0),
        detail.to_owned(),
    )
}

/// "Invalid value" without showing the value (upstream `field.Invalid` with `omitValue`).
pub fn invalid_omit_value(path: &Path, detail: &str) -> Error {
    Error::new(ErrorType::Invalid, path, None, detail.to_owned())
}

/// "Unsupported value" with the list of supported values (upstream `field.NotSupported`).
pub fn not_supported<S: AsRef<str>>(path: &Path, value: impl Into<BadValue>, valid: &[S]) -> Error {
    let detail = if valid.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = valid.iter().map(|v| go_quote(v.as_ref())).collect();
        format!("supported values: {}", quoted.join(", "))
    };
    Error::new(ErrorType::NotSupported, path, Some(value.into().0), detail)
}

/// "Forbidden" (upstream `field.Forbidden`).
pub fn forbidden(path: &Path, detail: &str) -> Error {
    Error::new(ErrorType::Forbidden, path, None, detail.to_owned())
}

/// "Too long" in bytes (upstream `field.TooLong`); a negative `max_length` omits the limit.
pub fn too_long(path: &Path, max_length: i64) -> Error {
    let detail = if max_length >= 0 {
        let unit = if max_length == 1 { "byte" } else { "bytes" };
        format!("may not be more than {max_length} {unit}")
    } else {
        "value is too long".to_owned()
    };
    Error::new(
        ErrorType::TooLong,
        path,
        Some("\"<value omitted>\"".to_owned()),
        detail,
    )
}

/// "Too long" in characters (upstream `field.TooLongCharacters`).
pub fn too_long_characters(path: &Path, max_length: i64) -> Error {
    let detail = if max_length >= 0 {
        let unit = if max_length == 1 {
            "character"
        } else {
            "characters"
        };
        format!("may not be more than {max_length} {unit}")
    } else {
        "value is too long".to_owned()
    };
    Error::new(
        ErrorType::TooLong,
        path,
        Some("\"<value omitted>\"".to_owned()),
        detail,
    )
}

/// "Too many" items (upstream `field.TooMany`); negative numbers are omitted.
pub fn too_many(path: &Path, actual: i64, max: i64) -> Error {
    let detail = if max >= 0 {
        let unit = if max == 1 { "item" } else { "items" };
        format!("must have at most {max} {unit}")
    } else {
        "has too many items".to_owned()
    };
    let bad = (actual >= 0).then(|| actual.to_string());
    Error::new(ErrorType::TooMany, path, bad, detail)
}

/// "Internal error" (upstream `field.InternalError`).
pub fn internal_error(path: &Path, err: &str) -> Error {
    Error::new(ErrorType::Internal, path, None, err.to_owned())
}

/// "Invalid value" for a schema type mismatch (upstream `field.TypeInvalid`).
pub fn type_invalid(path: &Path, value: impl Into<BadValue>, detail: &str) -> Error {
    Error::new(
        ErrorType::TypeInvalid,
        path,
        Some(value.into().0),
        detail.to_owned(),
    )
}

/// The aggregated message of an error list as upstream `ErrorList.ToAggregate().Error()`:
/// duplicates removed, one message alone, several as `[a, b]`. `None` for an empty list.
pub fn aggregate_message(errs: &[Error]) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        let m = e.message();
        if !seen.contains(&m) {
            seen.push(m);
        }
    }
    match seen.len() {
        0 => None,
        1 => seen.pop(),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

/// The `Status.message` of a 422 Invalid error, as upstream `errors.NewInvalid`:
/// `Deployment.apps "web" is invalid: <aggregate>`. `qualified_kind` is `Kind.group`
/// (just `Kind` for the core group).
pub fn invalid_status_message(qualified_kind: &str, name: &str, errs: &[Error]) -> String {
    match aggregate_message(errs) {
        Some(agg) => format!("{qualified_kind} {} is invalid: {agg}", go_quote(name)),
        None => format!("{qualified_kind} {} is invalid", go_quote(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rendering() {
        let p = Path::new("spec")
            .child("template")
            .child("spec")
            .child("containers")
            .index(0)
            .child("name");
        assert_eq!(p.to_string(), "spec.template.spec.containers[0].name");
        assert_eq!(
            Path::new("metadata").child("labels").key("foo").to_string(),
            "metadata.labels[foo]"
        );
        assert_eq!(
            Path::new("data").key("a").key("b").child("c").to_string(),
            "data[a][b].c"
        );
        // Upstream joins with "." only after a segment and never before an empty name.
        assert_eq!(Path::new("").child("a").to_string(), ".a");
        assert_eq!(Path::default().child("a").key("k").to_string(), "a[k]");
        assert_eq!(Path::default().key("k").to_string(), "[k]");
        assert_eq!(Path::new("a").child("").child("b").to_string(), "a.b");
    }

    #[test]
    fn messages_match_upstream() {
        let p = Path::new("spec").child("replicas");
        let cases: Vec<(Error, &str, &str)> = vec![
            (
                invalid(&p, -1i64, "must be greater than or equal to 0"),
                "FieldValueInvalid",
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                required(
                    &Path::new("metadata").child("name"),
                    "name or generateName is required",
                ),
                "FieldValueRequired",
                "metadata.name: Required value: name or generateName is required",
            ),
            (
                required(&p, ""),
                "FieldValueRequired",
                "spec.replicas: Required value",
            ),
            (
                invalid(&p, "a\"b\n", "bad"),
                "FieldValueInvalid",
                "spec.replicas: Invalid value: \"a\\\"b\\n\": bad",
            ),
            (
                not_supported(&p, "Foo", &["Always", "Never"]),
                "FieldValueNotSupported",
                "spec.replicas: Unsupported value: \"Foo\": supported values: \"Always\", \"Never\"",
            ),
            (
                duplicate(&p, "x"),
                "FieldValueDuplicate",
                "spec.replicas: Duplicate value: \"x\"",
            ),
            (
                forbidden(&p, "not allowed on this type"),
                "FieldValueForbidden",
                "spec.replicas: Forbidden: not allowed on this type",
            ),
            (
                too_long(&p, 262144),
                "FieldValueTooLong",
                "spec.replicas: Too long: may not be more than 262144 bytes",
            ),
            (
                too_many(&p, 3, 1),
                "FieldValueTooMany",
                "spec.replicas: Too many: 3: must have at most 1 item",
            ),
            (
                invalid(
                    &p,
                    BadValue::json(&std::collections::BTreeMap::from([("a", "<b>")])),
                    "x",
                ),
                "FieldValueInvalid",
                "spec.replicas: Invalid value: {\"a\":\"\\u003cb\\u003e\"}: x",
            ),
            (
                not_found(&p, "n"),
                "FieldValueNotFound",
                "spec.replicas: Not found: \"n\"",
            ),
            (
                internal_error(&p, "boom"),
                "InternalError",
                "spec.replicas: Internal error: boom",
            ),
        ];
        for (err, reason, msg) in cases {
            assert_eq!(err.reason(), reason);
            assert_eq!(err.message(), msg);
            assert_eq!(err.to_string(), msg);
        }
    }

    #[test]
    fn body_omits_field() {
        let e = invalid(&Path::new("spec").child("replicas"), -1i32, "must be x");
        assert_eq!(e.body(), "Invalid value: -1: must be x");
    }

    #[test]
    fn aggregate() {
        let p = Path::new("a");
        let e1 = required(&p, "");
        let e2 = forbidden(&p, "no");
        assert_eq!(aggregate_message(&[]), None);
        assert_eq!(
            aggregate_message(std::slice::from_ref(&e1)).as_deref(),
            Some("a: Required value")
        );
        assert_eq!(
            aggregate_message(&[e1.clone(), e2, e1.clone()]).as_deref(),
            Some("[a: Required value, a: Forbidden: no]")
        );
        assert_eq!(
            invalid_status_message("Deployment.apps", "web", &[e1]),
            "Deployment.apps \"web\" is invalid: a: Required value"
        );
    }

    #[test]
    fn quote_control_chars() {
        assert_eq!(go_quote("a\u{1}b\u{7f}"), "\"a\\x01b\\x7f\"");
        assert_eq!(go_quote("héllo"), "\"héllo\"");
    }
}
