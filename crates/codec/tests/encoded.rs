//! Bodies encoded field by field the way Go's generated marshalers write them (non-pointer
//! scalars always present, even when zero), for kinds and special types kubectl does not send.

use codec::{CodecError, decode_protobuf};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// A minimal protobuf encoder for fixtures.
#[derive(Default, Clone)]
struct Enc(Vec<u8>);

impl Enc {
    fn new() -> Self {
        Enc::default()
    }
    fn raw_varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.raw_varint(u64::from(field) << 3 | u64::from(wire));
    }
    fn int(mut self, field: u32, v: i64) -> Self {
        self.key(field, 0);
        self.raw_varint(v as u64);
        self
    }
    fn bytes(mut self, field: u32, b: &[u8]) -> Self {
        self.key(field, 2);
        self.raw_varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }
    fn msg(self, field: u32, m: Enc) -> Self {
        self.bytes(field, &m.0)
    }
    fn map_entry(self, field: u32, k: &str, v: &str) -> Self {
        self.msg(field, Enc::new().str(1, k).str(2, v))
    }
}

fn envelope(api_version: &str, kind: &str, raw: Enc) -> Vec<u8> {
    let type_meta = Enc::new().str(1, api_version).str(2, kind);
    let unknown = Enc::new()
        .msg(1, type_meta)
        .msg(2, raw)
        .str(3, "")
        .str(4, "");
    let mut body = b"k8s\0".to_vec();
    body.extend_from_slice(&unknown.0);
    body
}

/// ObjectMeta as Go writes it: every non-pointer field present.
fn object_meta(name: &str, namespace: &str) -> Enc {
    Enc::new()
        .str(1, name)
        .str(2, "")
        .str(3, namespace)
        .str(4, "")
        .str(5, "")
        .str(6, "")
        .int(7, 0)
        .msg(8, Enc::new())
        .str(15, "")
}

fn helm_style_delete_options() -> Enc {
    // helm: `DeleteOptions{PropagationPolicy: &background}` plus an explicit zero grace period.
    Enc::new().int(1, 0).str(4, "Background").str(5, "All")
}

#[test]
fn delete_options_as_v1_and_meta() {
    for api_version in ["v1", "meta.k8s.io/v1", "apps/v1"] {
        let body = envelope(api_version, "DeleteOptions", helm_style_delete_options());
        let decoded = decode_protobuf(&body).expect("decodes");
        assert_eq!(decoded.kind, "DeleteOptions");
        assert_eq!(
            decoded.object,
            json!({
                "kind": "DeleteOptions",
                "apiVersion": api_version,
                "gracePeriodSeconds": 0,
                "propagationPolicy": "Background",
                "dryRun": ["All"],
            })
        );
        let typed: DeleteOptions = serde_json::from_value(decoded.object).expect("typed");
        assert_eq!(typed.propagation_policy.as_deref(), Some("Background"));
        // gracePeriodSeconds is a pointer in Go: a present 0 means "delete now", keep it.
        assert_eq!(typed.grace_period_seconds, Some(0));
    }
}

#[test]
fn pod_with_inline_volume_source_and_zero_pointers() {
    let container = Enc::new()
        .str(1, "app")
        .str(2, "busybox")
        .str(3, "sh")
        .str(3, "-c")
        .msg(8, Enc::new()) // resources {}
        .str(13, "")
        .int(16, 0) // stdin false (non-pointer, omitempty)
        .msg(9, Enc::new().str(1, "data").str(3, "/data").int(2, 0)); // volumeMount
    let volume = Enc::new()
        .str(1, "data")
        .msg(2, Enc::new().msg(2, Enc::new())); // volumeSource{emptyDir{}}
    let spec = Enc::new()
        .msg(1, volume)
        .msg(2, container)
        .str(3, "Always")
        .int(4, 0) // terminationGracePeriodSeconds: *int64 → keep 0
        .int(21, 0) // automountServiceAccountToken: *bool → keep false
        .int(11, 0) // hostNetwork: bool omitempty → drop
        .str(8, "");
    let managed = Enc::new()
        .str(1, "kubectl-create")
        .str(2, "Update")
        .str(3, "v1")
        .msg(4, Enc::new().int(1, 1_700_000_000))
        .str(6, "FieldsV1")
        .msg(7, Enc::new().bytes(1, br#"{"f:spec":{}}"#));
    let meta = object_meta("p", "default")
        .map_entry(11, "app", "web")
        .msg(17, managed)
        .msg(9, Enc::new().int(1, 1_700_000_100)); // deletionTimestamp
    let pod = Enc::new().msg(1, meta).msg(2, spec).msg(3, Enc::new());
    let decoded = decode_protobuf(&envelope("v1", "Pod", pod)).expect("decodes");
    assert_eq!(
        decoded.object,
        json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": "p",
                "namespace": "default",
                "deletionTimestamp": "2023-11-14T22:15:00Z",
                "labels": {"app": "web"},
                "managedFields": [{
                    "manager": "kubectl-create",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2023-11-14T22:13:20Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {}},
                }],
            },
            "spec": {
                "volumes": [{"name": "data", "emptyDir": {}}],
                "containers": [{
                    "name": "app",
                    "image": "busybox",
                    "command": ["sh", "-c"],
                    "resources": {},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": false,
            },
            "status": {},
        })
    );
    let typed: Pod = serde_json::from_value(decoded.object).expect("typed");
    let volume = &typed.spec.expect("spec").volumes.expect("volumes")[0];
    assert!(volume.empty_dir.is_some(), "emptyDir: {{}} must survive");
}

