//! Errors of JSON patch, merge patch and strategic merge patch.

/// A patch that could not be applied. Messages follow upstream (`apimachinery/pkg/util/mergepatch`
/// and `strategicpatch`) so they can be put in a `Status` as they are; [`PatchError::status_code`]
/// gives the HTTP code the API server answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The JSON patch document could not be decoded (400).
    #[error("{0}")]
    InvalidJsonPatch(String),
    /// A JSON patch operation failed, including a failed `test` (422).
    #[error("{0}")]
    JsonPatchFailed(String),
    /// The merge patch or strategic merge patch body is not a JSON object (400).
    #[error("invalid JSON document")]
    BadJsonDoc,
    /// The patched document is not an object any more (422).
    #[error("the patched document is not a JSON object")]
    NotAnObject,
    /// Strategic merge patch is not supported for this type: no schema is known (415).
    #[error("strategic merge patch format is not supported")]
    NoSchema,
    /// A list contains lists (422).
    #[error("lists of lists are not supported")]
    NoListOfLists,
    /// Malformed `$deleteFromPrimitiveList` directive (400).
    #[error("invalid patch format of primitive list")]
    BadPatchFormatForPrimitiveList,
    /// Malformed `$retainKeys` directive, or a patched key missing from it (400).
    #[error("invalid patch format of retainKeys")]
    BadPatchFormatForRetainKeys,
    /// Malformed `$setElementOrder` directive (400).
    #[error("invalid patch format of setElementOrder list")]
    BadPatchFormatForSetElementOrderList,
    /// A map element of a merged list lacks the merge key (422).
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey {
        /// The offending element, as JSON.
        map: String,
        /// The merge key.
        key: String,
    },
    /// An unknown `$patch` directive (422).
    #[error("unknown patch type: {directive} in map: {map}")]
    BadPatchType {
        /// The directive value.
        directive: String,
        /// The map carrying it, as JSON.
        map: String,
    },
    /// Any other invalid strategic merge patch (422), e.g. mismatched types.
    #[error("{0}")]
    Invalid(String),
}

impl PatchError {
    /// The HTTP status the API server answers with for this error (upstream
    /// `interpretStrategicMergePatchError` and the JSON patch handler): 400, 415 or 422.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::InvalidJsonPatch(_)
            | PatchError::BadJsonDoc
            | PatchError::BadPatchFormatForPrimitiveList
            | PatchError::BadPatchFormatForRetainKeys
            | PatchError::BadPatchFormatForSetElementOrderList => 400,
            PatchError::NoSchema => 415,
            PatchError::JsonPatchFailed(_)
            | PatchError::NotAnObject
            | PatchError::NoListOfLists
            | PatchError::NoMergeKey { .. }
            | PatchError::BadPatchType { .. }
            | PatchError::Invalid(_) => 422,
        }
    }
}
