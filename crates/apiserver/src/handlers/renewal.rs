//! Lease renewals: the update every kubelet sends every 10 s, and every leader elector every few
//! seconds, is the Lease it holds sent back with a new `spec.renewTime`.
//!
//! The general update path normalizes the body, applies the kind's update rules and records
//! managedFields through the schema. For a renewal the outcome is known from a comparison of the
//! body with the stored object: the stored object with the new renewTime, and the renewer's
//! managedFields entry stamped with the time. [`renewed`] makes that outcome from the stored
//! object directly; any other update (or any doubt) takes the general path.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use api::validation as v;
use bytes::Bytes;
use codec::ordered::{Cursor, find, value_eq};
use serde::Deserialize;
use serde_json::Value;
use store::Revision;

use crate::object;
use crate::registry::{ResourceInfo, Subresource};

const RENEW_TIME: &str = "renewTime";

/// Whether an update can be a renewal: of a Lease itself (no subresource).
pub fn applies(r: &ResourceInfo, sub: Option<Subresource>) -> bool {
    sub.is_none() && r.group == "coordination.k8s.io" && r.kind == "Lease"
}

/// The object the general update path stores when `manager` sends `body` over the stored
/// `old`, if `body` is a renewal of `old`:
/// - its members but `metadata` and `spec` are the old ones;
/// - its metadata is the old one but for `resourceVersion` (present: the update is
///   conditional) and `managedFields` (left out, or the old ones);
/// - its spec is the old one but for a new `renewTime`, a MicroTime as it is encoded;
/// - and [`renew`] applies.
///
/// `None`, with `old` untouched, for any other update.
pub fn renewed(
    old: &mut Value,
    body: &Value,
    manager: &str,
    api_version: &str,
    now: &str,
) -> Option<Value> {
    let renew_time = renewal_time(old, body)?.to_owned();
    renew(old, renew_time, manager, api_version, now)
}

/// The new renewTime of `body`, if it is a renewal of `old` (see [`renewed`]).
fn renewal_time<'b>(old: &Value, body: &'b Value) -> Option<&'b str> {
    let (Value::Object(o), Value::Object(b)) = (old, body) else {
        return None;
    };
    if o.len() != b.len() {
        return None;
    }
    let mut in_old = Cursor::new(o);
    for (k, bv) in b {
        let ov = in_old.get(k)?;
        if k != "metadata" && k != "spec" && !value_eq(bv, ov) {
            return None;
        }
    }
    if !crate::meta_validation::metadata_unchanged(body, old) {
        return None;
    }
    let (Some(Value::Object(os)), Some(Value::Object(bs))) = (find(o, "spec"), find(b, "spec"))
    else {
        return None;
    };
    if os.len() != bs.len() {
        return None;
    }
    let mut in_old = Cursor::new(os);
    let mut renew_time = None;
    for (k, bv) in bs {
        let ov = in_old.get(k)?;
        if k == RENEW_TIME {
            let (new, old) = (bv.as_str()?, ov.as_str()?);
            if new == old || !crate::registry::normal::is_micro_time(new) {
                return None;
            }
            renew_time = Some(new);
        } else if !value_eq(bv, ov) {
            return None;
        }
    }
    renew_time
}

/// The object the general update path stores when `manager` renews the stored `old` to
/// `renew_time` (its spec otherwise unchanged, its metadata too but for managedFields left out
/// or sent back unchanged), if `manager`'s Update entry owns `spec.renewTime` and no other
/// entry does: the general path then changes the renewTime and the `time` of that entry (`now`)
/// and nothing else, the spec's rules passing as they did when `old` was written (they do not
/// read renewTime; they are checked again all the same). Made from `old`, which it takes; `None`,
/// with `old` untouched, otherwise.
pub fn renew(
    old: &mut Value,
    renew_time: String,
    manager: &str,
    api_version: &str,
    now: &str,
) -> Option<Value> {
    let spec = old.get("spec")?;
    if spec.get(RENEW_TIME)?.as_str()? == renew_time
        || !v::validate_lease_spec(v::LeaseSpecRules::deserialize(spec).ok()?).is_empty()
    {
        return None;
    }
    let entries = old
        .get_mut("metadata")?
        .get_mut("managedFields")?
        .as_array_mut()?;
    let changes = [vec!["spec", RENEW_TIME]];
    if !patch::retime_update(entries, manager, api_version, &changes, now) {
        return None;
    }
    let mut new = std::mem::take(old);
    if let Some(slot) = new.get_mut("spec").and_then(|s| s.get_mut(RENEW_TIME)) {
        *slot = Value::String(renew_time);
    }
    Some(new)
}

