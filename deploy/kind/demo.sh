#!/usr/bin/env bash
# The main job on a machine with Docker and kind: a real cluster, the real images, Argo CD.
# `make demo` runs this when `docker info` works and `kind` is on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${MODELOPS_KIND_CLUSTER:-modelops}
ARGOCD_VERSION=${ARGOCD_VERSION:-v3.1.0}

step() { printf '\n== %s\n' "$*"; }

step "kind cluster $CLUSTER"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --config deploy/kind/cluster.yaml

step "images (built here, loaded into the kind nodes)"
MODELOPS_BASE_IMAGE=${MODELOPS_BASE_IMAGE:-python:3.11-slim} bash images/build.sh
for image in modelops/operator:0.1.0 modelops/trainer:0.1.0 modelops/inference-server:0.1.0; do
  kind load docker-image --name "$CLUSTER" "$image"
done

step "Argo CD $ARGOCD_VERSION, with the ModelDeployment health check"
kubectl create namespace argocd --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n argocd --server-side -f "https://raw.githubusercontent.com/argoproj/argo-cd/$ARGOCD_VERSION/manifests/install.yaml"
kubectl -n argocd patch configmap argocd-cm --type merge --patch-file argocd/argocd-cm-patch.yaml

step "platform: CRDs, operator, Prometheus, Grafana (kind overlay)"
kubectl kustomize --load-restrictor LoadRestrictionsNone deploy/overlays/kind | kubectl apply --server-side -f -
kubectl -n modelops-system rollout status deployment/modelops-operator --timeout=300s

step "models: the samples"
kubectl apply -f deploy/samples/
kubectl wait --for=condition=Ready modeldeployments --all --timeout=900s
kubectl get modeldeployments

step "a prediction"
kubectl port-forward service/iris 8080:8080 >/dev/null 2>&1 &
forward=$!
trap 'kill $forward' EXIT
sleep 3
curl -s -H 'Content-Type: application/json' -d '{"instances": [[5.1, 3.5, 1.4, 0.2]]}' http://127.0.0.1:8080/predict
echo
echo "curl -s -H 'Content-Type: application/json' -d '{\"instances\": [[5.1, 3.5, 1.4, 0.2]]}' http://127.0.0.1:8080/predict   # after: kubectl port-forward service/iris 8080:8080"
