//! Where the tools the tests run are found.
//!
//! | what | first | then |
//! |---|---|---|
//! | `r8s` binary | `$R8S_BIN` | the newer of `<target>/release/r8s` and `<target>/debug/r8s` |
//! | kubectl (≥ v1.35) | `$KUBECTL` | `<repo>/.venv/bin/kubectl` (made by `scripts/install-deps.sh`) |
//! | Python with `kubernetes` | `$R8S_PYTHON` | `<repo>/.venv/bin/python` |
//!
//! Debian's `/usr/bin/kubectl` is deliberately never used: it is an old stand-in.

use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// The cargo target directory (`$CARGO_TARGET_DIR` or `<repo>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The `r8s` binary to test, if one exists.
pub fn r8s_binary() -> Option<PathBuf> {
    if let Some(bin) = env_path("R8S_BIN") {
        return bin.is_file().then_some(bin);
    }
    let target = target_dir();
    let candidates = [target.join("release/r8s"), target.join("debug/r8s")];
    candidates
        .into_iter()
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((modified, p))
        })
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, p)| p)
}

/// The real kubectl to use, if installed.
pub fn kubectl_binary() -> Option<PathBuf> {
    if let Some(bin) = env_path("KUBECTL") {
        return bin.is_file().then_some(bin);
    }
    let venv = workspace_root().join(".venv/bin/kubectl");
    venv.is_file().then_some(venv)
}

/// The venv's Python interpreter (with the `kubernetes` package), if installed.
pub fn python_binary() -> Option<PathBuf> {
    if let Some(bin) = env_path("R8S_PYTHON") {
        return bin.is_file().then_some(bin);
    }
    let venv = workspace_root().join(".venv/bin/python");
    venv.is_file().then_some(venv)
}

/// Whether the tests run in CI (`CI` set to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
        .unwrap_or(false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let root = workspace_root();
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"), "{}", root.display());
    }

    #[test]
    fn target_dir_is_under_the_root_by_default() {
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            assert_eq!(target_dir(), workspace_root().join("target"));
        }
    }
}
