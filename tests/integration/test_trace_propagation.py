"""W3C Trace Context to sources: the ``rest`` adapter sends the request's trace on.

A source partner gets ``traceparent`` with the hub request's trace id (the correlation
id the caller sees in ``X-Correlation-Id``) and a new parent id per call (section
3.2.2.4), so that it can correlate its logs with the hub's; outside a request none is
sent. The source here is a real HTTP server that records what it was sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from aiohttp import web

from adapters.httpclient import HttpClient
from adapters.rest import MAX_BODY_BYTES, RestSourceAdapter
from hub import bootstrap
from hub.api.app import create_app
from hub.clock import FixedClock
from hub.domain.ids import FieldName, Insz, PartnerId
from hub.domain.principal import Scope
from hub.observability import tracecontext
from hub.ports import ClientRecord
from hub.settings import Settings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_PARENT = "00f067aa0ba902b7"
STATUS = FieldName("trajectory.status")
PERSON = Insz.parse("85073003328")
NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)


@pytest.fixture
async def source() -> AsyncIterator[tuple[RestSourceAdapter, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def participant(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"fields": {"trajectory.status": "active"}})

    app = web.Application()
    app.router.add_get("/participants/{insz}", participant)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with HttpClient(max_body=MAX_BODY_BYTES) as client:
        yield RestSourceAdapter(f"http://127.0.0.1:{port}", 2, client), seen
    await runner.cleanup()


async def test_the_source_gets_the_request_trace_with_a_new_parent_each_call(
    source: tuple[RestSourceAdapter, list[dict[str, str]]],
) -> None:
    adapter, seen = source
    token = tracecontext.CURRENT.set(tracecontext.Trace(TRACE, sampled=True))
    try:
        for _ in range(2):
            assert await adapter.fetch(PERSON, frozenset({STATUS})) == {STATUS: "active"}
    finally:
        tracecontext.CURRENT.reset(token)
    sent = [headers["traceparent"] for headers in seen]
    assert len(set(sent)) == 2
    for traceparent in sent:
        assert tracecontext.parse_traceparent(traceparent) == tracecontext.Trace(TRACE, True)
        version, trace_id, parent_id, flags = traceparent.split("-")
        assert (version, trace_id, flags) == ("00", TRACE, "01")
        assert parent_id != INCOMING_PARENT
    assert all("tracestate" not in headers for headers in seen)


async def test_outside_a_request_no_trace_is_sent(
    source: tuple[RestSourceAdapter, list[dict[str, str]]],
) -> None:
    adapter, seen = source
    await adapter.fetch(PERSON, frozenset({STATUS}))
    assert "traceparent" not in {name.lower() for name in seen[0]}


async def test_a_hub_request_reaches_the_source_with_its_correlation_id(
    source: tuple[RestSourceAdapter, list[dict[str, str]]], settings: Settings
) -> None:
    """Through the whole app: middleware, exchange use case, adapter."""
    adapter, seen = source
    container = await bootstrap.build(
        settings, clock=FixedClock(NOW), sources={PartnerId("vdab"): adapter}
    )
    try:
        client = ClientRecord(
            "gtb-trace", PartnerId("gtb"), frozenset({"exchange"}), "client_secret", None, None, NOW
        )
        token, _ = container.tokens.issue(client, frozenset({Scope.EXCHANGE}), NOW)
        transport = httpx.ASGITransport(app=create_app(settings, container=container))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
            answer = await http.post(
                "/v1/exchange",
                headers={
                    "Authorization": f"Bearer {token}",
                    "traceparent": f"00-{TRACE}-{INCOMING_PARENT}-00",
                },
                json={
                    "participant": PERSON.digits,
                    "source": "vdab",
                    "purpose": "trajectory-coordination",
                    "fields": ["trajectory.status"],
                    "actor": {"role": "casemanager-work", "id": "u-1"},
                },
            )
    finally:
        await container.aclose()
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-correlation-id"] == TRACE
    (headers,) = seen
    version, trace_id, parent_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE, "00")
    assert parent_id != INCOMING_PARENT
