//! Server-side apply and `metadata.managedFields`, after `sigs.k8s.io/structured-merge-diff`
//! (`merge/update.go`) and the field manager chain of `apimachinery/pkg/util/managedfields`
//! (strip meta, managed-fields updater, cap managers, skip non-applied, last-applied updater,
//! conflict errors).

use codec::ordered::member;
use serde_json::{Map, Value, json};

use crate::SchemaNode;
use crate::fieldpath::{FieldSet, PathElement, path_string};
use crate::typed::{Comparison, SERVER_METADATA, View, compare, merge, remove_items, to_field_set};

const OPERATION_APPLY: &str = "Apply";
const OPERATION_UPDATE: &str = "Update";
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
const ANCIENT_CHANGES: &str = "ancient-changes";
const MAX_UPDATE_MANAGERS: usize = 10;
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One field conflict of an apply: a field set to another value than the one owned by
/// `manager`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager owning the field.
    pub manager: String,
    /// Its operation, `Apply` or `Update`.
    pub operation: String,
    /// The API version of its entry.
    pub api_version: String,
    /// Its subresource, if any.
    pub subresource: Option<String>,
    /// The field path, e.g. `.spec.replicas`.
    pub field: String,
}

impl Conflict {
    /// Upstream's `printManager`: `"kubectl"` for appliers, `"kubectl-client-side-apply" using
    /// apps/v1` for updaters, with ` with subresource "status"` after the name when set.
    pub fn manager_description(&self) -> String {
        describe_manager(
            &self.manager,
            &self.operation,
            &self.api_version,
            self.subresource.as_deref(),
        )
    }

    /// The `message` of the `FieldManagerConflict` status cause:
    /// `conflict with "kubectl-client-side-apply" using apps/v1`.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager_description())
    }
}

fn describe_manager(
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: Option<&str>,
) -> String {
    let mut s = format!("{manager:?}");
    if let Some(sub) = subresource.filter(|s| !s.is_empty()) {
        s.push_str(&format!(" with subresource {sub:?}"));
    }
    if operation == OPERATION_UPDATE {
        s.push_str(&format!(" using {api_version}"));
    }
    s
}

