#!/usr/bin/env bash
# Builds everything a kind cluster needs here, offline, and caches it (docs/kind.md):
#   - the kind CLI, crictl, CoreDNS and Prometheus from the Go module proxy (pinned below);
#   - kubelet, kubeadm, kubectl, kube-scheduler, kube-proxy from envtest/go (same settings and Go
#     cache as the test control plane, whose etcd, kube-apiserver and controller-manager it reuses);
#   - kind's node base image, reproduced from the kind module on a debootstrapped bookworm;
#   - every image kubeadm needs, built locally and pre-imported into the node's containerd;
#   - the node image, tagged modelops/kind-node:v<k8s>-<recipe hash>, and the Prometheus image
#     of the kind overlay, modelops/prometheus:v<version>.
# A warm run only checks that the tagged images exist. It prints the result as KEY=VALUE lines
# on stdout (logs go to stderr), which the tests and the demo read:
#   KIND=... NODE_IMAGE=... PROMETHEUS_IMAGE=... KUBECTL=...
# Usage: images/kind/build.sh [--force]
set -euo pipefail
# shellcheck source=images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
HERE="$REPO_ROOT/images/kind"

KUBERNETES_VERSION=1.34.4
KIND_VERSION=v0.33.0
CRICTL_VERSION=v1.34.0
COREDNS_VERSION=v1.12.1
# Prometheus's Go module is versioned v0.<100 * major + minor>.<patch>: Prometheus 3.16.0, the
# version of promtool (modelops_envtest.prometheus_tools) and of deploy/base's image.
PROMETHEUS_MODULE_VERSION=v0.316.0
PROMETHEUS_VERSION=v3.16.0
NODE_PACKAGES=systemd,systemd-sysv,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps,containerd,runc,containernetworking-plugins,socat,ebtables,ipset
# kube-proxy (nftables mode) needs nft and conntrack; the other components need only libc.
SLIM_PACKAGES=iptables,nftables,conntrack,ca-certificates,ipset,kmod

force=0
[ "${1:-}" = "--force" ] && force=1

recipe_hash() {
    # Everything that shapes the node image: this folder, the Go module pinning Kubernetes, and
    # the build settings in binaries.py.
    (
        cd "$REPO_ROOT"
        cat images/kind/build.sh images/kind/Dockerfile.base images/kind/10-ptp.conflist \
            images/kind/default-storage.yaml images/lib.sh \
            images/kind/pause/main.go images/kind/pause/go.mod envtest/go/go.sum \
            envtest/src/modelops_envtest/binaries.py
    ) | sha256sum | cut -c1-12
}

KIND="$TOOLS/kind-$KIND_VERSION/kind"
NODE_IMAGE="modelops/kind-node:v$KUBERNETES_VERSION-$(recipe_hash)"
PROMETHEUS_IMAGE="modelops/prometheus:$PROMETHEUS_VERSION"
NODE_BIN="$MODELOPS_CACHE/k8s-$KUBERNETES_VERSION-node"

report() {
    printf 'KIND=%s\nNODE_IMAGE=%s\nPROMETHEUS_IMAGE=%s\nKUBECTL=%s\n' \
        "$KIND" "$NODE_IMAGE" "$PROMETHEUS_IMAGE" "$NODE_BIN/kubectl"
}

# storage_image NAME: the image default-storage.yaml names for NAME.
storage_image() {
    sed -n "s|.*\\(docker.io/modelops/$1:[^ ]*\\).*|\\1|p" "$HERE/default-storage.yaml" | head -n 1
}

ensure_docker
if [ "$force" = 0 ] && image_exists "$NODE_IMAGE" && image_exists "$PROMETHEUS_IMAGE" && [ -x "$KIND" ]; then
    log "$NODE_IMAGE and $PROMETHEUS_IMAGE already exist"
    report
    exit 0
fi
command -v go >/dev/null 2>&1 || die "building the kind node needs Go on PATH"
started=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The two debootstraps wait on the network, the Go builds on the CPU: run them side by side.
rootfs_tarball kind-node "$NODE_PACKAGES" >"$work/node-rootfs" &
node_rootfs_job=$!
rootfs_tarball kind-slim "$SLIM_PACKAGES" >"$work/slim-rootfs" &
slim_rootfs_job=$!

