//! `bench`: starts an `r8s server` and prints its figures against the targets.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Benchmark of the r8s API server: create latency and throughput, GET, LIST, watch fan-out,
/// time to ready and RSS. Starts its own server on a free loopback port.
#[derive(Parser)]
#[command(name = "bench")]
struct Args {
    /// The r8s binary to benchmark.
    #[arg(long, default_value = "target/release/r8s")]
    r8s: PathBuf,
    /// Shorter phases (under a minute).
    #[arg(long)]
    quick: bool,
    /// Also print the table as Markdown.
    #[arg(long)]
    markdown: bool,
    /// Benchmark the control plane instead (controllers, scheduler, simulated nodes).
    #[arg(long)]
    controlplane: bool,
    /// Benchmark a real node agent instead (pod startup, raw CRI floor, agent RSS); run it
    /// under `flock /tmp/r8s-node.lock` (one agent per machine).
    #[arg(long)]
    node: bool,
    /// Benchmark the service proxy instead (10,000 Services programmed into nftables in a
    /// network namespace; endpoint change latency through the API).
    #[arg(long)]
    proxy: bool,
    /// Benchmark the cluster DNS server instead (in this process: 1,000 Services through
    /// hand-fed informers, an open-loop UDP client at 1,000 queries/s for 10 s; 3 s with
    /// `--quick`).
    #[arg(long)]
    dns: bool,
    /// Benchmark high availability on etcd instead: paced creates at 200/s on SQLite and on
    /// etcd side by side (20 s each; 5 s with `--quick`), then leader failover between two
    /// servers on one etcd with upstream and with fast leader-election timings.
    #[arg(long)]
    etcd: bool,
    /// Services for `--proxy`.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Pods created one at a time by `--node`.
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// The local registry `--node` pulls from (started with `images/setup.sh` if silent).
    #[arg(long, default_value = "127.0.0.1:5000")]
    registry: String,
    /// Simulated nodes for `--controlplane` (default 5,000; 500 with `--quick`).
    #[arg(long)]
    nodes: Option<usize>,
    /// Watch streams per HTTP/2 connection in the watch phase.
    #[arg(long, default_value_t = 50)]
    watch_streams_per_connection: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let r8s = resolve_binary(args.r8s);
    let mut plan = if args.quick {
        bench::Plan::quick()
    } else {
        bench::Plan::full()
    };
    plan.watch.per_conn = args.watch_streams_per_connection.max(1);
    let opts = bench::Options { r8s, plan };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    let progress = |line: &str| eprintln!("[{:>5.1} s] {line}", started.elapsed().as_secs_f64());
    let result = if args.etcd {
        let plan = if args.quick {
            bench::etcd::Plan::quick()
        } else {
            bench::etcd::Plan::full()
        };
        rt.block_on(bench::etcd::run(&opts.r8s, &plan, &progress))
    } else if args.dns {
        let plan = bench::dns::Plan {
            duration: std::time::Duration::from_secs(if args.quick { 3 } else { 10 }),
            ..bench::dns::Plan::default()
        };
        rt.block_on(bench::dns::run(&plan, &progress))
    } else if args.proxy {
        let plan = bench::proxy::Plan {
            services: args.services.max(1),
            ..bench::proxy::Plan::default()
        };
        rt.block_on(bench::proxy::run(&opts.r8s, &plan, &progress))
    } else if args.node {
        let plan = bench::node::Plan {
            pods: args.pods.max(1),
            raw_runs: args.pods.clamp(1, 50),
            registry: args.registry,
            ..bench::node::Plan::default()
        };
        rt.block_on(bench::node::run(&opts.r8s, &plan, &progress))
    } else if args.controlplane {
        let mut cp = if args.quick {
            bench::controlplane::Plan::quick()
        } else {
            bench::controlplane::Plan::full()
        };
        if let Some(n) = args.nodes {
            cp.nodes = n;
        }
        rt.block_on(bench::controlplane::run(&opts.r8s, &cp, &progress))
    } else {
        rt.block_on(bench::run(&opts, &progress))
    };
    match result {
        Ok(report) => {
            println!("{}", report.text());
            if args.markdown {
                println!("{}", report.markdown());
            }
            eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `path` as given if it exists, else the same relative path under the workspace root (so
/// the default works from any directory of the workspace).
fn resolve_binary(path: PathBuf) -> PathBuf {
    if path.is_absolute() || path.exists() {
        return path;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidate = root.join(&path);
    if candidate.exists() { candidate } else { path }
}
