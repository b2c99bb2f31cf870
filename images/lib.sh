# Shared helpers for images/*.sh (sourced, not run).
# shellcheck shell=bash disable=SC2034

MODELOPS_CACHE="${MODELOPS_CACHE:-$HOME/.cache/modelops}"
BASE_IMAGE_TAG="${MODELOPS_BASE_IMAGE:-modelops/python-base:bookworm}"
IMAGE_VERSION="${MODELOPS_IMAGE_VERSION:-0.1.0}"
DOCKERD_LOG="${MODELOPS_DOCKERD_LOG:-/var/log/dockerd.log}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    # apt-get update once per script run, then install what is missing.
    if [ -z "${_MODELOPS_APT_UPDATED:-}" ]; then
        as_root apt-get update -qq
        _MODELOPS_APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
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
