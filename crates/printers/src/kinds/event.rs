//! Events (core/v1 and events.k8s.io/v1, which upstream prints through the same internal
//! type): port of upstream `printEvent`.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Event, EventSeries, EventSource};
use serde_json::Value;

use super::{col, wide};
use crate::descriptions::{
    EVENT_COUNT, EVENT_FIRST_TIMESTAMP, EVENT_INVOLVED_OBJECT, EVENT_LAST_TIMESTAMP, EVENT_MESSAGE,
    EVENT_REASON, EVENT_SOURCE, EVENT_TYPE, OBJECT_META_NAME, OBJECT_REFERENCE_FIELD_PATH,
};
use crate::util::{decode, i, s, since, since_micro, time_is_zero};
use crate::{Column, Printer};

const COLUMNS: &[Column] = &[
    col("Last Seen", "string", EVENT_LAST_TIMESTAMP),
    col("Type", "string", EVENT_TYPE),
    col("Reason", "string", EVENT_REASON),
    col("Object", "string", EVENT_INVOLVED_OBJECT),
    wide("Subobject", "string", OBJECT_REFERENCE_FIELD_PATH),
    wide("Source", "string", EVENT_SOURCE),
    col("Message", "string", EVENT_MESSAGE),
    wide("First Seen", "string", EVENT_FIRST_TIMESTAMP),
    wide("Count", "string", EVENT_COUNT),
    Column {
        name: "Name",
        type_: "string",
        format: "name",
        description: OBJECT_META_NAME,
        priority: 1,
    },
];

pub(crate) struct CoreEventPrinter;

pub(crate) static CORE_EVENT: CoreEventPrinter = CoreEventPrinter;

pub(crate) struct EventsV1EventPrinter;

pub(crate) static EVENTS_V1_EVENT: EventsV1EventPrinter = EventsV1EventPrinter;

fn non_empty(v: Option<&str>) -> &str {
    v.unwrap_or_default()
}

/// `formatEventSource`: component (or reportingController) and host (or reportingInstance).
fn format_event_source(
    source: Option<&EventSource>,
    reporting_controller: &str,
    reporting_instance: &str,
) -> String {
    let first_non_empty = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            a.to_string()
        }
    };
    let component = first_non_empty(
        non_empty(source.and_then(|s| s.component.as_deref())),
        reporting_controller,
    );
    let instance = first_non_empty(
        non_empty(source.and_then(|s| s.host.as_deref())),
        reporting_instance,
    );
    if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    }
}

/// The cells of an event in its internal (core) form.
fn event_cells(e: &Event, now: DateTime<Utc>) -> Vec<Value> {
    let mut first = since(e.first_timestamp.as_ref(), now);
    if time_is_zero(e.first_timestamp.as_ref()) {
        first = since_micro(e.event_time.as_ref(), now);
    }
    let mut last = since(e.last_timestamp.as_ref(), now);
    if time_is_zero(e.last_timestamp.as_ref()) {
        last = first.clone();
    }
    let mut count = e.count.unwrap_or(0);
    if let Some(series) = &e.series {
        last = since_micro(series.last_observed_time.as_ref(), now);
        count = series.count.unwrap_or(0);
    } else if count == 0 {
        // Singleton events don't have a count set in the new API.
        count = 1;
    }
    let kind = non_empty(e.involved_object.kind.as_deref()).to_lowercase();
    let target = match e.involved_object.name.as_deref() {
        Some(name) if !name.is_empty() => format!("{kind}/{name}"),
        _ => kind,
    };
    vec![
        s(last),
        s(non_empty(e.type_.as_deref())),
        s(non_empty(e.reason.as_deref())),
        s(target),
        s(non_empty(e.involved_object.field_path.as_deref())),
        s(format_event_source(
            e.source.as_ref(),
            non_empty(e.reporting_component.as_deref()),
            non_empty(e.reporting_instance.as_deref()),
        )),
        s(non_empty(e.message.as_deref()).trim()),
        s(first),
        i(count),
        s(e.metadata.name.clone().unwrap_or_default()),
    ]
}

impl Printer for CoreEventPrinter {
    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let e: Event = decode(obj);
        event_cells(&e, now)
    }
}

