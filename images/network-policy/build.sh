#!/usr/bin/env bash
# Builds the NetworkPolicy enforcer of the kind cluster (deploy/addons/network-policy): kube-router
# from the Go module proxy, run as its firewall (network policy controller) alone, static, on the
# slim bookworm root filesystem of images/kind/build.sh, whose iptables (nft) and ipset it calls:
#   modelops/kube-router:<version>-<recipe hash>, the cache's key, also tagged
#   modelops/kube-router:<version>, the name deploy/addons/network-policy runs
# go.mod beside this script pins kube-router and raises dependencies of its that have known
# vulnerabilities (see the comment there). A warm run only checks that the image exists.
# Prints NETWORK_POLICY_IMAGE=... (the version's tag) on stdout.
# Usage: images/network-policy/build.sh
set -euo pipefail
# shellcheck source=images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
HERE="$REPO_ROOT/images/network-policy"

# Keep in step with go.mod and deploy/addons/network-policy's image.
KUBE_ROUTER_VERSION=v2.1.0
# images/kind/build.sh's slim root filesystem (iptables, nftables, ipset, conntrack), read from
# there: both share one debootstrap.
SLIM_PACKAGES=$(sed -n 's/^SLIM_PACKAGES=//p' "$REPO_ROOT/images/kind/build.sh")
[ -n "$SLIM_PACKAGES" ] || die "images/kind/build.sh sets no SLIM_PACKAGES"

recipe_hash() {
    { cat "$HERE/build.sh" "$HERE/go.mod" "$HERE/go.sum" "$REPO_ROOT/images/lib.sh"
      echo "$SLIM_PACKAGES"; } | sha256sum | cut -c1-12
}
KEY=$(recipe_hash)
IMAGE="modelops/kube-router:$KUBE_ROUTER_VERSION-$KEY"
RUNS="modelops/kube-router:$KUBE_ROUTER_VERSION"

ensure_docker
if ! image_exists "$IMAGE"; then
    command -v go >/dev/null 2>&1 || die "building kube-router needs Go on PATH"
    started=$(date +%s)
    # The debootstrap waits on the network, the Go build on the CPU: side by side.
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    rootfs_tarball kind-slim "$SLIM_PACKAGES" >"$work/rootfs-path" &
    rootfs_job=$!
    binary="$TOOLS/kube-router-$KUBE_ROUTER_VERSION-$KEY/kube-router"
    if [ ! -x "$binary" ]; then
        log "go build kube-router $KUBE_ROUTER_VERSION (go.mod in images/network-policy)"
        staging=$(mktemp -d "$TOOLS/.kube-router.XXXXXX")
        (cd "$HERE" && quietly env CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false go build -trimpath \
            -ldflags="-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
            -o "$staging/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router)
        rm -rf "$(dirname "$binary")"
        mv "$staging" "$(dirname "$binary")"
    fi
    wait "$rootfs_job" || die "the root filesystem failed"
    mkdir -p "$work/context"
    cp "$(cat "$work/rootfs-path")" "$work/context/rootfs.tar.gz"
    cp "$binary" "$work/context/kube-router"
    # kube-router must run as root (it checks) with NET_ADMIN and NET_RAW: the addon grants those.
    printf '%s\n' 'FROM scratch' 'ADD rootfs.tar.gz /' 'COPY kube-router /usr/local/bin/kube-router' \
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        'ENTRYPOINT ["/usr/local/bin/kube-router"]' >"$work/context/Dockerfile"
    quietly env DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$work/context"
    log "built $IMAGE in $(($(date +%s) - started)) s"
    # Images of earlier recipes are ours too: only the current one is kept.
    for old in $(docker images --format '{{.Repository}}:{{.Tag}}' modelops/kube-router); do
        [ "$old" = "$IMAGE" ] || [ "$old" = "$RUNS" ] || docker rmi "$old" >/dev/null 2>&1 || true
    done
fi
docker tag "$IMAGE" "$RUNS"
printf 'NETWORK_POLICY_IMAGE=%s\n' "$RUNS"
