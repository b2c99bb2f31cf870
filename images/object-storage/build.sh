#!/usr/bin/env bash
# Builds the S3-compatible server the kind cluster runs for object storage (docs/object-storage.md):
# Versity's S3 gateway (versitygw) from its Go module, static, in an image of its own:
#   modelops/versitygw:<version>
# The tests on loopback run the same module's binary (modelops_envtest.object_storage). A warm
# run only checks that the image exists. Prints OBJECT_STORAGE_IMAGE=... on stdout.
# Usage: images/object-storage/build.sh
set -euo pipefail
# shellcheck source=images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# Keep in step with modelops_envtest.object_storage.VERSITYGW_VERSION.
VERSITYGW_VERSION=v1.8.0
IMAGE="modelops/versitygw:$VERSITYGW_VERSION"

if [ "$BASE_IMAGE_TAG" = "modelops/python-base:bookworm" ]; then
    bash "$REPO_ROOT/images/base.sh"
else
    ensure_docker
fi
if ! image_exists "$IMAGE"; then
    command -v go >/dev/null 2>&1 || die "building versitygw needs Go on PATH"
    # Static: it depends on nothing of the base, which only adds a shell (the samples make the
    # bucket's folder with it).
    CGO_ENABLED=0 go_tool versitygw-static github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cp "$TOOLS/versitygw-static-$VERSITYGW_VERSION/versitygw-static" "$work/versitygw"
    printf 'FROM %s\nCOPY versitygw /usr/local/bin/versitygw\nUSER 10001:10001\nENTRYPOINT ["versitygw"]\n' \
        "$BASE_IMAGE_TAG" >"$work/Dockerfile"
    quietly env DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$work"
    log "built $IMAGE"
fi
printf 'OBJECT_STORAGE_IMAGE=%s\n' "$IMAGE"
