"""Processes for bench/gateway.py: the instant stub provider and the minimal pass-through proxies.

Run as ``python -m bench._gateway_apps stub PORT`` or ``… proxy-httpx|proxy-aiohttp PORT UPSTREAM``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

ANSWER = json.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()
JSON = [(b"content-type", b"application/json")]


async def _read(receive: Any) -> bytes:
    raw, more = b"", True
    while more:
        msg = await receive()
        raw += msg.get("body", b"")
        more = msg.get("more_body", False)
    return raw


async def stub(scope: Any, receive: Any, send: Any) -> None:
    """Answers every request at once with a fixed chat completion."""
    if scope["type"] != "http":
        return
    await _read(receive)
    await send({"type": "http.response.start", "status": 200, "headers": JSON})
    await send({"type": "http.response.body", "body": ANSWER})


def proxy_httpx(upstream: str) -> Any:
    import httpx

    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=256), timeout=60
    )

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await _read(receive)
        resp = await client.post(
            upstream + scope["path"], content=body, headers={"content-type": "application/json"}
        )
        await send({"type": "http.response.start", "status": resp.status_code, "headers": JSON})
        await send({"type": "http.response.body", "body": resp.content})

    return app


def proxy_aiohttp(upstream: str) -> Any:
    import aiohttp

    holder: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    holder["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await holder["s"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = await _read(receive)
        async with holder["s"].post(
            upstream + scope["path"], data=body, headers={"content-type": "application/json"}
        ) as r:
            data = await r.read()
            status = r.status
        await send({"type": "http.response.start", "status": status, "headers": JSON})
        await send({"type": "http.response.body", "body": data})

    return app


def main() -> None:
    import uvicorn

    kind, port = sys.argv[1], int(sys.argv[2])
    app = stub if kind == "stub" else (proxy_httpx if kind == "proxy-httpx" else proxy_aiohttp)(sys.argv[3])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="error",
        access_log=False,
        backlog=2048,
    )


if __name__ == "__main__":
    main()
