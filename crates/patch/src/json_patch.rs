//! JSON patch (RFC 6902) and JSON merge patch (RFC 7386).

use serde_json::Value;

use crate::PatchError;

/// Applies a JSON patch (`application/json-patch+json`, RFC 6902 including `test`) to `original`.
///
/// The patch is applied atomically: on error nothing is changed. A document that cannot be
/// decoded as a patch gives [`PatchError::InvalidJsonPatch`] (400), a failing operation
/// [`PatchError::JsonPatchFailed`] (422), as upstream's JSON patcher.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::InvalidJsonPatch(format!("invalid JSON patch: {e}")))?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| PatchError::JsonPatchFailed(e.to_string()))?;
    if !doc.is_object() {
        return Err(PatchError::NotAnObject);
    }
    Ok(doc)
}

/// Applies a JSON merge patch (`application/merge-patch+json`, RFC 7386) to `original`: objects
/// are merged recursively, `null` deletes, everything else (lists included) replaces.
///
/// The patch must be a JSON object ([`PatchError::BadJsonDoc`] otherwise).
pub fn merge_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::BadJsonDoc);
    }
    let mut doc = if original.is_object() {
        original.clone()
    } else {
        Value::Object(serde_json::Map::new())
    };
    json_patch::merge(&mut doc, patch);
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_table() {
        let deploy = json!({
            "metadata": {"name": "app", "annotations": {"a": "1"}},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "app", "pod-template-hash": "x"}}}}
        });
        struct Case {
            name: &'static str,
            patch: Value,
            want: Result<Value, u16>,
        }
        let cases = vec![
            Case {
                name: "replace",
                patch: json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
                want: Ok(json!({
                    "metadata": {"name": "app", "annotations": {"a": "1"}},
                    "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "app", "pod-template-hash": "x"}}}}
                })),
            },
            Case {
                name: "rollout undo body",
                patch: json!([
                    {"op": "replace", "path": "/spec/template", "value": {"metadata": {"labels": {"app": "app"}}}},
                    {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "1"}}
                ]),
                want: Ok(json!({
                    "metadata": {"name": "app", "annotations": {"deployment.kubernetes.io/revision": "1"}},
                    "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "app"}}}}
                })),
            },
            Case {
                name: "test passes then add",
                patch: json!([
                    {"op": "test", "path": "/spec/replicas", "value": 1},
                    {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
                    {"op": "remove", "path": "/metadata/annotations/a"}
                ]),
                want: Ok(json!({
                    "metadata": {"name": "app", "annotations": {}, "labels": {"x": "y"}},
                    "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "app", "pod-template-hash": "x"}}}}
                })),
            },
            Case {
                name: "test fails",
                patch: json!([{"op": "test", "path": "/spec/replicas", "value": 2}, {"op": "replace", "path": "/spec/replicas", "value": 5}]),
                want: Err(422),
            },
            Case {
                name: "missing path",
                patch: json!([{"op": "replace", "path": "/spec/nope/x", "value": 1}]),
                want: Err(422),
            },
            Case {
                name: "not a patch",
                patch: json!({"op": "replace"}),
                want: Err(400),
            },
            Case {
                name: "unknown op",
                patch: json!([{"op": "frobnicate", "path": "/a"}]),
                want: Err(400),
            },
        ];
        for c in cases {
            let got = json_patch(&deploy, &c.patch).map_err(|e| e.status_code());
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn merge_patch_table() {
        let cm =
            json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
        let cases = vec![
            (
                "label",
                json!({"metadata": {"labels": {"x": "y"}}}),
                json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2", "x": "y"}}, "data": {"k": "v"}}),
            ),
            (
                "null deletes",
                json!({"metadata": {"labels": {"a": null}}, "data": null}),
                json!({"metadata": {"name": "c", "labels": {"b": "2"}}}),
            ),
            (
                "scale",
                json!({"spec": {"replicas": 1}}),
                json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}, "spec": {"replicas": 1}}),
            ),
            (
                "lists replace",
                json!({"data": ["x"]}),
                json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": ["x"]}),
            ),
        ];
        for (name, patch, want) in cases {
            assert_eq!(merge_patch(&cm, &patch).unwrap(), want, "{name}");
        }
        assert_eq!(merge_patch(&cm, &json!([1])), Err(PatchError::BadJsonDoc));
    }
}