/// Converts an events.k8s.io/v1 Event to the core form, as upstream's conversion to the
/// internal type does.
fn events_v1_to_core(e: k8s_openapi::api::events::v1::Event) -> Event {
    Event {
        metadata: e.metadata,
        action: e.action,
        count: e.deprecated_count,
        event_time: e.event_time,
        first_timestamp: e.deprecated_first_timestamp,
        last_timestamp: e.deprecated_last_timestamp,
        involved_object: e.regarding.unwrap_or_default(),
        message: e.note,
        reason: e.reason,
        related: e.related,
        reporting_component: e.reporting_controller,
        reporting_instance: e.reporting_instance,
        series: e.series.map(|s| EventSeries {
            count: Some(s.count),
            last_observed_time: Some(s.last_observed_time),
        }),
        source: e.deprecated_source,
        type_: e.type_,
    }
}

impl Printer for EventsV1EventPrinter {
    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let e: k8s_openapi::api::events::v1::Event = decode(obj);
        event_cells(&events_v1_to_core(e), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use serde_json::json;

    fn ts(now: DateTime<Utc>, ago: TimeDelta) -> String {
        (now - ago).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    fn micro(now: DateTime<Utc>, ago: TimeDelta) -> String {
        (now - ago).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }

    // Cases from upstream TestPrintEvent.
    #[test]
    fn core_events() {
        let now = Utc::now();
        let e = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "event1"},
            "source": {"component": "kubelet", "host": "Node1"},
            "involvedObject": {"kind": "Deployment", "name": "Deployment Name", "fieldPath": "spec.containers{foo}"},
            "reason": "Event Reason",
            "message": "Message Data",
            "firstTimestamp": ts(now, TimeDelta::days(3)),
            "lastTimestamp": ts(now, TimeDelta::days(2)),
            "count": 6,
            "type": "Normal"
        });
        assert_eq!(
            CORE_EVENT.cells(&e, now),
            vec![
                json!("2d"),
                json!("Normal"),
                json!("Event Reason"),
                json!("deployment/Deployment Name"),
                json!("spec.containers{foo}"),
                json!("kubelet, Node1"),
                json!("Message Data"),
                json!("3d"),
                json!(6),
                json!("event1"),
            ]
        );

        // Only eventTime set, series set (new API).
        let e = json!({
            "metadata": {"name": "event2"},
            "involvedObject": {"kind": "Deployment", "name": "Deployment Name"},
            "reportingComponent": "kubelet", "reportingInstance": "Node1",
            "reason": "Event Reason", "message": "  Message Data  ",
            "eventTime": micro(now, TimeDelta::days(3)),
            "series": {"count": 2, "lastObservedTime": micro(now, TimeDelta::days(2))},
            "type": "Normal"
        });
        let c = CORE_EVENT.cells(&e, now);
        assert_eq!(c[0], json!("2d"));
        assert_eq!(c[5], json!("kubelet, Node1"));
        assert_eq!(c[6], json!("Message Data"));
        assert_eq!(c[7], json!("3d"));
        assert_eq!(c[8], json!(2));

        // Singleton event of the new API: count 1, last = first.
        let e = json!({
            "metadata": {"name": "event3"},
            "involvedObject": {"kind": "Node"},
            "reportingComponent": "kubelet",
            "eventTime": micro(now, TimeDelta::seconds(5)),
            "type": "Warning"
        });
        let c = CORE_EVENT.cells(&e, now);
        assert_eq!(c[0], json!("5s"));
        assert_eq!(c[3], json!("node"));
        assert_eq!(c[5], json!("kubelet"));
        assert_eq!(c[7], json!("5s"));
        assert_eq!(c[8], json!(1));

        // Nothing at all.
        let c = CORE_EVENT.cells(&json!({}), now);
        assert_eq!(c[0], json!("<unknown>"));
        assert_eq!(c[7], json!("<unknown>"));
    }

    #[test]
    fn events_k8s_io_events_print_like_core() {
        let now = Utc::now();
        let e = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.17a"},
            "regarding": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
            "reportingController": "kubelet", "reportingInstance": "node-1",
            "reason": "Pulled", "note": "Successfully pulled image",
            "eventTime": micro(now, TimeDelta::seconds(42)),
            "deprecatedCount": 3,
            "deprecatedFirstTimestamp": ts(now, TimeDelta::minutes(50)),
            "deprecatedLastTimestamp": ts(now, TimeDelta::seconds(42)),
            "type": "Normal"
        });
        assert_eq!(
            EVENTS_V1_EVENT.cells(&e, now),
            vec![
                json!("42s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web-1"),
                json!("spec.containers{web}"),
                json!("kubelet, node-1"),
                json!("Successfully pulled image"),
                json!("50m"),
                json!(3),
                json!("web.17a"),
            ]
        );
    }
}