/// The message of the 409 `Conflict` status of a failed apply (upstream `getConflictMessage`):
/// `Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1:
/// .spec.replicas`, or for several conflicts one block per manager:
/// `Apply failed with 2 conflicts: conflicts with "m" using apps/v1:\n- .spec.a\n- .spec.b`.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.manager_description(),
            c.field
        );
    }
    let mut groups: Vec<(String, String, Vec<&str>)> = Vec::new();
    for c in conflicts {
        let id = identifier(
            &c.manager,
            &c.operation,
            &c.api_version,
            c.subresource.as_deref(),
        );
        match groups.iter_mut().find(|(i, _, _)| *i == id) {
            Some(g) => g.2.push(&c.field),
            None => groups.push((id, c.manager_description(), vec![&c.field])),
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let mut lines = Vec::new();
    for (_, description, fields) in groups {
        lines.push(format!("conflicts with {description}:"));
        lines.extend(fields.iter().map(|f| format!("- {f}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Why an apply failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Fields set by the applied configuration are owned by other managers with other values
    /// (409 `Conflict`, one `FieldManagerConflict` cause per conflict).
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The applied configuration is not a JSON object (400).
    #[error("the applied configuration must be a JSON object")]
    NotAnObject,
    /// The applied configuration carries `metadata.managedFields` (400).
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsNotNil,
    /// The applied configuration's `apiVersion` is not the endpoint's (400).
    #[error(
        "Incorrect version specified in apply patch. Specified patch version: {specified}, expected: {expected}"
    )]
    VersionMismatch {
        /// The configuration's apiVersion.
        specified: String,
        /// The endpoint's group-version.
        expected: String,
    },
    /// The applied configuration does not fit the schema, e.g. a list-map item without its key
    /// (500, as upstream).
    #[error("failed to create typed patch object: {0}")]
    Invalid(String),
    /// The live object's managedFields cannot be decoded (500).
    #[error("failed to decode managed fields: {0}")]
    InvalidManagedFields(String),
}

impl ApplyError {
    /// The HTTP status the API server answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::NotAnObject
            | ApplyError::ManagedFieldsNotNil
            | ApplyError::VersionMismatch { .. } => 400,
            ApplyError::Invalid(_) | ApplyError::InvalidManagedFields(_) => 500,
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    set: FieldSet,
    /// The position of this entry in the stored list it was decoded from, while that entry's
    /// `fieldsV1` still encodes `set` (so encoding can copy it instead of rebuilding it).
    stored: Option<usize>,
}

impl Entry {
    fn identifier(&self) -> String {
        identifier(
            &self.manager,
            &self.operation,
            &self.api_version,
            self.subresource.as_deref(),
        )
    }

    /// Whether this entry's identifier is that of the given manager (as comparing
    /// [`identifier`]s, without building them).
    fn is(&self, manager: &str, operation: &str, api_version: &str, sub: Option<&str>) -> bool {
        fn non_empty(s: Option<&str>) -> Option<&str> {
            s.filter(|s| !s.is_empty())
        }
        self.manager == manager
            && self.operation == operation
            && (operation == OPERATION_APPLY || self.api_version == api_version)
            && non_empty(self.subresource.as_deref()) == non_empty(sub)
    }

    fn same_identity(&self, other: &Entry) -> bool {
        self.is(
            &other.manager,
            &other.operation,
            &other.api_version,
            other.subresource.as_deref(),
        )
    }
}

/// Upstream's `BuildManagerIdentifier`: the entry as JSON without time and fields, and without
/// apiVersion for appliers.
fn identifier(manager: &str, operation: &str, api_version: &str, sub: Option<&str>) -> String {
    let mut m = Map::new();
    m.insert("manager".into(), json!(manager));
    m.insert("operation".into(), json!(operation));
    if operation != OPERATION_APPLY && !api_version.is_empty() {
        m.insert("apiVersion".into(), json!(api_version));
    }
    if let Some(s) = sub.filter(|s| !s.is_empty()) {
        m.insert("subresource".into(), json!(s));
    }
    Value::Object(m).to_string()
}

fn managed_fields_of(obj: &Value) -> Option<&Value> {
    member(member(obj, "metadata")?, "managedFields")
}

/// `DecodeManagedFields`; later duplicates of an identifier replace earlier ones.
fn decode(encoded: Option<&Value>) -> Result<Vec<Entry>, String> {
    let list = match encoded {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("managedFields must be a list".to_owned()),
    };
    let mut out: Vec<Entry> = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let operation = s("operation");
        if operation != OPERATION_APPLY && operation != OPERATION_UPDATE {
            return Err("operation must be `Apply` or `Update`".to_owned());
        }
        let api_version = s("apiVersion");
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".to_owned());
        }
        match s("fieldsType").as_str() {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {i}"
                ));
            }
        }
        let set = match e.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(v) => {
                FieldSet::from_fields_v1(v).map_err(|err| format!("error decoding set: {err}"))?
            }
        };
        let entry = Entry {
            manager: s("manager"),
            operation,
            api_version,
            time: e.get("time").and_then(Value::as_str).map(str::to_owned),
            subresource: e
                .get("subresource")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            set,
            stored: Some(i),
        };
        out.retain(|o| !o.same_identity(&entry));
        out.push(entry);
    }
    Ok(out)
}

