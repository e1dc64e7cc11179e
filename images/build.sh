#!/usr/bin/env bash
# Builds the node's container images offline into the OCI layout OUT_DIR/oci, from what Debian
# already has on this machine (no image is ever pulled from the internet):
#
#   oci:OUT_DIR/oci:pause    /pause, a static binary from images/pause.c (gcc -static).
#                            Entrypoint ["/pause"], User 65535:65535, like registry.k8s.io/pause.
#   oci:OUT_DIR/oci:busybox  Debian's static /usr/bin/busybox as /bin/busybox, one symlink per
#                            applet (at its `busybox --list-full` path and in /bin), /etc/passwd and
#                            /etc/group (root, nobody), /tmp (1777), /var/www/index.html. Cmd ["sh"].
#   oci:OUT_DIR/oci:nginx    the busybox layer above (so `kubectl exec -- sh`, `cat`, `ls`, `sleep`,
#                            `wget` and `tar` for `kubectl cp` work) plus a layer with Debian's real
#                            /usr/sbin/nginx, exactly the shared libraries `ldd` lists and the
#                            dynamic loader, a configuration shaped like the official image's
#                            (/etc/nginx/nginx.conf + conf.d/default.conf, listen 80, logs to
#                            /dev/stdout and /dev/stderr, workers run as user nginx) and upstream's
#                            "Welcome to nginx!" page. Cmd ["nginx","-g","daemon off;"],
#                            ExposedPorts 80/tcp, StopSignal SIGQUIT.
#
# Trap: Debian's busybox-static 1.35 `wget -T N` segfaults (exit 139), even outside a container;
# use `timeout N wget -qO- URL` instead.
#
# Idempotent: OUT_DIR/stamp holds a hash of this script, pause.c and every file copied into the
# images; when it matches, nothing is rebuilt. Builds are reproducible (fixed timestamps), so a
# rebuild from the same inputs gives the same digests. Concurrent runs are serialised by a lock.
#
# Usage: images/build.sh OUT_DIR
# Needs: gcc + libc6-dev (static glibc), umoci, busybox-static, nginx-light.
set -euo pipefail
umask 022

usage() { echo "usage: $0 OUT_DIR" >&2; exit 2; }
[ "$#" -eq 1 ] || usage

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$1"
BUSYBOX="${R8S_BUSYBOX:-/usr/bin/busybox}"
NGINX="${R8S_NGINX:-/usr/sbin/nginx}"
MIME_TYPES="${R8S_NGINX_MIME_TYPES:-/etc/nginx/mime.types}"
# Every file and the image configs get this fixed time (2024-01-01T00:00:00Z): reproducible digests.
EPOCH=1704067200
CREATED="2024-01-01T00:00:00Z"
PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log() { echo "images/build: $*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in gcc umoci tar ldd sha256sum flock; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install gcc libc6-dev umoci)"
done
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found (apt-get install busybox-static)"
[ -x "$NGINX" ] || die "$NGINX not found (apt-get install nginx-light)"
[ -f "$MIME_TYPES" ] || die "$MIME_TYPES not found (apt-get install nginx-common)"

# The shared libraries nginx loads, and the dynamic loader, as `ldd` resolves them.
nginx_libs() {
    ldd "$NGINX" | awk '
        /not found/ { print "MISSING " $1; next }
        $2 == "=>" && $3 ~ /^\// { print $3; next }
        $1 ~ /^\// { print $1 }'
}
LIBS="$(nginx_libs)"
case "$LIBS" in *MISSING*) die "ldd $NGINX: $LIBS" ;; esac

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
exec 9>"$OUT/.build.lock"
flock 9

