//! Container logs: reads a CRI log file (`<RFC3339Nano> <stdout|stderr> <P|F> <message>` per
//! line) with upstream kubelet semantics (`pkg/kubelet/kuberuntime/logs/logs.go`): tail lines,
//! since time, timestamps, byte limit and follow (until the container exits or its log is
//! rotated away).

use std::io::SeekFrom;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;

/// How often a followed log file is polled for new data.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How often a followed container is checked for having exited.
const STATE_CHECK: Duration = Duration::from_secs(1);

/// Options of one log request (the kubelet's view of `PodLogOptions`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    /// Keep streaming as the file grows.
    pub follow: bool,
    /// Only the last N lines of the file (`None`: all).
    pub tail: Option<u64>,
    /// Only messages at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Prefix every line with its RFC3339Nano timestamp and a space.
    pub timestamps: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

impl LogOptions {
    /// Parses the kubelet's `/containerLogs` query (the `PodLogOptions` fields); `Err` is the
    /// user-facing message.
    pub fn from_query(query: Option<&str>) -> Result<LogOptions, String> {
        let mut o = LogOptions::default();
        let mut since_seconds: Option<i64> = None;
        let mut since_time: Option<DateTime<Utc>> = None;
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let flag = || matches!(v.as_ref(), "true" | "1" | "True" | "TRUE" | "t" | "T");
            let int = |name: &str| -> Result<i64, String> {
                v.parse::<i64>()
                    .map_err(|_| format!("invalid value {v:?} for {name}: must be an integer"))
            };
            match k.as_ref() {
                "follow" => o.follow = flag(),
                "timestamps" => o.timestamps = flag(),
                "tailLines" if !v.is_empty() => {
                    let n = int("tailLines")?;
                    if n < 0 {
                        return Err(
                            "tailLines: Invalid value: must be greater than or equal to 0".into(),
                        );
                    }
                    o.tail = Some(n as u64);
                }
                "limitBytes" if !v.is_empty() => {
                    let n = int("limitBytes")?;
                    if n < 1 {
                        return Err("limitBytes: Invalid value: must be greater than 0".into());
                    }
                    o.limit_bytes = Some(n as u64);
                }
                "sinceSeconds" if !v.is_empty() => {
                    let n = int("sinceSeconds")?;
                    if n < 1 {
                        return Err("sinceSeconds: Invalid value: must be greater than 0".into());
                    }
                    since_seconds = Some(n);
                }
                "sinceTime" if !v.is_empty() => {
                    let t = DateTime::parse_from_rfc3339(&v)
                        .map_err(|e| format!("invalid sinceTime {v:?}: {e}"))?;
                    since_time = Some(t.with_timezone(&Utc));
                }
                _ => {}
            }
        }
        if since_seconds.is_some() && since_time.is_some() {
            return Err("at most one of sinceTime or sinceSeconds may be specified".into());
        }
        o.since =
            since_time.or_else(|| since_seconds.map(|s| Utc::now() - chrono::Duration::seconds(s)));
        Ok(o)
    }
}

/// One parsed CRI log line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine<'a> {
    /// When it was written.
    pub timestamp: DateTime<Utc>,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// Whether the line continues in the next record (tag `P`).
    pub partial: bool,
    /// The content; a full line keeps its trailing newline, a partial one has none.
    pub log: &'a [u8],
}

/// Parses one CRI log record (with its trailing newline, if any), like upstream's
/// `parseCRILog`.
pub fn parse_cri_line(line: &[u8]) -> Result<LogLine<'_>, String> {
    let next = |rest: &[u8], what: &str| -> Result<usize, String> {
        rest.iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| format!("{what} is not found"))
    };
    let i = next(line, "timestamp")?;
    let ts = std::str::from_utf8(&line[..i]).map_err(|_| "timestamp is not valid".to_string())?;
    let timestamp = DateTime::parse_from_rfc3339(ts)
        .map_err(|e| format!("unexpected timestamp format {ts:?}: {e}"))?
        .with_timezone(&Utc);
    let rest = &line[i + 1..];
    let i = next(rest, "stream type")?;
    let stream = match &rest[..i] {
        b"stdout" => "stdout",
        b"stderr" => "stderr",
        other => {
            return Err(format!(
                "unexpected stream type {:?}",
                String::from_utf8_lossy(other)
            ));
        }
    };
    let rest = &rest[i + 1..];
    let i = next(rest, "log tag")?;
    let partial = rest[..i].split(|b| *b == b':').next() == Some(b"P");
    let mut log = &rest[i + 1..];
    if partial && log.last() == Some(&b'\n') {
        log = &log[..log.len() - 1];
    }
    Ok(LogLine {
        timestamp,
        stream,
        partial,
        log,
    })
}

