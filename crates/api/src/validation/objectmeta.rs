//! ObjectMeta validation, as upstream `k8s.io/apimachinery/pkg/api/validation/objectmeta.go`
//! and `pkg/apis/meta/v1/validation` (labels, label selectors, managed fields).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ManagedFieldsEntry, ObjectMeta, OwnerReference,
};

use super::names::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name,
    is_valid_label_value, is_valid_path_segment_name, is_valid_path_segment_prefix,
    mask_trailing_dash,
};
use crate::field::{self, BadValue, ErrorList, Path};

/// Upstream `FieldImmutableErrorMsg`.
pub const FIELD_IMMUTABLE_ERROR_MSG: &str = "field is immutable";
/// Upstream `IsNegativeErrorMsg`.
pub const IS_NEGATIVE_ERROR_MSG: &str = "must be greater than or equal to 0";
/// Upstream `TotalAnnotationSizeLimitB` (256 KiB).
pub const TOTAL_ANNOTATION_SIZE_LIMIT_B: usize = 256 * (1 << 10);
const FINALIZER_ORPHAN_DEPENDENTS: &str = "orphan";
const FINALIZER_DELETE_DEPENDENTS: &str = "foregroundDeletion";
const MAX_SUBRESOURCE_NAME_LENGTH: usize = 256;
const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// How an object's `metadata.name` (and `generateName`) is validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameValidator {
    /// A lowercase RFC 1123 subdomain (most kinds; upstream `NameIsDNSSubdomain`).
    Dns1123Subdomain,
    /// A lowercase RFC 1123 label (Namespace; upstream `NameIsDNSLabel`).
    Dns1123Label,
    /// An RFC 1035 label (Service; upstream `NameIsDNS1035Label`).
    Dns1035Label,
    /// Only safe as a URL path segment (kinds with relaxed names, e.g. Event, and the generic
    /// check every object gets; upstream `path.ValidatePathSegmentName`).
    PathSegment,
}

impl NameValidator {
    /// Validates `name`; with `prefix` the value is a `generateName` that will get a suffix
    /// appended (upstream `ValidateNameFunc(name, prefix)`).
    pub fn validate(self, name: &str, prefix: bool) -> Vec<String> {
        match self {
            Self::Dns1123Subdomain => is_dns1123_subdomain(&masked(name, prefix)),
            Self::Dns1123Label => is_dns1123_label(&masked(name, prefix)),
            Self::Dns1035Label => is_dns1035_label(&masked(name, prefix)),
            Self::PathSegment => {
                if prefix {
                    is_valid_path_segment_prefix(name)
                } else {
                    is_valid_path_segment_name(name)
                }
            }
        }
    }
}

fn masked(name: &str, prefix: bool) -> String {
    if prefix {
        mask_trailing_dash(name)
    } else {
        name.to_owned()
    }
}

/// Validates that an integer is not negative (upstream `ValidateNonnegativeField`).
pub fn validate_nonnegative_field(value: i64, path: &Path) -> ErrorList {
    if value < 0 {
        vec![field::invalid(path, value, IS_NEGATIVE_ERROR_MSG)]
    } else {
        Vec::new()
    }
}

/// Validates that a value did not change (upstream `ValidateImmutableField`); the new value
/// is rendered as upstream renders it.
pub fn validate_immutable_field<T: PartialEq>(
    new: &T,
    old: &T,
    rendered_new: impl FnOnce() -> BadValue,
    path: &Path,
) -> ErrorList {
    if new == old {
        Vec::new()
    } else {
        vec![field::invalid(
            path,
            rendered_new(),
            FIELD_IMMUTABLE_ERROR_MSG,
        )]
    }
}

/// Validates a label key (upstream `ValidateLabelName`).
pub fn validate_label_name(name: &str, path: &Path) -> ErrorList {
    is_qualified_name(name)
        .into_iter()
        .map(|m| field::invalid(path, name, &m))
        .collect()
}

/// Validates a label map (upstream `ValidateLabels`).
pub fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (k, v) in labels.into_iter().flatten() {
        errs.extend(validate_label_name(k, path));
        for m in is_valid_label_value(v) {
            errs.push(field::invalid(path, v, &m));
        }
    }
    errs
}

