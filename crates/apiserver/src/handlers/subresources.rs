//! Subresources with their own shapes: `/scale` (autoscaling/v1 Scale), `pods/binding`,
//! `pods/eviction`. `/status` goes through the generic update path.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::write::{self, UpdateOutcome};
use super::{Query, Target, json_value, negotiate};
use crate::ApiState;
use crate::error::ApiError;
use crate::object;

/// The Scale of a Deployment or ReplicaSet.
fn scale_of(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let selector = obj
        .pointer("/spec/selector")
        .map(label_selector_string)
        .unwrap_or_default();
    let mut m = serde_json::Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(f) {
            m.insert(f.into(), v.clone());
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": m,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// `metav1.FormatLabelSelector`.
pub fn label_selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        let mut keys: Vec<_> = ml.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in keys {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(me) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in me {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
            let mut vals: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            vals.sort();
            match op {
                "In" => parts.push(format!("{key} in ({})", vals.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", vals.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

/// GET `.../scale`.
pub async fn get_scale(state: &Arc<ApiState>, t: &Target) -> Result<Response, ApiError> {
    state.cacher.wait_fresh().await?;
    let name = t.name.as_deref().unwrap_or("");
    let o = state
        .cacher
        .get(&t.r, &t.key())
        .ok_or_else(|| ApiError::not_found(t.r.qualified(), name))?;
    Ok(json_value(StatusCode::OK, &scale_of(&o.value())))
}

/// PUT or PATCH `.../scale`.
pub async fn update_scale(
    state: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
    is_patch: bool,
) -> Result<Response, ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let dry = q.get("dryRun") == Some("All");
    let ptype = if is_patch {
        Some(crate::patching::PatchType::from_content_type(
            &negotiate::media_type(headers),
        )?)
    } else {
        None
    };
    let doc = match ptype {
        Some(p) => Some(crate::patching::parse_patch(p, body)?),
        None => None,
    };
    let put_body = if is_patch {
        None
    } else {
        Some(negotiate::decode(
            body,
            negotiate::body_format(headers)?,
            "Scale",
        )?)
    };
    let r = t.r.clone();
    let manager = write::field_manager(q, headers);
    let precondition = put_body
        .as_ref()
        .and_then(|b| object::resource_version(b))
        .and_then(|s| s.parse().ok());
    let w = write::guaranteed_update(state, &r, &t.key(), &name, precondition, dry, |cur| {
        let Some(cur) = cur else {
            return Err(ApiError::not_found(r.qualified(), &name));
        };
        let scale = scale_of(cur);
        let new_scale = match (&doc, ptype, &put_body) {
            (Some(d), Some(p), _) => {
                let scale_info = crate::patching::scale_resource();
                crate::patching::patch(&scale_info, &scale, d, p)?
            }
            (_, _, Some(b)) => b.clone(),
            _ => scale.clone(),
        };
        let replicas = new_scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                &name,
                vec![crate::error::Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "Invalid value: {replicas}: must be greater than or equal to 0"
                    ),
                    field: "spec.replicas".into(),
                }],
            ));
        }
        let mut new = cur.clone();
        new["spec"]["replicas"] = json!(replicas);
        let mut new = write::prepare_update(&r, None, new, cur)?;
        crate::patching::track_update(
            &r,
            cur,
            &mut new,
            &manager,
            Some(crate::registry::Subresource::Scale),
        );
        Ok(UpdateOutcome::Write(new))
    })
    .await?;
    Ok(json_value(StatusCode::OK, &scale_of(&w.obj)))
}

/// POST `pods/{name}/binding`: sets `spec.nodeName` of an unbound pod, and its `PodScheduled`
/// condition.
pub async fn bind(
    state: &Arc<ApiState>,
    t: &Target,
    _q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let binding = negotiate::decode(body, negotiate::body_format(headers)?, "Binding")?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = t.name.clone().unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            &name,
            vec![crate::error::Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "target.name".into(),
            }],
        ));
    }
    let r = t.r.clone();
    let key = t.key();
    let annotations = binding
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .filter(|a| !a.is_empty());
    let bound = if annotations.is_none() {
        // The scheduler's binding of a pending pod: made from the cached text, parsing nothing.
        write::update_raw(state, &r, &key, |cur| {
            let bytes = bound_pod_bytes(&cur.raw, &node, &object::now_rfc3339())?;
            let fields = cur
                .fields
                .iter()
                .map(|(f, v)| {
                    (
                        *f,
                        if *f == "spec.nodeName" {
                            node.clone()
                        } else {
                            v.clone()
                        },
                    )
                })
                .collect();
            Some((bytes, fields))
        })
        .await?
    } else {
        None
    };
    if bound.is_none() {
        write::guaranteed_update(state, &r, &key, &name, None, false, |cur| {
            let Some(cur) = cur else {
                return Err(ApiError::not_found(r.qualified(), &name));
            };
            // Moved, not copied: the new object always differs (it gains a nodeName), which is
            // all `guaranteed_update` needs to know of the old one.
            let pod = std::mem::take(cur);
            bind_parsed(&r, &name, pod, &node, annotations, object::now_rfc3339())
                .map(UpdateOutcome::Write)
        })
        .await?;
    }
    Ok(json_value(
        StatusCode::CREATED,
        &json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}),
    ))
}

