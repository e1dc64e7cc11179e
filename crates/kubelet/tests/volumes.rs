//! Pod volumes on real files in a temp dir: every plugin, the atomic writer, modes, items,
//! optional sources, hostPath type checks, tmpfs, teardown and container mounts.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kubelet::cri::api;
use kubelet::volumes::{ObjectSource, VolumeError, VolumeManager};
use parking_lot::Mutex;
use serde_json::json;

#[derive(Default)]
struct Fake {
    config_maps: Mutex<HashMap<(String, String), Arc<ConfigMap>>>,
    secrets: Mutex<HashMap<(String, String), Arc<Secret>>>,
}

impl Fake {
    fn put_cm(&self, ns: &str, name: &str, data: &[(&str, &str)], binary: &[(&str, &[u8])]) {
        let cm = ConfigMap {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            binary_data: Some(
                binary
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        self.config_maps
            .lock()
            .insert((ns.into(), name.into()), Arc::new(cm));
    }

    fn put_secret(&self, ns: &str, name: &str, data: &[(&str, &[u8])]) {
        let s = Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        self.secrets
            .lock()
            .insert((ns.into(), name.into()), Arc::new(s));
    }
}

impl ObjectSource for Fake {
    fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>> {
        self.config_maps
            .lock()
            .get(&(namespace.into(), name.into()))
            .cloned()
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        self.secrets
            .lock()
            .get(&(namespace.into(), name.into()))
            .cloned()
    }
}

fn setup() -> (tempfile::TempDir, Arc<Fake>, VolumeManager) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(Fake::default());
    let vm = VolumeManager::new(dir.path().to_path_buf(), fake.clone());
    (dir, fake, vm)
}

fn pod(volumes: serde_json::Value, mounts: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-1",
                     "labels": {"app": "web", "tier": "front\"end"},
                     "annotations": {"note": "a\nb"}},
        "spec": {
            "volumes": volumes,
            "containers": [{"name": "c", "image": "busybox", "volumeMounts": mounts,
                "resources": {"limits": {"cpu": "250m", "memory": "64Mi"},
                              "requests": {"cpu": "100m"}}}]
        }
    }))
    .expect("valid pod")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn vol_dir(root: &Path, plugin: &str, name: &str) -> PathBuf {
    root.join("uid-1/volumes").join(plugin).join(name)
}

#[tokio::test]
async fn config_map_all_keys_with_atomic_layout() {
    let (dir, fake, vm) = setup();
    fake.put_cm(
        "ns",
        "cfg",
        &[("a.conf", "A"), ("b", "B")],
        &[("bin", &[0, 1, 2])],
    );
    let p = pod(
        json!([{"name": "v", "configMap": {"name": "cfg"}}]),
        json!([]),
    );
    let prepared = vm.setup(&p).await.expect("setup");
    let d = vol_dir(dir.path(), "kubernetes.io~configmap", "v");
    assert_eq!(prepared["v"].host_path, d);
    assert!(prepared["v"].read_only);
    assert_eq!(read(&d.join("a.conf")), "A");
    assert_eq!(read(&d.join("b")), "B");
    assert_eq!(std::fs::read(d.join("bin")).expect("bin"), vec![0, 1, 2]);
    // Upstream's layout: key -> ..data/key, ..data -> ..<timestamp>.
    assert_eq!(
        std::fs::read_link(d.join("a.conf")).expect("symlink"),
        PathBuf::from("..data/a.conf")
    );
    let ts = std::fs::read_link(d.join("..data")).expect("..data symlink");
    let ts = ts.to_string_lossy().into_owned();
    assert!(ts.starts_with("..20"), "timestamped dir: {ts}");
    assert_eq!(mode(&d.join("a.conf")), 0o644);
    assert_eq!(mode(&d.join(&ts)), 0o755);
    assert_eq!(mode(&d), 0o777);
}

