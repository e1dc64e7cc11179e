//! apps/v1 Deployment and ReplicaSet, and autoscaling/v1 Scale validation (upstream
//! `pkg/apis/apps/validation`, `pkg/apis/autoscaling/validation`, and the selector
//! immutability the apps registry strategies add on update).

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::common::{core_object_meta, core_object_meta_update, int_or_string_value, s};
use super::names::is_valid_percent;
use super::objectmeta::{
    FIELD_IMMUTABLE_ERROR_MSG, LabelSelectorValidationOptions, NameValidator,
    label_selector_is_empty, label_selector_matches, validate_label_selector,
    validate_nonnegative_field,
};
use super::pod::validate_pod_template_spec;
use crate::field::{self, BadValue, ErrorList, Path};

/// Upstream's message when a workload selector does not select its pod template.
pub const SELECTOR_MISMATCH_MSG: &str = "`selector` does not match template `labels`";

fn validate_selector(selector: Option<&LabelSelector>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    match selector {
        None => errs.push(field::required(path, "")),
        Some(sel) => {
            errs.extend(validate_label_selector(
                Some(sel),
                LabelSelectorValidationOptions::default(),
                path,
            ));
            if label_selector_is_empty(sel) {
                errs.push(field::invalid(
                    path,
                    BadValue::json(sel),
                    "empty selector is invalid for deployment",
                ));
            }
        }
    }
    errs
}

