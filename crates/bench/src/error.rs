//! The benchmark's error type.

/// Everything that stops a benchmark run (failed requests inside a measured phase are counted,
/// not raised: see [`crate::stats::ErrorTally`]).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file, socket or process operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS material could not be loaded or the handshake failed.
    #[error("tls: {0}")]
    Tls(String),
    /// An HTTP exchange failed below the status-code level (connection, protocol).
    #[error("http: {0}")]
    Http(String),
    /// The r8s server did not start, did not become ready, or exited.
    #[error("r8s server: {0}")]
    Server(String),
    /// The etcd the benchmark starts is missing, exited or never became healthy.
    #[error("etcd: {0}")]
    Etcd(String),
    /// The server answered, but not as a phase needs to continue (e.g. the LIST lacks items).
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

impl BenchError {
    /// An [`BenchError::Io`] with a description of what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