#[tokio::test]
async fn config_map_items_modes_and_missing_keys() {
    let (dir, fake, vm) = setup();
    fake.put_cm("ns", "cfg", &[("a", "A"), ("b", "B")], &[]);
    let p = pod(
        json!([{"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o600,
            "items": [{"key": "a", "path": "sub/dir/a.txt", "mode": 0o400},
                      {"key": "b", "path": "b.txt"}]}}]),
        json!([]),
    );
    vm.setup(&p).await.expect("setup");
    let d = vol_dir(dir.path(), "kubernetes.io~configmap", "v");
    assert_eq!(read(&d.join("sub/dir/a.txt")), "A");
    assert_eq!(mode(&d.join("sub/dir/a.txt")), 0o400);
    assert_eq!(mode(&d.join("b.txt")), 0o600);
    assert!(!d.join("a").exists(), "only the listed items");
    assert_eq!(
        std::fs::read_link(d.join("sub")).expect("symlink"),
        PathBuf::from("..data/sub")
    );

    let missing_key = pod(
        json!([{"name": "v", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}}]),
        json!([]),
    );
    let err = vm.setup(&missing_key).await.expect_err("missing key");
    assert_eq!(
        err.to_string(),
        "configmap references non-existent config key: zz"
    );
    assert_eq!(err.volume(), Some("v"));
}

#[tokio::test]
async fn missing_sources_optional_or_not() {
    let (dir, _fake, vm) = setup();
    let p = pod(
        json!([{"name": "v", "configMap": {"name": "nope"}}]),
        json!([]),
    );
    let err = vm.setup(&p).await.expect_err("missing configmap");
    assert_eq!(err.to_string(), "configmap \"nope\" not found");
    let p = pod(
        json!([{"name": "s", "secret": {"secretName": "nope"}}]),
        json!([]),
    );
    let err = vm.setup(&p).await.expect_err("missing secret");
    assert_eq!(err.to_string(), "secret \"nope\" not found");

    let p = pod(
        json!([{"name": "v", "configMap": {"name": "nope", "optional": true}},
               {"name": "s", "secret": {"secretName": "nope", "optional": true}}]),
        json!([]),
    );
    let prepared = vm.setup(&p).await.expect("optional sources");
    assert_eq!(prepared.len(), 2);
    let d = vol_dir(dir.path(), "kubernetes.io~secret", "s");
    assert!(
        d.join("..data").exists(),
        "an empty payload is still written"
    );
}

#[tokio::test]
async fn secret_raw_bytes_and_modes() {
    let (dir, fake, vm) = setup();
    fake.put_secret("ns", "tls", &[("key", b"\xff\x00raw"), ("crt", b"CRT")]);
    let p = pod(
        json!([{"name": "s", "secret": {"secretName": "tls"}},
               {"name": "s2", "secret": {"secretName": "tls", "defaultMode": 0o440,
                 "items": [{"key": "crt", "path": "tls.crt"}]}}]),
        json!([]),
    );
    vm.setup(&p).await.expect("setup");
    let d = vol_dir(dir.path(), "kubernetes.io~secret", "s");
    assert_eq!(std::fs::read(d.join("key")).expect("key"), b"\xff\x00raw");
    assert_eq!(mode(&d.join("key")), 0o644);
    let d2 = vol_dir(dir.path(), "kubernetes.io~secret", "s2");
    assert_eq!(read(&d2.join("tls.crt")), "CRT");
    assert_eq!(mode(&d2.join("tls.crt")), 0o440);
    assert!(!d2.join("key").exists());
}

