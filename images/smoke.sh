#!/usr/bin/env bash
# Builds the images (images/build.sh, via the test's fixture) and runs their smoke test:
# trainer -> artifact on a host directory -> inference server answering /predict, and the
# operator image starting. Extra arguments go to pytest (e.g. -x, -k server).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export UV_PYTHON_DOWNLOADS=never
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==0.13.9"
exec uv run --locked pytest -m images tests/images -p no:cacheprovider -s "$@"
