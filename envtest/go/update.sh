#!/usr/bin/env bash
# Re-pin the control plane to another Kubernetes release: `envtest/go/update.sh 1.34.4`.
# k8s.io/kubernetes requires its staging modules at v0.0.0 (they live in its own tree), so a
# module depending on it must replace each with the matching v0.X.Y release.
set -euo pipefail
cd "$(dirname "$0")"
version=${1:?usage: update.sh KUBERNETES_VERSION (e.g. 1.34.4)}
staging=v0.${version#1.}
modfile=$(go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  sed '/^require k8s.io\/kubernetes/,$d' go.mod
  echo "require k8s.io/kubernetes v$version"
  echo
  echo 'tool ('
  echo '	go.etcd.io/etcd/server/v3'
  echo '	k8s.io/kubernetes/cmd/kube-apiserver'
  echo '	k8s.io/kubernetes/cmd/kube-controller-manager'
  echo '	k8s.io/kubernetes/cmd/kube-proxy'
  echo '	k8s.io/kubernetes/cmd/kube-scheduler'
  echo '	k8s.io/kubernetes/cmd/kubeadm'
  echo '	k8s.io/kubernetes/cmd/kubectl'
  echo '	k8s.io/kubernetes/cmd/kubelet'
  echo ')'
  echo
  echo 'replace ('
  awk -v v="$staging" '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print "\t" $1 " => " $1 " " v}' "$modfile"
  echo ')'
} > go.mod.new
mv go.mod.new go.mod
go mod tidy
echo "pinned k8s.io/kubernetes v$version; set KUBERNETES_VERSION in binaries.py and images/kind/build.sh (etcd follows the release go.mod)"
