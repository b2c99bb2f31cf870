#!/usr/bin/env bash
# Builds the MLflow tracking server the kind cluster runs (deploy/samples/mlflow, docs/mlflow.md):
#   modelops/mlflow:<version>
# at the version of mlflow in uv.lock, the one the tests on loopback run. A warm run only checks
# that the image exists. Prints MLFLOW_IMAGE=... on stdout.
# Usage: images/mlflow/build.sh
set -euo pipefail
# shellcheck source=images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

MLFLOW_VERSION=$(python3 -c '
import sys, tomllib
lock = tomllib.load(open(sys.argv[1], "rb"))
print(next(p["version"] for p in lock["package"] if p["name"] == "mlflow"))
' "$REPO_ROOT/uv.lock")
IMAGE="modelops/mlflow:$MLFLOW_VERSION"

if [ "$BASE_IMAGE_TAG" = "modelops/python-base:bookworm" ]; then
    bash "$REPO_ROOT/images/base.sh"
else
    ensure_docker
fi
if ! image_exists "$IMAGE"; then
    start=$(date +%s)
    quietly env DOCKER_BUILDKIT=0 docker build -q \
        --network "${MODELOPS_BUILD_NETWORK:-host}" \
        --build-arg "BASE_IMAGE=$BASE_IMAGE_TAG" \
        --build-arg "MLFLOW_VERSION=$MLFLOW_VERSION" \
        --build-arg "EXTRA_CA_CERTS=$(extra_ca_certs)" \
        -t "$IMAGE" "$REPO_ROOT/images/mlflow"
    log "built $IMAGE in $(($(date +%s) - start)) s"
fi
printf 'MLFLOW_IMAGE=%s\n' "$IMAGE"
