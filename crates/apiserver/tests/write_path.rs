//! The write path's shortcuts give exactly what the slow path would: responses made from the
//! stored bytes, the watch cache's spliced objects, and the parsed form kept for the next update.

use apiserver::inprocess::TempServer;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use serde_json::Value;

fn lease(name: &str, holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("k".to_string(), "v".to_string())].into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(40),
            renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn heartbeats_keep_their_parsed_form_and_every_view_agrees() {
    let s = TempServer::start().await.expect("server");
    let leases: Api<Lease> = Api::namespaced(s.client.clone(), "default");
    let r = s
        .state
        .registry
        .get("coordination.k8s.io", "v1", "leases")
        .expect("leases are registered")
        .clone();
    let key = "/registry/leases/default/n1";
    let mut current = leases
        .create(&PostParams::default(), &lease("n1", "a"))
        .await
        .expect("create");
    for i in 0..5 {
        let mut next = current.clone();
        next.spec.as_mut().expect("spec").holder_identity = Some(format!("h{i}"));
        let written = leases
            .replace("n1", &PostParams::default(), &next)
            .await
            .expect("update");
        // The response (made from the stored bytes) is the object the server holds.
        let got = leases.get("n1").await.expect("get");
        assert_eq!(written, got);
        assert_eq!(
            written
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref()),
            Some(format!("h{i}").as_str())
        );
        assert_eq!(written.metadata.labels, current.metadata.labels);
        // The cached bytes parse to the kept form.
        s.state.cacher.wait_fresh().await.expect("fresh");
        let cached = s.state.cacher.get(&r, key).expect("cached");
        let parsed: Value = serde_json::from_slice(&cached.raw).expect("json");
        assert_eq!(
            parsed["metadata"]["resourceVersion"].as_str(),
            written.metadata.resource_version.as_deref()
        );
        assert_eq!(cached.labels.get("k").map(String::as_str), Some("v"));
        let kept = cached
            .parsed
            .lock()
            .clone()
            .expect("a small object's parsed form is kept");
        assert_eq!(*kept, parsed, "the kept form differs from the stored one");
        current = written;
    }
    // A kind with selectable fields is parsed the slow way and still agrees.
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("c".into()),
            ..Default::default()
        },
        data: Some([("a".to_string(), "b".to_string())].into()),
        ..Default::default()
    };
    let created = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    assert_eq!(created, cms.get("c").await.expect("get"));
}

/// A kubelet (or the simulator) that renews its Lease without sending managedFields back: the
/// stored entries move to the new version instead of being copied, and nothing is lost, not even
/// by an update that changes nothing after one that moved them.
#[tokio::test]
async fn renewals_without_managed_fields_keep_them() {
    let s = TempServer::start().await.expect("server");
    let leases: Api<Lease> = Api::namespaced(s.client.clone(), "default");
    let created = leases
        .create(&PostParams::default(), &lease("n2", "a"))
        .await
        .expect("create");
    let entries = created
        .metadata
        .managed_fields
        .clone()
        .expect("managedFields on create");
    assert_eq!(entries.len(), 1);
    let mut current = created;
    for i in 0..3 {
        let mut next = current.clone();
        next.metadata.managed_fields = None;
        next.spec.as_mut().expect("spec").renew_time = Some(MicroTime(
            k8s_openapi::jiff::Timestamp::now()
                + k8s_openapi::jiff::SignedDuration::from_secs(i + 1),
        ));
        let written = leases
            .replace("n2", &PostParams::default(), &next)
            .await
            .expect("renewal");
        assert_ne!(
            written.metadata.resource_version,
            current.metadata.resource_version
        );
        let mf = written
            .metadata
            .managed_fields
            .clone()
            .expect("managedFields kept");
        assert_eq!(mf.len(), 1, "{mf:?}");
        assert_eq!(mf[0].manager, entries[0].manager);
        assert_eq!(mf[0].fields_v1, entries[0].fields_v1);
        assert_eq!(written, leases.get("n2").await.expect("get"));
        current = written;
    }
    // The same object again: nothing changes, not even the resourceVersion.
    let mut same = current.clone();
    same.metadata.managed_fields = None;
    let unchanged = leases
        .replace("n2", &PostParams::default(), &same)
        .await
        .expect("no-op update");
    assert_eq!(unchanged, current);
    assert_eq!(leases.get("n2").await.expect("get"), current);
}

