"""The baseline: a bare pass-through proxy, the cost of one hop and nothing else.

A minimal ASGI app, no framework: it reads the exchange body, forwards it as the
source call the hub would make (``GET /participants/{insz}?fields=...``) over a
keep-alive aiohttp session, and returns the source's body. No auth, no policy, no
audit. ``bench.exchange`` serves it with the same server and options as the hub.
The upstream is ``BENCH_UPSTREAM`` (the simulated source's base URL).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:8101")
_session: aiohttp.ClientSession | None = None


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    global _session  # noqa: PLW0603 - one keep-alive session per worker process
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=None)
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    request = json.loads(body)
    assert _session is not None
    url = f"{_UPSTREAM}/participants/{request['participant']}"
    async with _session.get(url, params={"fields": ",".join(request["fields"])}) as upstream:
        status = upstream.status
        content = await upstream.read()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": content})
