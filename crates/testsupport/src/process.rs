//! Running commands with a deadline, and reading a long-running command line by line.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use crate::TestSupportError;

/// A command that did not finish before its deadline (it has been killed).
#[derive(Debug, Clone)]
pub struct TimedOut {
    /// How long it was given.
    pub timeout: Duration,
    /// What it printed on stdout before it was killed.
    pub stdout: String,
    /// What it printed on stderr before it was killed.
    pub stderr: String,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "did not finish within {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.timeout, self.stdout, self.stderr
        )
    }
}

impl std::error::Error for TimedOut {}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        // Errors end the read; what arrived so far is kept.
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs `cmd` to completion, feeding it `stdin`, killing it after `timeout`.
///
/// Returns `Ok(Err(TimedOut))` when the deadline passed, `Err` when it could not be started.
pub fn run_with_timeout(
    mut cmd: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Result<Output, TimedOut>, TestSupportError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| TestSupportError::io(format!("starting {cmd:?}"), e))?;
    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(thread::spawn(move || {
                // The program may exit without reading everything; that is its business.
                let _ = pipe.write_all(&data);
            }))
        }
        _ => None,
    };
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status: Option<ExitStatus> = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(TestSupportError::io("waiting for a command", e)),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(TimedOut {
            timeout,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }),
    })
}

/// A running command whose stdout is read line by line (e.g. `kubectl get pods -w`).
///
/// The process is killed (by its PID) when this is dropped.
#[derive(Debug)]
pub struct LineReader {
    child: Child,
    lines: Receiver<String>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
}

impl LineReader {
    /// Starts `cmd` with stdout piped.
    pub fn spawn(mut cmd: Command) -> Result<Self, TestSupportError> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| TestSupportError::io(format!("starting {cmd:?}"), e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| TestSupportError::NotFound("child has no stdout".into()))?;
        let stderr = drain(
            child
                .stderr
                .take()
                .ok_or_else(|| TestSupportError::NotFound("child has no stderr".into()))?,
        );
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            lines,
            stderr: Some(stderr),
        })
    }

    /// The next line, or `None` if none arrived within `timeout` or the output ended.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Reads lines until one satisfies `pred` or `timeout` passes; returns that line and all
    /// lines read (including it).
    pub fn wait_for_line(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> (Option<String>, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(line) = self.next_line(left) else {
                break;
            };
            seen.push(line.clone());
            if pred(&line) {
                return (Some(line), seen);
            }
        }
        (None, seen)
    }

    /// Kills the process and returns what it wrote to stderr.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        String::from_utf8_lossy(&stderr).into_owned()
    }
}

impl Drop for LineReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn collects_output_and_feeds_stdin() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat; echo err >&2; exit 3"]);
        let out = run_with_timeout(cmd, Some(b"hello"), Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert_eq!(out.stdout, b"hello");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn kills_commands_that_overrun() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; exec sleep 30"]);
        let started = Instant::now();
        let timed_out = run_with_timeout(cmd, None, Duration::from_millis(300))
            .unwrap()
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(timed_out.stdout, "started\n");
    }

    #[test]
    fn reads_lines_as_they_come() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo one; sleep 0.2; echo two; exec sleep 30"]);
        let reader = LineReader::spawn(cmd).unwrap();
        let (line, seen) = reader.wait_for_line(Duration::from_secs(10), |l| l == "two");
        assert_eq!(line.as_deref(), Some("two"));
        assert_eq!(seen, ["one", "two"]);
        assert_eq!(reader.next_line(Duration::from_millis(100)), None);
        reader.stop();
    }
}
