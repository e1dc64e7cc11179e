//! The official Python client (`kubernetes` on PyPI, installed in the venv by
//! `scripts/install-deps.sh`) creates, lists, watches, patches and deletes against r8s.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testsupport::{paths, shared_server, unique_name};

#[test]
fn python_client_creates_lists_watches_patches_and_deletes() {
    let Some(srv) = shared_server() else { return };
    let Some(python) = paths::python_binary() else {
        if paths::in_ci() {
            panic!(
                "the venv's python not found and CI is set: run scripts/install-deps.sh or set R8S_PYTHON"
            );
        }
        eprintln!(
            "SKIP: python with the kubernetes package not found (set R8S_PYTHON or run scripts/install-deps.sh)"
        );
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_test.py");
    let ns = unique_name("e2e-python");
    let mut cmd = Command::new(&python);
    cmd.arg(&script)
        .arg(srv.kubeconfig_path())
        .arg(&ns)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = match testsupport::process::run_with_timeout(cmd, None, Duration::from_secs(180)) {
        Ok(Ok(out)) => out,
        Ok(Err(timed_out)) => panic!("python client test: {timed_out}"),
        Err(e) => panic!("running {}: {e}", python.display()),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("python client: all checks passed"),
        "python client test failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- server log (tail) ---\n{}",
        out.status,
        srv.log_tail(20)
    );
}