/// The last renewal body of each Lease, so that the next one is recognized from its bytes: a
/// renewer sends the same bytes every time but for the resourceVersion and the renewTime.
#[derive(Default)]
pub struct Recent {
    sent: parking_lot::Mutex<HashMap<String, Arc<Sent>>>,
}

/// A renewal body as sent.
struct Sent {
    /// The version it was written as.
    rv: Revision,
    body: Bytes,
    /// Where the values of its `metadata.resourceVersion` and `spec.renewTime` are (inside the
    /// quotes), the earlier first.
    values: [Range<usize>; 2],
    /// Whether the resourceVersion comes first.
    rv_first: bool,
}

/// A body recognized by [`Recent::recognize`].
pub struct Recognized {
    /// Its resourceVersion: the version its renewal was written as.
    pub rv: Revision,
    /// Its renewTime, a MicroTime as it is encoded.
    pub renew_time: String,
    /// Where its two values are, as [`Sent::values`].
    values: [Range<usize>; 2],
    rv_first: bool,
}

impl Recent {
    /// Leases remembered at most (beyond, the memory starts afresh).
    const MAX: usize = 65_536;

    /// Remembers `body`, a renewal of the Lease at `key` (with `sent_rv` and `renew_time` as its
    /// resourceVersion and renewTime) written as version `rv`.
    pub fn remember(&self, key: &str, rv: Revision, body: &Bytes, sent_rv: &str, renew_time: &str) {
        let located = (|| {
            let b = &body[..];
            let (top, _) = object::object_members(b, object::skip_ws(b, 0))?;
            let rv_at = member_string(b, &top, "metadata", "resourceVersion", sent_rv)?;
            let time_at = member_string(b, &top, "spec", RENEW_TIME, renew_time)?;
            let rv_first = rv_at.start < time_at.start;
            let values = if rv_first {
                [rv_at, time_at]
            } else {
                [time_at, rv_at]
            };
            Some(Sent {
                rv,
                body: Bytes::copy_from_slice(body),
                values,
                rv_first,
            })
        })();
        self.keep(key, located);
    }

    /// Remembers `body`, recognized as `rec`, once its renewal was written as version `rv`.
    pub fn remember_recognized(&self, key: &str, rv: Revision, body: &Bytes, rec: &Recognized) {
        let sent = Sent {
            rv,
            body: Bytes::copy_from_slice(body),
            values: rec.values.clone(),
            rv_first: rec.rv_first,
        };
        self.keep(key, Some(sent));
    }

    /// Keeps `located` (a copy of the body: the request's bytes may share a larger buffer) as the
    /// last renewal of `key`, or forgets `key`.
    fn keep(&self, key: &str, located: Option<Sent>) {
        let mut sent = self.sent.lock();
        match located {
            Some(s) => {
                if sent.len() >= Self::MAX && !sent.contains_key(key) {
                    sent.clear();
                }
                sent.insert(key.to_owned(), Arc::new(s));
            }
            None => {
                sent.remove(key);
            }
        }
    }

    /// Whether `body` is the last renewal body of the Lease at `key` (which is still at the
    /// version `current` that renewal wrote) but for its resourceVersion, `current`, and its
    /// renewTime, a MicroTime as encoded: the bytes around both values are the same, so the
    /// body is the same JSON but for these two values.
    pub fn recognize(&self, key: &str, body: &[u8], current: Revision) -> Option<Recognized> {
        let sent = self.sent.lock().get(key).cloned()?;
        if sent.rv != current {
            return None;
        }
        let (mut at, mut from) = (0, 0);
        let mut found = [""; 2];
        let mut values = [0..0, 0..0];
        for (i, r) in sent.values.iter().enumerate() {
            let same = &sent.body[from..r.start];
            if body.get(at..at + same.len())? != same {
                return None;
            }
            at += same.len();
            let len = body[at..].iter().position(|&c| c == b'"')?;
            found[i] = std::str::from_utf8(&body[at..at + len]).ok()?;
            values[i] = at..at + len;
            at += len;
            from = r.end;
        }
        if body[at..] != sent.body[from..] {
            return None;
        }
        let (rv, renew_time) = if sent.rv_first {
            (found[0], found[1])
        } else {
            (found[1], found[0])
        };
        let rv: Revision = rv.parse().ok()?;
        (rv == current && crate::registry::normal::is_micro_time(renew_time)).then(|| Recognized {
            rv,
            renew_time: renew_time.to_owned(),
            values,
            rv_first: sent.rv_first,
        })
    }
}