/// `encodeManagedFields`, sorted as upstream: operation, time, manager, apiVersion, subresource.
/// `stored` is the list the entries were decoded from when that is the stored object's (written
/// by this encoder): the `fieldsV1` of an entry whose set is unchanged is copied from it.
fn encode(entries: &[Entry], stored: Option<&Value>) -> Option<Value> {
    if entries.is_empty() {
        return None;
    }
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| {
                p.time
                    .as_deref()
                    .unwrap_or("")
                    .cmp(q.time.as_deref().unwrap_or(""))
            })
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    let list = sorted
        .into_iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(e.manager));
            m.insert("operation".into(), json!(e.operation));
            m.insert("apiVersion".into(), json!(e.api_version));
            if let Some(t) = &e.time {
                m.insert("time".into(), json!(t));
            }
            m.insert("fieldsType".into(), json!("FieldsV1"));
            let kept = e
                .stored
                .and_then(|i| stored?.get(i)?.get("fieldsV1"))
                .cloned();
            m.insert(
                "fieldsV1".into(),
                kept.unwrap_or_else(|| e.set.to_fields_v1()),
            );
            if let Some(s) = &e.subresource {
                m.insert("subresource".into(), json!(s));
            }
            Value::Object(m)
        })
        .collect();
    Some(Value::Array(list))
}

fn set_managed_fields(obj: &mut Value, entries: &[Entry]) {
    write_managed_fields(obj, encode(entries, None));
}

/// Stores encoded managedFields in `obj`, or removes them when there are none.
fn write_managed_fields(obj: &mut Value, encoded: Option<Value>) {
    match encoded {
        Some(encoded) => put_managed_fields(obj, encoded),
        None => {
            if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
                meta.shift_remove("managedFields");
            }
        }
    }
}

/// Stores encoded managedFields in `obj` (creating `metadata` if needed; in place of the
/// present ones, else last).
fn put_managed_fields(obj: &mut Value, encoded: Value) {
    let Value::Object(o) = obj else {
        return;
    };
    let meta = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        meta.insert("managedFields".into(), encoded);
    }
}

/// Which part of the object an operation may own (upstream's reset fields): everything except
/// `status` through the main resource, only `status` through the status subresource, everything
/// through other subresources (`scale`); server-set metadata never.
fn scope_of(subresource: Option<&str>) -> View {
    match subresource {
        None | Some("") => View::Main,
        Some("status") => View::Status,
        Some(_) => View::All,
    }
}

/// The applied configuration as field ownership sees it: without server-set metadata and
/// `status`.
fn clean_config(config: &Map<String, Value>) -> Value {
    let mut o = config.clone();
    if let Some(Value::Object(meta)) = o.get_mut("metadata") {
        for k in SERVER_METADATA {
            meta.shift_remove(k);
        }
    }
    o.shift_remove("status");
    Value::Object(o)
}

fn field(name: &str) -> PathElement {
    PathElement::Field(name.to_owned())
}

/// `stripMetaManager`: identity and server-set fields are never owned.
fn strip_meta(set: &mut FieldSet) {
    set.remove_recursive(&field("apiVersion"));
    set.remove_recursive(&field("kind"));
    let metadata = field("metadata");
    if let Some(meta) = set.child_mut(&metadata) {
        for k in ["name", "namespace"].into_iter().chain(SERVER_METADATA) {
            meta.remove_recursive(&field(k));
        }
    }
    set.prune_child(&metadata);
    set.remove_member(&metadata);
}

fn conflicts_of(entry: &Entry, set: &FieldSet) -> Vec<Conflict> {
    set.paths()
        .iter()
        .map(|p| Conflict {
            manager: entry.manager.clone(),
            operation: entry.operation.clone(),
            api_version: entry.api_version.clone(),
            subresource: entry.subresource.clone(),
            field: path_string(p),
        })
        .collect()
}

