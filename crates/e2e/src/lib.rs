//! The end-to-end suite of r8s: the real `kubectl` (v1.35) and the official Python client
//! against the real `r8s` binary. The tests live in `tests/*.rs` (one binary per area, each with
//! one shared server and a unique namespace per test, plus servers of their own for kill and
//! restart tests); this library holds what they share: output parsing, fixtures and a
//! namespace guard.
//!
//! Run them with `scripts/test.sh`, or after `cargo build --release -p r8s` with
//! `cargo test -p e2e` (`R8S_BIN`, `KUBECTL` and `R8S_PYTHON` override where the binary, kubectl
//! and Python are found; see `testsupport::paths`).

pub mod node;

/// Throwaway etcd for the tests of servers sharing one datastore (the launcher the store's
/// tests use too).
pub use testsupport::etcd;

use serde_json::Value;
use testsupport::{TestServer, unique_name};

/// The Deployment from the issue (and the Kubernetes docs): `nginx-deployment`, 3 replicas of
/// `nginx:1.14.2` with port 80. `{image}` is replaced by [`nginx_deployment`].
const NGINX_DEPLOYMENT_TEMPLATE: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels:
    app: nginx
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: {image}
        ports:
        - containerPort: 80
";

/// The nginx-deployment manifest with the given image.
pub fn nginx_deployment(image: &str) -> String {
    NGINX_DEPLOYMENT_TEMPLATE.replace("{image}", image)
}

/// Splits one line of kubectl's column output into cells. Columns are separated by at least
/// three spaces (kubectl's tabwriter padding), while a header such as `NOMINATED NODE` or a
/// message holds single spaces.
pub fn columns(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// A parsed `kubectl get` table: the header cells and the rows' cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The header cells, e.g. `["NAME", "READY", "STATUS", "RESTARTS", "AGE"]`.
    pub header: Vec<String>,
    /// One entry per row.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Parses kubectl's table output (the first non-empty line is the header).
    ///
    /// kubectl aligns every column of a table to the start of its header cell, so rows are cut
    /// at those offsets: an empty cell stays an empty string in its own column.
    pub fn parse(output: &str) -> Self {
        let mut lines = output.lines().filter(|l| !l.trim().is_empty());
        let Some(header_line) = lines.next() else {
            return Self {
                header: Vec::new(),
                rows: Vec::new(),
            };
        };
        let header = columns(header_line);
        let chars: Vec<char> = header_line.chars().collect();
        let mut starts = Vec::with_capacity(header.len());
        let mut from = 0;
        for cell in &header {
            let cell: Vec<char> = cell.chars().collect();
            let start = (from..chars.len())
                .find(|&i| chars[i..].starts_with(&cell))
                .unwrap_or(from);
            starts.push(start);
            from = start + cell.len();
        }
        let rows = lines
            .map(|line| {
                let chars: Vec<char> = line.chars().collect();
                starts
                    .iter()
                    .enumerate()
                    .map(|(i, &start)| {
                        let end = starts.get(i + 1).copied().unwrap_or(chars.len());
                        let (start, end) = (start.min(chars.len()), end.min(chars.len()));
                        chars[start..end]
                            .iter()
                            .collect::<String>()
                            .trim()
                            .to_string()
                    })
                    .collect()
            })
            .collect();
        Self { header, rows }
    }

    /// The row whose cell in column `column` equals `value`.
    ///
    /// # Panics
    /// If the column or the row does not exist.
    pub fn row_where(&self, column: &str, value: &str) -> &[String] {
        let idx = self.column(column);
        match self
            .rows
            .iter()
            .find(|r| r.get(idx).map(String::as_str) == Some(value))
        {
            Some(row) => row,
            None => panic!("no row with {column}={value} in {self:#?}"),
        }
    }

    /// The row for the object called `name` (column `NAME`).
    pub fn row(&self, name: &str) -> &[String] {
        self.row_where("NAME", name)
    }

    /// The index of the column called `name`.
    ///
    /// # Panics
    /// If there is no such column.
    pub fn column(&self, name: &str) -> usize {
        match self.header.iter().position(|h| h == name) {
            Some(i) => i,
            None => panic!("no column {name} in header {:?}", self.header),
        }
    }

    /// The cell of the object called `name` in column `column`.
    pub fn cell(&self, name: &str, column: &str) -> &str {
        let idx = self.column(column);
        let row = self.row(name);
        match row.get(idx) {
            Some(cell) => cell,
            None => panic!("row {row:?} has no cell for column {column}"),
        }
    }

    /// The values of the `NAME` column, in order.
    pub fn names(&self) -> Vec<&str> {
        let idx = self.column("NAME");
        self.rows
            .iter()
            .filter_map(|r| r.get(idx).map(String::as_str))
            .collect()
    }
}

/// Asserts that `output`'s header is exactly `expected` (cell by cell).
pub fn assert_header(output: &str, expected: &[&str]) -> Table {
    let table = Table::parse(output);
    assert_eq!(
        table.header, expected,
        "unexpected header in kubectl output:\n{output}"
    );
    table
}

