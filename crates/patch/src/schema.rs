//! Navigation of upstream OpenAPI v3 component schemas: `$ref`s, `allOf` wrappers, `properties`,
//! `items`, `additionalProperties` and the `x-kubernetes-*` patch and list extensions.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

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
///
/// Nodes of the served schemas ([`openapi::schemas`]) are answered from a graph compiled once
/// per process, in which every `$ref`/`allOf` is already followed; other schemas are navigated
/// directly (following references on every step).
#[derive(Clone, Copy)]
pub struct SchemaNode<'a> {
    repr: Repr<'a>,
}

#[derive(Clone, Copy)]
enum Repr<'a> {
    /// No schema.
    Unknown,
    /// A schema navigated directly.
    Dynamic(Dynamic<'a>),
    /// A node of a compiled graph.
    Compiled(&'a Graph<'a>, u32),
}

impl std::fmt::Debug for SchemaNode<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let schema = match self.repr {
            Repr::Unknown => None,
            Repr::Dynamic(d) => Some(d.schema),
            Repr::Compiled(g, id) => Some(g.info(id).schema),
        };
        f.debug_struct("SchemaNode")
            .field("schema", &schema)
            .finish_non_exhaustive()
    }
}

impl<'a> SchemaNode<'a> {
    /// A node without schema (e.g. a custom resource without a known schema).
    pub fn none() -> Self {
        SchemaNode {
            repr: Repr::Unknown,
        }
    }

    /// The node of the named component schema (e.g. `io.k8s.api.apps.v1.Deployment`); unknown
    /// when the lookup has no such schema.
    ///
    /// When `lookup` returns a definition of [`openapi::schemas`] itself (as every lookup that
    /// delegates to it does), the node is served from the compiled graph of those schemas, so
    /// its references are resolved as `openapi::schemas()` resolves them.
    pub fn named(lookup: &'a dyn SchemaLookup, name: &str) -> Self {
        match lookup.get(name) {
            Some(schema) => SchemaNode::new(lookup, schema),
            None => SchemaNode::none(),
        }
    }

    /// A node for an inline schema whose `$ref`s resolve through `lookup` (served from the
    /// compiled graph when `schema` is a node of [`openapi::schemas`], see [`SchemaNode::named`]).
    pub fn new(lookup: &'a dyn SchemaLookup, schema: &'a Value) -> Self {
        let graph = builtin_graph();
        let repr = match graph.id_of(schema) {
            Some(id) => Repr::Compiled(graph, id),
            None => Repr::Dynamic(Dynamic { lookup, schema }),
        };
        SchemaNode { repr }
    }

    /// A node navigated directly, never through a compiled graph.
    #[cfg(test)]
    pub(crate) fn dynamic(lookup: &'a dyn SchemaLookup, name: &str) -> Self {
        match lookup.get(name) {
            Some(schema) => SchemaNode {
                repr: Repr::Dynamic(Dynamic { lookup, schema }),
            },
            None => SchemaNode::none(),
        }
    }

    /// Whether a schema is known for this node.
    pub fn is_known(&self) -> bool {
        !matches!(self.repr, Repr::Unknown)
    }

    fn compiled(graph: &'a Graph<'a>, id: Option<u32>) -> Self {
        let repr = match id {
            Some(id) => Repr::Compiled(graph, id),
            None => Repr::Unknown,
        };
        SchemaNode { repr }
    }

    fn dynamic_opt(d: Dynamic<'a>, schema: Option<&'a Value>) -> Self {
        let repr = match schema {
            Some(schema) => Repr::Dynamic(Dynamic {
                lookup: d.lookup,
                schema,
            }),
            None => Repr::Unknown,
        };
        SchemaNode { repr }
    }

    /// What this node describes.
    pub(crate) fn kind(&self) -> NodeKind {
        match self.repr {
            Repr::Unknown => NodeKind::Unknown,
            Repr::Dynamic(d) => d.kind(),
            Repr::Compiled(g, id) => g.info(id).kind,
        }
    }