/// `Updater.update`: every manager but `skip` loses the fields that were removed, and the
/// modified or added fields it owned (conflicts, an error unless `force`).
fn update_managers(
    managers: &mut Vec<Entry>,
    cmp: &Comparison,
    skip: Option<&str>,
    force: bool,
) -> Result<(), Vec<Conflict>> {
    if managers.is_empty() {
        return Ok(());
    }
    let changed = cmp.modified.union(&cmp.added);
    let skipped = |e: &Entry| skip.is_some_and(|id| e.identifier() == id);
    let mut conflicts: Vec<(String, Vec<Conflict>)> = Vec::new();
    let mut conflict_sets = Vec::with_capacity(managers.len());
    for e in managers.iter() {
        if skipped(e) {
            conflict_sets.push(FieldSet::new());
            continue;
        }
        let c = e.set.intersection(&changed);
        if !c.is_empty() {
            conflicts.push((e.identifier(), conflicts_of(e, &c)));
        }
        conflict_sets.push(c);
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort_by(|a, b| a.0.cmp(&b.0));
        return Err(conflicts.into_iter().flat_map(|(_, c)| c).collect());
    }
    for (e, c) in managers.iter_mut().zip(conflict_sets) {
        if skipped(e) {
            continue;
        }
        let removed = e.set.subtract(&c) | e.set.subtract(&cmp.removed);
        if removed {
            e.stored = None;
        }
    }
    managers.retain(|e| !e.set.is_empty());
    Ok(())
}

/// `Updater.Update` with the managed-fields updater, strip-meta and cap-managers steps: records
/// a non-apply change from `old` to `new` by `manager`.
#[allow(clippy::too_many_arguments)]
fn record_update(
    managers: &mut Vec<Entry>,
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    schema: SchemaNode,
    now: &str,
) {
    let cmp = compare(old, Some(new), schema, scope_of(subresource));
    // Cannot fail: conflicts are forced.
    let _ = update_managers(managers, &cmp, None, true);
    let Comparison {
        modified,
        added: mut current,
        ..
    } = cmp;
    current.union_owned(modified);
    strip_meta(&mut current);
    if !current.is_empty() {
        match managers
            .iter_mut()
            .find(|e| e.is(manager, OPERATION_UPDATE, api_version, subresource))
        {
            Some(e) => {
                e.set.union_owned(current);
                e.stored = None;
                e.time = Some(now.to_owned());
            }
            None => managers.push(Entry {
                manager: manager.to_owned(),
                operation: OPERATION_UPDATE.to_owned(),
                api_version: api_version.to_owned(),
                time: Some(now.to_owned()),
                subresource: subresource.filter(|s| !s.is_empty()).map(str::to_owned),
                set: current,
                stored: None,
            }),
        }
    }
    managers.retain(|e| !e.set.is_empty());
    cap_update_managers(managers);
}

/// `capManagersManager`: at most ten Update entries; the oldest are merged into one
/// `ancient-changes` entry per API version.
fn cap_update_managers(managers: &mut Vec<Entry>) {
    let mut updaters: Vec<usize> = managers
        .iter()
        .enumerate()
        .filter(|(_, e)| e.operation == OPERATION_UPDATE)
        .map(|(i, _)| i)
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|&a, &b| {
        let (ea, eb) = (&managers[a], &managers[b]);
        ea.time
            .as_deref()
            .unwrap_or("")
            .cmp(eb.time.as_deref().unwrap_or(""))
            .then_with(|| ea.identifier().cmp(&eb.identifier()))
    });
    let mut excess = updaters.len() - MAX_UPDATE_MANAGERS;
    let mut remove = Vec::new();
    let mut first_by_version: Vec<(String, usize)> = Vec::new();
    for &i in &updaters {
        if excess == 0 {
            break;
        }
        let version = managers[i].api_version.clone();
        match first_by_version.iter().find(|(v, _)| *v == version) {
            Some(&(_, first)) => {
                let set = managers[i].set.clone();
                let time = managers[i].time.clone();
                let bucket = &mut managers[first];
                bucket.manager = ANCIENT_CHANGES.to_owned();
                bucket.subresource = None;
                bucket.set = set.union(&bucket.set);
                bucket.stored = None;
                bucket.time = time;
                remove.push(i);
                excess -= 1;
            }
            None => first_by_version.push((version, i)),
        }
    }
    remove.sort_unstable();
    for i in remove.into_iter().rev() {
        managers.remove(i);
    }
}

