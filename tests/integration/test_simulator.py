"""The simulated sources over real HTTP: CONTRACT.md section 2, and the faults it names."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from functools import cache
from typing import TYPE_CHECKING

import aiohttp
import pytest

from hub.demo.population import SOURCE_FIELDS, Person, Population, make_population
from hub.demo.simulator import (
    Faults,
    Simulators,
    SimulatorThread,
    make_simulator_app,
    start_simulators,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

EPHEMERAL = dict.fromkeys(SOURCE_FIELDS, 0)


@cache
def population() -> Population:
    return make_population(seed=11, size=60)


def someone_known_to(source: str, *, without: str | None = None) -> Person:
    return next(
        p for p in population().known_to(source) if without is None or without not in p.sources
    )


@pytest.fixture
async def sims() -> AsyncIterator[Simulators]:
    async with await start_simulators(population(), EPHEMERAL) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def get(
    http: aiohttp.ClientSession, sims: Simulators, source: str, path: str
) -> tuple[int, object]:
    async with http.get(sims.url(source) + path) as response:
        body = await response.read()
        try:
            return response.status, await response.json()
        except (aiohttp.ContentTypeError, ValueError):
            return response.status, body


async def test_port_zero_binds_a_real_port_per_source(sims: Simulators) -> None:
    assert set(sims.ports) == set(SOURCE_FIELDS)
    assert all(port > 0 for port in sims.ports.values())
    assert len(set(sims.ports.values())) == len(SOURCE_FIELDS)
    assert sims.url("vdab") == f"http://127.0.0.1:{sims.ports['vdab']}"


async def test_healthz(sims: Simulators, http: aiohttp.ClientSession) -> None:
    assert await get(http, sims, "levanto", "/healthz") == (
        200,
        {"status": "ok", "source": "levanto"},
    )


async def test_only_the_requested_fields_are_returned(
    sims: Simulators, http: aiohttp.ClientSession
) -> None:
    person = next(
        p
        for p in population().known_to("vdab")
        if (population().values("vdab", p.insz.digits) or {})["trajectory.end_advice"]
    )
    wanted = "trajectory.status,trajectory.end_advice"
    status, body = await get(
        http, sims, "vdab", f"/participants/{person.insz.digits}?fields={wanted}"
    )
    values = population().values("vdab", person.insz.digits) or {}
    assert status == 200
    assert body == {
        "fields": {
            "trajectory.status": values["trajectory.status"],
            "trajectory.end_advice": values["trajectory.end_advice"],
        }
    }


async def test_every_field_of_a_source_can_be_asked_for(
    sims: Simulators, http: aiohttp.ClientSession
) -> None:
    for source, fields in SOURCE_FIELDS.items():
        person = population().known_to(source)[0]
        path = f"/participants/{person.insz.digits}?fields={','.join(fields)}"
        status, body = await get(http, sims, source, path)
        assert status == 200
        expected = {
            name: value
            for name, value in (population().values(source, person.insz.digits) or {}).items()
            if value is not None
        }
        assert body == {"fields": expected}


async def test_fields_the_source_does_not_hold_or_has_no_value_for_are_absent(
    sims: Simulators, http: aiohttp.ClientSession
) -> None:
    person = next(
        p
        for p in population().known_to("vdab")
        if (population().values("vdab", p.insz.digits) or {})["trajectory.end_advice"] is None
    )
    path = (
        f"/participants/{person.insz.digits}"
        "?fields=trajectory.status,trajectory.end_advice,care.goals,no.such"
    )
    status, body = await get(http, sims, "vdab", path)
    assert status == 200
    assert isinstance(body, dict)
    assert set(body["fields"]) == {"trajectory.status"}


async def test_an_unknown_participant_is_404(sims: Simulators, http: aiohttp.ClientSession) -> None:
    stranger = someone_known_to("vdab", without="in-gent")
    path = f"/participants/{stranger.insz.digits}?fields=residence.status"
    assert await get(http, sims, "in-gent", path) == (404, {"error": "unknown participant"})
    path = "/participants/85073003328?fields=trajectory.status"
    assert await get(http, sims, "vdab", path) == (404, {"error": "unknown participant"})


@pytest.mark.parametrize(
    "path",
    [
        "/participants/{insz}",
        "/participants/{insz}?fields=",
        "/participants/{insz}?fields=,,",
        "/participants/123?fields=trajectory.status",
        "/participants/8507300332x?fields=trajectory.status",
    ],
)
async def test_a_malformed_request_is_400(
    sims: Simulators, http: aiohttp.ClientSession, path: str
) -> None:
    insz = population().persons[0].insz.digits
    status, body = await get(http, sims, "vdab", path.format(insz=insz))
    assert status == 400
    assert isinstance(body, dict)
    assert "error" in body


async def test_fault_status(sims: Simulators, http: aiohttp.ClientSession) -> None:
    insz = population().persons[0].insz.digits
    sims.faults["vdab"].status = 503
    status, body = await get(http, sims, "vdab", f"/participants/{insz}?fields=trajectory.status")
    assert (status, body) == (503, {"error": "injected fault"})
    sims.faults["vdab"].clear()
    status, _ = await get(http, sims, "vdab", f"/participants/{insz}?fields=trajectory.status")
    assert status == 200


async def test_fault_status_without_a_body(sims: Simulators, http: aiohttp.ClientSession) -> None:
    sims.faults["vdab"].status = 204
    insz = population().persons[0].insz.digits
    status, body = await get(http, sims, "vdab", f"/participants/{insz}?fields=trajectory.status")
    assert (status, body) == (204, b"")


async def test_faults_are_per_source(sims: Simulators, http: aiohttp.ClientSession) -> None:
    sims.faults["vdab"].status = 500
    person = population().known_to("cgg-vagga")[0]
    status, _ = await get(
        http, sims, "cgg-vagga", f"/participants/{person.insz.digits}?fields=care.goals"
    )
    assert status == 200


async def test_fault_garbage(sims: Simulators, http: aiohttp.ClientSession) -> None:
    sims.faults["vdab"].garbage = True
    insz = population().persons[0].insz.digits
    async with http.get(
        sims.url("vdab") + f"/participants/{insz}?fields=trajectory.status"
    ) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        with pytest.raises(ValueError):
            await response.json()


async def test_fault_extra_field(sims: Simulators, http: aiohttp.ClientSession) -> None:
    sims.faults["vdab"].extra_field = True
    insz = population().persons[0].insz.digits
    status, body = await get(http, sims, "vdab", f"/participants/{insz}?fields=trajectory.status")
    assert status == 200
    assert isinstance(body, dict)
    assert "trajectory.status" in body["fields"]
    extra = set(body["fields"]) - {"trajectory.status"}
    assert len(extra) == 1
    assert extra <= set(SOURCE_FIELDS["vdab"])


async def test_fault_extra_field_when_every_field_was_asked(
    sims: Simulators, http: aiohttp.ClientSession
) -> None:
    sims.faults["levanto"].extra_field = True
    insz = population().known_to("levanto")[0].insz.digits
    path = f"/participants/{insz}?fields=internship.functioning_report"
    _, body = await get(http, sims, "levanto", path)
    assert isinstance(body, dict)
    assert "simulator.unrequested" in body["fields"]


async def test_fault_wrong_shape(sims: Simulators, http: aiohttp.ClientSession) -> None:
    sims.faults["vdab"].wrong_shape = True
    insz = population().persons[0].insz.digits
    status, body = await get(http, sims, "vdab", f"/participants/{insz}?fields=trajectory.status")
    assert status == 200
    assert isinstance(body, dict)
    assert "fields" not in body


async def test_fault_delay_makes_a_client_time_out(
    sims: Simulators, http: aiohttp.ClientSession
) -> None:
    sims.faults["vdab"].delay_s = 0.3
    insz = population().persons[0].insz.digits
    url = sims.url("vdab") + f"/participants/{insz}?fields=trajectory.status"
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=0.05)):
            pass
    started = time.monotonic()
    async with http.get(url) as response:
        assert response.status == 200
    assert time.monotonic() - started >= 0.3


async def test_no_insz_reaches_a_log_line(
    sims: Simulators, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    insz = population().persons[0].insz.digits
    await get(http, sims, "vdab", f"/participants/{insz}?fields=trajectory.status")
    await get(http, sims, "vdab", "/participants/85073003328?fields=trajectory.status")
    assert insz not in caplog.text
    assert "85073003328" not in caplog.text


async def test_stop_closes_the_ports(http: aiohttp.ClientSession) -> None:
    sims = await start_simulators(population(), {"vdab": 0})
    url = sims.url("vdab") + "/healthz"
    async with http.get(url) as response:
        assert response.status == 200
    await sims.stop()
    await sims.stop()  # twice is fine
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(url):
            pass


async def test_a_port_in_use_fails_and_leaves_nothing_running() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            await start_simulators(population(), {"vdab": 0, "levanto": port})


async def test_only_demo_sources_can_be_simulated() -> None:
    with pytest.raises(ValueError, match="gtb"):
        await start_simulators(population(), {"gtb": 0})
    with pytest.raises(ValueError, match="penhouder"):
        make_simulator_app("penhouder-antwerpen", population())


def test_the_app_keeps_the_faults_it_was_given() -> None:
    faults = Faults(delay_s=1.0)
    make_simulator_app("vdab", population(), faults)
    faults.clear()
    assert faults == Faults()


def test_simulator_thread_starts_and_stops() -> None:
    thread = SimulatorThread(population(), EPHEMERAL)
    thread.start()
    try:
        person = population().known_to("in-gent")[0]
        thread.faults["vdab"].status = 502
        ok_url = thread.url("in-gent") + f"/participants/{person.insz.digits}"
        failing_url = thread.url("vdab") + f"/participants/{person.insz.digits}"
        port = thread.simulators.ports["vdab"]

        async def ask() -> tuple[int, int]:
            async with aiohttp.ClientSession() as session:
                async with session.get(ok_url, params={"fields": "residence.status"}) as ok:
                    ok_status = ok.status
                async with session.get(failing_url, params={"fields": "trajectory.status"}) as bad:
                    return ok_status, bad.status

        assert asyncio.run(ask()) == (200, 502)
    finally:
        thread.stop()
    thread.stop()  # twice is fine
    with pytest.raises(RuntimeError, match="not running"):
        thread.url("vdab")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_simulator_thread_starts_once() -> None:
    with SimulatorThread(population(), {"levanto": 0}) as thread, pytest.raises(RuntimeError):
        thread.start()


def test_simulator_thread_reports_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError), SimulatorThread(population(), {"vdab": port}):
            pass


def test_simulator_thread_as_a_context_manager() -> None:
    with SimulatorThread(population(), {"levanto": 0}) as thread:
        assert thread.simulators.ports["levanto"] > 0
