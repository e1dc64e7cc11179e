//! The protobuf wire schema of every k8s.io/api message, with the Go JSON rules needed to turn a
//! decoded message into the JSON a JSON client would have sent.
//!
//! The table in `generated.rs` is produced by `tools/gen_schema.py` from the upstream
//! `generated.proto` files and Go struct tags (k8s.io/api and k8s.io/apimachinery v0.35.7).

#[rustfmt::skip]
mod generated;

pub(crate) use generated::{GROUP_VERSIONS, LIST_WRAPPERS, MESSAGES};

/// One protobuf message type.
#[derive(Debug)]
pub(crate) struct Message {
    /// Full protobuf name, e.g. `k8s.io.api.apps.v1.Deployment`.
    pub name: &'static str,
    /// Fields in declaration order.
    pub fields: &'static [Field],
}

/// One field of a message.
#[derive(Debug)]
pub(crate) struct Field {
    /// Protobuf field number.
    pub number: u32,
    /// JSON name (the Go `json` tag); empty for `json:",inline"` fields.
    pub json: &'static str,
    /// Type of the field (of the map value for maps).
    pub ty: Ty,
    /// Singular, repeated or map (with string keys).
    pub card: Card,
    /// [`Field::KEEP_ZERO`] and [`Field::INLINE`].
    pub flags: u8,
}

impl Field {
    /// Go's JSON encoder writes this scalar even when it is zero (a pointer, or no `omitempty`).
    pub const KEEP_ZERO: u8 = 1;
    /// `json:",inline"`: the fields of this message are written into the parent object.
    pub const INLINE: u8 = 2;

    /// Whether a zero value of this scalar field is written.
    pub fn keep_zero(&self) -> bool {
        self.flags & Self::KEEP_ZERO != 0
    }

    /// Whether this message field is inlined into its parent.
    pub fn inline(&self) -> bool {
        self.flags & Self::INLINE != 0
    }
}

/// Field types used by the Kubernetes protobuf schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Bool,
    Int32,
    Int64,
    Str,
    Bytes,
    /// Index into [`MESSAGES`].
    Msg(u16),
}

/// Cardinality of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Card {
    Single,
    Repeated,
    /// `map<string, ty>`.
    Map,
}

/// The message at `index` of [`MESSAGES`].
pub(crate) fn message_at(index: u16) -> &'static Message {
    &MESSAGES[usize::from(index)]
}

/// Looks a message up by its full protobuf name.
pub(crate) fn message_by_name(name: &str) -> Option<&'static Message> {
    MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .map(|i| &MESSAGES[i])
}

/// The protobuf package of an `apiVersion` (`apps/v1` → `k8s.io.api.apps.v1`).
pub(crate) fn package_of(api_version: &str) -> Option<&'static str> {
    GROUP_VERSIONS
        .iter()
        .find(|(gv, _)| *gv == api_version)
        .map(|(_, pkg)| *pkg)
}

/// Whether `name` wraps a Go named slice (`type ExtraValue []string`).
pub(crate) fn is_list_wrapper(name: &str) -> bool {
    LIST_WRAPPERS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_sorted_and_indices_valid() {
        for pair in MESSAGES.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} >= {}",
                pair[0].name,
                pair[1].name
            );
        }
        for m in MESSAGES {
            for f in m.fields {
                if let Ty::Msg(i) = f.ty {
                    assert!(usize::from(i) < MESSAGES.len());
                }
            }
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(package_of("v1"), Some("k8s.io.api.core.v1"));
        assert_eq!(package_of("apps/v1"), Some("k8s.io.api.apps.v1"));
        assert_eq!(
            package_of("rbac.authorization.k8s.io/v1"),
            Some("k8s.io.api.rbac.v1")
        );
        assert_eq!(package_of("example.com/v1"), None);
        let volume = message_by_name("k8s.io.api.core.v1.Volume").expect("Volume exists");
        let source = volume
            .fields
            .iter()
            .find(|f| f.number == 2)
            .expect("field 2");
        assert!(source.inline());
        let spec = message_by_name("k8s.io.api.apps.v1.DeploymentSpec").expect("exists");
        let replicas = spec
            .fields
            .iter()
            .find(|f| f.json == "replicas")
            .expect("replicas");
        assert!(replicas.keep_zero());
        let min_ready = spec
            .fields
            .iter()
            .find(|f| f.json == "minReadySeconds")
            .expect("x");
        assert!(!min_ready.keep_zero());
        assert!(is_list_wrapper("k8s.io.api.authorization.v1.ExtraValue"));
    }
}
