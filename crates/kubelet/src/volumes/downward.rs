//! The downward API as files: `fieldRef` (pod metadata) and `resourceFieldRef` (a container's
//! limits and requests), formatted as upstream's `fieldpath` and `resource` helpers do.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, ObjectFieldSelector, Pod, ResourceFieldSelector,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Formats a map as upstream's `fieldpath.FormatMap`: `key="value"` lines sorted by key, values
/// quoted like Go's `%q`, without a trailing newline.
pub fn format_map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

pub use api::field::go_quote;

/// The value of a `fieldRef` in a volume (upstream `fieldpath.ExtractFieldPathAsString` for the
/// paths a downwardAPI volume allows).
pub fn field_value(pod: &Pod, sel: &ObjectFieldSelector) -> Result<String, String> {
    let meta = &pod.metadata;
    let path = sel.field_path.as_str();
    if let Some((base, key)) = subscript(path) {
        let map = match base {
            "metadata.labels" => meta.labels.as_ref(),
            "metadata.annotations" => meta.annotations.as_ref(),
            _ => return Err(format!("fieldPath {path:?} does not support subscript")),
        };
        return Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    match path {
        "metadata.name" => Ok(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Ok(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Ok(meta.uid.clone().unwrap_or_default()),
        "metadata.labels" => Ok(format_map(&meta.labels.clone().unwrap_or_default())),
        "metadata.annotations" => Ok(format_map(&meta.annotations.clone().unwrap_or_default())),
        _ => Err(format!("unsupported fieldPath: {path}")),
    }
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`).
fn subscript(path: &str) -> Option<(&str, &str)> {
    let open = path.find("['")?;
    let rest = path[open + 2..].strip_suffix("']")?;
    Some((&path[..open], rest))
}

fn quantity(q: &Quantity) -> Result<api::quantity::ParsedQuantity, String> {
    api::quantity::parse_quantity(&q.0).map_err(|e| format!("invalid quantity {:?}: {e}", q.0))
}

/// The value of a `resourceFieldRef` for `container` (upstream `ExtractContainerResourceValue`
/// after `MergeContainerResourceLimits`: unset limits default to the node's allocatable).
pub fn resource_value(
    sel: &ResourceFieldSelector,
    container: &Container,
    allocatable: &BTreeMap<String, Quantity>,
) -> Result<String, String> {
    let divisor = match &sel.divisor {
        Some(d) => quantity(d)?,
        None => api::quantity::ParsedQuantity::ZERO,
    };
    let resources = container.resources.clone().unwrap_or_default();
    let (list, name, is_limit) = if let Some(name) = sel.resource.strip_prefix("limits.") {
        (resources.limits.unwrap_or_default(), name, true)
    } else if let Some(name) = sel.resource.strip_prefix("requests.") {
        (resources.requests.unwrap_or_default(), name, false)
    } else {
        return Err(format!("unsupported container resource : {}", sel.resource));
    };
    let known = matches!(name, "cpu" | "memory" | "ephemeral-storage");
    if !known && !name.starts_with("hugepages-") {
        return Err(format!("unsupported container resource : {}", sel.resource));
    }
    let value = match list.get(name) {
        Some(q) => quantity(q)?,
        None if is_limit && known => match allocatable.get(name) {
            Some(q) => quantity(q)?,
            None => api::quantity::ParsedQuantity::ZERO,
        },
        None => api::quantity::ParsedQuantity::ZERO,
    };
    if name == "cpu" {
        // math.Ceil(MilliValue / divisor.MilliValue), divisor defaulting to 1.
        let d = match divisor.milli_value() {
            0 => 1000,
            d => d,
        };
        Ok(div_ceil(value.milli_value(), d).to_string())
    } else {
        let d = match divisor.value() {
            0 => 1,
            d => d,
        };
        Ok(div_ceil(value.value(), d).to_string())
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && ((a > 0) == (b > 0)) {
        q + 1
    } else {
        q
    }
}

/// The content of one downwardAPI item.
pub fn item_value(
    pod: &Pod,
    item: &DownwardAPIVolumeFile,
    allocatable: &BTreeMap<String, Quantity>,
) -> Result<String, String> {
    if let Some(f) = &item.field_ref {
        return field_value(pod, f);
    }
    if let Some(r) = &item.resource_field_ref {
        let containers = pod.spec.as_ref().map(|s| s.containers.as_slice());
        let init = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default();
        let name = r.container_name.as_deref().unwrap_or_default();
        let c = containers
            .unwrap_or_default()
            .iter()
            .chain(init)
            .find(|c| c.name == name)
            .ok_or_else(|| format!("container {name} not found"))?;
        return resource_value(r, c, allocatable);
    }
    Err(format!(
        "downwardAPI item {:?} has neither fieldRef nor resourceFieldRef",
        item.path
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(go_quote("é"), "\"é\"");
        assert_eq!(go_quote("\u{1}"), "\"\\x01\"");
    }

    #[test]
    fn formats_sorted_map_without_trailing_newline() {
        let m = BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]);
        assert_eq!(format_map(&m), "a=\"1\"\nb=\"2\"");
    }

    #[test]
    fn subscripts() {
        assert_eq!(
            subscript("metadata.labels['app']"),
            Some(("metadata.labels", "app"))
        );
        assert_eq!(subscript("metadata.name"), None);
    }
}
