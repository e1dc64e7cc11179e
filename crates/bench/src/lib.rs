//! `bench`: starts its own `r8s server` and measures it against the project's targets.
//!
//! Run it with `cargo run --release -p bench -- [--r8s target/release/r8s] [--quick]`; it prints
//! one line per figure (name, value, target, PASS/MISS). See `docs/benchmarks.md`.
//!
//! # Layout
//! - [`server`]: spawn the server on a free loopback port with a fresh data dir, time it to
//!   `/readyz` 200, read its RSS, kill it by PID.
//! - [`client`]: HTTP/2 over rustls with the admin client certificate.
//! - [`pods`]: request bodies (a ~1.5 KB pod).
//! - [`scenarios`]: the measured phases.
//! - [`cpu`]: CPU used by the server, the client and other processes during each phase.
//! - [`stats`], [`report`]: percentiles and the table.
//! - [`controlplane`], [`node`], [`proxy`], [`dns`], [`etcd`]: the `--controlplane`, `--node`,
//!   `--proxy`, `--dns` and `--etcd` benchmarks.

pub mod client;
pub mod controlplane;
pub mod cpu;
pub mod dns;
mod error;
pub mod etcd;
pub mod node;
pub mod pods;
pub mod proxy;
pub mod report;
pub mod scenarios;
pub mod server;
pub mod stats;

use std::path::PathBuf;
use std::time::Duration;

use cpu::CpuMeter;
pub use error::BenchError;
use report::{Figure, Report};
use scenarios::{Budget, WatchPlan};
use server::{Memory, ServerProcess};
use stats::{Summary, ms};

/// Sizes and durations of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Extra servers started (and killed) on fresh data dirs only to time their start.
    pub extra_ready_trials: usize,
    /// Idle time before each RSS reading.
    pub idle: Duration,
    /// Rate of the paced create phase, writes per second.
    pub paced_rate: u32,
    /// Length of the paced create phase.
    pub paced_for: Duration,
    /// Concurrent clients of the throughput phase (one HTTP/2 connection each).
    pub tput_clients: usize,
    /// Length of the throughput phase.
    pub tput_for: Duration,
    /// Pods created (concurrently) before the GET and LIST phases.
    pub list_pods: usize,
    /// Concurrent clients that create them.
    pub populate_clients: usize,
    /// Length of each GET phase.
    pub get_for: Duration,
    /// Repetitions of each LIST.
    pub list_runs: usize,
    /// The watch phase.
    pub watch: WatchPlan,
}

impl Plan {
    /// The full run (about a minute on the 2-core machine).
    pub fn full() -> Self {
        Self {
            extra_ready_trials: 4,
            idle: Duration::from_secs(2),
            paced_rate: 200,
            paced_for: Duration::from_secs(10),
            tput_clients: 32,
            tput_for: Duration::from_secs(10),
            list_pods: 10_000,
            populate_clients: 64,
            get_for: Duration::from_secs(4),
            list_runs: 7,
            watch: WatchPlan {
                watchers: 1_000,
                per_conn: 50,
                writes: 50,
                interval: Duration::from_millis(50),
                drain: Duration::from_secs(10),
            },
        }
    }

    /// A shorter run (under a minute) with the same sizes but shorter phases.
    pub fn quick() -> Self {
        Self {
            extra_ready_trials: 1,
            paced_for: Duration::from_secs(3),
            tput_for: Duration::from_secs(3),
            get_for: Duration::from_millis(1500),
            list_runs: 3,
            watch: WatchPlan {
                writes: 20,
                drain: Duration::from_secs(5),
                ..Self::full().watch
            },
            ..Self::full()
        }
    }
}

/// What to run against.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `r8s` binary.
    pub r8s: PathBuf,
    /// Sizes and durations.
    pub plan: Plan,
}

