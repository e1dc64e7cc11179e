//! `store::transfer`: snapshot / restore and migration between SQLite and etcd keep every key and
//! value byte for byte; a non-empty target is refused without writing anything.

mod etcd_support;

use std::path::Path;

use bytes::Bytes;
use store::sqlite::{SqliteOptions, SqliteStore};
use store::transfer::{self, REGISTRY_PREFIX, TransferError};
use store::{Revision, Store};

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default())
        .await
        .expect("open the SQLite store")
}

/// Every key and value under `/registry/`, at the latest revision.
async fn dump(store: &dyn Store) -> Vec<(String, Bytes)> {
    let res = store
        .range(REGISTRY_PREFIX, None, 0, None)
        .await
        .expect("range");
    res.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

/// Fills `store` with more keys than one page, updates and deletions (so revisions and history
/// differ from the key count), a non-UTF-8 value and a key outside `/registry/`. Returns the
/// revision after the last write.
async fn populate(store: &dyn Store) -> Revision {
    for i in 0..1203 {
        let key = format!("/registry/configmaps/ns{}/cm-{i:04}", i % 7);
        let value = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{i:04}","uid":"uid-{i}","labels":{{"app":"x\"y\u00e9\n"}}}}}}"#
        );
        store
            .create(&key, Bytes::from(value))
            .await
            .expect("create");
    }
    let (kv, _) = store
        .get("/registry/configmaps/ns0/cm-0000", None)
        .await
        .expect("get");
    let kv = kv.expect("created");
    store
        .update(
            &kv.key,
            Bytes::from_static(b"{\"updated\":true}"),
            kv.mod_revision,
        )
        .await
        .expect("update");
    store
        .delete("/registry/configmaps/ns1/cm-0001", None)
        .await
        .expect("delete");
    store
        .create(
            "/registry/binary/raw",
            Bytes::from_static(&[0, 159, 146, 150, 255, b'\n', b'"']),
        )
        .await
        .expect("create a non-UTF-8 value");
    store
        .create("/other/outside", Bytes::from_static(b"not copied"))
        .await
        .expect("create outside the prefix")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_restore_gives_identical_keys_and_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = open(&dir.path().join("a.db")).await;
    populate(&source).await;
    let expected = dump(&source).await;
    assert_eq!(expected.len(), 1203 - 1 + 1, "one deleted, one binary");

    let mut file = Vec::new();
    let info = transfer::write_snapshot(&source, &mut file)
        .await
        .expect("snapshot");
    let source_revision = source.current_revision().await.expect("revision");
    assert_eq!(info.keys, expected.len());
    // Read at the revision of the last write (the one outside the prefix included).
    assert_eq!(info.revision, source_revision);
    let text = String::from_utf8(file.clone()).expect("the snapshot is text");
    let header = text.lines().next().expect("a header line");
    assert_eq!(
        header,
        format!(
            r#"{{"format":"r8s-snapshot/v1","revision":{source_revision},"keys":{}}}"#,
            expected.len()
        )
    );
    assert_eq!(text.lines().count(), expected.len() + 1);
    assert!(!text.contains("/other/outside"));

    let target = open(&dir.path().join("b.db")).await;
    let restored = transfer::read_snapshot(file.as_slice(), &target)
        .await
        .expect("restore");
    assert_eq!(restored, info);
    assert_eq!(dump(&target).await, expected);
    assert_eq!(
        target.current_revision().await.expect("revision"),
        i64::try_from(expected.len()).expect("small"),
        "one create per key"
    );
    source.close().await;
    target.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_a_non_empty_store_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = open(&dir.path().join("a.db")).await;
    populate(&source).await;
    let mut file = Vec::new();
    transfer::write_snapshot(&source, &mut file)
        .await
        .expect("snapshot");

    let target = open(&dir.path().join("b.db")).await;
    target
        .create("/registry/namespaces/default", Bytes::from_static(b"{}"))
        .await
        .expect("create");
    let before = target.current_revision().await.expect("revision");
    let err = transfer::read_snapshot(file.as_slice(), &target)
        .await
        .expect_err("a non-empty target is refused");
    assert!(
        matches!(&err, TransferError::TargetNotEmpty { key } if key == "/registry/namespaces/default"),
        "{err:?}"
    );
    assert!(err.to_string().contains("not empty"), "{err}");
    let err = transfer::copy_all(&source, &target, REGISTRY_PREFIX)
        .await
        .expect_err("copy_all refuses too");
    assert!(
        matches!(err, TransferError::TargetNotEmpty { .. }),
        "{err:?}"
    );
    assert_eq!(target.current_revision().await.expect("revision"), before);
    assert_eq!(dump(&target).await.len(), 1);
    source.close().await;
    target.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_or_truncated_snapshot_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = open(&dir.path().join("a.db")).await;
    populate(&source).await;
    let mut file = Vec::new();
    transfer::write_snapshot(&source, &mut file)
        .await
        .expect("snapshot");
    let text = String::from_utf8(file).expect("text");
    let lines: Vec<&str> = text.lines().collect();
    let truncated = lines[..lines.len() - 1].join("\n");
    let mut corrupt = lines.clone();
    corrupt[5] = "{\"key\":\"/registry/x\"";
    let corrupt = corrupt.join("\n");
    let wrong_format = text.replacen("r8s-snapshot/v1", "r8s-snapshot/v9", 1);

    let target = open(&dir.path().join("b.db")).await;
    for (name, input) in [
        ("truncated", truncated.as_str()),
        ("corrupt", corrupt.as_str()),
        ("wrong format", wrong_format.as_str()),
        ("empty", ""),
    ] {
        let err = transfer::read_snapshot(input.as_bytes(), &target)
            .await
            .expect_err(name);
        assert!(
            matches!(err, TransferError::InvalidSnapshot { .. }),
            "{name}: {err:?}"
        );
    }
    assert_eq!(target.current_revision().await.expect("revision"), 0);
    source.close().await;
    target.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_sqlite_to_sqlite_copies_everything_at_one_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = open(&dir.path().join("a.db")).await;
    let last = populate(&source).await;
    let expected = dump(&source).await;
    let target = open(&dir.path().join("b.db")).await;
    let report = transfer::copy_all(&source, &target, REGISTRY_PREFIX)
        .await
        .expect("copy");
    assert_eq!(report.keys, expected.len());
    assert_eq!(report.revision, last);
    assert_eq!(dump(&target).await, expected);
    assert!(
        target
            .get("/other/outside", None)
            .await
            .expect("get")
            .0
            .is_none(),
        "only the prefix is copied"
    );
    source.close().await;
    target.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_sqlite_to_etcd_and_back_gives_identical_keys_and_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = open(&dir.path().join("a.db")).await;
    populate(&source).await;
    let expected = dump(&source).await;

    let etcd = etcd_support::Etcd::start().await;
    let remote = etcd.store(10_000).await;
    let report = transfer::copy_all(&source, &remote, REGISTRY_PREFIX)
        .await
        .expect("SQLite -> etcd");
    assert_eq!(report.keys, expected.len());
    assert_eq!(dump(&remote).await, expected);

    // A second migration into the now non-empty etcd is refused.
    let err = transfer::copy_all(&source, &remote, REGISTRY_PREFIX)
        .await
        .expect_err("etcd is not empty any more");
    assert!(
        matches!(err, TransferError::TargetNotEmpty { .. }),
        "{err:?}"
    );

    let back = open(&dir.path().join("c.db")).await;
    let report = transfer::copy_all(&remote, &back, REGISTRY_PREFIX)
        .await
        .expect("etcd -> SQLite");
    assert_eq!(report.keys, expected.len());
    assert_eq!(
        report.revision,
        remote.current_revision().await.expect("revision")
    );
    assert_eq!(dump(&back).await, expected);
    remote.close();
    source.close().await;
    back.close().await;
}
