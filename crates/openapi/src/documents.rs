//! The `/openapi/v3` index and the per-group-version OpenAPI 3.0 documents.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use crate::KindInfo;
use crate::schemas::{REF_PREFIX, reference, schemas, sort_keys};

const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = crate::schemas::DELETE_OPTIONS;
const WATCH_EVENT: &str = crate::schemas::WATCH_EVENT;
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
const BINDING: &str = "io.k8s.api.core.v1.Binding";

/// A rendered group-version document: its JSON, its serialized bytes and their hash.
#[derive(Debug)]
pub struct GroupVersionDocument {
    /// The OpenAPI 3.0 document.
    pub value: Value,
    /// `value` serialized as JSON (what is served; the hash is computed over these bytes).
    pub bytes: Arc<[u8]>,
    /// Upper-case hex SHA-512 of `bytes`, as upstream's `?hash=` query parameter and `ETag`.
    pub hash: String,
}

/// The request path of a group-version's document below `/openapi/v3/`: `api/v1` for the core
/// group, `apis/<group>/<version>` otherwise.
pub fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The `/openapi/v3` index: `{"paths":{"api/v1":{"serverRelativeURL":"/openapi/v3/api/v1?hash=…"},…}}`
/// listing every group-version of `kinds`.
pub fn index_document(kinds: &[KindInfo]) -> Value {
    let mut group_versions: Vec<(&str, &str)> = kinds
        .iter()
        .map(|k| (k.group.as_str(), k.version.as_str()))
        .collect();
    group_versions.sort_unstable();
    group_versions.dedup();
    let mut paths = Map::new();
    for (group, version) in group_versions {
        let Some(doc) = document(kinds, group, version) else {
            continue;
        };
        let path = group_version_path(group, version);
        let url = format!("/openapi/v3/{path}?hash={}", doc.hash);
        paths.insert(path, json!({ "serverRelativeURL": url }));
    }
    json!({ "paths": paths })
}

/// The OpenAPI 3.0 document of one group-version and its hash, or `None` when `kinds` has no
/// kind in that group-version. Documents are immutable: they are cached per set of kinds.
pub fn group_version_document(
    kinds: &[KindInfo],
    group: &str,
    version: &str,
) -> Option<(Value, String)> {
    document(kinds, group, version).map(|d| (d.value.clone(), d.hash.clone()))
}

/// Like [`group_version_document`], but shares the cached rendering (serialized bytes included),
/// which is what an HTTP handler should serve.
pub fn group_version_document_shared(
    kinds: &[KindInfo],
    group: &str,
    version: &str,
) -> Option<Arc<GroupVersionDocument>> {
    document(kinds, group, version)
}

type CacheKey = (String, String, Vec<KindInfo>);

/// Bound on cached renderings; each set of kinds of a group-version is one entry, so this only
/// matters when custom resources keep changing.
const CACHE_LIMIT: usize = 256;

static CACHE: LazyLock<Mutex<HashMap<CacheKey, Arc<GroupVersionDocument>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn document(kinds: &[KindInfo], group: &str, version: &str) -> Option<Arc<GroupVersionDocument>> {
    let mut gv_kinds: Vec<KindInfo> = kinds
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .cloned()
        .collect();
    if gv_kinds.is_empty() {
        return None;
    }
    gv_kinds.sort();
    let key = (group.to_owned(), version.to_owned(), gv_kinds);
    if let Some(doc) = lock_cache().get(&key) {
        return Some(Arc::clone(doc));
    }
    // Rendered outside the lock: concurrent first requests may render twice, with equal results.
    let value = render(&key.2, group, version);
    let bytes: Arc<[u8]> = serde_json::to_vec(&value)
        .expect("a serde_json::Value always serializes")
        .into();
    let hash = hex::encode_upper(Sha512::digest(&bytes));
    let doc = Arc::new(GroupVersionDocument { value, bytes, hash });
    let mut cache = lock_cache();
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    Some(Arc::clone(cache.entry(key).or_insert(doc)))
}

fn lock_cache() -> std::sync::MutexGuard<'static, HashMap<CacheKey, Arc<GroupVersionDocument>>> {
    // The cache only holds finished renderings, so a panic elsewhere cannot leave it inconsistent.
    CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Upstream's spelling of a group in operation ids (`AppsV1`, `RbacAuthorizationV1`, `CoreV1`).
