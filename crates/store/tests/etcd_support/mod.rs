//! The etcd store tests' side of `testsupport::etcd` (the launcher the end-to-end tests use
//! too): [`EtcdOptions`] and connected [`EtcdStore`]s for a launched etcd, and async wrappers
//! around the launcher's blocking calls (run in `block_in_place`: every test here runs on the
//! multi-threaded runtime, so other tasks, such as an open watch, go on meanwhile).
//!
//! The tests fail, rather than skip, when `/usr/bin/etcd` is missing: `scripts/install-deps.sh`
//! installs it (Debian package `etcd-server`).

#![allow(dead_code)] // Each test file uses a different part.

use std::ops::Deref;
use std::time::Duration;

use store::etcd::{EtcdOptions, EtcdStore, EtcdTls};
use testsupport::etcd::TlsFiles;

/// A running single-member etcd (see [`testsupport::etcd::Etcd`], which it derefs to).
pub struct Etcd(testsupport::etcd::Etcd);

impl Deref for Etcd {
    type Target = testsupport::etcd::Etcd;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Etcd {
    /// Starts a plain-HTTP etcd and waits until it is healthy.
    pub async fn start() -> Etcd {
        Etcd(tokio::task::block_in_place(testsupport::etcd::Etcd::start))
    }

    /// Starts an etcd serving clients over TLS and requiring client certificates signed by the
    /// CA of `tls`.
    pub async fn start_tls(tls: &TlsFiles) -> Etcd {
        Etcd(tokio::task::block_in_place(|| {
            testsupport::etcd::Etcd::start_tls(tls)
        }))
    }

    /// The options reaching this etcd (without TLS).
    pub fn options(&self) -> EtcdOptions {
        EtcdOptions {
            endpoints: vec![self.endpoint.clone()],
            connect_timeout: Duration::from_secs(5),
            ..EtcdOptions::default()
        }
    }

    /// Connects a store with the default options and the given watch buffer.
    pub async fn store(&self, watch_buffer: usize) -> EtcdStore {
        EtcdStore::connect(EtcdOptions {
            watch_buffer,
            ..self.options()
        })
        .await
        .expect("connect to etcd")
    }
}

/// The TLS options of a client of a server made with [`testsupport::etcd::make_tls`].
pub fn client_tls(tls: &TlsFiles) -> EtcdTls {
    EtcdTls {
        ca_file: Some(tls.ca.clone()),
        cert_file: Some(tls.client_cert.clone()),
        key_file: Some(tls.client_key.clone()),
    }
}

/// A throwaway etcd cluster (see [`testsupport::etcd::EtcdCluster`], which it derefs to).
pub struct EtcdCluster(testsupport::etcd::EtcdCluster);

impl Deref for EtcdCluster {
    type Target = testsupport::etcd::EtcdCluster;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one is healthy (which needs a leader).
    pub async fn start(n: usize) -> EtcdCluster {
        EtcdCluster(tokio::task::block_in_place(|| {
            testsupport::etcd::EtcdCluster::start(n)
        }))
    }

    /// Waits until the running members agree on a leader, and returns it.
    pub async fn wait_leader(&self) -> usize {
        tokio::task::block_in_place(|| self.0.wait_leader())
    }

    /// Stops member `i` gracefully (SIGTERM by its PID, SIGKILL after 10 s), keeping its data.
    pub async fn stop(&self, i: usize) {
        tokio::task::block_in_place(|| self.0.stop_member(i));
    }

    /// Starts member `i` again with its data and waits until it is healthy.
    pub async fn restart(&self, i: usize) {
        tokio::task::block_in_place(|| self.0.start_member(i));
    }

    /// Connects a store to every member, member `first` first (the one it uses until it fails).
    pub async fn store_from(&self, first: usize) -> EtcdStore {
        EtcdStore::connect(EtcdOptions {
            endpoints: self.endpoints_from(first),
            connect_timeout: Duration::from_secs(5),
            watch_buffer: 10_000,
            ..EtcdOptions::default()
        })
        .await
        .expect("connect to the etcd cluster")
    }
}
