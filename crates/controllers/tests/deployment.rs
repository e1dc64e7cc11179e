//! The Deployment controller (with the ReplicaSet controller) against the real (in-process)
//! API server. No kubelet: tests mark pods Ready themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use serde_json::{Value, json};

const NS: &str = "t";

async fn setup() -> support::Server {
    let s = support::server().await;
    let api: Api<Namespace> = Api::all(s.client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
    )
    .await
    .unwrap();
    tokio::spawn(controllers::replicaset::run(s.context(Default::default())));
    tokio::spawn(controllers::deployment::run(s.context(Default::default())));
    s
}

fn deployment(name: &str, replicas: i32, image: &str, extra_spec: Value) -> Deployment {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }
    });
    for (k, v) in extra_spec.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn dapi(s: &support::Server) -> Api<Deployment> {
    Api::namespaced(s.client.clone(), NS)
}

async fn rss(s: &support::Server) -> Vec<ReplicaSet> {
    Api::<ReplicaSet>::namespaced(s.client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

async fn live_pods(s: &support::Server) -> Vec<Pod> {
    Api::<Pod>::namespaced(s.client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn make_ready(s: &support::Server, name: &str) {
    let api: Api<Pod> = Api::namespaced(s.client.clone(), NS);
    let _ = api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": Timestamp::now().to_string()}]
            }})),
        )
        .await;
}

/// Marks every live pod Ready.
async fn all_ready(s: &support::Server) {
    for p in live_pods(s).await {
        if !is_ready(&p) {
            make_ready(s, &p.name_any()).await;
        }
    }
}

async fn set_image(s: &support::Server, name: &str, image: &str) {
    dapi(s)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})),
        )
        .await
        .unwrap();
}

fn annotation(o: &impl kube::Resource, k: &str) -> Option<String> {
    o.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(k))
        .cloned()
}