/// Upstream `ValidatePodTemplateSpecForReplicaSet`.
fn validate_template_for_replica_set(
    template: &PodTemplateSpec,
    selector: Option<&LabelSelector>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let sel_err = selector.is_some_and(|s| label_selector_matches(s, None).is_none());
    if sel_err {
        errs.push(field::invalid(
            &Path::new("spec").child("selector"),
            BadValue::json(&selector),
            "invalid label selector",
        ));
        return errs;
    }
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    if let Some(sel) = selector
        && !label_selector_is_empty(sel)
        && label_selector_matches(sel, labels) == Some(false)
    {
        errs.push(field::invalid(
            &path.child("metadata").child("labels"),
            BadValue::json(&labels),
            SELECTOR_MISMATCH_MSG,
        ));
    }
    errs.extend(validate_pod_template_spec(template, path));
    let spec = template.spec.clone().unwrap_or_default();
    let rp = s(&spec.restart_policy);
    if rp != "Always" {
        errs.push(field::not_supported(
            &path.child("spec").child("restartPolicy"),
            rp,
            &["Always"],
        ));
    }
    if spec.active_deadline_seconds.is_some() {
        errs.push(field::forbidden(
            &path.child("spec").child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
    errs
}

fn percent_value(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::String(s) if is_valid_percent(s).is_empty() => {
            s.trim_end_matches('%').parse().ok()
        }
        _ => None,
    }
}

fn int_or_percent_value(v: &IntOrString) -> i64 {
    match v {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(_) => percent_value(v).unwrap_or(0),
    }
}

/// Upstream `ValidatePositiveIntOrPercent`.
fn validate_positive_int_or_percent(v: &IntOrString, path: &Path) -> ErrorList {
    match v {
        IntOrString::String(s) => is_valid_percent(s)
            .into_iter()
            .map(|m| field::invalid(path, int_or_string_value(v), &m))
            .collect(),
        IntOrString::Int(n) => validate_nonnegative_field(i64::from(*n), path),
    }
}

fn validate_strategy(strategy: Option<&DeploymentStrategy>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let default = DeploymentStrategy::default();
    let st = strategy.unwrap_or(&default);
    match s(&st.type_) {
        "Recreate" => {
            if st.rolling_update.is_some() {
                errs.push(field::forbidden(
                    &path.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match &st.rolling_update {
            None => errs.push(field::required(
                &path.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let rp = path.child("rollingUpdate");
                let zero = IntOrString::Int(0);
                let mu = ru.max_unavailable.as_ref().unwrap_or(&zero);
                let ms = ru.max_surge.as_ref().unwrap_or(&zero);
                errs.extend(validate_positive_int_or_percent(
                    mu,
                    &rp.child("maxUnavailable"),
                ));
                errs.extend(validate_positive_int_or_percent(ms, &rp.child("maxSurge")));
                if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
                    errs.push(field::invalid(
                        &rp.child("maxUnavailable"),
                        int_or_string_value(mu),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                if percent_value(mu).is_some_and(|p| p > 100) {
                    errs.push(field::invalid(
                        &rp.child("maxUnavailable"),
                        int_or_string_value(mu),
                        "must not be greater than 100%",
                    ));
                }
            }
        },
        _ => errs.push(field::not_supported(
            path,
            BadValue::json(st),
            &["Recreate", "RollingUpdate"],
        )),
    }
    errs
}

fn validate_deployment_spec(spec: &DeploymentSpec) -> ErrorList {
    let sp = Path::new("spec");
    let mut errs =
        validate_nonnegative_field(i64::from(spec.replicas.unwrap_or(1)), &sp.child("replicas"));
    errs.extend(validate_selector(
        spec.selector_opt(),
        &sp.child("selector"),
    ));
    errs.extend(validate_template_for_replica_set(
        &spec.template,
        spec.selector_opt(),
        &sp.child("template"),
    ));
    errs.extend(validate_strategy(
        spec.strategy.as_ref(),
        &sp.child("strategy"),
    ));
    let mrs = spec.min_ready_seconds.unwrap_or(0);
    errs.extend(validate_nonnegative_field(
        i64::from(mrs),
        &sp.child("minReadySeconds"),
    ));
    if let Some(r) = spec.revision_history_limit {
        errs.extend(validate_nonnegative_field(
            i64::from(r),
            &sp.child("revisionHistoryLimit"),
        ));
    }
    if let Some(p) = spec.progress_deadline_seconds {
        errs.extend(validate_nonnegative_field(
            i64::from(p),
            &sp.child("progressDeadlineSeconds"),
        ));
        if p <= mrs {
            errs.push(field::invalid(
                &sp.child("progressDeadlineSeconds"),
                p,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

/// Access to a selector that k8s-openapi models as required but clients may omit.
trait SelectorOpt {
    fn selector_opt(&self) -> Option<&LabelSelector>;
}

impl SelectorOpt for DeploymentSpec {
    fn selector_opt(&self) -> Option<&LabelSelector> {
        Some(&self.selector).filter(|s| !is_absent(s))
    }
}

impl SelectorOpt for ReplicaSetSpec {
    fn selector_opt(&self) -> Option<&LabelSelector> {
        Some(&self.selector).filter(|s| !is_absent(s))
    }
}

/// k8s-openapi decodes a missing `selector` as the default selector, whose fields are both
/// `None`; an explicit `{}` has the same shape, so both are treated as "required" upstream-wise
/// only when neither field was given.
fn is_absent(sel: &LabelSelector) -> bool {
    sel.match_labels.is_none() && sel.match_expressions.is_none()
}

/// Validates a Deployment on create (upstream `ValidateDeployment`).
pub fn validate_deployment(d: &Deployment) -> ErrorList {
    let mut errs = core_object_meta(&d.metadata, true, NameValidator::Dns1123Subdomain);
    let spec = d.spec.clone().unwrap_or_default();
    errs.extend(validate_deployment_spec(&spec));
    errs
}

/// Validates a Deployment update (upstream `ValidateDeploymentUpdate` plus the apps/v1
/// strategy's selector immutability).
pub fn validate_deployment_update(new: &Deployment, old: &Deployment) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    let ns = new.spec.clone().unwrap_or_default();
    let os = old.spec.clone().unwrap_or_default();
    errs.extend(validate_deployment_spec(&ns));
    if ns.selector != os.selector {
        errs.push(field::invalid(
            &Path::new("spec").child("selector"),
            BadValue::json(&ns.selector),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    errs
}

fn collision_decremented(new: Option<i32>, old: Option<i32>) -> bool {
    match (new, old) {
        (None, Some(_)) => true,
        (Some(n), Some(o)) => n < o,
        _ => false,
    }
}

/// Validates a Deployment status update (upstream `ValidateDeploymentStatusUpdate`).
pub fn validate_deployment_status_update(new: &Deployment, old: &Deployment) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    let st = Path::new("status");
    let ns = new.status.clone().unwrap_or_default();
    let os = old.status.clone().unwrap_or_default();
    errs.extend(validate_nonnegative_field(
        ns.observed_generation.unwrap_or(0),
        &st.child("observedGeneration"),
    ));
    let replicas = ns.replicas.unwrap_or(0);
    let updated = ns.updated_replicas.unwrap_or(0);
    let ready = ns.ready_replicas.unwrap_or(0);
    let available = ns.available_replicas.unwrap_or(0);
    for (f, v) in [
        ("replicas", replicas),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("unavailableReplicas", ns.unavailable_replicas.unwrap_or(0)),
    ] {
        errs.extend(validate_nonnegative_field(i64::from(v), &st.child(f)));
    }
    if let Some(c) = ns.collision_count {
        errs.extend(validate_nonnegative_field(
            i64::from(c),
            &st.child("collisionCount"),
        ));
    }
    let msg = "cannot be greater than status.replicas";
    if updated > replicas {
        errs.push(field::invalid(&st.child("updatedReplicas"), updated, msg));
    }
    if ready > replicas {
        errs.push(field::invalid(&st.child("readyReplicas"), ready, msg));
    }
    if available > replicas {
        errs.push(field::invalid(
            &st.child("availableReplicas"),
            available,
            msg,
        ));
    }
    if available > ready {
        errs.push(field::invalid(
            &st.child("availableReplicas"),
            available,
            "cannot be greater than readyReplicas",
        ));
    }
    if collision_decremented(ns.collision_count, os.collision_count) {
        errs.push(field::invalid(
            &st.child("collisionCount"),
            ns.collision_count.unwrap_or(0),
            "cannot be decremented",
        ));
    }
    errs
}

fn validate_replica_set_spec(spec: &ReplicaSetSpec) -> ErrorList {
    let sp = Path::new("spec");
    let mut errs =
        validate_nonnegative_field(i64::from(spec.replicas.unwrap_or(1)), &sp.child("replicas"));
    errs.extend(validate_nonnegative_field(
        i64::from(spec.min_ready_seconds.unwrap_or(0)),
        &sp.child("minReadySeconds"),
    ));
    errs.extend(validate_selector(
        spec.selector_opt(),
        &sp.child("selector"),
    ));
    let template = spec.template.clone().unwrap_or_default();
    errs.extend(validate_template_for_replica_set(
        &template,
        spec.selector_opt(),
        &sp.child("template"),
    ));
    errs
}

/// Validates a ReplicaSet on create (upstream `ValidateReplicaSet`).
pub fn validate_replica_set(rs: &ReplicaSet) -> ErrorList {
    let mut errs = core_object_meta(&rs.metadata, true, NameValidator::Dns1123Subdomain);
    let spec = rs.spec.clone().unwrap_or_default();
    errs.extend(validate_replica_set_spec(&spec));
    errs
}

/// Validates a ReplicaSet update (upstream `ValidateReplicaSetUpdate` plus the apps/v1
/// strategy's selector immutability).
pub fn validate_replica_set_update(new: &ReplicaSet, old: &ReplicaSet) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    let ns = new.spec.clone().unwrap_or_default();
    let os = old.spec.clone().unwrap_or_default();
    errs.extend(validate_replica_set_spec(&ns));
    if ns.selector != os.selector {
        errs.push(field::invalid(
            &Path::new("spec").child("selector"),
            BadValue::json(&ns.selector),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    errs
}

/// Validates a ReplicaSet status update (upstream `ValidateReplicaSetStatusUpdate`).
pub fn validate_replica_set_status_update(new: &ReplicaSet, old: &ReplicaSet) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    let st = Path::new("status");
    let ns = new.status.clone().unwrap_or_default();
    let replicas = ns.replicas;
    let fully = ns.fully_labeled_replicas.unwrap_or(0);
    let ready = ns.ready_replicas.unwrap_or(0);
    let available = ns.available_replicas.unwrap_or(0);
    for (f, v) in [
        ("replicas", i64::from(replicas)),
        ("fullyLabeledReplicas", i64::from(fully)),
        ("readyReplicas", i64::from(ready)),
        ("availableReplicas", i64::from(available)),
        ("observedGeneration", ns.observed_generation.unwrap_or(0)),
    ] {
        errs.extend(validate_nonnegative_field(v, &st.child(f)));
    }
    let msg = "cannot be greater than status.replicas";
    if fully > replicas {
        errs.push(field::invalid(
            &st.child("fullyLabeledReplicas"),
            fully,
            msg,
        ));
    }
    if ready > replicas {
        errs.push(field::invalid(&st.child("readyReplicas"), ready, msg));
    }
    if available > replicas {
        errs.push(field::invalid(
            &st.child("availableReplicas"),
            available,
            msg,
        ));
    }
    if available > ready {
        errs.push(field::invalid(
            &st.child("availableReplicas"),
            available,
            "cannot be greater than readyReplicas",
        ));
    }
    errs
}

/// Validates a Scale (upstream autoscaling `ValidateScale`).
pub fn validate_scale(scale: &Scale) -> ErrorList {
    let mut errs = core_object_meta(&scale.metadata, true, NameValidator::Dns1123Subdomain);
    let replicas = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    if replicas < 0 {
        errs.push(field::invalid(
            &Path::new("spec").child("replicas"),
            replicas,
            super::objectmeta::IS_NEGATIVE_ERROR_MSG,
        ));
    }
    errs
}

/// Validates a Scale update (same as create; the target's own update validation also runs).
pub fn validate_scale_update(new: &Scale, _old: &Scale) -> ErrorList {
    validate_scale(new)
}
