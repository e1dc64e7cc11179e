//! The annotated component schemas of every built-in type, keyed by upstream definition name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::{annotations, generated};

/// Prefix of every schema reference in the documents.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// Strategy of a list-valued property (`x-kubernetes-list-type` and its map keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListType {
    /// `atomic`: the list is replaced as a whole.
    Atomic,
    /// `set`: items are scalars, merged as a set.
    Set,
    /// `map`: items are objects identified by these keys.
    Map(&'static [&'static str]),
}

/// One resource type as registered by the generated table.
#[derive(Debug, Clone)]
struct ResourceEntry {
    definition: String,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    list_kind: Option<&'static str>,
}

/// Collects the schemas of all types through a `schemars` generator.
pub(crate) struct Builder {
    generator: SchemaGenerator,
    resources: Vec<ResourceEntry>,
}

impl Builder {
    fn new() -> Self {
        let mut settings = SchemaSettings::draft07();
        settings.definitions_path = "/components/schemas".into();
        settings.meta_schema = None;
        settings.transforms = Vec::new();
        Self {
            generator: SchemaGenerator::new(settings),
            resources: Vec::new(),
        }
    }

    /// Adds the schema of `T` (and everything it references).
    pub(crate) fn add_type<T: JsonSchema>(&mut self) {
        let _ = self.generator.subschema_for::<T>();
    }

    /// Adds a top-level resource type that has no list type.
    pub(crate) fn add_resource<T: JsonSchema + k8s_openapi::Resource>(&mut self) {
        self.add_type::<T>();
        self.resources.push(ResourceEntry {
            definition: T::schema_name().into_owned(),
            group: T::GROUP,
            version: T::VERSION,
            kind: T::KIND,
            list_kind: None,
        });
    }

    /// Adds a top-level resource type and (synthesized) its `…List` type.
    pub(crate) fn add_listable_resource<T: JsonSchema + k8s_openapi::ListableResource>(&mut self) {
        self.add_resource::<T>();
        if let Some(entry) = self.resources.last_mut() {
            entry.list_kind = Some(T::LIST_KIND);
        }
    }
}

/// Every component schema of the built-in API, keyed by upstream definition name (e.g.
/// `io.k8s.api.apps.v1.Deployment`), in the format of upstream's OpenAPI v3 documents: references
/// are `{"$ref":"#/components/schemas/<name>"}` (wrapped in `allOf` when they carry a description
/// or default), top-level kinds carry `x-kubernetes-group-version-kind`, and properties carry the
/// list/map/patch extensions (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
/// `x-kubernetes-map-type`, `x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`).
#[derive(Debug)]
pub struct Schemas {
    definitions: BTreeMap<String, Value>,
    /// `group/version/kind` → definition name.
    kinds: HashMap<String, String>,
}

static SCHEMAS: LazyLock<Schemas> = LazyLock::new(Schemas::build);

/// The schemas of all built-in types, built once on first use.
pub fn schemas() -> &'static Schemas {
    &SCHEMAS
}

fn gvk_key(group: &str, version: &str, kind: &str) -> String {
    format!("{group}/{version}/{kind}")
}

