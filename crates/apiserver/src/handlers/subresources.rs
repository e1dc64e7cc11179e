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

/// POST `pods/{name}/binding`: sets `spec.nodeName` of an unbound pod.
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
    write::guaranteed_update(state, &r, &t.key(), &name, None, false, |cur| {
        let Some(cur) = cur else {
            return Err(ApiError::not_found(r.qualified(), &name));
        };
        if object::is_deleting(cur) {
            return Err(ApiError::conflict_msg(r.qualified(), &name, "pod is being deleted, cannot be assigned to a host"));
        }
        let existing = cur.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
        if !existing.is_empty() {
            return Err(ApiError::conflict_msg(
                r.qualified(),
                &name,
                &format!("pod {name} is already assigned to node \"{existing}\""),
            ));
        }
        // Moved, not copied: the new object always differs (it gains a nodeName), which is
        // all `guaranteed_update` needs to know of the old one.
        let mut new = std::mem::take(cur);
        new["spec"]["nodeName"] = json!(node);
        if let Some(ann) = binding.pointer("/metadata/annotations").and_then(Value::as_object) {
            let m = object::meta_mut(&mut new);
            let a = m.entry("annotations").or_insert_with(|| json!({}));
            for (k, v) in ann {
                a[k] = v.clone();
            }
        }
        // The PodScheduled condition.
        let mut conds = match new["status"]["conditions"].take() {
            Value::Array(conds) => conds,
            _ => Vec::new(),
        };
        conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
        conds.push(json!({"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":object::now_rfc3339()}));
        new["status"]["conditions"] = json!(conds);
        Ok(UpdateOutcome::Write(new))
    })
    .await?;
    Ok(json_value(
        StatusCode::CREATED,
        &json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}),
    ))
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

    #[test]
    fn selector_strings() {
        let sel = json!({"matchLabels":{"b":"2","a":"1"},"matchExpressions":[{"key":"k","operator":"In","values":["y","x"]},{"key":"e","operator":"DoesNotExist"}]});
        assert_eq!(label_selector_string(&sel), "a=1,b=2,k in (x,y),!e");
    }
}
