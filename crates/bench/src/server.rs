//! Starting and stopping the `r8s server` under test, its readiness time and its memory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::process::{Child, ChildStdin, Command};

use crate::BenchError;
use crate::client::{Connector, probe_ready};

/// How long a server may take to answer `/readyz` 200 before the run is abandoned.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two readiness probes (sets the resolution of the time to ready).
const PROBE_INTERVAL: Duration = Duration::from_millis(1);

/// A running `r8s server` on a free loopback port with a fresh temporary data dir.
///
/// Killed (SIGKILL to its PID only) by [`ServerProcess::stop`] or on drop. A helper `sh`
/// blocked on a pipe from this process kills it too if the benchmark itself dies.
pub struct ServerProcess {
    child: Child,
    reaper: Option<(Child, ChildStdin)>,
    root: TempDir,
    addr: SocketAddr,
    /// Time from just before `spawn` to the first `/readyz` 200.
    pub time_to_ready: Duration,
    /// A connector with the admin credentials the server wrote.
    pub connector: Connector,
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`, in KiB.
    pub rss_kib: u64,
    /// `VmHWM` (peak resident set), in KiB.
    pub hwm_kib: u64,
}

impl Memory {
    /// Parses the `VmRSS` and `VmHWM` lines of a `/proc/<pid>/status` text.
    pub fn parse(status: &str) -> Option<Self> {
        let field = |name: &str| {
            status.lines().find_map(|l| {
                let rest = l.strip_prefix(name)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse::<u64>().ok()
            })
        };
        Some(Self {
            rss_kib: field("VmRSS")?,
            hwm_kib: field("VmHWM")?,
        })
    }
}

impl ServerProcess {
    /// Starts `bin server` on a free port with a fresh data dir and waits for `/readyz` 200.
    pub async fn start(bin: &Path) -> Result<Self, BenchError> {
        Self::start_with_args(bin, &[]).await
    }

    /// Like [`ServerProcess::start`], with extra `r8s server` flags.
    pub async fn start_with_args(bin: &Path, args: &[&str]) -> Result<Self, BenchError> {
        let root = tempfile::Builder::new()
            .prefix("r8s-bench-")
            .tempdir()
            .map_err(|e| BenchError::io("creating a temporary directory", e))?;
        let data_dir = root.path().join("data");
        let log_path = root.path().join("server.log");
        let port = free_port().await?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| BenchError::io(format!("creating {}", log_path.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| BenchError::io("duplicating the log file handle", e))?;
        let mut cmd = Command::new(bin);
        cmd.arg("server")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--https-port")
            .arg(port.to_string())
            .args(["--bind-address", "127.0.0.1", "--disable-agent"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {}", bin.display()), e))?;
        let reaper = child.id().and_then(spawn_reaper);
        let tls_dir = data_dir.join("server").join("tls");
        let deadline = started + READY_TIMEOUT;
        let mut last;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BenchError::Server(format!(
                    "exited with {status} before becoming ready\n--- server log ---\n{}",
                    tail(&log_path, 40)
                )));
            }
            // The files may be half written at first: any error means "try again".
            match Connector::from_tls_dir(&tls_dir, addr) {
                Ok(connector) => match probe_ready(&connector, Duration::from_secs(2)).await {
                    Ok(true) => {
                        return Ok(Self {
                            time_to_ready: started.elapsed(),
                            child,
                            reaper,
                            root,
                            addr,
                            connector,
                        });
                    }
                    Ok(false) => last = "/readyz did not answer 200".into(),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Server(format!(
                    "not ready after {READY_TIMEOUT:?} (last: {last})\n--- server log ---\n{}",
                    tail(&log_path, 40)
                )));
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// The server's PID (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The temporary directory holding the data dir and `server.log`.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `VmRSS` and `VmHWM` of the server process now.
    pub async fn memory(&self) -> Result<Memory, BenchError> {
        let pid = self
            .pid()
            .ok_or_else(|| BenchError::Server("the server has exited".into()))?;
        let path = format!("/proc/{pid}/status");
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| BenchError::io(format!("reading {path}"), e))?;
        Memory::parse(&text)
            .ok_or_else(|| BenchError::Unexpected(format!("no VmRSS/VmHWM in {path}")))
    }

    /// CPU time (user + system) the server has used so far.
    pub async fn cpu_time(&self) -> Result<Duration, BenchError> {
        let pid = self
            .pid()
            .ok_or_else(|| BenchError::Server("the server has exited".into()))?;
        crate::cpu::cpu_time(&pid.to_string()).await
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log_path(), n)
    }

    /// Path of the file that receives the server's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    /// Kills the server (SIGKILL to its PID) and waits for it; removes its data dir.
    pub async fn stop(mut self) {
        if let Some((mut reaper, stdin)) = self.reaper.take() {
            let _ = reaper.kill().await;
            drop(stdin);
        }
        let _ = self.child.kill().await;
    }
}

/// The last `n` lines of the file at `path` (empty if unreadable).
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Another process started by the benchmark (e.g. `r8s sim`), killed on drop.
pub struct Helper {
    child: Child,
    _reaper: Option<(Child, ChildStdin)>,
}

impl Helper {
    /// Starts `bin args...` with its output appended to `log`.
    pub fn start(bin: &Path, args: &[&str], log: &Path) -> Result<Self, BenchError> {
        let out = std::fs::File::create(log)
            .map_err(|e| BenchError::io(format!("creating {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| BenchError::io("duplicating the log file handle", e))?;
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {}", bin.display()), e))?;
        let reaper = child.id().and_then(spawn_reaper);
        Ok(Self {
            child,
            _reaper: reaper,
        })
    }

    /// Its PID (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// CPU time (user + system) it has used so far.
    pub async fn cpu_time(&self) -> Result<Duration, BenchError> {
        let pid = self
            .pid()
            .ok_or_else(|| BenchError::Server("the helper process has exited".into()))?;
        crate::cpu::cpu_time(&pid.to_string()).await
    }
}

/// `sh` blocked reading a pipe only this process writes to: when the benchmark exits, however
/// it exits, the pipe closes and `sh` SIGKILLs `pid`.
pub(crate) fn spawn_reaper(pid: u32) -> Option<(Child, ChildStdin)> {
    let mut child = Command::new("sh")
        .args([
            "-c",
            "read _ignored; kill -9 \"$1\" 2>/dev/null",
            "r8s-bench-reaper",
            &pid.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let stdin = child.stdin.take()?;
    Some((child, stdin))
}

/// A port that was free a moment ago on 127.0.0.1.
pub(crate) async fn free_port() -> Result<u16, BenchError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| BenchError::io("binding 127.0.0.1:0", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| BenchError::io("reading a bound port", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_parses_proc_status() {
        let text = "Name:\tr8s\nVmPeak:\t  900000 kB\nVmHWM:\t   41234 kB\nVmRSS:\t   30500 kB\n";
        assert_eq!(
            Memory::parse(text),
            Some(Memory {
                rss_kib: 30500,
                hwm_kib: 41234
            })
        );
        assert_eq!(Memory::parse("Name:\tx\nVmRSS:\t1 kB\n"), None);
    }

    #[test]
    fn memory_of_this_process_is_readable() {
        let text =
            std::fs::read_to_string("/proc/self/status").expect("/proc/self/status on Linux");
        let m = Memory::parse(&text).expect("VmRSS and VmHWM present");
        assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib);
    }
}
