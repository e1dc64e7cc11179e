//! `r8s datastore snapshot | restore | migrate`: offline maintenance of the server's datastore
//! (the embedded SQLite database `<data-dir>/server/db/state.db`, or an external etcd).
//!
//! Run them while no server uses the SQLite database (an etcd can be read while servers run).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use store::Store;
use store::etcd::{EtcdOptions, EtcdStore};
use store::sqlite::{SqliteOptions, SqliteStore};

/// Store keys of the node Leases (`kube-node-lease`): heartbeats, whose commits may be deferred.
const NODE_LEASES_PREFIX: &str = "/registry/leases/kube-node-lease/";
use store::transfer;

/// Arguments of `r8s datastore`.
#[derive(Args)]
pub struct DatastoreArgs {
    #[command(subcommand)]
    command: DatastoreCommand,
}

#[derive(Subcommand)]
enum DatastoreCommand {
    /// Write every object of the datastore, read at one revision, to a snapshot file (stop the
    /// server first when it uses the SQLite database; an etcd can be read while servers run).
    Snapshot(SnapshotArgs),
    /// Restore a snapshot file into an empty datastore (a non-empty one is refused).
    Restore(RestoreArgs),
    /// Copy every object from one datastore into another, empty one (SQLite <-> etcd).
    Migrate(MigrateArgs),
}

/// Which datastore to use: the data directory's SQLite database, or an etcd.
#[derive(Args)]
struct DatastoreFlags {
    /// Folder that holds the server's state (the SQLite database is
    /// `<data-dir>/server/db/state.db`).
    #[arg(
        long,
        short = 'd',
        env = "R8S_DATA_DIR",
        default_value = "/var/lib/r8s"
    )]
    data_dir: PathBuf,
    #[command(flatten)]
    etcd: EtcdFlags,
}

/// An external etcd (k3s's `--datastore-*` flags), shared by `r8s server` and `r8s datastore`.
#[derive(Args)]
pub struct EtcdFlags {
    /// External etcd (k3s `--datastore-endpoint`): comma-separated client URLs, e.g.
    /// `https://a:2379,https://b:2379`. Empty: the embedded SQLite database in the data
    /// directory.
    #[arg(long, env = "R8S_DATASTORE_ENDPOINT", default_value = "")]
    pub datastore_endpoint: String,
    /// CA bundle (PEM) that signed the etcd servers' certificates.
    #[arg(long, env = "R8S_DATASTORE_CAFILE")]
    pub datastore_cafile: Option<PathBuf>,
    /// Client certificate (PEM) presented to etcd.
    #[arg(long, env = "R8S_DATASTORE_CERTFILE")]
    pub datastore_certfile: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(long, env = "R8S_DATASTORE_KEYFILE")]
    pub datastore_keyfile: Option<PathBuf>,
}

#[derive(Args)]
struct SnapshotArgs {
    #[command(flatten)]
    store: DatastoreFlags,
    /// The snapshot file to write (`-` for standard output).
    file: PathBuf,
}

#[derive(Args)]
struct RestoreArgs {
    #[command(flatten)]
    store: DatastoreFlags,
    /// The snapshot file to read (`-` for standard input).
    file: PathBuf,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["from_data_dir", "from_datastore_endpoint"])))]
#[command(group(clap::ArgGroup::new("to").required(true).args(["to_data_dir", "to_datastore_endpoint"])))]
struct MigrateArgs {
    /// Source: the SQLite database of this data directory.
    #[arg(long)]
    from_data_dir: Option<PathBuf>,
    /// Source: an etcd (comma-separated client URLs).
    #[arg(long)]
    from_datastore_endpoint: Option<String>,
    /// CA bundle (PEM) of the source etcd.
    #[arg(long, requires = "from_datastore_endpoint")]
    from_datastore_cafile: Option<PathBuf>,
    /// Client certificate (PEM) for the source etcd.
    #[arg(long, requires = "from_datastore_endpoint")]
    from_datastore_certfile: Option<PathBuf>,
    /// Private key (PEM) of the client certificate for the source etcd.
    #[arg(long, requires = "from_datastore_endpoint")]
    from_datastore_keyfile: Option<PathBuf>,
    /// Target: the SQLite database of this data directory (created if missing).
    #[arg(long)]
    to_data_dir: Option<PathBuf>,
    /// Target: an etcd (comma-separated client URLs).
    #[arg(long)]
    to_datastore_endpoint: Option<String>,
    /// CA bundle (PEM) of the target etcd.
    #[arg(long, requires = "to_datastore_endpoint")]
    to_datastore_cafile: Option<PathBuf>,
    /// Client certificate (PEM) for the target etcd.
    #[arg(long, requires = "to_datastore_endpoint")]
    to_datastore_certfile: Option<PathBuf>,
    /// Private key (PEM) of the client certificate for the target etcd.
    #[arg(long, requires = "to_datastore_endpoint")]
    to_datastore_keyfile: Option<PathBuf>,
}

