//! Upstream `ControllerRefManager` (`pkg/controller/controller_ref_manager.go`): a controller
//! claims the objects it should own — it adopts matching orphans (adding its controller
//! reference with a strategic merge patch) and releases owned objects that no longer match.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::util::controller_ref;

/// Why claiming failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The API refused an adoption or release.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// The controller may not adopt (it is being deleted, or was replaced).
    #[error("can't adopt {kind} {namespace}/{name} ({uid}): {reason}")]
    CannotAdopt {
        /// Kind of the object to adopt.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its UID.
        uid: String,
        /// Why.
        reason: String,
    },
    /// Several failures.
    #[error("[{}]", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Aggregate(Vec<ClaimError>),
}

/// The controller that claims objects.
#[derive(Debug, Clone)]
pub struct Owner {
    /// `apiVersion` of the controller (e.g. `apps/v1`).
    pub api_version: String,
    /// Kind of the controller (e.g. `ReplicaSet`).
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID.
    pub uid: String,
    /// Whether it is being deleted (no adoptions nor releases then).
    pub deleting: bool,
}

impl Owner {
    /// The owner of a typed object.
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Self {
        let m = obj.meta();
        Self {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            name: m.name.clone().unwrap_or_default(),
            namespace: m.namespace.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            deleting: m.deletion_timestamp.is_some(),
        }
    }

    /// The controller reference to this owner (`controller` and `blockOwnerDeletion` true,
    /// upstream `metav1.NewControllerRef`).
    pub fn controller_ref(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// Claims `objs` for `owner`: returns the objects it owns afterwards. `matches` is the
/// selector; `can_adopt` is checked (once, lazily) before the first adoption: upstream's
/// uncached re-read of the controller (`RecheckDeletionTimestamp`).
pub async fn claim<K, F, Fut>(
    api: &Api<K>,
    owner: &Owner,
    objs: Vec<Arc<K>>,
    matches: impl Fn(&K) -> bool,
    can_adopt: F,
) -> Result<Vec<Arc<K>>, ClaimError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut claimed = Vec::with_capacity(objs.len());
    let mut errors = Vec::new();
    let mut can_adopt = Some(can_adopt);
    let mut adopt_verdict: Option<Result<(), String>> = None;
    for obj in objs {
        let m = obj.meta();
        if let Some(cref) = controller_ref(obj.as_ref()) {
            if cref.uid != owner.uid {
                continue; // owned by someone else
            }
            if matches(&obj) {
                claimed.push(obj);
                continue;
            }
            if owner.deleting {
                continue;
            }
            match release(api, owner, obj.as_ref()).await {
                Ok(()) => {}
                Err(e) => errors.push(e),
            }
            continue;
        }
        // An orphan.
        if owner.deleting || !matches(&obj) || m.deletion_timestamp.is_some() {
            continue;
        }
        if !owner.namespace.is_empty() && m.namespace.as_deref() != Some(owner.namespace.as_str()) {
            continue;
        }
        if adopt_verdict.is_none()
            && let Some(f) = can_adopt.take()
        {
            adopt_verdict = Some(f().await);
        }
        if let Some(Err(reason)) = &adopt_verdict {
            errors.push(ClaimError::CannotAdopt {
                kind: K::kind(&()).into_owned(),
                namespace: obj.namespace().unwrap_or_default(),
                name: obj.name_any(),
                uid: m.uid.clone().unwrap_or_default(),
                reason: reason.clone(),
            });
            continue;
        }
        match adopt(api, owner, obj.as_ref()).await {
            Ok(Some(new)) => claimed.push(Arc::new(new)),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(claimed),
        1 => Err(errors.pop().expect("one error")),
        _ => Err(ClaimError::Aggregate(errors)),
    }
}

/// Adds the owner's controller reference (None if the object is gone).
async fn adopt<K>(api: &Api<K>, owner: &Owner, obj: &K) -> Result<Option<K>, ClaimError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = json!({
        "metadata": {
            "ownerReferences": [owner.controller_ref()],
            "uid": obj.meta().uid,
        }
    });
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
    {
        Ok(o) => Ok(Some(o)),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes the owner's reference.
async fn release<K>(api: &Api<K>, owner: &Owner, obj: &K) -> Result<(), ClaimError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = json!({
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": owner.uid}],
            "uid": obj.meta().uid,
        }
    });
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone, or recreated / already released: nothing to do (upstream ignores both).
        Err(kube::Error::Api(s)) if s.is_not_found() || s.is_invalid() => Ok(()),
        Err(e) => Err(e.into()),
    }
}