fn image_of(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .unwrap()
        .template
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

fn cond(d: &Deployment, t: &str) -> Option<(String, String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

/// Drives a rollout to completion by making pods ready one at a time.
async fn complete_rollout(s: &support::Server, name: &str, image: &str, replicas: i32) {
    support::eventually(30, "rollout complete", || async {
        for p in live_pods(s).await {
            if !is_ready(&p) {
                make_ready(s, &p.name_any()).await;
                break;
            }
        }
        let d = dapi(s).get(name).await.unwrap();
        let st = d.status.clone().unwrap_or_default();
        let rs = rss(s).await;
        let done = st.updated_replicas == Some(replicas)
            && st.replicas == Some(replicas)
            && st.available_replicas == Some(replicas)
            && st.observed_generation == d.metadata.generation
            && rs
                .iter()
                .all(|r| image_of(r) == image || r.spec.as_ref().unwrap().replicas == Some(0));
        done.then_some(())
    })
    .await;
}

#[tokio::test]
async fn creates_a_hashed_replica_set_with_pods_status_and_events() {
    let s = setup().await;
    dapi(&s)
        .create(
            &PostParams::default(),
            &deployment("web", 3, "nginx:1", json!({})),
        )
        .await
        .unwrap();
    let rs = support::eventually(10, "a ReplicaSet", || async {
        rss(&s).await.into_iter().next()
    })
    .await;
    let hash = rs
        .labels()
        .get("pod-template-hash")
        .cloned()
        .expect("hash label");
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    assert!(
        hash.chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
    );
    let spec = rs.spec.clone().unwrap();
    assert_eq!(
        spec.selector.match_labels.unwrap().get("pod-template-hash"),
        Some(&hash)
    );
    assert_eq!(
        spec.template
            .unwrap()
            .metadata
            .unwrap()
            .labels
            .unwrap()
            .get("pod-template-hash"),
        Some(&hash)
    );
    assert_eq!(
        annotation(&rs, "deployment.kubernetes.io/revision").as_deref(),
        Some("1")
    );
    assert_eq!(
        annotation(&rs, "deployment.kubernetes.io/desired-replicas").as_deref(),
        Some("3")
    );
    // 25% surge of 3 rounds up to 1.
    assert_eq!(
        annotation(&rs, "deployment.kubernetes.io/max-replicas").as_deref(),
        Some("4")
    );
    let refs = rs.owner_references();
    assert_eq!(
        (
            refs[0].kind.as_str(),
            refs[0].name.as_str(),
            refs[0].controller
        ),
        ("Deployment", "web", Some(true))
    );
    support::eventually(10, "3 pods", || async {
        (live_pods(&s).await.len() == 3).then_some(())
    })
    .await;
    support::eventually(10, "unavailable status", || async {
        let d = dapi(&s).get("web").await.unwrap();
        let st = d.status.clone().unwrap_or_default();
        (st.replicas == Some(3)
            && st.updated_replicas == Some(3)
            && st.unavailable_replicas == Some(3)
            && cond(&d, "Available").is_some_and(|c| {
                c.0 == "False"
                    && c.1 == "MinimumReplicasUnavailable"
                    && c.2 == "Deployment does not have minimum availability."
            }))
        .then_some(())
    })
    .await;
    all_ready(&s).await;
    support::eventually(10, "complete", || async {
        let d = dapi(&s).get("web").await.unwrap();
        let st = d.status.clone().unwrap_or_default();
        let progressing = cond(&d, "Progressing")?;
        (st.available_replicas == Some(3)
            && st.ready_replicas == Some(3)
            && st.unavailable_replicas == Some(0)
            && st.terminating_replicas == Some(0)
            && st.observed_generation == d.metadata.generation
            && annotation(&d, "deployment.kubernetes.io/revision").as_deref() == Some("1")
            && cond(&d, "Available").is_some_and(|c| {
                c.0 == "True"
                    && c.1 == "MinimumReplicasAvailable"
                    && c.2 == "Deployment has minimum availability."
            })
            && progressing
                == (
                    "True".into(),
                    "NewReplicaSetAvailable".into(),
                    format!("ReplicaSet \"web-{hash}\" has successfully progressed."),
                ))
            .then_some(())
    })
    .await;
    support::eventually(10, "ScalingReplicaSet event", || async {
        let ev: Vec<CoreEvent> = Api::<CoreEvent>::namespaced(s.client.clone(), NS)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        ev.into_iter().find(|e| {
            e.reason.as_deref() == Some("ScalingReplicaSet")
                && e.message.as_deref()
                    == Some(&format!("Scaled up replica set web-{hash} from 0 to 3"))
                && e.source.as_ref().and_then(|s| s.component.as_deref())
                    == Some("deployment-controller")
        })
    })
    .await;
}

/// Live pods and ready live pods, tracked from every pod event.
struct Tracker {
    max_pods: Arc<Mutex<usize>>,
    min_ready: Arc<Mutex<usize>>,
    old_and_new_together: Arc<Mutex<bool>>,
}

fn track(s: &support::Server, old_image: &'static str) -> Tracker {
    let inf = s.factory.informer::<Pod>();
    let mut rx = inf.subscribe();
    let t = Tracker {
        max_pods: Arc::new(Mutex::new(0)),
        min_ready: Arc::new(Mutex::new(usize::MAX)),
        old_and_new_together: Arc::new(Mutex::new(false)),
    };
    let (max, min, both) = (
        t.max_pods.clone(),
        t.min_ready.clone(),
        t.old_and_new_together.clone(),
    );
    tokio::spawn(async move {
        let mut pods: HashMap<String, Arc<Pod>> = HashMap::new();
        while let Some(ev) = rx.recv().await {
            match ev {
                informers::Event::Added(p) | informers::Event::Updated(_, p) => {
                    if p.metadata.deletion_timestamp.is_some() {
                        pods.remove(&p.name_any());
                    } else {
                        pods.insert(p.name_any(), p);
                    }
                }
                informers::Event::Deleted(p) => {
                    pods.remove(&p.name_any());
                }
            }
            let n = pods.len();
            let ready = pods.values().filter(|p| is_ready(p)).count();
            let images: HashSet<bool> = pods
                .values()
                .map(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some(old_image))
                .collect();
            let mut m = max.lock();
            *m = (*m).max(n);
            if n > 0 {
                let mut r = min.lock();
                *r = (*r).min(ready);
            }
            if images.len() == 2 {
                *both.lock() = true;
            }
        }
    });
    t
}

#[tokio::test]
async fn rolling_update_respects_max_surge_and_max_unavailable() {
    let s = setup().await;
    let strategy = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 1}}});
    dapi(&s)
        .create(
            &PostParams::default(),
            &deployment("web", 6, "nginx:1", strategy),
        )
        .await
        .unwrap();
    complete_rollout(&s, "web", "nginx:1", 6).await;
    let t = track(&s, "nginx:1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    *t.min_ready.lock() = usize::MAX;
    set_image(&s, "web", "nginx:2").await;
    complete_rollout(&s, "web", "nginx:2", 6).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (max, min) = (*t.max_pods.lock(), *t.min_ready.lock());
    assert!(max <= 8, "more than replicas + maxSurge pods: {max}");
    assert_eq!(max, 8, "the surge was not used");
    assert!(
        min >= 5,
        "fewer than replicas - maxUnavailable ready: {min}"
    );
    assert!(
        *t.old_and_new_together.lock(),
        "a rolling update runs both versions"
    );
    let all = rss(&s).await;
    assert_eq!(all.len(), 2);
    let new = all.iter().find(|r| image_of(r) == "nginx:2").unwrap();
    let old = all.iter().find(|r| image_of(r) == "nginx:1").unwrap();
    assert_eq!(
        annotation(new, "deployment.kubernetes.io/revision").as_deref(),
        Some("2")
    );
    assert_eq!(old.spec.as_ref().unwrap().replicas, Some(0));
    let d = dapi(&s).get("web").await.unwrap();
    assert_eq!(
        annotation(&d, "deployment.kubernetes.io/revision").as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn recreate_removes_old_pods_before_creating_new_ones() {
    let s = setup().await;
    dapi(&s)
        .create(
            &PostParams::default(),
            &deployment(
                "web",
                3,
                "nginx:1",
                json!({"strategy": {"type": "Recreate"}}),
            ),
        )
        .await
        .unwrap();
    complete_rollout(&s, "web", "nginx:1", 3).await;
    let t = track(&s, "nginx:1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    set_image(&s, "web", "nginx:2").await;
    complete_rollout(&s, "web", "nginx:2", 3).await;
    assert!(
        !*t.old_and_new_together.lock(),
        "old and new pods ran together"
    );
    assert_eq!(*t.max_pods.lock(), 3);
}

#[tokio::test]
async fn rollback_reuses_the_old_replica_set_and_bumps_its_revision() {
    let s = setup().await;
    let mut d = deployment("web", 2, "nginx:1", json!({}));
    d.metadata.annotations =
        Some([("kubernetes.io/change-cause".to_string(), "v1".to_string())].into());
    dapi(&s).create(&PostParams::default(), &d).await.unwrap();
    complete_rollout(&s, "web", "nginx:1", 2).await;
    dapi(&s)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({
                "metadata": {"annotations": {"kubernetes.io/change-cause": "v2"}},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}
            })),
        )
        .await
        .unwrap();
    complete_rollout(&s, "web", "nginx:2", 2).await;
    let before = rss(&s).await;
    let old = before
        .iter()
        .find(|r| image_of(r) == "nginx:1")
        .unwrap()
        .clone();
    assert_eq!(
        annotation(&old, "kubernetes.io/change-cause").as_deref(),
        Some("v1")
    );
    // What kubectl rollout undo does: the old template without its hash, and its annotations.
    let mut template = old.spec.clone().unwrap().template.unwrap();
    template
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .remove("pod-template-hash");
    dapi(&s)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(json!([
                {"op": "replace", "path": "/spec/template", "value": template},
                {"op": "replace", "path": "/metadata/annotations/kubernetes.io~1change-cause", "value": "v1"}
            ])).unwrap()),
        )
        .await
        .unwrap();
    complete_rollout(&s, "web", "nginx:1", 2).await;
    let after = rss(&s).await;
    assert_eq!(
        after.len(),
        2,
        "a new ReplicaSet was created instead of reusing the old one"
    );
    let reused = after
        .iter()
        .find(|r| r.name_any() == old.name_any())
        .unwrap();
    assert_eq!(
        annotation(reused, "deployment.kubernetes.io/revision").as_deref(),
        Some("3")
    );
    assert_eq!(
        annotation(reused, "deployment.kubernetes.io/revision-history").as_deref(),
        Some("1")
    );
    assert_eq!(reused.spec.as_ref().unwrap().replicas, Some(2));
    support::eventually(10, "deployment revision 3", || async {
        let d = dapi(&s).get("web").await.unwrap();
        (annotation(&d, "deployment.kubernetes.io/revision").as_deref() == Some("3")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn revision_history_limit_deletes_the_oldest_replica_sets() {
    let s = setup().await;
    dapi(&s)
        .create(
            &PostParams::default(),
            &deployment("web", 1, "nginx:1", json!({"revisionHistoryLimit": 1})),
        )
        .await
        .unwrap();
    complete_rollout(&s, "web", "nginx:1", 1).await;
    for img in ["nginx:2", "nginx:3", "nginx:4"] {
        set_image(&s, "web", img).await;
        complete_rollout(&s, "web", img, 1).await;
    }
    let images = support::eventually(10, "2 ReplicaSets", || async {
        let r = rss(&s).await;
        (r.len() == 2).then(|| {
            let mut v: Vec<String> = r.iter().map(image_of).collect();
            v.sort();
            v
        })
    })
    .await;
    assert_eq!(images, ["nginx:3", "nginx:4"]);
}

#[tokio::test]
async fn paused_deployments_do_not_roll_out_but_scale() {
    let s = setup().await;
    dapi(&s)
        .create(
            &PostParams::default(),
            &deployment("web", 2, "nginx:1", json!({})),
        )
        .await
        .unwrap();
    complete_rollout(&s, "web", "nginx:1", 2).await;
    dapi(&s)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await
        .unwrap();
    support::eventually(10, "DeploymentPaused", || async {
        let d = dapi(&s).get("web").await.unwrap();
        (cond(&d, "Progressing")?
            == (
                "Unknown".into(),
                "DeploymentPaused".into(),
                "Deployment is paused".into(),
            ))
            .then_some(())
    })
    .await;
    set_image(&s, "web", "nginx:2").await;
    dapi(&s)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    support::eventually(10, "scaled while paused", || async {
        let r = rss(&s).await;
        (r.len() == 1 && r[0].spec.as_ref().unwrap().replicas == Some(4)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rss(&s).await.len(), 1, "rolled out while paused");
    dapi(&s)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false}})),
        )
        .await
        .unwrap();
    complete_rollout(&s, "web", "nginx:2", 4).await;
}

