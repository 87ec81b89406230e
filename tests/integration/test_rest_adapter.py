"""The ``rest`` adapter against a simulated source: CONTRACT.md 2, and every way it fails."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from adapters.httpclient import HttpClient
from adapters.rest import MAX_BODY_BYTES, RestSourceAdapter
from hub.demo.population import Population
from hub.demo.simulator import Simulators, start_simulators
from hub.domain.errors import SourceTimeoutError, SourceUnavailableError, UnknownParticipantError
from hub.domain.ids import FieldName, Insz

STATUS = FieldName("trajectory.status")


@pytest.fixture
async def vdab(population: Population) -> AsyncIterator[tuple[Simulators, RestSourceAdapter]]:
    simulators = await start_simulators(population, {"vdab": 0})
    async with HttpClient(max_body=MAX_BODY_BYTES) as client:
        yield simulators, RestSourceAdapter(simulators.url("vdab"), 0.3, client)
    await simulators.stop()


async def test_it_returns_exactly_what_the_source_holds_for_the_fields_asked(
    vdab: tuple[Simulators, RestSourceAdapter], population: Population
) -> None:
    _, adapter = vdab
    person = population.known_to("vdab")[0]
    values = await adapter.fetch(person.insz, frozenset({STATUS}))
    assert values == {STATUS: person.records["vdab"]["trajectory.status"]}


async def test_an_unknown_participant(vdab: tuple[Simulators, RestSourceAdapter]) -> None:
    _, adapter = vdab
    with pytest.raises(UnknownParticipantError):
        await adapter.fetch(Insz.parse("01010100126"), frozenset({STATUS}))


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"status": 500}, SourceUnavailableError),
        ({"status": 301}, SourceUnavailableError),
        ({"garbage": True}, SourceUnavailableError),
        ({"wrong_shape": True}, SourceUnavailableError),
        ({"extra_field": True}, SourceUnavailableError),
        ({"delay_s": 1.0}, SourceTimeoutError),
    ],
)
async def test_failures_become_the_hubs_errors_without_details(
    vdab: tuple[Simulators, RestSourceAdapter],
    population: Population,
    fault: dict[str, object],
    error: type[Exception],
) -> None:
    simulators, adapter = vdab
    for name, value in fault.items():
        setattr(simulators.faults["vdab"], name, value)
    person = population.known_to("vdab")[0]
    with pytest.raises(error) as caught:
        await adapter.fetch(person.insz, frozenset({STATUS}))
    assert person.insz.digits not in str(caught.value)


async def test_a_source_that_is_not_listening() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with HttpClient(max_body=MAX_BODY_BYTES) as client:
        adapter = RestSourceAdapter(f"http://127.0.0.1:{port}", 0.3, client)
        with pytest.raises(SourceUnavailableError):
            await adapter.fetch(Insz.parse("85073003328"), frozenset({STATUS}))


@contextlib.asynccontextmanager
async def a_source_answering(body: bytes) -> AsyncIterator[RestSourceAdapter]:
    async def answer(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/participants/{insz}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with HttpClient(max_body=MAX_BODY_BYTES) as client:
            yield RestSourceAdapter(f"http://127.0.0.1:{port}", 2, client)
    finally:
        await runner.cleanup()


async def test_a_large_answer_is_read_whole() -> None:
    value = "a" * 300_000
    async with a_source_answering(json.dumps({"fields": {"x.y": value}}).encode()) as adapter:
        values = await adapter.fetch(Insz.parse("85073003328"), frozenset({FieldName("x.y")}))
    assert values == {"x.y": value}


@pytest.mark.parametrize(
    "body",
    [
        b'{"fields": {"x.y": "' + b"a" * MAX_BODY_BYTES + b'"}}',
        b'{"fields": {"x.y": NaN}}',
        b'{"fields": {"x.y": Infinity}}',
        b'{"fields": {"x.y": 1e999}}',
        b'{"fields": {"x.y": "\\ud800"}}',
        b'{"fields": {"x.y": "\xff"}}',
    ],
)
async def test_answers_the_hub_could_not_pass_on_are_failures(body: bytes) -> None:
    async with a_source_answering(body) as adapter:
        with pytest.raises(SourceUnavailableError):
            await adapter.fetch(Insz.parse("85073003328"), frozenset({FieldName("x.y")}))
