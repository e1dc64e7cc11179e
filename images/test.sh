#!/usr/bin/env bash
# End-to-end proof that the images work with the real runtime (run as root):
#   1. images/setup.sh builds the images and serves them from a registry on a free loopback port
#      (or, given DATA_DIR [ADDR], reuses/starts that setup instead of a temporary one);
#   2. a PRIVATE containerd (own root, state, socket; config as in
#      /work/shared/reference/node-runtime.md §1, with restrict_oom_score_adj = true, cgroupfs,
#      CNI bin_dir /usr/lib/cni and registry.config_path = a certs.d from images/mirror-config.sh)
#      pulls docker.io/library/nginx:latest, docker.io/library/nginx:1.14.2,
#      docker.io/library/busybox:latest and registry.k8s.io/pause:3.10 through the mirror, and the
#      registry log shows the mirror requests (/v2/library/nginx/manifests/latest?ns=docker.io);
#      the CRI PullImage (over the socket, by hand with curl) pulls busybox:1.36 and
#      registry.k8s.io/pause:3.9 through registry.config_path;
#   3. nginx runs in a private network namespace: curl gets "Welcome to nginx!", the access log
#      reaches the container's stdout, `sh`, `cat`, `ls`, `tar`, `wget` work in it, busybox in the
#      same namespace runs `sh -c 'echo ok'` and fetches the page with wget, nginx stops on
#      SIGQUIT (its StopSignal);
#   4. pause runs and exits 0 on SIGTERM.
# Everything it creates is removed at the end: tasks and containers, their cgroups
# (/r8s-images-test-<pid>), containerd (killed by its pid), the network namespace, the temporary directory and the temporary registry. containerd's
# shims put sockets in /run/containerd/s and libcni caches in /var/lib/cni whatever the config
# says; those directories are removed too if this test created them and they are empty.
#
# Usage: images/test.sh [DATA_DIR [ADDR]]     prints PASS or FAIL; exit status 0 only on PASS.
set -euo pipefail
umask 022

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
START_NS="$(date +%s%N)"

log() { echo "images/test: $*" >&2; }
fail() {
    log "FAIL: $*"
    echo "FAIL"
    exit 1
}
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

[ "$(id -u)" -eq 0 ] || fail "must run as root (containerd, mounts, network namespaces)"
for tool in containerd ctr runc curl nsenter unshare mount; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool not found"
done

T="$(mktemp -d /tmp/r8s-images-test.XXXXXX)"
SOCK="$T/containerd/containerd.sock"
NETNS="$T/netns/test"
CERTS_D="$T/certs.d"
# ctr run would put containers in the cgroup /k8s.io/<id> and leave /k8s.io behind: use our own.
CGROUP="/r8s-images-test-$$"
CTRD_PID=""
OWN_REGISTRY=""
CREATED_DIRS=()
for d in /run/containerd/s /run/containerd /var/lib/cni; do
    [ -e "$d" ] || CREATED_DIRS+=("$d")
done

ctr_() { ctr -a "$SOCK" -n k8s.io "$@"; }

