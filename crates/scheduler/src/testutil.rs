//! Builders of pods and nodes for unit tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, Node, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;

use crate::cache::Cache;
use crate::types::PodInfo;

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn container(reqs: &[(&str, &str)]) -> Container {
    Container {
        name: "c".into(),
        resources: if reqs.is_empty() {
            None
        } else {
            Some(ResourceRequirements {
                requests: Some(
                    reqs.iter()
                        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                        .collect(),
                ),
                ..Default::default()
            })
        },
        ..Default::default()
    }
}

pub fn pod_with(containers: Vec<Container>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            name: Some("p".into()),
            uid: Some("uid-p".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A pod `name` in `default` with labels and requests.
pub fn pod(name: &str, lbls: &[(&str, &str)], reqs: &[(&str, &str)]) -> Pod {
    let mut p = pod_with(vec![container(reqs)]);
    p.metadata.name = Some(name.into());
    p.metadata.uid = Some(format!("uid-{name}"));
    p.metadata.labels = Some(labels(lbls));
    p
}

pub fn with_tolerations(mut p: Pod, tols: Vec<Toleration>) -> Pod {
    p.spec.as_mut().unwrap().tolerations = Some(tols);
    p
}

pub fn node(name: &str, lbls: &[(&str, &str)], cpu: &str, mem: &str, pods: &str) -> Node {
    let mut l = labels(lbls);
    l.entry("kubernetes.io/hostname".into())
        .or_insert_with(|| name.to_string());
    let alloc: BTreeMap<String, Quantity> = [("cpu", cpu), ("memory", mem), ("pods", pods)]
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(l),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(alloc.clone()),
            capacity: Some(alloc),
            ..Default::default()
        }),
    }
}

pub fn with_taints(mut n: Node, taints: Vec<Taint>) -> Node {
    n.spec.get_or_insert_with(Default::default).taints = Some(taints);
    n
}

pub fn taint(key: &str, value: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: if value.is_empty() {
            None
        } else {
            Some(value.into())
        },
        effect: effect.into(),
        time_added: None,
    }
}

pub fn toleration(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
    Toleration {
        key: (!key.is_empty()).then(|| key.into()),
        operator: (!op.is_empty()).then(|| op.into()),
        value: (!value.is_empty()).then(|| value.into()),
        effect: (!effect.is_empty()).then(|| effect.into()),
        toleration_seconds: None,
    }
}

/// A cache with `nodes` and `pods` assigned as `(pod, node name)`.
pub fn cache_with(nodes: Vec<Node>, pods: Vec<(Pod, &str)>) -> Cache {
    let mut c = Cache::default();
    for n in nodes {
        c.add_node(Arc::new(n));
    }
    for (mut p, n) in pods {
        p.spec.as_mut().unwrap().node_name = Some(n.to_string());
        c.add_pod(Arc::new(PodInfo::new(Arc::new(p))));
    }
    c
}