impl Schemas {
    /// The schema of the named definition, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.definitions.get(name)
    }

    /// The definition name of a served kind, e.g. `("apps", "v1", "Deployment")` →
    /// `io.k8s.api.apps.v1.Deployment`. List kinds (`DeploymentList`) resolve too.
    pub fn definition_for(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&gvk_key(group, version, kind))
            .map(String::as_str)
    }

    /// Resolves a schema through a reference (`$ref` or single-element `allOf` wrapping one):
    /// returns the referenced definition, or `schema` itself when it is no reference.
    pub fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match reference_of(schema) {
            Some(name) => self.get(name).unwrap_or(schema),
            None => schema,
        }
    }

    /// The schema of property `name` of `schema` (resolving `schema` through a reference first).
    /// The returned property schema is the one carrying the property's extensions
    /// (`x-kubernetes-list-type`, `x-kubernetes-patch-merge-key`, …); resolve it again to reach
    /// the referenced type's definition.
    pub fn property<'a>(&'a self, schema: &'a Value, name: &str) -> Option<&'a Value> {
        self.resolve(schema).get("properties")?.get(name)
    }

    /// All definition names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.definitions.keys().map(String::as_str)
    }

    /// The names of `roots` and of every definition reachable from them, sorted.
    pub fn reachable<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<String> = roots.into_iter().map(str::to_owned).collect();
        while let Some(name) = stack.pop() {
            if seen.contains(&name) {
                continue;
            }
            if let Some(schema) = self.definitions.get(&name) {
                collect_refs(schema, &mut stack);
                seen.insert(name);
            }
        }
        seen
    }

    fn build() -> Self {
        let mut builder = Builder::new();
        for add in generated::RESOURCES {
            add(&mut builder);
        }
        for add in generated::ALL_TYPES {
            add(&mut builder);
        }
        let Builder {
            mut generator,
            resources,
        } = builder;
        let mut definitions: BTreeMap<String, Value> =
            generator.take_definitions(false).into_iter().collect();

        // Group-version-kinds of every definition; the kind's list is synthesized.
        let mut gvks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut kinds = HashMap::new();
        let mut group_versions = BTreeSet::new();
        for r in &resources {
            group_versions.insert((r.group, r.version));
            gvks.entry(r.definition.clone())
                .or_default()
                .push(gvk_value(r.group, r.version, r.kind));
            kinds
                .entry(gvk_key(r.group, r.version, r.kind))
                .or_insert_with(|| r.definition.clone());
            if let Some(list_kind) = r.list_kind {
                let list_def = format!("{}List", r.definition);
                definitions
                    .entry(list_def.clone())
                    .or_insert_with(|| list_schema(&r.definition, r.kind));
                gvks.entry(list_def.clone())
                    .or_default()
                    .push(gvk_value(r.group, r.version, list_kind));
                kinds
                    .entry(gvk_key(r.group, r.version, list_kind))
                    .or_insert(list_def);
            }
        }
        // Meta types shared by every group-version, as upstream lists them.
        definitions
            .entry(WATCH_EVENT.to_owned())
            .or_insert_with(watch_event_schema);
        for shared in [DELETE_OPTIONS, WATCH_EVENT] {
            let kind = shared.rsplit('.').next().unwrap_or(shared);
            let mut list = vec![gvk_value("", "v1", kind)];
            for (group, version) in &group_versions {
                if !group.is_empty() {
                    list.push(gvk_value(group, version, kind));
                }
            }
            gvks.insert(shared.to_owned(), list);
        }

        // kube-openapi renders these two with `oneOf` in v3 (`OpenAPIV3OneOfTypes`).
        if let Some(Value::Object(d)) = definitions.get_mut(INT_OR_STRING) {
            d.remove("x-kubernetes-int-or-string");
            d.remove("type");
            d.insert("format".into(), "int-or-string".into());
            d.insert(
                "oneOf".into(),
                json!([{"type": "integer"}, {"type": "string"}]),
            );
        }
        if let Some(Value::Object(d)) = definitions.get_mut(QUANTITY) {
            d.remove("x-kubernetes-int-or-string");
            d.remove("type");
            d.insert(
                "oneOf".into(),
                json!([{"type": "string"}, {"type": "number"}]),
            );
        }

        annotate(&mut definitions, &gvks);
        for schema in definitions.values_mut() {
            wrap_ref_siblings(schema);
            sort_keys(schema);
        }
        Self { definitions, kinds }
    }
}

/// Definition name of `DeleteOptions`.
pub(crate) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
/// Definition name of `WatchEvent`.
pub(crate) const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";

fn gvk_value(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// `{"$ref":"#/components/schemas/<name>"}`.
pub(crate) fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{REF_PREFIX}{name}") })
}

/// The definition a schema refers to: `{"$ref":…}` or `{"allOf":[{"$ref":…}],…}`.
pub(crate) fn reference_of(schema: &Value) -> Option<&str> {
    let target = match schema.get("allOf").and_then(Value::as_array) {
        Some(all) if all.len() == 1 => &all[0],
        _ => schema,
    };
    target
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(REF_PREFIX))
}

fn collect_refs(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "$ref" {
                    if let Some(name) = value.as_str().and_then(|r| r.strip_prefix(REF_PREFIX)) {
                        out.push(name.to_owned());
                    }
                } else {
                    collect_refs(value, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

fn list_schema(item_definition: &str, kind: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "properties": {
            "apiVersion": {"description": API_VERSION_DESCRIPTION, "type": "string"},
            "items": {
                "description": format!("Items is the list of {kind} objects."),
                "items": {"$ref": format!("{REF_PREFIX}{item_definition}"), "default": {}},
                "type": "array"
            },
            "kind": {"description": KIND_DESCRIPTION, "type": "string"},
            "metadata": {
                "$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"),
                "default": {},
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
            }
        },
        "required": ["items"],
        "type": "object"
    })
}