fn group_camel(group: &str, upper_first: bool) -> String {
    if group.is_empty() {
        return if upper_first { "Core" } else { "core" }.to_owned();
    }
    let trimmed = group.strip_suffix(".k8s.io").unwrap_or(group);
    let mut out = String::new();
    for (i, part) in trimmed
        .split(['.', '-'])
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            if i == 0 && !upper_first {
                out.push(first);
            } else {
                out.extend(first.to_uppercase());
            }
            out.push_str(chars.as_str());
        }
    }
    out
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Definition name for a kind that has no built-in schema (custom resources), as upstream names
/// CRD schemas: the reversed group, the version and the kind (`com.example.v1.Widget`).
fn custom_definition(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').collect();
    parts.reverse();
    format!("{}.{version}.{kind}", parts.join("."))
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

fn query_param(name: &str, description: &str, ty: &str) -> Value {
    json!({
        "description": description,
        "in": "query",
        "name": name,
        "schema": {"type": ty, "uniqueItems": true}
    })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "description": description,
        "in": "path",
        "name": name,
        "required": true,
        "schema": {"type": "string", "uniqueItems": true}
    })
}

const DRY_RUN: &str = "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed";
const FIELD_MANAGER: &str = "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.";
const FIELD_MANAGER_PATCH: &str = "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch).";
const FIELD_VALIDATION: &str = "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.";
const FORCE: &str = "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.";
const PRETTY: &str = "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).";
const CONTINUE: &str = "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize. If the specified continue value is no longer valid whether due to expiration (generally five to fifteen minutes) or a configuration change on the server, the server will respond with a 410 ResourceExpired error together with a continue token. If the client needs a consistent list, it must restart their list without the continue field. Otherwise, the client may send another list request with the token received with the 410 error, the server will respond with a list starting from the next key, but from the latest snapshot, which is inconsistent from the previous list results - objects that are created, modified, or deleted after the first list request will be included in the response, as long as their keys are after the \"next key\".\n\nThis field is not supported when watch is true. Clients may start a watch from the last resourceVersion value returned by the server and not miss any modifications.";
const LIMIT: &str = "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results. Setting a limit may return fewer than the requested amount of items (up to zero items) in the event all requested objects are filtered out and clients should only use the presence of the continue field to determine whether more results are available. Servers may choose not to support the limit argument and will return all of the available results. If limit is specified and the continue field is empty, clients may assume that no more results are available. This field is not supported if watch is true.\n\nThe server guarantees that the objects returned when using continue will be identical to issuing a single list call without a limit - that is, no objects created, modified, or deleted after the first request is issued will be included in any subsequent continued requests. This is sometimes referred to as a consistent snapshot, and ensures that a client that is using limit to receive smaller chunks of a very large result can ensure they see all possible objects. If objects are updated during a chunked list the version of the object that was present at the time the first list result was calculated is returned.";
const SEND_INITIAL_EVENTS: &str = "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event  will be sent. The bookmark will report the ResourceVersion (RV) corresponding to the set of objects, and be marked with `\"k8s.io/initial-events-end\": \"true\"` annotation. Afterwards, the watch stream will proceed as usual, sending watch events corresponding to changes (subsequent to the RV) to objects watched.\n\nWhen `sendInitialEvents` option is set, we require `resourceVersionMatch` option to also be set. The semantic of the watch request is as following: - `resourceVersionMatch` = NotOlderThan\n  is interpreted as \"data at least as new as the provided `resourceVersion`\"\n  and the bookmark event is send when the state is synced\n  to a `resourceVersion` at least as fresh as the one provided by the ListOptions.\n  If `resourceVersion` is unset, this is interpreted as \"consistent read\" and the\n  bookmark event is send when the state is synced at least to the moment\n  when request started being processed.\n- `resourceVersionMatch` set to any other value or unset\n  Invalid error is returned.\n\nDefaults to true if `resourceVersion=\"\"` or `resourceVersion=\"0\"` (for backward compatibility reasons) and to false otherwise.";
const NAMESPACE: &str = "object name and auth scope, such as for teams and projects";