/// Formats a timestamp like Go's `time.RFC3339Nano` (trailing zeros of the fraction dropped).
pub fn format_rfc3339_nano(t: &DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// The offset where the last `n` lines of `f` start (upstream `tail.FindTailLineStartIndex`:
/// counts newlines from the end).
pub async fn tail_start(f: &mut tokio::fs::File, n: u64) -> std::io::Result<u64> {
    const BLOCK: u64 = 1024;
    let size = f.seek(SeekFrom::End(0)).await?;
    let mut left = size;
    let mut cnt: u64 = 0;
    let mut buf: Vec<u8> = Vec::new();
    let mut right = size;
    while right > 0 && cnt <= n {
        left = right.saturating_sub(BLOCK);
        buf.resize((right - left) as usize, 0);
        f.seek(SeekFrom::Start(left)).await?;
        f.read_exact(&mut buf).await?;
        cnt += buf.iter().filter(|b| **b == b'\n').count() as u64;
        right = left;
    }
    let mut pos = 0usize;
    while cnt > n {
        match buf[pos..].iter().position(|b| *b == b'\n') {
            Some(i) => pos += i + 1,
            None => break,
        }
        cnt -= 1;
    }
    Ok(left + pos as u64)
}

/// Why reading stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum LogEnd {
    /// The end of the file (not following).
    Eof,
    /// `limitBytes` was reached.
    Limit,
    /// The reader of the output went away.
    Closed,
    /// The followed container is no longer running, or its log was rotated.
    Stopped,
}

/// Writes formatted records, applying `since`, `timestamps` and `limitBytes`.
struct Writer {
    opts: LogOptions,
    remain: Option<u64>,
    /// Whether the next record of each stream starts a new line (stdout, stderr).
    new_line: [bool; 2],
    tx: mpsc::Sender<Bytes>,
}