/// A renewal whose metadata is the stored one (without managedFields) skips the metadata's
/// round trip, and the rest of the body is still normalized and checked as any update's.
#[tokio::test]
async fn renewals_with_the_stored_metadata_are_still_normalized_and_checked() {
    let s = TempServer::start().await.expect("server");
    let leases: Api<Lease> = Api::namespaced(s.client.clone(), "default");
    leases
        .create(&PostParams::default(), &lease("n3", "a"))
        .await
        .expect("create");
    let put = |meta: &Value, spec: Value, query: &str| {
        let body = serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": meta, "spec": spec,
        });
        http::Request::put(format!(
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/n3{query}"
        ))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).expect("json"))
        .expect("request")
    };
    // What a kubelet sends back: the metadata it read, without managedFields.
    let stored_meta = || async {
        let mut meta =
            serde_json::to_value(leases.get("n3").await.expect("get").metadata).expect("json");
        meta.as_object_mut()
            .expect("object")
            .remove("managedFields");
        meta
    };

    // A renewTime in another form is stored in the normal one.
    let spec = serde_json::json!({"holderIdentity": "a", "renewTime": "2026-11-29T07:00:00.5Z"});
    let written: Value = s
        .client
        .request(put(&stored_meta().await, spec, ""))
        .await
        .expect("renewal");
    assert_eq!(written["spec"]["renewTime"], "2026-11-29T07:00:00.500000Z");
    assert!(written["metadata"]["managedFields"].is_array());

    // An unknown field: refused when strict, dropped otherwise.
    let bogus = serde_json::json!({"holderIdentity": "a", "bogus": 1});
    let strict = put(
        &stored_meta().await,
        bogus.clone(),
        "?fieldValidation=Strict",
    );
    let message = bad_request(s.client.request(strict).await);
    assert!(
        message.contains("unknown field \"spec.bogus\""),
        "{message}"
    );
    let written: Value = s
        .client
        .request(put(&stored_meta().await, bogus, "?fieldValidation=Ignore"))
        .await
        .expect("ignored field");
    assert_eq!(written["spec"], serde_json::json!({"holderIdentity": "a"}));

    // A value of the wrong type cannot be decoded.
    let wrong = serde_json::json!({"holderIdentity": "a", "leaseDurationSeconds": "forty"});
    let message = bad_request(s.client.request(put(&stored_meta().await, wrong, "")).await);
    assert!(
        message.contains("cannot be handled as a Lease"),
        "{message}"
    );
    assert_eq!(
        leases
            .get("n3")
            .await
            .expect("get")
            .spec
            .expect("spec")
            .holder_identity
            .as_deref(),
        Some("a")
    );
}