#[tokio::test]
async fn progress_deadline_exceeded_when_pods_never_become_ready() {
    let s = setup().await;
    dapi(&s)
        .create(
            &PostParams::default(),
            &deployment("web", 2, "nginx:1", json!({"progressDeadlineSeconds": 2})),
        )
        .await
        .unwrap();
    let rs = support::eventually(10, "a ReplicaSet", || async {
        rss(&s).await.into_iter().next()
    })
    .await;
    let c = support::eventually(10, "Progressing", || async {
        cond(&dapi(&s).get("web").await.unwrap(), "Progressing")
    })
    .await;
    assert_eq!(c.0, "True");
    assert!(
        c.1 == "NewReplicaSetCreated" || c.1 == "ReplicaSetUpdated",
        "{c:?}"
    );
    // No pod ever becomes ready and nothing else happens: the controller re-checks by itself.
    support::eventually(8, "ProgressDeadlineExceeded", || async {
        let d = dapi(&s).get("web").await.unwrap();
        (cond(&d, "Progressing")?
            == (
                "False".into(),
                "ProgressDeadlineExceeded".into(),
                format!(
                    "ReplicaSet \"{}\" has timed out progressing.",
                    rs.name_any()
                ),
            ))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn scaling_mid_rollout_is_proportional() {
    let s = setup().await;
    let strategy = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 0}}});
    dapi(&s)
        .create(
            &PostParams::default(),
            &deployment("web", 10, "nginx:1", strategy),
        )
        .await
        .unwrap();
    complete_rollout(&s, "web", "nginx:1", 10).await;
    // New pods never become ready: the rollout stays at old 10 + new 3.
    set_image(&s, "web", "nginx:2").await;
    support::eventually(10, "surged", || async {
        let r = rss(&s).await;
        let n = r.iter().find(|r| image_of(r) == "nginx:2")?;
        (n.spec.as_ref().unwrap().replicas == Some(3)).then_some(())
    })
    .await;
    dapi(&s)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 20}})),
        )
        .await
        .unwrap();
    // 23 → 23 + 10 more allowed = 33 (maxSurge stays 3): old 10 → 20 (+10 * 10/13 ≈ 8 → 18, leftover to the largest).
    let (old, new) = support::eventually(10, "proportionally scaled", || async {
        let r = rss(&s).await;
        let o = r
            .iter()
            .find(|r| image_of(r) == "nginx:1")?
            .spec
            .as_ref()?
            .replicas?;
        let n = r
            .iter()
            .find(|r| image_of(r) == "nginx:2")?
            .spec
            .as_ref()?
            .replicas?;
        (o + n == 23 && o > 10 && n > 3).then_some((o, n))
    })
    .await;
    assert_eq!((old, new), (18, 5));
}