fn write_params(patch: bool) -> Vec<Value> {
    let mut params = vec![
        query_param("dryRun", DRY_RUN, "string"),
        query_param(
            "fieldManager",
            if patch {
                FIELD_MANAGER_PATCH
            } else {
                FIELD_MANAGER
            },
            "string",
        ),
        query_param("fieldValidation", FIELD_VALIDATION, "string"),
    ];
    if patch {
        params.push(query_param("force", FORCE, "boolean"));
    }
    params
}

fn list_params() -> Vec<Value> {
    vec![
        query_param(
            "allowWatchBookmarks",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored.",
            "boolean",
        ),
        query_param("continue", CONTINUE, "string"),
        query_param(
            "fieldSelector",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
            "string",
        ),
        query_param(
            "labelSelector",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
            "string",
        ),
        query_param("limit", LIMIT, "integer"),
        query_param(
            "resourceVersion",
            "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
            "string",
        ),
        query_param(
            "resourceVersionMatch",
            "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
            "string",
        ),
        query_param("sendInitialEvents", SEND_INITIAL_EVENTS, "boolean"),
        query_param(
            "timeoutSeconds",
            "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
            "integer",
        ),
        query_param(
            "watch",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
            "boolean",
        ),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        query_param("dryRun", DRY_RUN, "string"),
        query_param(
            "gracePeriodSeconds",
            "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.",
            "integer",
        ),
        query_param(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error. A resource is considered corrupt if it can not be retrieved from the underlying storage successfully because of a) its data can not be transformed e.g. decryption failure, or b) it fails to decode into an object. NOTE: unsafe deletion ignores finalizer constraints, skips precondition checks, and removes the object from the storage. WARNING: This may potentially break the cluster if the workload associated with the resource being unsafe-deleted relies on normal deletion flow. Use only if you REALLY know what you are doing. The default value is false, and the user must opt in to enable it",
            "boolean",
        ),
        query_param(
            "orphanDependents",
            "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.",
            "boolean",
        ),
        query_param(
            "propagationPolicy",
            "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.",
            "string",
        ),
    ]
}

fn content(definition: &str, types: &[&str]) -> Value {
    let mut map = Map::new();
    for ty in types {
        map.insert((*ty).to_owned(), json!({ "schema": reference(definition) }));
    }
    Value::Object(map)
}

const RESPONSE_TYPES: &[&str] = &[
    "application/json",
    "application/vnd.kubernetes.protobuf",
    "application/yaml",
];
const WATCH_TYPES: &[&str] = &[
    "application/json",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf",
    "application/vnd.kubernetes.protobuf;stream=watch",
    "application/yaml",
];

fn responses(definition: &str, codes: &[(&str, &str)], types: &[&str]) -> Value {
    let mut map = Map::new();
    for (code, description) in codes {
        map.insert(
            (*code).to_owned(),
            json!({"content": content(definition, types), "description": description}),
        );
    }
    map.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(map)
}

/// The per-kind naming pieces of operations.
struct OpContext<'a> {
    gv_camel: String,
    tag: String,
    gvk: Value,
    kind: &'a str,
}

impl OpContext<'_> {
    #[allow(clippy::too_many_arguments)]
    fn op(
        &self,
        action: &str,
        op_id: String,
        description: String,
        params: Vec<Value>,
        request_body: Option<Value>,
        responses: Value,
        gvk: Option<&Value>,
    ) -> Value {
        let mut op = Map::new();
        op.insert("description".into(), description.into());
        op.insert("operationId".into(), op_id.into());
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if let Some(body) = request_body {
            op.insert("requestBody".into(), body);
        }
        op.insert("responses".into(), responses);
        op.insert("tags".into(), json!([self.tag]));
        op.insert("x-kubernetes-action".into(), action.into());
        op.insert(
            "x-kubernetes-group-version-kind".into(),
            gvk.unwrap_or(&self.gvk).clone(),
        );
        Value::Object(op)
    }

    fn id(&self, verb: &str, scope: &str, suffix: &str) -> String {
        format!("{verb}{}{scope}{}{suffix}", self.gv_camel, self.kind)
    }
}

fn body(definition: &str) -> Value {
    json!({"content": {"*/*": {"schema": reference(definition)}}, "required": true})
}

