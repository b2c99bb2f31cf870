#!/usr/bin/env bash
# Builds the Argo CD this project runs (docs/gitops.md), offline, and caches it:
#   - the application controller, repo server, git askpass helper and `argocd admin
#     redis-initial-password` of one pinned release, as one binary from the Go module proxy
#     (images/argocd/*.go: main.go trims upstream's entrypoint);
#   - kustomize, which the repo server runs, at the version that release's go.mod names (or the
#     closest the proxy serves, see KUSTOMIZE_VERSION);
#   - unless --no-image: the image for the kind cluster, with those binaries, git, and Debian's
#     redis-server (the same image runs Argo CD's Redis). It is built as
#     modelops/argocd:<release>-<recipe hash>, the cache's key, and tagged
#     modelops/argocd:<release>, the name argocd/install runs.
# A warm run only checks what exists. It prints KEY=VALUE lines on stdout (logs go to stderr):
#   ARGOCD=<folder with argocd and its wrapper scripts> KUSTOMIZE=<binary> [ARGOCD_IMAGE=<tag>]
# Usage: images/argocd/build.sh [--no-image]
set -euo pipefail
# shellcheck source=images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
HERE="$REPO_ROOT/images/argocd"

ARGOCD_VERSION=v3.6.0
# The release's go.mod says go 1.27.0; the module proxy serves this toolchain.
ARGOCD_GO_TOOLCHAIN=go1.27.3
# Argo CD 3.6.0 pins kustomize v5.8.3, whose module graph names a version the proxy refuses.
KUSTOMIZE_VERSION=v5.8.1
IMAGE_PACKAGES=git,openssh-client,redis-server,ca-certificates

with_image=1
[ "${1:-}" = "--no-image" ] && with_image=0

# The binaries are keyed by what makes them, the image by the whole recipe.
binary_key=$(printf '%s %s\n' "$ARGOCD_VERSION" "$ARGOCD_GO_TOOLCHAIN" | cat - "$HERE"/*.go |
    sha256sum | cut -c1-12)
key=$(cat "$HERE/build.sh" "$HERE"/*.go "$REPO_ROOT/images/lib.sh" | sha256sum | cut -c1-12)
ARGOCD_DIR="$TOOLS/argocd-$ARGOCD_VERSION-$binary_key"
KUSTOMIZE="$TOOLS/kustomize-$KUSTOMIZE_VERSION/kustomize"
BUILT_IMAGE="modelops/argocd:$ARGOCD_VERSION-$key"
ARGOCD_IMAGE="modelops/argocd:$ARGOCD_VERSION"

report() {
    printf 'ARGOCD=%s\nKUSTOMIZE=%s\n' "$ARGOCD_DIR" "$KUSTOMIZE"
    [ "$with_image" = 0 ] || printf 'ARGOCD_IMAGE=%s\n' "$ARGOCD_IMAGE"
}

# The module's zip holds neither the nested gitops-engine module its go.mod replaces with
# ./gitops-engine nor a main package of ours: both are put in a writable copy, built there.
build_argocd() {
    command -v go >/dev/null 2>&1 || die "building Argo CD needs Go on PATH"
    mkdir -p "$TOOLS"
    local work zip engine started
    work=$(mktemp -d "$TOOLS/.argocd.XXXXXX")
    started=$(date +%s)
    export GOTOOLCHAIN=$ARGOCD_GO_TOOLCHAIN GOFLAGS=-buildvcs=false
    log "downloading github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION (toolchain $ARGOCD_GO_TOOLCHAIN)"
    zip=$(go mod download -json "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION" | module_field Zip)
    engine=$(go mod download -json "github.com/argoproj/argo-cd/gitops-engine/v3@$ARGOCD_VERSION" | module_field Dir)
    python3 -m zipfile -e "$zip" "$work/unzipped"
    mv "$work/unzipped/github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION" "$work/src"
    cp -r "$engine" "$work/src/gitops-engine"
    chmod -R u+w "$work/src"
    mkdir -p "$work/src/cmd/modelops-argocd" "$work/out"
    cp "$HERE"/*.go "$work/src/cmd/modelops-argocd/"
    log "building Argo CD $ARGOCD_VERSION (controller, repo server, askpass, redis-initial-password); cold: ~10 CPU-minutes"
    (cd "$work/src" && quietly go build -trimpath \
        -ldflags="-s -w -X github.com/argoproj/argo-cd/v3/common.version=${ARGOCD_VERSION#v}" \
        -o "$work/out/argocd" ./cmd/modelops-argocd)
    # The repo server runs git-verify-wrapper.sh from PATH on every manifest generation.
    cp "$work/src/hack/git-verify-wrapper.sh" "$work/src/hack/gpg-wrapper.sh" "$work/out/"
    chmod 0755 "$work/out/"*
    rm -rf "$ARGOCD_DIR"
    mv "$work/out" "$ARGOCD_DIR"
    chmod -R u+w "$work" && rm -rf "$work"
    log "built Argo CD $ARGOCD_VERSION in $(($(date +%s) - started)) s"
}

module_field() {
    python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"
}

build_image() {
    ensure_docker
    local rootfs_image="modelops/argocd-rootfs:$key" context
    context=$(mktemp -d)
    docker import "$(rootfs_tarball argocd "$IMAGE_PACKAGES")" "$rootfs_image" >/dev/null
    cp "$ARGOCD_DIR"/* "$KUSTOMIZE" "$context/"
    # Upstream's layout: one binary under each component's name, user argocd (999).
    cat >"$context/Dockerfile" <<DOCKERFILE
FROM $rootfs_image
COPY argocd kustomize git-verify-wrapper.sh gpg-wrapper.sh /usr/local/bin/
RUN for name in argocd-application-controller argocd-repo-server argocd-git-ask-pass; do \
        ln -s argocd /usr/local/bin/\$name; done && \
    groupadd -g 999 argocd && useradd -u 999 -g 999 -m -d /home/argocd argocd
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/home/argocd
WORKDIR /home/argocd
USER 999
DOCKERFILE
    quietly env DOCKER_BUILDKIT=0 docker build -q --network none -t "$BUILT_IMAGE" "$context"
    docker rmi "$rootfs_image" >/dev/null
    rm -rf "$context"
    # Keep one image of ours per release: older recipes' images go.
    docker image ls --format '{{.Repository}}:{{.Tag}}' modelops/argocd |
        grep -v -x -F -e "$BUILT_IMAGE" -e "$ARGOCD_IMAGE" | xargs -r docker rmi >/dev/null || true
    log "built $BUILT_IMAGE"
}

[ -x "$ARGOCD_DIR/argocd" ] || build_argocd
go_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
if [ "$with_image" = 1 ]; then
    ensure_docker
    image_exists "$BUILT_IMAGE" || build_image
    docker tag "$BUILT_IMAGE" "$ARGOCD_IMAGE"
fi
report