fn watch_event_schema() -> Value {
    json!({
        "description": "Event represents a single event to a watched resource.",
        "properties": {
            "object": {
                "$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.runtime.RawExtension"),
                "description": "Object is:\n * If Type is Added or Modified: the new state of the object.\n * If Type is Deleted: the state of the object immediately before deletion.\n * If Type is Error: *Status is recommended; other types may make sense\n   depending on context."
            },
            "type": {"default": "", "type": "string"}
        },
        "required": ["type", "object"],
        "type": "object"
    })
}

fn is_object_definition(definitions: &BTreeMap<String, Value>, name: &str) -> bool {
    definitions
        .get(name)
        .and_then(|d| d.get("type"))
        .and_then(Value::as_str)
        == Some("object")
}

/// Adds the Kubernetes extensions and the `default: {}` markers to the raw schemars output.
fn annotate(definitions: &mut BTreeMap<String, Value>, gvks: &BTreeMap<String, Vec<Value>>) {
    // `default: {}` on array items that are structs and on the metadata/spec/status of kinds
    // (non-pointer Go structs), as upstream renders them.
    let object_defs: BTreeSet<String> = definitions
        .keys()
        .filter(|name| is_object_definition(definitions, name))
        .cloned()
        .collect();
    for (name, schema) in definitions.iter_mut() {
        let is_kind = gvks.contains_key(name);
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (prop_name, prop) in properties.iter_mut() {
            if let Some(items) = prop.get_mut("items") {
                add_default_if_struct_ref(items, &object_defs);
            }
            if is_kind && matches!(prop_name.as_str(), "metadata" | "spec" | "status") {
                add_default_if_struct_ref(prop, &object_defs);
            }
        }
    }

    for (def, prop, list_type) in generated::LIST_TYPES {
        set_list_type(definitions, def, prop, *list_type);
    }
    for (def, prop, list_type) in annotations::LIST_TYPE_OVERRIDES {
        set_list_type(definitions, def, prop, *list_type);
    }
    for (def, prop) in generated::ATOMIC_MAPS {
        if let Some(p) = property_mut(definitions, def, prop) {
            p.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
    }
    for (def, prop, strategy, key) in annotations::PATCH_STRATEGIES {
        if let Some(p) = property_mut(definitions, def, prop) {
            p.insert("x-kubernetes-patch-strategy".into(), (*strategy).into());
            if let Some(key) = key {
                p.insert("x-kubernetes-patch-merge-key".into(), (*key).into());
            }
        }
    }
    for def in annotations::ATOMIC_STRUCTS {
        if let Some(Value::Object(d)) = definitions.get_mut(*def) {
            d.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
    }
    for (def, list) in gvks {
        if let Some(Value::Object(d)) = definitions.get_mut(def) {
            d.insert(
                "x-kubernetes-group-version-kind".into(),
                Value::Array(list.clone()),
            );
        }
    }
}

fn add_default_if_struct_ref(schema: &mut Value, object_defs: &BTreeSet<String>) {
    let is_struct = reference_of(schema).is_some_and(|name| object_defs.contains(name));
    if let (true, Value::Object(map)) = (is_struct, schema) {
        map.entry("default").or_insert_with(|| json!({}));
    }
}

fn property_mut<'a>(
    definitions: &'a mut BTreeMap<String, Value>,
    def: &str,
    prop: &str,
) -> Option<&'a mut Map<String, Value>> {
    definitions
        .get_mut(def)?
        .get_mut("properties")?
        .get_mut(prop)?
        .as_object_mut()
}

fn set_list_type(definitions: &mut BTreeMap<String, Value>, def: &str, prop: &str, lt: ListType) {
    let Some(p) = property_mut(definitions, def, prop) else {
        return;
    };
    p.remove("x-kubernetes-list-map-keys");
    let name = match lt {
        ListType::Atomic => "atomic",
        ListType::Set => "set",
        ListType::Map(keys) => {
            p.insert("x-kubernetes-list-map-keys".into(), json!(keys));
            "map"
        }
    };
    p.insert("x-kubernetes-list-type".into(), name.into());
}

/// Rewrites `{"$ref":X, "description":…}` into upstream's `{"allOf":[{"$ref":X}], "description":…}`.
fn wrap_ref_siblings(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.len() > 1
                && let Some(r) = map.remove("$ref")
            {
                map.insert("allOf".into(), json!([{ "$ref": r }]));
            }
            map.values_mut().for_each(wrap_ref_siblings);
        }
        Value::Array(items) => items.iter_mut().for_each(wrap_ref_siblings),
        _ => {}
    }
}