(cd "$REPO_ROOT" && uv run --locked --quiet python -m modelops_envtest build --node >&2)
CONTROL_PLANE="$MODELOPS_CACHE/k8s-$KUBERNETES_VERSION"
go_tool kind sigs.k8s.io/kind "$KIND_VERSION"
go_tool crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION"
go_tool coredns github.com/coredns/coredns "$COREDNS_VERSION"
# The provisioner's version is the one default-storage.yaml runs.
LOCAL_PATH_PROVISIONER_VERSION=$(storage_image local-path-provisioner | sed 's/.*://')
go_tool local-path-provisioner github.com/rancher/local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION"
go_tool prometheus github.com/prometheus/prometheus/cmd/prometheus "$PROMETHEUS_MODULE_VERSION" \
    remove_all_sd,enable_kubernetes_sd
# The pod sandbox's PID 1 runs FROM scratch: static.
(cd "$HERE/pause" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$work/pause" .)

wait "$node_rootfs_job" || die "the node's root filesystem failed"
wait "$slim_rootfs_job" || die "the components' root filesystem failed"
key=$(recipe_hash)
rootfs_image="modelops/kind-rootfs:$key"
slim_image="modelops/kind-slim:$key"
docker import "$(cat "$work/node-rootfs")" "$rootfs_image" >/dev/null
docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$(cat "$work/slim-rootfs")" "$slim_image" >/dev/null

# stage_image NAME REFERENCE BINARY DOCKERFILE: an image the node carries, built under our own
# name (never overwriting a registry.k8s.io tag on the host) and renamed inside the node's
# containerd to REFERENCE.
staged_tags=()
stage_image() {
    local name=$1 reference=$2 binary=$3 dockerfile=$4 context staged
    context="$work/images/$name"
    mkdir -p "$context"
    [ -z "$binary" ] || cp "$binary" "$context/"
    printf '%b' "$dockerfile" >"$context/Dockerfile"
    staged="modelops/kind-staging-$name:$key"
    quietly env DOCKER_BUILDKIT=0 docker build -q -t "$staged" "$context"
    staged_tags+=("$staged=$reference")
    log "built $reference"
}

# Images kubeadm pulls, as it names them, each made from the binary built above. etcd: the
# release pins 3.6.5 and the control plane's module builds 3.6.4, which kubeadm 1.34 runs unchanged.
declare -A BINARY=(
    [kube-apiserver]="$CONTROL_PLANE/kube-apiserver"
    [kube-controller-manager]="$CONTROL_PLANE/kube-controller-manager"
    [kube-scheduler]="$NODE_BIN/kube-scheduler"
    [kube-proxy]="$NODE_BIN/kube-proxy"
    [etcd]="$CONTROL_PLANE/etcd"
    [coredns]="$TOOLS/coredns-$COREDNS_VERSION/coredns"
    [pause]="$work/pause"
)
mapfile -t wanted < <("$NODE_BIN/kubeadm" config images list --kubernetes-version "v$KUBERNETES_VERSION")
sandbox_image=""
for image in "${wanted[@]}"; do
    name=${image##*/}
    name=${name%%:*}
    [ -n "${BINARY[$name]:-}" ] || die "kubeadm wants $image, which this recipe does not build"
    case $name in
        pause)
            sandbox_image=$image
            dockerfile='FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' ;;
        coredns)
            dockerfile="FROM $slim_image\nCOPY coredns /coredns\nENTRYPOINT [\"/coredns\"]\n" ;;
        *)
            dockerfile="FROM $slim_image\nCOPY $name /usr/local/bin/$name\n" ;;
    esac
    stage_image "$name" "$image" "${BINARY[$name]}" "$dockerfile"
done
[ -n "$sandbox_image" ] || die "kubeadm named no pause image"
# The default StorageClass, as kind installs it (images/kind/default-storage.yaml): the
# provisioner, and a helper that only needs a shell to make and remove volume folders.
stage_image local-path-provisioner "$(storage_image local-path-provisioner)" \
    "$TOOLS/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION/local-path-provisioner" \
    "FROM $slim_image\nCOPY local-path-provisioner /usr/bin/local-path-provisioner\n"
stage_image local-path-helper "$(storage_image local-path-helper)" "" "FROM $slim_image\n"
docker save -o "$work/images.tar" "${staged_tags[@]%%=*}"

