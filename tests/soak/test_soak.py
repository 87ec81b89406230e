"""Soak: mixed load with faults injected; nothing lost, no 500, memory flat.

``KETENHUB_SOAK_SECONDS`` sets how long the load runs: 15 s inside ``make test`` (so
the machinery always runs), 600 s under ``make soak``. Meanwhile one source cycles
through every failure CONTRACT.md 2 names (5xx, timeout, garbage, wrong shape,
unasked values, slowness), another process holds the database's write lock for a
while (SQLite's ``BEGIN EXCLUSIVE``, PostgreSQL's EXCLUSIVE table locks: on the run's
backend, tests/conftest.py), and the hub is SIGKILLed and restarted once. At the end:

- every answer that named an ``audit_seq`` has that record, with the same decision
  and ``disclosure_id`` (CONTRACT.md 3: nothing disclosed that is not in the log);
- no request answered ``500`` or any status its kind does not allow;
- the log verifies, online and offline;
- the restarted hub's resident memory is flat: after a warm-up, the median of the
  last quarter of samples is within 10 % or 20 MB of the second quarter's.

It prints a table of figures in either mode (``pytest -s`` shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from hub.demo.simulator import Faults
from tests.builders import make_insz
from tests.conftest import Backend, connect
from tests.e2e.harness import Hub, World, bearer
from tests.e2e.harness import world as make_world

pytestmark = pytest.mark.e2e

SECONDS = float(os.environ.get("KETENHUB_SOAK_SECONDS", "15"))
CLIENTS = 12
PURPOSE = "trajectory-coordination"
WORK = {"role": "casemanager-work", "id": "u-soak"}
OPEN = ["trajectory.status", "trajectory.start_date", "internship.hours"]
FAULTY = "levanto"  # the source that misbehaves; the others stay healthy
FAULT_TIMEOUT_S = 1.0
LOCK_HOLD_S = 1.5


@pytest.fixture
def world(tmp_path: Path, fresh_databases: Backend) -> Iterator[World]:
    """A new, empty database on the run's backend (on SQLite, the world's own file)."""
    url = None if fresh_databases.name == "sqlite" else fresh_databases.empty(tmp_path)
    with make_world(tmp_path, timeouts={FAULTY: FAULT_TIMEOUT_S}, database_url=url) as made:
        yield made


# -- what the clients saw ---------------------------------------------------------


@dataclass(slots=True)
class Tally:
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    recorded: list[tuple[int, str, str | None]] = field(default_factory=list)
    """(audit_seq, decision, disclosure_id) of every exchange answer received."""
    unexpected: list[str] = field(default_factory=list)
    cut: int = 0  # requests that died with the hub in the SIGKILL
    rss: list[tuple[float, int]] = field(default_factory=list)
    locks: int = 0
    lock_misses: int = 0

    def saw(self, kind: str, status: int, allowed: set[int], detail: object = "") -> None:
        self.statuses[kind, status] += 1
        if status not in allowed:
            self.unexpected.append(f"{kind}: {status} {str(detail)[:300]}")

    def check(self, kind: str, ok: bool, detail: object) -> None:
        if not ok:
            self.unexpected.append(f"{kind}: {str(detail)[:300]}")


@dataclass(slots=True)
class Hubs:
    """The hub now serving; ``generation`` changes when it was killed and restarted."""

    hub: Hub
    generation: int = 0
    restarting: bool = False
    up: asyncio.Event = field(default_factory=asyncio.Event)


class Cut(Exception):  # noqa: N818 - a request that died with the hub, not an error
    pass


@dataclass(slots=True)
class Load:
    world: World
    hubs: Hubs
    tally: Tally
    gtb: dict[str, str]
    officer: dict[str, str]
    clients: dict[str, tuple[str, str]]
    http: httpx.AsyncClient
    rng: random.Random
    mine: list[str]  # participants whose consents only this client touches
    strangers: list[str]
    vdab: list[str]
    ocmw: list[str]
    levanto: list[str]
    verifying: asyncio.Lock
    tainted: set[str] = field(default_factory=set)

    async def call(self, kind: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        await self.hubs.up.wait()  # a client whose hub is down waits, as a partner would
        generation = self.hubs.generation
        started = time.monotonic()
        try:
            answer = await self.http.request(method, self.hubs.hub.base + path, **kwargs)
        except httpx.TransportError as exc:
            if self.hubs.restarting or generation != self.hubs.generation:
                self.tally.cut += 1
            else:  # the hub is up: a dropped request is a finding, shown with the rest
                self.tally.saw(kind, 0, set(), f"{type(exc).__name__}: {exc}")
            raise Cut from exc
        self.tally.latencies[kind].append(time.monotonic() - started)
        return answer

    # -- the operations, each asserting what its kind may answer ----------------

    async def exchange(
        self, kind: str, body: dict[str, Any], allowed: set[int], key: str | None = None
    ) -> httpx.Response:
        headers = {**self.gtb, **({"Idempotency-Key": key} if key else {})}
        answer = await self.call(kind, "POST", "/v1/exchange", json=body, headers=headers)
        payload = json_of(answer)
        self.tally.saw(kind, answer.status_code, allowed | {503}, payload)
        if answer.status_code == 200:
            self.tally.check(kind, bool(payload.get("data")), payload)
            self.tally.recorded.append(
                (payload["audit_seq"], "disclosed", payload["disclosure_id"])
            )
        elif "audit_seq" in payload:
            decision = "failed" if answer.status_code in {502, 504} else "denied"
            self.tally.recorded.append((payload["audit_seq"], decision, None))
        return answer

    def body(self, person: str, source: str = "vdab", fields: list[str] = OPEN) -> dict[str, Any]:
        return {"participant": person, "source": source, "purpose": PURPOSE, "fields": fields}

    async def disclosed(self) -> None:
        await self.exchange(
            "exchange-open", {**self.body(self.pick(self.vdab)), "actor": WORK}, {200}
        )

    async def leefloon(self) -> None:
        body = self.body(self.pick(self.ocmw), "ocmw-gent", ["social_assistance.leefloon"])
        await self.exchange("exchange-ocmw", {**body, "actor": WORK}, {200})

    async def faulty_source(self) -> None:
        body = self.body(self.pick(self.levanto), FAULTY, ["internship.functioning_report"])
        await self.exchange("exchange-faulty", {**body, "actor": WORK}, {200, 502, 504})

    async def denied(self) -> None:
        body = {**self.body(self.pick(self.vdab)), "purpose": "marketing", "actor": WORK}
        await self.exchange("exchange-denied", body, {403})

    async def unknown_participant(self) -> None:
        body = {**self.body(self.pick(self.strangers)), "actor": WORK}
        await self.exchange("exchange-unknown", body, {404})

    async def replay(self) -> None:
        key = f"soak-{self.rng.getrandbits(64):x}"
        body = {**self.body(self.pick(self.vdab)), "actor": WORK}
        first = await self.exchange("exchange-idem", body, {200}, key)
        again = await self.exchange("exchange-replay", body, {200}, key)
        if first.status_code == 200 == again.status_code:
            self.tally.check("exchange-replay", first.json() == again.json(), again.text)

    async def consent_cycle(self) -> None:
        """Grant, exchange the consented field, revoke, exchange: it is withheld now."""
        person = self.pick(self.mine)
        try:
            await self._consent_cycle(person)
        except Cut:
            self.tainted.add(person)  # a consent may be left active without our knowing it
            raise

    async def _consent_cycle(self, person: str) -> None:
        grant = {**self.body(person, fields=["icf.assessment"]), "recipient": "gtb"}
        del grant["source"]
        given = await self.call(
            "consent-grant", "POST", "/v1/consents", json=grant, headers=self.gtb
        )
        self.tally.saw("consent-grant", given.status_code, {201, 503}, given.text)
        if given.status_code != 201:
            return
        fields = [*OPEN, "icf.assessment"]
        await self.exchange(
            "exchange-consented", {**self.body(person, fields=fields), "actor": WORK}, {200}
        )
        consent = given.json()["id"]
        revoked = await self.call(
            "consent-revoke", "POST", f"/v1/consents/{consent}/revoke", headers=self.gtb
        )
        self.tally.saw("consent-revoke", revoked.status_code, {200, 503}, revoked.text)
        if revoked.status_code != 200:
            self.tainted.add(person)  # still active: a later check must not count on it
            return
        after = await self.exchange(
            "exchange-revoked", {**self.body(person, fields=fields), "actor": WORK}, {200}
        )
        if after.status_code == 200 and person not in self.tainted:
            withheld = {"field": "icf.assessment", "reason": "consent-revoked"}
            self.tally.check("exchange-revoked", withheld in after.json()["withheld"], after.text)

    async def list_consents(self) -> None:
        answer = await self.call(
            "consent-list",
            "GET",
            "/v1/consents",
            params={"participant": self.pick(self.mine)},
            headers=self.gtb,
        )
        self.tally.saw("consent-list", answer.status_code, {200, 503}, answer.text)

    async def audit_page(self) -> None:
        answer = await self.call(
            "audit-events", "GET", "/v1/audit/events", params={"limit": 100}, headers=self.officer
        )
        self.tally.saw("audit-events", answer.status_code, {200, 503}, answer.text)
        cursor = answer.json().get("next_cursor") if answer.status_code == 200 else None
        if cursor:
            more = await self.call(
                "audit-events",
                "GET",
                "/v1/audit/events",
                params={"limit": 100, "cursor": cursor},
                headers=self.officer,
            )
            self.tally.saw("audit-events", more.status_code, {200, 503}, more.text)

    async def verify(self) -> None:
        if self.verifying.locked():  # one at a time: it reads the whole log
            return
        async with self.verifying:
            answer = await self.call(
                "audit-verify", "GET", "/v1/audit/verify", headers=self.officer
            )
        self.tally.saw("audit-verify", answer.status_code, {200, 503}, answer.text)
        if answer.status_code == 200:
            self.tally.check("audit-verify", answer.json()["ok"] is True, answer.json())

    async def token(self) -> None:
        """A fresh token, by either secret method; gtb's and the officer's replace the old."""
        name = self.rng.choice(sorted(self.clients))
        client_id, secret = self.clients[name]
        data = {"grant_type": "client_credentials"}
        if self.rng.random() < 0.5:  # client_secret_post
            data |= {"client_id": client_id, "client_secret": secret}
            answer = await self.call("token", "POST", "/oauth/token", data=data)
        else:  # client_secret_basic
            answer = await self.call(
                "token", "POST", "/oauth/token", data=data, auth=(client_id, secret)
            )
        self.tally.saw("token", answer.status_code, {200, 503}, answer.text)
        # Shared headers, changed in place: a soak longer than a token's life goes on.
        headers = {"gtb": self.gtb, "officer": self.officer}.get(name)
        if headers is not None and answer.status_code == 200:
            headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    async def bad_input(self) -> None:
        which = self.rng.randrange(3)
        if which == 0:
            body = {**self.body("12345678901"), "actor": WORK}  # fails the mod-97 check
            answer = await self.call(
                "bad-input", "POST", "/v1/exchange", json=body, headers=self.gtb
            )
        elif which == 1:
            body = {**self.body(self.pick(self.vdab), "nobody"), "actor": WORK}
            answer = await self.call(
                "bad-input", "POST", "/v1/exchange", json=body, headers=self.gtb
            )
        else:
            answer = await self.call(
                "bad-input", "GET", "/v1/audit/events", params={"limit": 0}, headers=self.officer
            )
        self.tally.saw("bad-input", answer.status_code, {422}, answer.text)
        self.tally.check("bad-input", "audit_seq" not in json_of(answer), answer.text)

    async def oversized(self) -> None:
        body = {**self.body(self.pick(self.vdab)), "actor": {**WORK, "pad": "x" * (1 << 20)}}
        try:
            answer = await self.call(
                "oversized", "POST", "/v1/exchange", json=body, headers=self.gtb
            )
        except httpx.WriteError:  # the hub may answer and close before reading it all
            self.tally.saw("oversized", 413, {413})
            return
        self.tally.saw("oversized", answer.status_code, {413}, answer.text)

    def pick(self, people: list[str]) -> str:
        return self.rng.choice(people)

    def operations(self) -> list[tuple[Callable[[], Awaitable[None]], int]]:
        return [
            (self.disclosed, 30),
            (self.leefloon, 8),
            (self.faulty_source, 10),
            (self.denied, 6),
            (self.unknown_participant, 5),
            (self.replay, 5),
            (self.consent_cycle, 6),
            (self.list_consents, 5),
            (self.audit_page, 4),
            (self.verify, 1),
            (self.token, 4),
            (self.bad_input, 5),
            (self.oversized, 1),
        ]


def json_of(answer: httpx.Response) -> dict[str, Any]:
    """The JSON body, or the text under ``text`` when it is not JSON (a bare 500 page)."""
    try:
        body = answer.json()
    except ValueError:
        return {"text": answer.text}
    return body if isinstance(body, dict) else {"json": body}


# -- the faults -------------------------------------------------------------------


def fault_phases() -> list[Callable[[Faults], None]]:
    def healthy(f: Faults) -> None:
        f.clear()

    def failing(f: Faults) -> None:
        f.status = 503

    def erroring(f: Faults) -> None:
        f.status = 500

    def timing_out(f: Faults) -> None:
        f.delay_s = FAULT_TIMEOUT_S + 0.5

    def garbage(f: Faults) -> None:
        f.garbage = True

    def wrong_shape(f: Faults) -> None:
        f.wrong_shape = True

    def extra_field(f: Faults) -> None:
        f.extra_field = True

    def slow(f: Faults) -> None:
        f.delay_s = 0.2

    return [
        healthy,
        failing,
        timing_out,
        healthy,
        garbage,
        wrong_shape,
        erroring,
        extra_field,
        slow,
    ]


async def inject_source_faults(world: World, until: float) -> None:
    faults = world.simulators.faults[FAULTY]
    phase_s = max(0.5, SECONDS / 60)
    phases = fault_phases()
    i = 0
    while time.monotonic() < until:
        faults.clear()
        phases[i % len(phases)](faults)
        i += 1
        await asyncio.sleep(phase_s)
    faults.clear()


def hold_database_lock(url: str) -> bool:
    """Another process's writer, holding what every write needs for ``LOCK_HOLD_S``:
    SQLite's ``BEGIN EXCLUSIVE``, or PostgreSQL's EXCLUSIVE table locks (readers go on).

    False when the hub's writers kept it from getting the lock at all (a busy hub's
    group commits follow each other closely): a missed fault, not a failure.
    """
    refused: tuple[type[Exception], ...] = (sqlite3.OperationalError, psycopg.Error)
    with connect(url) as connection:
        try:
            if url.startswith("sqlite"):
                connection.isolation_level = None
                connection.execute("BEGIN EXCLUSIVE")
            else:
                connection.execute("SET lock_timeout = '5s'")
                connection.execute(f"LOCK TABLE {LOCKED_TABLES} IN EXCLUSIVE MODE")
        except refused:
            connection.rollback()
            return False
        try:
            time.sleep(LOCK_HOLD_S)
        finally:
            connection.rollback()
    return True


LOCKED_TABLES = "audit_head, audit_events, consents, clients, idempotency, assertion_jtis"


async def lock_database(world: World, tally: Tally, until: float) -> None:
    period = max(4.0, SECONDS / 20)
    await asyncio.sleep(period / 2)
    while time.monotonic() + LOCK_HOLD_S < until:
        if await asyncio.to_thread(hold_database_lock, world.database_url):
            tally.locks += 1
        else:
            tally.lock_misses += 1
        await asyncio.sleep(period)


async def crash_and_restart(world: World, hubs: Hubs, log: Path, at: float) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    hubs.restarting = True
    hubs.up.clear()
    await asyncio.to_thread(hubs.hub.kill)
    hubs.hub = await asyncio.to_thread(Hub.start, world.env, log)
    hubs.generation += 1
    hubs.restarting = False
    hubs.up.set()


async def sample_memory(hubs: Hubs, tally: Tally, until: float) -> None:
    interval = max(0.25, SECONDS / 200)
    while time.monotonic() < until:
        if not hubs.restarting:
            with contextlib.suppress(psutil.Error):
                rss = psutil.Process(hubs.hub.pid).memory_info().rss
                tally.rss.append((time.monotonic(), rss) if hubs.generation else (0.0, rss))
        await asyncio.sleep(interval)


# -- the run ----------------------------------------------------------------------


async def soak(world: World, hubs: Hubs, log: Path, tally: Tally, tokens: dict[str, Any]) -> None:
    started = time.monotonic()
    until = started + SECONDS
    rng = random.Random(2026)
    population = world.population
    vdab = [p.insz.digits for p in population.known_to("vdab")]
    known = {p.insz.digits for p in population.persons}
    strangers = [d for d in (make_insz(rng) for _ in range(60)) if d not in known][:30]
    limits = httpx.Limits(max_connections=CLIENTS * 2, max_keepalive_connections=CLIENTS * 2)
    verifying = asyncio.Lock()
    hubs.up.set()

    async def client(index: int, http: httpx.AsyncClient) -> None:
        load = Load(
            world=world,
            hubs=hubs,
            tally=tally,
            http=http,
            rng=random.Random(index),
            gtb=tokens["gtb"],
            officer=tokens["officer"],
            clients=tokens["clients"],
            mine=vdab[index::CLIENTS][:10],
            strangers=strangers,
            vdab=vdab,
            ocmw=[p.insz.digits for p in population.known_to("ocmw-gent")],
            levanto=[p.insz.digits for p in population.known_to(FAULTY)],
            verifying=verifying,
        )
        operations, weights = zip(*load.operations(), strict=True)
        while time.monotonic() < until:
            with contextlib.suppress(Cut):
                await load.rng.choices(operations, weights)[0]()

    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(
            *(client(i, http) for i in range(CLIENTS)),
            inject_source_faults(world, until),
            lock_database(world, tally, until),
            crash_and_restart(world, hubs, log, started + SECONDS * 0.15),
            sample_memory(hubs, tally, until),
        )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def memory_verdict(samples: list[tuple[float, int]]) -> tuple[int, int, int, int, bool]:
    """(start, second-quarter median, last-quarter median, end, flat) of the restarted hub."""
    after = [rss for at, rss in samples if at > 0.0]
    warm = after[max(1, len(after) // 10) :]  # a warm-up: caches, pools, first imports
    quarter = max(1, len(warm) // 4)
    second = int(statistics.median(warm[quarter : 2 * quarter]))
    last = int(statistics.median(warm[-quarter:]))
    flat = last <= max(second * 1.10, second + 20 * 2**20)
    return after[0], second, last, after[-1], flat


def print_figures(tally: Tally, rows: int, report: dict[str, Any], memory: tuple[int, ...]) -> None:
    mib = 2**20
    kinds = sorted({kind for kind, _ in tally.statuses})
    lines = [f"\nsoak: {SECONDS:.0f} s, {CLIENTS} clients, faulty source {FAULTY}"]
    lines.append(f"{'kind':<20} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    every: list[float] = []
    for kind in kinds:
        counts = {s: n for (k, s), n in sorted(tally.statuses.items()) if k == kind}
        latencies = tally.latencies[kind]
        every += latencies
        lines.append(
            f"{kind:<20} {sum(counts.values()):>8} {percentile(latencies, 0.5) * 1000:>8.1f} "
            f"{percentile(latencies, 0.99) * 1000:>8.1f}  "
            + " ".join(f"{s}:{n}" for s, n in counts.items())
        )
    total = sum(tally.statuses.values())
    fives = Counter({s: n for (_, s), n in tally.statuses.items() if s >= 500})
    start, second, last, end, flat = memory
    p50, p99 = percentile(every, 0.5) * 1000, percentile(every, 0.99) * 1000
    lines += [
        f"{'all':<20} {total:>8} {p50:>8.1f} {p99:>8.1f}  ({total / SECONDS:.0f} req/s)",
        (
            f"5xx: {dict(sorted(fives.items())) or 'none'}; 500s: {fives[500]}; "
            f"in flight at the SIGKILL: {tally.cut}; database locks held: {tally.locks} "
            f"(missed: {tally.lock_misses})"
        ),
        (
            f"RSS MiB: start {start / mib:.1f}, 2nd-quarter median {second / mib:.1f}, "
            f"last-quarter median {last / mib:.1f}, end {end / mib:.1f}: "
            f"{'flat' if flat else 'GROWING'} ({len(tally.rss)} samples)"
        ),
        (
            f"audit: {len({seq for seq, _, _ in tally.recorded})} records named by answers, "
            f"all found; {rows} records; "
            f"verify ok={report['ok']} entries={report['entries']}"
        ),
        f"unexpected: {len(tally.unexpected)}",
    ]
    print("\n".join(lines))


def test_soak_mixed_load_with_faults_loses_nothing(world: World, tmp_path: Path) -> None:
    gtb, officer, fetcher = world.clients(
        ("gtb", "exchange consent:write"), ("hub", "audit:read"), ("vdab", "exchange")
    )
    log = tmp_path / "hub.log"
    hubs = Hubs(Hub.start(world.env, log))
    tally = Tally()
    try:
        with httpx.Client(base_url=hubs.hub.base, timeout=30) as http:
            # Keys survive the restart, so these tokens do too.
            tokens = {
                "gtb": bearer(http, gtb),
                "officer": bearer(http, officer),
                "clients": {"gtb": gtb, "officer": officer, "vdab": fetcher},
            }
        asyncio.run(soak(world, hubs, log, tally, tokens))
        with httpx.Client(base_url=hubs.hub.base, timeout=60) as http:
            online = http.get("/v1/audit/verify", headers=tokens["officer"]).json()
    finally:
        hubs.hub.stop()

    report = world.verify_offline()
    rows = world.audit_rows()
    for seq, decision, disclosure_id in tally.recorded:
        found = rows.get(seq)
        want = (decision, disclosure_id) if decision == "disclosed" else decision
        got = found if found is None or decision == "disclosed" else found[0]
        tally.check("audit", got == want, f"seq {seq}: answered {want}, stored {found}")
    memory = memory_verdict(tally.rss)
    print_figures(tally, len(rows), report, memory)

    assert online["ok"] is True, online
    assert report["entries"] == len(rows)
    assert not tally.unexpected, "\n".join(tally.unexpected[:20])
    assert not any(status == 500 for _, status in tally.statuses)
    assert tally.statuses["exchange-open", 200] > 0
    assert tally.statuses["exchange-faulty", 502] + tally.statuses["exchange-faulty", 504] > 0
    assert memory[-1], "the hub's resident memory grew"
