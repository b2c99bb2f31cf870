"""CSV downloads are bounded: in bytes, in total time and in redirects, and what a server sends
back is never echoed unless it reads as column names."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from modelops_trainer import TrainingError, train

HEADER = b"a,b,y\n"
ROW = b"1,2,3\n"
LOGIN_PAGE = b'<!DOCTYPE html>\n<html><body><form action="/login">secret-token-123</form>\n'


class _Misbehaving(BaseHTTPRequestHandler):
    """Each path is one way a CSV server can misbehave."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        path, query = urlsplit(self.path)[2:4]
        if path.startswith("/r/"):  # /r/N: N redirects, each to another URL, then the login page
            left = int(path.removeprefix("/r/")) - 1
            self._redirect(f"/r/{left}" if left else "/login.csv")
            return
        if path == "/redirect":
            self._redirect(parse_qs(query)["to"][0])
            return
        self.send_response(200)
        if self.path == "/big.csv":
            body = HEADER + ROW * 2000
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/endless.csv":  # no Content-Length: only the bytes received count
            self.end_headers()
            self._send_until_closed(HEADER, ROW * 1000, pause=0)
        elif self.path == "/trickle.csv":
            self.end_headers()
            self._send_until_closed(HEADER, ROW, pause=0.1)
        elif self.path == "/login.csv":
            self.end_headers()
            self.wfile.write(LOGIN_PAGE)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.end_headers()

    def _send_until_closed(self, first: bytes, then: bytes, pause: float) -> None:
        try:
            self.wfile.write(first)
            for _ in range(100_000):
                self.wfile.write(then)
                self.wfile.flush()
                time.sleep(pause)
        except OSError:  # the trainer gave up and closed the connection
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def misbehaving() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _train(url: str, output_root: Path) -> str:
    spec = {
        "dataset": {"csv": {"url": url, "targetColumn": "y"}},
        "estimator": "Ridge",
    }
    with pytest.raises(TrainingError) as error:
        train(spec, output_root, "m")
    return str(error.value)


@pytest.mark.parametrize("path", ["/big.csv", "/endless.csv"])
def test_a_download_over_the_byte_limit_stops_and_says_so(
    path: str, misbehaving: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_CSV_MAX_BYTES", "10000")
    message = _train(misbehaving + path, tmp_path)
    assert "is larger than 10000 bytes, the trainer's limit (MODELOPS_CSV_MAX_BYTES)" in message


def test_a_file_over_the_byte_limit_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_CSV_MAX_BYTES", "10000")
    csv = tmp_path / "big.csv"
    csv.write_bytes(HEADER + ROW * 2000)
    spec = {"dataset": {"csv": {"path": str(csv), "targetColumn": "y"}}, "estimator": "Ridge"}
    with pytest.raises(TrainingError, match="is larger than 10000 bytes"):
        train(spec, tmp_path / "out", "m")


def test_a_download_past_the_deadline_stops_and_says_so(
    misbehaving: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_CSV_DEADLINE_SECONDS", "1")
    message = _train(misbehaving + "/trickle.csv", tmp_path)
    assert "took longer than 1 s, the trainer's limit (MODELOPS_CSV_DEADLINE_SECONDS)" in message


@pytest.mark.parametrize(
    "redirects,expected",
    [(5, "does not start with a header of column names"), (6, "more than 5 redirects")],
)
def test_a_chain_of_redirects_longer_than_five_is_cut_short(
    redirects: int, expected: str, misbehaving: str, tmp_path: Path
) -> None:
    """Each redirect to another URL, so that only the cap stops them (not a loop's detection)."""
    assert expected in _train(f"{misbehaving}/r/{redirects}", tmp_path)


@pytest.mark.parametrize("target", ["ftp://127.0.0.1:9/train.csv", "file:///etc/passwd"])
def test_a_redirect_to_another_scheme_is_refused(
    target: str, misbehaving: str, tmp_path: Path
) -> None:
    """Only http to https may change the scheme: https to http is refused as well, tested over
    TLS in tests/server/test_server_fetch.py (one download helper for both)."""
    message = _train(f"{misbehaving}/redirect?to={target}", tmp_path)
    scheme = target.split(":")[0]
    assert f"HTTP 302 redirect from http to {scheme}://" in message and "refused" in message


def test_a_page_that_is_not_csv_is_not_echoed(misbehaving: str, tmp_path: Path) -> None:
    message = _train(misbehaving + "/login.csv", tmp_path)
    assert "does not start with a header of column names" in message
    assert "secret-token-123" not in message and "DOCTYPE" not in message
