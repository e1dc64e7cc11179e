//! hostPath type checks, as upstream's `pkg/volume/hostpath/host_path.go` (`checkType`,
//! `typeMatchedOrError`, `makeDir`, `makeFile`) with its messages. Blocking: call from
//! `spawn_blocking`.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path};

/// Upstream `hostutil.GetFileType` names.
fn file_type(path: &Path) -> io::Result<&'static str> {
    let ft = fs::metadata(path)?.file_type();
    Ok(if ft.is_dir() {
        "Directory"
    } else if ft.is_file() {
        "File"
    } else if ft.is_socket() {
        "Socket"
    } else if ft.is_char_device() {
        "CharDevice"
    } else if ft.is_block_device() {
        "BlockDevice"
    } else {
        return Err(io::Error::other(
            "only recognise file, directory, socket, block device and character device",
        ));
    })
}

fn type_matched_or_error(path: &str, expected: &str, description: &str) -> Result<(), String> {
    let p = Path::new(path);
    if fs::metadata(p).is_err() {
        return Err(format!("hostPath {path} doesn't exist"));
    }
    match file_type(p) {
        Err(e) => Err(format!(
            "hostPath type check failed, {path} is not a {description}, unable to determine its type: {e}"
        )),
        Ok(t) if t != expected => Err(format!(
            "hostPath type check failed: {path} is not a {description}, it's a {t}"
        )),
        Ok(_) => Ok(()),
    }
}

/// Validates the path and checks (or creates) it according to `type` (upstream `SetUp`).
pub fn check(path: &str, path_type: &str) -> Result<(), String> {
    if Path::new(path)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(format!("invalid HostPath `{path}`: must not contain '..'"));
    }
    let exists = || fs::metadata(path).is_ok();
    match path_type {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if !exists() {
                return make_dir(path);
            }
            type_matched_or_error(path, "Directory", "directory")
        }
        "Directory" => type_matched_or_error(path, "Directory", "directory"),
        "FileOrCreate" => {
            if !exists() {
                return make_file(path);
            }
            type_matched_or_error(path, "File", "file")
        }
        "File" => type_matched_or_error(path, "File", "file"),
        "Socket" => type_matched_or_error(path, "Socket", "socket file"),
        "CharDevice" => type_matched_or_error(path, "CharDevice", "character device"),
        "BlockDevice" => type_matched_or_error(path, "BlockDevice", "block device"),
        other => Err(format!("{other} is an invalid volume type")),
    }
}

/// `os.MkdirAll(path, 0755)`; an existing path is fine.
fn make_dir(path: &str) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("mkdir {path}: {e}")),
    }
}

/// `os.OpenFile(path, O_CREATE, 0644)`; an existing path is fine.
fn make_file(path: &str) -> Result<(), String> {
    match fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("open {path}: {e}")),
    }
}