/// Validates an annotation map: keys are qualified names (case-insensitive) and the total size
/// is at most 256 KiB (upstream `ValidateAnnotations`).
pub fn validate_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(annotations) = annotations else {
        return errs;
    };
    let mut total = 0usize;
    for (k, v) in annotations {
        for m in is_qualified_name(&k.to_lowercase()) {
            errs.push(field::invalid(path, k, &m));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B {
        errs.push(field::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT_B as i64));
    }
    errs
}

fn validate_owner_reference(r: &OwnerReference, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    // schema.FromAPIVersionAndKind: "group/version" or "version".
    let (group, version) = match r.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", r.api_version.as_str()),
    };
    if version.is_empty() {
        errs.push(field::invalid(
            &path.child("apiVersion"),
            &r.api_version,
            "version must not be empty",
        ));
    }
    if r.kind.is_empty() {
        errs.push(field::invalid(
            &path.child("kind"),
            &r.kind,
            "must not be empty",
        ));
    }
    if r.name.is_empty() {
        errs.push(field::invalid(
            &path.child("name"),
            &r.name,
            "must not be empty",
        ));
    }
    if r.uid.is_empty() {
        errs.push(field::invalid(
            &path.child("uid"),
            &r.uid,
            "must not be empty",
        ));
    }
    if group.is_empty() && version == "v1" && r.kind == "Event" {
        errs.push(field::invalid(
            path,
            BadValue::json(r),
            "/v1, Kind=Event is disallowed from being an owner",
        ));
    }
    errs
}

/// Validates owner references (upstream `ValidateOwnerReferences`).
pub fn validate_owner_references(refs: Option<&Vec<OwnerReference>>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(refs) = refs else {
        return errs;
    };
    let mut first_controller: Option<String> = None;
    for r in refs {
        errs.extend(validate_owner_reference(r, path));
        if r.controller == Some(true) {
            let cur = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => errs.push(field::invalid(
                    path,
                    BadValue::json(refs),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {cur}"
                    ),
                )),
                None => first_controller = Some(cur),
            }
        }
    }
    errs
}

/// Validates finalizer names (upstream `ValidateFinalizers`).
pub fn validate_finalizers(finalizers: Option<&Vec<String>>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(finalizers) = finalizers else {
        return errs;
    };
    for f in finalizers {
        for m in is_qualified_name(f) {
            errs.push(field::invalid(path, f, &m));
        }
    }
    let has = |n: &str| finalizers.iter().any(|f| f == n);
    if has(FINALIZER_ORPHAN_DEPENDENTS) && has(FINALIZER_DELETE_DEPENDENTS) {
        errs.push(field::invalid(
            path,
            BadValue::json(finalizers),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// Validates managed fields entries (upstream `ValidateManagedFields`).
pub fn validate_managed_fields(
    entries: Option<&Vec<ManagedFieldsEntry>>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, e) in entries.into_iter().flatten().enumerate() {
        let p = path.index(i);
        let op = e.operation.as_deref().unwrap_or("");
        if op != "Apply" && op != "Update" {
            errs.push(field::invalid(
                &p.child("operation"),
                op,
                "must be `Apply` or `Update`",
            ));
        }
        if let Some(ft) = e.fields_type.as_deref()
            && !ft.is_empty()
            && ft != "FieldsV1"
        {
            errs.push(field::invalid(
                &p.child("fieldsType"),
                ft,
                "must be `FieldsV1`",
            ));
        }
        if let Some(m) = e.manager.as_deref()
            && m.len() > FIELD_MANAGER_MAX_LENGTH
        {
            errs.push(field::too_long(
                &p.child("manager"),
                FIELD_MANAGER_MAX_LENGTH as i64,
            ));
        }
        if e.subresource
            .as_deref()
            .is_some_and(|s| s.len() > MAX_SUBRESOURCE_NAME_LENGTH)
        {
            errs.push(field::too_long(
                &p.child("subresource"),
                MAX_SUBRESOURCE_NAME_LENGTH as i64,
            ));
        }
    }
    errs
}

/// Validates an object's metadata on create (upstream `ValidateObjectMeta`): name or
/// generateName required and well-formed, namespace required (namespaced) or forbidden
/// (cluster-scoped), generation, labels, annotations, owner references, finalizers and
/// managed fields.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_validator: NameValidator,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        for m in name_validator.validate(generate_name, true) {
            errs.push(field::invalid(
                &path.child("generateName"),
                generate_name,
                &m,
            ));
        }
    }
    let name = meta.name.as_deref().unwrap_or("");
    if name.is_empty() {
        errs.push(field::required(
            &path.child("name"),
            "name or generateName is required",
        ));
    } else {
        for m in name_validator.validate(name, false) {
            errs.push(field::invalid(&path.child("name"), name, &m));
        }
    }
    errs.extend(validate_object_meta_common(meta, namespaced, path));
    errs
}

