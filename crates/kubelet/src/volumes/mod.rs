//! Pod volumes: emptyDir, configMap, secret, hostPath, downwardAPI and projected.
//!
//! Like upstream's volume plugins, host side only: [`VolumeManager::setup`] prepares a directory
//! (or checks a host path) per volume under `<root>/<pod-uid>/volumes/<plugin>/<volume-name>`
//! with upstream's plugin directory names (`kubernetes.io~empty-dir`, `kubernetes.io~configmap`,
//! …), and [`VolumeManager::container_mounts`] turns a container's `volumeMounts` into CRI
//! mounts the runtime bind-mounts.
//!
//! configMap, secret, downwardAPI and projected contents are written with upstream's atomic writer
//! ([`atomic`]): a timestamped directory, a `..data` symlink swapped with `rename(2)` and
//! user-visible symlinks `key -> ..data/key`, so running containers see updates in place.
//!
//! Not done (yet): `fsGroup` ownership of volume contents, SELinux relabelling, tmpfs backing
//! for secret and projected volumes (upstream mounts them on tmpfs; here they are plain
//! directories under the root), and projected `serviceAccountToken`, `clusterTrustBundle` and
//! `podCertificate` sources, which are skipped (r8s has no TokenRequest API to mint a token from).

pub mod atomic;
pub mod downward;
pub mod host_path;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use parking_lot::RwLock;

use crate::cri::api;
use atomic::{FileProjection, Payload};

/// The plugin directory of emptyDir volumes.
pub const EMPTY_DIR_PLUGIN: &str = "kubernetes.io~empty-dir";
/// The plugin directory of configMap volumes.
pub const CONFIG_MAP_PLUGIN: &str = "kubernetes.io~configmap";
/// The plugin directory of secret volumes.
pub const SECRET_PLUGIN: &str = "kubernetes.io~secret";
/// The plugin directory of downwardAPI volumes.
pub const DOWNWARD_API_PLUGIN: &str = "kubernetes.io~downward-api";
/// The plugin directory of projected volumes.
pub const PROJECTED_PLUGIN: &str = "kubernetes.io~projected";

/// The default file mode of configMap, secret, downwardAPI and projected files (0644).
pub const DEFAULT_MODE: i32 = 0o644;

/// Where volume sources come from: the agent passes its informers (core/v1 ConfigMap, Secret);
/// tests can pass a fake.
pub trait ObjectSource: Send + Sync + 'static {
    /// The ConfigMap `namespace/name`, if it exists.
    fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>>;
    /// The Secret `namespace/name`, if it exists.
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>>;
}

/// A volume ready to be mounted into containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedVolume {
    /// The host path the runtime bind-mounts.
    pub host_path: PathBuf,
    /// Whether every mount of it is read-only (configMap, secret, downwardAPI, projected).
    pub read_only: bool,
}

/// Why a volume could not be prepared or mounted.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A volume could not be set up; the message has upstream's wording (for the event
    /// `MountVolume.SetUp failed for volume "<volume>" : <message>`).
    #[error("{message}")]
    SetUp {
        /// The volume's name.
        volume: String,
        /// What went wrong.
        message: String,
    },
    /// The volume's type is not supported by this node agent.
    #[error("volume {volume:?} has an unsupported volume type {kind:?}")]
    Unsupported {
        /// The volume's name.
        volume: String,
        /// The volume source's field name (`persistentVolumeClaim`, `nfs`, …).
        kind: String,
    },
    /// A container's volumeMount cannot be turned into a mount.
    #[error("{0}")]
    Mount(String),
    /// The pod has no UID.
    #[error("pod has no metadata.uid")]
    NoUid,
    /// Tearing down failed.
    #[error("tearing down volumes of pod {pod_uid}: {message}")]
    TearDown {
        /// The pod.
        pod_uid: String,
        /// What went wrong.
        message: String,
    },
}

impl VolumeError {
    /// The volume the error is about, if any.
    pub fn volume(&self) -> Option<&str> {
        match self {
            VolumeError::SetUp { volume, .. } | VolumeError::Unsupported { volume, .. } => {
                Some(volume)
            }
            _ => None,
        }
    }

    fn setup(volume: &str, message: impl Into<String>) -> Self {
        VolumeError::SetUp {
            volume: volume.to_string(),
            message: message.into(),
        }
    }
}