/// Where the value of the string member `name` of the object member `parent` of the top-level
/// object is (inside its quotes), if each is there once and the value is `value`, written as is.
fn member_string(
    b: &[u8],
    top: &[object::Member],
    parent: &str,
    name: &str,
    value: &str,
) -> Option<Range<usize>> {
    let once = |members: &[object::Member], name: &str| {
        let mut it = members.iter().filter(|m| m.is(b, name));
        match (it.next(), it.next()) {
            (Some(m), None) => Some(*m),
            _ => None,
        }
    };
    let p = once(top, parent)?;
    let (members, _) = object::object_members(b, p.value_start)?;
    let m = once(&members, name)?;
    let inner = m.value_start + 1..m.value_end - 1;
    (b.get(m.value_start) == Some(&b'"') && b.get(inner.clone())? == value.as_bytes())
        .then_some(inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::handlers::write::{FieldValidation, Warnings, normalize, prepare_update};
    use crate::patching::{track_create, track_update};

    fn leases() -> Arc<ResourceInfo> {
        crate::registry::Registry::builtin()
            .get("coordination.k8s.io", "v1", "leases")
            .cloned()
            .unwrap()
    }

    /// A Lease as the general path stores it after `manager` created it.
    fn stored(manager: &str) -> Value {
        let r = leases();
        let mut o = normalize(
            &r,
            json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {
                    "name": "n1", "namespace": "kube-node-lease",
                    "uid": "26ea8aec-0347-4732-8167-acb261db0dbc",
                    "creationTimestamp": "2026-11-30T03:57:42Z",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1",
                        "uid": "d68232b0-e15f-4fcc-a3fa-1d331b368705"}],
                },
                "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                    "renewTime": "2026-11-30T04:02:12.562358Z"},
            }),
            FieldValidation::Strict,
            &mut Warnings::default(),
            false,
        )
        .unwrap();
        track_create(&r, &mut o, manager);
        o["metadata"]["resourceVersion"] = json!("7");
        o
    }

    /// What the general path stores for `body` sent by `manager` over `old`.
    fn general(old: &Value, body: Value, manager: &str) -> Value {
        let r = leases();
        let body = normalize(
            &r,
            body,
            FieldValidation::Strict,
            &mut Warnings::default(),
            false,
        )
        .unwrap();
        let mut new = prepare_update(&r, None, body, old).unwrap();
        track_update(&r, old, &mut new, manager, None);
        new
    }

    /// The body of a renewal: the object sent back with a new renewTime, without managedFields
    /// (as the simulated nodes send it) or with them (as a kubelet does).
    fn renewal(old: &Value, keep_managed_fields: bool) -> Value {
        let mut body = old.clone();
        body["spec"]["renewTime"] = json!("2026-11-30T04:02:22.100200Z");
        if !keep_managed_fields {
            body["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("managedFields");
        }
        body
    }

    /// The renewer's entry time the general path wrote (the fast path is given the same `now`).
    fn time_of(obj: &Value, manager: &str) -> String {
        obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == manager)
            .unwrap()["time"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn assert_same_as_general(old: &Value, body: Value, manager: &str) {
        let want = general(old, body.clone(), manager);
        let now = time_of(&want, manager);
        let mut taken = old.clone();
        let got =
            renewed(&mut taken, &body, manager, "coordination.k8s.io/v1", &now).expect("a renewal");
        // Equal as JSON: the same members (in any order) and managedFields entries (in order).
        assert_eq!(got, want);
    }

    #[test]
    fn a_renewal_stores_what_the_general_path_stores() {
        let old = stored("kubelet");
        assert_same_as_general(&old, renewal(&old, false), "kubelet");
        assert_same_as_general(&old, renewal(&old, true), "kubelet");
    }

    #[test]
    fn a_renewal_moves_the_renewers_entry_where_the_encoder_sorts_it() {
        // Another manager's later entry, for a field the renewer does not own.
        let old = stored("kubelet");
        let mut body = old.clone();
        body["spec"]["leaseTransitions"] = json!(1);
        let mut old = general(&old, body, "zz-elector");
        // An earlier time for the other entry than the renewal's, so that the renewer's entry
        // moves behind it.
        for e in old["metadata"]["managedFields"].as_array_mut().unwrap() {
            e["time"] = json!("2026-01-01T00:00:00Z");
        }
        old["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
            .sort_by_key(|e| e["manager"].as_str().unwrap().to_string());
        assert_eq!(old["metadata"]["managedFields"][0]["manager"], "kubelet");
        let body = renewal(&old, false);
        assert_same_as_general(&old, body, "kubelet");
    }

    #[test]
    fn other_updates_take_the_general_path_and_leave_the_old_object() {
        let old = stored("kubelet");
        let api_version = "coordination.k8s.io/v1";
        let now = "2026-11-30T04:02:22Z";
        let declined = |body: Value, manager: &str| {
            let mut taken = old.clone();
            let got = renewed(&mut taken, &body, manager, api_version, now);
            assert!(got.is_none(), "{body}");
            assert_eq!(taken, old);
        };
        // The renewTime owned by another manager.
        declined(renewal(&old, false), "intruder");
        // Another spec field changed.
        let mut b = renewal(&old, false);
        b["spec"]["holderIdentity"] = json!("n2");
        declined(b, "kubelet");
        // A renewTime not as it is encoded, or unchanged.
        let mut b = renewal(&old, false);
        b["spec"]["renewTime"] = json!("2026-11-30T04:02:22Z");
        declined(b, "kubelet");
        let mut b = renewal(&old, false);
        b["spec"]["renewTime"] = old["spec"]["renewTime"].clone();
        declined(b, "kubelet");
        // Metadata changed, or an unconditional update.
        let mut b = renewal(&old, false);
        b["metadata"]["labels"] = json!({"a": "b"});
        declined(b, "kubelet");
        let mut b = renewal(&old, false);
        b["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        declined(b, "kubelet");
        // managedFields sent with changes, or an invalid spec.
        let mut b = renewal(&old, true);
        b["metadata"]["managedFields"] = json!([]);
        declined(b, "kubelet");
        let mut b = renewal(&old, false);
        b["spec"]["leaseDurationSeconds"] = json!(0);
        let mut bad_old = old.clone();
        bad_old["spec"]["leaseDurationSeconds"] = json!(0);
        let mut taken = bad_old.clone();
        assert!(renewed(&mut taken, &b, "kubelet", api_version, now).is_none());
        // An unknown member.
        let mut b = renewal(&old, false);
        b["status"] = json!({});
        declined(b, "kubelet");
    }
}

#[cfg(test)]
mod recent_tests {
    use bytes::Bytes;

    use super::*;

    fn body(rv: &str, time: &str, holder: &str) -> Bytes {
        Bytes::from(format!(
            r#"{{"kind":"Lease","metadata":{{"annotations":{{"renewTime":"{T1}"}},"name":"n1","resourceVersion":"{rv}"}},"spec":{{"holderIdentity":"{holder}", "renewTime" : "{time}"}}}}"#
        ))
    }

    const T1: &str = "2026-11-30T04:00:01.000000Z";
    const T2: &str = "2026-11-30T04:00:02.000000Z";

    #[test]
    fn the_next_renewal_is_recognized_from_the_bytes_of_the_last() {
        let recent = Recent::default();
        recent.remember("/k", 9, &body("7", T1, "a"), "7", T1);
        let rec = recent
            .recognize("/k", &body("9", T2, "a"), 9)
            .expect("recognized");
        assert_eq!((rec.rv, rec.renew_time.as_str()), (9, T2));
        // Remembered as recognized (no scan), it recognizes the next one.
        recent.remember_recognized("/k", 10, &body("9", T2, "a"), &rec);
        let rec = recent
            .recognize("/k", &body("10", T1, "a"), 10)
            .expect("recognized");
        assert_eq!((rec.rv, rec.renew_time.as_str()), (10, T1));
        // A resourceVersion of another length.
        recent.remember("/k", 10, &body("9", T1, "a"), "9", T1);
        let rec = recent
            .recognize("/k", &body("10", T2, "a"), 10)
            .expect("recognized");
        assert_eq!((rec.rv, rec.renew_time.as_str()), (10, T2));
    }

    #[test]
    fn any_other_body_is_not() {
        let recent = Recent::default();
        recent.remember("/k", 9, &body("7", T1, "a"), "7", T1);
        // Another key, another current version, a stale resourceVersion.
        assert!(recent.recognize("/j", &body("9", T2, "a"), 9).is_none());
        assert!(recent.recognize("/k", &body("10", T2, "a"), 10).is_none());
        assert!(recent.recognize("/k", &body("8", T2, "a"), 9).is_none());
        // Another change, a renewTime not as encoded.
        assert!(recent.recognize("/k", &body("9", T2, "b"), 9).is_none());
        let short = "2026-11-30T04:00:02Z";
        assert!(recent.recognize("/k", &body("9", short, "a"), 9).is_none());
        // The annotation holding the same text is not taken for the renewTime: changing it
        // alone is another change.
        let text = String::from_utf8(body("9", T1, "a").to_vec()).unwrap();
        assert_eq!(text.matches(T1).count(), 2);
        let text = text.replacen(T1, T2, 1);
        assert!(recent.recognize("/k", text.as_bytes(), 9).is_none());
        // A body whose values are not where the renewal said: not remembered.
        recent.remember("/k", 9, &body("7", T1, "a"), "6", T1);
        assert!(recent.recognize("/k", &body("9", T2, "a"), 9).is_none());
    }
}