# kind's base image: its files from the kind module, our Dockerfile.
kind_module=$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
mkdir -p "$work/base"
cp -r "$kind_module/images/base/files" "$work/base/files"
chmod -R u+w "$work/base/files"
cp "$HERE/Dockerfile.base" "$HERE/10-ptp.conflist" "$work/base/"
base_image="modelops/kind-base:$key"
quietly env DOCKER_BUILDKIT=0 docker build -q --build-arg "ROOTFS=$rootfs_image" \
    --build-arg "SANDBOX_IMAGE=$sandbox_image" -f "$work/base/Dockerfile.base" -t "$base_image" "$work/base"
log "built $base_image"

# The node image, assembled as `kind build node-image` does (pkg/build/nodeimage/buildcontext.go):
# binaries into /usr/bin, the version into /kind/version, the images into containerd, commit.
builder="modelops-kind-build-$key-$$"
docker run -d --name "$builder" --entrypoint=sleep --security-opt seccomp=unconfined "$base_image" infinity >/dev/null
trap 'docker rm -f -v "$builder" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
for binary in kubeadm kubelet kubectl; do
    docker cp "$NODE_BIN/$binary" "$builder:/usr/bin/$binary"
done
docker cp "$TOOLS/crictl-$CRICTL_VERSION/crictl" "$builder:/usr/local/bin/crictl"
docker cp "$HERE/default-storage.yaml" "$builder:/kind/manifests/default-storage.yaml"
docker exec "$builder" sh -c "chown root:root /usr/bin/kube* /usr/local/bin/crictl /kind/manifests/* &&
    chmod 0755 /usr/bin/kube* /usr/local/bin/crictl && chmod 0644 /kind/manifests/* &&
    printf v$KUBERNETES_VERSION > /kind/version"
docker exec "$builder" sh -c 'containerd >/tmp/containerd.log 2>&1 & for i in $(seq 1 50); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.2; done; cat /tmp/containerd.log; exit 1'
docker exec -i "$builder" ctr --namespace=k8s.io images import --all-platforms --no-unpack - <"$work/images.tar" >/dev/null
for pair in "${staged_tags[@]}"; do
    staged=docker.io/${pair%%=*}
    image=${pair#*=}
    docker exec "$builder" sh -c "ctr -n k8s.io images tag --force '$staged' '$image' >/dev/null &&
        ctr -n k8s.io images rm '$staged' >/dev/null &&
        ctr -n k8s.io images label '$image' io.cri-containerd.pinned=pinned >/dev/null"
done
# PID 1 (sleep) reaps nothing: wait for containerd's API to go, not for its process.
docker exec "$builder" sh -c 'pkill containerd; while ctr version >/dev/null 2>&1; do sleep 0.2; done; rm -f /tmp/containerd.log'
docker commit \
    --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
    --change 'ENV HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY=""' \
    "$builder" "$NODE_IMAGE" >/dev/null
docker rm -f -v "$builder" >/dev/null
log "built $NODE_IMAGE ($(docker image inspect -f '{{.Size}}' "$NODE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"

# Prometheus for the kind overlay, as prom/prometheus runs it (nobody, /prometheus for data).
mkdir -p "$work/prometheus"
cp "$TOOLS/prometheus-$PROMETHEUS_MODULE_VERSION/prometheus" "$work/prometheus/prometheus"
printf 'FROM %s\nCOPY prometheus /bin/prometheus\nUSER 65534:65534\nWORKDIR /prometheus\nENTRYPOINT ["/bin/prometheus"]\n' \
    "$slim_image" >"$work/prometheus/Dockerfile"
quietly env DOCKER_BUILDKIT=0 docker build -q -t "$PROMETHEUS_IMAGE" "$work/prometheus"
log "built $PROMETHEUS_IMAGE"

# The intermediate tags are ours; their layers stay in the node and Prometheus images. So are
# node images of earlier recipes (one still running a cluster stays).
docker rmi "${staged_tags[@]%%=*}" "$base_image" "$rootfs_image" "$slim_image" >/dev/null
for old in $(docker images --format '{{.Repository}}:{{.Tag}}' modelops/kind-node); do
    [ "$old" = "$NODE_IMAGE" ] || docker rmi "$old" >/dev/null 2>&1 || true
done
log "kind node built in $(($(date +%s) - started)) s"
report