cleanup() {
    local rc=$? id d i
    set +e
    if [ -n "$CTRD_PID" ] && kill -0 "$CTRD_PID" 2>/dev/null; then
        for id in $(ctr_ tasks ls -q 2>/dev/null); do
            ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1
        done
        for id in $(ctr_ tasks ls -q 2>/dev/null); do
            for i in $(seq 1 50); do
                ctr_ tasks ls 2>/dev/null | grep "^$id .*STOPPED" >/dev/null && break
                sleep 0.1
            done
            ctr_ tasks rm -f "$id" >/dev/null 2>&1
        done
        for id in $(ctr_ containers ls -q 2>/dev/null); do
            ctr_ containers rm "$id" >/dev/null 2>&1
        done
        kill "$CTRD_PID"
        for i in $(seq 1 100); do
            kill -0 "$CTRD_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$CTRD_PID" 2>/dev/null && kill -9 "$CTRD_PID"
    fi
    # Mounts under $T (overlay snapshots, the netns bind mount, the private netns dir), deepest first.
    awk -v t="$T/" 'index($5, t) == 1 || $5 == substr(t, 1, length(t) - 1) { print $5 }' \
        /proc/self/mountinfo | sort -r | while read -r mnt; do
        umount "$mnt" 2>/dev/null || umount -l "$mnt"
    done
    find /sys/fs/cgroup/*/"${CGROUP#/}" -depth -type d -exec rmdir {} + 2>/dev/null
    if [ -n "$OWN_REGISTRY" ]; then
        "$HERE/registry.sh" stop "$OWN_REGISTRY" >/dev/null 2>&1
    fi
    rm -rf "$T"
    for d in "${CREATED_DIRS[@]}"; do
        rmdir "$d" 2>/dev/null
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. images and registry ------------------------------------------------------------------
if [ "$#" -ge 1 ]; then
    DATA="$1"
    ADDR="${2:-127.0.0.1:5000}"
else
    DATA="$T/data"
    ADDR=""
    for port in $(seq 5100 5199); do
        if ! ss -Hltn "sport = :$port" | grep . >/dev/null && ! curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/" 2>/dev/null; then
            ADDR="127.0.0.1:$port"
            break
        fi
    done
    [ -n "$ADDR" ] || fail "no free port in 127.0.0.1:5100-5199"
    OWN_REGISTRY="$DATA/registry"
fi
t0="$(date +%s%N)"
"$HERE/setup.sh" "$DATA" "$ADDR" >/dev/null || fail "images/setup.sh $DATA $ADDR"
DATA="$(cd "$DATA" && pwd)"
log "setup.sh: $(ms_since "$t0") ms (registry $ADDR)"
REGISTRY_LOG="$DATA/registry/registry.log"
"$HERE/mirror-config.sh" "$CERTS_D" "$ADDR" 2>/dev/null

# --- 2. private containerd -------------------------------------------------------------------
mkdir -p "$T/containerd" "$T/cni/net.d" "$T/netns"
cat >"$T/containerd/config.toml" <<EOF
version = 2
root = "$T/containerd/root"
state = "$T/containerd/state"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
        Root = "$T/containerd/runc-root"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$T/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$CERTS_D"
EOF
containerd --config "$T/containerd/config.toml" </dev/null >"$T/containerd.log" 2>&1 &
CTRD_PID=$!
for i in $(seq 1 200); do
    [ -S "$SOCK" ] && ctr -a "$SOCK" version >/dev/null 2>&1 && break
    kill -0 "$CTRD_PID" 2>/dev/null || fail "containerd exited: $(tail -n 5 "$T/containerd.log")"
    [ "$i" -lt 200 ] || fail "containerd did not come up"
    sleep 0.05
done
log "containerd up (pid $CTRD_PID)"

# --- pulls through the mirror ----------------------------------------------------------------
mirror_hits() { grep -c "uri=\"/v2/$1/manifests/$2?ns=$3\"" "$REGISTRY_LOG" || true; }
before="$(mirror_hits library/nginx latest docker.io)"
for ref in docker.io/library/nginx:latest docker.io/library/nginx:1.14.2 \
    docker.io/library/busybox:latest registry.k8s.io/pause:3.10; do
    t0="$(date +%s%N)"
    ctr_ images pull --hosts-dir "$CERTS_D" "$ref" >"$T/pull.log" 2>&1 ||
        fail "pull $ref: $(tail -n 3 "$T/pull.log")"
    log "pulled $ref in $(ms_since "$t0") ms"
done
after="$(mirror_hits library/nginx latest docker.io)"
[ "$after" -gt "$before" ] ||
    fail "the registry log shows no GET /v2/library/nginx/manifests/latest?ns=docker.io"
[ "$(mirror_hits pause 3.10 registry.k8s.io)" -gt 0 ] ||
    fail "the registry log shows no GET /v2/pause/manifests/3.10?ns=registry.k8s.io"
ctr_ images ls -q | grep -x docker.io/library/nginx:1.14.2 >/dev/null || fail "nginx:1.14.2 not listed"

# The CRI PullImage the kubelet calls, which resolves through registry.config_path (not
# --hosts-dir): one gRPC frame by hand over HTTP/2 on the socket. The request is
# PullImageRequest{image: ImageSpec{image: REF}}, i.e. 0a <len+2> 0a <len> REF (REF < 124 bytes).
# shellcheck disable=SC2059 # the format is the octal escape of one byte, on purpose
byte() { printf "\\$(printf '%03o' "$1")"; }
cri_pull() {
    local n="${#1}" status
    { byte 0; byte 0; byte 0; byte 0; byte $((n + 4)); byte 10; byte $((n + 2)); byte 10; byte "$n"
      printf '%s' "$1"; } >"$T/pull.req"
    curl -sS --http2-prior-knowledge --unix-socket "$SOCK" --max-time 20 -D "$T/pull.hdr" \
        -H 'content-type: application/grpc' -H 'te: trailers' --data-binary "@$T/pull.req" \
        -o "$T/pull.resp" http://localhost/runtime.v1.ImageService/PullImage ||
        fail "CRI PullImage $1: curl failed"
    status="$(tr -d '\r' <"$T/pull.hdr" | sed -n 's/^grpc-status: //p')"
    [ "$status" = 0 ] || fail "CRI PullImage $1: $(tr -d '\r' <"$T/pull.hdr" | grep '^grpc-')"
    grep -a 'sha256:' "$T/pull.resp" >/dev/null || fail "CRI PullImage $1: no image ref in the reply"
}
for ref in busybox:1.36 registry.k8s.io/pause:3.9; do
    t0="$(date +%s%N)"
    cri_pull "$ref"
    log "CRI PullImage $ref in $(ms_since "$t0") ms"
done
ctr_ images ls -q | grep -x docker.io/library/busybox:1.36 >/dev/null || fail "busybox:1.36 not listed after CRI PullImage"
[ "$(mirror_hits pause 3.9 registry.k8s.io)" -gt 0 ] ||
    fail "the registry log shows no GET /v2/pause/manifests/3.9?ns=registry.k8s.io (CRI config_path)"

# --- 3. nginx in a private network namespace -------------------------------------------------
# A private bind mount holds the netns file (no /run/netns, nothing outside $T).
mount --bind "$T/netns" "$T/netns"
mount --make-private "$T/netns"
touch "$NETNS"
unshare --net="$NETNS" ip link set lo up
in_netns() { nsenter --net="$NETNS" "$@"; }

t0="$(date +%s%N)"
ctr_ run -d --cgroup "$CGROUP/r8s-test-nginx" --with-ns "network:$NETNS" --log-uri "file://$T/nginx.log" \
    docker.io/library/nginx:latest r8s-test-nginx >/dev/null || fail "ctr run nginx"
page=""
for i in $(seq 1 100); do
    page="$(in_netns curl -fsS --max-time 1 http://127.0.0.1/ 2>/dev/null)" && break
    sleep 0.05
done
grep -q "<h1>Welcome to nginx!</h1>" <<<"$page" ||
    fail "nginx did not serve the welcome page: $(tail -n 5 "$T/nginx.log")"
log "nginx serves 'Welcome to nginx!' $(ms_since "$t0") ms after ctr run"
grep -q '"GET / HTTP/1.1" 200' "$T/nginx.log" || fail "no access log line on nginx's stdout"
in_netns curl -fsS -o /dev/null --max-time 1 http://127.0.0.1/50x.html || fail "no /50x.html"

out="$(ctr_ tasks exec --exec-id probe r8s-test-nginx sh -c \
    'echo ok >/tmp/healthy && cat /tmp/healthy && ls /usr/share/nginx/html >/dev/null &&
     tar -cf - -C /etc/nginx nginx.conf | tar -tf - && sleep 0 &&
     timeout 3 wget -qO- http://127.0.0.1/ | grep -c "<h1>Welcome to nginx!</h1>" &&
     ps -o user,comm | grep -q "^nginx *nginx" && echo workers-as-nginx')" ||
    fail "exec in nginx: $out"
[ "$out" = "ok
nginx.conf
1
workers-as-nginx" ] || fail "exec in nginx printed: $out"
ctr_ tasks exec --exec-id cat r8s-test-nginx cat /tmp/healthy >/dev/null || fail "exec [cat, /tmp/healthy]"
log "exec in nginx: sh, cat, ls, tar, sleep, wget, workers run as nginx"

out="$(ctr_ run --rm --cgroup "$CGROUP/r8s-test-busybox" --with-ns "network:$NETNS" docker.io/library/busybox:latest r8s-test-busybox \
    sh -c 'echo ok; timeout 3 wget -qO- http://127.0.0.1/ | grep -c "<h1>Welcome to nginx!</h1>"')" ||
    fail "busybox: $out"
[ "$out" = "ok
1" ] || fail "busybox printed: $out"
log "busybox: sh -c 'echo ok' and wget from the same netns"

ctr_ tasks kill -s SIGQUIT r8s-test-nginx
for i in $(seq 1 100); do
    ctr_ tasks ls | grep "^r8s-test-nginx .*STOPPED" >/dev/null && break
    [ "$i" -lt 100 ] || fail "nginx did not stop on SIGQUIT"
    sleep 0.05
done
ctr_ tasks rm r8s-test-nginx >/dev/null
ctr_ containers rm r8s-test-nginx
log "nginx stopped on SIGQUIT"

# --- 4. pause --------------------------------------------------------------------------------
ctr_ run --rm --cgroup "$CGROUP/r8s-test-pause" --with-ns "network:$NETNS" registry.k8s.io/pause:3.10 r8s-test-pause \
    >"$T/pause.log" 2>&1 &
pause_ctr=$!
for i in $(seq 1 100); do
    ctr_ tasks ls 2>/dev/null | grep "^r8s-test-pause .*RUNNING" >/dev/null && break
    [ "$i" -lt 100 ] || fail "pause did not start: $(cat "$T/pause.log")"
    sleep 0.05
done
ctr_ tasks kill -s SIGTERM r8s-test-pause
rc=0
wait "$pause_ctr" || rc=$?
[ "$rc" -eq 0 ] || fail "pause exited $rc on SIGTERM: $(cat "$T/pause.log")"
grep -q "Shutting down, got signal" "$T/pause.log" || fail "pause printed: $(cat "$T/pause.log")"
log "pause runs as PID 1 and exits 0 on SIGTERM"

log "all checks passed in $(ms_since "$START_NS") ms"
echo "PASS"
