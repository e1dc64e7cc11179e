//! The per-kind strategy: the only code that differs between kinds (upstream
//! `pkg/registry/<group>/<kind>/strategy.go`). The generic handlers call it in upstream's
//! `BeforeCreate` / `BeforeUpdate` order.

use api::field::ErrorList;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// The generic metadata validation of an update (new, old), handed to
/// [`Strategy::validate_update`] so that a typed validation can run it on the metadata it has
/// already decoded.
pub type MetaCheck<'a> = &'a dyn Fn(&ObjectMeta, &ObjectMeta) -> ErrorList;

/// Context a strategy may need.
#[derive(Debug, Clone, Copy)]
pub struct StrategyCtx<'a> {
    /// The request's namespace, if any.
    pub namespace: Option<&'a str>,
}

/// Per-kind behaviour. Objects are JSON values that have already passed the kind's typed round
/// trip, so their shape is valid; implementations deserialize into `k8s-openapi` types where
/// they need typed access.
pub trait Strategy: Send + Sync {
    /// Whether the kind has `.spec` changes tracked by `metadata.generation`.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Whether the kind has a status subresource: then the main resource ignores status
    /// changes and `/status` changes nothing else.
    fn has_status_subresource(&self) -> bool {
        false
    }

    /// The scheme defaulters (run when a body is decoded, before the field manager).
    fn default_fields(&self, _obj: &mut Value) {}

    /// What admission adds on create, after the field manager (so no manager owns it).
    fn admit(&self, _obj: &mut Value) {}

    /// Clearing and setting of fields a create may not set (upstream `PrepareForCreate`).
    fn prepare_for_create(&self, _obj: &mut Value, _ctx: StrategyCtx<'_>) {}

    /// Validation of a new object, every error collected (upstream `Validate`).
    fn validate(&self, _obj: &Value) -> ErrorList {
        Vec::new()
    }

    /// Defaulting on update (the defaulters run on every decode upstream).
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// Validation of an update, every error collected (upstream `ValidateUpdate`), followed by
    /// the errors of `meta` on the objects' metadata.
    fn validate_update(&self, new: &Value, old: &Value, meta: MetaCheck<'_>) -> ErrorList {
        let mut errs = self.validate(new);
        errs.extend(crate::meta_validation::check_json_meta(new, old, meta));
        errs
    }

    /// Validation of a status update.
    fn validate_status_update(&self, _new: &Value, _old: &Value) -> ErrorList {
        Vec::new()
    }

    /// Whether PUT may create a missing object (upstream `AllowCreateOnUpdate`).
    fn allow_create_on_update(&self) -> bool {
        false
    }

    /// A cheap test of the typed round trip of an object whose metadata is set aside (`{}`):
    /// true only when the round trip would change nothing. False says nothing: the round trip
    /// then decides (see [`super::normal`]).
    fn is_normal_form(&self, _obj: &Value) -> bool {
        false
    }

    /// Whether DELETE should mark the object with a grace period rather than delete it at once
    /// (pods bound to a node). Returns the grace period in seconds.
    fn graceful_delete(&self, _obj: &Value, _requested: Option<i64>) -> Option<i64> {
        None
    }
}