    /// The schema of field `name` of this object (a named property, else the
    /// `additionalProperties` schema); unknown otherwise.
    pub fn field(&self, name: &str) -> SchemaNode<'a> {
        match self.repr {
            Repr::Unknown => SchemaNode::none(),
            Repr::Dynamic(d) => SchemaNode::dynamic_opt(d, d.field(name)),
            Repr::Compiled(g, id) => {
                let info = g.info(id);
                SchemaNode::compiled(g, info.property(name).or(info.additional))
            }
        }
    }

    /// Whether `name` is listed in the object's `required` properties (in Go, a field without
    /// `omitempty`, always present in the encoded object).
    pub(crate) fn is_required(&self, name: &str) -> bool {
        match self.repr {
            Repr::Unknown => false,
            Repr::Dynamic(d) => d.is_required(name),
            Repr::Compiled(g, id) => g.info(id).required.contains(&name),
        }
    }

    /// Whether `name` is a named property of this object.
    pub(crate) fn has_property(&self, name: &str) -> bool {
        match self.repr {
            Repr::Unknown => false,
            Repr::Dynamic(d) => d.has_property(name),
            Repr::Compiled(g, id) => g.info(id).property(name).is_some(),
        }
    }

    /// The schema of the items of this list; unknown otherwise.
    pub fn items(&self) -> SchemaNode<'a> {
        match self.repr {
            Repr::Unknown => SchemaNode::none(),
            Repr::Dynamic(d) => SchemaNode::dynamic_opt(d, d.lookup_key("items")),
            Repr::Compiled(g, id) => SchemaNode::compiled(g, g.info(id).items),
        }
    }

    /// `x-kubernetes-patch-strategy`, split at commas (empty when absent).
    pub fn patch_strategies(&self) -> Vec<&'a str> {
        match self.repr {
            Repr::Unknown => Vec::new(),
            Repr::Dynamic(d) => d.patch_strategies(),
            Repr::Compiled(g, id) => g.info(id).strategies.clone(),
        }
    }

    /// `x-kubernetes-patch-merge-key`, or `""` when absent.
    pub fn patch_merge_key(&self) -> &'a str {
        match self.repr {
            Repr::Unknown => "",
            Repr::Dynamic(d) => d.patch_merge_key(),
            Repr::Compiled(g, id) => g.info(id).merge_key,
        }
    }

    /// Whether the object is atomic (`x-kubernetes-map-type: atomic`).
    pub(crate) fn is_atomic_map(&self) -> bool {
        match self.repr {
            Repr::Unknown => false,
            Repr::Dynamic(d) => d.is_atomic_map(),
            Repr::Compiled(g, id) => g.info(id).atomic_map,
        }
    }

    /// The `default` of this node, if any.
    pub(crate) fn default_value(&self) -> Option<&'a Value> {
        match self.repr {
            Repr::Unknown => None,
            Repr::Dynamic(d) => d.lookup_key("default"),
            Repr::Compiled(g, id) => g.info(id).default,
        }
    }

    /// The list type as the API server's structured-merge-diff schema conversion derives it:
    /// `x-kubernetes-list-type` (with `x-kubernetes-list-map-keys`) when present, otherwise
    /// `x-kubernetes-patch-strategy: merge` makes a map keyed by the patch merge key (or a set
    /// without merge key), otherwise atomic.
    pub(crate) fn list_kind(&self) -> Cow<'a, ListKind> {
        match self.repr {
            Repr::Unknown => Cow::Owned(ListKind::Atomic),
            Repr::Dynamic(d) => Cow::Owned(d.list_kind()),
            Repr::Compiled(g, id) => Cow::Borrowed(&g.info(id).list_kind),
        }
    }
}

/// A schema navigated directly: every query follows the reference chain anew.
#[derive(Clone, Copy)]
struct Dynamic<'a> {
    lookup: &'a dyn SchemaLookup,
    schema: &'a Value,
}

