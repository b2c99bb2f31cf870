"""`modelops-fetch` against a real S3-compatible server (versitygw): a version the trainer
uploaded arrives whole (its compiled form too) and loads; a digest that does not match leaves nothing behind; each
failure is one `error:` line. And against real HTTP servers on loopback, plain and over TLS, that
misbehave: a model file at a URL is fetched within bounds (redirects, scheme, time), and the
error never repeats what the server sent."""

from __future__ import annotations

import contextlib
import hashlib
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import numpy as np
import pytest
from modelops_envtest import pki
from modelops_envtest.object_storage import ObjectStorage
from modelops_server import fetch
from modelops_server.artifact import load_verified, load_verified_compiled, read_metadata
from modelops_server.errors import ArtifactError
from modelops_trainer.object_storage import ObjectStore
from modelops_trainer.training import train

IRIS = {
    "dataset": {"builtin": "iris"},
    "estimator": "LogisticRegression",
    "hyperparameters": {"max_iter": 200},
}


@pytest.fixture
def uploaded(s3: ObjectStorage, tmp_path: Path) -> dict[str, Any]:
    """The trainer's summary of a version it uploaded to s3://models/fetch."""
    return train(IRIS, tmp_path / "staging", "iris", "ns", ObjectStore("s3://models/fetch"))


def test_a_fetched_version_loads_as_one_on_a_volume(
    uploaded: dict[str, Any], tmp_path: Path
) -> None:
    directory = tmp_path / "models" / uploaded["version"]
    fetch.fetch(
        uploaded["artifactPath"], directory, uploaded["sha256"], None, uploaded["compiledSha256"]
    )
    metadata = read_metadata(directory)
    model = load_verified(directory, metadata, uploaded["sha256"])
    assert list(model.predict([[5.1, 3.5, 1.4, 0.2]])) == ["setosa"]
    compiled = load_verified_compiled(directory, metadata, uploaded["compiledSha256"])
    assert compiled.predict(np.array([[5.1, 3.5, 1.4, 0.2]])).outputs.tolist() == [0]
    assert sorted(path.name for path in directory.parent.iterdir()) == [uploaded["version"]]


def test_a_digest_that_does_not_match_leaves_nothing_behind(
    uploaded: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match="is not the model that was trained"):
        fetch.fetch(uploaded["artifactPath"], tmp_path / "models" / "v1", "0" * 64)
    assert list((tmp_path / "models").iterdir()) == []


def test_a_compiled_form_that_is_not_the_trained_one_leaves_nothing_behind(
    uploaded: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match=r"model\.npz has sha256"):
        fetch.fetch(
            uploaded["artifactPath"], tmp_path / "models" / "v1", uploaded["sha256"], None, "0" * 64
        )
    assert list((tmp_path / "models").iterdir()) == []


def test_metadata_changed_in_the_bucket_since_training_leaves_nothing_behind(
    uploaded: dict[str, Any], tmp_path: Path
) -> None:
    # Another writer of the bucket swaps the class names: the model files still check out.
    client = boto3.session.Session().client("s3")
    key = urlsplit(uploaded["artifactPath"]).path.strip("/") + "/metadata.json"
    metadata = json.loads(client.get_object(Bucket="models", Key=key)["Body"].read())
    metadata["target"]["classes"].reverse()
    client.put_object(Bucket="models", Key=key, Body=json.dumps(metadata).encode())
    with pytest.raises(ArtifactError, match="recorded when the version was trained"):
        fetch.fetch(
            uploaded["artifactPath"],
            tmp_path / "models" / "v1",
            uploaded["sha256"],
            None,
            uploaded["compiledSha256"],
            uploaded["metadataSha256"],
        )
    assert list((tmp_path / "models").iterdir()) == []


def test_a_restarted_fetch_replaces_what_an_earlier_one_left(
    uploaded: dict[str, Any], tmp_path: Path
) -> None:
    directory = tmp_path / "models" / uploaded["version"]
    directory.mkdir(parents=True)
    (directory / "partial").write_text("from a run that died")
    fetch.fetch(uploaded["artifactPath"], directory, uploaded["sha256"])
    assert sorted(path.name for path in directory.iterdir()) == [
        "metadata.json",
        "model.joblib",
        "model.npz",
    ]


