//! Field selectors: port of `k8s.io/apimachinery/pkg/fields` (`selector.go`), of the
//! per-kind field label conversion functions (`pkg/apis/*/v1/conversion.go`,
//! `runtime.DefaultMetaV1FieldSelectorConversion`) and of the selectable field sets
//! (`pkg/registry/*/strategy.go`, `*ToSelectableFields`).
//!
//! Typical use by the API server: [`FieldSelector::parse`] the `fieldSelector` query
//! parameter, [`FieldSelector::validate_for`] the resource (400 `BadRequest` with the error
//! text on failure), then [`FieldSelector::matches_object`] for every object.

use std::fmt;

use serde_json::Value;

use crate::error::SelectorError;

/// The operator of a field requirement. Upstream treats `=` and `==` alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `=` or `==`
    Equals,
    /// `!=`
    NotEquals,
}

/// One term of a field selector (`fields.Requirement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field label, e.g. `spec.nodeName`.
    pub field: String,
    /// The operator.
    pub operator: FieldOperator,
    /// The unescaped value.
    pub value: String,
}

impl FieldRequirement {
    fn matches_value(&self, v: &str) -> bool {
        match self.operator {
            FieldOperator::Equals => v == self.value,
            FieldOperator::NotEquals => v != self.value,
        }
    }
}

/// A field selector: the AND of its terms. The empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldRequirement>,
}

/// `fields.EscapeValue`: escapes `\`, `,` and `=` with a backslash.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `fields.UnescapeValue`.
pub fn unescape_value(s: &str) -> Result<String, SelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => return Err(SelectorError::InvalidEscapeSequence(format!("\\{c}"))),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(SelectorError::UnescapedCharacter(c)),
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError::InvalidEscapeSequence("\\".to_string()));
    }
    Ok(out)
}

/// `splitTerms`: splits on unescaped commas, keeping escapes.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// `splitTerm`: the first `!=`, `==` or `=` splits the term (no escaping in the label).
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if rest.starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

impl FieldSelector {
    /// `fields.ParseSelector`.
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(SelectorError::InvalidFieldTerm {
                    selector: s.to_string(),
                    term: part.to_string(),
                });
            };
            let value = unescape_value(rhs)?;
            let operator = if op == "!=" {
                FieldOperator::NotEquals
            } else {
                FieldOperator::Equals
            };
            terms.push(FieldRequirement {
                field: lhs.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// `fields.OneTermEqualSelector`.
    pub fn one_term_equal(field: &str, value: &str) -> Self {
        FieldSelector {
            terms: vec![FieldRequirement {
                field: field.to_string(),
                operator: FieldOperator::Equals,
                value: value.to_string(),
            }],
        }
    }

    /// The terms (`Requirements()`), sorted as parsed.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.terms
    }

    /// `Empty()`: true when the selector does not restrict anything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// `RequiresExactMatch`: the value required for `field` by an `=` term.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.operator == FieldOperator::Equals)
            .map(|t| t.value.as_str())
    }

    /// Whether every term matches; `get` returns the value of a field, `None` counting as
    /// the empty string (upstream `fields.Set.Get`).
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.terms
            .iter()
            .all(|t| t.matches_value(get(&t.field).as_deref().unwrap_or("")))
    }

    /// Converts the field labels with the resource's field label conversion function
    /// (`Transform(fn)` in the API server's list/watch handler): aliases are resolved
    /// (`spec.host` → `spec.nodeName` for pods) and an unsupported label is an error with
    /// upstream's message.
    pub fn validate_for(
        &self,
        group: &str,
        resource: &str,
    ) -> Result<FieldSelector, SelectorError> {
        let terms = self
            .terms
            .iter()
            .map(|t| {
                Ok(FieldRequirement {
                    field: convert_field_label(group, resource, &t.field)?.to_string(),
                    operator: t.operator,
                    value: t.value.clone(),
                })
            })
            .collect::<Result<Vec<_>, SelectorError>>()?;
        Ok(FieldSelector { terms })
    }

    /// The selector in the field names of the stored form, for kinds stored as another
    /// group's kind: events.k8s.io Events are stored as core Events, so `regarding.*` becomes
    /// `involvedObject.*` and `reportingController` `reportingComponent` (upstream converts
    /// the labels to the internal Event's names the same way). Other kinds are unchanged.
    pub fn to_storage(mut self, group: &str, resource: &str) -> FieldSelector {
        if (group, resource) == ("events.k8s.io", "events") {
            for t in &mut self.terms {
                if let Some(sub) = t.field.strip_prefix("regarding.") {
                    t.field = format!("involvedObject.{sub}");
                } else if t.field == "reportingController" {
                    t.field = "reportingComponent".into();
                }
            }
        }
        self
    }

    /// Whether `obj` (a JSON object of `resource` in `group`) matches, with the values of
    /// [`field_value`]. Call [`FieldSelector::validate_for`] first: unsupported labels
    /// read as the empty string here.
    pub fn matches_object(&self, group: &str, resource: &str, obj: &Value) -> bool {
        self.matches(|f| field_value(group, resource, obj, f))
    }
}

