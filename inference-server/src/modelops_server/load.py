"""`modelops-load`: a load generator for one model's inference server, built on Locust.

It reads the model card at `<url>/card`, makes valid rows from it (numbers within the range
training saw, categories it knew) and POSTs them to `<url>/predict`, at a fixed concurrency or a
target rate, for a while or until SIGINT/SIGTERM; then it reports throughput, latency, failures
and which model versions answered. Exit status 0 when the error rate is within
--max-error-rate, 1 when above it (or when no request completed), 2 on bad usage or a card that
cannot be read.

Locust, and gevent with it, monkey-patches the standard library when imported: it is imported
only once the command runs (`_run`), never by anything the server imports.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

DEFAULT_USERS = 4
DEFAULT_DURATION_SECONDS = 30.0
# Any failed request fails the run by default: a healthy server, even mid-rollout, fails none.
DEFAULT_MAX_ERROR_RATE = 0.0
# With --rate and no --users: one user per this many requests a second, so each user's share
# leaves room for latencies up to 1/RATE_PER_USER s before the rate falls short.
RATE_PER_USER = 10.0
MAX_RATE_USERS = 1000
CARD_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 10.0
REPORTED_ERRORS = 10
# Distinct failure messages counted one by one; any later new message counts under OTHER.
TRACKED_ERRORS = 100
OTHER_ERRORS = "(other messages)"
MESSAGE_CHARS = 300
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class CardError(Exception):
    """The model card cannot be read or does not describe features load can be made for."""


@dataclass(frozen=True)
class Column:
    """One feature as load is generated for it: a numeric range or a set of categories."""

    name: str
    low: float = 0.0
    high: float = 1.0
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Card:
    name: str
    version: str
    columns: tuple[Column, ...]
    # Numeric features whose card records no range: they get 0..1.
    unbounded: tuple[str, ...] = ()


def parse_card(card: Any) -> Card:
    """The columns to generate from a model card (GET /card); CardError says what is wrong."""
    if not isinstance(card, dict):
        raise CardError("it is not a JSON object")
    features = card.get("features")
    if not isinstance(features, list) or not features:
        raise CardError('it has no "features" list')
    columns: list[Column] = []
    unbounded: list[str] = []
    for index, feature in enumerate(features):
        if not isinstance(feature, dict) or not isinstance(feature.get("name"), str):
            raise CardError(f"feature {index} has no name")
        name = feature["name"]
        kind = feature.get("type")
        if kind == "categorical":
            categories = feature.get("categories")
            if (
                not isinstance(categories, list)
                or not categories
                or not all(isinstance(c, str) for c in categories)
            ):
                raise CardError(f"categorical feature {name!r} lists no categories")
            columns.append(Column(name, categories=tuple(categories)))
        elif kind == "numeric":
            low, high = feature.get("min"), feature.get("max")
            if low is None or high is None:
                unbounded.append(name)
                columns.append(Column(name))
            elif not all(_finite(v) for v in (low, high)) or low > high:
                raise CardError(f"numeric feature {name!r} has no valid range: {low!r}..{high!r}")
            else:
                columns.append(Column(name, float(low), float(high)))
        else:
            raise CardError(f"feature {name!r} has type {kind!r}, not numeric or categorical")
    return Card(
        str(card.get("name", "?")), str(card.get("version", "?")), tuple(columns), tuple(unbounded)
    )


def make_rows(columns: Sequence[Column], count: int, rng: random.Random) -> list[list[Any]]:
    """`count` rows in feature order: numbers uniform within each range, categories uniform."""
    return [
        [
            rng.choice(c.categories) if c.categories is not None else rng.uniform(c.low, c.high)
            for c in columns
        ]
        for _ in range(count)
    ]


def read_card(base_url: str) -> Any:
    """The JSON at `<base_url>/card`; CardError with the reason when it cannot be had."""
    url = f"{base_url}/card"
    try:
        with urllib.request.urlopen(url, timeout=CARD_TIMEOUT_SECONDS) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        hint = ": is this a modelops inference server?" if exc.code == 404 else ""
        raise CardError(f"GET {url} answered HTTP {exc.code}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CardError(f"GET {url} failed: {reason}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise CardError(f"GET {url} did not answer JSON") from None


@dataclass
class Tally:
    """Every completed request's latency and outcome, and which version answered each success.
    Latencies are kept exactly: Locust's own statistics round them to whole milliseconds, and
    a model server answers in about one."""

    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    def request(self, latency_ms: float, error: str | None = None) -> None:
        self.latencies_ms.append(latency_ms)
        if error is not None:
            self.failures += 1
            message = " ".join(error.split())[:MESSAGE_CHARS]
            if message not in self.errors and len(self.errors) >= TRACKED_ERRORS:
                message = OTHER_ERRORS
            self.errors[message] = self.errors.get(message, 0) + 1

    def answered_by(self, version: str) -> None:
        self.versions[version] = self.versions.get(version, 0) + 1

    def report(self, seconds: float) -> dict[str, Any]:
        requests = len(self.latencies_ms)
        ordered = sorted(self.latencies_ms)

        def percentile(fraction: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[max(0, math.ceil(fraction * requests) - 1)], 2)

        return {
            "requests": requests,
            "failures": self.failures,
            "error_rate": round(self.failures / requests, 6) if requests else 0.0,
            "rps": round(requests / seconds, 1) if seconds > 0 else 0.0,
            "p50_ms": percentile(0.5),
            "p90_ms": percentile(0.9),
            "p99_ms": percentile(0.99),
            "max_ms": percentile(1.0),
            "versions": dict(sorted(self.versions.items())),
            "errors": [
                {"message": message, "count": count}
                for message, count in list(self.errors.items())[:REPORTED_ERRORS]
            ],
        }


@dataclass(frozen=True)
class Plan:
    """How the load is sent: `users` users, each back to back or at `per_user_rate` a second."""

    users: int
    per_user_rate: float | None
    batch_size: int
    duration: float
    keep_alive: bool = True


def plan(
    users: int | None, rate: float | None, batch_size: int, duration: float, keep_alive: bool = True
) -> Plan:
    if rate is None:
        return Plan(users or DEFAULT_USERS, None, batch_size, duration, keep_alive)
    if users is None:
        users = min(MAX_RATE_USERS, max(1, math.ceil(rate / RATE_PER_USER)))
    return Plan(users, rate / users, batch_size, duration, keep_alive)


def _run(base_url: str, card: Card, how: Plan, verbose: bool) -> tuple[Tally, float, bool]:
    """Runs Locust in this process; the tally, the seconds it ran and whether the generator's
    own CPU went above 90 % (then the numbers understate the server)."""
    # Imported here: Locust monkey-patches the standard library with gevent on import.
    import gevent
    import gevent.event
    from locust import FastHttpUser, constant, constant_throughput, task
    from locust.env import Environment

    if not verbose:
        logging.getLogger("locust").setLevel(logging.ERROR)
    tally = Tally()
    rng = random.Random()
    columns = card.columns
    rows = how.batch_size
    headers = HEADERS if how.keep_alive else HEADERS | {"Connection": "close"}

    class ModelUser(FastHttpUser):
        host = base_url
        wait_time = (
            constant(0) if how.per_user_rate is None else constant_throughput(how.per_user_rate)
        )
        connection_timeout = CONNECT_TIMEOUT_SECONDS
        network_timeout = REQUEST_TIMEOUT_SECONDS

        @task
        def predict(self) -> None:
            body = orjson.dumps({"instances": make_rows(columns, rows, rng)}).decode()
            with self.client.post(
                "/predict", data=body, headers=headers, catch_response=True
            ) as response:
                if response.status_code == 200:
                    version = _version(response.content)
                    if version is None:
                        response.failure("HTTP 200 without a model_version")
                    else:
                        tally.answered_by(version)
                elif response.status_code == 0:
                    response.failure(f"no response: {response.error}")
                else:
                    response.failure(f"HTTP {response.status_code}: {_reason(response.content)}")

    def on_request(response_time: float, exception: BaseException | None, **_: Any) -> None:
        tally.request(response_time, None if exception is None else str(exception))

    environment = Environment(user_classes=[ModelUser])
    environment.events.request.add_listener(on_request)
    runner = environment.create_local_runner()
    stop = gevent.event.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signal_number, stop.set)
    started = time.monotonic()
    runner.start(how.users, spawn_rate=how.users)
    stop.wait(timeout=how.duration)
    seconds = time.monotonic() - started
    runner.quit()
    return tally, seconds, bool(runner.cpu_warning_emitted)


def _version(content: bytes | None) -> str | None:
    try:
        version = orjson.loads(content or b"").get("model_version")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return version if isinstance(version, str) else None


def _reason(content: bytes | None) -> str:
    """The server's {"error": ...} message, or the start of whatever body came."""
    try:
        error = orjson.loads(content or b"").get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    if isinstance(error, str):
        return error
    return (content or b"").decode(errors="replace")[:MESSAGE_CHARS] or "(empty body)"


