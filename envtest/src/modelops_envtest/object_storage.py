"""A real S3-compatible server for the tests: Versity's S3 gateway (versitygw) over a folder.

versitygw is built from its Go module through the module proxy (Apache-2.0, one static binary,
about 40 MiB resident), cached like the other Go tools. It speaks S3 with SigV4 over plain HTTP
on a loopback port, so boto3, the AWS CLI and the trainer and server reach it through the
standard `AWS_ENDPOINT_URL`.

`python -m modelops_envtest.object_storage` builds it ahead of a test run.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modelops_envtest.binaries import go_tool
from modelops_envtest.controlplane import free_port
from modelops_envtest.processes import running_server

VERSITYGW_PACKAGE = "github.com/versity/versitygw/cmd/versitygw"
VERSITYGW_VERSION = "v1.8.0"
HEALTH_PATH = "/healthz"
REGION = "us-east-1"


def versitygw() -> Path:
    return go_tool("versitygw", VERSITYGW_PACKAGE, VERSITYGW_VERSION)


@dataclass(frozen=True)
class ObjectStorage:
    endpoint: str
    access_key: str
    secret_key: str
    root: Path

    def environment(self) -> dict[str, str]:
        """The standard AWS client variables that reach this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": REGION,
        }

    def create_bucket(self, bucket: str) -> None:
        # In versitygw's posix backend a bucket is a top-level folder.
        (self.root / bucket).mkdir(exist_ok=True)


@contextlib.contextmanager
def running(host: str = "127.0.0.1") -> Iterator[ObjectStorage]:
    """versitygw on a free port of `host`, over a throwaway folder, with fresh credentials."""
    binary = versitygw()
    with tempfile.TemporaryDirectory(prefix="modelops-s3-") as workdir:
        root = Path(workdir) / "buckets"
        root.mkdir()
        port = free_port(host)
        storage = ObjectStorage(
            endpoint=f"http://{host}:{port}",
            access_key="modelops-" + secrets.token_hex(4),
            secret_key=secrets.token_hex(16),
            root=root,
        )
        with running_server(
            "versitygw",
            [str(binary), "--port", f"{host}:{port}", "--health", HEALTH_PATH, "posix", str(root)],
            storage.endpoint + HEALTH_PATH,
            Path(workdir) / "versitygw.log",
            {
                "ROOT_ACCESS_KEY_ID": storage.access_key,
                "ROOT_SECRET_ACCESS_KEY": storage.secret_key,
            },
        ):
            yield storage


if __name__ == "__main__":
    print(versitygw())
