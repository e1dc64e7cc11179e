//! `kubectl get pods -w` prints changes as they happen.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use e2e::{Namespace, columns};
use testsupport::shared_server;

const LINE_TIMEOUT: Duration = Duration::from_secs(20);

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: watched\nspec:\n  schedulerName: e2e-no-scheduler\n  containers:\n  - name: app\n    image: nginx:1.14.2\n"
    )
}

#[test]
fn get_pods_watch_with_events_prints_added_modified_deleted() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-watch");
    ns.kubectl_stdin_ok(&["create", "-f", "-"], &pod("p0"));

    let watch = srv.kubectl_spawn(&["get", "pods", "-n", &ns.name, "-w", "--output-watch-events"]);
    let (header, seen) = watch.wait_for_line(LINE_TIMEOUT, |l| l.starts_with("EVENT"));
    assert_eq!(
        header.as_deref().map(columns),
        Some(
            ["EVENT", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
                .map(String::from)
                .to_vec()
        ),
        "lines so far: {seen:?}"
    );
    let (p0, seen) = watch.wait_for_line(LINE_TIMEOUT, |l| {
        columns(l).get(1).is_some_and(|n| n == "p0")
    });
    let p0 = columns(&p0.unwrap_or_else(|| panic!("no line for p0; lines: {seen:?}")));
    assert_eq!(p0[..5], ["ADDED", "p0", "0/1", "Pending", "0"]);

    // A pod created now shows up while kubectl is still running.
    ns.kubectl_stdin_ok(&["create", "-f", "-"], &pod("p1"));
    let (line, seen) = watch.wait_for_line(LINE_TIMEOUT, |l| {
        columns(l).get(1).is_some_and(|n| n == "p1")
    });
    let added = columns(&line.unwrap_or_else(|| panic!("no ADDED line for p1; lines: {seen:?}")));
    assert_eq!(added[..5], ["ADDED", "p1", "0/1", "Pending", "0"]);

    // A change to it is printed as MODIFIED.
    ns.kubectl_ok(&["label", "pod", "p1", "changed=yes"]);
    let (line, seen) = watch.wait_for_line(LINE_TIMEOUT, |l| {
        columns(l).get(1).is_some_and(|n| n == "p1")
    });
    let modified =
        columns(&line.unwrap_or_else(|| panic!("no MODIFIED line for p1; lines: {seen:?}")));
    assert_eq!(modified[..2], ["MODIFIED", "p1"]);

    // Deleting it (an unscheduled pod goes at once) is printed as DELETED.
    let out = ns.kubectl_ok(&["delete", "pod", "p1"]);
    assert!(out.starts_with("pod \"p1\" deleted"), "{out}");
    let (line, seen) = watch.wait_for_line(LINE_TIMEOUT, |l| {
        columns(l).first().is_some_and(|e| e == "DELETED")
    });
    let deleted =
        columns(&line.unwrap_or_else(|| panic!("no DELETED line for p1; lines: {seen:?}")));
    assert_eq!(deleted[1], "p1");
    let stderr = watch.stop();
    assert!(!stderr.contains("error"), "kubectl -w stderr: {stderr}");
}

#[test]
fn get_pods_watch_prints_rows_and_single_object_watch() {
    let Some(srv) = shared_server() else { return };
    let ns = Namespace::create(srv, "e2e-watch2");
    ns.kubectl_stdin_ok(&["create", "-f", "-"], &pod("first"));

    let watch = srv.kubectl_spawn(&["get", "pods", "-n", &ns.name, "-w"]);
    let (header, seen) = watch.wait_for_line(LINE_TIMEOUT, |l| l.starts_with("NAME"));
    assert_eq!(
        header.as_deref().map(columns),
        Some(
            ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
                .map(String::from)
                .to_vec()
        ),
        "lines so far: {seen:?}"
    );
    let (line, seen) = watch.wait_for_line(LINE_TIMEOUT, |l| l.starts_with("first "));
    assert!(
        line.is_some(),
        "no row for the existing pod; lines: {seen:?}"
    );

    ns.kubectl_stdin_ok(&["create", "-f", "-"], &pod("second"));
    let (line, seen) = watch.wait_for_line(LINE_TIMEOUT, |l| l.starts_with("second "));
    let row = columns(&line.unwrap_or_else(|| panic!("no row for the new pod; lines: {seen:?}")));
    assert_eq!(row[..4], ["second", "0/1", "Pending", "0"]);
    assert!(e2e::is_age(&row[4]), "{row:?}");
    watch.stop();

    // Watching one object by name: only its changes are printed.
    let single = srv.kubectl_spawn(&["get", "pod", "first", "-n", &ns.name, "-w"]);
    let (line, seen) = single.wait_for_line(LINE_TIMEOUT, |l| l.starts_with("first "));
    assert!(line.is_some(), "no initial row; lines: {seen:?}");
    ns.kubectl_ok(&["label", "pod", "second", "noise=1"]);
    ns.kubectl_ok(&["label", "pod", "first", "touched=1"]);
    let (line, seen) = single.wait_for_line(LINE_TIMEOUT, |l| {
        l.starts_with("first ") || l.starts_with("second ")
    });
    let line = line.unwrap_or_else(|| panic!("no row after the change; lines: {seen:?}"));
    assert!(
        line.starts_with("first "),
        "only the watched pod is printed: {line}"
    );
    single.stop();
}