def test_each_failure_is_one_error_line_and_exit_1(
    uploaded: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    missing = uploaded["artifactPath"].rsplit("/", 1)[0] + "/v000000000000"
    status = fetch.main(["--from", missing, "--to", str(tmp_path / "v"), "--sha256", "0" * 64])
    _, err = capfd.readouterr()
    assert status == 1
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert "does not exist" in line and "spec.storage.s3" in line


MODEL = b"a model file: the fetch checks its digest, and nothing here loads it"
MODEL_SHA256 = hashlib.sha256(MODEL).hexdigest()
SECRET = "secret-token-123"


class _ModelServer(BaseHTTPRequestHandler):
    """Serves MODEL at /model.joblib; each other path is one way a server can misbehave, and
    each of their answers carries SECRET."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        path, query = urlsplit(self.path)[2:4]
        if path == "/model.joblib":
            self._answer(200, "OK", MODEL)
        elif path.startswith("/r/"):  # /r/N: N redirects, each to another URL, then the model
            left = int(path.removeprefix("/r/")) - 1
            self._answer(302, "Found", SECRET.encode(), f"/r/{left}" if left else "/model.joblib")
        elif path == "/redirect":
            self._answer(302, "Found", SECRET.encode(), parse_qs(query)["to"][0])
        elif path == "/forbidden":  # a reason phrase and a page of the server's own
            self._answer(403, f"Forbidden {SECRET}", f"<html>{SECRET}</html>".encode())
        elif path == "/trickle":
            self.send_response(200)
            self.end_headers()
            # A byte every 50 ms for 10 s: endless to a 1 s deadline, and finite without one.
            with contextlib.suppress(OSError):  # the fetch gave up and closed the connection
                for _ in range(200):
                    self.wfile.write(SECRET[:1].encode())
                    time.sleep(0.05)

    def _answer(self, status: int, reason: str, body: bytes, location: str | None = None) -> None:
        self.send_response(status, reason)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class Servers:
    http: str
    https: str


@contextlib.contextmanager
def _serving(tls: ssl.SSLContext | None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ModelServer)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    return pki.generate(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def servers(certificates: pki.Pki, monkeypatch: pytest.MonkeyPatch) -> Iterator[Servers]:
    """Two real HTTP servers of `_ModelServer` on loopback: one plain, one over TLS with a
    certificate of a throwaway CA, which the fetch is made to trust (SSL_CERT_FILE)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca_cert))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificates.serving_cert, certificates.serving_key)
    with _serving(None) as plain, _serving(tls) as secure:
        yield Servers(plain, secure)


def _fetch_error(url: str, tmp_path: Path) -> str:
    """The fetch's error for the model at `url`, having checked it left nothing behind."""
    with pytest.raises(ArtifactError) as error:
        fetch.fetch(url, tmp_path / "models" / "v1", MODEL_SHA256, "model.joblib")
    assert list((tmp_path / "models").iterdir()) == []
    message = str(error.value)
    assert SECRET not in message and "html" not in message
    return message


@pytest.mark.parametrize(
    "start,to",
    [("https", "https"), ("http", "http"), ("http", "https")],
)
def test_a_redirect_that_keeps_its_scheme_or_goes_up_to_https_is_followed(
    start: str, to: str, servers: Servers, tmp_path: Path
) -> None:
    target = getattr(servers, to) + "/model.joblib"
    directory = tmp_path / "models" / "v1"
    fetch.fetch(f"{getattr(servers, start)}/redirect?to={target}", directory, MODEL_SHA256, "m")
    assert (directory / "m").read_bytes() == MODEL


def test_a_redirect_from_https_down_to_http_is_refused(servers: Servers, tmp_path: Path) -> None:
    message = _fetch_error(f"{servers.https}/redirect?to={servers.http}/model.joblib", tmp_path)
    assert f"HTTP 302 redirect from https to {servers.http} refused" in message
    assert message.startswith(f"cannot read {servers.https}/redirect: ")
    assert message.endswith("; check spec.model.uri")


@pytest.mark.parametrize("target", ["ftp://127.0.0.1:9/model.joblib", "file:///etc/passwd"])
def test_a_redirect_to_another_scheme_is_refused(
    target: str, servers: Servers, tmp_path: Path
) -> None:
    message = _fetch_error(f"{servers.http}/redirect?to={target}", tmp_path)
    assert f"HTTP 302 redirect from http to {target.split(':')[0]}://" in message
    assert "refused" in message


def test_a_chain_of_redirects_longer_than_five_is_cut_short(
    servers: Servers, tmp_path: Path
) -> None:
    """Each redirect to another URL, so that only the cap stops them; five are followed."""
    fetch.fetch(f"{servers.http}/r/5", tmp_path / "five", MODEL_SHA256, "model.joblib")
    message = _fetch_error(f"{servers.http}/r/6", tmp_path)
    assert f"cannot read {servers.http}/r/6: more than 5 redirects" in message


def test_a_server_that_trickles_is_stopped_by_the_deadline(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_FETCH_DEADLINE_SECONDS", "1")
    started = time.monotonic()
    message = _fetch_error(f"{servers.https}/trickle", tmp_path)
    assert time.monotonic() - started < 5
    assert "took longer than 1 s, the fetch's limit (MODELOPS_FETCH_DEADLINE_SECONDS)" in message


def test_an_error_names_the_status_and_url_but_never_what_the_server_sent(
    servers: Servers, tmp_path: Path
) -> None:
    message = _fetch_error(f"{servers.http}/forbidden?signature=abc", tmp_path)
    assert message == (
        f"cannot read {servers.http}/forbidden: HTTP 403 Forbidden; check spec.model.uri"
    )
    # Credentials in a URL are no part of how it is shown (nor sent: urllib takes no userinfo).
    user = servers.http.replace("://", "://user:password@")
    message = _fetch_error(f"{user}/model.joblib", tmp_path)
    assert message.startswith(f"cannot read {servers.http}/model.joblib: ")
    assert "password" not in message
