//! Pod-level cgroups (cgroupfs driver). runc creates `/kubepods/<qos>/pod<uid>/<container>` in
//! every hierarchy; containerd removes the container cgroups but leaves the pod's, so the agent
//! removes them when the pod is gone.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// The pod cgroup directories that may exist for `uid` in one hierarchy.
fn candidates(hierarchy: &Path, uid: &str) -> [PathBuf; 3] {
    let pod = format!("pod{uid}");
    [
        hierarchy.join("kubepods").join(&pod),
        hierarchy.join("kubepods").join("burstable").join(&pod),
        hierarchy.join("kubepods").join("besteffort").join(&pod),
    ]
}

/// Removes the pod's cgroup directories (children first) in every hierarchy.
pub async fn remove_pod(uid: &str) {
    let Ok(mut rd) = tokio::fs::read_dir(ROOT).await else {
        return;
    };
    while let Ok(Some(e)) = rd.next_entry().await {
        for dir in candidates(&e.path(), uid) {
            remove_tree(&dir).await;
        }
    }
}

async fn remove_tree(dir: &Path) {
    if let Ok(mut rd) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(e)) = rd.next_entry().await {
            if e.file_type().await.is_ok_and(|t| t.is_dir()) {
                Box::pin(remove_tree(&e.path())).await;
            }
        }
    } else {
        return;
    }
    if let Err(e) = tokio::fs::remove_dir(dir).await {
        tracing::debug!(dir = %dir.display(), error = %e, "removing a pod cgroup");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_paths_cover_every_qos_class() {
        let c = candidates(Path::new("/sys/fs/cgroup/memory"), "u1");
        assert_eq!(c[0], Path::new("/sys/fs/cgroup/memory/kubepods/podu1"));
        assert_eq!(
            c[1],
            Path::new("/sys/fs/cgroup/memory/kubepods/burstable/podu1")
        );
        assert_eq!(
            c[2],
            Path::new("/sys/fs/cgroup/memory/kubepods/besteffort/podu1")
        );
    }
}
