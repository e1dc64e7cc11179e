#!/usr/bin/env bash
# Pushes the images built by images/build.sh (OUT_DIR/oci) to a local registry, under the names
# that containerd asks a mirror for:
#
#   nginx   -> library/nginx:latest  library/nginx:1.14.2  library/nginx:1.16.1  library/nginx:1.25
#   busybox -> library/busybox:latest  library/busybox:1.36  library/busybox:1.28
#   pause   -> pause:3.10  pause:3.9  pause:3.6
#
# Through the mirror in images/mirror-config.sh, docker.io/library/nginx:1.14.2 (or just
# nginx:1.14.2) resolves to <REGISTRY>/library/nginx:1.14.2 and registry.k8s.io/pause:3.10 to
# <REGISTRY>/pause:3.10. Every nginx tag is the same image (Debian's nginx), likewise busybox.
#
# Idempotent and fast: a name whose manifest digest in the registry already equals the local one
# is skipped (one HEAD request); otherwise `skopeo copy --preserve-digests` uploads only the blobs
# the registry lacks.
#
# Usage: images/push.sh OUT_DIR [REGISTRY]      REGISTRY defaults to 127.0.0.1:5000 (plain http)
set -euo pipefail

usage() { echo "usage: $0 OUT_DIR [REGISTRY]" >&2; exit 2; }
if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then usage; fi

OUT="$1"
REGISTRY="${2:-127.0.0.1:5000}"
LAYOUT="$OUT/oci"

# "<tag in OUT_DIR/oci> <repository:tag in the registry>" per line.
NAMES="nginx library/nginx:latest
nginx library/nginx:1.14.2
nginx library/nginx:1.16.1
nginx library/nginx:1.25
busybox library/busybox:latest
busybox library/busybox:1.36
busybox library/busybox:1.28
pause pause:3.10
pause pause:3.9
pause pause:3.6"

log() { echo "images/push: $*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in skopeo curl sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install skopeo curl)"
done
[ -f "$LAYOUT/index.json" ] || die "no OCI layout at $LAYOUT (run images/build.sh $OUT first)"
curl -fsS -o /dev/null --max-time 5 "http://$REGISTRY/v2/" || die "no registry answers on http://$REGISTRY/v2/"

# The manifest digest of tag $1 in the local layout.
local_digest() {
    local sum
    # Piped, not captured: $(...) would drop the manifest's trailing newline and change the hash.
    sum="$(skopeo inspect --raw "oci:$LAYOUT:$1" | sha256sum)" || die "no image $1 in $LAYOUT"
    echo "sha256:${sum%% *}"
}

# The manifest digest of $1 (repository:tag) in the registry, or nothing.
remote_digest() {
    local repo="${1%:*}" tag="${1##*:}"
    curl -fsS -I --max-time 5 \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$REGISTRY/v2/$repo/manifests/$tag" 2>/dev/null |
        tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: *//p'
}

declare -A DIGEST=()
pushed=0
skipped=0
while read -r src dest; do
    if [ -z "${DIGEST[$src]:-}" ]; then
        DIGEST[$src]="$(local_digest "$src")"
    fi
    if [ "$(remote_digest "$dest")" = "${DIGEST[$src]}" ]; then
        skipped=$((skipped + 1))
        continue
    fi
    skopeo --insecure-policy copy --quiet --preserve-digests --dest-tls-verify=false \
        "oci:$LAYOUT:$src" "docker://$REGISTRY/$dest"
    [ "$(remote_digest "$dest")" = "${DIGEST[$src]}" ] ||
        die "$REGISTRY/$dest does not have digest ${DIGEST[$src]} after the push"
    log "pushed $REGISTRY/$dest@${DIGEST[$src]}"
    pushed=$((pushed + 1))
done <<<"$NAMES"
log "$pushed pushed, $skipped already up to date in $REGISTRY"
