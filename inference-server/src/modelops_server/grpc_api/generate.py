"""Regenerates this package's protobuf and gRPC code from inference.proto (a development step:
grpcio-tools is in the workspace's dev group, not the server's dependencies):

    uv run python -m modelops_server.grpc_api.generate
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path

PROTO = "modelops_server/grpc_api/inference.proto"


def generate(output: Path) -> None:
    """Writes inference_pb2.py, .pyi and inference_pb2_grpc.py under output/modelops_server/grpc_api."""
    from grpc_tools import protoc

    source = Path(str(files("modelops_server"))).parent
    output.mkdir(parents=True, exist_ok=True)
    status = protoc.main(
        [
            "protoc",
            f"-I{source}",
            f"--python_out={output}",
            f"--pyi_out={output}",
            f"--grpc_python_out={output}",
            str(source / PROTO),
        ]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status}")


if __name__ == "__main__":
    generate(Path(str(files("modelops_server"))).parent)
    sys.exit(0)
