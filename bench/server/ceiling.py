"""The ceiling for compare_mlserver.py: a bare ASGI app on the same uvicorn, uvloop and
httptools stack as modelops-serve that reads the body, parses the same JSON and returns a fixed
Open Inference Protocol answer. No server that parses the request can beat it on this stack.

    uvicorn ceiling:app --app-dir bench/server --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Message = MutableMapping[str, Any]

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
        orjson.loads(b"".join(chunks))
        answer = ANSWER
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": answer})
