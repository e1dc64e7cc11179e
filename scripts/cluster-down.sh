#!/usr/bin/env bash
# Stops the r8s server that scripts/cluster-up.sh started (the pid in target/cluster/server.pid).
# The data dir is kept, so the next scripts/cluster-up.sh finds the same objects.
#
#   scripts/cluster-down.sh            # stop the server; pods' containers keep running (like a
#                                      # kubelet restart: the next start adopts them)
#   scripts/cluster-down.sh --kill-all # also delete every pod, wait for their containers to go,
#                                      # stop the agent's containerd and remove the service
#                                      # proxy's nftables table
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PID_FILE="$REPO/target/cluster/server.pid"
KUBECTL="${KUBECTL:-$REPO/.venv/bin/kubectl}"
if [ -n "${R8S_DATA_DIR:-}" ]; then
    DATA_DIR="$R8S_DATA_DIR"
elif [ "$(id -u)" -eq 0 ]; then
    DATA_DIR="/var/lib/r8s"
else
    DATA_DIR="$HOME/.r8s"
fi
KILL_ALL=0
[ "${1:-}" = "--kill-all" ] && KILL_ALL=1

if [ ! -f "$PID_FILE" ]; then
    echo "cluster-down: no pid file ($PID_FILE); nothing to stop" >&2
    exit 0
fi
pid="$(cat "$PID_FILE")"
if kill -0 "$pid" 2>/dev/null; then
    if [ "$KILL_ALL" -eq 1 ]; then
        echo "cluster-down: deleting every pod" >&2
        "$KUBECTL" --kubeconfig "$DATA_DIR/kubeconfig.yaml" delete pods --all -A \
            --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
        sock="$DATA_DIR/agent/containerd/containerd.sock"
        for _ in $(seq 1 100); do
            [ -S "$sock" ] || break
            [ -z "$(ctr -a "$sock" -n k8s.io containers ls -q 2>/dev/null)" ] && break
            sleep 0.3
        done
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "cluster-down: pid $pid did not stop after SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "cluster-down: stopped r8s server (pid $pid)" >&2
else
    echo "cluster-down: r8s server (pid $pid) was not running" >&2
fi
rm -f "$PID_FILE"
if [ "$KILL_ALL" -eq 1 ]; then
    # The service proxy's nftables table (it outlives the agent by design, like kube-proxy's).
    BIN="${R8S_BIN:-$REPO/target/release/r8s}"
    if [ -x "$BIN" ]; then
        "$BIN" agent --cleanup -d "$DATA_DIR" >/dev/null 2>&1 || true
    elif command -v nft >/dev/null; then
        nft delete table ip r8s 2>/dev/null || true
    fi
fi
if [ "$KILL_ALL" -eq 1 ] && [ -f "$DATA_DIR/agent/containerd/containerd.pid" ]; then
    cpid="$(cat "$DATA_DIR/agent/containerd/containerd.pid")"
    if grep -q containerd "/proc/$cpid/cmdline" 2>/dev/null; then
        kill -TERM "$cpid" && echo "cluster-down: stopped containerd (pid $cpid)" >&2
    fi
fi
