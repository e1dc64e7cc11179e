//! Discovery documents (aggregated v2 and the legacy ones) and `/version`, all derived from the
//! registry.

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceInfo, Subresource};

/// The content type of aggregated discovery.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn subresource_kind(
    r: &ResourceInfo,
    s: Subresource,
) -> (&'static str, &'static str, &'static str) {
    match s {
        Subresource::Scale => ("autoscaling", "v1", "Scale"),
        Subresource::Binding => ("", "", "Binding"),
        Subresource::Eviction => ("policy", "v1", "Eviction"),
        Subresource::Status | Subresource::Finalize | Subresource::Log => ("", "", r.kind),
        Subresource::Attach => ("", "", "PodAttachOptions"),
        Subresource::Exec => ("", "", "PodExecOptions"),
        Subresource::PortForward => ("", "", "PodPortForwardOptions"),
        Subresource::Proxy => ("", "", "NodeProxyOptions"),
    }
}

fn subresource_verbs(s: Subresource) -> &'static [&'static str] {
    match s {
        Subresource::Binding | Subresource::Eviction => &["create"],
        Subresource::Finalize => &["update"],
        Subresource::Log => &["get"],
        Subresource::Attach | Subresource::Exec | Subresource::PortForward => &["create", "get"],
        Subresource::Proxy => &["create", "delete", "get", "patch", "update"],
        _ => &["get", "patch", "update"],
    }
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let subs: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            let (g, v, k) = subresource_kind(r, *s);
            json!({"subresource": s.name(), "responseKind": {"group": g, "version": v, "kind": k}, "verbs": subresource_verbs(*s)})
        })
        .collect();
    let mut m = json!({
        "resource": r.resource,
        "responseKind": {"group": "", "version": "", "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        m["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        m["categories"] = json!(r.categories);
    }
    if !subs.is_empty() {
        m["subresources"] = json!(subs);
    }
    m
}

/// The aggregated discovery document of `/api` (core) or `/apis` (groups).
pub fn aggregated(registry: &Registry, core: bool) -> Value {
    let items: Vec<Value> = registry
        .groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = registry
                        .all()
                        .iter()
                        .filter(|r| r.group == g && r.version == *v)
                        .map(|r| aggregated_resource(r))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// Legacy `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_doc(g: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": g, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// Legacy `/apis`.
pub fn api_group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| group_doc(g, &v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Legacy `/apis/<group>`.
pub fn api_group(registry: &Registry, group: &str) -> Option<Value> {
    let (g, v) = registry
        .groups()
        .into_iter()
        .find(|(g, _)| *g == group && !g.is_empty())?;
    let mut d = group_doc(g, &v);
    d["kind"] = json!("APIGroup");
    d["apiVersion"] = json!("v1");
    Some(d)
}

/// Legacy `/api/v1` or `/apis/<group>/<version>` (APIResourceList).
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let rs: Vec<&std::sync::Arc<ResourceInfo>> = registry
        .all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in rs {
        let mut m = json!({
            "name": r.resource,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            m["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            m["categories"] = json!(r.categories);
        }
        resources.push(m);
        for s in r.subresources {
            let (g, v, k) = subresource_kind(r, *s);
            let mut sm = json!({"name": format!("{}/{}", r.resource, s.name()), "singularName": "", "namespaced": r.namespaced, "kind": k, "verbs": subresource_verbs(*s)});
            if !g.is_empty() {
                sm["group"] = json!(g);
                sm["version"] = json!(v);
            }
            resources.push(sm);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "35",
        "emulationMajor": "1",
        "emulationMinor": "35",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "34",
        "gitVersion": concat!("v1.35.0+r8s-", env!("CARGO_PKG_VERSION")),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-11-26T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": format!("linux/{}", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_every_kind_with_shortnames() {
        let reg = Registry::builtin();
        let apis = aggregated(&reg, false);
        let apps = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "apps")
            .unwrap();
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["categories"], json!(["all"]));
        assert_eq!(deploy["subresources"][1]["responseKind"]["kind"], "Scale");
        let core = aggregated(&reg, true);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        let v1 = resource_list(&reg, "", "v1").unwrap();
        assert!(
            v1["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "pods/eviction" && r["group"] == "policy")
        );
    }
}
