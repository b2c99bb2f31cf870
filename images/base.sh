#!/usr/bin/env bash
# Builds the local base image modelops/python-base:bookworm without pulling anything: a minimal
# Debian bookworm root filesystem made with debootstrap (variant minbase + python3, python3-venv,
# ca-certificates; bookworm's python3 is 3.11, the workspace's Python) and `docker import`ed.
# With --compiler, the build stages' base modelops/python-build-base:bookworm instead: the same
# plus gcc and Python's headers, for the server's C extension (docs/images.md).
#
# Idempotent and cached:
#   - ensures a Docker engine (installs Debian's docker.io and starts dockerd when none answers);
#   - does nothing more when the image already exists (--force rebuilds it);
#   - keeps the root filesystem tarball in $MODELOPS_CACHE (default ~/.cache/modelops), so after
#     a dockerd reset the image comes back with one `docker import`.
#
# The Debian mirror is read from the host's apt sources at run time (MODELOPS_DEBIAN_MIRROR
# overrides it); nothing about this machine is written into the repository.
#
# Only bases named modelops/... are made here. Any other MODELOPS_BASE_IMAGE or
# MODELOPS_BUILD_BASE_IMAGE is an upstream image (python:3.11-slim-bookworm and python:3.11-bookworm
# on GitHub's runners, .github/workflows/ci.yml), pulled when missing instead: no debootstrap, no
# mirror needed.
set -euo pipefail
# shellcheck source=images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITE=$DEBIAN_SUITE
PACKAGES=python3,python3-venv,ca-certificates
# Bump when the recipe below changes: it names the cached tarball.
RECIPE=1
NAME=python-base
force=0
for argument in "$@"; do
    case "$argument" in
        --force) force=1 ;;
        --compiler)
            PACKAGES="$PACKAGES,gcc,libc6-dev,python3-dev"
            NAME=python-build-base
            BASE_IMAGE_TAG=$BUILD_BASE_IMAGE_TAG
            ;;
        *) die "usage: images/base.sh [--force] [--compiler]" ;;
    esac
done
TARBALL="$MODELOPS_CACHE/images/$NAME-$SUITE-minbase-r$RECIPE.tar.gz"

ensure_docker

# The base's Python is the workspace's (3.11), with ssl and venv.
check_python() {
    docker run --rm --network none "$BASE_IMAGE_TAG" python3 -c \
        'import sys, ssl, venv; assert sys.version_info[:2] == (3, 11), sys.version; print("base python", sys.version.split()[0])' >&2
}

if [ "$force" = 0 ] && image_exists "$BASE_IMAGE_TAG"; then
    log "$BASE_IMAGE_TAG already exists"
    exit 0
fi

case "$BASE_IMAGE_TAG" in
    modelops/*) ;;
    *)
        log "docker pull $BASE_IMAGE_TAG (an upstream base: pulled, not debootstrapped)"
        if ! output=$(docker pull "$BASE_IMAGE_TAG" 2>&1); then
            printf '%s\n' "$output" >&2
            die "could not pull $BASE_IMAGE_TAG; without a registry, leave MODELOPS_BASE_IMAGE and MODELOPS_BUILD_BASE_IMAGE unset and the bases are debootstrapped here"
        fi
        check_python
        # What the tag resolved to, to pin it by (docs/images.md).
        log "pulled $BASE_IMAGE_TAG: $(docker image inspect -f '{{join .RepoDigests " "}}' "$BASE_IMAGE_TAG")"
        exit 0
        ;;
esac

if [ "$force" = 1 ] || [ ! -s "$TARBALL" ]; then
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    mirror="$(debian_mirror "$SUITE" || true)"
    [ -n "$mirror" ] || die "found no Debian $SUITE mirror in /etc/apt/sources.list*: set MODELOPS_DEBIAN_MIRROR=http://<mirror>/debian"
    security="$(MODELOPS_DEBIAN_MIRROR="${MODELOPS_DEBIAN_SECURITY_MIRROR:-}" debian_mirror "$SUITE-security" || true)"

    mkdir -p "$MODELOPS_CACHE/images"
    work="$(mktemp -d "$MODELOPS_CACHE/images/rootfs.XXXXXX")"
    trap 'as_root rm -rf "$work"' EXIT
    rootfs="$work/rootfs"
    log "debootstrap $SUITE (minbase + $PACKAGES) from the host's mirror"
    as_root debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror" \
        >"$work/debootstrap.log" 2>&1 || { tail -n 40 "$work/debootstrap.log" >&2; die "debootstrap failed"; }

    # Security updates on top, from the host's security mirror when it has one.
    if [ -n "$security" ]; then
        log "applying $SUITE-security updates"
        printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
            "$mirror" "$SUITE" "$mirror" "$SUITE" "$security" "$SUITE" \
            | as_root tee "$rootfs/etc/apt/sources.list" >/dev/null
        as_root cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
        as_root chroot "$rootfs" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
            sh -c 'apt-get update -qq && apt-get upgrade -y -qq' >>"$work/debootstrap.log" 2>&1 \
            || { tail -n 40 "$work/debootstrap.log" >&2; die "apt-get upgrade in the new root failed"; }
    fi

    # Slim it: no apt lists or caches, docs, man pages or locales (C.UTF-8 is built into glibc),
    # and nothing of this machine (mirror, resolver, hostname).
    as_root sh -c "
        cd '$rootfs' &&
        rm -rf var/lib/apt/lists/* var/cache/apt/*.bin var/cache/apt/archives/*.deb \
               var/cache/debconf/*-old var/lib/dpkg/*-old var/log/* tmp/* \
               usr/share/doc/* usr/share/man/* usr/share/info/* usr/share/locale/* \
               usr/share/lintian usr/share/linda &&
        : > etc/apt/sources.list && : > etc/resolv.conf && : > etc/hostname &&
        rm -f etc/machine-id var/lib/dbus/machine-id
    "
    # Keep the tarball's owners and modes as they are in the root (root-owned, setuid intact).
    as_root tar --numeric-owner --xattrs -C "$rootfs" -czf "$work/rootfs.tar.gz" .
    as_root chown "$(id -u):$(id -g)" "$work/rootfs.tar.gz"
    mv "$work/rootfs.tar.gz" "$TARBALL"
    log "cached $TARBALL ($(du -h "$TARBALL" | cut -f1))"
fi

log "docker import $TARBALL as $BASE_IMAGE_TAG"
docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase --include=$PACKAGES $SUITE (images/base.sh r$RECIPE)" \
    "$TARBALL" "$BASE_IMAGE_TAG" >/dev/null
check_python
log "built $BASE_IMAGE_TAG ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE_TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