fn patch_body(strategic: bool) -> Value {
    let mut types = vec![
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if strategic {
        types.push("application/strategic-merge-patch+json");
    }
    json!({"content": content(PATCH, &types), "required": true})
}

/// Renders the document of one group-version from its (sorted, non-empty) kinds.
fn render(kinds: &[KindInfo], group: &str, version: &str) -> Value {
    let schemas = schemas();
    let prefix = format!("/{}", group_version_path(group, version));
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut components: BTreeMap<String, Value> = BTreeMap::new();
    let mut roots: Vec<String> = vec![
        STATUS.into(),
        DELETE_OPTIONS.into(),
        WATCH_EVENT.into(),
        PATCH.into(),
        OBJECT_META.into(),
        LIST_META.into(),
        API_RESOURCE_LIST.into(),
    ];

    paths.entry(format!("{prefix}/")).or_default().insert(
        "get".into(),
        json!({
            "description": "get available resources",
            "operationId": format!("get{}{}APIResources", group_camel(group, true), upper_first(version)),
            "responses": responses(API_RESOURCE_LIST, &[("200", "OK")], &["application/json", "application/vnd.kubernetes.protobuf", "application/yaml"]),
            "tags": [format!("{}_{version}", group_camel(group, false))],
        }),
    );

    for k in kinds {
        let builtin = schemas.definition_for(group, version, &k.kind);
        let definition = match builtin {
            Some(def) => def.to_owned(),
            None => {
                let def = custom_definition(group, version, &k.kind);
                components.insert(def.clone(), custom_schema(group, version, &k.kind));
                components.insert(
                    format!("{def}List"),
                    custom_list_schema(group, version, &k.kind, &def),
                );
                def
            }
        };
        let list_definition = schemas
            .definition_for(group, version, &format!("{}List", k.kind))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{definition}List"));
        roots.push(definition.clone());
        roots.push(list_definition.clone());
        add_kind_paths(
            &mut paths,
            &mut roots,
            &prefix,
            k,
            &definition,
            &list_definition,
            builtin.is_some(),
        );
    }

    let mut all_schemas: Map<String, Value> = Map::new();
    for name in schemas.reachable(roots.iter().map(String::as_str)) {
        if let Some(schema) = schemas.get(&name) {
            all_schemas.insert(name, schema.clone());
        }
    }
    for (name, schema) in components {
        all_schemas.entry(name).or_insert(schema);
    }
    let paths: Map<String, Value> = paths
        .into_iter()
        .map(|(path, item)| (path, Value::Object(item)))
        .collect();
    let mut doc = json!({
        "components": {
            "schemas": all_schemas,
            "securitySchemes": {
                "BearerToken": {
                    "description": "Bearer Token authentication",
                    "in": "header",
                    "name": "authorization",
                    "type": "apiKey"
                }
            }
        },
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "openapi": "3.0.0",
        "paths": paths,
        "security": [{"BearerToken": []}]
    });
    sort_keys(&mut doc);
    doc
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|v| v == item)
}