impl<'a> Dynamic<'a> {
    /// The chain of schemas from the field's own schema through its references.
    fn chain(&self) -> Vec<&'a Value> {
        let mut out = Vec::new();
        let mut cur = Some(self.schema);
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
        let target = s.get("$ref").and_then(Value::as_str).or_else(|| {
            ["allOf", "anyOf", "oneOf"].iter().find_map(|k| {
                s.get(*k)
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find_map(|e| e.get("$ref")))
                    .and_then(Value::as_str)
            })
        })?;
        let name = target.strip_prefix(REF_PREFIX).unwrap_or(target);
        self.lookup.get(name)
    }

    /// The first value of `key` along the reference chain (the field's own schema first).
    fn lookup_key(&self, key: &str) -> Option<&'a Value> {
        self.chain().into_iter().find_map(|s| s.get(key))
    }

    fn kind(&self) -> NodeKind {
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

    fn field(&self, name: &str) -> Option<&'a Value> {
        let chain = self.chain();
        if let Some(p) = chain
            .iter()
            .find_map(|s| s.get("properties").and_then(|p| p.get(name)))
        {
            return Some(p);
        }
        self.additional(&chain)
    }

    /// The first object `additionalProperties` along the chain.
    fn additional(&self, chain: &[&'a Value]) -> Option<&'a Value> {
        chain
            .iter()
            .find_map(|s| s.get("additionalProperties").filter(|a| a.is_object()))
    }

    fn is_required(&self, name: &str) -> bool {
        self.chain().iter().any(|s| {
            s.get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|v| v.as_str() == Some(name)))
        })
    }

    fn has_property(&self, name: &str) -> bool {
        self.chain()
            .iter()
            .any(|s| s.get("properties").and_then(|p| p.get(name)).is_some())
    }

    fn patch_strategies(&self) -> Vec<&'a str> {
        self.lookup_key("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .map(|s| s.split(',').collect())
            .unwrap_or_default()
    }

    fn patch_merge_key(&self) -> &'a str {
        self.lookup_key("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn is_atomic_map(&self) -> bool {
        self.lookup_key("x-kubernetes-map-type")
            .and_then(Value::as_str)
            == Some("atomic")
    }

    fn list_kind(&self) -> ListKind {
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

/// Everything the walks ask of one schema node, computed once from its reference chain (by the
/// [`Dynamic`] navigation, so both answer alike).
struct Info<'a> {
    /// The node's own schema.
    schema: &'a Value,
    kind: NodeKind,
    atomic_map: bool,
    list_kind: ListKind,
    strategies: Vec<&'a str>,
    merge_key: &'a str,
    default: Option<&'a Value>,
    /// Named properties along the chain (the first schema naming one wins), sorted by name.
    properties: Vec<(&'a str, u32)>,
    /// Names listed in any `required` along the chain.
    required: Vec<&'a str>,
    additional: Option<u32>,
    items: Option<u32>,
}

impl Info<'_> {
    fn property(&self, name: &str) -> Option<u32> {
        self.properties
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| self.properties[i].1)
    }
}

/// Schema nodes with their references resolved, indexed by the address of each node's own
/// schema value (stable: the schemas are borrowed for the graph's whole life).
pub(crate) struct Graph<'a> {
    nodes: Vec<Info<'a>>,
    ids: HashMap<usize, u32>,
}

fn address(v: &Value) -> usize {
    std::ptr::from_ref(v) as usize
}

impl<'a> Graph<'a> {
    /// Compiles every node reachable from `roots` (through properties, `additionalProperties`
    /// and `items`, following references) in `lookup`.
    pub(crate) fn build(
        lookup: &'a dyn SchemaLookup,
        roots: impl IntoIterator<Item = &'a Value>,
    ) -> Self {
        let mut graph = Graph {
            nodes: Vec::new(),
            ids: HashMap::new(),
        };
        let mut pending = Vec::new();
        for root in roots {
            graph.intern(root, &mut pending);
        }
        while let Some((id, schema)) = pending.pop() {
            let info = graph.compile(Dynamic { lookup, schema }, &mut pending);
            graph.nodes[id as usize] = info;
        }
        graph
    }

    /// The id of `schema`, allocating it (with a placeholder compiled later) when new.
    fn intern(&mut self, schema: &'a Value, pending: &mut Vec<(u32, &'a Value)>) -> u32 {
        if let Some(&id) = self.ids.get(&address(schema)) {
            return id;
        }
        let id = u32::try_from(self.nodes.len()).expect("fewer than 2^32 schema nodes");
        self.ids.insert(address(schema), id);
        self.nodes.push(Info {
            schema,
            kind: NodeKind::Unknown,
            atomic_map: false,
            list_kind: ListKind::Atomic,
            strategies: Vec::new(),
            merge_key: "",
            default: None,
            properties: Vec::new(),
            required: Vec::new(),
            additional: None,
            items: None,
        });
        pending.push((id, schema));
        id
    }

    fn compile(&mut self, d: Dynamic<'a>, pending: &mut Vec<(u32, &'a Value)>) -> Info<'a> {
        let chain = d.chain();
        let mut properties: Vec<(&'a str, &'a Value)> = chain
            .iter()
            .filter_map(|s| s.get("properties").and_then(Value::as_object))
            .flat_map(|p| p.iter().map(|(k, v)| (k.as_str(), v)))
            .collect();
        // Stable: the first schema of the chain naming a property wins, as in `Dynamic::field`.
        properties.sort_by(|a, b| a.0.cmp(b.0));
        properties.dedup_by(|later, first| later.0 == first.0);
        let required = chain
            .iter()
            .filter_map(|s| s.get("required").and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        Info {
            schema: d.schema,
            kind: d.kind(),
            atomic_map: d.is_atomic_map(),
            list_kind: d.list_kind(),
            strategies: d.patch_strategies(),
            merge_key: d.patch_merge_key(),
            default: d.lookup_key("default"),
            properties: properties
                .into_iter()
                .map(|(k, v)| (k, self.intern(v, pending)))
                .collect(),
            required,
            additional: d.additional(&chain).map(|v| self.intern(v, pending)),
            items: d.lookup_key("items").map(|v| self.intern(v, pending)),
        }
    }

    fn info(&self, id: u32) -> &Info<'a> {
        &self.nodes[id as usize]
    }

    fn id_of(&self, schema: &Value) -> Option<u32> {
        self.ids.get(&address(schema)).copied()
    }

    /// The node of `schema` if it is part of this graph.
    #[cfg(test)]
    pub(crate) fn node(&'a self, schema: &Value) -> SchemaNode<'a> {
        SchemaNode::compiled(self, self.id_of(schema))
    }

    /// The number of compiled nodes.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }
}