/// A renewer sends the same bytes every time but for the resourceVersion and the renewTime; the
/// server recognizes such a body from the previous one without decoding it. What it stores is
/// what the general path stores, and any other difference takes the general path.
#[tokio::test]
async fn renewals_recognized_from_their_bytes_store_what_the_general_path_stores() {
    let s = TempServer::start().await.expect("server");
    let leases: Api<Lease> = Api::namespaced(s.client.clone(), "default");
    let created = leases
        .create(&PostParams::default(), &lease("n4", "a"))
        .await
        .expect("create");
    let meta = created.metadata.clone();
    let (uid, created_at) = (
        meta.uid.clone().expect("uid"),
        serde_json::to_value(&meta.creation_timestamp).expect("json"),
    );
    // The body a renewer sends: always the same text but for these two values.
    let body = |rv: &str, renew_time: &str, holder: &str| {
        format!(
            r#"{{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{{"creationTimestamp":{created_at},"labels":{{"k":"v"}},"name":"n4","namespace":"default","resourceVersion":"{rv}","uid":"{uid}"}},"spec":{{"holderIdentity":"{holder}","leaseDurationSeconds":40,"renewTime":"{renew_time}"}}}}"#
        )
    };
    let put = |text: String| {
        http::Request::put("/apis/coordination.k8s.io/v1/namespaces/default/leases/n4")
            .header("content-type", "application/json")
            .body(text.into_bytes())
            .expect("request")
    };
    let mut rv = meta.resource_version.clone().expect("rv");
    let mut previous_rv = String::new();
    for i in 0..4 {
        let renew_time = format!("2026-11-30T04:00:0{i}.100000Z");
        let written: Value = s
            .client
            .request(put(body(&rv, &renew_time, "a")))
            .await
            .expect("renewal");
        assert_eq!(written["spec"]["renewTime"], renew_time.as_str());
        assert_eq!(written["spec"]["holderIdentity"], "a");
        assert_eq!(written["metadata"]["labels"]["k"], "v");
        let mf = written["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields");
        assert_eq!(mf.len(), 1, "{mf:?}");
        assert!(mf[0]["fieldsV1"]["f:spec"]["f:renewTime"].is_object());
        let stored = serde_json::to_value(leases.get("n4").await.expect("get")).expect("json");
        assert_eq!(written, stored);
        previous_rv = std::mem::replace(
            &mut rv,
            written["metadata"]["resourceVersion"]
                .as_str()
                .expect("rv")
                .to_string(),
        );
    }
    // The previous version's resourceVersion: a conflict, as for any stale update.
    let stale = s
        .client
        .request::<Value>(put(body(&previous_rv, "2026-11-30T04:00:09.100000Z", "a")))
        .await;
    api_error(stale, 409);
    // Another change in the same text: the general path, which stores it.
    let written: Value = s
        .client
        .request(put(body(&rv, "2026-11-30T04:00:09.100000Z", "b")))
        .await
        .expect("a new holder");
    assert_eq!(written["spec"]["holderIdentity"], "b");
    rv = written["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    // A renewTime in another form: normalized by the general path.
    let written: Value = s
        .client
        .request(put(body(&rv, "2026-11-30T04:00:10Z", "b")))
        .await
        .expect("renewal");
    assert_eq!(written["spec"]["renewTime"], "2026-11-30T04:00:10.000000Z");
    let stored = serde_json::to_value(leases.get("n4").await.expect("get")).expect("json");
    assert_eq!(written, stored);
}

/// The message of a 400 Bad Request.
fn bad_request(answer: Result<Value, kube::Error>) -> String {
    api_error(answer, 400)
}

/// The message of an API error with the given code.
fn api_error(answer: Result<Value, kube::Error>, code: u16) -> String {
    let Err(kube::Error::Api(status)) = answer else {
        panic!("not an API error: {answer:?}");
    };
    assert_eq!(status.code, code, "{status:?}");
    status.message
}

/// A status PATCH that leaves the rest of the pod as stored puts only the status through the
/// round trip: the status is still normalized and checked as in any write, and a patch that
/// also touches the rest is decoded whole, as before.
#[tokio::test]
async fn status_patches_normalize_and_check_the_status() {
    use k8s_openapi::api::core::v1::Pod;
    let s = TempServer::start().await.expect("server");
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "labels": {"app": "a"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .expect("pod");
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let patch = |body: Value, query: &str| {
        http::Request::patch(format!("/api/v1/namespaces/default/pods/p/status{query}"))
            .header("content-type", "application/strategic-merge-patch+json")
            .body(serde_json::to_vec(&body).expect("json"))
            .expect("request")
    };
    let status_patch = |status: Value| serde_json::json!({"status": status});

    // A time in another form is stored in the normal one; the spec and the creator's
    // managedFields entry stay as they were.
    let written: Value = s
        .client
        .request(patch(
            status_patch(serde_json::json!({
                "phase": "Running",
                "startTime": "2026-11-29T07:00:00.5Z",
                "conditions": [{"type": "Ready", "status": "True"}],
            })),
            "",
        ))
        .await
        .expect("status patch");
    assert_eq!(written["status"]["startTime"], "2026-11-29T07:00:00Z");
    assert_eq!(written["status"]["phase"], "Running");
    let stored = pods.get("p").await.expect("get");
    assert_eq!(stored.spec, created.spec);
    let fields = |p: &Pod, subresource: Option<&str>| {
        p.metadata
            .managed_fields
            .iter()
            .flatten()
            .find(|e| e.subresource.as_deref() == subresource)
            .map(|e| e.fields_v1.clone())
    };
    assert_eq!(fields(&stored, None), fields(&created, None));
    assert!(fields(&stored, Some("status")).is_some());

    // A patch with an unknown field is refused when strict.
    let refused = |body: Value, field: &'static str| {
        let (client, request) = (s.client.clone(), patch(body, "?fieldValidation=Strict"));
        async move {
            let message = unprocessable(client.request::<Value>(request).await);
            let expected = format!("unknown field \"{field}\"");
            assert!(message.contains(&expected), "{message}");
        }
    };
    // Unknown fields of the status: refused when strict, dropped otherwise.
    let bogus = status_patch(serde_json::json!({"phase": "Running", "bogus": 1}));
    refused(bogus.clone(), "status.bogus").await;
    let written: Value = s
        .client
        .request(patch(bogus, "?fieldValidation=Ignore"))
        .await
        .expect("ignored field");
    assert!(written["status"].get("bogus").is_none(), "{written}");

    // A value of the wrong type cannot be decoded.
    let wrong = status_patch(serde_json::json!({"phase": 5}));
    let message = bad_request(s.client.request(patch(wrong, "")).await);
    assert!(message.contains("cannot be handled as a Pod"), "{message}");

    // A patch that also changes the rest is decoded whole: its unknown fields are found there
    // too, and the status write still keeps the stored labels.
    let both = serde_json::json!({
        "metadata": {"labels": {"app": "b"}},
        "spec": {"bogus": 1},
        "status": {"phase": "Succeeded"},
    });
    refused(both.clone(), "spec.bogus").await;
    let written: Value = s
        .client
        .request(patch(both, ""))
        .await
        .expect("status patch with other changes");
    assert_eq!(written["status"]["phase"], "Succeeded");
    assert_eq!(written["metadata"]["labels"]["app"], "a");
}

/// The message of a 422 Unprocessable Entity.
fn unprocessable(answer: Result<Value, kube::Error>) -> String {
    api_error(answer, 422)
}

/// Metadata validation reads managedFields entries without their fieldsV1 trees; what it checks
/// in them still holds: a field manager name longer than 128 bytes is refused.
#[tokio::test]
async fn a_field_manager_name_too_long_is_refused() {
    let s = TempServer::start().await.expect("server");
    let create = |manager: &str| {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
        http::Request::post(format!(
            "/api/v1/namespaces/default/configmaps?fieldManager={manager}"
        ))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).expect("json"))
        .expect("request")
    };
    let message = unprocessable(s.client.request::<Value>(create(&"m".repeat(129))).await);
    assert!(
        message.contains("metadata.managedFields[0].manager"),
        "{message}"
    );
    let created: Value = s
        .client
        .request(create(&"m".repeat(128)))
        .await
        .expect("128 bytes");
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "m".repeat(128)
    );
}
