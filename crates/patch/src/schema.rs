//! Navigation of upstream OpenAPI v3 component schemas: `$ref`s, `allOf` wrappers, `properties`,
//! `items`, `additionalProperties` and the `x-kubernetes-*` patch and list extensions.

use serde_json::Value;

/// Source of named component schemas, keyed by upstream definition names such as
/// `io.k8s.api.core.v1.PodSpec`.
pub trait SchemaLookup: Send + Sync {
    /// The schema of the named component, in upstream's OpenAPI v3 format.
    fn get(&self, name: &str) -> Option<&Value>;
}

impl SchemaLookup for serde_json::Map<String, Value> {
    fn get(&self, name: &str) -> Option<&Value> {
        serde_json::Map::get(self, name)
    }
}

impl SchemaLookup for std::collections::HashMap<String, Value> {
    fn get(&self, name: &str) -> Option<&Value> {
        std::collections::HashMap::get(self, name)
    }
}

impl SchemaLookup for openapi::Schemas {
    fn get(&self, name: &str) -> Option<&Value> {
        openapi::Schemas::get(self, name)
    }
}

impl SchemaNode<'static> {
    /// The node of the served schema of a kind (from [`openapi::schemas`]); unknown when the
    /// kind has no schema (e.g. custom resources).
    pub fn for_kind(group: &str, version: &str, kind: &str) -> Self {
        let schemas = openapi::schemas();
        match schemas.definition_for(group, version, kind) {
            Some(name) => SchemaNode::named(schemas, name),
            None => SchemaNode::none(),
        }
    }
}

/// Prefix of local component references.
const REF_PREFIX: &str = "#/components/schemas/";
/// Guard against reference cycles that never reach a concrete schema.
const MAX_REF_DEPTH: usize = 32;

/// What a schema node describes, after following references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// No schema is known: maps are merged field by field and lists are atomic.
    Unknown,
    /// An object with named `properties`.
    Struct,
    /// An object whose values all share `additionalProperties`.
    Map,
    /// An array.
    List,
    /// Anything else (string, integer, number, boolean, int-or-string...).
    Scalar,
}

/// How the items of a list are identified, as structured-merge-diff sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// The list is replaced as a whole.
    Atomic,
    /// A set of scalars.
    Set,
    /// A list of objects keyed by these fields.
    Map(Vec<String>),
}

/// A cursor into a schema: the schema of one field (with the field's own extensions) plus the
/// lookup used to follow `$ref`s. A node may be *unknown* (no schema), which every operation
/// accepts: unknown maps are merged field by field and unknown lists are replaced.
#[derive(Clone, Copy)]
pub struct SchemaNode<'a> {
    lookup: Option<&'a dyn SchemaLookup>,
    schema: Option<&'a Value>,
}