/// Prepares, mounts and removes pod volumes.
pub struct VolumeManager {
    root: PathBuf,
    source: Arc<dyn ObjectSource>,
    allocatable: RwLock<BTreeMap<String, Quantity>>,
}

impl std::fmt::Debug for VolumeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeManager")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// What [`setup`](VolumeManager::setup) does for one volume.
enum Plan {
    EmptyDir {
        memory: bool,
        size: Option<i128>,
    },
    HostPath {
        path: String,
        kind: String,
    },
    Files {
        plugin: &'static str,
        payload: Payload,
    },
}

impl VolumeManager {
    /// A manager keeping pod directories under `root` (`<root>/<pod-uid>/volumes/...`).
    ///
    /// Unset container limits in downwardAPI `resourceFieldRef`s default to the node's
    /// allocatable; until [`set_node_allocatable`](Self::set_node_allocatable) is called that is
    /// the host's CPU count and memory.
    pub fn new(root: PathBuf, source: Arc<dyn ObjectSource>) -> Self {
        VolumeManager {
            root,
            source,
            allocatable: RwLock::new(host_allocatable()),
        }
    }

    /// Sets the node's allocatable resources (the defaults of unset limits in the downward API).
    pub fn set_node_allocatable(&self, allocatable: BTreeMap<String, Quantity>) {
        *self.allocatable.write() = allocatable;
    }

    /// The directory holding all volumes of a pod.
    pub fn pod_volumes_dir(&self, pod_uid: &str) -> PathBuf {
        self.root.join(pod_uid).join("volumes")
    }

    /// The directory of one volume of a pod.
    pub fn volume_dir(&self, pod_uid: &str, plugin: &str, volume: &str) -> PathBuf {
        self.pod_volumes_dir(pod_uid).join(plugin).join(volume)
    }

    /// Creates/refreshes every volume of the pod; returns the prepared host paths by volume
    /// name. Idempotent: called again on every pod sync and when a ConfigMap/Secret changes, it
    /// updates contents in place atomically, so containers see updates without restart. Errors
    /// carry upstream's event wording (`configmap "x" not found`, `hostPath type check failed:
    /// /x is not a directory, it's a File`).
    pub async fn setup(&self, pod: &Pod) -> Result<HashMap<String, PreparedVolume>, VolumeError> {
        let uid = pod.metadata.uid.as_deref().ok_or(VolumeError::NoUid)?;
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default();
        let mut out = HashMap::new();
        for v in volumes {
            let plan = self.plan(pod, v)?;
            let prepared = match plan {
                Plan::EmptyDir { memory, size } => {
                    let dir = self.volume_dir(uid, EMPTY_DIR_PLUGIN, &v.name);
                    let d = dir.clone();
                    blocking(&v.name, move || make_volume_dir(&d)).await?;
                    if memory {
                        ensure_tmpfs(&dir, size)
                            .await
                            .map_err(|m| VolumeError::setup(&v.name, m))?;
                    }
                    PreparedVolume {
                        host_path: dir,
                        read_only: false,
                    }
                }
                Plan::HostPath { path, kind } => {
                    let p = path.clone();
                    blocking(&v.name, move || host_path::check(&p, &kind)).await?;
                    PreparedVolume {
                        host_path: PathBuf::from(path),
                        read_only: false,
                    }
                }
                Plan::Files { plugin, payload } => {
                    let dir = self.volume_dir(uid, plugin, &v.name);
                    let d = dir.clone();
                    blocking(&v.name, move || {
                        make_volume_dir(&d)?;
                        atomic::write(&d, &payload).map_err(|e| e.to_string())?;
                        Ok(())
                    })
                    .await?;
                    PreparedVolume {
                        host_path: dir,
                        read_only: true,
                    }
                }
            };
            out.insert(v.name.clone(), prepared);
        }
        Ok(out)
    }