const NS_CREATE: &str = "bench-create";
const NS_TPUT: &str = "bench-throughput";
const NS_LIST: &str = "bench-list";
const NS_WATCH: &str = "bench-watch";
const NS_WATCH1: &str = "bench-watch-one";

/// Runs every phase against a fresh server and returns the figures. `progress` receives a
/// line before each phase (for stderr).
pub async fn run(opts: &Options, progress: &dyn Fn(&str)) -> Result<Report, BenchError> {
    let plan = &opts.plan;
    let mut report = Report::default();
    if let Some(load) = cpu::load_average().await {
        report
            .notes
            .push(format!("1-minute load average before the run: {load:.2}"));
    }

    // 6a. Time to ready on empty data dirs.
    let starts = plan.extra_ready_trials + 1;
    progress(&format!(
        "starting {} on {starts} fresh data dirs (time to ready)",
        opts.r8s.display()
    ));
    let mut ready = Vec::with_capacity(starts);
    for _ in 0..plan.extra_ready_trials {
        let s = ServerProcess::start(&opts.r8s).await?;
        ready.push(s.time_to_ready);
        s.stop().await;
    }
    let srv = ServerProcess::start(&opts.r8s).await?;
    ready.push(srv.time_to_ready);
    progress(&format!(
        "server PID {} on {} (data in {})",
        srv.pid().unwrap_or(0),
        srv.addr(),
        srv.root().display()
    ));
    if let Some(s) = Summary::of(ready) {
        report.figures.push(Figure::at_most(
            "time to ready (spawn → /readyz 200), empty data dir",
            format!(
                "median {} ms, max {} ms ({} starts)",
                ms(s.p50),
                ms(s.max),
                s.count
            ),
            s.max.as_secs_f64() * 1000.0,
            300.0,
            "≤ 300 ms (max)",
        ));
    }

    // 6b. Idle RSS right after start.
    progress(&format!("idle {} s, then VmRSS", plan.idle.as_secs()));
    tokio::time::sleep(plan.idle).await;
    match srv.memory().await {
        Ok(m) => report.figures.push(Figure::at_most(
            format!("idle RSS ({} s after start)", plan.idle.as_secs()),
            mem_text(m),
            mib(m.rss_kib),
            40.0,
            "≤ 40 MiB",
        )),
        Err(e) => report
            .figures
            .push(Figure::failed("idle RSS", e.to_string(), "≤ 40 MiB")),
    }

    let result = phases(&srv, plan, &mut report, progress).await;
    if let Err(e) = &result {
        report.notes.push(format!(
            "run stopped early: {e}\nserver log tail:\n{}",
            srv.log_tail(20)
        ));
    }

    // 6c. RSS after the load.
    progress(&format!("idle {} s, then VmRSS", plan.idle.as_secs()));
    tokio::time::sleep(plan.idle).await;
    match srv.memory().await {
        Ok(m) => report.figures.push(Figure::info(
            format!("RSS after the load ({} s idle)", plan.idle.as_secs()),
            mem_text(m),
        )),
        Err(e) => report.notes.push(format!("RSS after the load: {e}")),
    }
    srv.stop().await;
    report.notes.push(
        "the benchmark client runs on the same machine and shares its CPUs with the server".into(),
    );
    Ok(report)
}