impl std::fmt::Debug for SchemaNode<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaNode")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl<'a> SchemaNode<'a> {
    /// A node without schema (e.g. a custom resource without a known schema).
    pub fn none() -> Self {
        SchemaNode {
            lookup: None,
            schema: None,
        }
    }

    /// The node of the named component schema (e.g. `io.k8s.api.apps.v1.Deployment`); unknown
    /// when the lookup has no such schema.
    pub fn named(lookup: &'a dyn SchemaLookup, name: &str) -> Self {
        SchemaNode {
            lookup: Some(lookup),
            schema: lookup.get(name),
        }
    }

    /// A node for an inline schema whose `$ref`s resolve through `lookup`.
    pub fn new(lookup: &'a dyn SchemaLookup, schema: &'a Value) -> Self {
        SchemaNode {
            lookup: Some(lookup),
            schema: Some(schema),
        }
    }

    /// Whether a schema is known for this node.
    pub fn is_known(&self) -> bool {
        self.schema.is_some()
    }

    fn with(&self, schema: Option<&'a Value>) -> Self {
        SchemaNode {
            lookup: self.lookup,
            schema,
        }
    }

    /// The chain of schemas from the field's own schema through its references.
    fn chain(&self) -> Vec<&'a Value> {
        let mut out = Vec::new();
        let mut cur = self.schema;
        while let Some(s) = cur {
            if out.len() >= MAX_REF_DEPTH {
                break;
            }
            out.push(s);
            cur = self.reference(s);
        }
        out
    }

    /// The schema referenced by `s` through `$ref` or a single-`$ref` `allOf`/`anyOf`/`oneOf`.
    fn reference(&self, s: &'a Value) -> Option<&'a Value> {
        let lookup = self.lookup?;
        let target = s.get("$ref").and_then(Value::as_str).or_else(|| {
            ["allOf", "anyOf", "oneOf"].iter().find_map(|k| {
                s.get(*k)
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find_map(|e| e.get("$ref")))
                    .and_then(Value::as_str)
            })
        })?;
        let name = target.strip_prefix(REF_PREFIX).unwrap_or(target);
        lookup.get(name)
    }

    /// The first value of `key` along the reference chain (the field's own schema first).
    fn lookup_key(&self, key: &str) -> Option<&'a Value> {
        self.chain().into_iter().find_map(|s| s.get(key))
    }

    /// What this node describes.
    pub(crate) fn kind(&self) -> NodeKind {
        if self.schema.is_none() {
            return NodeKind::Unknown;
        }
        let chain = self.chain();
        if chain.iter().any(|s| s.get("properties").is_some()) {
            return NodeKind::Struct;
        }
        if chain
            .iter()
            .any(|s| s.get("additionalProperties").is_some_and(Value::is_object))
        {
            return NodeKind::Map;
        }
        if chain.iter().any(|s| s.get("items").is_some()) {
            return NodeKind::List;
        }
        match self.lookup_key("type").and_then(Value::as_str) {
            Some("array") => NodeKind::List,
            Some("object") | None => {
                if self.lookup_key("x-kubernetes-int-or-string").is_some() {
                    NodeKind::Scalar
                } else {
                    NodeKind::Unknown
                }
            }
            Some(_) => NodeKind::Scalar,
        }
    }

    /// The schema of field `name` of this object (a named property, else the
    /// `additionalProperties` schema); unknown otherwise.
    pub fn field(&self, name: &str) -> SchemaNode<'a> {
        let chain = self.chain();
        if let Some(p) = chain
            .iter()
            .find_map(|s| s.get("properties").and_then(|p| p.get(name)))
        {
            return self.with(Some(p));
        }
        let additional = chain
            .iter()
            .find_map(|s| s.get("additionalProperties").filter(|a| a.is_object()));
        self.with(additional)
    }

    /// Whether `name` is listed in the object's `required` properties (in Go, a field without
    /// `omitempty`, always present in the encoded object).
    pub(crate) fn is_required(&self, name: &str) -> bool {
        self.chain().iter().any(|s| {
            s.get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|v| v.as_str() == Some(name)))
        })
    }

    /// Whether `name` is a named property of this object.
    pub(crate) fn has_property(&self, name: &str) -> bool {
        self.chain()
            .iter()
            .any(|s| s.get("properties").and_then(|p| p.get(name)).is_some())
    }

    /// The schema of the items of this list; unknown otherwise.
    pub fn items(&self) -> SchemaNode<'a> {
        self.with(self.lookup_key("items"))
    }

    /// `x-kubernetes-patch-strategy`, split at commas (empty when absent).
    pub fn patch_strategies(&self) -> Vec<&'a str> {
        self.lookup_key("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .map(|s| s.split(',').collect())
            .unwrap_or_default()
    }

    /// `x-kubernetes-patch-merge-key`, or `""` when absent.
    pub fn patch_merge_key(&self) -> &'a str {
        self.lookup_key("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Whether the object is atomic (`x-kubernetes-map-type: atomic`).
    pub(crate) fn is_atomic_map(&self) -> bool {
        self.lookup_key("x-kubernetes-map-type")
            .and_then(Value::as_str)
            == Some("atomic")
    }

    /// The `default` of this node, if any.
    pub(crate) fn default_value(&self) -> Option<&'a Value> {
        self.lookup_key("default")
    }

    /// The list type as the API server's structured-merge-diff schema conversion derives it:
    /// `x-kubernetes-list-type` (with `x-kubernetes-list-map-keys`) when present, otherwise
    /// `x-kubernetes-patch-strategy: merge` makes a map keyed by the patch merge key (or a set
    /// without merge key), otherwise atomic.
    pub(crate) fn list_kind(&self) -> ListKind {
        match self
            .lookup_key("x-kubernetes-list-type")
            .and_then(Value::as_str)
        {
            Some("set") => return ListKind::Set,
            Some("map") => {
                let keys: Vec<String> = self
                    .lookup_key("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                if keys.is_empty() {
                    let key = self.patch_merge_key();
                    if key.is_empty() {
                        return ListKind::Atomic;
                    }
                    return ListKind::Map(vec![key.to_owned()]);
                }
                return ListKind::Map(keys);
            }
            Some(_) => return ListKind::Atomic,
            None => {}
        }
        if self.patch_strategies().contains(&"merge") {
            let key = self.patch_merge_key();
            if key.is_empty() {
                ListKind::Set
            } else {
                ListKind::Map(vec![key.to_owned()])
            }
        } else {
            ListKind::Atomic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schemas() -> serde_json::Map<String, Value> {
        json!({
            "io.k8s.api.core.v1.PodSpec": {
                "type": "object",
                "properties": {
                    "containers": {
                        "type": "array",
                        "items": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}], "default": {}},
                        "x-kubernetes-patch-strategy": "merge",
                        "x-kubernetes-patch-merge-key": "name",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"]
                    },
                    "nodeSelector": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
                    "volumes": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/io.k8s.api.core.v1.Volume"},
                        "x-kubernetes-patch-strategy": "merge,retainKeys",
                        "x-kubernetes-patch-merge-key": "name"
                    }
                }
            },
            "io.k8s.api.core.v1.Container": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "args": {"type": "array", "items": {"type": "string"}}}
            },
            "io.k8s.api.core.v1.Volume": {"type": "object", "properties": {"name": {"type": "string"}}}
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn follows_refs_and_reads_extensions() {
        let s = schemas();
        let pod = SchemaNode::named(&s, "io.k8s.api.core.v1.PodSpec");
        assert_eq!(pod.kind(), NodeKind::Struct);
        let containers = pod.field("containers");
        assert_eq!(containers.kind(), NodeKind::List);
        assert_eq!(containers.patch_strategies(), vec!["merge"]);
        assert_eq!(containers.patch_merge_key(), "name");
        assert_eq!(containers.list_kind(), ListKind::Map(vec!["name".into()]));
        let container = containers.items();
        assert_eq!(container.kind(), NodeKind::Struct);
        assert!(container.has_property("args"));
        assert_eq!(container.field("args").list_kind(), ListKind::Atomic);
        assert_eq!(pod.field("nodeSelector").kind(), NodeKind::Map);
        assert_eq!(
            pod.field("nodeSelector").field("x").kind(),
            NodeKind::Scalar
        );
        assert_eq!(
            pod.field("volumes").patch_strategies(),
            vec!["merge", "retainKeys"]
        );
        assert_eq!(
            pod.field("volumes").list_kind(),
            ListKind::Map(vec!["name".into()])
        );
        assert!(!pod.field("bogus").is_known());
        assert!(!SchemaNode::named(&s, "missing").is_known());
    }
}