    fn plan(&self, pod: &Pod, v: &Volume) -> Result<Plan, VolumeError> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let err = |m: String| VolumeError::setup(&v.name, m);
        if let Some(e) = &v.empty_dir {
            let memory = match e.medium.as_deref().unwrap_or_default() {
                "" => false,
                "Memory" => true,
                other => {
                    return Err(err(format!(
                        "emptyDir medium {other:?} is not supported by this node"
                    )));
                }
            };
            let size = match &e.size_limit {
                Some(q) => Some(
                    ::api::quantity::parse_quantity(&q.0)
                        .map_err(|m| err(format!("invalid emptyDir sizeLimit: {m}")))?
                        .value(),
                )
                .filter(|s| *s > 0),
                None => None,
            };
            return Ok(Plan::EmptyDir { memory, size });
        }
        if let Some(h) = &v.host_path {
            return Ok(Plan::HostPath {
                path: h.path.clone(),
                kind: h.type_.clone().unwrap_or_default(),
            });
        }
        if let Some(c) = &v.config_map {
            let mode = c.default_mode.unwrap_or(DEFAULT_MODE);
            let payload = self
                .config_map_payload(
                    ns,
                    &c.name,
                    c.items.as_deref(),
                    c.optional.unwrap_or(false),
                    mode,
                )
                .map_err(err)?;
            return Ok(Plan::Files {
                plugin: CONFIG_MAP_PLUGIN,
                payload,
            });
        }
        if let Some(s) = &v.secret {
            let mode = s.default_mode.unwrap_or(DEFAULT_MODE);
            let name = s.secret_name.as_deref().unwrap_or_default();
            let payload = self
                .secret_payload(
                    ns,
                    name,
                    s.items.as_deref(),
                    s.optional.unwrap_or(false),
                    mode,
                )
                .map_err(err)?;
            return Ok(Plan::Files {
                plugin: SECRET_PLUGIN,
                payload,
            });
        }
        if let Some(d) = &v.downward_api {
            let mode = d.default_mode.unwrap_or(DEFAULT_MODE);
            let payload = self
                .downward_payload(pod, d.items.as_deref().unwrap_or_default(), mode)
                .map_err(err)?;
            return Ok(Plan::Files {
                plugin: DOWNWARD_API_PLUGIN,
                payload,
            });
        }
        if let Some(p) = &v.projected {
            let payload = self.projected_payload(pod, ns, p).map_err(err)?;
            return Ok(Plan::Files {
                plugin: PROJECTED_PLUGIN,
                payload,
            });
        }
        Err(VolumeError::Unsupported {
            volume: v.name.clone(),
            kind: volume_kind(v),
        })
    }

    /// Upstream `configmap.MakePayload`.
    fn config_map_payload(
        &self,
        ns: &str,
        name: &str,
        items: Option<&[KeyToPath]>,
        optional: bool,
        default_mode: i32,
    ) -> Result<Payload, String> {
        let cm = match self.source.config_map(ns, name) {
            Some(cm) => cm,
            None if optional => return Ok(Payload::new()),
            None => return Err(format!("configmap {name:?} not found")),
        };
        let mut all: BTreeMap<&str, &[u8]> = BTreeMap::new();
        for (k, v) in cm.data.iter().flatten() {
            all.insert(k, v.as_bytes());
        }
        for (k, ByteString(v)) in cm.binary_data.iter().flatten() {
            all.insert(k, v);
        }
        make_payload(&all, items, optional, default_mode, "configmap", "config")
    }

    /// Upstream `secret.MakePayload`.
    fn secret_payload(
        &self,
        ns: &str,
        name: &str,
        items: Option<&[KeyToPath]>,
        optional: bool,
        default_mode: i32,
    ) -> Result<Payload, String> {
        let secret = match self.source.secret(ns, name) {
            Some(s) => s,
            None if optional => return Ok(Payload::new()),
            None => return Err(format!("secret {name:?} not found")),
        };
        let all: BTreeMap<&str, &[u8]> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, ByteString(v))| (k.as_str(), v.as_slice()))
            .collect();
        make_payload(&all, items, optional, default_mode, "secret", "secret")
    }

    /// Upstream `downwardapi.CollectData`.
    fn downward_payload(
        &self,
        pod: &Pod,
        items: &[DownwardAPIVolumeFile],
        default_mode: i32,
    ) -> Result<Payload, String> {
        let allocatable = self.allocatable.read().clone();
        let mut payload = Payload::new();
        let mut errors = Vec::new();
        for item in items {
            match downward::item_value(pod, item, &allocatable) {
                Ok(value) => {
                    payload.insert(
                        clean_path(&item.path),
                        FileProjection {
                            data: value.into_bytes(),
                            mode: item.mode.unwrap_or(default_mode) as u32,
                        },
                    );
                }
                Err(e) => errors.push(e),
            }
        }
        aggregate(errors).map(|()| payload)
    }

    /// Upstream `projected.collectData`.
    fn projected_payload(
        &self,
        pod: &Pod,
        ns: &str,
        p: &k8s_openapi::api::core::v1::ProjectedVolumeSource,
    ) -> Result<Payload, String> {
        let default_mode = p.default_mode.unwrap_or(DEFAULT_MODE);
        let mut payload = Payload::new();
        let mut errors = Vec::new();
        for source in p.sources.iter().flatten() {
            let part = if let Some(c) = &source.config_map {
                self.config_map_payload(
                    ns,
                    &c.name,
                    c.items.as_deref(),
                    c.optional.unwrap_or(false),
                    default_mode,
                )
            } else if let Some(s) = &source.secret {
                self.secret_payload(
                    ns,
                    &s.name,
                    s.items.as_deref(),
                    s.optional.unwrap_or(false),
                    default_mode,
                )
            } else if let Some(d) = &source.downward_api {
                self.downward_payload(pod, d.items.as_deref().unwrap_or_default(), default_mode)
            } else {
                // serviceAccountToken, clusterTrustBundle, podCertificate: r8s has no API to
                // mint these (no TokenRequest), so the files are left out.
                tracing::debug!(
                    pod = pod.metadata.name.as_deref().unwrap_or_default(),
                    "skipping an unsupported projected volume source"
                );
                Ok(Payload::new())
            };
            match part {
                Ok(part) => payload.extend(part),
                Err(e) => errors.push(e),
            }
        }
        aggregate(errors).map(|()| payload)
    }

    /// The CRI mounts for one container from its volumeMounts: `readOnly` (or a read-only
    /// volume), `subPath`/`subPathExpr` (a path inside the volume, created if missing for
    /// emptyDir and hostPath, refused if it resolves outside the volume), `mountPropagation`
    /// and `recursiveReadOnly: Enabled`. `/etc/hosts` and `/dev/termination-log` are not added
    /// here.
    pub fn container_mounts(
        &self,
        pod: &Pod,
        container: &Container,
        prepared: &HashMap<String, PreparedVolume>,
    ) -> Result<Vec<api::Mount>, VolumeError> {
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default();
        let mut out = Vec::new();
        for vm in container.volume_mounts.iter().flatten() {
            let pv = prepared.get(&vm.name).ok_or_else(|| {
                VolumeError::Mount(format!(
                    "cannot find volume {:?} to mount into container {:?}",
                    vm.name, container.name
                ))
            })?;
            let mut host = pv.host_path.clone();
            let sub = match (&vm.sub_path, &vm.sub_path_expr) {
                (Some(s), _) if !s.is_empty() => s.clone(),
                (_, Some(e)) if !e.is_empty() => expand_sub_path_expr(e, pod, container),
                _ => String::new(),
            };
            if !sub.is_empty() {
                let creatable = volumes
                    .iter()
                    .find(|v| v.name == vm.name)
                    .is_some_and(|v| v.empty_dir.is_some() || v.host_path.is_some());
                host = resolve_sub_path(&pv.host_path, &sub, creatable).map_err(|m| {
                    VolumeError::Mount(format!(
                        "failed to prepare subPath for volumeMount {:?} of container {:?}: {m}",
                        vm.name, container.name
                    ))
                })?;
            }
            let propagation = match vm.mount_propagation.as_deref() {
                None | Some("None") => api::MountPropagation::PropagationPrivate,
                Some("HostToContainer") => api::MountPropagation::PropagationHostToContainer,
                Some("Bidirectional") => api::MountPropagation::PropagationBidirectional,
                Some(other) => {
                    return Err(VolumeError::Mount(format!(
                        "invalid MountPropagation mode: {other}"
                    )));
                }
            };
            let readonly = vm.read_only.unwrap_or(false) || pv.read_only;
            out.push(api::Mount {
                container_path: vm.mount_path.clone(),
                host_path: host.display().to_string(),
                readonly,
                propagation: propagation as i32,
                recursive_read_only: readonly
                    && vm.recursive_read_only.as_deref() == Some("Enabled"),
                ..Default::default()
            });
        }
        Ok(out)
    }

    /// Removes all volumes of a pod: unmounts its tmpfs mounts, then deletes
    /// `<root>/<pod-uid>/volumes` (host paths are never touched).
    pub async fn teardown(&self, pod_uid: &str) -> Result<(), VolumeError> {
        let err = |message: String| VolumeError::TearDown {
            pod_uid: pod_uid.to_string(),
            message,
        };
        let dir = self.pod_volumes_dir(pod_uid);
        if tokio::fs::symlink_metadata(&dir).await.is_err() {
            return Ok(());
        }
        let mut under = mounts_under(&dir).await.map_err(err)?;
        // Deepest first.
        under.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for m in &under {
            unmount(m).await.map_err(err)?;
        }
        let left = mounts_under(&dir).await.map_err(err)?;
        if !left.is_empty() {
            return Err(err(format!(
                "still mounted after unmounting: {}",
                left.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let d = dir.clone();
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&d))
            .await
            .map_err(|e| err(e.to_string()))?
            .map_err(|e| err(format!("removing {}: {e}", dir.display())))
    }

    /// Pod UIDs that have volume directories on disk (for cleanup of orphans after a restart).
    pub async fn pods_on_disk(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(mut rd) = tokio::fs::read_dir(&self.root).await else {
            return out;
        };
        while let Ok(Some(entry)) = rd.next_entry().await {
            if tokio::fs::metadata(entry.path().join("volumes"))
                .await
                .is_ok_and(|m| m.is_dir())
            {
                out.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        out
    }
}

/// Runs blocking file-system work of a volume's setup.
async fn blocking<F>(volume: &str, f: F) -> Result<(), VolumeError>
where
    F: FnOnce() -> Result<(), String> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| VolumeError::setup(volume, e.to_string()))?
        .map_err(|m| VolumeError::setup(volume, m))
}

/// Upstream emptyDir `setupDir`: the directory exists with mode 0777.
fn make_volume_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let meta = std::fs::metadata(dir).map_err(|e| format!("stat {}: {e}", dir.display()))?;
    if meta.permissions().mode() & 0o777 != 0o777 && !is_tmpfs_root(&meta) {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// A mounted tmpfs root has the sticky bit (1777): leave it as mounted.
fn is_tmpfs_root(meta: &std::fs::Metadata) -> bool {
    meta.permissions().mode() & 0o1000 != 0
}

/// Builds a configMap/secret payload (upstream `MakePayload`).
fn make_payload(
    all: &BTreeMap<&str, &[u8]>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    default_mode: i32,
    kind: &str,
    key_kind: &str,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    match items {
        None | Some([]) => {
            for (k, v) in all {
                payload.insert(
                    (*k).to_string(),
                    FileProjection {
                        data: v.to_vec(),
                        mode: default_mode as u32,
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(data) = all.get(item.key.as_str()) else {
                    if optional {
                        continue;
                    }
                    return Err(format!(
                        "{kind} references non-existent {key_kind} key: {}",
                        item.key
                    ));
                };
                payload.insert(
                    clean_path(&item.path),
                    FileProjection {
                        data: data.to_vec(),
                        mode: item.mode.unwrap_or(default_mode) as u32,
                    },
                );
            }
        }
    }
    Ok(payload)
}

/// `path.Clean` for payload paths (`./a//b` → `a/b`).
fn clean_path(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if parts.is_empty() {
        p.to_string()
    } else {
        parts.join("/")
    }
}

/// upstream `utilerrors.NewAggregate(errs).Error()`.
fn aggregate(errors: Vec<String>) -> Result<(), String> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.into_iter().next().unwrap_or_default()),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

/// The field name of a volume's source (`persistentVolumeClaim`, `nfs`, …).
fn volume_kind(v: &Volume) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| {
            j.as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        })
        .unwrap_or_else(|| "<none>".to_string())
}

/// Expands `$(VAR)` in a subPathExpr with the container's env values (literal values and the
/// pod metadata `fieldRef`s); unknown references stay as written, as upstream.
fn expand_sub_path_expr(expr: &str, pod: &Pod, container: &Container) -> String {
    let mut vars: HashMap<&str, String> = HashMap::new();
    for e in container.env.iter().flatten() {
        if let Some(v) = &e.value {
            vars.insert(&e.name, v.clone());
        } else if let Some(f) = e.value_from.as_ref().and_then(|vf| vf.field_ref.as_ref()) {
            let value = match f.field_path.as_str() {
                "spec.nodeName" => pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                "spec.serviceAccountName" => pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.clone()),
                _ => downward::field_value(pod, f).ok(),
            };
            if let Some(v) = value {
                vars.insert(&e.name, v);
            }
        }
    }
    let mut out = String::new();
    let mut rest = expr;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end) => {
                let name = &after[..end];
                match vars.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push_str("$(");
                        out.push_str(name);
                        out.push(')');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Resolves `sub` inside `volume`: relative, no `..`, created as a directory if missing and
/// allowed (with the volume's mode), and still inside the volume after following symlinks.
fn resolve_sub_path(volume: &Path, sub: &str, creatable: bool) -> Result<PathBuf, String> {
    let p = Path::new(sub);
    if p.is_absolute() {
        return Err(format!("subPath {sub:?} must be a relative path"));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("subPath {sub:?} must not contain '..'"));
    }
    let full = volume.join(p);
    if std::fs::symlink_metadata(&full).is_err() {
        if !creatable {
            return Err(format!("subPath {sub:?} does not exist in the volume"));
        }
        let mode = std::fs::metadata(volume)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o755);
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&full)
            .map_err(|e| format!("mkdir {}: {e}", full.display()))?;
    }
    let base = std::fs::canonicalize(volume).map_err(|e| format!("{}: {e}", volume.display()))?;
    let resolved = std::fs::canonicalize(&full).map_err(|e| format!("{}: {e}", full.display()))?;
    if !resolved.starts_with(&base) {
        return Err(format!(
            "subpath {:?} not within volume path {:?}",
            resolved.display().to_string(),
            base.display().to_string()
        ));
    }
    Ok(resolved)
}