impl Writer {
    /// Writes one record; `Err` ends the stream.
    async fn write(&mut self, line: &LogLine<'_>) -> Result<(), LogEnd> {
        let idx = usize::from(line.stream == "stderr");
        let add_prefix = self.new_line[idx];
        self.new_line[idx] = !line.partial;
        if let Some(since) = self.opts.since
            && line.timestamp < since
        {
            return Ok(());
        }
        let mut out = Vec::with_capacity(line.log.len() + 32);
        if self.opts.timestamps && add_prefix {
            out.extend_from_slice(format_rfc3339_nano(&line.timestamp).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(line.log);
        let mut done = false;
        if let Some(remain) = self.remain.as_mut() {
            if out.len() as u64 >= *remain {
                out.truncate(*remain as usize);
                done = true;
            }
            *remain -= out.len() as u64;
        }
        if !out.is_empty() && self.tx.send(Bytes::from(out)).await.is_err() {
            return Err(LogEnd::Closed);
        }
        if done { Err(LogEnd::Limit) } else { Ok(()) }
    }
}

/// Whether the followed container still runs; consulted about once a second.
pub trait RunningCheck: Send {
    /// `false` ends a follow.
    fn running(&mut self) -> impl std::future::Future<Output = bool> + Send;
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Streams the log at `path` into `tx` with `opts`; returns why it stopped.
pub async fn read_logs(
    path: &Path,
    opts: &LogOptions,
    tx: mpsc::Sender<Bytes>,
    mut check: impl RunningCheck,
) -> std::io::Result<LogEnd> {
    let mut f = tokio::fs::File::open(path).await?;
    let opened = f.metadata().await?;
    let start = match opts.tail {
        Some(n) => tail_start(&mut f, n).await?,
        None => 0,
    };
    f.seek(SeekFrom::Start(start)).await?;
    let mut reader = BufReader::new(f);
    let mut w = Writer {
        remain: opts.limit_bytes,
        opts: opts.clone(),
        new_line: [true, true],
        tx,
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut last_check = tokio::time::Instant::now();
    loop {
        let n = reader.read_until(b'\n', &mut pending).await?;
        if n > 0 && pending.last() == Some(&b'\n') {
            match parse_cri_line(&pending) {
                Ok(line) => {
                    if let Err(end) = w.write(&line).await {
                        return Ok(end);
                    }
                }
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "skipping malformed log line")
                }
            }
            pending.clear();
            continue;
        }
        if n > 0 {
            // An incomplete record at the end of the file: wait for the rest.
            continue;
        }
        // End of file.
        if !opts.follow {
            if !pending.is_empty()
                && let Ok(line) = parse_cri_line(&pending)
                && let Err(end) = w.write(&line).await
            {
                return Ok(end);
            }
            return Ok(LogEnd::Eof);
        }
        if w.tx.is_closed() {
            return Ok(LogEnd::Closed);
        }
        if last_check.elapsed() >= STATE_CHECK {
            last_check = tokio::time::Instant::now();
            let rotated = match tokio::fs::metadata(path).await {
                Ok(now) => !same_file(&opened, &now),
                Err(_) => true,
            };
            if rotated || !check.running().await {
                // Drain what was written meanwhile, then stop.
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest).await?;
                pending.extend_from_slice(&rest);
                for rec in pending.split_inclusive(|b| *b == b'\n') {
                    if let Ok(line) = parse_cri_line(rec)
                        && let Err(end) = w.write(&line).await
                    {
                        return Ok(end);
                    }
                }
                return Ok(LogEnd::Stopped);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = w.tx.closed() => return Ok(LogEnd::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    struct Always(bool);
    impl RunningCheck for Always {
        async fn running(&mut self) -> bool {
            self.0
        }
    }

    fn file(lines: &[&str]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        for l in lines {
            f.write_all(l.as_bytes()).expect("write");
        }
        f
    }

    async fn read(path: &Path, opts: LogOptions) -> (String, LogEnd) {
        let (tx, mut rx) = mpsc::channel(1024);
        let end = read_logs(path, &opts, tx, Always(false))
            .await
            .expect("read logs");
        let mut out = Vec::new();
        while let Ok(b) = rx.try_recv() {
            out.extend_from_slice(&b);
        }
        (String::from_utf8(out).expect("utf8"), end)
    }

    const LOG: &[&str] = &[
        "2026-11-26T12:00:00.100000000Z stdout F one\n",
        "2026-11-26T12:00:01.000000000Z stderr F two\n",
        "2026-11-26T12:00:02.123456789Z stdout P thr\n",
        "2026-11-26T12:00:02.223456789Z stdout F ee\n",
        "2026-11-26T12:00:03Z stdout F four\n",
    ];

    #[test]
    fn parses_records() {
        let l = parse_cri_line(b"2026-11-26T12:26:47.164381344Z stdout F hello world\n")
            .expect("parse");
        assert_eq!(l.stream, "stdout");
        assert!(!l.partial);
        assert_eq!(l.log, b"hello world\n");
        assert_eq!(l.timestamp.timestamp_subsec_nanos(), 164381344);
        let p = parse_cri_line(b"2026-11-26T12:26:47Z stderr P part\n").expect("parse");
        assert!(p.partial);
        assert_eq!(p.log, b"part");
        assert_eq!(p.stream, "stderr");
        assert!(parse_cri_line(b"2026-11-26T12:26:47Z stdin F x\n").is_err());
        assert!(parse_cri_line(b"garbage\n").is_err());
        assert!(parse_cri_line(b"notatime stdout F x\n").is_err());
        // Forward-compatible tags.
        let t = parse_cri_line(b"2026-11-26T12:26:47Z stdout P:x y\n").expect("parse");
        assert!(t.partial);
    }

    #[test]
    fn formats_like_go() {
        let t = DateTime::parse_from_rfc3339("2026-11-26T12:00:02.123450000Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(format_rfc3339_nano(&t), "2026-11-26T12:00:02.12345Z");
        let t = DateTime::parse_from_rfc3339("2026-11-26T12:00:03Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(format_rfc3339_nano(&t), "2026-11-26T12:00:03Z");
    }

    #[tokio::test]
    async fn reads_all_and_joins_partials() {
        let f = file(LOG);
        let (out, end) = read(f.path(), LogOptions::default()).await;
        assert_eq!(out, "one\ntwo\nthree\nfour\n");
        assert_eq!(end, LogEnd::Eof);
    }

    #[tokio::test]
    async fn timestamps_prefix_only_line_starts() {
        let f = file(LOG);
        let opts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        let (out, _) = read(f.path(), opts).await;
        assert_eq!(
            out,
            "2026-11-26T12:00:00.1Z one\n2026-11-26T12:00:01Z two\n2026-11-26T12:00:02.123456789Z three\n2026-11-26T12:00:03Z four\n"
        );
    }

    #[tokio::test]
    async fn tail_counts_file_lines() {
        let f = file(LOG);
        for (n, want) in [
            (0, ""),
            (1, "four\n"),
            (2, "ee\nfour\n"),
            (3, "three\nfour\n"),
            (5, "one\ntwo\nthree\nfour\n"),
            (100, "one\ntwo\nthree\nfour\n"),
        ] {
            let opts = LogOptions {
                tail: Some(n),
                ..Default::default()
            };
            assert_eq!(read(f.path(), opts).await.0, want, "tail {n}");
        }
    }

    #[tokio::test]
    async fn tail_over_many_blocks() {
        let lines: Vec<String> = (0..500)
            .map(|i| format!("2026-11-26T12:00:00Z stdout F line {i}\n"))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let f = file(&refs);
        let opts = LogOptions {
            tail: Some(3),
            ..Default::default()
        };
        assert_eq!(
            read(f.path(), opts).await.0,
            "line 497\nline 498\nline 499\n"
        );
    }

    #[tokio::test]
    async fn since_filters_by_time() {
        let f = file(LOG);
        let since = DateTime::parse_from_rfc3339("2026-11-26T12:00:01Z")
            .expect("time")
            .with_timezone(&Utc);
        let opts = LogOptions {
            since: Some(since),
            ..Default::default()
        };
        assert_eq!(read(f.path(), opts).await.0, "two\nthree\nfour\n");
    }

    #[tokio::test]
    async fn limit_bytes_cuts() {
        let f = file(LOG);
        let opts = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        let (out, end) = read(f.path(), opts).await;
        assert_eq!(out, "one\ntw");
        assert_eq!(end, LogEnd::Limit);
    }

    #[tokio::test]
    async fn follow_streams_appended_lines_until_exit() {
        let mut f = file(&LOG[..1]);
        let path = f.path().to_path_buf();
        let (tx, mut rx) = mpsc::channel(16);
        struct Flag(std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl RunningCheck for Flag {
            async fn running(&mut self) -> bool {
                self.0.load(std::sync::atomic::Ordering::SeqCst)
            }
        }
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let task = tokio::spawn({
            let running = Flag(running.clone());
            async move { read_logs(&path, &opts, tx, running).await }
        });
        assert_eq!(
            rx.recv().await.expect("first"),
            Bytes::from_static(b"one\n")
        );
        f.write_all(b"2026-11-26T12:00:05Z stdout F later\n")
            .expect("append");
        f.flush().expect("flush");
        let got = tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .expect("line arrives while following")
            .expect("open");
        assert_eq!(got, Bytes::from_static(b"later\n"));
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        let end = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("follow ends after exit")
            .expect("join")
            .expect("read");
        assert_eq!(end, LogEnd::Stopped);
    }

    #[tokio::test]
    async fn follow_ends_when_reader_goes_away() {
        let f = file(LOG);
        let (tx, rx) = mpsc::channel(16);
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let path = f.path().to_path_buf();
        let task = tokio::spawn(async move { read_logs(&path, &opts, tx, Always(true)).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(rx);
        let end = tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("ends")
            .expect("join")
            .expect("read");
        assert_eq!(end, LogEnd::Closed);
    }

    #[test]
    fn query_parsing() {
        let o = LogOptions::from_query(Some(
            "follow=true&tailLines=10&timestamps=1&limitBytes=5&sinceTime=2026-11-26T12%3A00%3A00Z",
        ))
        .expect("parse");
        assert!(o.follow && o.timestamps);
        assert_eq!(o.tail, Some(10));
        assert_eq!(o.limit_bytes, Some(5));
        assert!(o.since.is_some());
        assert!(LogOptions::from_query(Some("tailLines=-1")).is_err());
        assert!(LogOptions::from_query(Some("tailLines=x")).is_err());
        assert!(
            LogOptions::from_query(Some("sinceSeconds=1&sinceTime=2026-11-26T12:00:00Z")).is_err()
        );
    }
}