fn validate_object_meta_common(meta: &ObjectMeta, namespaced: bool, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespaced {
        if namespace.is_empty() {
            errs.push(field::required(&path.child("namespace"), ""));
        } else {
            for m in NameValidator::Dns1123Label.validate(namespace, false) {
                errs.push(field::invalid(&path.child("namespace"), namespace, &m));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(field::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    errs.extend(validate_nonnegative_field(
        meta.generation.unwrap_or(0),
        &path.child("generation"),
    ));
    errs.extend(validate_labels(meta.labels.as_ref(), &path.child("labels")));
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs.extend(validate_owner_references(
        meta.owner_references.as_ref(),
        &path.child("ownerReferences"),
    ));
    errs.extend(validate_finalizers(
        meta.finalizers.as_ref(),
        &path.child("finalizers"),
    ));
    errs.extend(validate_managed_fields(
        meta.managed_fields.as_ref(),
        &path.child("managedFields"),
    ));
    errs
}

fn opt_str(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// Validates an object's metadata on update (upstream `ValidateObjectMetaUpdate`): no new
/// finalizers while deleting, resourceVersion present, generation not decremented, name,
/// namespace, uid, creationTimestamp, deletionTimestamp and deletionGracePeriodSeconds
/// immutable; labels, annotations, owner references and managed fields well-formed.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if old.deletion_timestamp.is_some() {
        let old_f: Vec<&String> = old.finalizers.iter().flatten().collect();
        let mut extra: Vec<&String> = new
            .finalizers
            .iter()
            .flatten()
            .filter(|f| !old_f.contains(f))
            .collect();
        extra.sort();
        extra.dedup();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|f| field::go_quote(f)).collect();
            errs.push(field::forbidden(
                &path.child("finalizers"),
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
    let rv = opt_str(&new.resource_version);
    if rv.is_empty() {
        errs.push(field::invalid(
            &path.child("resourceVersion"),
            rv,
            "must be specified for an update",
        ));
    }
    let (ng, og) = (new.generation.unwrap_or(0), old.generation.unwrap_or(0));
    if ng < og {
        errs.push(field::invalid(
            &path.child("generation"),
            ng,
            "must not be decremented",
        ));
    }
    errs.extend(validate_immutable_field(
        &opt_str(&new.name),
        &opt_str(&old.name),
        || opt_str(&new.name).into(),
        &path.child("name"),
    ));
    errs.extend(validate_immutable_field(
        &opt_str(&new.namespace),
        &opt_str(&old.namespace),
        || opt_str(&new.namespace).into(),
        &path.child("namespace"),
    ));
    errs.extend(validate_immutable_field(
        &opt_str(&new.uid),
        &opt_str(&old.uid),
        || opt_str(&new.uid).into(),
        &path.child("uid"),
    ));
    errs.extend(validate_immutable_field(
        &new.creation_timestamp,
        &old.creation_timestamp,
        || BadValue::json(&new.creation_timestamp),
        &path.child("creationTimestamp"),
    ));
    errs.extend(validate_immutable_field(
        &new.deletion_timestamp,
        &old.deletion_timestamp,
        || BadValue::json(&new.deletion_timestamp),
        &path.child("deletionTimestamp"),
    ));
    errs.extend(validate_immutable_field(
        &new.deletion_grace_period_seconds,
        &old.deletion_grace_period_seconds,
        || BadValue::json(&new.deletion_grace_period_seconds),
        &path.child("deletionGracePeriodSeconds"),
    ));
    errs.extend(validate_labels(new.labels.as_ref(), &path.child("labels")));
    errs.extend(validate_annotations(
        new.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs.extend(validate_owner_references(
        new.owner_references.as_ref(),
        &path.child("ownerReferences"),
    ));
    errs.extend(validate_managed_fields(
        new.managed_fields.as_ref(),
        &path.child("managedFields"),
    ));
    errs
}

/// Options for [`validate_label_selector`] (upstream `LabelSelectorValidationOptions`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LabelSelectorValidationOptions {
    /// Accept values that are not valid label values.
    pub allow_invalid_label_value_in_selector: bool,
}

/// Validates a label selector (upstream `ValidateLabelSelector`).
pub fn validate_label_selector(
    selector: Option<&LabelSelector>,
    opts: LabelSelectorValidationOptions,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(sel) = selector else {
        return errs;
    };
    errs.extend(validate_labels(
        sel.match_labels.as_ref(),
        &path.child("matchLabels"),
    ));
    for (i, r) in sel.match_expressions.iter().flatten().enumerate() {
        errs.extend(validate_label_selector_requirement(
            r,
            opts,
            &path.child("matchExpressions").index(i),
        ));
    }
    errs
}

/// Validates one label selector requirement (upstream `ValidateLabelSelectorRequirement`).
pub fn validate_label_selector_requirement(
    r: &LabelSelectorRequirement,
    opts: LabelSelectorValidationOptions,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.push(field::required(
                    &path.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                errs.push(field::forbidden(
                    &path.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        other => errs.push(field::invalid(
            &path.child("operator"),
            other,
            "not a valid selector operator",
        )),
    }
    errs.extend(validate_label_name(&r.key, &path.child("key")));
    if !opts.allow_invalid_label_value_in_selector {
        for (i, v) in values.iter().enumerate() {
            for m in is_valid_label_value(v) {
                errs.push(field::invalid(&path.child("values").index(i), v, &m));
            }
        }
    }
    errs
}

/// Whether a label selector matches a label set (upstream `LabelSelectorAsSelector` +
/// `Matches`). An empty selector matches everything; an invalid one (unknown operator)
/// returns `None`.
pub fn label_selector_matches(
    selector: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> Option<bool> {
    let get = |k: &str| labels.and_then(|l| l.get(k));
    for (k, v) in selector.match_labels.iter().flatten() {
        if get(k) != Some(v) {
            return Some(false);
        }
    }
    for r in selector.match_expressions.iter().flatten() {
        let values = r.values.as_deref().unwrap_or(&[]);
        let ok = match r.operator.as_str() {
            "In" => get(&r.key).is_some_and(|v| values.contains(v)),
            "NotIn" => get(&r.key).is_none_or(|v| !values.contains(v)),
            "Exists" => get(&r.key).is_some(),
            "DoesNotExist" => get(&r.key).is_none(),
            _ => return None,
        };
        if !ok {
            return Some(false);
        }
    }
    Some(true)
}

/// Whether a selector selects nothing-in-particular, i.e. has no requirements.
pub(crate) fn label_selector_is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: ns.map(str::to_owned),
            ..Default::default()
        }
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(crate::field::Error::message).collect()
    }

    #[test]
    fn name_required_and_namespace_rules() {
        let p = Path::new("metadata");
        let m = ObjectMeta::default();
        assert_eq!(
            messages(&validate_object_meta(
                &m,
                true,
                NameValidator::Dns1123Subdomain,
                &p
            )),
            vec![
                "metadata.name: Required value: name or generateName is required",
                "metadata.namespace: Required value",
            ]
        );
        assert_eq!(
            messages(&validate_object_meta(
                &meta("a", Some("ns")),
                false,
                NameValidator::Dns1123Subdomain,
                &p
            )),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        assert!(
            validate_object_meta(
                &meta("a.b", Some("ns")),
                true,
                NameValidator::Dns1123Subdomain,
                &p
            )
            .is_empty()
        );
        let errs = validate_object_meta(&meta("a.b", None), false, NameValidator::Dns1123Label, &p);
        assert_eq!(
            messages(&errs),
            vec!["metadata.name: Invalid value: \"a.b\": must not contain dots"]
        );
        assert_eq!(errs[0].reason(), "FieldValueInvalid");
    }

    #[test]
    fn generate_name_prefix_allows_trailing_dash() {
        let p = Path::new("metadata");
        let m = ObjectMeta {
            generate_name: Some("web-".into()),
            name: Some("web-abcde".into()),
            namespace: Some("default".into()),
            ..Default::default()
        };
        assert!(validate_object_meta(&m, true, NameValidator::Dns1123Subdomain, &p).is_empty());
    }

    #[test]
    fn labels_annotations_finalizers() {
        let p = Path::new("metadata");
        let mut m = meta("a", Some("ns"));
        m.labels = Some(BTreeMap::from([("bad key!".into(), "-v".into())]));
        m.annotations = Some(BTreeMap::from([(
            "Example.COM/Upper".into(),
            "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B),
        )]));
        m.finalizers = Some(vec!["orphan".into(), "foregroundDeletion".into()]);
        let errs = validate_object_meta(&m, true, NameValidator::Dns1123Subdomain, &p);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "metadata.labels",
                "metadata.labels",
                "metadata.annotations",
                "metadata.finalizers"
            ]
        );
        assert!(errs[0].message().starts_with(
            "metadata.labels: Invalid value: \"bad key!\": name part must consist of"
        ));
        assert!(errs[1].message().starts_with(
            "metadata.labels: Invalid value: \"-v\": a valid label must be an empty string"
        ));
        assert_eq!(
            errs[2].message(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(
            errs[3].message(),
            "metadata.finalizers: Invalid value: [\"orphan\",\"foregroundDeletion\"]: finalizer orphan and foregroundDeletion cannot be both set"
        );
    }

    #[test]
    fn owner_references() {
        let p = Path::new("metadata").child("ownerReferences");
        let r = OwnerReference {
            api_version: "apps/".into(),
            kind: String::new(),
            name: "x".into(),
            uid: "u".into(),
            controller: Some(true),
            ..Default::default()
        };
        let r2 = OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: "y".into(),
            uid: "u2".into(),
            controller: Some(true),
            ..Default::default()
        };
        let errs = validate_owner_references(Some(&vec![r, r2]), &p);
        let msgs = messages(&errs);
        assert_eq!(
            msgs[0],
            "metadata.ownerReferences.apiVersion: Invalid value: \"apps/\": version must not be empty"
        );
        assert_eq!(
            msgs[1],
            "metadata.ownerReferences.kind: Invalid value: \"\": must not be empty"
        );
        assert!(msgs[2].ends_with("Only one reference can have Controller set to true. Found \"true\" in references for /x and Pod/y"));
    }

    #[test]
    fn update_immutables() {
        let p = Path::new("metadata");
        let old = ObjectMeta {
            name: Some("a".into()),
            namespace: Some("ns".into()),
            uid: Some("u1".into()),
            generation: Some(3),
            resource_version: Some("5".into()),
            ..Default::default()
        };
        let new = ObjectMeta {
            name: Some("b".into()),
            namespace: Some("ns".into()),
            uid: Some("u2".into()),
            generation: Some(2),
            ..Default::default()
        };
        assert_eq!(
            messages(&validate_object_meta_update(&new, &old, &p)),
            vec![
                "metadata.resourceVersion: Invalid value: \"\": must be specified for an update",
                "metadata.generation: Invalid value: 2: must not be decremented",
                "metadata.name: Invalid value: \"b\": field is immutable",
                "metadata.uid: Invalid value: \"u2\": field is immutable",
            ]
        );
        let mut old2 = old.clone();
        old2.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        let mut new2 = old2.clone();
        new2.finalizers = Some(vec!["b".into(), "a".into()]);
        assert_eq!(
            messages(&validate_object_meta_update(&new2, &old2, &p)),
            vec![
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"a\", \"b\"}"
            ]
        );
    }

    #[test]
    fn selectors() {
        let p = Path::new("spec").child("selector");
        let sel = LabelSelector {
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "a".into(),
                    operator: "In".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "b".into(),
                    operator: "Foo".into(),
                    values: None,
                },
            ]),
            ..Default::default()
        };
        assert_eq!(
            messages(&validate_label_selector(Some(&sel), Default::default(), &p)),
            vec![
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.selector.matchExpressions[1].operator: Invalid value: \"Foo\": not a valid selector operator",
            ]
        );
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        let l = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        assert_eq!(label_selector_matches(&sel, Some(&l)), Some(true));
        let l2 = BTreeMap::from([("app".to_owned(), "x".to_owned())]);
        assert_eq!(label_selector_matches(&sel, Some(&l2)), Some(false));
        assert_eq!(label_selector_matches(&sel, None), Some(false));
    }
}
