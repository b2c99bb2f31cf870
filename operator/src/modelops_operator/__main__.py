"""`modelops-operator` / `python -m modelops_operator`: run the operator with kopf."""

from __future__ import annotations

import argparse
import os
from importlib.metadata import version

import kopf

from modelops_operator.settings import Settings

PEERING_NAME = "modelops"


def _describe_settings() -> str:
    lines = ["settings (environment variables):"]
    for name, field in Settings.model_fields.items():
        lines.append(f"  MODELOPS_{name.upper():<22} {field.description or ''} [{field.default!r}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="modelops-operator",
        description="Reconciles ModelDeployments: trains, gates, serves and monitors models.",
        epilog=_describe_settings(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('modelops-operator')}"
    )
    parser.parse_args(argv)
    settings = Settings()
    namespaces = settings.watched_namespaces
    # The prefix names the object in every line: "[namespace/name] Handler ... succeeded".
    kopf.configure(verbose=bool(os.environ.get("MODELOPS_VERBOSE")), log_prefix=True)
    from modelops_operator import handlers  # noqa: F401 (registers the handlers on import)

    kopf.run(
        memo=kopf.Memo(settings=settings),
        clusterwide=not namespaces,
        namespaces=namespaces,
        peering_name=PEERING_NAME,
        standalone=settings.standalone,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
    )


if __name__ == "__main__":
    main()
