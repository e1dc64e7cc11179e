//! Test support for r8s: start the real `r8s` binary and drive it with the real `kubectl`.
//!
//! Start with [`TestServer`]: it runs `r8s server` on a free loopback port with a fresh data
//! directory, waits for `/readyz`, and kills the process (only that PID) when dropped — or,
//! for a server kept in a `static`, when the test process exits (see [`TestServer::start`]).
//!
//! # Layout
//! - [`paths`]: where the `r8s` binary, the real kubectl and the venv's Python are found
//!   (`R8S_BIN`, `KUBECTL`, `R8S_PYTHON`, else the paths `scripts/install-deps.sh` creates).
//! - [`etcd`]: throwaway etcd processes (one member plain or TLS, or a cluster whose members
//!   can be stopped, killed, paused and started again) for the store and end-to-end tests.
//! - [`kubeconfig`]: reads the server URL and credentials out of a kubeconfig file.
//! - [`http`]: a small blocking HTTPS/1.1 client, with or without the client certificate, for
//!   tests that need exact status codes (401, 400, 413, …).
//! - [`process`]: running commands with a deadline, and reading a long-running command's output
//!   line by line (`kubectl get -w`).
//! - [`server`]: [`TestServer`] itself, plus [`shared_server`] / [`new_server`], which skip
//!   (return `None`) when kubectl is missing and `CI` is unset.

pub mod etcd;
pub mod http;
pub mod kubeconfig;
pub mod paths;
pub mod process;
pub mod server;

pub use http::{HttpClient, HttpResponse};
pub use kubeconfig::Kubeconfig;
pub use process::{LineReader, TimedOut};
pub use server::{
    TestServer, WITH_AGENT, new_server, new_server_with_args, shared_server, unique_name,
};

/// Everything that can go wrong while starting or talking to a test server.
#[derive(Debug, thiserror::Error)]
pub enum TestSupportError {
    /// A file or process operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig could not be read or lacks a field.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// TLS setup (certificates, keys) failed.
    #[error("tls: {0}")]
    Tls(String),
    /// The HTTP response could not be parsed.
    #[error("malformed http response: {0}")]
    Http(String),
    /// A required program or file is missing.
    #[error("{0}")]
    NotFound(String),
    /// The server did not become ready, or exited.
    #[error("r8s server: {0}")]
    Server(String),
}

impl TestSupportError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
