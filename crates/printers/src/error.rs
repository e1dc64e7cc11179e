//! Errors of label and field selector parsing, with upstream's messages.

use crate::util::go_quote;

/// A label or field selector that cannot be parsed or is not supported for a resource. The
/// `Display` text is upstream's message; the API server returns it as a 400 `BadRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector that does not parse or fails validation
    /// (`unable to parse requirement: ...`, `found ',', expected: ...`).
    #[error("{0}")]
    Label(String),
    /// A field selector term without `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    InvalidFieldTerm {
        /// The whole selector.
        selector: String,
        /// The term that could not be split.
        term: String,
    },
    /// A backslash followed by something else than `\`, `,` or `=` in a field selector value.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscapeSequence(String),
    /// An unescaped `,` or `=` in a field selector value; upstream prints the code point.
    #[error("invalid field selector: unescaped character in value: {}", u32::from(*.0))]
    UnescapedCharacter(char),
    /// A field label that the resource's field label conversion function rejects.
    #[error("field label not supported: {0}")]
    FieldLabelNotSupported(String),
    /// A field label that the default conversion (`metadata.name`, `metadata.namespace` only)
    /// rejects, for resources without their own conversion function.
    #[error(
        "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
        go_quote(.0)
    )]
    UnknownFieldSelector(String),
}
