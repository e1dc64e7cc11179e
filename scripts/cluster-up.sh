#!/usr/bin/env bash
# Starts a local r8s control plane in the background and tells how to reach it with kubectl.
#
#   scripts/cluster-up.sh
#
# Installs the dependencies (scripts/install-deps.sh), builds target/release/r8s, builds the
# offline images and starts their local registry (images/setup.sh), starts `r8s server` (control
# plane plus a node agent running real containers, pulling through the local registry) with the default data dir /var/lib/r8s when run as root (else ~/.r8s), or with
# $R8S_DATA_DIR, on port $R8S_PORT (default 6443), waits until /readyz answers and prints the
# commands to use it. R8S_BIN=<path> skips the build and runs that binary instead. The
# server's log and pid file are in target/cluster/. Stop it with scripts/cluster-down.sh.
# Running it again while the server is up only prints the commands.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

"$REPO/scripts/install-deps.sh"

KUBECTL="${KUBECTL:-$REPO/.venv/bin/kubectl}"
PORT="${R8S_PORT:-6443}"
if [ -n "${R8S_DATA_DIR:-}" ]; then
    DATA_DIR="$R8S_DATA_DIR"
elif [ "$(id -u)" -eq 0 ]; then
    DATA_DIR="/var/lib/r8s"
else
    DATA_DIR="$HOME/.r8s"
fi
RUN_DIR="$REPO/target/cluster"
PID_FILE="$RUN_DIR/server.pid"
LOG_FILE="$RUN_DIR/server.log"
KUBECONFIG_FILE="$DATA_DIR/kubeconfig.yaml"

if [ -n "${R8S_BIN:-}" ]; then
    BIN="$R8S_BIN"
else
    echo "cluster-up: building target/release/r8s" >&2
    cargo build --release -p r8s </dev/null
    BIN="$REPO/target/release/r8s"
fi

mkdir -p "$RUN_DIR"
# Images for pods: no registry on the internet is reachable here, so build them offline and serve
# them from a local registry that the node agent uses as its docker.io / registry.k8s.io mirror.
REGISTRY="${R8S_REGISTRY:-127.0.0.1:5000}"
if [ -z "${R8S_REGISTRY:-}" ]; then
    "$REPO/images/setup.sh" "${R8S_IMAGES_DIR:-$REPO/target/r8s-images}" >&2
fi
running=0
if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    running=1
    echo "cluster-up: r8s server already running (pid $(cat "$PID_FILE"))" >&2
else
    args=(server --https-port "$PORT" --bind-address 127.0.0.1 --registry-mirror "$REGISTRY")
    if [ -n "${R8S_DATA_DIR:-}" ] || [ "$(id -u)" -ne 0 ]; then
        args+=(--data-dir "$DATA_DIR")
    fi
    echo "cluster-up: starting $BIN ${args[*]} (log: $LOG_FILE)" >&2
    nohup "$BIN" "${args[@]}" </dev/null >>"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
fi

pid="$(cat "$PID_FILE")"
ready=0
for _ in $(seq 1 120); do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "cluster-up: r8s server exited; last log lines:" >&2
        tail -n 40 "$LOG_FILE" >&2 || true
        rm -f "$PID_FILE"
        exit 1
    fi
    if [ -f "$KUBECONFIG_FILE" ] &&
        [ "$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz 2>/dev/null)" = "ok" ]; then
        ready=1
        break
    fi
    sleep 0.5
done
if [ "$ready" -ne 1 ]; then
    echo "cluster-up: r8s server did not become ready within 60s; last log lines:" >&2
    tail -n 40 "$LOG_FILE" >&2 || true
    exit 1
fi
[ "$running" -eq 1 ] || echo "cluster-up: r8s server is ready (pid $pid)" >&2

cat <<MSG

# r8s is running. To use it:
export KUBECONFIG=$KUBECONFIG_FILE
export PATH=$(dirname "$KUBECTL"):\$PATH   # kubectl $("$KUBECTL" version --client 2>/dev/null | sed -n 's/^Client Version: //p'): $KUBECTL
kubectl get nodes
kubectl create deployment nginx --image=nginx
MSG