fn is_reset(encoded: Option<&Value>) -> bool {
    match encoded {
        Some(Value::Array(a)) if a.is_empty() => true,
        Some(Value::Array(a)) if a.len() == 1 => a[0].as_object().is_some_and(Map::is_empty),
        _ => false,
    }
}

/// Records the field ownership of a non-apply write (POST, PUT, or a JSON, merge or strategic
/// merge PATCH; operation `Update`) and returns `new` with updated `metadata.managedFields`.
///
/// `old` is the stored object (`None` on create). The manager takes ownership of every field it
/// changed (of every field set, on create) and the other managers lose the fields it changed or
/// removed. As upstream: managedFields sent in `new` replace the stored ones (main resource
/// only; `[]` or `[{}]` clears them), an existing object without managedFields is not tracked,
/// `status` is not owned through the main resource and only `status` through the `status`
/// subresource, and at most ten Update entries are kept.
pub fn update_managed_fields(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    operation_subresource: Option<&str>,
    api_version: &str,
    schema: SchemaNode,
    now: &str,
) -> Value {
    let mut out = new.clone();
    record_managed_fields(
        old,
        &mut out,
        manager,
        operation_subresource,
        api_version,
        schema,
        now,
    );
    out
}

/// [`update_managed_fields`] in place: updates `metadata.managedFields` of `new` without
/// copying the object.
///
/// The frequent update by a manager that changed only scalar values it alone already owns (or
/// nothing) takes a fast path over the raw managedFields JSON; its result is the same.
pub fn record_managed_fields(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation_subresource: Option<&str>,
    api_version: &str,
    schema: SchemaNode,
    now: &str,
) {
    record_managed_fields_traced(
        old,
        new,
        manager,
        operation_subresource,
        api_version,
        schema,
        now,
    );
}

/// Which way [`record_managed_fields`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// The fast path over the raw managedFields.
    Fast,
    /// The full decode, compare, update and encode.
    Slow,
}

/// [`record_managed_fields`], telling which path it took.
fn record_managed_fields_traced(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation_subresource: Option<&str>,
    api_version: &str,
    schema: SchemaNode,
    now: &str,
) -> Taken {
    let sub = operation_subresource;
    record_or_retime(old, new, manager, sub, api_version, schema, now).unwrap_or_else(|retime| {
        let entries = match old.and_then(managed_fields_of) {
            Some(Value::Array(entries)) => entries.clone(),
            _ => Vec::new(),
        };
        retime.apply(entries, new, now);
        Taken::Fast
    })
}

/// [`record_managed_fields`] for a caller that owns the old object and needs it no more, except
/// to tell whether the update changed anything: when the result is the old managedFields with
/// only the updater's `time` changed and the objects differ in other fields, the entries are
/// moved from `old` to `new` (leaving `old` with empty managedFields) instead of copied. A kubelet
/// renewing its Lease without sending managedFields back takes that way.
pub fn record_managed_fields_taking(
    old: &mut Value,
    new: &mut Value,
    manager: &str,
    operation_subresource: Option<&str>,
    api_version: &str,
    schema: SchemaNode,
    now: &str,
) {
    let sub = operation_subresource;
    if let Err(retime) = record_or_retime(Some(&*old), new, manager, sub, api_version, schema, now)
    {
        let entries = match old
            .get_mut("metadata")
            .and_then(|m| m.get_mut("managedFields"))
        {
            Some(Value::Array(entries)) => std::mem::take(entries),
            _ => Vec::new(),
        };
        retime.apply(entries, new, now);
    }
}

