//! Upstream's `AtomicWriter` (`pkg/volume/util/atomic_writer.go`): a volume's files are written
//! into a fresh timestamped directory `..<timestamp>.<random>`, the `..data` symlink is swapped to
//! it with one `rename(2)`, and the user-visible entries are symlinks `key -> ..data/key`. A reader
//! sees either the whole old payload or the whole new one, and containers see updates in place.
//!
//! Everything here is blocking file-system work: call it from `spawn_blocking`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

/// The symlink to the current timestamped directory.
pub const DATA_DIR_NAME: &str = "..data";
/// The temporary symlink renamed over [`DATA_DIR_NAME`].
pub const NEW_DATA_DIR_NAME: &str = "..data_tmp";

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    /// The content.
    pub data: Vec<u8>,
    /// The permission bits (`defaultMode` or the item's `mode`).
    pub mode: u32,
}

/// Relative path → file.
pub type Payload = BTreeMap<String, FileProjection>;

/// Why a payload could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    /// A payload path is absolute, empty or climbs out of the volume.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The offending path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> AtomicWriteError + 'a {
    move |source| AtomicWriteError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Checks a payload path as upstream's `validatePath`: relative, not empty, no `..` element and
/// not starting with `..` (reserved for the writer's own entries).
pub fn validate_path(path: &str) -> Result<(), AtomicWriteError> {
    let bad = |reason| {
        Err(AtomicWriteError::InvalidPath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("must not be empty");
    }
    if Path::new(path).is_absolute() {
        return bad("must be relative path");
    }
    if path.len() > 4096 {
        return bad("must be less than or equal to 4096 characters");
    }
    if path.split('/').any(|e| e.len() > 255) {
        return bad("must not contain path elements longer than 255 characters");
    }
    if Path::new(path)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return bad("must not contain '..'");
    }
    if path.starts_with("..") {
        return bad("must not start with '..'");
    }
    Ok(())
}

/// The first element of a payload path: the user-visible entry at the volume's top level.
fn first_element(path: &str) -> &str {
    path.trim_start_matches("./")
        .split('/')
        .find(|e| !e.is_empty() && *e != ".")
        .unwrap_or(path)
}

/// Writes `payload` into `target` atomically. Returns whether anything changed on disk.
pub fn write(target: &Path, payload: &Payload) -> Result<bool, AtomicWriteError> {
    for p in payload.keys() {
        validate_path(p)?;
    }
    fs::create_dir_all(target).map_err(io_err("creating", target))?;
    let data_dir = target.join(DATA_DIR_NAME);
    let old_ts = fs::read_link(&data_dir).ok();
    let old_ts_path = old_ts.as_ref().map(|ts| target.join(ts));

    // Entries visible today that the new payload no longer has.
    let new_visible: BTreeSet<&str> = payload.keys().map(|p| first_element(p)).collect();
    let old_visible = visible_entries(target)?;
    let to_remove: Vec<String> = old_visible
        .into_iter()
        .filter(|e| !new_visible.contains(e.as_str()))
        .collect();

    let unchanged = match &old_ts_path {
        Some(dir) => payload_matches(dir, payload)?,
        None => false,
    };
    if unchanged && to_remove.is_empty() {
        // Still make sure every user-visible symlink exists (a crash between steps).
        create_visible(target, payload)?;
        return Ok(false);
    }

    let ts_dir = new_timestamp_dir(target)?;
    if let Err(e) = write_payload(&ts_dir, payload) {
        let _ = fs::remove_dir_all(&ts_dir);
        return Err(e);
    }
    let ts_name = ts_dir
        .file_name()
        .expect("a timestamped directory has a file name")
        .to_os_string();

    // Swap `..data` with one rename.
    let tmp_link = target.join(NEW_DATA_DIR_NAME);
    match fs::remove_file(&tmp_link) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("removing", &tmp_link)(e)),
    }
    symlink(&ts_name, &tmp_link).map_err(io_err("creating symlink", &tmp_link))?;
    fs::rename(&tmp_link, &data_dir).map_err(io_err("renaming to", &data_dir))?;

    create_visible(target, payload)?;
    for entry in to_remove {
        let p = target.join(&entry);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &p)(e)),
        }
    }
    if let Some(old) = old_ts_path
        && old != ts_dir
    {
        fs::remove_dir_all(&old).map_err(io_err("removing", &old))?;
    }
    Ok(true)
}