impl fmt::Display for FieldSelector {
    /// `Selector.String()`: `field=value` / `field!=value` joined by `,`, values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match t.operator {
                FieldOperator::Equals => "=",
                FieldOperator::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", t.field, escape_value(&t.value))?;
        }
        Ok(())
    }
}

// ---- per-kind support ----

/// How a kind's field label conversion function rejects unknown labels.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rejection {
    /// A kind-specific conversion function: `field label not supported: x`.
    NotSupported,
    /// `runtime.DefaultMetaV1FieldSelectorConversion`.
    DefaultMeta,
}

const META_ONLY: &[&str] = &["metadata.name", "metadata.namespace"];

const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];

const NODE_FIELDS: &[&str] = &["metadata.name", "spec.unschedulable"];

const RC_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.replicas"];

const CORE_EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];

const NAMESPACE_FIELDS: &[&str] = &["status.phase", "metadata.name"];

const SECRET_FIELDS: &[&str] = &["type", "metadata.namespace", "metadata.name"];

const SERVICE_FIELDS: &[&str] = &[
    "metadata.namespace",
    "metadata.name",
    "spec.clusterIP",
    "spec.type",
];

const EVENTS_V1_FIELDS: &[&str] = &[
    "reason",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reportingController",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];

const JOB_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.successful"];

const CSR_FIELDS: &[&str] = &["metadata.name", "spec.signerName"];

fn kind_fields(group: &str, resource: &str) -> (&'static [&'static str], Rejection) {
    match (group, resource) {
        ("", "pods") => (POD_FIELDS, Rejection::NotSupported),
        ("", "nodes") => (NODE_FIELDS, Rejection::NotSupported),
        ("", "replicationcontrollers") => (RC_FIELDS, Rejection::NotSupported),
        ("", "events") => (CORE_EVENT_FIELDS, Rejection::NotSupported),
        ("", "namespaces") => (NAMESPACE_FIELDS, Rejection::NotSupported),
        ("", "secrets") => (SECRET_FIELDS, Rejection::NotSupported),
        ("", "services") => (SERVICE_FIELDS, Rejection::NotSupported),
        ("events.k8s.io", "events") => (EVENTS_V1_FIELDS, Rejection::NotSupported),
        ("batch", "jobs") => (JOB_FIELDS, Rejection::NotSupported),
        ("certificates.k8s.io", "certificatesigningrequests") => {
            (CSR_FIELDS, Rejection::NotSupported)
        }
        _ => (META_ONLY, Rejection::DefaultMeta),
    }
}

/// The field labels a `fieldSelector` may use for `resource` in `group` (what the kind's
/// field label conversion function accepts; every other kind accepts only `metadata.name`
/// and `metadata.namespace`).
pub fn supported_fields(group: &str, resource: &str) -> &'static [&'static str] {
    kind_fields(group, resource).0
}

