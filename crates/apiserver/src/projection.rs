//! Parsing only part of a JSON object: the watch cache needs a few fields of each Pod or
//! Event it stores (their selectable fields), and building a whole `Value` of a Pod only to
//! read `spec.nodeName` and `status.phase` was most of what caching it cost. The other
//! members are skipped as the parser goes, without allocating.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The members to keep of a JSON object, each whole or projected in turn.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Projection {
    members: Vec<(&'static str, Option<Projection>)>,
}

impl Projection {
    /// The projection keeping the values at `paths` (each a list of member names from the
    /// top; a path that is a prefix of another keeps the whole value).
    pub fn from_paths(paths: &[&[&'static str]]) -> Projection {
        let mut p = Projection::default();
        p.add_paths(paths);
        p
    }

    /// Keeps the values at `paths` too.
    pub fn add_paths(&mut self, paths: &[&[&'static str]]) {
        for path in paths {
            self.add(path);
        }
    }

    fn add(&mut self, path: &[&'static str]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let at = match self.members.iter().position(|(k, _)| k == first) {
            Some(at) => at,
            None => {
                self.members.push((first, Some(Projection::default())));
                self.members.len() - 1
            }
        };
        let member = &mut self.members[at].1;
        if rest.is_empty() {
            *member = None;
        } else if let Some(sub) = member {
            sub.add(rest);
        }
    }

    /// Parses `json` keeping only the projected members; what is skipped is still checked to
    /// be JSON. Anything but an object where the projection descends reads as `null`.
    pub fn parse(&self, json: &[u8]) -> Result<Value, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let v = self.deserialize(&mut de)?;
        de.end()?;
        Ok(v)
    }
}

impl<'de> DeserializeSeed<'de> for &Projection {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &Projection {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(at) = map.next_key_seed(MemberIndex(self))? {
            let Some(at) = at else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let (name, sub) = &self.members[at];
            let v = match sub {
                None => map.next_value::<Value>()?,
                Some(sub) => map.next_value_seed(sub)?,
            };
            out.insert((*name).to_owned(), v);
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// Reads a member name as the index of the projected member it names, if any, without
/// allocating.
struct MemberIndex<'p>(&'p Projection);

impl<'de> DeserializeSeed<'de> for MemberIndex<'_> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MemberIndex<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, k: &str) -> Result<Option<usize>, E> {
        Ok(self.0.members.iter().position(|(name, _)| *name == k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_only_the_projected_members() {
        let p =
            Projection::from_paths(&[&["spec", "nodeName"], &["status", "podIPs"], &["reason"]]);
        let obj = json!({
            "metadata": {"name": "a", "labels": {"x": "y"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], "nodeName": "n1", "x": {"nodeName": "no"}},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]},
            "reason": {"deep": [1, 2, {"a": null}]},
            "esc\"aped": "\u{1F600}",
        });
        let got = p
            .parse(serde_json::to_string(&obj).unwrap().as_bytes())
            .unwrap();
        assert_eq!(
            got,
            json!({
                "spec": {"nodeName": "n1"},
                "status": {"podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]},
                "reason": {"deep": [1, 2, {"a": null}]},
            })
        );
    }

    #[test]
    fn a_shorter_path_keeps_the_whole_value_and_non_objects_read_as_null() {
        let p = Projection::from_paths(&[&["spec", "nodeName"], &["spec"], &["status", "phase"]]);
        let got = p
            .parse(br#"{"spec": {"a": 1, "nodeName": "n"}, "status": "odd", "x": [1]}"#)
            .unwrap();
        assert_eq!(
            got,
            json!({"spec": {"a": 1, "nodeName": "n"}, "status": null})
        );
        // The last of duplicate members wins, as when parsing the whole object.
        let got = p
            .parse(br#"{"spec": {"nodeName": "a"}, "spec": {"nodeName": "b"}}"#)
            .unwrap();
        assert_eq!(got, json!({"spec": {"nodeName": "b"}}));
    }

    /// The cache computes selectable fields from the projection of `printers`' field paths;
    /// they must read as they do from the whole object.
    #[test]
    fn selectable_fields_read_the_same_from_the_projection() {
        use printers::fields::{field_paths, field_value, supported_fields};
        let cases: Vec<(&str, &str, Value)> = vec![
            (
                "",
                "pods",
                json!({
                "metadata": {"name": "p", "namespace": "d"},
                "spec": {"containers": [{"name": "c"}], "nodeName": "n1", "restartPolicy": "Always",
                         "schedulerName": "default-scheduler", "serviceAccountName": "sa", "hostNetwork": true},
                "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}],
                           "nominatedNodeName": "n2", "conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
            (
                "",
                "pods",
                json!({"metadata": {"name": "p"}, "spec": {"containers": []},
                "status": {"podIP": "", "podIPs": [{"ip": "fd00::2"}]}}),
            ),
            (
                "",
                "pods",
                json!({"metadata": {"name": "p"}, "spec": "odd", "status": 3}),
            ),
            (
                "",
                "nodes",
                json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true, "podCIDR": "x"}}),
            ),
            (
                "",
                "events",
                json!({"metadata": {"name": "e", "namespace": "d"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "d", "uid": "u",
                                   "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec"},
                "reason": "Scheduled", "type": "Normal", "message": "m", "source": {"component": "sched"},
                "reportingComponent": "rc"}),
            ),
            (
                "",
                "events",
                json!({"metadata": {"name": "e"}, "reportingComponent": "rc", "source": {}}),
            ),
            (
                "events.k8s.io",
                "events",
                json!({"metadata": {"name": "e"},
                "regarding": {"kind": "Pod", "name": "p"}, "reason": "r", "type": "Warning",
                "reportingController": "c", "deprecatedSource": {"component": "k"}, "note": "n"}),
            ),
            (
                "",
                "namespaces",
                json!({"metadata": {"name": "d"}, "status": {"phase": "Terminating"}}),
            ),
            (
                "",
                "secrets",
                json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "Yg=="}}),
            ),
            (
                "",
                "services",
                json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.43.0.1", "type": "NodePort", "ports": []}}),
            ),
            (
                "",
                "replicationcontrollers",
                json!({"metadata": {"name": "r"}, "status": {"replicas": 3}}),
            ),
            (
                "batch",
                "jobs",
                json!({"metadata": {"name": "j"}, "status": {"succeeded": 2, "active": 1}}),
            ),
            (
                "certificates.k8s.io",
                "certificatesigningrequests",
                json!({"metadata": {"name": "c"}, "spec": {"signerName": "s", "request": "x"}}),
            ),
        ];
        for (group, resource, obj) in cases {
            let projection = Projection::from_paths(field_paths(group, resource));
            let part = projection
                .parse(serde_json::to_string(&obj).unwrap().as_bytes())
                .unwrap();
            assert!(part.get("metadata").is_none());
            for f in supported_fields(group, resource) {
                if f.starts_with("metadata.") {
                    continue;
                }
                assert_eq!(
                    field_value(group, resource, &part, f),
                    field_value(group, resource, &obj, f),
                    "{group}/{resource} {f} of {obj}"
                );
            }
        }
    }

    #[test]
    fn skipped_members_must_still_be_json() {
        let p = Projection::from_paths(&[&["spec"]]);
        assert!(p.parse(br#"{"spec": {}, "x": [1,}"#).is_err());
        assert!(p.parse(br#"{"spec": {}} trailing"#).is_err());
        assert!(p.parse(br#"{"spec": {}, "x": "\u12"}"#).is_err());
    }
}
