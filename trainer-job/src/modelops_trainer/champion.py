"""`modelops-champion`: points a registered model's alias (`champion` by default) at the version
that serves. The operator runs it in a Job once a version's rollout completes, on promotion,
rollback and pin alike, so clients that load `models:/<name>@champion` get what serves.

Exit status and termination message as `modelops-train`'s: 0 with a JSON line, 1 with one
`error: ...` line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from .cli import EXIT_BAD_INPUT, fail, write_termination_log
from .errors import TrainingError
from .tracking import TRACKING_URI_ENV, Tracking


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelops-champion",
        description="Point an alias of a model registered in MLflow (MLFLOW_TRACKING_URI) at one "
        "of its versions.",
    )
    parser.add_argument("--model", required=True, help="the registered model's name")
    parser.add_argument("--version", required=True, help="the version the alias points at")
    parser.add_argument("--alias", required=True, help="the alias, e.g. champion")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    tracking = Tracking.from_environment()
    if tracking is None:
        return fail(f"no MLflow server: ${TRACKING_URI_ENV} is not set", EXIT_BAD_INPUT)
    try:
        tracking.point_alias(args.model, args.version, args.alias)
    except TrainingError as exc:
        return fail(str(exc), EXIT_BAD_INPUT)
    line = json.dumps({"model": args.model, "version": args.version, "alias": args.alias})
    print(line, flush=True)
    write_termination_log(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
