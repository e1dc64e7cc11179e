//! OpenAPI v3 documents for the served group-versions, generated from k8s-openapi schemas.
//!
//! * [`schemas()`] is the annotated schema graph of every built-in type (used by `kubectl
//!   explain`, strategic merge patch and server-side apply);
//! * [`index_document`] is the `/openapi/v3` index and [`group_version_document`] the document of
//!   one group-version (`/openapi/v3/apis/apps/v1`).

mod annotations;
mod documents;
mod generated;
pub(crate) mod schemas;

pub use documents::{
    GroupVersionDocument, group_version_document, group_version_document_shared,
    group_version_path, index_document,
};
pub use schemas::{REF_PREFIX, Schemas, schemas};

/// One served kind (the API server passes its registry in).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KindInfo {
    /// API group, `""` for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Resource name (plural), e.g. `deployments`.
    pub plural: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Served subresources: `"status"`, `"scale"`, `"binding"`.
    pub subresources: Vec<String>,
    /// Supported verbs (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`).
    pub verbs: Vec<String>,
}
