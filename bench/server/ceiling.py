"""The ceiling for compare_mlserver.py: a bare ASGI app on the same uvicorn, uvloop and
httptools stack as modelops-serve that reads the body, parses the same JSON and returns a fixed
Open Inference Protocol answer. No server that parses the request can beat it on this stack.

    [CEILING_ANSWERS=answers.json] uvicorn ceiling:app --app-dir bench/server --loop uvloop \
        --http httptools --no-access-log

The fixed answer is a one-row prediction. With CEILING_ANSWERS (a JSON object from request
bodies to answers) a request listed there gets its answer instead: the very bytes a real server
answers it with, so the ceiling also sends what a server must send (100 rows' labels and
probabilities: 2.3 kB, against 122 bytes for the one-row answer).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson

Message = MutableMapping[str, Any]

ANSWERS = {
    body.encode(): answer.encode()
    for body, answer in json.loads(
        Path(os.environ["CEILING_ANSWERS"]).read_text() if "CEILING_ANSWERS" in os.environ else "{}"
    ).items()
}
ANSWER = orjson.dumps(
    {
        "model_name": "iris",
        "model_version": "v0",
        "outputs": [{"name": "predict", "shape": [1], "datatype": "BYTES", "data": ["setosa"]}],
    }
)
READY = b'{"ready":true}'


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    answer = READY
    if scope["method"] == "POST":
        body = b"".join(chunks)
        orjson.loads(body)
        answer = ANSWERS.get(body, ANSWER)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": answer})