/// The managedFields of an Update by `manager` (no subresource) whose only changes are the
/// scalar values at `changes`, reached through objects the schema merges field by field (the
/// caller has compared the objects): `entries` are the old object's, and become what
/// [`record_managed_fields`] would record, the updater's `time` set to `now`. The request must
/// have left managedFields out or sent them back unchanged. False, with `entries` untouched,
/// when that outcome cannot be proven (the caller then records the general way).
pub fn retime_update(
    entries: &mut Vec<Value>,
    manager: &str,
    api_version: &str,
    changes: &[Vec<&str>],
    now: &str,
) -> bool {
    if changes.is_empty() || changes.iter().any(|p| fast::stripped(p)) {
        return false;
    }
    match fast::plan_retime(entries, manager, None, api_version, changes, now) {
        Some(plan) => {
            plan.apply_in_place(entries, now);
            true
        }
        None => false,
    }
}

/// Records the update (fast or slow path), except when the fast path's result is the old
/// entries retimed: that is left to the caller, who copies or moves them.
fn record_or_retime(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation_subresource: Option<&str>,
    api_version: &str,
    schema: SchemaNode,
    now: &str,
) -> Result<Taken, fast::Retime> {
    let subresource = operation_subresource.filter(|s| !s.is_empty());
    match fast::try_record(old, new, manager, subresource, api_version, schema, now) {
        fast::Fast::Done => Ok(Taken::Fast),
        fast::Fast::FromOld(retime) => Err(retime),
        fast::Fast::No => {
            record_managed_fields_slow(old, new, manager, subresource, api_version, schema, now);
            Ok(Taken::Slow)
        }
    }
}

/// The general path of [`record_managed_fields`].
fn record_managed_fields_slow(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation_subresource: Option<&str>,
    api_version: &str,
    schema: SchemaNode,
    now: &str,
) {
    let subresource = operation_subresource.filter(|s| !s.is_empty());
    let stored = old.and_then(managed_fields_of);
    let from_old = || (decode(stored).unwrap_or_default(), stored);
    // The entries, and the stored list when they were decoded from it.
    let (mut managers, source) = if subresource.is_some() {
        from_old()
    } else {
        let requested = managed_fields_of(new);
        if is_reset(requested) {
            (Vec::new(), None)
        } else {
            match decode(requested) {
                // Sent by the client: encoded again, as upstream does.
                Ok(m) if !m.is_empty() => (m, None),
                _ => from_old(),
            }
        }
    };
    if managers.is_empty() && old.is_some() {
        set_managed_fields(new, &[]);
        return;
    }
    record_update(
        &mut managers,
        old,
        new,
        manager,
        subresource,
        api_version,
        schema,
        now,
    );
    let encoded = encode(&managers, source);
    write_managed_fields(new, encoded);
}