#[test]
fn events_v1_micro_time_and_lease() {
    let event = Enc::new()
        .msg(1, object_meta("e1", "default"))
        .msg(2, Enc::new().int(1, 1_700_000_000).int(2, 123_456_789))
        .str(4, "kubelet")
        .str(7, "Started")
        .msg(8, Enc::new().str(1, "Pod").str(2, "default").str(3, "p"))
        .str(10, "Started container")
        .str(11, "Normal")
        .msg(13, Enc::new()) // zero deprecatedFirstTimestamp
        .int(15, 0);
    let decoded = decode_protobuf(&envelope("events.k8s.io/v1", "Event", event)).expect("decodes");
    assert_eq!(
        decoded.object["eventTime"],
        json!("2023-11-14T22:13:20.123456Z")
    );
    assert!(decoded.object.get("deprecatedFirstTimestamp").is_none());
    assert!(decoded.object.get("deprecatedCount").is_none());
    let typed: Event = serde_json::from_value(decoded.object).expect("typed");
    assert_eq!(typed.reason.as_deref(), Some("Started"));
    assert_eq!(
        typed.regarding.expect("regarding").kind.as_deref(),
        Some("Pod")
    );

    let lease = Enc::new()
        .msg(1, object_meta("node-1", "kube-node-lease"))
        .msg(
            2,
            Enc::new()
                .str(1, "node-1")
                .int(2, 40)
                .msg(4, Enc::new().int(1, 1_700_000_000).int(2, 5_000))
                .int(5, 0),
        );
    let decoded =
        decode_protobuf(&envelope("coordination.k8s.io/v1", "Lease", lease)).expect("decodes");
    assert_eq!(
        decoded.object["spec"],
        json!({
            "holderIdentity": "node-1",
            "leaseDurationSeconds": 40,
            "renewTime": "2023-11-14T22:13:20.000005Z",
            "leaseTransitions": 0,
        })
    );
    let _typed: Lease = serde_json::from_value(decoded.object).expect("typed");
}