/// The compiled graph of every definition of [`openapi::schemas`].
fn builtin_graph() -> &'static Graph<'static> {
    static GRAPH: LazyLock<Graph<'static>> = LazyLock::new(|| {
        let schemas = openapi::schemas();
        Graph::build(schemas, schemas.names().filter_map(|n| schemas.get(n)))
    });
    &GRAPH
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
        assert_eq!(
            containers.list_kind().into_owned(),
            ListKind::Map(vec!["name".into()])
        );
        let container = containers.items();
        assert_eq!(container.kind(), NodeKind::Struct);
        assert!(container.has_property("args"));
        assert_eq!(
            container.field("args").list_kind().into_owned(),
            ListKind::Atomic
        );
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
            pod.field("volumes").list_kind().into_owned(),
            ListKind::Map(vec!["name".into()])
        );
        assert!(!pod.field("bogus").is_known());
        assert!(!SchemaNode::named(&s, "missing").is_known());
    }

    /// Asserts that two nodes answer every query alike, down to `depth` levels of fields and
    /// items.
    fn assert_same(a: SchemaNode, b: SchemaNode, path: &str, depth: usize) {
        assert_eq!(a.is_known(), b.is_known(), "{path}");
        assert_eq!(a.kind(), b.kind(), "{path}");
        assert_eq!(a.list_kind(), b.list_kind(), "{path}");
        assert_eq!(a.patch_strategies(), b.patch_strategies(), "{path}");
        assert_eq!(a.patch_merge_key(), b.patch_merge_key(), "{path}");
        assert_eq!(a.is_atomic_map(), b.is_atomic_map(), "{path}");
        assert_eq!(a.default_value(), b.default_value(), "{path}");
        if depth == 0 {
            return;
        }
        let Repr::Dynamic(d) = b.repr else {
            return;
        };
        let mut names: Vec<&str> = d
            .chain()
            .iter()
            .filter_map(|s| s.get("properties").and_then(Value::as_object))
            .flat_map(|p| p.keys().map(String::as_str))
            .collect();
        names.push("no-such-property");
        for n in names {
            assert_eq!(a.has_property(n), b.has_property(n), "{path}.{n}");
            assert_eq!(a.is_required(n), b.is_required(n), "{path}.{n}");
            assert_same(a.field(n), b.field(n), &format!("{path}.{n}"), depth - 1);
        }
        assert_same(a.items(), b.items(), &format!("{path}[]"), depth - 1);
    }

    #[test]
    fn compiled_graph_answers_as_direct_navigation() {
        let s = schemas();
        let graph = Graph::build(&s, s.values());
        assert!(graph.len() > s.len());
        for name in s.keys() {
            let compiled = graph.node(&s[name]);
            assert!(matches!(compiled.repr, Repr::Compiled(..)));
            assert_same(compiled, SchemaNode::dynamic(&s, name), name, 4);
        }
        let pod = graph.node(&s["io.k8s.api.core.v1.PodSpec"]);
        assert_eq!(
            pod.field("containers").items().field("args").kind(),
            NodeKind::List
        );
        assert!(!pod.field("bogus").is_known());
    }

    #[test]
    fn served_schemas_are_compiled_and_answer_as_direct_navigation() {
        let served = openapi::schemas();
        /// Delegates to the served schemas, as the API server's lookup does.
        struct Delegate;
        impl SchemaLookup for Delegate {
            fn get(&self, name: &str) -> Option<&Value> {
                openapi::schemas().get(name)
            }
        }
        let pod = SchemaNode::named(&Delegate, "io.k8s.api.core.v1.Pod");
        assert!(matches!(pod.repr, Repr::Compiled(..)));
        assert!(matches!(
            pod.field("spec").field("containers").items().repr,
            Repr::Compiled(..)
        ));
        for name in served.names() {
            assert_same(
                SchemaNode::named(served, name),
                SchemaNode::dynamic(served, name),
                name,
                3,
            );
        }
        // Other lookups are navigated directly.
        let s = schemas();
        assert!(matches!(
            SchemaNode::named(&s, "io.k8s.api.core.v1.PodSpec").repr,
            Repr::Dynamic(_)
        ));
    }
}