/// Whether `s` looks like kubectl's AGE cell (`0s`, `59s`, `3m2s`, `5h`, `10d`, `2y3d`).
pub fn is_age(s: &str) -> bool {
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        let unit = rest[digits..].chars().next();
        if !matches!(unit, Some('s' | 'm' | 'h' | 'd' | 'y')) {
            return false;
        }
        rest = &rest[digits + 1..];
        parts += 1;
    }
    (1..=2).contains(&parts)
}

/// Parses JSON output, panicking with the text when it is not JSON.
pub fn json(output: &str) -> Value {
    match serde_json::from_str(output) {
        Ok(v) => v,
        Err(e) => panic!("not JSON ({e}):\n{output}"),
    }
}

/// Parses YAML output, panicking with the text when it is not YAML.
pub fn yaml(output: &str) -> Value {
    match serde_yaml::from_str(output) {
        Ok(v) => v,
        Err(e) => panic!("not YAML ({e}):\n{output}"),
    }
}

/// A namespace created for one test; deleted (without waiting) when dropped.
#[derive(Debug)]
pub struct Namespace<'a> {
    server: &'a TestServer,
    /// The namespace's name.
    pub name: String,
}

impl<'a> Namespace<'a> {
    /// Creates a namespace called `<prefix>-<unique suffix>` with `kubectl create namespace`.
    ///
    /// # Panics
    /// If kubectl fails or prints something other than `namespace/<name> created`.
    pub fn create(server: &'a TestServer, prefix: &str) -> Self {
        let name = unique_name(prefix);
        let out = server.kubectl_ok(&["create", "namespace", &name]);
        assert_eq!(out.trim(), format!("namespace/{name} created"));
        Self { server, name }
    }

    /// `kubectl <args> -n <namespace>`, panicking on failure; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["-n", &self.name]);
        self.server.kubectl_ok(&all)
    }

    /// `kubectl <args> -n <namespace>`, whatever the outcome.
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        let mut all = args.to_vec();
        all.extend(["-n", &self.name]);
        self.server.kubectl(&all)
    }

    /// `kubectl <args> -n <namespace>` with `input` on stdin, panicking on failure.
    pub fn kubectl_stdin_ok(&self, args: &[&str], input: &str) -> String {
        let mut all = args.to_vec();
        all.extend(["-n", &self.name]);
        self.server.kubectl_stdin_ok(&all, input)
    }

    /// `kubectl <args> -n <namespace>` with `input` on stdin, whatever the outcome.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> std::process::Output {
        let mut all = args.to_vec();
        all.extend(["-n", &self.name]);
        self.server.kubectl_stdin(&all, input)
    }

    /// The server the namespace lives on.
    pub fn server(&self) -> &'a TestServer {
        self.server
    }

    /// `kubectl get <what> -o jsonpath=<path> -n <namespace>`.
    pub fn jsonpath(&self, what: &str, path: &str) -> String {
        self.kubectl_ok(&["get", what, "-o", &format!("jsonpath={path}")])
    }
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        // Best effort, never waiting: the namespace controller finishes in the background.
        let _ = self.server.kubectl_timeout(
            &["delete", "namespace", &self.name, "--wait=false"],
            None,
            std::time::Duration::from_secs(30),
        );
    }
}

/// Calls `f` every 200 ms until it returns `Some`, for at most `secs` seconds.
///
/// # Panics
/// With `what` and the last value `f` saw (its `Err`), if the time runs out.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                if std::time::Instant::now() > deadline {
                    panic!("timed out after {secs} s waiting for {what}; last: {last}");
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `String::from_utf8_lossy` for a command's stderr.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `String::from_utf8_lossy` for a command's stdout.
pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_columns_on_tabwriter_padding() {
        let out = "NAME   READY   STATUS    RESTARTS   AGE   IP       NODE     NOMINATED NODE   READINESS GATES\n\
                   p1     0/1     Pending   0          5s    <none>   <none>   <none>           <none>\n";
        let t = Table::parse(out);
        assert_eq!(t.header.len(), 9);
        assert_eq!(t.header[7], "NOMINATED NODE");
        assert_eq!(t.cell("p1", "STATUS"), "Pending");
        assert_eq!(t.cell("p1", "READINESS GATES"), "<none>");
        assert_eq!(t.names(), ["p1"]);
    }

    #[test]
    fn keeps_empty_cells_in_their_column() {
        let out = "NAME    STATUS   ROLES    AGE   VERSION\n\
                   node1   Unknown  <none>   5s    \n\
                   p1               <none>   1s    v1.35\n";
        let t = Table::parse(out);
        assert_eq!(t.row("node1"), ["node1", "Unknown", "<none>", "5s", ""]);
        assert_eq!(t.row("p1"), ["p1", "", "<none>", "1s", "v1.35"]);
    }

    #[test]
    fn recognises_ages() {
        for ok in ["0s", "59s", "3m2s", "5h", "10d", "2y3d"] {
            assert!(is_age(ok), "{ok}");
        }
        for bad in ["", "s", "5", "5x", "1m2s3h", "<none>"] {
            assert!(!is_age(bad), "{bad}");
        }
    }

    #[test]
    fn fixture_has_the_requested_image() {
        let d = yaml(&nginx_deployment("nginx:1.14.2"));
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.14.2"
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
            80
        );
    }
}