/// The user-visible entries: everything at the top level not starting with `..`.
fn visible_entries(target: &Path) -> Result<BTreeSet<String>, AtomicWriteError> {
    let mut out = BTreeSet::new();
    for entry in fs::read_dir(target).map_err(io_err("reading", target))? {
        let entry = entry.map_err(io_err("reading", target))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") {
            out.insert(name);
        }
    }
    Ok(out)
}

/// Whether the files under `dir` are exactly the payload (same paths, contents and modes).
fn payload_matches(dir: &Path, payload: &Payload) -> Result<bool, AtomicWriteError> {
    let mut on_disk = BTreeSet::new();
    if collect_files(dir, dir, &mut on_disk).is_err() {
        return Ok(false);
    }
    if on_disk.len() != payload.len() {
        return Ok(false);
    }
    for (path, file) in payload {
        let rel = normalize(path);
        if !on_disk.contains(&rel) {
            return Ok(false);
        }
        let full = dir.join(&rel);
        let Ok(meta) = fs::symlink_metadata(&full) else {
            return Ok(false);
        };
        if meta.permissions().mode() & 0o7777 != file.mode & 0o7777 {
            return Ok(false);
        }
        match fs::read(&full) {
            Ok(content) if content == file.data => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

fn normalize(path: &str) -> String {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn collect_files(root: &Path, dir: &Path, out: &mut BTreeSet<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        let path = entry.path();
        if ft.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .map_err(|_| io::Error::other("path outside its root"))?;
            out.insert(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// Creates `..YYYY_MM_DD_HH_MM_SS.<random>` (upstream: `os.MkdirTemp` with that prefix), 0755.
fn new_timestamp_dir(target: &Path) -> Result<PathBuf, AtomicWriteError> {
    let prefix = chrono::Utc::now()
        .format("..%Y_%m_%d_%H_%M_%S.")
        .to_string();
    loop {
        let dir = target.join(format!("{prefix}{}", rand::random::<u32>()));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                    .map_err(io_err("chmod", &dir))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("creating", &dir)(e)),
        }
    }
}

fn write_payload(dir: &Path, payload: &Payload) -> Result<(), AtomicWriteError> {
    for (path, file) in payload {
        let full = dir.join(normalize(path));
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        fs::write(&full, &file.data).map_err(io_err("writing", &full))?;
        // Explicitly, as the umask may have masked bits away.
        fs::set_permissions(&full, fs::Permissions::from_mode(file.mode & 0o7777))
            .map_err(io_err("chmod", &full))?;
    }
    Ok(())
}

/// Creates the symlink `<first element> -> ..data/<first element>` for each payload path.
fn create_visible(target: &Path, payload: &Payload) -> Result<(), AtomicWriteError> {
    let firsts: BTreeSet<&str> = payload.keys().map(|p| first_element(p)).collect();
    for first in firsts {
        let link = target.join(first);
        if fs::symlink_metadata(&link).is_ok() {
            continue;
        }
        symlink(Path::new(DATA_DIR_NAME).join(first), &link)
            .map_err(io_err("creating symlink", &link))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_paths() {
        assert!(validate_path("a/b").is_ok());
        assert!(validate_path("..data").is_err());
        assert!(validate_path("a/../b").is_err());
        assert!(validate_path("/etc/x").is_err());
        assert!(validate_path("").is_err());
    }

    #[test]
    fn first_elements() {
        assert_eq!(first_element("a/b/c"), "a");
        assert_eq!(first_element("./k"), "k");
        assert_eq!(first_element("k"), "k");
    }
}
