"""Bounded downloads over http(s): modelops-fetch's model file and the trainer's CSV.

Whoever writes a URL into a spec chooses what the pod fetches, but the server at that URL chooses
where its redirects lead, and how much it sends and how slowly. So: at most MAX_REDIRECTS
redirects, each keeping its scheme or going from http up to https (never from https down to
http, never to file:, ftp: or any other); a byte limit; and one deadline for the whole download,
connections, redirects and body alike. Errors say what failed (the HTTP status, the network's
error, the redirect refused, the limit hit) and never quote what the server sent: a message may
end up in a resource's status, and an error page may hold a secret. Callers word them, with
`shown` for the URL.
"""

from __future__ import annotations

import contextlib
import http
import http.client
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Generator
from dataclasses import dataclass
from typing import IO
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 5
# A connection that sends nothing for this long fails the download, if the deadline is further.
SOCKET_TIMEOUT_SECONDS = 60
CHUNK_BYTES = 1 << 20
SCHEMES = ("http", "https")
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# The standard phrase of each status: the one a server sends is its own text, and is not repeated.
_PHRASES = {status.value: status.phrase for status in http.HTTPStatus}


class DownloadError(Exception):
    """A download that failed, and why (`reason`), in words that may be shown; `status` is the
    HTTP status where the server answered with one."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class TooLarge(DownloadError):
    """The body is over the byte limit: declared so (Content-Length), or received so."""


class TooSlow(DownloadError):
    """The download was not done by the deadline; `received` bytes of the body had arrived."""

    def __init__(self, received: int) -> None:
        super().__init__(f"not done by the deadline, with {received} bytes received")
        self.received = received


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    deadline_seconds: float

    @classmethod
    def from_environment(
        cls,
        max_bytes_variable: str,
        default_max_bytes: int,
        deadline_variable: str,
        default_deadline_seconds: float,
    ) -> Limits:
        """The limits two environment variables set, each its default where it is unset.
        ValueError names a variable set to anything but a positive number."""
        max_bytes, seconds = os.environ.get(max_bytes_variable), os.environ.get(deadline_variable)
        return cls(
            int(_positive(max_bytes_variable, max_bytes)) if max_bytes else default_max_bytes,
            _positive(deadline_variable, seconds) if seconds else default_deadline_seconds,
        )


def _positive(variable: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{variable} is {raw!r}, not a positive number")
    return value


def shown(url: str) -> str:
    """`url` as it may be shown or logged: without credentials (user:password@), query or
    fragment, which may carry a password, a signature or a token."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment="").geturl()


def _redirect_refusal(current: str, target: str) -> str | None:
    """Why a redirect from `current` to `target` is not followed, or None when it may be: it
    keeps its scheme, or goes from http up to https."""
    scheme, parts = urlsplit(current).scheme, urlsplit(target)
    if parts.scheme == scheme or (scheme, parts.scheme) == ("http", "https"):
        return None
    # Where it leads, not the whole Location: the server's text, like its body.
    return (
        f"redirect from {scheme} to {shown(parts._replace(path='').geturl())} refused (a "
        "redirect may keep its scheme or go from http to https, nothing else)"
    )


def download(url: str, into: IO[bytes], limits: Limits) -> int:
    """Copies the body at the http(s) `url` into `into`, following redirects as above; the
    number of bytes copied. DownloadError (TooLarge, TooSlow) when that cannot be done; an
    error writing `into` is the caller's own."""
    copied = 0
    with contextlib.closing(_body(url, limits)) as chunks:
        for chunk in chunks:
            into.write(chunk)
            copied += len(chunk)
    return copied


def _body(url: str, limits: Limits) -> Generator[bytes, None, None]:
    deadline = time.monotonic() + limits.deadline_seconds
    received = 0
    try:
        with _follow(url, deadline) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
                raise TooLarge(f"larger than {limits.max_bytes} bytes (Content-Length)")
            # read1: whatever has arrived, so a trickle cannot hold a read past the deadline.
            while chunk := response.read1(CHUNK_BYTES):
                received += len(chunk)
                if received > limits.max_bytes:
                    raise TooLarge(f"larger than {limits.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise TooSlow(received)
                yield chunk
    except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError is an OSError
        if time.monotonic() > deadline:
            raise TooSlow(received) from None
        raise DownloadError(_reason(exc)) from None


def _follow(url: str, deadline: float) -> http.client.HTTPResponse:
    """The response at the end of `url`'s redirects, each connection given the time left."""
    if urlsplit(url).scheme not in SCHEMES:
        raise DownloadError(f"{shown(url)} is not an http or https URL")
    opener = urllib.request.build_opener(_Unfollowed)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            response: http.client.HTTPResponse = opener.open(url, timeout=_time_left(deadline))
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DownloadError(
                f"HTTP {exc.code} {_PHRASES.get(exc.code, '')}".rstrip(), exc.code
            ) from None
        status = response.status
        if status not in _REDIRECT_STATUSES:
            return response
        # Its body is never read: a redirect cannot hold the download with one.
        location = response.headers.get("Location")
        response.close()
        if location is None:
            raise DownloadError(f"HTTP {status} redirect without a Location", status)
        target = urljoin(url, location)
        refusal = _redirect_refusal(url, target)
        if refusal is not None:
            raise DownloadError(f"HTTP {status} {refusal}", status)
        url = target
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects", status)


class _Unfollowed(urllib.request.HTTPRedirectHandler):
    """A redirect comes back as the response it is, for `_follow` to judge and follow."""

    def http_error_302(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: object,
    ) -> IO[bytes]:
        return fp

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline passed")
    return min(SOCKET_TIMEOUT_SECONDS, left)


def _reason(exc: BaseException) -> str:
    """What went wrong on this side of the connection, or that the answer was not HTTP."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    elif isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, http.client.InvalidURL):  # its message quotes the URL, query and all
        return "a URL that is not valid (a space, a control character, a port that is no number)"
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, OSError):
        # BadStatusLine and its kind carry what the server sent: named, never quoted.
        return f"the answer is not valid HTTP ({type(exc).__name__})"
    return str(exc) or type(exc).__name__