#[allow(clippy::too_many_lines)]
fn add_kind_paths(
    paths: &mut BTreeMap<String, Map<String, Value>>,
    roots: &mut Vec<String>,
    prefix: &str,
    k: &KindInfo,
    definition: &str,
    list_definition: &str,
    strategic: bool,
) {
    let cx = OpContext {
        gv_camel: format!("{}{}", group_camel(&k.group, true), upper_first(&k.version)),
        tag: format!("{}_{}", group_camel(&k.group, false), k.version),
        gvk: gvk(&k.group, &k.version, &k.kind),
        kind: &k.kind,
    };
    let kind = k.kind.as_str();
    let scope = if k.namespaced { "Namespaced" } else { "" };
    let ns_segment = if k.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let collection = format!("{prefix}{ns_segment}/{}", k.plural);
    let item = format!("{collection}/{{name}}");
    let mut common = Vec::new();
    let name_param = path_param("name", &format!("name of the {kind}"));
    if k.namespaced {
        common.push(path_param("namespace", NAMESPACE));
    }
    common.push(query_param("pretty", PRETTY, "string"));
    let mut item_common = vec![name_param.clone()];
    item_common.extend(common.iter().cloned());

    // Collection: list, create, deletecollection.
    let mut ops = Map::new();
    if has(&k.verbs, "list") {
        ops.insert(
            "get".into(),
            cx.op(
                "list",
                cx.id("list", scope, ""),
                format!("list or watch objects of kind {kind}"),
                list_params(),
                None,
                responses(list_definition, &[("200", "OK")], WATCH_TYPES),
                None,
            ),
        );
    }
    if has(&k.verbs, "create") {
        ops.insert(
            "post".into(),
            cx.op(
                "post",
                cx.id("create", scope, ""),
                format!("create a {kind}"),
                write_params(false),
                Some(body(definition)),
                responses(
                    definition,
                    &[("200", "OK"), ("201", "Created"), ("202", "Accepted")],
                    RESPONSE_TYPES,
                ),
                None,
            ),
        );
    }
    if has(&k.verbs, "deletecollection") {
        let mut params = list_params();
        params.extend(delete_params());
        params.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        params.dedup_by(|a, b| a["name"] == b["name"]);
        ops.insert(
            "delete".into(),
            cx.op(
                "deletecollection",
                cx.id("deleteCollection", scope, ""),
                format!("delete collection of {kind}"),
                params,
                Some(json!({"content": content(DELETE_OPTIONS, &["*/*"])})),
                responses(STATUS, &[("200", "OK")], RESPONSE_TYPES),
                None,
            ),
        );
    }
    if !ops.is_empty() {
        ops.insert("parameters".into(), Value::Array(common.clone()));
        paths.entry(collection.clone()).or_default().extend(ops);
    }

    // Item: get, put, patch, delete.
    let mut ops = Map::new();
    if has(&k.verbs, "get") {
        ops.insert(
            "get".into(),
            cx.op(
                "get",
                cx.id("read", scope, ""),
                format!("read the specified {kind}"),
                Vec::new(),
                None,
                responses(definition, &[("200", "OK")], RESPONSE_TYPES),
                None,
            ),
        );
    }
    if has(&k.verbs, "update") {
        ops.insert(
            "put".into(),
            cx.op(
                "put",
                cx.id("replace", scope, ""),
                format!("replace the specified {kind}"),
                write_params(false),
                Some(body(definition)),
                responses(
                    definition,
                    &[("200", "OK"), ("201", "Created")],
                    RESPONSE_TYPES,
                ),
                None,
            ),
        );
    }
    if has(&k.verbs, "patch") {
        ops.insert(
            "patch".into(),
            cx.op(
                "patch",
                cx.id("patch", scope, ""),
                format!("partially update the specified {kind}"),
                write_params(true),
                Some(patch_body(strategic)),
                responses(
                    definition,
                    &[("200", "OK"), ("201", "Created")],
                    RESPONSE_TYPES,
                ),
                None,
            ),
        );
    }
    if has(&k.verbs, "delete") {
        let mut params = delete_params();
        params.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        ops.insert(
            "delete".into(),
            cx.op(
                "delete",
                cx.id("delete", scope, ""),
                format!("delete a {kind}"),
                params,
                Some(json!({"content": content(DELETE_OPTIONS, &["*/*"])})),
                responses(
                    STATUS,
                    &[("200", "OK"), ("202", "Accepted")],
                    RESPONSE_TYPES,
                ),
                None,
            ),
        );
    }
    if !ops.is_empty() {
        ops.insert("parameters".into(), Value::Array(item_common.clone()));
        paths.entry(item.clone()).or_default().extend(ops);
    }

    // Subresources.
    for sub in &k.subresources {
        let (sub_def, sub_gvk, suffix) = match sub.as_str() {
            "status" => (definition.to_owned(), None, "Status"),
            "scale" => (
                SCALE.to_owned(),
                Some(gvk("autoscaling", "v1", "Scale")),
                "Scale",
            ),
            "binding" => (
                BINDING.to_owned(),
                Some(gvk("", "v1", "Binding")),
                "Binding",
            ),
            _ => continue,
        };
        roots.push(sub_def.clone());
        let sub_path = format!("{item}/{sub}");
        let mut ops = Map::new();
        if sub == "binding" {
            ops.insert(
                "post".into(),
                cx.op(
                    "post",
                    cx.id("create", scope, suffix),
                    format!("create binding of a {kind}"),
                    write_params(false),
                    Some(body(&sub_def)),
                    responses(
                        &sub_def,
                        &[("200", "OK"), ("201", "Created"), ("202", "Accepted")],
                        RESPONSE_TYPES,
                    ),
                    sub_gvk.as_ref(),
                ),
            );
        } else {
            ops.insert(
                "get".into(),
                cx.op(
                    "get",
                    cx.id("read", scope, suffix),
                    format!("read {sub} of the specified {kind}"),
                    Vec::new(),
                    None,
                    responses(&sub_def, &[("200", "OK")], RESPONSE_TYPES),
                    sub_gvk.as_ref(),
                ),
            );
            ops.insert(
                "put".into(),
                cx.op(
                    "put",
                    cx.id("replace", scope, suffix),
                    format!("replace {sub} of the specified {kind}"),
                    write_params(false),
                    Some(body(&sub_def)),
                    responses(
                        &sub_def,
                        &[("200", "OK"), ("201", "Created")],
                        RESPONSE_TYPES,
                    ),
                    sub_gvk.as_ref(),
                ),
            );
            ops.insert(
                "patch".into(),
                cx.op(
                    "patch",
                    cx.id("patch", scope, suffix),
                    format!("partially update {sub} of the specified {kind}"),
                    write_params(true),
                    Some(patch_body(strategic)),
                    responses(
                        &sub_def,
                        &[("200", "OK"), ("201", "Created")],
                        RESPONSE_TYPES,
                    ),
                    sub_gvk.as_ref(),
                ),
            );
        }
        let mut params = vec![path_param(
            "name",
            &format!("name of the {}", suffix_object(sub, kind)),
        )];
        params.extend(common.iter().cloned());
        ops.insert("parameters".into(), Value::Array(params));
        paths.entry(sub_path).or_default().extend(ops);
    }

    // Cross-namespace list and the (deprecated) watch endpoints.
    let mut list_only = |path: String,
                         action: &str,
                         op_id: String,
                         description: String,
                         def: &str,
                         params: Vec<Value>| {
        let mut ops = Map::new();
        ops.insert(
            "get".into(),
            cx.op(
                action,
                op_id,
                description,
                Vec::new(),
                None,
                responses(def, &[("200", "OK")], WATCH_TYPES),
                None,
            ),
        );
        let mut all = list_params();
        all.extend(params);
        all.push(query_param("pretty", PRETTY, "string"));
        ops.insert("parameters".into(), Value::Array(all));
        paths.entry(path).or_default().extend(ops);
    };
    if k.namespaced && has(&k.verbs, "list") {
        list_only(
            format!("{prefix}/{}", k.plural),
            "list",
            cx.id("list", "", "ForAllNamespaces"),
            format!("list or watch objects of kind {kind}"),
            list_definition,
            Vec::new(),
        );
    }
    if has(&k.verbs, "watch") {
        let ns_param: Vec<Value> = if k.namespaced {
            vec![path_param("namespace", NAMESPACE)]
        } else {
            Vec::new()
        };
        list_only(
            format!("{prefix}/watch{ns_segment}/{}", k.plural),
            "watchlist",
            cx.id("watch", scope, "List"),
            format!(
                "watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."
            ),
            WATCH_EVENT,
            ns_param.clone(),
        );
        let mut item_params = vec![name_param];
        item_params.extend(ns_param);
        list_only(
            format!("{prefix}/watch{ns_segment}/{}/{{name}}", k.plural),
            "watch",
            cx.id("watch", scope, ""),
            format!(
                "watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."
            ),
            WATCH_EVENT,
            item_params,
        );
        if k.namespaced {
            list_only(
                format!("{prefix}/watch/{}", k.plural),
                "watchlist",
                cx.id("watch", "", "ListForAllNamespaces"),
                format!(
                    "watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."
                ),
                WATCH_EVENT,
                Vec::new(),
            );
        }
    }
}

