#!/usr/bin/env bash
# Points the production overlay, what Argo CD syncs (argocd/apps/platform.yaml), at one build's
# three images. The trainer's and server's reach the operator's environment through the same
# `images:` entries (deploy/base/operator/image-fields.yaml). Run by .github/workflows/ci.yml
# after it pushed the images; commit the change and Argo CD rolls it out.
# Usage: deploy/set-images.sh OPERATOR_IMAGE TRAINER_IMAGE SERVER_IMAGE
#   e.g. deploy/set-images.sh ghcr.io/acme/modelops-operator@sha256:... \
#            ghcr.io/acme/modelops-trainer@sha256:... ghcr.io/acme/modelops-inference-server@sha256:...
# kustomize: $KUSTOMIZE, else the one on PATH, else built with `go run` at the version below.
set -euo pipefail
KUSTOMIZE_VERSION=v5.8.1
[ "$#" -eq 3 ] || { sed -n 's/^# \{0,1\}//; 6,8p' "$0" >&2; exit 2; }

kustomize() {
    if [ -n "${KUSTOMIZE:-}" ]; then
        "$KUSTOMIZE" "$@"
    elif command -v kustomize >/dev/null 2>&1; then
        command kustomize "$@"
    else
        go run "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" "$@"
    fi
}

cd "$(dirname "${BASH_SOURCE[0]}")/overlays/production"
kustomize edit set image "modelops/operator=$1" "modelops/trainer=$2" "modelops/inference-server=$3"