#[tokio::test]
async fn atomic_update_in_place() {
    let (dir, fake, vm) = setup();
    fake.put_cm("ns", "cfg", &[("a", "one"), ("gone", "x")], &[]);
    let p = pod(
        json!([{"name": "v", "configMap": {"name": "cfg"}}]),
        json!([]),
    );
    vm.setup(&p).await.expect("setup");
    let d = vol_dir(dir.path(), "kubernetes.io~configmap", "v");
    let old_ts = std::fs::read_link(d.join("..data")).expect("..data");

    // Unchanged content: nothing is rewritten.
    vm.setup(&p).await.expect("setup again");
    assert_eq!(
        std::fs::read_link(d.join("..data")).expect("..data"),
        old_ts
    );

    // A reader holding the old file keeps reading the old content after the swap.
    let mut held = std::fs::File::open(d.join("a")).expect("open old");
    fake.put_cm("ns", "cfg", &[("a", "two"), ("new", "n")], &[]);
    vm.setup(&p).await.expect("update");
    let new_ts = std::fs::read_link(d.join("..data")).expect("..data");
    assert_ne!(new_ts, old_ts, "..data points to a new timestamped dir");
    assert!(
        !d.join(&old_ts).exists(),
        "the old timestamped dir is removed"
    );
    let mut old = String::new();
    std::io::Read::read_to_string(&mut held, &mut old).expect("read held");
    assert_eq!(old, "one");
    assert_eq!(read(&d.join("a")), "two");
    assert_eq!(read(&d.join("new")), "n");
    assert!(
        std::fs::symlink_metadata(d.join("gone")).is_err(),
        "a removed key's symlink is removed"
    );
    assert!(!d.join("..data_tmp").exists());
    // Only ..data, the timestamped dir and the keys' symlinks remain.
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected = vec![
        "..data".to_string(),
        new_ts.to_string_lossy().into_owned(),
        "a".into(),
        "new".into(),
    ];
    expected.sort();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn downward_api_fields_and_resources() {
    let (dir, _fake, vm) = setup();
    vm.set_node_allocatable(BTreeMap::from([
        ("cpu".to_string(), Quantity("4".into())),
        ("memory".to_string(), Quantity("8Gi".into())),
    ]));
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-1",
                     "labels": {"tier": "front\"end", "app": "web"},
                     "annotations": {"note": "a\nb"}},
        "spec": {
            "volumes": [{"name": "d", "downwardAPI": {"items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
                {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 0o600},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
                {"path": "cpu_limit", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu", "divisor": "1m"}},
                {"path": "cpu_limit_cores", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu"}},
                {"path": "mem_limit", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}},
                {"path": "cpu_request", "resourceFieldRef": {"containerName": "c", "resource": "requests.cpu", "divisor": "1m"}},
                {"path": "other_cpu", "resourceFieldRef": {"containerName": "o", "resource": "limits.cpu"}},
                {"path": "other_mem", "resourceFieldRef": {"containerName": "o", "resource": "limits.memory", "divisor": "1Gi"}}
            ]}}],
            "containers": [
                {"name": "c", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}, "requests": {"cpu": "100m"}}},
                {"name": "o"}
            ]
        }
    }))
    .expect("valid pod");
    vm.setup(&p).await.expect("setup");
    let d = vol_dir(dir.path(), "kubernetes.io~downward-api", "d");
    assert_eq!(read(&d.join("name")), "web");
    assert_eq!(read(&d.join("ns")), "ns");
    assert_eq!(read(&d.join("uid")), "uid-1");
    assert_eq!(
        read(&d.join("labels")),
        "app=\"web\"\ntier=\"front\\\"end\""
    );
    assert_eq!(mode(&d.join("labels")), 0o600);
    assert_eq!(read(&d.join("annotations")), "note=\"a\\nb\"");
    assert_eq!(read(&d.join("app")), "web");
    assert_eq!(read(&d.join("cpu_limit")), "250");
    assert_eq!(read(&d.join("cpu_limit_cores")), "1", "ceil(0.25)");
    assert_eq!(read(&d.join("mem_limit")), "64");
    assert_eq!(read(&d.join("cpu_request")), "100");
    assert_eq!(
        read(&d.join("other_cpu")),
        "4",
        "unset limits are the node allocatable"
    );
    assert_eq!(read(&d.join("other_mem")), "8");
}