# Everything that determines the images' content.
# shellcheck disable=SC2086 # LIBS is a newline-separated list of absolute paths without spaces
STAMP="$(
    {
        sha256sum "$HERE/build.sh" "$HERE/pause.c" "$BUSYBOX" "$NGINX" "$MIME_TYPES" $LIBS
        gcc --version | head -n1
        umoci --version
        tar --version | head -n1
    } | sha256sum | cut -d' ' -f1
)"
if [ -f "$OUT/oci/index.json" ] && [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$STAMP" ]; then
    log "up to date: $OUT/oci (pause, busybox, nginx)"
    exit 0
fi

WORK="$(mktemp -d "$OUT/.work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
LAYOUT="$WORK/oci"

# Adds the staged directory $2 as one layer of image $1, created by $3 (for the history).
# The layer tar is written by GNU tar, reproducibly (sorted names, owner root, fixed mtime), and
# added verbatim with `umoci raw add-layer`. Not `umoci insert`: umoci 0.4.7 forgets to close the
# tar writer there (umoci PR #534), so its layers lack the end-of-archive blocks and GNU tar
# reports "Unexpected EOF in archive".
add_layer() {
    local names=()
    mapfile -t names < <(cd "$2" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort)
    tar --sort=name --format=gnu --numeric-owner --owner=0 --group=0 --mtime="@$EPOCH" \
        -C "$2" -cf "$2.tar" -- "${names[@]}"
    umoci raw add-layer --image "$LAYOUT:$1" \
        --history.created "$CREATED" --history.created_by "images/build.sh: $3" "$2.tar"
    rm -f "$2.tar"
}

# --- staged root file systems ----------------------------------------------------------------
stage_pause() {
    local root="$WORK/pause"
    mkdir -p "$root"
    gcc -static -Os -s -Wall -Wextra -o "$root/pause" "$HERE/pause.c"
    chmod 0755 "$root/pause"
}

stage_busybox() {
    local root="$WORK/busybox" applet name
    mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/home" "$root/var/www" "$root/tmp" \
        "$root/usr/bin" "$root/usr/sbin" "$root/sbin" "$root/dev" "$root/proc" "$root/sys"
    chmod 1777 "$root/tmp"
    chmod 0700 "$root/root"
    cp "$BUSYBOX" "$root/bin/busybox"
    chmod 0755 "$root/bin/busybox"
    # One symlink per applet where Debian's busybox installs it (e.g. usr/bin/wget), and one in
    # /bin as the official busybox image has, so both /bin/wget and /usr/bin/wget work.
    "$BUSYBOX" --list-full | while read -r applet; do
        [ -n "$applet" ] || continue
        name="${applet##*/}"
        [ "$applet" = "bin/busybox" ] && continue
        mkdir -p "$root/$(dirname "$applet")"
        [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
        [ -e "$root/bin/$name" ] || [ -L "$root/bin/$name" ] || ln -s /bin/busybox "$root/bin/$name"
    done
    [ -L "$root/bin/sh" ] || die "busybox has no sh applet"
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nogroup:x:65534:
EOF
    echo '<h1>hello from busybox httpd</h1>' >"$root/var/www/index.html"
}

stage_nginx() {
    local root="$WORK/nginx" lib version
    mkdir -p "$root/usr/sbin" "$root/etc/nginx/conf.d" "$root/usr/share/nginx/html" \
        "$root/var/log/nginx" "$root/var/cache/nginx" "$root/run/lock" "$root/tmp" "$root/var/lib/nginx"
    for lib in body proxy fastcgi uwsgi scgi; do
        mkdir -p "$root/var/lib/nginx/$lib"
    done
    chmod 1777 "$root/tmp"
    ln -s /run "$root/var/run"
    ln -s /run/lock "$root/var/lock"
    cp "$NGINX" "$root/usr/sbin/nginx"
    # Libraries at the paths ldd printed (with Debian's merged /usr these are real /lib paths in
    # the image, which the loader searches by default); -L copies the file, not the soname link.
    for lib in $LIBS; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    cp "$MIME_TYPES" "$root/etc/nginx/mime.types"
    version="$("$NGINX" -v 2>&1 | sed -n 's|^nginx version: nginx/||p')"
    [ -n "$version" ] || die "cannot read the version of $NGINX"
    echo "$version" >"$WORK/nginx.version"
    # As in the official image, the log files are links to the container's stdout and stderr.
    ln -s /dev/stdout "$root/var/log/nginx/access.log"
    ln -s /dev/stderr "$root/var/log/nginx/error.log"

    # The passwd/group of the busybox layer plus nginx (uid/gid 101, as in the official image).
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
nginx:x:101:101:nginx user:/nonexistent:/bin/false
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nogroup:x:65534:
nginx:x:101:
EOF

    cat >"$root/etc/nginx/nginx.conf" <<'EOF'
# Shaped like the official nginx image's /etc/nginx/nginx.conf ("daemon off;" comes from Cmd).
user  nginx;
worker_processes  auto;

error_log  /dev/stderr notice;
pid        /run/nginx.pid;

events {
    worker_connections  1024;
}

http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /dev/stdout  main;

    client_body_temp_path /var/lib/nginx/body;
    proxy_temp_path       /var/lib/nginx/proxy;
    fastcgi_temp_path     /var/lib/nginx/fastcgi;
    uwsgi_temp_path       /var/lib/nginx/uwsgi;
    scgi_temp_path        /var/lib/nginx/scgi;

    sendfile        on;
    keepalive_timeout  65;

    include /etc/nginx/conf.d/*.conf;
}
EOF
    # No "listen [::]:80": pods may have no IPv6 (the official image's entrypoint drops it too).
    cat >"$root/etc/nginx/conf.d/default.conf" <<'EOF'
server {
    listen       80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
EOF
    # Upstream nginx's html/index.html and html/50x.html.
    cat >"$root/usr/share/nginx/html/index.html" <<'EOF'
<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
EOF
    cat >"$root/usr/share/nginx/html/50x.html" <<'EOF'
<!DOCTYPE html>
<html>
<head>
<title>Error</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>An error occurred.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
<p>If you are the system administrator of this resource then you should check
the error log for details.</p>
<p><em>Faithfully yours, nginx.</em></p>
</body>
</html>
EOF
    chmod -R u=rwX,go=rX "$root/etc" "$root/usr/share"
}

stage_pause
stage_busybox
stage_nginx

# --- images ----------------------------------------------------------------------------------
umoci init --layout "$LAYOUT"

umoci new --image "$LAYOUT:pause"
add_layer pause "$WORK/pause" "COPY pause /pause"
umoci config --image "$LAYOUT:pause" --created "$CREATED" --no-history \
    --config.entrypoint /pause --config.user 65535:65535 --config.workingdir / \
    --config.env "$PATH_ENV"

umoci new --image "$LAYOUT:busybox"
add_layer busybox "$WORK/busybox" "COPY busybox-static rootfs /"
umoci config --image "$LAYOUT:busybox" --created "$CREATED" --no-history \
    --config.cmd sh --config.env "$PATH_ENV"

umoci new --image "$LAYOUT:nginx"
add_layer nginx "$WORK/busybox" "COPY busybox-static rootfs /"
add_layer nginx "$WORK/nginx" "COPY nginx $(cat "$WORK/nginx.version") rootfs /"
umoci config --image "$LAYOUT:nginx" --created "$CREATED" --no-history \
    --config.cmd nginx --config.cmd -g --config.cmd 'daemon off;' \
    --config.env "$PATH_ENV" --config.env "NGINX_VERSION=$(cat "$WORK/nginx.version")" \
    --config.exposedports 80/tcp --config.stopsignal SIGQUIT

umoci gc --layout "$LAYOUT"

# Swap the new layout in, then record what it was built from.
rm -f "$OUT/stamp"
rm -rf "$OUT/oci.old"
[ ! -d "$OUT/oci" ] || mv "$OUT/oci" "$OUT/oci.old"
mv "$LAYOUT" "$OUT/oci"
rm -rf "$OUT/oci.old"
echo "$STAMP" >"$OUT/stamp"
log "built $OUT/oci: pause, busybox, nginx $(cat "$WORK/nginx.version")"
