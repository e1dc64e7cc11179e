//! CPU accounting: how much CPU the server, the benchmark client and everything else on the
//! machine used during a phase (the machine is shared, so this says whether a figure was
//! measured on a quiet box).

use std::time::{Duration, Instant};

use crate::BenchError;

/// Clock ticks per second of `/proc` CPU times (`USER_HZ`, 100 on Linux).
const USER_HZ: u64 = 100;

/// User + system CPU time of process `pid` (`"self"` for this one), from `/proc/<pid>/stat`.
pub async fn cpu_time(pid: &str) -> Result<Duration, BenchError> {
    let path = format!("/proc/{pid}/stat");
    let text = tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| BenchError::io(format!("reading {path}"), e))?;
    parse_cpu_time(&text).ok_or_else(|| BenchError::Unexpected(format!("cannot parse {path}")))
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// is in parentheses and may contain spaces, so fields are counted after the last `)`.
pub fn parse_cpu_time(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(ticks(utime + stime))
}

fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 1000 / USER_HZ)
}

/// Busy CPU time of the whole machine (all CPUs, everything but idle and iowait), from the
/// first line of `/proc/stat`.
pub fn parse_machine_busy(stat: &str) -> Option<Duration> {
    let line = stat.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    let busy = v.iter().take(8).sum::<u64>() - v.get(3)? - v.get(4)?;
    Some(ticks(busy))
}

async fn machine_busy() -> Result<Duration, BenchError> {
    let text = tokio::fs::read_to_string("/proc/stat")
        .await
        .map_err(|e| BenchError::io("reading /proc/stat", e))?;
    parse_machine_busy(&text)
        .ok_or_else(|| BenchError::Unexpected("cannot parse /proc/stat".into()))
}

/// A snapshot of CPU times; [`CpuMeter::usage`] gives the cores used since.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    server_pid: String,
    server: Duration,
    bench: Duration,
    machine: Duration,
    at: Instant,
}

/// Average cores used over an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuUsage {
    /// By the server process.
    pub server: f64,
    /// By this benchmark process.
    pub bench: f64,
    /// By every other process on the machine.
    pub others: f64,
}

impl CpuUsage {
    /// `server 1.41, bench 0.48, others 0.02 cores`.
    pub fn text(&self) -> String {
        format!(
            "server {:.2}, bench client {:.2}, other processes {:.2} cores",
            self.server, self.bench, self.others
        )
    }
}

impl CpuMeter {
    /// Takes a snapshot for the server with PID `server_pid`.
    pub async fn start(server_pid: u32) -> Result<Self, BenchError> {
        let server_pid = server_pid.to_string();
        Ok(Self {
            server: cpu_time(&server_pid).await?,
            bench: cpu_time("self").await?,
            machine: machine_busy().await?,
            at: Instant::now(),
            server_pid,
        })
    }

    /// Average cores used since the snapshot.
    pub async fn usage(&self) -> Result<CpuUsage, BenchError> {
        let server = cpu_time(&self.server_pid).await?;
        let bench = cpu_time("self").await?;
        let machine = machine_busy().await?;
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let s = server.saturating_sub(self.server).as_secs_f64();
        let b = bench.saturating_sub(self.bench).as_secs_f64();
        let m = machine.saturating_sub(self.machine).as_secs_f64();
        Ok(CpuUsage {
            server: s / secs,
            bench: b / secs,
            others: (m - s - b).max(0.0) / secs,
        })
    }
}

/// The 1-minute load average, from `/proc/loadavg`.
pub async fn load_average() -> Option<f64> {
    let text = tokio::fs::read_to_string("/proc/loadavg").await.ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_counts_fields_after_the_command_name() {
        // The command name holds a space and a parenthesis; utime=250, stime=50 ticks.
        let stat = "1234 (r8s (x) y) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0";
        assert_eq!(parse_cpu_time(stat), Some(Duration::from_secs(3)));
        assert_eq!(parse_cpu_time("garbage"), None);
    }

    #[test]
    fn machine_busy_excludes_idle_and_iowait() {
        let stat = "cpu  100 10 50 1000 30 5 5 0 0 0\ncpu0 50 5 25 500 15 2 2 0 0 0\n";
        // 100 + 10 + 50 + 5 + 5 + 0 ticks = 1.7 s.
        assert_eq!(parse_machine_busy(stat), Some(Duration::from_millis(1700)));
        assert_eq!(parse_machine_busy("intr 1 2 3\n"), None);
    }

    #[tokio::test]
    async fn this_process_shows_up_as_bench_cpu() {
        let pid = std::process::id();
        let meter = CpuMeter::start(pid).await.expect("own /proc entries");
        let t0 = Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < Duration::from_millis(150) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let u = meter.usage().await.expect("own /proc entries");
        // Our own PID plays the server too; a busy loop uses most of one core.
        assert!(u.bench > 0.3 && u.server > 0.3, "{u:?}");
    }
}