def format_table(report: dict[str, Any]) -> str:
    """The human-readable report."""
    rate = report["rate"]
    mode = "back to back" if rate is None else f"{rate:g} req/s in total"
    lines = [
        f"{report['url']}: model {report['model']} {report['card_version']}, "
        f"{_count(report['users'], 'user')} {mode}, "
        f"{_count(report['batch_size'], 'row')} per request, "
        f"{report['seconds']:.1f} s",
        "",
        f"{'requests':>10} {'failures':>10} {'error rate':>11} {'req/s':>10}",
        f"{report['requests']:>10} {report['failures']:>10} {report['error_rate']:>11.2%} "
        f"{report['rps']:>10.1f}",
        "",
        f"{'latency ms':>10} {'p50':>10} {'p90':>10} {'p99':>10} {'max':>10}",
        f"{'':>10} "
        + " ".join(
            f"{'-' if value is None else f'{value:.2f}':>10}"
            for value in (report[k] for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms"))
        ),
        "",
        f"{'model_version':<24} {'responses':>10}",
        *(f"{version:<24} {count:>10}" for version, count in report["versions"].items()),
    ]
    if not report["versions"]:
        lines.append(f"{'(none)':<24} {0:>10}")
    if report["errors"]:
        lines += ["", f"failures (first {REPORTED_ERRORS} distinct messages):"]
        lines += [f"{e['count']:>10}  {e['message']}" for e in report["errors"]]
    if report["client_cpu_saturated"]:
        lines += ["", "note: this generator's CPU went above 90 %: the server may do better"]
    return "\n".join(lines)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="modelops-load",
        description="Load-test one model's inference server: valid rows made from its model "
        "card (GET <url>/card), POSTed to <url>/predict. Exit status 0 when the error rate is "
        "within --max-error-rate, 1 when above it, 2 on bad usage or an unreadable card.",
    )
    parser.add_argument(
        "url", help="the server's base URL, e.g. http://iris.ml.svc.cluster.local:8080"
    )
    parser.add_argument(
        "--users",
        type=_positive(int),
        help=f"concurrent users, each sending back to back (default {DEFAULT_USERS}); with "
        f"--rate, the users sharing the rate (default: one per {RATE_PER_USER:g} req/s)",
    )
    parser.add_argument(
        "--rate", type=_positive(float), help="target requests a second in total, instead"
    )
    parser.add_argument(
        "--duration",
        type=_positive(float),
        default=DEFAULT_DURATION_SECONDS,
        help=f"seconds to run (default {DEFAULT_DURATION_SECONDS:g}); SIGINT or SIGTERM stops "
        "sooner, still with the report",
    )
    parser.add_argument(
        "--batch-size", type=_positive(int), default=1, help="rows per request (default 1)"
    )
    parser.add_argument(
        "--max-error-rate",
        type=_fraction,
        default=DEFAULT_MAX_ERROR_RATE,
        help=f"the failed fraction of requests above which the exit status is 1 (default "
        f"{DEFAULT_MAX_ERROR_RATE:g}: any failure)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report as one JSON line instead"
    )
    parser.add_argument(
        "--no-keep-alive",
        dest="keep_alive",
        action="store_false",
        help="a new connection for every request (Connection: close), as a client without "
        "keep-alive; by default each user keeps one connection open",
    )
    parser.add_argument("--verbose", action="store_true", help="show Locust's own logging")
    arguments = parser.parse_args(argv)
    parts = urlsplit(arguments.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        parser.error(f"the URL must be http(s)://host[:port]: {arguments.url!r}")
    return arguments


def _positive(kind: Callable[[str], int | float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be within 0..1: {text!r}")
    return value


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _finite(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def main(argv: Sequence[str] | None = None) -> int:
    # As PID 1 in a container a signal with no handler is ignored: until Locust runs (and
    # installs its own), SIGTERM stops the command as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        arguments = _arguments(argv)
        base_url = arguments.url.rstrip("/")
        try:
            card = parse_card(read_card(base_url))
        except CardError as exc:
            print(f"modelops-load: cannot use the model card: {exc}", file=sys.stderr)
            return 2
        if card.unbounded:
            print(
                "modelops-load: the card records no range for "
                f"{', '.join(map(repr, card.unbounded))}: sending values in 0..1",
                file=sys.stderr,
            )
        if arguments.verbose:
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
            )
        how = plan(
            arguments.users,
            arguments.rate,
            arguments.batch_size,
            arguments.duration,
            arguments.keep_alive,
        )
        tally, seconds, saturated = _run(base_url, card, how, arguments.verbose)
    except KeyboardInterrupt:
        print("modelops-load: stopped before the load started", file=sys.stderr)
        return 1
    report = {
        "url": base_url,
        "model": card.name,
        "card_version": card.version,
        "users": how.users,
        "rate": arguments.rate,
        "batch_size": how.batch_size,
        "keep_alive": how.keep_alive,
        "seconds": round(seconds, 2),
        **tally.report(seconds),
        "client_cpu_saturated": saturated,
    }
    print(json.dumps(report) if arguments.json else format_table(report), flush=True)
    if report["requests"] == 0:
        print("modelops-load: no request completed", file=sys.stderr)
        return 1
    if tally.failures > arguments.max_error_rate * report["requests"]:
        print(
            f"modelops-load: error rate {report['error_rate']:.2%} is above "
            f"--max-error-rate {arguments.max_error_rate:.2%}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
