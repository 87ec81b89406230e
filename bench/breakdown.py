"""Where an exchange's CPU goes: the hub's ASGI app driven in-process, then profiled.

``python -m bench.breakdown [--exchanges N] [--pstats FILE]``, and the
``exchange_breakdown`` section of ``python -m bench``.

No HTTP server and no load generator: 32 concurrent loops call the hub's ASGI app
directly with the same ``POST /v1/exchange`` requests ``bench.exchange`` sends, and
the simulated source answers over real HTTP from a process of its own. So
``hub_cpu_us`` is the hub's own work per exchange (framework, auth, decision, source
call, audit append with a durable commit, log line, metrics) without uvicorn's HTTP
parsing, and ``proxy_cpu_us`` is ``bench.proxy``'s, driven the same way: their
ratio is the part of the exchange section's ratio that the hub's code decides.

A second, profiled run (cProfile) splits the hub's time by where the code lives.
cProfile's own cost falls on every Python call, so it inflates call-heavy Python
code against C: the shares are a map of where to look, ``hub_cpu_us`` is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import resource
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, MutableMapping
from pathlib import Path
from typing import Any

from bench import processes
from bench.common import Figures, rounded
from bench.exchange import (
    CONSENTED_FIELD,
    FIELDS,
    PURPOSE,
    REQUESTER,
    SOURCE,
    participants,
    prepare,
    request_bodies,
)

Message = MutableMapping[str, Any]
App = Callable[[MutableMapping[str, Any], Any, Any], Coroutine[Any, Any, None]]
CONCURRENCY = 32

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("framework", ("/fastapi/", "/starlette/", "/pydantic", "/anyio/", "/typing_extensions")),
    ("api", ("/hub/api/",)),
    ("auth", ("/hub/auth/", "/jwt/", "/authlib/", "/cryptography/", "_hashlib", "hmac")),
    ("logging", ("/structlog/", "/hub/logging.py", "/logging/")),
    ("metrics", ("/prometheus_client/", "/hub/observability/")),
    ("database", ("/hub/db/", "/sqlalchemy/", "sqlite3")),
    ("source_call", ("/adapters/", "/aiohttp/", "/yarl/", "/multidict/", "/propcache/")),
    ("decision", ("/hub/policy/", "/hub/domain/", "/consent/", "/stdnum/", "zoneinfo")),
    ("exchange_service", ("/hub/services/",)),
    ("json", ("/json/", "_json")),
    ("event_loop", ("/asyncio/", "uvloop", "/contextvars")),
)


def _category(filename: str, name: str) -> str | None:
    where = f"{filename}:{name}"
    for category, marks in CATEGORIES:
        if any(mark in where for mark in marks):
            return category
    return None


def shares(stats: pstats.Stats) -> dict[str, float]:
    """Each category's share of the profiled time (self time, in 0..1).

    A built-in (``re.Pattern.sub``, ``str.join``) counts for the category of its
    callers, in proportion to the time each caller spent in it.
    """
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    totals: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, self_s, _cum, callers) in table.items():
        category = _category(filename, name)
        if category is None and filename == "~" and callers:
            spread = sum(entry[2] for entry in callers.values()) or 1.0
            for (cfile, _cline, cname), entry in callers.items():
                by = _category(cfile, cname) or "other"
                totals[by] = totals.get(by, 0.0) + self_s * entry[2] / spread
            continue
        by = category or "other"
        totals[by] = totals.get(by, 0.0) + self_s
    whole = sum(totals.values()) or 1.0
    return {k: v / whole for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


async def drive(
    app: App, bodies: list[bytes], headers: list[tuple[bytes, bytes]], n: int
) -> dict[int, int]:
    """``n`` requests, ``CONCURRENCY`` at a time; how many got each status."""
    statuses: dict[int, int] = {}
    todo = list(range(n))

    async def one(body: bytes) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/exchange",
            "raw_path": b"/v1/exchange",
            "query_string": b"",
            "root_path": "",
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 80),
        }
        given = False
        status = 0

        async def receive() -> Message:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never disconnects
            raise AssertionError

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    async def loop() -> None:
        while todo:
            status = await one(bodies[todo.pop() % len(bodies)])
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(loop() for _ in range(CONCURRENCY)))
    return statuses


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(
    app: App, bodies: list[bytes], headers: list[tuple[bytes, bytes]], n: int
) -> float:
    """CPU microseconds per exchange, the best of three runs (the machine is shared)."""
    await drive(app, bodies, headers, min(n, 500))  # warm up: pools, caches
    best = float("inf")
    for _ in range(3):
        before = _cpu_s()
        statuses = await drive(app, bodies, headers, n)
        spent = _cpu_s() - before
        if statuses != {200: n}:
            raise RuntimeError(f"not every exchange answered 200: {statuses}")
        best = min(best, spent / n * 1e6)
    return best


async def _hub(
    env: dict[str, str], made: dict[str, str], people: list[str], n: int, pstats_out: Path | None
) -> Figures:
    import httpx  # noqa: PLC0415 - set-up only

    from hub.api.app import create_app  # noqa: PLC0415 - after the environment is set
    from hub.logging import configure_logging  # noqa: PLC0415
    from hub.settings import Settings  # noqa: PLC0415

    settings = Settings.from_env(env)
    configure_logging(settings.log_level, json=settings.log_json)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            answer = await client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(made["client_id"], made["client_secret"]),
            )
            token = answer.json()["access_token"]
            for insz in people:
                granted = await client.post(
                    "/v1/consents",
                    headers={"Authorization": f"Bearer {token}"},
                    json={
                        "participant": insz,
                        "recipient": REQUESTER,
                        "purpose": PURPOSE,
                        "fields": [CONSENTED_FIELD],
                        "evidence": "Bench: synthetic participant.",
                    },
                )
                if granted.status_code != 201:
                    raise RuntimeError(f"consent grant answered {granted.status_code}")
        headers = [
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
        ]
        bodies = [body.encode() for body in request_bodies(people)]
        cpu_us = await _measure(app, bodies, headers, n)
        profile = cProfile.Profile(
            time.process_time
        )  # CPU, not wall: a descheduled syscall is no cost
        profile.enable()
        await drive(app, bodies, headers, n)
        profile.disable()
    stats = pstats.Stats(profile)
    if pstats_out is not None:
        stats.dump_stats(str(pstats_out))
    figures: Figures = {"hub_cpu_us": rounded(cpu_us, 1)}
    for category, share in shares(stats).items():
        figures[f"share_{category}"] = rounded(share)
    return figures


async def _proxy(upstream: str, people: list[str], n: int) -> float:
    os.environ["BENCH_UPSTREAM"] = upstream
    from bench import proxy  # noqa: PLC0415 - reads BENCH_UPSTREAM at import

    app: App = proxy.app

    async def lifespan() -> tuple[asyncio.Queue[Message], asyncio.Task[None]]:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        started = asyncio.Event()

        async def send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set()

        task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, send))
        await inbox.put({"type": "lifespan.startup"})
        await started.wait()
        return inbox, task

    inbox, task = await lifespan()
    try:
        bodies = [body.encode() for body in request_bodies(people)]
        return await _measure(app, bodies, [(b"content-type", b"application/json")], n)
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await task


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("wb") as target:
        os.dup2(target.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def run(*, quick: bool, pstats_out: Path | None = None, exchanges: int | None = None) -> Figures:
    n = exchanges or (500 if quick else 3000)
    import uvloop  # noqa: PLC0415 - the event loop uvicorn uses

    people = participants()
    with processes.workdir() as tmp, processes.sources([SOURCE], Path(tmp)) as ports:
        work = Path(tmp)
        env, made = prepare(work, ports)
        # The log lines go where a served hub's go: to a file, not this terminal.
        with _stderr_to(work / "hub.log"):
            hub = uvloop.run(_hub(env, made, people, n, pstats_out))
        proxy_cpu = uvloop.run(_proxy(f"http://127.0.0.1:{ports[SOURCE]}", people, n))
    return {
        "exchanges": n,
        "fields": len(FIELDS),
        **hub,
        "proxy_cpu_us": rounded(proxy_cpu, 1),
        "cpu_ratio": rounded(float(hub["hub_cpu_us"] or 0) / proxy_cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__)
    parser.add_argument("--exchanges", type=int, default=3000)
    parser.add_argument("--pstats", type=Path, help="also write the cProfile statistics here")
    args = parser.parse_args()
    print(json.dumps(run(quick=False, pstats_out=args.pstats, exchanges=args.exchanges), indent=1))


if __name__ == "__main__":
    main()
