# The README's commands. `make test` is what CI runs (.ci/run), on a fresh machine.
SHELL := /bin/bash
UV_VERSION := 0.13.9
# The machine's CPython is used as is: uv's own Python downloads come from outside the registries.
export UV_PYTHON_DOWNLOADS := never
UV := uv

.PHONY: test setup controlplane prometheus images cluster-image argocd lint typecheck pytest demo release clean-cache

# The control plane's Go build keeps both cores busy while the images' debootstraps and downloads
# mostly wait on the network, so on empty caches the two overlap.
test: setup
	$(MAKE) --jobs=2 controlplane images
	$(MAKE) lint typecheck pytest

# The server's C extension (modelops_server/_kernels.c) is built by the sync: a C compiler and
# Python's headers, from apt when missing.
setup:
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@command -v cc >/dev/null && python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev python3-dev; }
	$(UV) sync --locked

# Builds etcd, kube-apiserver and kube-controller-manager from source once (cached per version).
controlplane: setup
	$(UV) run --locked python -m modelops_envtest build

# Debian's prometheus (the real server for the end-to-end test) and a promtool with Kubernetes
# discovery built from source (Debian's has none), cached like the control plane.
prometheus: setup
	$(UV) run --locked python -m modelops_envtest.prometheus_tools

# bandit and checkov, pinned, in environments of their own; each finding fixed or reviewed in
# envtest/security-skips.yaml (docs/security.md).
lint: setup
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked python -m modelops_envtest.security_scan

typecheck: setup
	$(UV) run --locked mypy

# The three container images, on a debootstrapped base (no registry here): see docs/images.md.
images:
	bash images/base.sh
	bash images/build.sh

# The kind node image, its tools and the kind overlay's Prometheus image, built offline and
# cached (docs/kind.md), with its add-ons (metrics-server, the NetworkPolicy enforcer); the
# S3-compatible server for object storage, as a binary for the tests on loopback and as the
# image the kind sample runs; and the MLflow server's image.
cluster-image: setup controlplane images
	bash images/kind/build.sh >/dev/null
	bash images/metrics-server/build.sh >/dev/null
	bash images/network-policy/build.sh >/dev/null
	bash images/object-storage/build.sh >/dev/null
	bash images/mlflow/build.sh >/dev/null
	$(UV) run --locked python -m modelops_envtest.object_storage >/dev/null

# Argo CD's controller and repo server, and kustomize, built from the Go module proxy, and the
# image of them the kind cluster runs (docs/gitops.md), cached.
argocd:
	bash images/argocd/build.sh >/dev/null

# The image and kind tests are opt-in for a bare `pytest` (they need Docker); `make test` runs them,
# on two workers (tests/conftest.py groups the tests).
pytest: setup controlplane prometheus images cluster-image argocd
	MODELOPS_IMAGE_TESTS=1 MODELOPS_KIND_TESTS=1 $(UV) run --locked pytest --numprocesses 2 --dist loadgroup --no-loadscope-reorder --durations=25

# kind mode where Docker and kind are usable, otherwise the local mode (see README.md).
demo: setup controlplane
	$(UV) run --locked python -m modelops_envtest demo

# A release of the operator alone, from deploy/base/operator: dist/install.yaml (for `kubectl
# apply --server-side`) and the Helm chart charts/modelops, its images tagged VERSION. Build the
# images with that tag: `MODELOPS_IMAGE_VERSION=$(VERSION) make images`.
release: setup
	@test -n "$(VERSION)" || { echo "usage: make release VERSION=x.y.z" >&2; exit 2; }
	$(UV) run --locked python -m modelops_envtest.release --version "$(VERSION)"

clean-cache:
	rm -rf $${MODELOPS_CACHE:-$$HOME/.cache/modelops}
