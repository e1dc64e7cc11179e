//! Runs every phase of the benchmark with tiny sizes against the real `r8s` binary and checks
//! what the phases observed (counts, errors), never how fast: timings belong to the benchmark
//! run, not to tests. Skipped when no release binary has been built.

use std::path::PathBuf;
use std::time::Duration;

use bench::scenarios::WatchPlan;
use bench::{Options, Plan};

fn r8s_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("R8S_BIN") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/r8s");
    p.exists().then_some(p)
}

fn tiny_plan() -> Plan {
    Plan {
        extra_ready_trials: 1,
        idle: Duration::from_millis(100),
        paced_rate: 50,
        paced_for: Duration::from_millis(200),
        tput_clients: 2,
        tput_for: Duration::from_millis(200),
        list_pods: 40,
        populate_clients: 4,
        get_for: Duration::from_millis(200),
        list_runs: 2,
        watch: WatchPlan {
            watchers: 6,
            per_conn: 4,
            writes: 3,
            interval: Duration::from_millis(20),
            drain: Duration::from_secs(5),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_phase_runs_against_the_real_server() {
    let Some(r8s) = r8s_binary() else {
        eprintln!("skipped: build target/release/r8s first (cargo build --release -p r8s)");
        return;
    };
    let opts = Options {
        r8s,
        plan: tiny_plan(),
    };
    let report = bench::run(&opts, &|line| eprintln!("{line}"))
        .await
        .expect("the run completes");
    let text = report.text();
    let value = |prefix: &str| {
        report
            .figures
            .iter()
            .find(|f| f.name.starts_with(prefix))
            .map(|f| f.value.clone())
            .unwrap_or_else(|| panic!("no figure starting with {prefix:?} in\n{text}"))
    };
    assert!(value("time to ready").contains("(2 starts)"), "{text}");
    assert!(value("idle RSS").contains("MiB"), "{text}");
    assert!(value("create latency @ 50/s").contains("(n=10)"), "{text}");
    assert!(value("create 40 pods").contains("(40 ok)"), "{text}");
    assert!(
        value("LIST 40 pods, full JSON").contains("40 entries"),
        "{text}"
    );
    assert!(
        value("LIST 40 pods, full Table").contains("40 entries"),
        "{text}"
    );
    assert!(
        value("watch delivery latency, 6 watchers").contains("(18 of 18 events"),
        "{text}"
    );
    assert!(
        value("watch delivery latency, 1 watcher").contains("(3 of 3 events"),
        "{text}"
    );
    // Every watch answered 200 (the figure names the count of established watches).
    value("watch setup: 6 watches opened");
    assert!(
        !report
            .notes
            .iter()
            .any(|n| n.contains("failed") || n.contains("stopped early")),
        "{text}"
    );
}