/// `pod` bound to `node` at `now`: upstream `assignPod` (a pod being deleted or already bound is
/// a conflict), the binding's annotations added.
fn bind_parsed(
    r: &crate::registry::ResourceInfo,
    name: &str,
    mut pod: Value,
    node: &str,
    annotations: Option<&serde_json::Map<String, Value>>,
    now: String,
) -> Result<Value, ApiError> {
    if object::is_deleting(&pod) {
        return Err(ApiError::conflict_msg(
            r.qualified(),
            name,
            "pod is being deleted, cannot be assigned to a host",
        ));
    }
    let existing = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !existing.is_empty() {
        return Err(ApiError::conflict_msg(
            r.qualified(),
            name,
            &format!("pod {name} is already assigned to node \"{existing}\""),
        ));
    }
    pod["spec"]["nodeName"] = json!(node);
    if let Some(ann) = annotations {
        let m = object::meta_mut(&mut pod);
        let a = m.entry("annotations").or_insert_with(|| json!({}));
        for (k, v) in ann {
            a[k] = v.clone();
        }
    }
    // The PodScheduled condition.
    let mut conds = match pod["status"]["conditions"].take() {
        Value::Array(conds) => conds,
        _ => Vec::new(),
    };
    conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
    conds.push(pod_scheduled(now));
    pod["status"]["conditions"] = json!(conds);
    Ok(pod)
}

fn pod_scheduled(now: String) -> Value {
    json!({"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":now})
}

/// What [`bind_parsed`] stores for the pod whose cached text is `pod` (compact JSON with
/// `metadata.resourceVersion` as the first member of `metadata`, as the watch cache keeps it),
/// made from that text without parsing it: the resourceVersion left out, `nodeName` appended to
/// `spec` and `conditions` (PodScheduled) appended to `status`. Only for the pod the scheduler
/// binds: one with `spec` and `status` objects, no `nodeName`, no `conditions`, no
/// `deletionTimestamp`; `None` for any other (the parsed path decides, with its errors).
fn bound_pod_bytes(pod: &[u8], node: &str, now: &str) -> Option<Vec<u8>> {
    use crate::object::Member;
    let find = |members: &[Member], name: &str| members.iter().copied().find(|m| m.is(pod, name));
    let (top, _) = object::object_members(pod, object::skip_ws(pod, 0))?;
    let (meta, spec, status) = (
        find(&top, "metadata")?,
        find(&top, "spec")?,
        find(&top, "status")?,
    );
    if meta.value_end > spec.key_start || spec.value_end > status.key_start {
        return None;
    }
    let (meta_members, _) = object::object_members(pod, meta.value_start)?;
    let rv = meta_members
        .first()
        .copied()
        .filter(|m| m.is(pod, "resourceVersion"))?;
    if find(&meta_members, "deletionTimestamp").is_some() {
        return None;
    }
    let (spec_members, spec_close) = object::object_members(pod, spec.value_start)?;
    let (status_members, status_close) = object::object_members(pod, status.value_start)?;
    if find(&spec_members, "nodeName").is_some() || find(&status_members, "conditions").is_some() {
        return None;
    }
    // The resourceVersion with what separates it from the next member, if any.
    let rv_end = meta_members
        .get(1)
        .map_or(rv.value_end, |next| next.key_start);
    let node = serde_json::to_vec(node).ok()?;
    let condition = serde_json::to_vec(&pod_scheduled(now.to_owned())).ok()?;
    let mut out = Vec::with_capacity(pod.len() + node.len() + condition.len() + 32);
    out.extend_from_slice(&pod[..rv.key_start]);
    out.extend_from_slice(&pod[rv_end..spec_close]);
    if !spec_members.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(b"\"nodeName\":");
    out.extend_from_slice(&node);
    out.extend_from_slice(&pod[spec_close..status_close]);
    if !status_members.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(b"\"conditions\":[");
    out.extend_from_slice(&condition);
    out.push(b']');
    out.extend_from_slice(&pod[status_close..]);
    Some(out)
}