fn suffix_object(sub: &str, kind: &str) -> String {
    match sub {
        "scale" => "Scale".to_owned(),
        "binding" => "Binding".to_owned(),
        _ => kind.to_owned(),
    }
}

fn custom_schema(group: &str, version: &str, kind: &str) -> Value {
    json!({
        "properties": {
            "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"},
            "kind": {"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"},
            "metadata": {
                "allOf": [{"$ref": format!("{REF_PREFIX}{OBJECT_META}")}],
                "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
            }
        },
        "type": "object",
        "x-kubernetes-group-version-kind": [gvk(group, version, kind)],
        "x-kubernetes-preserve-unknown-fields": true
    })
}

fn custom_list_schema(group: &str, version: &str, kind: &str, definition: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind}"),
        "properties": {
            "apiVersion": {"type": "string"},
            "items": {
                "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/api-conventions.md", kind.to_lowercase()),
                "items": {"$ref": format!("{REF_PREFIX}{definition}")},
                "type": "array"
            },
            "kind": {"type": "string"},
            "metadata": {
                "allOf": [{"$ref": format!("{REF_PREFIX}{LIST_META}")}],
                "description": "ListMeta describes metadata that synthetic resources must have, including lists and various status objects. A resource may have only one of {ObjectMeta, ListMeta}."
            }
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [gvk(group, version, &format!("{kind}List"))]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        subs: &[&str],
    ) -> KindInfo {
        KindInfo {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            subresources: subs.iter().map(|s| (*s).to_owned()).collect(),
            verbs: [
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        }
    }

    fn registry() -> Vec<KindInfo> {
        vec![
            kind("", "v1", "Pod", "pods", true, &["status", "binding"]),
            kind("", "v1", "Node", "nodes", false, &["status"]),
            kind("", "v1", "ConfigMap", "configmaps", true, &[]),
            kind(
                "apps",
                "v1",
                "Deployment",
                "deployments",
                true,
                &["status", "scale"],
            ),
            kind(
                "apps",
                "v1",
                "ReplicaSet",
                "replicasets",
                true,
                &["status", "scale"],
            ),
            kind("batch", "v1", "Job", "jobs", true, &["status"]),
            kind("example.com", "v1", "Widget", "widgets", true, &[]),
        ]
    }

    #[test]
    fn index_lists_every_group_version() {
        let kinds = registry();
        let index = index_document(&kinds);
        let paths = index["paths"].as_object().expect("paths");
        let keys: Vec<&str> = paths.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "api/v1",
                "apis/apps/v1",
                "apis/batch/v1",
                "apis/example.com/v1"
            ]
        );
        let (_, hash) = group_version_document(&kinds, "apps", "v1").expect("apps/v1");
        assert_eq!(
            paths["apis/apps/v1"]["serverRelativeURL"],
            format!("/openapi/v3/apis/apps/v1?hash={hash}")
        );
        assert_eq!(hash.len(), 128);
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }

    #[test]
    fn unknown_group_version_is_none() {
        assert!(group_version_document(&registry(), "apps", "v2").is_none());
        assert_eq!(index_document(&[]), json!({"paths": {}}));
    }

    #[test]
    fn hash_is_stable_and_matches_bytes() {
        let kinds = registry();
        let doc = group_version_document_shared(&kinds, "apps", "v1").expect("apps/v1");
        let mut sorted = kinds.clone();
        sorted.retain(|k| k.group == "apps");
        sorted.sort();
        let again = serde_json::to_vec(&render(&sorted, "apps", "v1")).expect("serialize");
        assert_eq!(&*doc.bytes, again.as_slice());
        assert_eq!(doc.hash, hex::encode_upper(Sha512::digest(&again)));
        // The kinds' order does not matter.
        let mut reversed = kinds;
        reversed.reverse();
        let (_, hash) = group_version_document(&reversed, "apps", "v1").expect("apps/v1");
        assert_eq!(hash, doc.hash);
    }

    #[test]
    fn deployment_paths_and_patch_operation() {
        let (doc, _) = group_version_document(&registry(), "apps", "v1").expect("apps/v1");
        assert_eq!(doc["openapi"], "3.0.0");
        let paths = &doc["paths"];
        let item = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        let patch = &item["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group":"apps","kind":"Deployment","version":"v1"})
        );
        assert_eq!(patch["x-kubernetes-action"], "patch");
        assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .expect("params")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["dryRun", "fieldManager", "fieldValidation", "force"]
        );
        let content = patch["requestBody"]["content"]
            .as_object()
            .expect("content");
        for ty in [
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ] {
            assert!(content.contains_key(ty), "{ty}");
        }
        for method in ["get", "put", "delete"] {
            assert!(item[method].is_object(), "{method}");
        }
        let collection = &paths["/apis/apps/v1/namespaces/{namespace}/deployments"];
        assert_eq!(collection["get"]["x-kubernetes-action"], "list");
        assert_eq!(collection["post"]["x-kubernetes-action"], "post");
        assert_eq!(
            collection["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentList"
        );
        assert!(paths["/apis/apps/v1/deployments"]["get"].is_object());
        assert!(
            paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]["patch"]
                .is_object()
        );
        let scale =
            &paths["/apis/apps/v1/namespaces/{namespace}/replicasets/{name}/scale"]["patch"];
        assert_eq!(
            scale["x-kubernetes-group-version-kind"],
            json!({"group":"autoscaling","kind":"Scale","version":"v1"})
        );
        assert_eq!(
            scale["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.autoscaling.v1.Scale"
        );
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for name in [
            "io.k8s.api.apps.v1.Deployment",
            "io.k8s.api.apps.v1.DeploymentList",
            "io.k8s.api.apps.v1.DeploymentSpec",
            "io.k8s.api.core.v1.PodSpec",
            "io.k8s.api.autoscaling.v1.Scale",
            STATUS,
            DELETE_OPTIONS,
            OBJECT_META,
            PATCH,
        ] {
            assert!(schemas.contains_key(name), "{name}");
        }
        assert!(!schemas.contains_key("io.k8s.api.batch.v1.Job"));
        // Every reference resolves inside the document.
        let text = serde_json::to_string(&doc).expect("serialize");
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').expect("closing quote")];
            assert!(schemas.contains_key(name), "dangling {name}");
        }
    }

    #[test]
    fn core_paths_namespaced_and_cluster_scoped() {
        let (doc, _) = group_version_document(&registry(), "", "v1").expect("api/v1");
        let paths = &doc["paths"];
        assert_eq!(
            paths["/api/v1/namespaces/{namespace}/pods/{name}"]["get"]["operationId"],
            "readCoreV1NamespacedPod"
        );
        assert_eq!(
            paths["/api/v1/nodes/{name}"]["patch"]["operationId"],
            "patchCoreV1Node"
        );
        assert!(paths.get("/api/v1/namespaces/{namespace}/nodes").is_none());
        assert_eq!(
            paths["/api/v1/nodes/{name}/status"]["put"]["x-kubernetes-action"],
            "put"
        );
        let binding = &paths["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"];
        assert_eq!(
            binding["x-kubernetes-group-version-kind"]["kind"],
            "Binding"
        );
        assert_eq!(
            paths["/api/v1/watch/namespaces/{namespace}/pods"]["get"]["x-kubernetes-action"],
            "watchlist"
        );
        assert_eq!(
            paths["/api/v1/"]["get"]["operationId"],
            "getCoreV1APIResources"
        );
        assert_eq!(
            paths["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]["tags"],
            json!(["core_v1"])
        );
    }

    #[test]
    fn custom_kinds_get_merge_patch_only() {
        let (doc, _) = group_version_document(&registry(), "example.com", "v1").expect("crd");
        let patch =
            &doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Widget");
        assert_eq!(patch["operationId"], "patchExampleComV1NamespacedWidget");
        let content = patch["requestBody"]["content"]
            .as_object()
            .expect("content");
        assert!(content.contains_key("application/merge-patch+json"));
        assert!(!content.contains_key("application/strategic-merge-patch+json"));
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["com.example.v1.Widget"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert!(schemas["com.example.v1.WidgetList"].is_object());
    }

    #[test]
    fn group_names_in_operation_ids() {
        assert_eq!(
            group_camel("rbac.authorization.k8s.io", true),
            "RbacAuthorization"
        );
        assert_eq!(
            group_camel("rbac.authorization.k8s.io", false),
            "rbacAuthorization"
        );
        assert_eq!(
            group_camel("flowcontrol.apiserver.k8s.io", true),
            "FlowcontrolApiserver"
        );
        assert_eq!(group_camel("", true), "Core");
        assert_eq!(
            custom_definition("stable.example.com", "v1", "CronTab"),
            "com.example.stable.v1.CronTab"
        );
    }
}