/// Where a datastore is.
pub(crate) enum Location {
    /// `<data-dir>/server/db/state.db`.
    Sqlite(PathBuf),
    /// An etcd.
    Etcd {
        endpoint: String,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    },
}

impl Location {
    pub(crate) fn new(
        data_dir: Option<&Path>,
        endpoint: Option<&str>,
        ca: Option<&PathBuf>,
        cert: Option<&PathBuf>,
        key: Option<&PathBuf>,
    ) -> Self {
        match endpoint.filter(|e| !e.is_empty()) {
            Some(endpoint) => Location::Etcd {
                endpoint: endpoint.to_owned(),
                ca: ca.cloned(),
                cert: cert.cloned(),
                key: key.cloned(),
            },
            None => Location::Sqlite(
                data_dir
                    .unwrap_or_else(|| Path::new("/var/lib/r8s"))
                    .join("server")
                    .join("db")
                    .join("state.db"),
            ),
        }
    }

    fn from_flags(f: &DatastoreFlags) -> Self {
        Self::new(
            Some(&f.data_dir),
            Some(&f.etcd.datastore_endpoint),
            f.etcd.datastore_cafile.as_ref(),
            f.etcd.datastore_certfile.as_ref(),
            f.etcd.datastore_keyfile.as_ref(),
        )
    }

    /// Opens the datastore. A source SQLite database must exist; a target one is created (with
    /// its directories).
    pub(crate) async fn open(&self, create: bool) -> anyhow::Result<Opened> {
        match self {
            Location::Sqlite(db) => {
                if create {
                    if let Some(dir) = db.parent() {
                        std::fs::create_dir_all(dir)
                            .with_context(|| format!("creating {}", dir.display()))?;
                    }
                } else if !db.is_file() {
                    bail!("no datastore: {} does not exist", db.display());
                }
                let opts = SqliteOptions {
                    // Node heartbeats (kubelets renew their Lease every 10 s and tolerate 40 s)
                    // share commits and fsyncs instead of paying one each: with 5,000 nodes,
                    // about 50 renewals per commit (etcd's backend, too, commits its batch
                    // every 100 ms).
                    deferrable_prefixes: vec![NODE_LEASES_PREFIX.to_owned()],
                    deferred_commit_window: Duration::from_millis(100),
                    // Checkpoint once a second (and restart the WAL past 32 MiB) rather than
                    // every 100 ms: a page rewritten by many commits (the Leases' pages are, all
                    // the time) is copied back to the database once per checkpoint.
                    checkpoint_interval: Duration::from_secs(1),
                    wal_restart_frames: 8192,
                    ..SqliteOptions::default()
                };
                let store = SqliteStore::open(db, opts)
                    .await
                    .with_context(|| format!("opening {}", db.display()))?;
                Ok(Opened::Sqlite(Arc::new(store)))
            }
            Location::Etcd {
                endpoint,
                ca,
                cert,
                key,
            } => {
                let opts = EtcdOptions::from_datastore_flags(
                    endpoint,
                    ca.clone(),
                    cert.clone(),
                    key.clone(),
                )
                .context("invalid datastore endpoint / CA / certificate / key flags")?;
                let store = EtcdStore::connect(opts)
                    .await
                    .with_context(|| format!("connecting to etcd at {endpoint}"))?;
                Ok(Opened::Etcd(Arc::new(store)))
            }
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(db) => write!(f, "{}", db.display()),
            Location::Etcd { endpoint, .. } => write!(f, "etcd {endpoint}"),
        }
    }
}

/// An open datastore: the embedded SQLite database (one server) or an etcd (any number).
pub(crate) enum Opened {
    Sqlite(Arc<SqliteStore>),
    Etcd(Arc<EtcdStore>),
}

impl Opened {
    fn store(&self) -> &dyn Store {
        match self {
            Opened::Sqlite(s) => s.as_ref(),
            Opened::Etcd(e) => e.as_ref(),
        }
    }

