"""Sources that misbehave in HTTP: slow-loris, silence, cut bodies, huge bodies, redirects.

Invariant 5 of issue #3 for sources: the ``rest`` adapter (CONTRACT.md 2) turns each
into ``504`` (a timeout, bounded by the partner's ``timeout_s`` for the whole read)
or ``502`` (anything else), always with reason ``source-unavailable``; the decision
is audited as ``failed`` with nothing disclosed; a redirect is never followed (its
target would receive the participant's INSZ); and the next request after the source
heals is answered normally. The sources are raw asyncio TCP servers, so that they
can break HTTP in ways no web framework would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from adapters.httpclient import HttpClient
from adapters.rest import MAX_BODY_BYTES, RestSourceAdapter
from hub import bootstrap
from hub.api.app import create_app
from hub.clock import FixedClock
from hub.domain.errors import SourceTimeoutError, SourceUnavailableError
from hub.domain.ids import FieldName, Insz, PartnerId
from hub.domain.principal import Scope
from hub.ports import ClientRecord
from hub.settings import Settings
from tests.api.conftest import NOW, POLICIES

TIMEOUT_S = 0.5
"""The partner's ``timeout_s`` in these tests."""
BOUND_S = 10
"""A test's own limit: far above ``TIMEOUT_S``, so reaching it means the adapter did not bound."""
SECRET = "SECRET-VALUE-7f3a"
PARTICIPANT = "85073003328"
STATUS = FieldName("trajectory.status")
PROBLEM = "application/problem+json"

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawSource"], Awaitable[None]]


async def _request_head(reader: asyncio.StreamReader) -> str:
    head = await reader.readuntil(b"\r\n\r\n")
    return head.decode("latin-1")


async def healthy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: RawSource) -> None:
    target = (await _request_head(reader)).split(" ", 2)[1]
    fields = parse_qs(urlsplit(target).query).get("fields", [""])[0].split(",")
    body = json.dumps({"fields": dict.fromkeys(fields, SECRET)}).encode()
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()


async def body_byte_by_byte(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: RawSource
) -> None:
    """Slow-loris: a 200 with its headers at once, then one byte of body each 0.1 s, forever."""
    await _request_head(reader)
    body = json.dumps({"fields": {"trajectory.status": SECRET * 1000}}).encode()
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    for byte in body:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.1)


async def headers_never_end(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: RawSource
) -> None:
    await _request_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: ")
    while True:
        writer.write(b"a")
        await writer.drain()
        await asyncio.sleep(0.1)


async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter, _: RawSource) -> None:
    """Accepts the connection, reads the request, never answers."""
    await _request_head(reader)
    await asyncio.Event().wait()


async def cut_mid_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: RawSource
) -> None:
    await _request_head(reader)
    body = json.dumps({"fields": {"trajectory.status": SECRET}}).encode()
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[: len(body) // 2]
    )
    await writer.drain()
    writer.close()


async def huge_chunked(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: RawSource
) -> None:
    """100 MB of valid JSON, chunked, announced nowhere: the cap must stop it while it flows."""
    await _request_head(reader)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b'{"fields": {"trajectory.status": "' + b"a" * (1024 * 1024)
    for _ in range(100):
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        await writer.drain()
        chunk = b"a" * (1024 * 1024)


async def huge_announced(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: RawSource
) -> None:
    await _request_head(reader)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000000\r\n\r\n" + b'{"fields": {"trajectory.status": "' + b"a" * 65536
    )
    await writer.drain()
    await asyncio.Event().wait()