/// Server-side apply (`application/apply-patch+yaml`): merges the applied configuration into
/// the live object (`None` to create) as `manager` and returns the new object with updated
/// `metadata.managedFields`.
///
/// The manager's new field set is the set of fields in `applied`; fields it applied before and
/// no longer applies are removed from the object unless another manager owns them too; values it
/// sets that differ from live values owned by other managers are [`ApplyError::Conflicts`]
/// unless `force` (which moves the ownership to it); setting the same value shares ownership.
/// List-type maps are merged by key, sets by value, atomic lists and maps replaced.
/// `metadata.managedFields` must not be in `applied`; `metadata.resourceVersion` (a
/// precondition the caller checks), server-set metadata and `status` are neither applied nor
/// owned. An existing object without managedFields first gets a `before-first-apply` Update
/// entry owning all its fields. As upstream, an apply by `kubectl` to an object carrying the
/// `kubectl.kubernetes.io/last-applied-configuration` annotation refreshes that annotation.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    api_version: &str,
    force: bool,
    schema: SchemaNode,
    now: &str,
) -> Result<Value, ApplyError> {
    let Value::Object(config) = applied else {
        return Err(ApplyError::NotAnObject);
    };
    if managed_fields_of(applied).is_some_and(|m| !m.is_null()) {
        return Err(ApplyError::ManagedFieldsNotNil);
    }
    if let Some(specified) = config.get("apiVersion").and_then(Value::as_str)
        && specified != api_version
    {
        return Err(ApplyError::VersionMismatch {
            specified: specified.to_owned(),
            expected: api_version.to_owned(),
        });
    }
    let live_obj = match live {
        Some(Value::Object(_)) => live.cloned().unwrap_or_default(),
        _ => Value::Object(Map::new()),
    };
    let mut managers =
        decode(managed_fields_of(&live_obj)).map_err(ApplyError::InvalidManagedFields)?;
    if managers.is_empty() && live.is_some() {
        record_update(
            &mut managers,
            Some(&Value::Object(Map::new())),
            &live_obj,
            BEFORE_FIRST_APPLY,
            None,
            api_version,
            schema,
            now,
        );
    }

    let config = clean_config(config);
    let mut errors = Vec::new();
    let mut config_set = to_field_set(&config, schema, &mut errors);
    strip_meta(&mut config_set);
    if !errors.is_empty() {
        return Err(ApplyError::Invalid(errors.join(", ")));
    }
    let mut merged = merge(
        Some(&live_obj),
        &config,
        &schema,
        &mut Vec::new(),
        &mut errors,
    )
    .unwrap_or_else(|| Value::Object(Map::new()));
    if !errors.is_empty() {
        return Err(ApplyError::Invalid(errors.join(", ")));
    }

    let applier_id = identifier(manager, OPERATION_APPLY, api_version, None);
    let previous = managers
        .iter()
        .position(|e| e.identifier() == applier_id)
        .map(|i| managers.remove(i));
    let last_set = previous.as_ref().map(|e| e.set.clone()).unwrap_or_default();

    // Prune what the applier applied before and dropped, unless still applied or owned by
    // another manager (at or below that path).
    if !last_set.is_empty() {
        let protected = managers
            .iter()
            .fold(config_set.clone(), |acc, e| acc.union(&e.set));
        let mut to_remove = FieldSet::new();
        for p in last_set.difference(&config_set).paths() {
            if !protected.has_prefix(&p) {
                to_remove.insert(&p);
            }
        }
        if !to_remove.is_empty() {
            merged = remove_items(&merged, &to_remove, &schema)
                .unwrap_or_else(|| Value::Object(Map::new()));
        }
    }

    let cmp = compare(Some(&live_obj), Some(&merged), schema, View::Main);
    update_managers(&mut managers, &cmp, None, force).map_err(ApplyError::Conflicts)?;

    let object_changed = !View::All.eq(&live_obj, &merged);
    let set_changed = previous.as_ref().is_none_or(|p| p.set != config_set);
    let time = if object_changed || set_changed {
        Some(now.to_owned())
    } else {
        previous.as_ref().and_then(|p| p.time.clone())
    };
    if !config_set.is_empty() {
        managers.push(Entry {
            manager: manager.to_owned(),
            operation: OPERATION_APPLY.to_owned(),
            api_version: api_version.to_owned(),
            time,
            subresource: None,
            set: config_set,
            stored: None,
        });
    }

    if manager == "kubectl" {
        refresh_last_applied(&mut merged, applied);
    }
    write_managed_fields(&mut merged, encode(&managers, managed_fields_of(&live_obj)));
    Ok(merged)
}

/// `lastAppliedUpdater`: keeps client-side apply's annotation in sync with what `kubectl`
/// applies server-side, when the object has it.
fn refresh_last_applied(obj: &mut Value, applied: &Value) {
    let Some(Value::Object(annotations)) = obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    else {
        return;
    };
    if annotations
        .get(LAST_APPLIED_ANNOTATION)
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return;
    }
    let mut config = applied.clone();
    if let Some(Value::Object(a)) = config
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        a.shift_remove(LAST_APPLIED_ANNOTATION);
    }
    annotations.insert(
        LAST_APPLIED_ANNOTATION.to_owned(),
        Value::String(sorted(&config).to_string()),
    );
}

/// The value with object keys sorted, as Go encodes maps.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

mod fast;
#[cfg(test)]
mod fast_tests;
#[cfg(test)]
mod tests;
