# Shared helpers for images/*.sh (sourced, not run).
# shellcheck shell=bash disable=SC2034

MODELOPS_CACHE="${MODELOPS_CACHE:-$HOME/.cache/modelops}"
BASE_IMAGE_TAG="${MODELOPS_BASE_IMAGE:-modelops/python-base:bookworm}"
# The build stages' base: a C compiler and Python's headers on top (images/base.sh --compiler).
BUILD_BASE_IMAGE_TAG="${MODELOPS_BUILD_BASE_IMAGE:-modelops/python-build-base:bookworm}"
IMAGE_VERSION="${MODELOPS_IMAGE_VERSION:-0.1.0}"
DOCKERD_LOG="${MODELOPS_DOCKERD_LOG:-/var/log/dockerd.log}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Go tools built from the module proxy (go_tool), one folder per name and version.
TOOLS="$MODELOPS_CACHE/go-tools"
# The Debian release every image and root filesystem here is made from.
DEBIAN_SUITE=bookworm

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    # apt-get update once per script run, then install what is missing; another step may hold
    # apt's lock for a while (make test overlaps steps).
    if [ -z "${_MODELOPS_APT_UPDATED:-}" ]; then
        as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
        _MODELOPS_APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "$@"
}

# Makes sure a Docker engine answers: installs Debian's docker.io when dockerd is missing and
# starts dockerd by hand when nothing answers (there is no systemd here). An engine that already
# answers (Docker Desktop, a systemd unit, a CI service) is used as it is.
ensure_docker() {
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 ||
            die "no Docker engine answers and there is no apt-get to install one: start Docker first"
        log "installing docker.io (Debian's Docker engine)"
        apt_install docker.io
    fi
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        # No default bridge and no iptables rules: image builds use the host's network, and kind
        # makes its own network; nothing needs NAT to the outside.
        local flags="${MODELOPS_DOCKERD_FLAGS:---bridge=none --iptables=false}"
        if ! has_capability 24; then
            # CAP_SYS_RESOURCE (24) is withheld here: privileged containers need the wrapper.
            local wrapper="$MODELOPS_CACHE/bin/runc-nosysres"
            mkdir -p "$(dirname "$wrapper")"
            install -m 0755 "$REPO_ROOT/images/runc-nosysres" "$wrapper"
            flags="$flags --add-runtime runc-nosysres=$wrapper --default-runtime runc-nosysres"
            log "this sandbox withholds CAP_SYS_RESOURCE: dockerd runs containers through $wrapper"
        fi
        log "starting dockerd $flags (log: $DOCKERD_LOG)"
        # shellcheck disable=SC2086
        as_root setsid nohup dockerd $flags >"$DOCKERD_LOG" 2>&1 </dev/null &
    fi
    local i
    for i in $(seq 1 60); do
        docker info >/dev/null 2>&1 && { log "docker engine is up"; return 0; }
        sleep 1
    done
    tail -n 30 "$DOCKERD_LOG" >&2 || true
    die "dockerd did not answer within 60 s (log above, from $DOCKERD_LOG)"
}

# Whether capability number $1 is in this process's bounding set (and so can be granted at all).
has_capability() {
    local mask
    mask=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
    (((0x$mask >> $1) & 1))
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# The host's Debian mirror, read from its apt sources (deb822 *.sources or one-line *.list), so no
# mirror host is written into the repository. MODELOPS_DEBIAN_MIRROR overrides it.
debian_mirror() {
    if [ -n "${MODELOPS_DEBIAN_MIRROR:-}" ]; then
        printf '%s\n' "$MODELOPS_DEBIAN_MIRROR"
        return 0
    fi
    local suite="$1" files=() f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ "${#files[@]}" -gt 0 ] || return 1
    awk -v suite="$suite" '
        function check() {
            if (!found && uris != "" && enabled && types ~ / deb( |$)/ && index(suites, " " suite " ") && uris ~ /^https?:/) {
                print uris; found = 1
            }
        }
        found { exit }
        # One-line format: deb [opts] URI SUITE COMPONENTS...
        FILENAME ~ /\.list$/ && $1 == "deb" {
            n = 2; if ($2 ~ /^\[/) { while (n <= NF && $n !~ /\]$/) n++; n++ }
            if ($(n + 1) == suite && $n ~ /^https?:/) { print $n; found = 1; exit }
            next
        }
        # deb822 format: stanzas of Types/URIs/Suites separated by blank lines.
        FILENAME ~ /\.sources$/ {
            if (FNR == 1 || $0 ~ /^[[:space:]]*$/) { check(); uris = ""; suites = ""; types = ""; enabled = 1 }
            if (found) exit
            if ($1 == "Types:") types = $0
            if ($1 == "URIs:") uris = $2
            if ($1 == "Suites:") suites = " " substr($0, 8) " "
            if ($1 == "Enabled:" && $2 == "no") enabled = 0
        }
        END { check() }
    ' "${files[@]}"
}

