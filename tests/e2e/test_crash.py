"""Crash test: SIGKILL the hub mid-load; no disclosure may lack its committed audit record.

CONTRACT.md 3: "Every decision, disclosed or not, is in the audit log before the
response leaves the hub. A disclosure whose audit record cannot be written is not
sent." So after a SIGKILL at any moment, every ``200`` a client received names an
``audit_seq`` and ``disclosure_id`` that the restarted hub's database holds, as a
``disclosed`` record with that very id. The log may over-report (a record whose
answer died with the process), never under-report, and it still verifies.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders import make_insz
from tests.conftest import Backend
from tests.e2e.harness import Hub, World, bearer
from tests.e2e.harness import world as make_world

pytestmark = pytest.mark.e2e

CONCURRENCY = 16
ROUND_LIMIT_S = 15.0  # a round that never reaches its kill moment still ends
PURPOSE = "trajectory-coordination"


@pytest.fixture
def world(tmp_path: Path, fresh_databases: Backend) -> Iterator[World]:
    """A new, empty database on the run's backend (on SQLite, the world's own file)."""
    url = None if fresh_databases.name == "sqlite" else fresh_databases.empty(tmp_path)
    with make_world(tmp_path, database_url=url) as made:
        yield made


@dataclass(slots=True)
class Received:
    """What the clients saw: every complete answer, and how many requests died in flight."""

    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    broken: int = 0

    def disclosed(self) -> int:
        return sum(1 for status, _ in self.answers if status == 200)


def requests(world: World, rng: random.Random) -> list[tuple[dict[str, Any], str | None]]:
    """Exchange bodies (and idempotency keys) of every kind a partner sends under load."""
    vdab = [p.insz.digits for p in world.population.known_to("vdab")[:20]]
    ocmw = [p.insz.digits for p in world.population.known_to("ocmw-gent")[:10]]
    known = {p.insz.digits for p in world.population.persons}
    strangers = [d for d in (make_insz(rng) for _ in range(20)) if d not in known][:5]
    work = {"role": "casemanager-work", "id": "u-crash"}
    open_fields = ["trajectory.status", "trajectory.start_date", "internship.hours"]
    bodies: list[tuple[dict[str, Any], str | None]] = []
    for i, person in enumerate(vdab):
        # Open part, plus a consented field for the first five (consent given in setup).
        fields = [*open_fields, "icf.assessment"] if i < 5 else open_fields
        body = {"participant": person, "source": "vdab", "purpose": PURPOSE, "fields": fields}
        bodies.append(({**body, "actor": work}, None))
        bodies.append(({**body, "actor": work}, f"crash-{person}"))  # replayed across crashes
    for person in ocmw:
        fields = ["social_assistance.leefloon"]
        body = {"participant": person, "source": "ocmw-gent", "purpose": PURPOSE, "fields": fields}
        bodies.append(({**body, "actor": work}, None))
    for person in vdab[:5]:  # denied: a purpose no agreement names
        body = {
            "participant": person,
            "source": "vdab",
            "purpose": "marketing",
            "fields": open_fields,
        }
        bodies.append(({**body, "actor": work}, None))
    for person in strangers:  # unknown to the source: 404, recorded as denied
        body = {"participant": person, "source": "vdab", "purpose": PURPOSE, "fields": open_fields}
        bodies.append(({**body, "actor": work}, None))
    return bodies


def grant_consents(hub: Hub, world: World, client: tuple[str, str]) -> None:
    with httpx.Client(base_url=hub.base, timeout=10) as http:
        headers = bearer(http, client, "consent:write")
        for person in world.population.known_to("vdab")[:5]:
            granted = http.post(
                "/v1/consents",
                json={
                    "participant": person.insz.digits,
                    "recipient": "gtb",
                    "purpose": PURPOSE,
                    "fields": ["icf.assessment"],
                },
                headers=headers,
            )
            assert granted.status_code == 201, granted.text


async def load_until_killed(
    hub: Hub,
    headers: dict[str, str],
    bodies: list[tuple[dict[str, Any], str | None]],
    kill_after: int,
    rng: random.Random,
) -> Received:
    """``CONCURRENCY`` clients post exchanges; after ``kill_after`` 200s, SIGKILL the hub."""
    received = Received()
    killed = asyncio.Event()
    deadline = time.monotonic() + ROUND_LIMIT_S

    async def client(http: httpx.AsyncClient, seed: int) -> None:
        mine = random.Random(seed)
        while time.monotonic() < deadline:
            body, key = mine.choice(bodies)
            extra = {"Idempotency-Key": key} if key else {}
            try:
                answer = await http.post("/v1/exchange", json=body, headers={**headers, **extra})
            except httpx.TransportError:
                received.broken += 1
                if killed.is_set():
                    return
                raise
            # A complete answer, body and all: a cut-off one is a TransportError above.
            received.answers.append((answer.status_code, answer.json()))
            if not killed.is_set() and received.disclosed() >= kill_after:
                # With about CONCURRENCY requests in flight: the whole group, at once.
                os.killpg(hub.pid, signal.SIGKILL)
                killed.set()

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=hub.base, timeout=10, limits=limits) as http:
        await asyncio.gather(*(client(http, rng.randrange(2**32)) for _ in range(CONCURRENCY)))
    statuses = sorted(s for s, _ in received.answers)
    assert killed.is_set(), f"the round ended before {kill_after} disclosures: {statuses}"
    return received


def check_every_answer_is_recorded(world: World, received: Received) -> int:
    """Every answer with an ``audit_seq`` has its record; returns how many records over-report."""
    rows = world.audit_rows()
    seen: dict[int, dict[str, Any]] = {}
    for status, body in received.answers:
        assert status in {200, 403, 404}, (status, body)  # sources healthy: never a 5xx
        seq = body["audit_seq"]
        if status == 200:
            assert set(body) >= {"disclosure_id", "participant", "data", "withheld", "audit_seq"}
            assert body["data"], body
            assert rows.get(seq) == ("disclosed", body["disclosure_id"]), (seq, rows.get(seq))
        else:
            assert rows.get(seq, ("missing",))[0] == "denied", (seq, rows.get(seq))
        # A replay answers the first body again (same seq, same id); nothing else may share it.
        assert seen.setdefault(seq, body) == body, (seq, seen[seq], body)
    return len(set(rows) - set(seen))


ROUNDS = (1, 1, 1, 2)
"""Workers per round: three kill moments with one process, then one with two (the group)."""


def test_sigkill_under_load_loses_no_audit_record(world: World, tmp_path: Path) -> None:
    rng = random.Random(20260315)
    gtb, officer = world.clients(("gtb", "exchange consent:write"), ("hub", "audit:read"))
    bodies = requests(world, rng)
    log = tmp_path / "hub.log"
    all_received = Received()

    for round_, workers in enumerate(ROUNDS):
        hub = Hub.start(world.env, log, workers=workers)
        try:
            with httpx.Client(base_url=hub.base, timeout=30) as http:
                # Restarted after a SIGKILL: the log it finds still verifies.
                verified = http.get("/v1/audit/verify", headers=bearer(http, officer))
                assert verified.status_code == 200, verified.text
                assert verified.json()["ok"] is True, verified.json()
                if round_ == 0:
                    grant_consents(hub, world, gtb)
                headers = bearer(http, gtb, "exchange")
            kill_after = rng.randint(3, 30)
            received = asyncio.run(load_until_killed(hub, headers, bodies, kill_after, rng))
        finally:
            hub.kill()
        assert received.disclosed() >= kill_after
        check_every_answer_is_recorded(world, received)
        all_received.answers += received.answers
        all_received.broken += received.broken

    # Over-reporting is allowed: answers that died in flight, and replays (which answer
    # the first body again, so their own records are named by no answer).
    over = check_every_answer_is_recorded(world, all_received)
    report = world.verify_offline()
    assert report["entries"] == len(world.audit_rows())
    print(
        f"crash rounds={ROUNDS}: {len(all_received.answers)} answers "
        f"({all_received.disclosed()} disclosed), {all_received.broken} cut off, "
        f"{report['entries']} records, {over} named by no answer"
    )
    hub = Hub.start(world.env, log, workers=1)
    try:
        with httpx.Client(base_url=hub.base, timeout=30) as http:
            final = http.get("/v1/audit/verify", headers=bearer(http, officer)).json()
    finally:
        hub.stop()
    assert final["ok"] is True, final
    assert final["entries"] == report["entries"]
