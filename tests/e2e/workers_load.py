"""Load from several client *processes* against one hub: what the workers test fires.

Each client process (``run_client``, started with the ``spawn`` method so it shares
nothing with the test process but the plan) takes its own token, then runs
``Plan.tasks`` concurrent exchange loops and one consent loop until its share of
exchanges is done. It records, for every answer, what a partner saw, with
``time.monotonic()`` taken just before the request left and just after the answer
arrived. CLOCK_MONOTONIC is one clock for every process on a Linux machine, so the
times of different client processes can be compared (``test_workers`` compares the
moment an exchange was sent with the moment another process's revoke returned).

The exchange mix holds every kind of decision a partner meets:

- ``open``: fields without consent, always disclosed (200);
- ``consented``: a field that needs a consent the consent loops grant and revoke
  over and over, beside an open one (200; the consented field disclosed only while
  a consent is active);
- ``denied``: a purpose no agreement names (403);
- ``stranger``: a participant the source does not know (404, audited as denied).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

PURPOSE = "trajectory-coordination"
CONSENTED_FIELD = "icf.assessment"
ACTOR = {"role": "casemanager-work", "id": "u-workers"}
DECIDED = frozenset({200, 403, 404, 502, 504})
"""Statuses that carry a decision (and an ``audit_seq``): CONTRACT.md 3."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What every client process needs; picklable (it crosses to spawned processes)."""

    bases: tuple[str, ...]
    """Hub URLs; client ``i`` uses ``bases[i % len(bases)]``."""
    client: tuple[str, str]
    """An OAuth client of ``gtb`` with ``exchange consent:write``."""
    open_people: tuple[str, ...]
    consent_people: tuple[tuple[str, ...], ...]
    """Per client process: the participants whose consents it grants and revokes."""
    strangers: tuple[str, ...]
    exchanges_per_client: int
    tasks: int = 8
    start_at: float = 0.0
    """A ``time.monotonic()`` moment: every client begins firing then, together."""
    mix: tuple[tuple[str, int], ...] = (
        ("open", 4),
        ("consented", 4),
        ("denied", 1),
        ("stranger", 1),
    )
    seed: int = 2026


@dataclass(frozen=True, slots=True)
class Exchange:
    client: int
    kind: str
    participant: str
    sent: float
    received: float
    status: int
    audit_seq: int | None
    disclosed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Revoke:
    client: int
    consent_id: str
    participant: str
    sent: float
    returned: float


@dataclass(slots=True)
class Seen:
    """Everything one client process saw."""

    exchanges: list[Exchange] = field(default_factory=list)
    granted: list[tuple[str, str]] = field(default_factory=list)
    """(consent id, participant)"""
    revokes: list[Revoke] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Answers no partner should meet (a 5xx, a transport error): the test fails on any."""


def body(kind: str, participant: str) -> dict[str, Any]:
    fields = ["trajectory.status", "trajectory.start_date"]
    purpose = PURPOSE
    if kind == "consented":
        fields = ["trajectory.status", CONSENTED_FIELD]
    elif kind == "denied":
        purpose = "marketing"
    return {
        "participant": participant,
        "source": "vdab",
        "purpose": purpose,
        "fields": fields,
        "actor": ACTOR,
    }


def run_client(plan: Plan, index: int) -> Seen:
    """One client process: the entry point ``multiprocessing`` calls."""
    return asyncio.run(_client(plan, index))


async def _client(plan: Plan, index: int) -> Seen:
    seen = Seen()
    rng = random.Random(plan.seed * 1000 + index)
    base = plan.bases[index % len(plan.bases)]
    limits = httpx.Limits(max_connections=plan.tasks + 2, max_keepalive_connections=plan.tasks + 2)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        token = await http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=plan.client
        )
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        await asyncio.sleep(max(0.0, plan.start_at - time.monotonic()))
        kinds = [kind for kind, weight in plan.mix for _ in range(weight)]
        everyone = [p for mine in plan.consent_people for p in mine]
        pools = {
            "open": plan.open_people,
            "consented": everyone,
            "denied": plan.open_people,
            "stranger": plan.strangers,
        }
        share, extra = divmod(plan.exchanges_per_client, plan.tasks)
        done = asyncio.Event()

        async def exchanges(count: int, task_rng: random.Random) -> None:
            for _ in range(count):
                kind = task_rng.choice(kinds)
                person = task_rng.choice(pools[kind])
                await _exchange(http, headers, seen, index, kind, person)

        async def consents() -> None:
            mine = plan.consent_people[index] if index < len(plan.consent_people) else ()
            turn = 0
            while mine and not done.is_set():
                person = mine[turn % len(mine)]
                turn += 1
                await _consent_cycle(http, headers, seen, index, person, rng)

        loops = [
            exchanges(share + (1 if t < extra else 0), random.Random(rng.randrange(2**32)))
            for t in range(plan.tasks)
        ]
        cycling = asyncio.create_task(consents())
        await asyncio.gather(*loops)
        done.set()
        await cycling
    return seen


async def _exchange(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    seen: Seen,
    index: int,
    kind: str,
    person: str,
) -> None:
    sent = time.monotonic()
    try:
        answer = await http.post("/v1/exchange", json=body(kind, person), headers=headers)
    except httpx.TransportError as exc:
        seen.errors.append(f"exchange {kind}: {type(exc).__name__}")
        return
    received = time.monotonic()
    document = answer.json()
    if answer.status_code not in DECIDED:
        seen.errors.append(f"exchange {kind}: {answer.status_code} {document}")
        return
    disclosed = tuple(sorted(document.get("data", {}))) if answer.status_code == 200 else ()
    seen.exchanges.append(
        Exchange(
            index,
            kind,
            person,
            sent,
            received,
            answer.status_code,
            document.get("audit_seq"),
            disclosed,
        )
    )


async def _consent_cycle(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    seen: Seen,
    index: int,
    person: str,
    rng: random.Random,
) -> None:
    """Grant a consent, let exchanges use it a moment, revoke it, wait a moment."""
    granted = await http.post(
        "/v1/consents",
        json={
            "participant": person,
            "recipient": "gtb",
            "purpose": PURPOSE,
            "fields": [CONSENTED_FIELD],
        },
        headers=headers,
    )
    if granted.status_code != 201:
        seen.errors.append(f"grant: {granted.status_code} {granted.text}")
        return
    consent_id = granted.json()["id"]
    seen.granted.append((consent_id, person))
    await asyncio.sleep(rng.uniform(0.0, 0.08))
    sent = time.monotonic()
    revoked = await http.post(f"/v1/consents/{consent_id}/revoke", headers=headers)
    returned = time.monotonic()
    if revoked.status_code != 200:
        seen.errors.append(f"revoke: {revoked.status_code} {revoked.text}")
        return
    seen.revokes.append(Revoke(index, consent_id, person, sent, returned))
    await asyncio.sleep(rng.uniform(0.0, 0.05))
