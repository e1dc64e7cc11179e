#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, the release build, then all tests
# (unit, integration and the end-to-end suite in crates/e2e, which drives target/release/r8s
# with the real kubectl and the official Python client).
#
#   scripts/test.sh [extra args for cargo test]
#
# Exits non-zero when any step fails. fmt and clippy failures do not stop the tests from
# running (so one run shows everything); they still make the script fail at the end.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

"$REPO/scripts/install-deps.sh"

export KUBECTL="${KUBECTL:-$REPO/.venv/bin/kubectl}"
export R8S_PYTHON="${R8S_PYTHON:-$REPO/.venv/bin/python}"
export R8S_BIN="$REPO/target/release/r8s"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# CI builds from a clean checkout, where incremental caches only cost disk (about 3 GB of
# target/debug/incremental for the test build).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

failed=()

echo "test.sh: cargo fmt --all --check" >&2
if ! cargo fmt --all --check </dev/null; then
    failed+=("cargo fmt --check")
fi

echo "test.sh: cargo clippy --workspace --all-targets -- -D warnings" >&2
if ! cargo clippy --workspace --all-targets --quiet </dev/null -- -D warnings; then
    failed+=("cargo clippy")
fi

echo "test.sh: cargo build --release -p r8s" >&2
cargo build --release -p r8s </dev/null

echo "test.sh: cargo test --workspace (R8S_BIN=$R8S_BIN, KUBECTL=$KUBECTL)" >&2
test_rc=0
cargo test --workspace --no-fail-fast "$@" </dev/null || test_rc=$?

if [ "${#failed[@]}" -gt 0 ]; then
    echo "test.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
exit "$test_rc"