/// Decodes the octal escapes of `/proc/mounts` (`\040` for a space).
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points in `/proc/mounts`.
async fn mount_points() -> Result<Vec<PathBuf>, String> {
    let text = tokio::fs::read_to_string("/proc/mounts")
        .await
        .map_err(|e| format!("reading /proc/mounts: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .collect())
}

/// Mount points at or below `dir`.
async fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>, String> {
    Ok(mount_points()
        .await?
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect())
}

/// Mounts a tmpfs on `dir` unless one is mounted there already (upstream emptyDir
/// `setupTmpfs`).
async fn ensure_tmpfs(dir: &Path, size: Option<i128>) -> Result<(), String> {
    if mount_points().await?.iter().any(|m| m == dir) {
        return Ok(());
    }
    let mut args: Vec<String> = vec!["-t".into(), "tmpfs".into()];
    if let Some(size) = size {
        args.push("-o".into());
        args.push(format!("size={size}"));
    }
    args.push("tmpfs".into());
    args.push(dir.display().to_string());
    run_mount_command("mount", &args).await
}

async fn unmount(dir: &Path) -> Result<(), String> {
    run_mount_command("umount", &[dir.display().to_string()]).await
}

/// Runs `mount`/`umount`; failures are reported as upstream's mount-utils does.
async fn run_mount_command(cmd: &str, args: &[String]) -> Result<(), String> {
    let out = tokio::process::Command::new(cmd)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("{cmd} failed: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let what = if cmd == "mount" {
        "mount failed"
    } else {
        "unmount failed"
    };
    let verb = if cmd == "mount" {
        "Mounting"
    } else {
        "Unmounting"
    };
    Err(format!(
        "{what}: {}\n{verb} command: {cmd}\n{verb} arguments: {}\nOutput: {output}",
        out.status,
        args.join(" ")
    ))
}

/// The host's CPUs and memory as the default node allocatable.
fn host_allocatable() -> BTreeMap<String, Quantity> {
    let mut m = BTreeMap::new();
    if let Ok(n) = std::thread::available_parallelism() {
        m.insert("cpu".to_string(), Quantity(n.get().to_string()));
    }
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo")
        && let Some(kb) = text
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    {
        m.insert("memory".to_string(), Quantity(format!("{}Ki", kb)));
    }
    if let Ok(st) = nix::sys::statvfs::statvfs("/") {
        let bytes = st.blocks() as u128 * st.fragment_size() as u128;
        m.insert("ephemeral-storage".to_string(), Quantity(bytes.to_string()));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mount_paths() {
        assert_eq!(unescape_mount_path("/a\\040b"), "/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }

    #[test]
    fn expands_sub_path_expr() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "env": [
                {"name": "A", "value": "x"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            ]}]}
        }))
        .expect("valid pod");
        let c = &pod.spec.as_ref().expect("spec").containers[0];
        assert_eq!(
            expand_sub_path_expr("$(A)/$(POD)/$(NOPE)", &pod, c),
            "x/p/$(NOPE)"
        );
    }
}