#[tokio::test]
async fn projected_combines_sources() {
    let (dir, fake, vm) = setup();
    fake.put_cm("ns", "ca", &[("ca.crt", "CA")], &[]);
    fake.put_secret("ns", "tok", &[("token", b"T")]);
    let p = pod(
        json!([{"name": "p", "projected": {"defaultMode": 0o444, "sources": [
            {"configMap": {"name": "ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"secret": {"name": "tok"}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            {"serviceAccountToken": {"path": "sa-token"}}
        ]}}]),
        json!([]),
    );
    let prepared = vm.setup(&p).await.expect("setup");
    assert!(prepared["p"].read_only);
    let d = vol_dir(dir.path(), "kubernetes.io~projected", "p");
    assert_eq!(read(&d.join("ca.crt")), "CA");
    assert_eq!(read(&d.join("token")), "T");
    assert_eq!(read(&d.join("namespace")), "ns");
    assert_eq!(mode(&d.join("token")), 0o444);
    assert!(
        !d.join("sa-token").exists(),
        "serviceAccountToken is skipped"
    );

    let bad = pod(
        json!([{"name": "p", "projected": {"sources": [
            {"configMap": {"name": "nope"}}, {"secret": {"name": "nope2"}}
        ]}}]),
        json!([]),
    );
    let err = vm.setup(&bad).await.expect_err("missing sources");
    assert_eq!(
        err.to_string(),
        "[configmap \"nope\" not found, secret \"nope2\" not found]"
    );
}

#[tokio::test]
async fn host_path_types() {
    let (dir, _fake, vm) = setup();
    let base = dir.path().join("host");
    std::fs::create_dir_all(&base).expect("mkdir");
    let file = base.join("file");
    std::fs::write(&file, "x").expect("write");
    let check = |path: &Path, ty: &str| {
        pod(
            json!([{"name": "h", "hostPath": {"path": path, "type": ty}}]),
            json!([]),
        )
    };
    let err = |e: VolumeError| e.to_string();

    assert_eq!(
        err(vm
            .setup(&check(&file, "Directory"))
            .await
            .expect_err("file")),
        format!(
            "hostPath type check failed: {} is not a directory, it's a File",
            file.display()
        )
    );
    let nope = base.join("nope");
    assert_eq!(
        err(vm
            .setup(&check(&nope, "Directory"))
            .await
            .expect_err("none")),
        format!("hostPath {} doesn't exist", nope.display())
    );
    assert_eq!(
        err(vm.setup(&check(&base, "File")).await.expect_err("dir")),
        format!(
            "hostPath type check failed: {} is not a file, it's a Directory",
            base.display()
        )
    );
    assert_eq!(
        err(vm
            .setup(&check(Path::new("/dev/null"), "BlockDevice"))
            .await
            .expect_err("char")),
        "hostPath type check failed: /dev/null is not a block device, it's a CharDevice"
    );
    assert_eq!(
        err(vm.setup(&check(&file, "Socket")).await.expect_err("file")),
        format!(
            "hostPath type check failed: {} is not a socket file, it's a File",
            file.display()
        )
    );
    assert_eq!(
        err(vm
            .setup(&check(&file, "Weird"))
            .await
            .expect_err("bad type")),
        "Weird is an invalid volume type"
    );

    // Matching types, and the *OrCreate types create what is missing.
    vm.setup(&check(Path::new("/dev/null"), "CharDevice"))
        .await
        .expect("char device");
    vm.setup(&check(&file, "File")).await.expect("file");
    vm.setup(&check(&nope, ""))
        .await
        .expect("unset type: no check");
    let sock = base.join("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    vm.setup(&check(&sock, "Socket")).await.expect("socket");
    let created = base.join("new/dir");
    let prepared = vm
        .setup(&check(&created, "DirectoryOrCreate"))
        .await
        .expect("dir or create");
    assert!(created.is_dir());
    assert_eq!(mode(&created), 0o755);
    assert_eq!(prepared["h"].host_path, created);
    assert!(!prepared["h"].read_only);
    let created_file = base.join("f.txt");
    vm.setup(&check(&created_file, "FileOrCreate"))
        .await
        .expect("file or create");
    assert!(created_file.is_file());
    assert_eq!(mode(&created_file), 0o644);
    assert!(
        vm.setup(&check(&file, "DirectoryOrCreate")).await.is_err(),
        "an existing file is not a directory"
    );
}

#[tokio::test]
async fn empty_dir_and_unsupported_types() {
    let (dir, _fake, vm) = setup();
    let p = pod(json!([{"name": "e", "emptyDir": {}}]), json!([]));
    let prepared = vm.setup(&p).await.expect("setup");
    let d = vol_dir(dir.path(), "kubernetes.io~empty-dir", "e");
    assert_eq!(prepared["e"].host_path, d);
    assert!(d.is_dir());
    assert_eq!(mode(&d), 0o777);
    std::fs::write(d.join("data"), "kept").expect("write");
    vm.setup(&p).await.expect("idempotent");
    assert_eq!(
        read(&d.join("data")),
        "kept",
        "setup again keeps the contents"
    );

    let p = pod(
        json!([{"name": "claim", "persistentVolumeClaim": {"claimName": "x"}}]),
        json!([]),
    );
    let err = vm.setup(&p).await.expect_err("unsupported");
    assert!(matches!(err, VolumeError::Unsupported { .. }));
    assert_eq!(
        err.to_string(),
        "volume \"claim\" has an unsupported volume type \"persistentVolumeClaim\""
    );
}

fn mounted_at(p: &Path) -> usize {
    std::fs::read_to_string("/proc/mounts")
        .expect("/proc/mounts")
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(p.to_str().expect("utf-8")))
        .count()
}

#[tokio::test]
async fn memory_empty_dir_is_tmpfs_and_teardown_unmounts() {
    let (dir, _fake, vm) = setup();
    let p = pod(
        json!([{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]),
        json!([]),
    );
    let d = vol_dir(dir.path(), "kubernetes.io~empty-dir", "m");
    match vm.setup(&p).await {
        Ok(_) => {}
        Err(e) => {
            eprintln!("SKIPPED: cannot mount tmpfs here: {e}");
            return;
        }
    }
    assert_eq!(mounted_at(&d), 1);
    let line = std::fs::read_to_string("/proc/mounts")
        .expect("/proc/mounts")
        .lines()
        .find(|l| l.split_whitespace().nth(1) == d.to_str())
        .map(str::to_string)
        .expect("mount line");
    assert!(line.contains(" tmpfs "), "{line}");
    assert!(line.contains("size=1024k"), "{line}");
    vm.setup(&p).await.expect("again");
    assert_eq!(mounted_at(&d), 1, "idempotent: mounted once");
    std::fs::write(d.join("f"), "in memory").expect("write");

    assert_eq!(vm.pods_on_disk().await, vec!["uid-1".to_string()]);
    vm.teardown("uid-1").await.expect("teardown");
    assert_eq!(mounted_at(&d), 0);
    assert!(!dir.path().join("uid-1/volumes").exists());
    assert!(vm.pods_on_disk().await.is_empty());
    vm.teardown("uid-1").await.expect("teardown again is fine");
}

#[tokio::test]
async fn container_mounts_sub_path_read_only_propagation() {
    let (dir, fake, vm) = setup();
    fake.put_cm("ns", "cfg", &[("app.conf", "C")], &[]);
    let host = dir.path().join("host");
    std::fs::create_dir_all(&host).expect("mkdir");
    let p = pod(
        json!([{"name": "e", "emptyDir": {}},
               {"name": "cfg", "configMap": {"name": "cfg"}},
               {"name": "h", "hostPath": {"path": host}}]),
        json!([
            {"name": "e", "mountPath": "/data"},
            {"name": "e", "mountPath": "/logs", "subPath": "logs/app", "readOnly": true},
            {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
            {"name": "cfg", "mountPath": "/etc/cfg"},
            {"name": "h", "mountPath": "/host", "mountPropagation": "HostToContainer"},
            {"name": "h", "mountPath": "/host2", "mountPropagation": "Bidirectional", "subPath": "x"}
        ]),
    );
    let prepared = vm.setup(&p).await.expect("setup");
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let mounts = vm.container_mounts(&p, c, &prepared).expect("mounts");
    assert_eq!(mounts.len(), 6);
    let by_path = |cp: &str| -> &api::Mount {
        mounts
            .iter()
            .find(|m| m.container_path == cp)
            .unwrap_or_else(|| panic!("no mount {cp}"))
    };
    let e = vol_dir(dir.path(), "kubernetes.io~empty-dir", "e");
    assert_eq!(by_path("/data").host_path, e.display().to_string());
    assert!(!by_path("/data").readonly);
    let logs = by_path("/logs");
    assert!(logs.readonly);
    let canonical_e = std::fs::canonicalize(&e).expect("canonical");
    assert_eq!(
        logs.host_path,
        canonical_e.join("logs/app").display().to_string()
    );
    assert!(e.join("logs/app").is_dir(), "subPath created in emptyDir");
    let conf = by_path("/etc/app.conf");
    assert!(conf.readonly, "configMap volumes are read-only");
    assert_eq!(read(Path::new(&conf.host_path)), "C");
    assert!(by_path("/etc/cfg").readonly);
    assert_eq!(
        by_path("/host").propagation,
        api::MountPropagation::PropagationHostToContainer as i32
    );
    assert_eq!(
        by_path("/host2").propagation,
        api::MountPropagation::PropagationBidirectional as i32
    );
    assert!(host.join("x").is_dir(), "subPath created in hostPath");
    assert_eq!(
        by_path("/data").propagation,
        api::MountPropagation::PropagationPrivate as i32
    );

    // A missing subPath of a configMap is an error; so is a symlink escaping the volume.
    let p2 = pod(
        json!([{"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "e", "emptyDir": {}}]),
        json!([{"name": "cfg", "mountPath": "/x", "subPath": "nope"}]),
    );
    let c2 = &p2.spec.as_ref().expect("spec").containers[0];
    assert!(vm.container_mounts(&p2, c2, &prepared).is_err());
    std::os::unix::fs::symlink("/etc", e.join("escape")).expect("symlink");
    let p3 = pod(
        json!([{"name": "e", "emptyDir": {}}]),
        json!([{"name": "e", "mountPath": "/x", "subPath": "escape"}]),
    );
    let c3 = &p3.spec.as_ref().expect("spec").containers[0];
    let err = vm.container_mounts(&p3, c3, &prepared).expect_err("escape");
    assert!(err.to_string().contains("not within volume path"), "{err}");

    let p4 = pod(json!([]), json!([{"name": "missing", "mountPath": "/m"}]));
    let c4 = &p4.spec.as_ref().expect("spec").containers[0];
    assert_eq!(
        vm.container_mounts(&p4, c4, &HashMap::new())
            .expect_err("missing volume")
            .to_string(),
        "cannot find volume \"missing\" to mount into container \"c\""
    );
}

#[tokio::test]
async fn teardown_removes_volume_dirs_only() {
    let (dir, fake, vm) = setup();
    fake.put_cm("ns", "cfg", &[("a", "A")], &[]);
    let host = dir.path().join("host");
    std::fs::create_dir_all(&host).expect("mkdir");
    std::fs::write(host.join("keep"), "k").expect("write");
    let p = pod(
        json!([{"name": "e", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}},
               {"name": "h", "hostPath": {"path": host}}]),
        json!([]),
    );
    vm.setup(&p).await.expect("setup");
    std::fs::write(dir.path().join("uid-1/etc-hosts"), "h").expect("write");
    assert_eq!(vm.pods_on_disk().await, vec!["uid-1".to_string()]);
    vm.teardown("uid-1").await.expect("teardown");
    assert!(!dir.path().join("uid-1/volumes").exists());
    assert!(dir.path().join("uid-1/etc-hosts").exists(), "not ours");
    assert_eq!(
        read(&host.join("keep")),
        "k",
        "host paths are never touched"
    );
    assert!(vm.pods_on_disk().await.is_empty());
}