/// The kind's field label conversion function: the canonical label for `label`, or
/// upstream's error for an unsupported label.
pub fn convert_field_label(
    group: &str,
    resource: &str,
    label: &str,
) -> Result<&'static str, SelectorError> {
    let (fields, rejection) = kind_fields(group, resource);
    if let Some(f) = fields.iter().find(|f| **f == label) {
        return Ok(f);
    }
    if (group, resource, label) == ("", "pods", "spec.host") {
        // Backwards compatibility with old v1 clients.
        return Ok("spec.nodeName");
    }
    Err(match rejection {
        Rejection::NotSupported => SelectorError::FieldLabelNotSupported(label.to_string()),
        Rejection::DefaultMeta => SelectorError::UnknownFieldSelector(label.to_string()),
    })
}

/// Reads a string at a JSON path (`None` if absent or not a string).
fn text<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(obj, |v, k| v.get(k))
        .and_then(Value::as_str)
}

/// Reads a string at a JSON path, absent = empty.
fn text_or_empty(obj: &Value, path: &[&str]) -> String {
    text(obj, path).unwrap_or_default().to_string()
}

/// Reads an integer at a JSON path as Go's `strconv.Itoa` would print it, absent = `0`.
fn int_string(obj: &Value, path: &[&str]) -> String {
    path.iter()
        .try_fold(obj, |v, k| v.get(k))
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .to_string()
}

/// Reads a boolean at a JSON path as `strconv.FormatBool`, absent = `false`.
fn bool_string(obj: &Value, path: &[&str]) -> String {
    path.iter()
        .try_fold(obj, |v, k| v.get(k))
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string()
}

/// The JSON paths besides `metadata` that [`field_value`] reads for `resource` in `group`: a
/// copy of an object holding only these (and its metadata) gives every field the same value.
/// Keep in step with the readers below.
pub fn field_paths(group: &str, resource: &str) -> &'static [&'static [&'static str]] {
    match (group, resource) {
        ("", "pods") => &[
            &["spec", "nodeName"],
            &["spec", "restartPolicy"],
            &["spec", "schedulerName"],
            &["spec", "serviceAccountName"],
            &["spec", "hostNetwork"],
            &["status", "phase"],
            &["status", "nominatedNodeName"],
            &["status", "podIP"],
            &["status", "podIPs"],
        ],
        ("", "nodes") => &[&["spec", "unschedulable"]],
        ("", "replicationcontrollers") => &[&["status", "replicas"]],
        ("", "events") => &[
            &["involvedObject"],
            &["reason"],
            &["type"],
            &["reportingComponent"],
            &["source"],
        ],
        ("events.k8s.io", "events") => &[
            &["regarding"],
            &["reason"],
            &["type"],
            &["reportingController"],
            &["deprecatedSource"],
        ],
        ("", "namespaces") => &[&["status", "phase"]],
        ("", "secrets") => &[&["type"]],
        ("", "services") => &[&["spec", "clusterIP"], &["spec", "type"]],
        ("batch", "jobs") => &[&["status", "succeeded"]],
        ("certificates.k8s.io", _) => &[&["spec", "signerName"]],
        _ => &[],
    }
}

/// The value of field `field` of `obj` (JSON of `resource` in `group`) in the kind's
/// selectable field set (`*ToSelectableFields`); `None` for a field the kind does not
/// support. Supported fields that upstream does not put in the set (`status.podIPs`) read as
/// the empty string, as upstream's `fields.Set.Get` does.
pub fn field_value(group: &str, resource: &str, obj: &Value, field: &str) -> Option<String> {
    let field = convert_field_label(group, resource, field).ok()?;
    let value = match field {
        "metadata.name" => text_or_empty(obj, &["metadata", "name"]),
        "metadata.namespace" => text_or_empty(obj, &["metadata", "namespace"]),
        _ => match (group, resource) {
            ("", "pods") => pod_field(obj, field),
            ("", "nodes") => bool_string(obj, &["spec", "unschedulable"]),
            ("", "replicationcontrollers") => int_string(obj, &["status", "replicas"]),
            ("", "events") => core_event_field(obj, field),
            ("events.k8s.io", "events") => events_v1_field(obj, field),
            ("", "namespaces") => text_or_empty(obj, &["status", "phase"]),
            ("", "secrets") => text_or_empty(obj, &["type"]),
            ("", "services") => match field {
                "spec.clusterIP" => text_or_empty(obj, &["spec", "clusterIP"]),
                _ => text_or_empty(obj, &["spec", "type"]),
            },
            ("batch", "jobs") => int_string(obj, &["status", "succeeded"]),
            ("certificates.k8s.io", _) => text_or_empty(obj, &["spec", "signerName"]),
            _ => String::new(),
        },
    };
    Some(value)
}

