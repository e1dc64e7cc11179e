#!/usr/bin/env bash
# Stops the r8s server that scripts/cluster-up.sh started (the pid in target/cluster/server.pid).
# The data dir is kept, so the next scripts/cluster-up.sh finds the same objects.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PID_FILE="$REPO/target/cluster/server.pid"

if [ ! -f "$PID_FILE" ]; then
    echo "cluster-down: no pid file ($PID_FILE); nothing to stop" >&2
    exit 0
fi
pid="$(cat "$PID_FILE")"
if kill -0 "$pid" 2>/dev/null; then
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