async fn phases(
    srv: &ServerProcess,
    plan: &Plan,
    report: &mut Report,
    progress: &dyn Fn(&str),
) -> Result<(), BenchError> {
    let connector = &srv.connector;
    let admin = connector.h2().await?;
    for ns in [NS_CREATE, NS_TPUT, NS_LIST, NS_WATCH, NS_WATCH1] {
        scenarios::ensure_namespace(&admin, ns).await?;
    }

    // 1. Paced creates.
    progress(&format!(
        "paced creates: {}/s for {} s",
        plan.paced_rate,
        plan.paced_for.as_secs()
    ));
    let m = meter(srv).await;
    let run =
        scenarios::paced_creates(&admin, NS_CREATE, "create", plan.paced_rate, plan.paced_for)
            .await;
    let name = format!(
        "create latency @ {}/s paced, {} s ({} B pod)",
        plan.paced_rate,
        plan.paced_for.as_secs(),
        pods::pod_body(NS_CREATE, &scenarios::pod_name("create", 0)).len()
    );
    push_latency(report, &name, &run, 10.0, "p99 ≤ 10 ms");
    cpu_line(report, m, "paced creates").await;

    // 2. Throughput.
    progress(&format!(
        "closed-loop creates: {} clients for {} s",
        plan.tput_clients,
        plan.tput_for.as_secs()
    ));
    let mut conns = Vec::with_capacity(plan.tput_clients);
    for _ in 0..plan.tput_clients {
        conns.push(connector.h2().await?);
    }
    let m = meter(srv).await;
    let run = scenarios::closed_loop_creates(
        &conns,
        plan.tput_clients,
        NS_TPUT,
        "tput",
        Budget::For(plan.tput_for),
    )
    .await;
    let lat = Summary::of(run.latencies.clone());
    report.figures.push(Figure::at_least(
        format!(
            "acknowledged creates/s, {} clients, {} s",
            plan.tput_clients,
            plan.tput_for.as_secs()
        ),
        format!(
            "{:.0}/s ({} ok{})",
            run.rate(),
            run.ok,
            lat.map(|s| format!(", latency p50 {} ms p99 {} ms", ms(s.p50), ms(s.p99)))
                .unwrap_or_default()
        ),
        run.rate(),
        3000.0,
        "≥ 3,000/s",
    ));
    note_errors(report, "throughput creates", &run.errors);
    cpu_line(report, m, "closed-loop creates").await;
    drop(conns);

    // 4a. Populate the LIST namespace.
    progress(&format!(
        "creating {} pods with {} concurrent clients",
        plan.list_pods, plan.populate_clients
    ));
    let mut conns = Vec::with_capacity(8);
    for _ in 0..8 {
        conns.push(connector.h2().await?);
    }
    let m = meter(srv).await;
    let run = scenarios::closed_loop_creates(
        &conns,
        plan.populate_clients,
        NS_LIST,
        "list",
        Budget::Count(plan.list_pods),
    )
    .await;
    report.figures.push(Figure::info(
        format!(
            "create {} pods, {} clients (setup for GET/LIST)",
            plan.list_pods, plan.populate_clients
        ),
        format!(
            "{:.2} s, {:.0}/s ({} ok)",
            run.elapsed.as_secs_f64(),
            run.rate(),
            run.ok
        ),
    ));
    note_errors(report, "populate creates", &run.errors);
    cpu_line(report, m, "populate").await;

    // 3. GETs.
    for clients in [1usize, 8] {
        progress(&format!(
            "GET of random pods: {clients} client(s) for {:.1} s",
            plan.get_for.as_secs_f64()
        ));
        let m = meter(srv).await;
        let run = scenarios::random_gets(
            &conns,
            clients,
            NS_LIST,
            "list",
            plan.list_pods,
            plan.get_for,
        )
        .await;
        let name = format!(
            "GET latency, {clients} client{} ({:.0} GET/s)",
            if clients == 1 { "" } else { "s" },
            run.rate()
        );
        push_latency(report, &name, &run, 2.0, "p99 ≤ 2 ms");
        cpu_line(report, m, "GETs").await;
    }

    // 4b. LISTs.
    let path = scenarios::pods_path(NS_LIST);
    for (form, accept) in [
        ("JSON", "application/json"),
        ("Table", client::TABLE_ACCEPT),
    ] {
        progress(&format!(
            "LIST {} pods as {form}, {} runs",
            plan.list_pods, plan.list_runs
        ));
        let name = format!("LIST {} pods, full {form}", plan.list_pods);
        let m = meter(srv).await;
        let listed = scenarios::repeated_lists(&admin, &path, accept, plan.list_runs).await;
        match listed {
            Ok(l) => {
                let s = Summary::of(l.times.clone());
                let (p50, max) = s.map(|s| (s.p50, s.max)).unwrap_or_default();
                let mut fig = Figure::at_most(
                    name,
                    format!(
                        "median {} ms, max {} ms ({} runs, {:.1} MB, {} entries)",
                        ms(p50),
                        ms(max),
                        l.times.len(),
                        l.bytes as f64 / 1e6,
                        l.items
                    ),
                    max.as_secs_f64() * 1000.0,
                    300.0,
                    "≤ 300 ms (max)",
                );
                if l.items != run.ok {
                    fig.verdict = report::Verdict::Miss;
                    report.notes.push(format!(
                        "LIST {form} returned {} entries, {} pods were created",
                        l.items, run.ok
                    ));
                }
                report.figures.push(fig);
            }
            Err(e) => report
                .figures
                .push(Figure::failed(name, e.to_string(), "≤ 300 ms")),
        }
        cpu_line(report, m, "LISTs").await;
    }
    drop(conns);

    // 5a. Watch baseline: one watcher, same writes (separates fan-out cost from the path).
    let w = plan.watch;
    let one = WatchPlan {
        watchers: 1,
        writes: w.writes.min(20),
        drain: Duration::from_secs(3),
        ..w
    };
    progress(&format!(
        "watch baseline: 1 watcher, {} creates",
        one.writes
    ));
    match scenarios::watch_fanout(connector, &admin, NS_WATCH1, "watch1", one).await {
        Ok(run) => {
            if let Some(s) = Summary::of(run.latencies.clone()) {
                let sent = Summary::of(run.from_send.clone());
                report.figures.push(Figure::info(
                    format!("watch delivery latency, 1 watcher × {} creates", one.writes),
                    format!(
                        "p50 {} ms, p99 {} ms ({} of {} events, {} before the ack){}",
                        ms(s.p50),
                        ms(s.p99),
                        run.received,
                        run.expected,
                        run.early,
                        sent.map(|t| format!("; request sent → receipt p50 {} ms", ms(t.p50)))
                            .unwrap_or_default()
                    ),
                ));
            }
            note_errors(report, "watch baseline", &run.errors);
        }
        Err(e) => report.notes.push(format!("watch baseline: {e}")),
    }

    // 5b. Watch fan-out.
    progress(&format!(
        "watch: {} watchers ({} per HTTP/2 connection), {} creates every {} ms",
        w.watchers,
        w.per_conn,
        w.writes,
        w.interval.as_millis()
    ));
    let name = format!(
        "watch delivery latency, {} watchers × {} creates",
        w.watchers, w.writes
    );
    let m = meter(srv).await;
    let watched = scenarios::watch_fanout(connector, &admin, NS_WATCH, "watch", w).await;
    match watched {
        Ok(run) => {
            let missing = run.expected.saturating_sub(run.received);
            match Summary::of(run.latencies.clone()) {
                Some(s) => {
                    let mut fig = Figure::at_most(
                        name,
                        format!(
                            "p50 {} ms, p99 {} ms, max {} ms ({} of {} events{})",
                            ms(s.p50),
                            ms(s.p99),
                            ms(s.max),
                            run.received,
                            run.expected,
                            if run.early > 0 {
                                format!(", {} before the ack", run.early)
                            } else {
                                String::new()
                            }
                        ),
                        s.p99.as_secs_f64() * 1000.0,
                        20.0,
                        "p99 ≤ 20 ms",
                    );
                    if missing > 0 || run.established_in_setup < w.watchers {
                        fig.verdict = report::Verdict::Miss;
                    }
                    report.figures.push(fig);
                }
                None => {
                    report
                        .figures
                        .push(Figure::failed(name, "no event received", "p99 ≤ 20 ms"))
                }
            }
            if let Some(t) = Summary::of(run.from_send.clone()) {
                report.figures.push(Figure::info(
                    "watch: create request sent → receipt",
                    format!("p50 {} ms, p99 {} ms", ms(t.p50), ms(t.p99)),
                ));
            }
            if let Some(f) = Summary::of(run.fanout.clone()) {
                report.figures.push(Figure::info(
                    "watch fan-out: ack → last of all watchers has it",
                    format!(
                        "p50 {} ms, max {} ms ({} writes)",
                        ms(f.p50),
                        ms(f.max),
                        f.count
                    ),
                ));
            }
            report.figures.push(Figure::info(
                format!("watch setup: {} watches opened", run.established_in_setup),
                format!("{} ms", ms(run.setup)),
            ));
            if missing > 0 {
                report.notes.push(format!(
                    "watch: {missing} of {} events never arrived",
                    run.expected
                ));
            }
            note_errors(report, "watch", &run.errors);
        }
        Err(e) => report
            .figures
            .push(Figure::failed(name, e.to_string(), "p99 ≤ 20 ms")),
    }
    cpu_line(report, m, "the watch phase").await;
    Ok(())
}

