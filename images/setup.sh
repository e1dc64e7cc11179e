#!/usr/bin/env bash
# One call that makes the node's images available offline from a local registry:
#   1. images/build.sh    DATA_DIR/images      (OCI layout DATA_DIR/images/oci: pause, busybox, nginx)
#   2. images/registry.sh start DATA_DIR/registry ADDR
#   3. images/push.sh     DATA_DIR/images ADDR (library/nginx:*, library/busybox:*, pause:*)
# and prints the registry address (ADDR) on stdout. Every step is idempotent: on a warm machine
# this takes well under a second. Point containerd at it with images/mirror-config.sh.
#
# Usage: images/setup.sh DATA_DIR [ADDR]      e.g. images/setup.sh /var/lib/r8s-images
#        ADDR defaults to 127.0.0.1:5000. Stop the registry: images/registry.sh stop DATA_DIR/registry
#
# Needs the Debian packages busybox-static nginx-light umoci skopeo docker-registry gcc libc6-dev
# curl; run as root, it installs the missing ones with apt-get.
set -euo pipefail
umask 022

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { echo "images/setup: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
    echo "usage: $0 DATA_DIR [ADDR]" >&2
    exit 2
fi
DATA="$1"
ADDR="${2:-127.0.0.1:5000}"

# The packages whose files the scripts use, each with the path or command that proves it is there
# (any nginx flavour that provides /usr/sbin/nginx will do).
ensure_packages() {
    local missing=() entry pkg probe
    for entry in busybox-static:/usr/bin/busybox nginx-light:/usr/sbin/nginx umoci:umoci \
        skopeo:skopeo docker-registry:docker-registry gcc:gcc libc6-dev:/usr/include/stdio.h \
        curl:curl; do
        pkg="${entry%%:*}"
        probe="${entry#*:}"
        case "$probe" in
            /*) [ -e "$probe" ] && continue ;;
            *) command -v "$probe" >/dev/null 2>&1 && continue ;;
        esac
        missing+=("$pkg")
    done
    # gcc -static needs libc.a from libc6-dev.
    if ! gcc -print-file-name=libc.a 2>/dev/null | grep -q '^/'; then
        case " ${missing[*]:-} " in *" libc6-dev "*) ;; *) missing+=(libc6-dev) ;; esac
    fi
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "missing Debian packages: ${missing[*]} (apt-get install ${missing[*]}, or run as root)"
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >&2 ||
        { DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >&2; }
}

ensure_packages
mkdir -p "$DATA"
DATA="$(cd "$DATA" && pwd)"
exec 8>"$DATA/.setup.lock"
flock 8

"$HERE/build.sh" "$DATA/images"
"$HERE/registry.sh" start "$DATA/registry" "$ADDR" >/dev/null
"$HERE/push.sh" "$DATA/images" "$ADDR"
echo "$ADDR"
