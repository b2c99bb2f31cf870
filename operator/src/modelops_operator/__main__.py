"""`modelops-operator` / `python -m modelops_operator`: run the operator with kopf."""

from __future__ import annotations

import importlib
import os

import kopf

from modelops_operator.settings import Settings

PEERING_NAME = "modelops"


def main() -> None:
    settings = Settings()
    namespaces = settings.watched_namespaces
    # The prefix names the object in every line: "[namespace/name] Handler ... succeeded".
    kopf.configure(verbose=bool(os.environ.get("MODELOPS_VERBOSE")), log_prefix=True)
    importlib.import_module("modelops_operator.handlers")  # registers the handlers
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        peering_name=PEERING_NAME,
        standalone=settings.standalone,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
    )


if __name__ == "__main__":
    main()