#[test]
fn raw_extension_and_unknown_fields() {
    let revision = Enc::new()
        .msg(1, object_meta("rev", "default"))
        .msg(2, Enc::new().bytes(1, br#"{"spec":{"replicas":2}}"#))
        .int(3, 4)
        .str(99, "a field from a newer version");
    let decoded =
        decode_protobuf(&envelope("apps/v1", "ControllerRevision", revision)).expect("decodes");
    assert_eq!(decoded.object["data"], json!({"spec": {"replicas": 2}}));
    assert_eq!(decoded.object["revision"], json!(4));

    let bad_raw = Enc::new().msg(2, Enc::new().bytes(1, b"{not json"));
    let err = decode_protobuf(&envelope("apps/v1", "ControllerRevision", bad_raw))
        .expect_err("bad raw JSON");
    assert!(
        matches!(&err, CodecError::InvalidField { field, .. } if field == "data"),
        "{err}"
    );
}

#[test]
fn errors_are_reported() {
    assert!(matches!(decode_protobuf(b""), Err(CodecError::Empty)));
    let err = decode_protobuf(b"{\"kind\":\"Pod\"}").expect_err("JSON is not protobuf");
    assert!(matches!(err, CodecError::BadMagic));
    assert_eq!(
        err.to_string(),
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    );
    assert!(matches!(
        decode_protobuf(b"k8s\0"),
        Err(CodecError::EmptyBody)
    ));
    assert!(matches!(decode_protobuf(b"k8"), Err(CodecError::BadMagic)));

    let err =
        decode_protobuf(&envelope("apps/v1", "Frobnicator", Enc::new())).expect_err("unknown");
    assert!(
        matches!(&err, CodecError::UnknownKind { kind, api_version } if kind == "Frobnicator" && api_version == "apps/v1")
    );
    assert!(
        err.to_string()
            .starts_with("no kind \"Frobnicator\" is registered for version \"apps/v1\"")
    );
    let err = decode_protobuf(&envelope("example.com/v1", "Widget", Enc::new())).expect_err("CRD");
    assert!(matches!(err, CodecError::UnknownKind { .. }));
    let err = decode_protobuf(&envelope("v1", "", Enc::new())).expect_err("no kind");
    assert!(matches!(err, CodecError::MissingKind(_)));
    let err = decode_protobuf(&envelope("", "Pod", Enc::new())).expect_err("no version");
    assert!(matches!(err, CodecError::MissingVersion(_)));

    // Truncating a valid body inside a length-delimited field must fail cleanly (cuts on a
    // field boundary are valid protobuf, as in Go).
    let type_meta = Enc::new().str(1, "v1").str(2, "Namespace");
    let tm_len = type_meta.0.len();
    let raw = Enc::new().msg(1, object_meta("ns", ""));
    let mut body = b"k8s\0".to_vec();
    body.extend_from_slice(&Enc::new().msg(1, type_meta).msg(2, raw).0);
    let type_meta_content = 6..6 + tm_len;
    let raw_content = 6 + tm_len + 2..body.len();
    for cut in type_meta_content.chain(raw_content) {
        assert!(
            decode_protobuf(&body[..cut]).is_err(),
            "cut at {cut} decoded"
        );
    }
    assert!(decode_protobuf(&body).is_ok());
    // A wrong wire type for a typed field is an error naming the field.
    let bad = Enc::new().msg(1, Enc::new().int(1, 5));
    let err = decode_protobuf(&envelope("v1", "Namespace", bad)).expect_err("int name");
    assert!(
        matches!(&err, CodecError::InvalidField { field, .. } if field == "metadata.name"),
        "{err}"
    );
}

#[test]
fn deeply_nested_input_is_rejected_not_overflowing() {
    // JSONSchemaProps-like recursion does not exist in k8s.io/api, but a RawExtension can hold
    // an embedded protobuf object which itself holds one…; and OwnerReference/Status nest too.
    // Build a 10k-deep chain of `metadata` fields inside a ControllerRevision.data raw object.
    let mut inner = envelope("apps/v1", "ControllerRevision", Enc::new());
    for _ in 0..2_000 {
        let raw = Enc::new().msg(2, Enc::new().bytes(1, &inner));
        inner = envelope("apps/v1", "ControllerRevision", raw);
    }
    assert!(decode_protobuf(&inner).is_err());
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6b38_7300);
    let seeds: Vec<Vec<u8>> = vec![
        envelope("v1", "DeleteOptions", helm_style_delete_options()),
        envelope("v1", "Namespace", Enc::new().msg(1, object_meta("ns", ""))),
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/deployment.pb"
        ))
        .expect("fixture"),
    ];
    let mut decoded_ok = 0;
    for i in 0..20_000 {
        let body = if i % 2 == 0 {
            // Pure noise after the magic.
            let len = rng.random_range(0..200);
            let mut body = b"k8s\0".to_vec();
            body.extend((0..len).map(|_| rng.random::<u8>()));
            body
        } else {
            // Mutations of valid bodies: flipped bytes, truncation, insertion.
            let mut body = seeds[i % seeds.len()].clone();
            for _ in 0..rng.random_range(1..4) {
                let pos = rng.random_range(4..body.len());
                match rng.random_range(0..3) {
                    0 => body[pos] = rng.random(),
                    1 => body.truncate(pos),
                    _ => body.insert(pos, rng.random()),
                }
                if body.len() <= 4 {
                    break;
                }
            }
            body
        };
        if let Ok(decoded) = decode_protobuf(&body) {
            decoded_ok += 1;
            assert!(matches!(decoded.object, Value::Object(_)));
        }
    }
    // Some mutations (e.g. in string contents) still decode; most must not.
    assert!(decoded_ok < 20_000);
}