# Extra CA certificates the host trusts on top of the public ones (Debian's convention:
# /usr/local/share/ca-certificates/*.crt), e.g. a TLS-intercepting egress proxy's. Passed to the
# build stage only, so pip and uv can reach PyPI through such a proxy; never in a runtime image.
extra_ca_certs() {
    if [ -n "${MODELOPS_EXTRA_CA_FILE:-}" ]; then
        cat "$MODELOPS_EXTRA_CA_FILE"
        return 0
    fi
    local f
    for f in /usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt; do
        [ -f "$f" ] && cat "$f"
    done
    return 0
}

# quietly COMMAND...: its output only when it fails (the classic builder's chatter otherwise).
quietly() {
    local output
    output=$("$@" 2>&1) || { printf '%s\n' "$output" >&2; die "failed: $*"; }
}

# go_tool NAME PACKAGE VERSION [TAGS]: `go install` into the cache once, atomically.
go_tool() {
    local name=$1 package=$2 version=$3 tags=${4:-} dir
    dir="$TOOLS/$name-$version"
    [ -x "$dir/$name" ] && return 0
    mkdir -p "$TOOLS"
    log "go install $package@$version"
    local staging
    staging=$(mktemp -d "$TOOLS/.$name.XXXXXX")
    quietly env GOBIN="$staging" GOFLAGS=-buildvcs=false go install -trimpath -ldflags="-s -w" \
        ${tags:+-tags="$tags"} "$package@$version"
    [ -x "$staging/$name" ] || mv "$staging/$(basename "${package%/v[0-9]*}")" "$staging/$name"
    rm -rf "$dir"
    mv "$staging" "$dir"
}

# rootfs_tarball NAME PACKAGES: a debootstrapped, slimmed bookworm, cached by its package list.
rootfs_tarball() {
    local name=$1 packages=$2 tarball work mirror
    tarball="$MODELOPS_CACHE/images/$name-$DEBIAN_SUITE-$(printf '%s' "$packages" | sha256sum | cut -c1-8).tar.gz"
    if [ ! -s "$tarball" ]; then
        command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
        mirror="$(debian_mirror "$DEBIAN_SUITE" || true)"
        [ -n "$mirror" ] || die "found no Debian $DEBIAN_SUITE mirror in /etc/apt/sources.list*: set MODELOPS_DEBIAN_MIRROR"
        mkdir -p "$MODELOPS_CACHE/images"
        work=$(mktemp -d "$MODELOPS_CACHE/images/.$name.XXXXXX")
        log "debootstrap $DEBIAN_SUITE for $name"
        as_root debootstrap --variant=minbase --include="$packages" "$DEBIAN_SUITE" "$work/rootfs" "$mirror" \
            >"$work/debootstrap.log" 2>&1 || { tail -n 40 "$work/debootstrap.log" >&2; die "debootstrap for $name failed"; }
        as_root sh -c "cd '$work/rootfs' && rm -rf var/lib/apt/lists/* var/cache/apt/*.bin \
            var/cache/apt/archives/*.deb usr/share/doc/* usr/share/man/* usr/share/locale/* var/log/* tmp/* &&
            : > etc/apt/sources.list && : > etc/resolv.conf && : > etc/hostname && rm -f etc/machine-id"
        as_root tar --numeric-owner --xattrs -C "$work/rootfs" -czf "$work/rootfs.tar.gz" .
        mv "$work/rootfs.tar.gz" "$tarball"
        as_root rm -rf "$work"
    fi
    printf '%s\n' "$tarball"
}
