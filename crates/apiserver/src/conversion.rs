//! Conversion between a resource's served form and its storage form, for resources stored as
//! another version (upstream: events.k8s.io/v1 Events are stored as core/v1 Events, so both
//! APIs show the same objects).

use serde_json::{Map, Value};

use crate::cacher::CachedObject;
use crate::registry::ResourceInfo;

/// A conversion function.
pub type Convert = fn(Value) -> Value;

/// Storage → served form, if the resource needs one.
pub fn from_storage(r: &ResourceInfo) -> Option<Convert> {
    (r.group == "events.k8s.io").then_some(core_event_to_events_v1 as Convert)
}

/// Served form → storage, if the resource needs one.
pub fn to_storage(r: &ResourceInfo) -> Option<Convert> {
    (r.group == "events.k8s.io").then_some(events_v1_to_core_event as Convert)
}

/// Whether a stored object is visible through this resource (always, today).
pub fn visible(_r: &ResourceInfo, _o: &CachedObject) -> bool {
    true
}

/// The object as the client of `r` sees it.
pub fn present(r: &ResourceInfo, v: Value) -> Value {
    match from_storage(r) {
        Some(c) => c(v),
        None => v,
    }
}

const PAIRS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
    ("reason", "reason"),
    ("type", "type"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("action", "action"),
    ("related", "related"),
    ("reportingInstance", "reportingInstance"),
    ("metadata", "metadata"),
];

fn rename(v: Value, api_version: &str, from_core: bool) -> Value {
    let Value::Object(src) = v else { return v };
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    for (core, ev1) in PAIRS {
        let (from, to) = if from_core { (core, ev1) } else { (ev1, core) };
        if let Some(x) = src.get(*from)
            && !x.is_null()
        {
            out.insert((*to).to_string(), x.clone());
        }
    }
    Value::Object(out)
}

/// core/v1 Event → events.k8s.io/v1 Event.
pub fn core_event_to_events_v1(v: Value) -> Value {
    rename(v, "events.k8s.io/v1", true)
}

/// events.k8s.io/v1 Event → core/v1 Event.
pub fn events_v1_to_core_event(v: Value) -> Value {
    rename(v, "v1", false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip() {
        let core = json!({"apiVersion":"v1","kind":"Event","metadata":{"name":"e"},"involvedObject":{"kind":"Pod","name":"p"},"message":"hi","count":2,"reason":"Started","type":"Normal"});
        let v1 = core_event_to_events_v1(core.clone());
        assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v1["regarding"]["name"], "p");
        assert_eq!(v1["note"], "hi");
        assert_eq!(v1["deprecatedCount"], 2);
        assert_eq!(events_v1_to_core_event(v1), core);
    }
}