/// Sorts object keys recursively (upstream documents are key-sorted; keeps the bytes stable).
pub(crate) fn sort_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop<'a>(def: &str, prop: &str) -> &'a Value {
        let schema = schemas()
            .get(def)
            .unwrap_or_else(|| panic!("missing {def}"));
        &schema["properties"][prop]
    }

    #[test]
    fn definition_for_kinds_and_lists() {
        let s = schemas();
        assert_eq!(
            s.definition_for("apps", "v1", "Deployment"),
            Some("io.k8s.api.apps.v1.Deployment")
        );
        assert_eq!(
            s.definition_for("", "v1", "Pod"),
            Some("io.k8s.api.core.v1.Pod")
        );
        assert_eq!(
            s.definition_for("apps", "v1", "DeploymentList"),
            Some("io.k8s.api.apps.v1.DeploymentList")
        );
        assert_eq!(s.definition_for("apps", "v1", "Nope"), None);
        assert!(
            s.get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
                .is_some()
        );
        assert!(s.get("io.k8s.api.core.v1.PodSpec").is_some());
    }

    #[test]
    fn deployment_replicas_description() {
        let s = schemas();
        let deployment = s.get("io.k8s.api.apps.v1.Deployment").expect("deployment");
        let spec = s.resolve(&deployment["properties"]["spec"]);
        let replicas = s
            .property(&deployment["properties"]["spec"], "replicas")
            .expect("spec.replicas");
        assert_eq!(replicas, &spec["properties"]["replicas"]);
        assert!(s.property(deployment, "nope").is_none());
        assert_eq!(
            spec["properties"]["replicas"]["description"],
            "Number of desired pods. This is a pointer to distinguish between explicit zero and not specified. Defaults to 1."
        );
        assert_eq!(spec["properties"]["replicas"]["type"], "integer");
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group":"apps","kind":"Deployment","version":"v1"}])
        );
    }

    #[test]
    fn refs_with_siblings_use_all_of() {
        let meta =
            &schemas().get("io.k8s.api.apps.v1.Deployment").expect("d")["properties"]["metadata"];
        assert_eq!(
            meta["allOf"],
            json!([{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}])
        );
        assert_eq!(meta["default"], json!({}));
        assert!(meta["description"].is_string());
        assert!(meta.get("$ref").is_none());
        let items = &prop("io.k8s.api.core.v1.PodSpec", "containers")["items"];
        assert_eq!(
            items,
            &json!({"allOf":[{"$ref":"#/components/schemas/io.k8s.api.core.v1.Container"}],"default":{}})
        );
    }

    #[test]
    fn pod_spec_merge_keys() {
        for field in [
            "containers",
            "initContainers",
            "ephemeralContainers",
            "imagePullSecrets",
        ] {
            let p = prop("io.k8s.api.core.v1.PodSpec", field);
            assert_eq!(p["x-kubernetes-patch-strategy"], "merge", "{field}");
            assert_eq!(p["x-kubernetes-patch-merge-key"], "name", "{field}");
            assert_eq!(p["x-kubernetes-list-type"], "map", "{field}");
            assert_eq!(p["x-kubernetes-list-map-keys"], json!(["name"]), "{field}");
        }
        let volumes = prop("io.k8s.api.core.v1.PodSpec", "volumes");
        assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
        assert_eq!(volumes["x-kubernetes-patch-merge-key"], "name");
        let tolerations = prop("io.k8s.api.core.v1.PodSpec", "tolerations");
        assert_eq!(tolerations["x-kubernetes-list-type"], "atomic");
        assert!(tolerations.get("x-kubernetes-patch-strategy").is_none());
        assert_eq!(
            prop("io.k8s.api.core.v1.PodSpec", "nodeSelector")["x-kubernetes-map-type"],
            "atomic"
        );
    }

    #[test]
    fn container_lists() {
        let env = prop("io.k8s.api.core.v1.Container", "env");
        assert_eq!(env["x-kubernetes-patch-merge-key"], "name");
        let ports = prop("io.k8s.api.core.v1.Container", "ports");
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        let mounts = prop("io.k8s.api.core.v1.Container", "volumeMounts");
        assert_eq!(mounts["x-kubernetes-patch-merge-key"], "mountPath");
        assert_eq!(mounts["x-kubernetes-list-map-keys"], json!(["mountPath"]));
        let svc = prop("io.k8s.api.core.v1.ServiceSpec", "ports");
        assert_eq!(svc["x-kubernetes-patch-merge-key"], "port");
        assert_eq!(
            svc["x-kubernetes-list-map-keys"],
            json!(["port", "protocol"])
        );
    }

    #[test]
    fn meta_and_status_lists() {
        let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
        let finalizers = prop(meta, "finalizers");
        assert_eq!(finalizers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(finalizers["x-kubernetes-list-type"], "set");
        let owners = prop(meta, "ownerReferences");
        assert_eq!(owners["x-kubernetes-patch-merge-key"], "uid");
        assert_eq!(owners["x-kubernetes-list-map-keys"], json!(["uid"]));
        for def in [
            "io.k8s.api.core.v1.PodStatus",
            "io.k8s.api.apps.v1.DeploymentStatus",
            "io.k8s.api.apps.v1.ReplicaSetStatus",
            "io.k8s.api.core.v1.NodeStatus",
            "io.k8s.api.core.v1.NamespaceStatus",
        ] {
            let c = prop(def, "conditions");
            assert_eq!(c["x-kubernetes-patch-strategy"], "merge", "{def}");
            assert_eq!(c["x-kubernetes-patch-merge-key"], "type", "{def}");
            assert_eq!(c["x-kubernetes-list-type"], "map", "{def}");
        }
        assert_eq!(
            prop("io.k8s.api.core.v1.NodeStatus", "addresses")["x-kubernetes-patch-merge-key"],
            "type"
        );
        assert_eq!(
            prop("io.k8s.api.core.v1.NodeSpec", "taints")["x-kubernetes-list-type"],
            "atomic"
        );
        for field in ["addresses", "notReadyAddresses", "ports"] {
            assert_eq!(
                prop("io.k8s.api.core.v1.EndpointSubset", field)["x-kubernetes-list-type"],
                "atomic"
            );
        }
        for field in ["endpoints", "ports"] {
            assert_eq!(
                prop("io.k8s.api.discovery.v1.EndpointSlice", field)["x-kubernetes-list-type"],
                "atomic"
            );
        }
        assert_eq!(
            prop("io.k8s.api.batch.v1.JobStatus", "conditions")["x-kubernetes-list-type"],
            "atomic"
        );
        assert_eq!(
            schemas()
                .get("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")
                .expect("ls")["x-kubernetes-map-type"],
            "atomic"
        );
    }

    #[test]
    fn secret_and_configmap_data_are_maps() {
        let data = prop("io.k8s.api.core.v1.Secret", "data");
        assert_eq!(data["type"], "object");
        assert_eq!(data["additionalProperties"]["format"], "byte");
        let cm = prop("io.k8s.api.core.v1.ConfigMap", "data");
        assert_eq!(cm["additionalProperties"]["type"], "string");
    }

    #[test]
    fn int_or_string_and_quantity_use_one_of() {
        let ios = schemas().get(INT_OR_STRING).expect("IntOrString");
        assert_eq!(ios["format"], "int-or-string");
        assert_eq!(
            ios["oneOf"],
            json!([{"type": "integer"}, {"type": "string"}])
        );
        assert!(ios.get("x-kubernetes-int-or-string").is_none());
        let q = schemas().get(QUANTITY).expect("Quantity");
        assert_eq!(q["oneOf"], json!([{"type": "string"}, {"type": "number"}]));
    }

    #[test]
    fn reachable_includes_transitive_refs() {
        let names = schemas().reachable(["io.k8s.api.apps.v1.Deployment"]);
        for n in [
            "io.k8s.api.apps.v1.DeploymentSpec",
            "io.k8s.api.core.v1.PodSpec",
            "io.k8s.api.core.v1.Container",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "io.k8s.apimachinery.pkg.api.resource.Quantity",
        ] {
            assert!(names.contains(n), "{n}");
        }
        assert!(!names.contains("io.k8s.api.batch.v1.Job"));
    }

    #[test]
    fn shared_meta_types_have_gvks() {
        let delete = schemas().get(DELETE_OPTIONS).expect("DeleteOptions");
        let gvks = delete["x-kubernetes-group-version-kind"]
            .as_array()
            .expect("gvks");
        assert!(gvks.contains(&gvk_value("", "v1", "DeleteOptions")));
        assert!(gvks.contains(&gvk_value("apps", "v1", "DeleteOptions")));
        assert!(schemas().get(WATCH_EVENT).is_some());
    }
}