fn pod_field(obj: &Value, field: &str) -> String {
    match field {
        "spec.nodeName" => text_or_empty(obj, &["spec", "nodeName"]),
        "spec.restartPolicy" => text_or_empty(obj, &["spec", "restartPolicy"]),
        "spec.schedulerName" => text_or_empty(obj, &["spec", "schedulerName"]),
        "spec.serviceAccountName" => text_or_empty(obj, &["spec", "serviceAccountName"]),
        "spec.hostNetwork" => bool_string(obj, &["spec", "hostNetwork"]),
        "status.phase" => text_or_empty(obj, &["status", "phase"]),
        "status.nominatedNodeName" => text_or_empty(obj, &["status", "nominatedNodeName"]),
        "status.podIP" => {
            // The internal PodIPs[0]: v1 podIP wins over podIPs when set.
            match text(obj, &["status", "podIP"]) {
                Some(ip) if !ip.is_empty() => ip.to_string(),
                _ => obj
                    .get("status")
                    .and_then(|s| s.get("podIPs"))
                    .and_then(|ips| ips.get(0))
                    .and_then(|ip| ip.get("ip"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            }
        }
        // Accepted by the conversion function but not in the selectable set.
        _ => String::new(),
    }
}

fn core_event_field(obj: &Value, field: &str) -> String {
    if let Some(sub) = field.strip_prefix("involvedObject.") {
        return text_or_empty(obj, &["involvedObject", sub]);
    }
    match field {
        "reason" => text_or_empty(obj, &["reason"]),
        "type" => text_or_empty(obj, &["type"]),
        "reportingComponent" => text_or_empty(obj, &["reportingComponent"]),
        "source" => match text(obj, &["source", "component"]) {
            Some(c) if !c.is_empty() => c.to_string(),
            _ => text_or_empty(obj, &["reportingComponent"]),
        },
        _ => String::new(),
    }
}

fn events_v1_field(obj: &Value, field: &str) -> String {
    if let Some(sub) = field.strip_prefix("regarding.") {
        return text_or_empty(obj, &["regarding", sub]);
    }
    match field {
        "reason" => text_or_empty(obj, &["reason"]),
        "type" => text_or_empty(obj, &["type"]),
        "reportingController" => text_or_empty(obj, &["reportingController"]),
        "source" => match text(obj, &["deprecatedSource", "component"]) {
            Some(c) if !c.is_empty() => c.to_string(),
            _ => text_or_empty(obj, &["reportingController"]),
        },
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // From upstream fields/selector_test.go (TestSelectorParse, TestSelectorMatches,
    // TestEscapeValue, TestUnescapeValue, TestSplitTerms, TestSplitTerm).
    #[test]
    fn parses_and_prints_like_upstream() {
        let cases = [
            ("", ""),
            ("a=b", "a=b"),
            ("a==b", "a=b"),
            ("a!=b", "a!=b"),
            ("b=c,a=d", "a=d,b=c"),
            ("a=b,,c=d", "a=b,c=d"),
            ("x=a\\,b", "x=a\\,b"),
            ("x=a\\=b", "x=a\\=b"),
            ("x=a\\\\b", "x=a\\\\b"),
            ("x=", "x="),
            ("x==", "x="),
            ("x!=", "x!="),
            ("=", "="),
            (
                "spec.nodeName=node-1,status.phase!=Succeeded,status.phase!=Failed",
                "spec.nodeName=node-1,status.phase!=Failed,status.phase!=Succeeded",
            ),
        ];
        for (input, want) in cases {
            let sel = FieldSelector::parse(input)
                .unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
            assert_eq!(sel.to_string(), want, "input {input:?}");
        }
    }

    // Upstream fields/selector_test.go: TestSplitTerms, TestSplitTerm, TestEscapeValue,
    // TestSelectorParse, TestSelectorMatches.
    #[test]
    fn upstream_field_selector_tests() {
        let split: &[(&str, &[&str])] = &[
            (r"a", &[r"a"]),
            (
                r"a=avalue,b==bvalue,c!=cvalue",
                &[r"a=avalue", r"b==bvalue", r"c!=cvalue"],
            ),
            (r"", &[]),
            (r"a=a,", &[r"a=a", r""]),
            (r",a=a", &[r"", r"a=a"]),
            (r"k=\,,k2=v2", &[r"k=\,", r"k2=v2"]),
            (r"k=\\,k2=v2", &[r"k=\\", r"k2=v2"]),
            (r"k=\\\,,k2=v2", &[r"k=\\\,", r"k2=v2"]),
            (r"k=\a\b\", &[r"k=\a\b\"]),
            (r"k=\", &[r"k=\"]),
            ("함=수,목=록", &["함=수", "목=록"]),
        ];
        for (input, want) in split {
            assert_eq!(split_terms(input), *want, "{input}");
        }
        assert_eq!(split_term(""), None);
        assert_eq!(
            split_term(r"k=\\\a\b\=\,\"),
            Some(("k", "=", r"\\\a\b\=\,\"))
        );
        assert_eq!(split_term("함=수"), Some(("함", "=", "수")));
        for (raw, escaped) in [
            ("", ""),
            ("a", "a"),
            ("=", r"\="),
            (",", r"\,"),
            (r"\", r"\\"),
            (r"\=\,\", r"\\\=\\\,\\"),
        ] {
            assert_eq!(escape_value(raw), escaped);
            assert_eq!(unescape_value(escaped).as_deref(), Ok(raw));
        }
        for invalid in [r"\", r"\\\", r"\a"] {
            assert!(
                unescape_value(invalid)
                    .expect_err("invalid")
                    .to_string()
                    .contains("invalid escape sequence")
            );
        }
        for good in ["x=a,y=b,z=c", "", "x!=a,y=b", r"x=a||y\=b", r"x=a\=\=b"] {
            assert_eq!(FieldSelector::parse(good).expect("good").to_string(), good);
        }
        for bad in [
            "x=a||y=b",
            "x==a==b",
            "x=a,b",
            "x in (a)",
            "x in (a,b,c)",
            "x",
        ] {
            assert!(FieldSelector::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            FieldSelector::parse("x=a,a=x").expect("valid").to_string(),
            FieldSelector::parse("a=x,x=a").expect("valid").to_string()
        );
        let fieldset = |f: &str| match f {
            "foo" => Some("bar".to_string()),
            "baz" => Some("blah".to_string()),
            "complex" => Some(r"=value\,\".to_string()),
            _ => None,
        };
        let m = |sel: &str| FieldSelector::parse(sel).expect("valid").matches(fieldset);
        assert!(m("foo=bar,baz=blah"));
        assert!(m(r"foo=bar,baz=blah,complex=\=value\\\,\\"));
        assert!(!m("foo=blah"));
        assert!(!m("foo=bar,foobar=bar,baz=blah"));
        let one = FieldSelector::one_term_equal("x", "y");
        assert!(one.matches(|_| Some("y".to_string())));
        assert!(!one.matches(|_| Some("z".to_string())));
        assert_eq!(one.requires_exact_match("x"), Some("y"));
        assert_eq!(
            FieldSelector::parse("x!=y")
                .expect("valid")
                .requires_exact_match("x"),
            None
        );
    }

    #[test]
    fn parse_errors_match_upstream() {
        let err = |s: &str| FieldSelector::parse(s).expect_err("must fail").to_string();
        assert_eq!(err("a"), "invalid selector: 'a'; can't understand 'a'");
        assert_eq!(
            err("b=c,a"),
            "invalid selector: 'b=c,a'; can't understand 'a'"
        );
        assert_eq!(
            err("x=a\\b"),
            "invalid field selector: invalid escape sequence: \\b"
        );
        assert_eq!(
            err("x=a\\"),
            "invalid field selector: invalid escape sequence: \\"
        );
        assert_eq!(
            err("x=a=b"),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn split_and_escape_helpers() {
        assert_eq!(split_terms(""), Vec::<&str>::new());
        assert_eq!(split_terms("a"), vec!["a"]);
        assert_eq!(split_terms("a,b"), vec!["a", "b"]);
        assert_eq!(split_terms("a\\,b,c"), vec!["a\\,b", "c"]);
        assert_eq!(split_terms("a\\\\,b"), vec!["a\\\\", "b"]);
        assert_eq!(split_terms(",,"), vec!["", "", ""]);
        assert_eq!(split_term("a=b"), Some(("a", "=", "b")));
        assert_eq!(split_term("a==b"), Some(("a", "==", "b")));
        assert_eq!(split_term("a!=b"), Some(("a", "!=", "b")));
        assert_eq!(split_term("a!b"), None);
        assert_eq!(split_term("=b"), Some(("", "=", "b")));
        assert_eq!(escape_value("a,b=c\\d"), "a\\,b\\=c\\\\d");
        assert_eq!(unescape_value("a\\,b\\=c\\\\d").as_deref(), Ok("a,b=c\\d"));
    }

    #[test]
    fn matches_values() {
        let get = |f: &str| match f {
            "foo" => Some("bar".to_string()),
            "baz" => Some("blah".to_string()),
            _ => None,
        };
        let cases = [
            ("", true),
            ("foo=bar", true),
            ("foo==bar", true),
            ("foo=baz", false),
            ("foo!=bar", false),
            ("foo!=baz", true),
            ("foo=bar,baz=blah", true),
            ("foo=bar,baz=x", false),
            ("missing=", true),
            ("missing!=", false),
            ("missing=x", false),
        ];
        for (sel, want) in cases {
            let s = FieldSelector::parse(sel).expect("valid");
            assert_eq!(s.matches(get), want, "selector {sel:?}");
        }
    }

    #[test]
    fn unsupported_fields_report_upstream_messages() {
        let sel = FieldSelector::parse("spec.foo=bar").expect("valid");
        assert_eq!(
            sel.validate_for("", "pods")
                .expect_err("unsupported")
                .to_string(),
            "field label not supported: spec.foo"
        );
        assert_eq!(
            sel.validate_for("", "configmaps")
                .expect_err("unsupported")
                .to_string(),
            "\"spec.foo\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        let ns = FieldSelector::parse("metadata.namespace=x").expect("valid");
        assert!(ns.validate_for("", "nodes").is_err());
        assert!(ns.validate_for("", "configmaps").is_ok());
        let host = FieldSelector::parse("spec.host=n1")
            .expect("valid")
            .validate_for("", "pods")
            .expect("alias");
        assert_eq!(host.to_string(), "spec.nodeName=n1");
        assert!(
            FieldSelector::parse("regarding.kind=Pod,reportingController=x")
                .expect("valid")
                .validate_for("events.k8s.io", "events")
                .is_ok()
        );
        assert!(
            FieldSelector::parse("involvedObject.kind=Pod")
                .expect("valid")
                .validate_for("events.k8s.io", "events")
                .is_err()
        );
        // apps/v1 has no field label conversion function: only metadata fields.
        assert!(
            FieldSelector::parse("status.replicas=1")
                .expect("valid")
                .validate_for("apps", "replicasets")
                .is_err()
        );
    }

    #[test]
    fn pod_field_values() {
        let pod = json!({
            "metadata": {"name": "p1", "namespace": "ns"},
            "spec": {"nodeName": "node-1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                     "serviceAccountName": "default"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
        });
        let v = |f: &str| field_value("", "pods", &pod, f);
        assert_eq!(v("metadata.name").as_deref(), Some("p1"));
        assert_eq!(v("metadata.namespace").as_deref(), Some("ns"));
        assert_eq!(v("spec.nodeName").as_deref(), Some("node-1"));
        assert_eq!(v("spec.host").as_deref(), Some("node-1"));
        assert_eq!(v("spec.hostNetwork").as_deref(), Some("false"));
        assert_eq!(v("status.phase").as_deref(), Some("Running"));
        assert_eq!(v("status.podIP").as_deref(), Some("10.0.0.5"));
        assert_eq!(v("status.podIPs").as_deref(), Some(""));
        assert_eq!(v("status.nominatedNodeName").as_deref(), Some(""));
        assert_eq!(v("spec.foo"), None);

        let sel = FieldSelector::parse(
            "spec.nodeName=node-1,status.phase!=Succeeded,status.phase!=Failed",
        )
        .expect("valid")
        .validate_for("", "pods")
        .expect("supported");
        assert!(sel.matches_object("", "pods", &pod));
        let pending =
            json!({"metadata": {"name": "p2"}, "spec": {}, "status": {"phase": "Pending"}});
        assert!(!sel.matches_object("", "pods", &pending));
        let unscheduled = FieldSelector::parse("spec.nodeName=").expect("valid");
        assert!(unscheduled.matches_object("", "pods", &pending));
        let host_net = json!({"spec": {"hostNetwork": true}});
        assert_eq!(
            field_value("", "pods", &host_net, "spec.hostNetwork").as_deref(),
            Some("true")
        );
    }

    #[test]
    fn other_kind_field_values() {
        let node = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert_eq!(
            field_value("", "nodes", &node, "spec.unschedulable").as_deref(),
            Some("true")
        );
        let ns = json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}});
        assert_eq!(
            field_value("", "namespaces", &ns, "status.phase").as_deref(),
            Some("Active")
        );
        let secret = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls"});
        assert_eq!(
            field_value("", "secrets", &secret, "type").as_deref(),
            Some("kubernetes.io/tls")
        );
        let rc = json!({"status": {"replicas": 3}});
        assert_eq!(
            field_value("", "replicationcontrollers", &rc, "status.replicas").as_deref(),
            Some("3")
        );
        let svc = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.10"}});
        assert_eq!(
            field_value("", "services", &svc, "spec.type").as_deref(),
            Some("NodePort")
        );
        assert_eq!(
            field_value("", "services", &svc, "spec.clusterIP").as_deref(),
            Some("10.96.0.10")
        );
        let job = json!({"status": {"succeeded": 2}});
        assert_eq!(
            field_value("batch", "jobs", &job, "status.successful").as_deref(),
            Some("2")
        );
        let cm = json!({"metadata": {"name": "c", "namespace": "d"}});
        assert_eq!(
            field_value("", "configmaps", &cm, "metadata.name").as_deref(),
            Some("c")
        );
        assert_eq!(field_value("", "configmaps", &cm, "data"), None);
    }

    #[test]
    fn event_field_values() {
        let ev = json!({
            "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u1"},
            "reason": "Scheduled", "type": "Normal",
            "reportingComponent": "default-scheduler"
        });
        let v = |f: &str| field_value("", "events", &ev, f);
        assert_eq!(v("involvedObject.kind").as_deref(), Some("Pod"));
        assert_eq!(v("involvedObject.uid").as_deref(), Some("u1"));
        assert_eq!(v("involvedObject.fieldPath").as_deref(), Some(""));
        assert_eq!(v("source").as_deref(), Some("default-scheduler"));
        assert_eq!(
            v("reportingComponent").as_deref(),
            Some("default-scheduler")
        );
        let sel = FieldSelector::parse(
            "involvedObject.name=web-1,involvedObject.namespace=default,involvedObject.kind=Pod,involvedObject.uid=u1",
        )
        .expect("valid");
        assert!(sel.matches_object("", "events", &ev));

        let ev1 = json!({
            "metadata": {"name": "e"},
            "regarding": {"kind": "Deployment", "name": "web"},
            "reportingController": "deployment-controller",
            "deprecatedSource": {"component": "legacy"},
            "reason": "ScalingReplicaSet", "type": "Normal"
        });
        let v1 = |f: &str| field_value("events.k8s.io", "events", &ev1, f);
        assert_eq!(v1("regarding.kind").as_deref(), Some("Deployment"));
        assert_eq!(
            v1("reportingController").as_deref(),
            Some("deployment-controller")
        );
        assert_eq!(v1("source").as_deref(), Some("legacy"));
    }
}
