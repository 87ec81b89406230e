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
MIX = (("open", 4), ("consented", 4), ("denied", 1), ("stranger", 1))
"""Kinds of exchange and their weights: 80 % disclosed, 10 % 403, 10 % 404."""
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
    mix: tuple[tuple[str, int], ...] = MIX
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


# -- measuring (docs/scale-out.md) ------------------------------------------------------
#
# python -m tests.e2e.workers_load [--workers 1 2 4] [--seconds 10]
# A throw-away PostgreSQL cluster (tests.pgcluster), then for each worker count:
# raw audit appends from that many processes, and exchanges through
# ``ketenhub serve --workers N``. Prints one line per measurement.


def append_for(url: str, seconds: float, concurrency: int, start_at: float) -> int:
    """One process appending audit records through the hub's own group commit."""
    return asyncio.run(_append_for(url, seconds, concurrency, start_at))


async def _append_for(url: str, seconds: float, concurrency: int, start_at: float) -> int:
    from hub.db.database import SqlDatabase, create_engine  # noqa: PLC0415
    from tests.builders import an_audit_entry  # noqa: PLC0415

    db = SqlDatabase(create_engine(url))
    done = 0
    try:
        await db.read(lambda uow: uow.audit.head())  # connect before the clock starts
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        deadline = time.monotonic() + seconds

        async def loop(n: int) -> None:
            nonlocal done
            entry = an_audit_entry(n)
            while time.monotonic() < deadline:
                await db.write(lambda uow: uow.audit.append(entry))
                done += 1

        await asyncio.gather(*(loop(n) for n in range(concurrency)))
    finally:
        await db.dispose()
    return done


def _commits(cluster: Any, database: str) -> int:
    found = cluster.psql(f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{database}'")
    return int(found.strip())


def probe(conninfo: str, rounds: int = 2000) -> None:  # pragma: no cover - a tool
    """What one statement costs on this machine: the bricks of a group's lock hold time.

    Also what a request counter shared by every worker would add to each request: one
    upsert on an UNLOGGED table (no WAL, so no commit wait), in autocommit.
    """
    import psycopg  # noqa: PLC0415

    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(
            "CREATE UNLOGGED TABLE IF NOT EXISTS hits "
            "(client TEXT, win BIGINT, n INT, PRIMARY KEY (client, win))"
        )
        connection.execute("CREATE TABLE IF NOT EXISTS one (id INT PRIMARY KEY, n INT)")
        connection.execute("INSERT INTO one VALUES (1, 0) ON CONFLICT DO NOTHING")
        for label, statement in (
            ("round trip (SELECT 1)", "SELECT 1"),
            ("commit of a one-row UPDATE", "UPDATE one SET n = n + 1 WHERE id = 1"),
            (
                "shared counter upsert (UNLOGGED)",
                (
                    "INSERT INTO hits VALUES ('c', 1, 1) "
                    "ON CONFLICT (client, win) DO UPDATE SET n = hits.n + 1 RETURNING n"
                ),
            ),
        ):
            began = time.perf_counter()
            for _ in range(rounds):
                connection.execute(statement)
            took = (time.perf_counter() - began) / rounds
            print(f"probe {label}: {took * 1e6:6.0f} us")


def measure(worker_counts: list[int], seconds: float) -> None:  # pragma: no cover - a tool
    import multiprocessing  # noqa: PLC0415
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from hub.db import migrate  # noqa: PLC0415
    from tests.builders import make_insz  # noqa: PLC0415
    from tests.e2e.harness import Hub, world  # noqa: PLC0415
    from tests.pgcluster import pg_cluster  # noqa: PLC0415

    spawn = multiprocessing.get_context("spawn")
    with pg_cluster(database=None) as cluster:
        cluster.create_database("probe")
        probe(cluster.conninfo("probe"))
        for n in worker_counts:
            name = f"appends{n}"
            url = cluster.create_database(name)
            migrate.upgrade(url)
            before = _commits(cluster, name)
            with spawn.Pool(n) as pool:
                start = time.monotonic() + 2.0
                counts = pool.starmap(append_for, [(url, seconds, 64, start)] * n)
            groups = _commits(cluster, name) - before
            total = sum(counts)
            print(
                f"appends  processes={n}: {total / seconds:7.0f} appends/s, "
                f"{groups / seconds:6.0f} commits/s, {total / max(groups, 1):5.1f} appends/commit"
            )
        for n in worker_counts:
            name = f"exchanges{n}"
            url = cluster.create_database(name)
            migrate.upgrade(url)
            with tempfile.TemporaryDirectory() as tmp, world(Path(tmp), database_url=url) as w:
                gtb = w.client("gtb", "exchange consent:write")
                vdab = [p.insz.digits for p in w.population.known_to("vdab")]
                known = {p.insz.digits for p in w.population.persons}
                rng = random.Random(5)
                strangers = tuple(d for d in (make_insz(rng) for _ in range(20)) if d not in known)
                hub = Hub.start(w.env, Path(tmp) / "hub.log", workers=n)
                try:
                    for label, mix in (
                        ("mixed ", MIX),
                        ("denied", (("denied", 1),)),
                    ):
                        plan = Plan(
                            bases=(hub.base,),
                            client=gtb,
                            open_people=tuple(vdab[12:52]),
                            consent_people=(tuple(vdab[:12]),),
                            strangers=strangers,
                            exchanges_per_client=int(seconds * 60),
                            mix=mix,
                        )
                        _exchanges(spawn, plan, label, n)
                finally:
                    hub.stop()


def _exchanges(spawn: Any, plan: Plan, label: str, workers: int) -> None:  # pragma: no cover
    clients = 4
    with spawn.Pool(clients) as pool:
        plan = replace_start(plan, time.monotonic() + 3.0)
        began = plan.start_at
        seen = pool.starmap(run_client, [(plan, i) for i in range(clients)])
    took = time.monotonic() - began
    count = sum(len(s.exchanges) for s in seen)
    errors = sum(len(s.errors) for s in seen)
    print(
        f"exchanges {label} workers={workers}: {count / took:6.0f} exchanges/s "
        f"({count} in {took:.1f} s, {errors} errors)"
    )


def replace_start(plan: Plan, start_at: float) -> Plan:
    from dataclasses import replace  # noqa: PLC0415

    return replace(plan, start_at=start_at)


if __name__ == "__main__":  # pragma: no cover - a tool
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=10.0)
    arguments = parser.parse_args()
    # Through the module's own name, so that what crosses to spawned processes is
    # pickled as tests.e2e.workers_load.*, not __main__.*.
    from tests.e2e.workers_load import measure as run_measure

    run_measure(arguments.workers, arguments.seconds)
