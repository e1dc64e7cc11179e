//! Timing of the managed-fields bookkeeping the API server does on every write.
//!
//! `cargo run --release -p patch --example managed_bench [iterations]` prints the mean µs per
//! call of: the create of a realistic Pod (two containers with env, ports, volume mounts,
//! resources and probes, as stored after defaulting), returning a copy as
//! `update_managed_fields` does and in place as `record_managed_fields` does; an update of that
//! Pod changing one field; and a server-side apply creating a Deployment.

use std::hint::black_box;
use std::time::Instant;

use patch::{SchemaNode, apply, record_managed_fields, update_managed_fields};
use serde_json::{Value, json};

const T1: &str = "2026-11-26T12:00:00Z";
const T2: &str = "2026-11-26T12:05:00Z";

/// The Pod of the `bench` crate (~1.5 KB as sent), as the API server passes it on create: after
/// defaulting and admission, with `uid`, `resourceVersion`, `creationTimestamp` and `status`.
fn pod() -> Value {
    serde_json::from_str(include_str!("../testdata/pod.json")).expect("valid JSON")
}

/// A Deployment applied with server-side apply.
fn deployment() -> Value {
    serde_json::from_str(include_str!("../testdata/deployment.json")).expect("valid JSON")
}

/// Runs `f` `n` times (after a warm-up) and prints the mean µs per call.
fn time(label: &str, n: u32, mut f: impl FnMut() -> Value) {
    for _ in 0..n.min(100) {
        black_box(f());
    }
    let start = Instant::now();
    for _ in 0..n {
        black_box(f());
    }
    let per_call = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("{label:<46} {per_call:>8.1} µs/call");
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let start = Instant::now();
    let lookup = openapi::schemas();
    println!(
        "{:<46} {:>8.1} µs",
        "openapi::schemas() (built once)",
        start.elapsed().as_secs_f64() * 1e6
    );
    let start = Instant::now();
    let pod_schema = SchemaNode::named(lookup, "io.k8s.api.core.v1.Pod");
    println!(
        "{:<46} {:>8.1} µs",
        "first SchemaNode (compiles the schema graph)",
        start.elapsed().as_secs_f64() * 1e6
    );
    let deployment_schema = SchemaNode::named(lookup, "io.k8s.api.apps.v1.Deployment");

    let pod = pod();
    println!(
        "pod: {} bytes of JSON; {n} iterations",
        serde_json::to_vec(&pod).map_or(0, |v| v.len())
    );
    let created = update_managed_fields(None, &pod, "kubectl-create", None, "v1", pod_schema, T1);
    let mut changed = created.clone();
    changed["metadata"]["labels"]["pod-template-hash"] = json!("5c8b7f9d6e");

    time("create Pod (update_managed_fields None)", n, || {
        update_managed_fields(None, &pod, "kubectl-create", None, "v1", pod_schema, T1)
    });
    let mut in_place = pod.clone();
    time("create Pod in place (record_managed_fields)", n, || {
        record_managed_fields(
            None,
            &mut in_place,
            "kubectl-create",
            None,
            "v1",
            pod_schema,
            T1,
        );
        match in_place["metadata"].as_object_mut() {
            Some(meta) => meta.shift_remove("managedFields").unwrap_or_default(),
            None => Value::Null,
        }
    });
    time("update Pod, one label changed", n, || {
        update_managed_fields(
            Some(&created),
            &changed,
            "kubectl-edit",
            None,
            "v1",
            pod_schema,
            T2,
        )
    });
    let deployment = deployment();
    time("apply Deployment (create)", n, || {
        apply(
            None,
            &deployment,
            "kubectl",
            "apps/v1",
            false,
            deployment_schema,
            T1,
        )
        .unwrap_or_default()
    });
}