    /// The store, shared (for the API server).
    pub(crate) fn shared(&self) -> Arc<dyn Store> {
        match self {
            Opened::Sqlite(s) => s.clone(),
            Opened::Etcd(e) => e.clone(),
        }
    }

    /// Closes the store (SQLite: waits until everything is on disk).
    pub(crate) async fn close(&self) {
        match self {
            Opened::Sqlite(s) => s.close().await,
            Opened::Etcd(e) => e.close(),
        }
    }
}

/// Runs `r8s datastore ...`.
pub async fn run(args: DatastoreArgs) -> anyhow::Result<()> {
    match args.command {
        DatastoreCommand::Snapshot(a) => snapshot(a).await,
        DatastoreCommand::Restore(a) => restore(a).await,
        DatastoreCommand::Migrate(a) => migrate(a).await,
    }
}

async fn snapshot(args: SnapshotArgs) -> anyhow::Result<()> {
    let from = Location::from_flags(&args.store);
    let opened = from.open(false).await?;
    let result = if args.file == Path::new("-") {
        transfer::write_snapshot(opened.store(), tokio::io::stdout()).await
    } else {
        // Written next to the target and renamed: a failed snapshot leaves no partial file.
        let tmp = partial_path(&args.file);
        let file = tokio::fs::File::create(&tmp)
            .await
            .with_context(|| format!("creating {}", tmp.display()))?;
        let result = write_and_sync(opened.store(), file).await;
        match &result {
            Ok(_) => tokio::fs::rename(&tmp, &args.file).await.with_context(|| {
                format!("renaming {} to {}", tmp.display(), args.file.display())
            })?,
            Err(_) => {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
        }
        result
    };
    opened.close().await;
    let info = result.with_context(|| format!("writing a snapshot of {from}"))?;
    let summary = format!(
        "copied {} keys at revision {} from {from} to {}",
        info.keys,
        info.revision,
        args.file.display()
    );
    // The snapshot itself may be on standard output.
    if args.file == Path::new("-") {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    Ok(())
}

/// `<file>.partial`.
fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

async fn write_and_sync(
    store: &dyn Store,
    mut file: tokio::fs::File,
) -> Result<transfer::SnapshotInfo, transfer::TransferError> {
    let info = transfer::write_snapshot(store, &mut file).await?;
    file.sync_all().await?;
    Ok(info)
}

async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let to = Location::from_flags(&args.store);
    // Open the file first: a missing snapshot should not create an empty database.
    let input: Box<dyn tokio::io::AsyncRead + Send + Unpin> = if args.file == Path::new("-") {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(
            tokio::fs::File::open(&args.file)
                .await
                .with_context(|| format!("opening {}", args.file.display()))?,
        )
    };
    let opened = to.open(true).await?;
    let result = transfer::read_snapshot(input, opened.store()).await;
    opened.close().await;
    let info = result.with_context(|| format!("restoring {} into {to}", args.file.display()))?;
    println!(
        "copied {} keys at revision {} from {} to {to}",
        info.keys,
        info.revision,
        args.file.display()
    );
    Ok(())
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let from = Location::new(
        args.from_data_dir.as_deref(),
        args.from_datastore_endpoint.as_deref(),
        args.from_datastore_cafile.as_ref(),
        args.from_datastore_certfile.as_ref(),
        args.from_datastore_keyfile.as_ref(),
    );
    let to = Location::new(
        args.to_data_dir.as_deref(),
        args.to_datastore_endpoint.as_deref(),
        args.to_datastore_cafile.as_ref(),
        args.to_datastore_certfile.as_ref(),
        args.to_datastore_keyfile.as_ref(),
    );
    if let (Location::Sqlite(a), Location::Sqlite(b)) = (&from, &to)
        && a == b
    {
        bail!(
            "the source and the target are the same database {}",
            a.display()
        );
    }
    let source = from.open(false).await?;
    let target = match to.open(true).await {
        Ok(t) => t,
        Err(e) => {
            source.close().await;
            return Err(e);
        }
    };
    let result =
        transfer::copy_all(source.store(), target.store(), transfer::REGISTRY_PREFIX).await;
    source.close().await;
    target.close().await;
    let report = result.with_context(|| format!("migrating {from} to {to}"))?;
    println!(
        "copied {} keys at revision {} from {from} to {to}",
        report.keys, report.revision
    );
    Ok(())
}