/// A CPU meter for `srv` (none if its CPU time is unreadable).
pub(crate) async fn meter(srv: &ServerProcess) -> Option<CpuMeter> {
    CpuMeter::start(srv.pid()?).await.ok()
}

/// Adds the CPU used since `meter` started as an indented line.
pub(crate) async fn cpu_line(report: &mut Report, meter: Option<CpuMeter>, phase: &str) {
    if let Some(m) = meter
        && let Ok(u) = m.usage().await
    {
        report
            .figures
            .push(Figure::info(format!("  cpu during {phase}"), u.text()));
    }
}

/// Adds the latency figure of `run` (p99 against `p99_ms`; a MISS if any request failed).
pub(crate) fn push_latency(
    report: &mut Report,
    name: &str,
    run: &scenarios::Run,
    p99_ms: f64,
    target: &str,
) {
    match Summary::of(run.latencies.clone()) {
        Some(s) => {
            let mut fig = Figure::at_most(
                name,
                format!(
                    "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (n={})",
                    ms(s.p50),
                    ms(s.p90),
                    ms(s.p99),
                    ms(s.max),
                    s.count
                ),
                s.p99.as_secs_f64() * 1000.0,
                p99_ms,
                target,
            );
            if !run.errors.is_empty() {
                fig.verdict = report::Verdict::Miss;
            }
            report.figures.push(fig);
        }
        None => report
            .figures
            .push(Figure::failed(name, "no successful request", target)),
    }
    note_errors(report, name, &run.errors);
}

/// Adds a note listing the failures of a phase, if any.
pub(crate) fn note_errors(report: &mut Report, phase: &str, errors: &stats::ErrorTally) {
    if !errors.is_empty() {
        report
            .notes
            .push(format!("{phase}: {} failed: {errors}", errors.total()));
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn mem_text(m: Memory) -> String {
    format!(
        "VmRSS {:.1} MiB (VmHWM {:.1} MiB)",
        mib(m.rss_kib),
        mib(m.hwm_kib)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_plan_is_shorter_but_keeps_the_sizes() {
        let (q, f) = (Plan::quick(), Plan::full());
        assert!(q.paced_for < f.paced_for && q.tput_for < f.tput_for);
        assert_eq!(q.list_pods, 10_000);
        assert_eq!(q.watch.watchers, 1_000);
        assert_eq!(f.paced_rate, 200);
        assert_eq!(f.tput_clients, 32);
        assert_eq!(f.watch.writes, 50);
    }

    #[test]
    fn mem_text_is_in_mib() {
        let t = mem_text(Memory {
            rss_kib: 30 * 1024,
            hwm_kib: 45 * 1024 + 512,
        });
        assert_eq!(t, "VmRSS 30.0 MiB (VmHWM 45.5 MiB)");
    }
}
