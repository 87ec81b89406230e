"""Cost of the observability on the request path (issue #5): middleware and metrics.

2,000 in-process requests through ``httpx.ASGITransport`` per variant, best of five
rounds taken in turns, on the real app and container (SQLite in a temporary directory):

- ``bare``: the app without ``HubMiddleware`` at all;
- ``middleware``: with it (headers, body limit, correlation id), metrics a no-op;
- ``middleware+prometheus``: with it and the Prometheus metrics (as served).

On a loaded machine those differences drown in httpx's own cost, so the middleware is
also measured alone: 50,000 calls around a trivial ASGI app, with and without it,
in turns, best of five. And the telemetry calls of one exchange, alone (``timeit``).

    .venv/bin/python -m bench.observability
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import httpx

from hub import bootstrap
from hub.api.app import create_app
from hub.api.middleware import HubMiddleware
from hub.db import migrate
from hub.domain.exchange import Outcome
from hub.domain.ids import PartnerId
from hub.domain.principal import ALL_SCOPES
from hub.ports import ClientRecord
from hub.settings import Settings

REQUESTS = 2000
ROUNDS = 5
REPO = Path(__file__).resolve().parents[1]


async def _trivial(_scope: Any, _receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def _send(_message: Any) -> None:
    pass


async def middleware_alone(container: Any) -> dict[str, float]:
    """Seconds per call of a trivial ASGI app, bare and inside ``HubMiddleware``."""

    class State:
        pass

    class App:
        state = State()

    class Route:
        path = "/healthz"

    App.state.container = container  # type: ignore[attr-defined]
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/healthz",
        "headers": [(b"host", b"hub.test")],
        "app": App(),
        "route": Route(),
    }
    variants = {"bare ASGI": _trivial, "inside HubMiddleware": HubMiddleware(_trivial)}
    best = dict.fromkeys(variants, float("inf"))
    calls = 50_000
    for _ in range(ROUNDS):
        for name, app in variants.items():
            started = time.perf_counter()
            for _ in range(calls):
                await app(dict(scope), _receive, _send)
            best[name] = min(best[name], (time.perf_counter() - started) / calls)
    return best


class NoMetrics:
    def request_served(self, route: str, method: str, status: int, seconds: float) -> None:
        pass


async def per_request(apps: dict[str, Any], path: str, headers: dict[str, str]) -> dict[str, float]:
    """Best seconds per request of each app; the variants take turns, round by round,
    so that a busy moment of a shared machine does not fall on one of them only."""
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test")
        for name, app in apps.items()
    }
    best = dict.fromkeys(apps, float("inf"))
    try:
        for http in clients.values():
            for _ in range(50):  # warm
                assert (await http.get(path, headers=headers)).status_code == 200
        for _ in range(ROUNDS):
            for name, http in clients.items():
                started = time.perf_counter()
                for _ in range(REQUESTS):
                    await http.get(path, headers=headers)
                best[name] = min(best[name], (time.perf_counter() - started) / REQUESTS)
    finally:
        for http in clients.values():
            await http.aclose()
    return best


async def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/hub.db"
        migrate.upgrade(url)
        settings = Settings(
            policy_dir=REPO / "policies",
            database_url=url,
            key_dir=Path(scratch) / "keys",
            public_url=None,
            rate_limit="off",
        )
        container = await bootstrap.build(settings)
        try:
            now = container.clock.now()
            client = ClientRecord(
                "bench",
                PartnerId("gtb"),
                frozenset(map(str, ALL_SCOPES)),
                "client_secret",
                None,
                None,
                now,
            )
            token, _ = container.tokens.issue(client, frozenset(ALL_SCOPES), now)
            auth = {"Authorization": f"Bearer {token}"}
            bare = create_app(settings, container=container)
            bare.user_middleware = [m for m in bare.user_middleware if m.cls is not HubMiddleware]
            silent = create_app(
                settings,
                container=dataclasses.replace(container, metrics=NoMetrics()),  # type: ignore[arg-type]
            )
            full = create_app(settings, container=container)
            for path, headers in (("/healthz", {}), ("/v1/catalogue", auth)):
                apps = {"bare": bare, "middleware": silent, "middleware+prometheus": full}
                results = await per_request(apps, path, headers)
                base = results["bare"]
                for name, seconds in results.items():
                    print(
                        f"GET {path:14} {name:22} {seconds * 1e6:7.1f} us/request"
                        f"  (+{(seconds - base) * 1e6:5.1f} us)"
                    )
            alone = await middleware_alone(container)
            for name, seconds in alone.items():
                print(f"{name:22} {seconds * 1e6:6.2f} us/call")
            metrics = container.metrics
            source, fields = PartnerId("vdab"), ["disclosed", "disclosed", "no-consent"]
            calls = 100_000

            def one_exchange() -> None:
                metrics.source_called(source, "ok", 0.004)
                metrics.audit_appended(0.002)
                metrics.exchange_decided(source, Outcome.DISCLOSED, None, fields)
                metrics.request_served("/v1/exchange", "POST", 200, 0.01)

            spent = timeit.timeit(one_exchange, number=calls) / calls
            print(f"telemetry of one exchange (4 calls, 3 fields): {spent * 1e6:.2f} us")
            spent = (
                timeit.timeit(lambda: metrics.write_group_committed(2, 0.0001, 0.001), number=calls)
                / calls
            )
            print(f"telemetry of one group commit (3 histograms): {spent * 1e6:.2f} us")
        finally:
            await container.aclose()


if __name__ == "__main__":
    asyncio.run(main())