/// POST `pods/{name}/eviction`: deletes the pod (PodDisruptionBudgets are not served yet).
pub async fn evict(
    state: &Arc<ApiState>,
    t: &Target,
    _q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let ev = negotiate::decode(body, negotiate::body_format(headers)?, "Eviction")?;
    let mut opts = write::DeleteOptions::default();
    if let Some(d) = ev.get("deleteOptions") {
        opts.grace = d.get("gracePeriodSeconds").and_then(Value::as_i64);
        opts.propagation = d
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.dry = d
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    }
    let name = t.name.clone().unwrap_or_default();
    write::delete_object(state, &t.r, &t.key(), &name, &opts).await?;
    Ok(json_value(
        StatusCode::CREATED,
        &json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> Arc<crate::registry::ResourceInfo> {
        crate::registry::Registry::builtin()
            .get("", "v1", "pods")
            .cloned()
            .unwrap()
    }

    /// The text the watch cache keeps of a stored object: compact JSON with the
    /// resourceVersion spliced in first.
    fn cached(v: &Value) -> Vec<u8> {
        object::with_resource_version(&serde_json::to_vec(v).unwrap(), 42).unwrap()
    }

    /// What the parsed path stores for the cached text.
    fn parsed_path(text: &[u8], node: &str, now: &str) -> Result<Vec<u8>, ApiError> {
        let pod: Value = serde_json::from_slice(text).unwrap();
        let mut bound = bind_parsed(&pods(), "p", pod, node, None, now.into())?;
        object::clear_resource_version(&mut bound);
        Ok(serde_json::to_vec(&bound).unwrap())
    }

    #[test]
    fn bound_pod_bytes_are_what_the_parsed_path_stores() {
        let now = "2026-11-29T21:00:00Z";
        let full = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d", "uid": "u", "labels": {"a": "b"},
                         "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:nodeName": {}}}}]},
            "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "nodeName", "value": "{\"x\"]"}]}],
                     "schedulerName": "default-scheduler"},
            "status": {"phase": "Pending", "qosClass": "BestEffort"}
        });
        let spacey = br#"{ "kind" : "Pod" , "metadata" : { "resourceVersion" : "3" , "name" : "p" } , "spec" : { } , "status" : { } }"#;
        let cases: Vec<Vec<u8>> = vec![
            cached(&full),
            cached(&json!({"metadata": {"name": "p"}, "spec": {}, "status": {}})),
            // Only the resourceVersion in metadata.
            cached(
                &json!({"metadata": {}, "spec": {"containers": []}, "status": {"phase": "Pending"}}),
            ),
            spacey.to_vec(),
        ];
        for (i, text) in cases.iter().enumerate() {
            let spliced = bound_pod_bytes(text, "node-\"7\"", now)
                .unwrap_or_else(|| panic!("case {i}: not spliced"));
            let expected = parsed_path(text, "node-\"7\"", now).unwrap();
            let (a, b): (Value, Value) = (
                serde_json::from_slice(&spliced).unwrap(),
                serde_json::from_slice(&expected).unwrap(),
            );
            assert_eq!(a, b, "case {i}");
            if i < 3 {
                // Compact input: the very bytes of the parsed path.
                assert_eq!(
                    String::from_utf8_lossy(&spliced),
                    String::from_utf8_lossy(&expected),
                    "case {i}"
                );
            }
            assert!(a["metadata"].get("resourceVersion").is_none());
        }
    }

    #[test]
    fn pods_the_splice_does_not_handle_take_the_parsed_path() {
        let now = "2026-11-29T21:00:00Z";
        let base = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": []},
            "status": {"phase": "Pending"}
        });
        let with = |path: &str, v: Value| {
            let mut p = base.clone();
            *p.pointer_mut(path).unwrap() = v;
            p
        };
        let mut no_status = base.clone();
        no_status.as_object_mut().unwrap().remove("status");
        let bound = with("/spec", json!({"containers": [], "nodeName": "n1"}));
        let unbound_empty = with("/spec", json!({"containers": [], "nodeName": ""}));
        let deleting = with(
            "/metadata",
            json!({"name": "p", "deletionTimestamp": "2026-11-29T20:00:00Z"}),
        );
        let conditions = with(
            "/status",
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]}),
        );
        for (what, pod) in [
            ("bound", &bound),
            ("empty nodeName", &unbound_empty),
            ("deleting", &deleting),
            ("conditions", &conditions),
            ("no status", &no_status),
        ] {
            assert_eq!(bound_pod_bytes(&cached(pod), "n2", now), None, "{what}");
        }
        // Without the resourceVersion first in metadata (not the cache's text).
        assert_eq!(
            bound_pod_bytes(&serde_json::to_vec(&base).unwrap(), "n2", now),
            None
        );
        // The parsed path refuses the bound and the deleting pod, and binds the others.
        let err = parsed_path(&cached(&bound), "n2", now).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message
                .ends_with("pod p is already assigned to node \"n1\""),
            "{}",
            err.message
        );
        let err = parsed_path(&cached(&deleting), "n2", now).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message
                .ends_with("pod is being deleted, cannot be assigned to a host")
        );
        for pod in [&unbound_empty, &conditions, &no_status] {
            let v: Value =
                serde_json::from_slice(&parsed_path(&cached(pod), "n2", now).unwrap()).unwrap();
            assert_eq!(v["spec"]["nodeName"], "n2");
            let conds = v["status"]["conditions"].as_array().unwrap();
            assert_eq!(conds.len(), 1);
            assert_eq!(conds[0]["status"], "True");
        }
    }

    #[test]
    fn selector_strings() {
        let sel = json!({"matchLabels":{"b":"2","a":"1"},"matchExpressions":[{"key":"k","operator":"In","values":["y","x"]},{"key":"e","operator":"DoesNotExist"}]});
        assert_eq!(label_selector_string(&sel), "a=1,b=2,k in (x,y),!e");
    }
}