def redirecting(status: int) -> Behaviour:
    async def redirect(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, source: RawSource
    ) -> None:
        target = (await _request_head(reader)).split(" ", 2)[1]
        assert source.redirect_to is not None
        writer.write(
            f"HTTP/1.1 {status} Moved\r\nLocation: {source.redirect_to}{target}\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )
        await writer.drain()

    return redirect


@dataclass
class RawSource:
    """A loopback TCP server whose behaviour the test switches; it counts connections."""

    behaviour: Behaviour = healthy
    redirect_to: str | None = None
    hits: int = 0
    url: str = ""
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hits += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await self.behaviour(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the hub hung up: that is what these sources are for
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


@contextlib.asynccontextmanager
async def raw_source(behaviour: Behaviour = healthy) -> AsyncIterator[RawSource]:
    source = RawSource(behaviour)
    await source.start()
    try:
        yield source
    finally:
        await source.stop()


@pytest.fixture
async def source() -> AsyncIterator[RawSource]:
    async with raw_source() as started:
        yield started


@pytest.fixture
async def elsewhere() -> AsyncIterator[RawSource]:
    """Where a redirect points: an attacker's host that would receive the INSZ."""
    async with raw_source() as started:
        yield started


@pytest.fixture
async def adapter(source: RawSource) -> AsyncIterator[RestSourceAdapter]:
    async with HttpClient(max_body=MAX_BODY_BYTES) as client:
        yield RestSourceAdapter(source.url, TIMEOUT_S, client)


async def _fetch(adapter: RestSourceAdapter) -> object:
    return await asyncio.wait_for(
        adapter.fetch(Insz.parse(PARTICIPANT), frozenset({STATUS})), BOUND_S
    )


# -- the adapter --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "behaviour", [body_byte_by_byte, headers_never_end, silent], ids=lambda b: b.__name__
)
async def test_a_source_too_slow_to_finish_is_a_timeout_within_timeout_s(
    source: RawSource, adapter: RestSourceAdapter, behaviour: Behaviour
) -> None:
    source.behaviour = behaviour
    with pytest.raises(SourceTimeoutError) as caught:
        await _fetch(adapter)  # not the test's BOUND_S: TimeoutError is not SourceTimeoutError
    assert caught.value.reason == "source-unavailable"
    assert SECRET not in caught.value.detail
    assert PARTICIPANT not in caught.value.detail


@pytest.mark.parametrize(
    "behaviour", [cut_mid_body, huge_chunked, huge_announced], ids=lambda b: b.__name__
)
async def test_a_broken_or_oversized_answer_is_a_source_failure(
    source: RawSource, adapter: RestSourceAdapter, behaviour: Behaviour
) -> None:
    source.behaviour = behaviour
    with pytest.raises(SourceUnavailableError) as caught:
        await _fetch(adapter)
    assert not isinstance(caught.value, SourceTimeoutError)
    assert caught.value.reason == "source-unavailable"
    assert SECRET not in caught.value.detail


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_a_failure_and_its_target_is_never_contacted(
    source: RawSource, elsewhere: RawSource, adapter: RestSourceAdapter, status: int
) -> None:
    source.behaviour, source.redirect_to = redirecting(status), elsewhere.url
    with pytest.raises(SourceUnavailableError) as caught:
        await _fetch(adapter)
    assert not isinstance(caught.value, SourceTimeoutError)
    assert str(status) in caught.value.detail
    assert elsewhere.hits == 0
    assert source.hits == 1


async def test_the_adapter_recovers_when_the_source_does(
    source: RawSource, adapter: RestSourceAdapter
) -> None:
    for behaviour in (silent, body_byte_by_byte, cut_mid_body, huge_chunked):
        source.behaviour = behaviour
        with pytest.raises(SourceUnavailableError):
            await _fetch(adapter)
        source.behaviour = healthy
        assert await _fetch(adapter) == {STATUS: SECRET}


# -- through the API: 502/504 problems, audited as failed, nothing disclosed --------------


@dataclass
class SourceHub:
    http: httpx.AsyncClient
    container: bootstrap.Container
    source: RawSource

    def auth(self, partner: str, scope: str) -> dict[str, str]:
        record = ClientRecord(
            client_id=f"{partner}-test",
            partner=PartnerId(partner),
            scopes=frozenset({scope}),
            auth_method="client_secret",
            secret_hash=None,
            jwks=None,
            created_at=NOW,
        )
        token, _ = self.container.tokens.issue(record, frozenset({Scope(scope)}), NOW)
        return {"Authorization": f"Bearer {token}"}

    async def exchange(self) -> httpx.Response:
        body = {
            "participant": PARTICIPANT,
            "source": "vdab",
            "purpose": "trajectory-coordination",
            "fields": ["trajectory.status"],
            "actor": {"role": "casemanager-work", "id": "u-1"},
        }
        return await asyncio.wait_for(
            self.http.post("/v1/exchange", json=body, headers=self.auth("gtb", "exchange")),
            BOUND_S,
        )

    async def last_event(self) -> dict[str, Any]:
        response = await self.http.get(
            "/v1/audit/events", headers=self.auth("hub", "audit:read"), params={"limit": 1}
        )
        (event,) = response.json()["items"]
        found: dict[str, Any] = event
        return found


@pytest.fixture
async def hub(tmp_path: Path, database_url: str, source: RawSource) -> AsyncIterator[SourceHub]:
    settings = Settings(
        policy_dir=POLICIES,
        database_url=database_url,
        key_dir=tmp_path / "keys",
        public_url="http://hub.test",
    )
    async with HttpClient(max_body=MAX_BODY_BYTES) as client:
        adapter = RestSourceAdapter(source.url, TIMEOUT_S, client)
        container = await bootstrap.build(
            settings, clock=FixedClock(NOW), sources={PartnerId("vdab"): adapter}
        )
        app = create_app(settings, container=container)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
            yield SourceHub(http, container, source)
        await container.aclose()


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [
        (body_byte_by_byte, 504),
        (headers_never_end, 504),
        (silent, 504),
        (cut_mid_body, 502),
        (huge_chunked, 502),
        (redirecting(307), 502),
    ],
    ids=["slow-body", "slow-headers", "silent", "cut", "huge", "redirect"],
)
async def test_a_misbehaving_source_is_a_problem_audited_as_failed_then_the_hub_recovers(
    hub: SourceHub, elsewhere: RawSource, behaviour: Behaviour, status: int
) -> None:
    hub.source.behaviour, hub.source.redirect_to = behaviour, elsewhere.url
    response = await hub.exchange()
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["reason"] == "source-unavailable"
    assert "data" not in problem
    assert SECRET not in response.text
    assert PARTICIPANT not in response.text
    event = await hub.last_event()
    assert event["decision"] == "failed"
    assert event["fields_disclosed"] == []
    assert event["seq"] == problem["audit_seq"]
    assert elsewhere.hits == 0

    hub.source.behaviour = healthy
    healed = await hub.exchange()
    assert healed.status_code == 200, healed.text
    assert healed.json()["data"] == {"trajectory.status": SECRET}
    assert (await hub.last_event())["decision"] == "disclosed"
