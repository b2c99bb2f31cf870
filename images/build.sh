#!/usr/bin/env bash
# Builds the four images from the repository root, on the base image (images/base.sh: the local
# debootstrapped one, made first when missing, or an upstream one, pulled), with Docker's layer
# cache:
#   modelops/operator:0.1.0  modelops/trainer:0.1.0  modelops/inference-server:0.1.0
# (the operator's default image names), and modelops/load:0.1.0, the load generator (a stage of
# the server's Dockerfile; the server's image does not carry it).
# Usage: images/build.sh [--no-cache] [operator|trainer|inference-server|load]...
#
# Environment:
#   MODELOPS_BASE_IMAGE      the base to build on (default modelops/python-base:bookworm, built by
#                            images/base.sh); where registries are reachable, an upstream image,
#                            e.g. python:3.11-slim-bookworm[@sha256:...] (pulled by images/base.sh)
#   MODELOPS_BUILD_BASE_IMAGE  the trainer's and server's build stage: the base plus a C compiler
#                            and Python's headers (default modelops/python-build-base:bookworm,
#                            built by images/base.sh --compiler); python:3.11-bookworm with registries
#   MODELOPS_IMAGE_VERSION   the tag (default 0.1.0)
#   MODELOPS_BUILD_NETWORK   docker build --network (default host: no bridge is needed)
#   MODELOPS_EXTRA_CA_FILE   PEM bundle trusted by the build stage (default: the host's
#                            /usr/local/share/ca-certificates/*.crt, e.g. an egress proxy's CA)
set -euo pipefail
# shellcheck source=images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

declare -A DIRS=([operator]=operator [trainer]=trainer-job [inference-server]=inference-server
    [load]=inference-server)
# The Dockerfile stage of an image that is not its Dockerfile's last.
declare -A TARGETS=([load]=load)
cache_flags=()
if [ "${1:-}" = "--no-cache" ]; then
    cache_flags=(--no-cache)
    shift
fi
components=("$@")
[ "${#components[@]}" -gt 0 ] || components=(operator trainer inference-server load)
for c in "${components[@]}"; do
    [ -n "${DIRS[$c]:-}" ] || die "unknown image '$c' (operator, trainer, inference-server, load)"
done

# images/base.sh does nothing more when the base exists; otherwise it debootstraps a modelops/...
# base, or pulls an upstream one (GitHub's runners: .github/workflows/ci.yml).
bash "$REPO_ROOT/images/base.sh"
# The trainer's and the server's build stages compile the server's C extension
# (modelops_server/_kernels.c); the operator's needs no compiler.
if [[ " ${components[*]} " =~ " trainer "|" inference-server "|" load " ]]; then
    bash "$REPO_ROOT/images/base.sh" --compiler
fi

extra_ca="$(extra_ca_certs)"
for c in "${components[@]}"; do
    tag="modelops/$c:$IMAGE_VERSION"
    build_base=()
    [ "$c" = operator ] || build_base=(--build-arg "BUILD_BASE_IMAGE=$BUILD_BASE_IMAGE_TAG")
    target=()
    [ -z "${TARGETS[$c]:-}" ] || target=(--target "${TARGETS[$c]}")
    log "building $tag on $BASE_IMAGE_TAG"
    start=$(date +%s)
    docker build \
        "${cache_flags[@]}" \
        --force-rm \
        --network "${MODELOPS_BUILD_NETWORK:-host}" \
        --file "$REPO_ROOT/${DIRS[$c]}/Dockerfile" \
        --build-arg "BASE_IMAGE=$BASE_IMAGE_TAG" \
        "${build_base[@]}" \
        "${target[@]}" \
        --build-arg "EXTRA_CA_CERTS=$extra_ca" \
        --label "org.opencontainers.image.title=modelops-$c" \
        --label "org.opencontainers.image.version=$IMAGE_VERSION" \
        --tag "$tag" \
        "$REPO_ROOT" >&2
    size=$(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')
    log "built $tag in $(($(date +%s) - start)) s, $size"
done
