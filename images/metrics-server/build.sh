#!/usr/bin/env bash
# Builds metrics-server, the resource metrics API an autoscaler on CPU reads, for the kind
# cluster (deploy/addons/metrics-server): sigs.k8s.io/metrics-server from the Go module proxy,
# static, in an image of nothing else:
#   modelops/metrics-server:<version>
# A warm run only checks that the image exists. Prints METRICS_SERVER_IMAGE=... on stdout.
# Usage: images/metrics-server/build.sh
set -euo pipefail
# shellcheck source=images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# Keep in step with deploy/addons/metrics-server's image.
METRICS_SERVER_VERSION=v0.8.0
IMAGE="modelops/metrics-server:$METRICS_SERVER_VERSION"

ensure_docker
if ! image_exists "$IMAGE"; then
    command -v go >/dev/null 2>&1 || die "building metrics-server needs Go on PATH"
    # Static: the image holds the binary alone, as upstream's distroless one does.
    CGO_ENABLED=0 go_tool metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server \
        "$METRICS_SERVER_VERSION"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cp "$TOOLS/metrics-server-$METRICS_SERVER_VERSION/metrics-server" "$work/metrics-server"
    printf 'FROM scratch\nCOPY metrics-server /metrics-server\nUSER 1000:1000\nENTRYPOINT ["/metrics-server"]\n' \
        >"$work/Dockerfile"
    quietly env DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$work"
    log "built $IMAGE"
fi
printf 'METRICS_SERVER_IMAGE=%s\n' "$IMAGE"
