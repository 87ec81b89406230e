"""Several hub processes on one PostgreSQL keep one audit log (issue #5, docs/scale-out.md).

``ketenhub serve --workers 4`` runs against a throw-away PostgreSQL cluster while
client *processes* (``tests.e2e.workers_load``) fire thousands of concurrent
exchanges, and grant and revoke consents. Afterwards:

(a) ``ketenhub audit verify`` (offline) and ``GET /v1/audit/verify`` say ok;
(b) the audit events are exactly the decisions the clients saw: every decided answer
    (200/403/404/502/504) names an ``audit_seq``, no two the same, and together they
    are 1..N where N is the number of stored events (CONTRACT.md 3: "Every decision
    ... is in the audit log before the response leaves the hub");
(c) no exchange *sent* after a revoke's answer was *received* disclosed a field under
    that consent (CONTRACT.md 3: "A revoked consent blocks every exchange decided
    after the revoke returned"); the clients' ``time.monotonic()`` is one clock for
    every process of the machine;
(d) the signed checkpoints (CONTRACT.md 4) sign that one chain: each names the hash
    the chain holds at its seq, under a key of the hub's JWKS;

and the four workers all served (their client connections are seen during the load).

Across processes, two separate ``ketenhub serve`` on two ports (certainly two
processes) share one database: one ``Idempotency-Key`` sent to both at once gives one
decision and replays, and a ``private_key_jwt`` assertion is accepted once only.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import jwt
import psutil
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hub.db import migrate
from hub.db.database import SqlDatabase, create_engine
from hub.domain.checkpoints import CHECKPOINT_EVERY, CHECKPOINT_TYP
from hub.domain.errors import ServiceUnavailableError
from tests.builders import NOW, a_consent, an_assertion_form, an_audit_entry, make_insz
from tests.e2e.harness import Hub, World, bearer, ketenhub
from tests.e2e.harness import world as make_world
from tests.e2e.workers_load import CONSENTED_FIELD, Exchange, Plan, Revoke, Seen, run_client
from tests.pgcluster import PgCluster, PgUnavailableError, pg_cluster, require_or_skip

pytestmark = pytest.mark.e2e

WORKERS = 4
CLIENT_PROCESSES = 4
EXCHANGES_PER_CLIENT = 750
PUBLIC_URL = "https://hub.ketenhub.test"
"""Both hubs of the pair stand behind one name, as behind a load balancer: a client
assertion's ``aud`` is the same for either (CONTRACT.md 3)."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    try:
        with pg_cluster(database=None) as made:
            yield made
    except PgUnavailableError as exc:
        require_or_skip(str(exc))


@pytest.fixture(scope="module")
def world(cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    url = cluster.create_database("workers")
    root = tmp_path_factory.mktemp("workers")
    with make_world(root, database_url=url) as made:
        yield replace(made, env={**made.env, "KETENHUB_PUBLIC_URL": PUBLIC_URL})


@dataclass(frozen=True, slots=True)
class Load:
    seen: list[Seen]
    served_by: set[int]
    """Worker pids that held a client connection on the hub's port during the load."""
    seconds: float

    @property
    def exchanges(self) -> list[Exchange]:
        return [e for s in self.seen for e in s.exchanges]

    @property
    def revokes(self) -> list[Revoke]:
        return [r for s in self.seen for r in s.revokes]


def people(world: World) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...], tuple[str, ...]]:
    """Open participants, consent participants per client process, and strangers."""
    vdab = world.population.known_to("vdab")
    with_value = [
        p.insz.digits
        for p in vdab
        if (world.population.values("vdab", p.insz.digits) or {}).get(CONSENTED_FIELD) is not None
    ]
    per_client = 3
    consented = with_value[: CLIENT_PROCESSES * per_client]
    assert len(consented) == CLIENT_PROCESSES * per_client, "the population is too small"
    open_people = tuple(p.insz.digits for p in vdab if p.insz.digits not in consented)[:40]
    known = {p.insz.digits for p in world.population.persons}
    rng = random.Random(5)
    strangers = tuple(d for d in (make_insz(rng) for _ in range(40)) if d not in known)[:10]
    groups = tuple(
        tuple(consented[i * per_client : (i + 1) * per_client]) for i in range(CLIENT_PROCESSES)
    )
    return open_people, groups, strangers


def fire(hub_bases: tuple[str, ...], plan: Plan, master_pid: int | None) -> Load:
    """Run the client processes; meanwhile note which worker processes hold connections."""
    served: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        if master_pid is None:
            return
        port = int(hub_bases[0].rsplit(":", 1)[1])
        master = psutil.Process(master_pid)
        while not stop.wait(0.05):
            for child in master.children(recursive=True):
                try:
                    conns = child.net_connections(kind="tcp")
                except psutil.Error:
                    continue
                if any(c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED for c in conns):
                    served.add(child.pid)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    began = time.monotonic()
    context = multiprocessing.get_context("spawn")
    try:
        with context.Pool(CLIENT_PROCESSES) as pool:
            plan = replace(plan, start_at=time.monotonic() + 3.0)  # after every spawn
            seen = pool.starmap(run_client, [(plan, i) for i in range(CLIENT_PROCESSES)])
    finally:
        stop.set()
        watcher.join()
    return Load(seen, served, time.monotonic() - began - 3.0)


def test_four_workers_keep_one_valid_audit_log(world: World, tmp_path: Path) -> None:
    gtb, officer = world.clients(("gtb", "exchange consent:write"), ("hub", "audit:read"))
    open_people, groups, strangers = people(world)
    hub = Hub.start(world.env, tmp_path / "hub.log", workers=WORKERS)
    try:
        plan = Plan(
            bases=(hub.base,),
            client=gtb,
            open_people=open_people,
            consent_people=groups,
            strangers=strangers,
            exchanges_per_client=EXCHANGES_PER_CLIENT,
        )
        load = fire((hub.base,), plan, hub.pid)
        with httpx.Client(base_url=hub.base, timeout=60) as http:
            online = http.get("/v1/audit/verify", headers=bearer(http, officer))
            jwks = http.get("/.well-known/jwks.json").json()
    finally:
        stopped = hub.stop()  # each worker signs a last checkpoint as it stops
    assert stopped == 0, hub.output()[-4000:]

    errors = [e for s in load.seen for e in s.errors]
    assert not errors, errors[:10]
    exchanges = load.exchanges
    assert len(exchanges) == CLIENT_PROCESSES * EXCHANGES_PER_CLIENT
    # The four workers all served, not one of them.
    assert len(load.served_by) >= WORKERS, load.served_by

    # (a) the log verifies, offline and online.
    offline = world.verify_offline()
    assert online.status_code == 200, online.text
    assert online.json()["ok"] is True, online.json()

    # (b) one audit event per decision a client saw: seqs 1..N, no gap, no duplicate.
    rows = {
        int(seq): (str(decision), disclosure_id, json.loads(consents))
        for seq, decision, disclosure_id, consents in world.query(
            "SELECT seq, decision, disclosure_id, consents FROM audit_events"
        )
    }
    seqs = sorted(e.audit_seq for e in exchanges if e.audit_seq is not None)
    assert len(seqs) == len(exchanges), "a decided answer without an audit_seq"
    assert seqs == list(range(1, len(exchanges) + 1))
    assert sorted(rows) == seqs
    assert offline["entries"] == len(rows) == online.json()["entries"]
    statuses = {e.status for e in exchanges}
    assert {200, 403, 404} <= statuses, statuses
    for e in exchanges:
        decision = rows[e.audit_seq][0]  # type: ignore[index]
        assert decision == ("disclosed" if e.status == 200 else "denied"), (e, decision)

    # (c) no disclosure under a consent after its revoke returned (to any client process).
    revoked_at = {r.consent_id: r.returned for r in load.revokes}
    under_consent = 0
    for e in exchanges:
        if e.status != 200:
            continue
        consents = rows[e.audit_seq][2]  # type: ignore[index]
        assert (CONSENTED_FIELD in e.disclosed) == bool(consents), (e, consents)
        for consent_id in consents:
            under_consent += 1
            returned = revoked_at.get(consent_id)
            assert returned is None or e.sent < returned, (e, consent_id, returned)
    # The check bites: disclosures under consents happened, and many exchanges for a
    # participant were sent after one of their consents' revokes had returned.
    after_revoke = sum(
        1
        for e in exchanges
        if e.kind == "consented"
        and any(r.participant == e.participant and r.returned < e.sent for r in load.revokes)
    )
    assert under_consent >= 50, under_consent
    assert after_revoke >= 200, after_revoke
    assert len(load.revokes) >= 20, len(load.revokes)

    # (d) the checkpoints sign this one chain.
    check_checkpoints(world, jwks, len(rows))
    print(
        f"workers={WORKERS} clients={CLIENT_PROCESSES}: {len(exchanges)} exchanges and "
        f"{len(load.revokes)} grant+revoke in {load.seconds:.1f} s "
        f"({len(exchanges) / load.seconds:.0f} exchanges/s), {under_consent} disclosures "
        f"under a consent, {after_revoke} consented asks after a revoke, "
        f"served by {len(load.served_by)} workers"
    )


def check_checkpoints(world: World, jwks: dict[str, Any], entries: int) -> None:
    """Every checkpoint is a JWS of the hub's over the very hash the chain holds at its seq."""
    hashes = {int(seq): str(h) for seq, h in world.query("SELECT seq, hash FROM audit_events")}
    keys = {k.key_id: k for k in jwt.PyJWKSet.from_dict(jwks).keys}
    stored = world.query("SELECT seq, head, jws FROM audit_checkpoints ORDER BY seq")
    found = {int(seq) for seq, _, _ in stored}
    due = set(range(CHECKPOINT_EVERY, entries + 1, CHECKPOINT_EVERY))
    assert due <= found, sorted(due - found)
    assert max(found) == entries, "the workers that stopped signed the head"
    for seq, head, jws in stored:
        header = jwt.get_unverified_header(jws)
        assert header["typ"] == CHECKPOINT_TYP
        key = keys[header["kid"]]
        claims = jwt.decode(jws, key.key, algorithms=[header["alg"]], options={"require": []})
        assert (claims["seq"], claims["head"]) == (int(seq), head)
        assert hashes[int(seq)] == head, seq


@pytest.fixture(scope="module")
def pair(
    cluster: PgCluster, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[World, Hub, Hub]]:
    """Two separate ``ketenhub serve`` (one worker each) on two ports, one database."""
    url = cluster.create_database("pair")
    shared = replace(world, env={**world.env, "KETENHUB_DATABASE_URL": url})
    logs = tmp_path_factory.mktemp("pair")
    first = Hub.start(shared.env, logs / "a.log")
    try:
        second = Hub.start(shared.env, logs / "b.log")
        try:
            yield shared, first, second
        finally:
            second.stop()
    finally:
        first.stop()


def test_one_idempotency_key_sent_to_two_processes_at_once_is_one_decision(
    pair: tuple[World, Hub, Hub],
) -> None:
    shared, first, second = pair
    gtb = shared.client("gtb", "exchange")
    people_ = [p.insz.digits for p in shared.population.known_to("vdab")[:20]]
    copies = 6

    async def send_all() -> list[tuple[str, int, dict[str, Any]]]:
        async with (
            httpx.AsyncClient(base_url=first.base, timeout=60) as a,
            httpx.AsyncClient(base_url=second.base, timeout=60) as b,
        ):
            token = await a.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=gtb
            )
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

            async def send(http: httpx.AsyncClient, person: str) -> tuple[str, int, dict[str, Any]]:
                body = {
                    "participant": person,
                    "source": "vdab",
                    "purpose": "trajectory-coordination",
                    "fields": ["trajectory.status", "trajectory.start_date"],
                    "actor": {"role": "casemanager-work", "id": "u-pair"},
                }
                key = {"Idempotency-Key": f"pair-{person}"}
                answer = await http.post("/v1/exchange", json=body, headers={**headers, **key})
                return person, answer.status_code, answer.json()

            return await asyncio.gather(
                *(send((a, b)[i % 2], p) for p in people_ for i in range(copies))
            )

    answers = asyncio.run(send_all())
    by_key: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for person, status, document in answers:
        by_key.setdefault(person, []).append((status, document))
    for person, got in by_key.items():
        assert len(got) == copies
        assert {status for status, _ in got} == {200}, got
        # The same answer (one disclosure id, one audit seq) from either process.
        assert all(document == got[0][1] for _, document in got), (person, got)
    originals = {document["audit_seq"] for got in by_key.values() for _, document in got[:1]}
    rows = shared.query("SELECT seq, kind, replay_of FROM audit_events")
    decided = {int(seq) for seq, kind, _ in rows if kind == "exchange"}
    replays = [int(of) for _, kind, of in rows if kind == "replay"]
    # One decision per key; every other copy is a replay of it (and an audit event).
    assert decided == originals
    assert len(replays) == len(people_) * (copies - 1)
    assert set(replays) == originals
    shared.verify_offline()


def test_a_client_assertion_is_accepted_by_one_process_only(
    pair: tuple[World, Hub, Hub], tmp_path: Path
) -> None:
    shared, first, second = pair
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public["kid"] = "pair-1"
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [public]}))
    made = shared_client_with_jwks(shared, jwks_file)

    def assertion() -> dict[str, str]:
        return an_assertion_form(
            made, key, now=int(time.time()), audience=f"{PUBLIC_URL}/oauth/token", kid="pair-1"
        )

    async def race(forms: list[dict[str, str]]) -> list[list[httpx.Response]]:
        async with (
            httpx.AsyncClient(base_url=first.base, timeout=60) as a,
            httpx.AsyncClient(base_url=second.base, timeout=60) as b,
        ):
            return [
                list(
                    await asyncio.gather(
                        *(http.post("/oauth/token", data=form) for http in (a, b, a, b))
                    )
                )
                for form in forms
            ]

    # The same assertion at both processes at the same moment: exactly one token.
    forms = [assertion() for _ in range(10)]
    for answers in asyncio.run(race(forms)):
        statuses = sorted(a.status_code for a in answers)
        assert statuses[0] == 200, [a.text for a in answers]
        assert all(s in {400, 401} for s in statuses[1:]), [a.text for a in answers]
        assert all(a.json()["error"] == "invalid_client" for a in answers if a.status_code != 200)

    # Accepted at one process, replayed later at the other: refused.
    form = assertion()
    accepted = httpx.post(f"{first.base}/oauth/token", data=form, timeout=30)
    assert accepted.status_code == 200, accepted.text
    replayed = httpx.post(f"{second.base}/oauth/token", data=form, timeout=30)
    assert replayed.status_code in {400, 401}, replayed.text
    assert replayed.json()["error"] == "invalid_client"


def shared_client_with_jwks(shared: World, jwks_file: Path) -> str:
    made = ketenhub(
        shared.env,
        "client",
        "create",
        "--partner",
        "gtb",
        "--scope",
        "exchange",
        "--jwks-file",
        str(jwks_file),
        "--json",
    )
    assert made.returncode == 0, made.stderr
    client_id: str = json.loads(made.stdout)["client_id"]
    return client_id


def test_two_processes_committers_locking_in_opposite_orders_do_not_deadlock(
    cluster: PgCluster,
) -> None:
    """The worst interleaving of two processes' group commits, forced with events.

    Group A appends (holds the head), then reads consent C ``FOR SHARE`` to confirm an
    exchange. Group B revokes C, then appends. Were B to revoke C while A holds the
    head, each would wait for the other: PostgreSQL breaks the cycle after a second by
    failing a whole group, every request in it answered ``503``. A group takes the
    head before any other lock (``hub.db.database._LOCK_HEAD_FIRST``), so B waits at
    its start and both groups commit.
    """
    url = cluster.create_database("opposite_orders")
    migrate.upgrade(url)
    consent = a_consent(id="c-opposite")

    async def given() -> None:
        setup = SqlDatabase(create_engine(url))
        try:
            await setup.write(lambda uow: uow.consents.add(consent, None))
        finally:
            await setup.dispose()

    asyncio.run(given())
    a_holds_head, b_revoked = threading.Event(), threading.Event()
    outcomes: dict[str, list[object]] = {}

    def append(n: int, then: threading.Event | None = None) -> Any:
        def work(uow: Any) -> int:
            record = uow.audit.append(an_audit_entry(n))
            if then is not None:
                then.set()
            return int(record.seq)

        return work

    def confirm(uow: Any) -> int:
        b_revoked.wait(timeout=2)  # B's revoke, if B could run now (it cannot: the head)
        return len(uow.consents.by_ids([consent.id], for_share=True))

    def revoke(uow: Any) -> None:
        uow.consents.revoke(consent.id, NOW)
        b_revoked.set()

    def group(name: str, *jobs: Any) -> None:
        async def run() -> list[object]:
            db = SqlDatabase(create_engine(url))
            try:  # gathered: both jobs are queued before the committer runs, one group
                return list(
                    await asyncio.gather(*(db.write(j) for j in jobs), return_exceptions=True)
                )
            finally:
                await db.dispose()

        outcomes[name] = asyncio.run(run())

    a = threading.Thread(target=group, args=("a", append(1, a_holds_head), confirm))
    b = threading.Thread(target=group, args=("b", revoke, append(2)))
    a.start()
    assert a_holds_head.wait(timeout=30)
    b.start()
    a.join(timeout=60)
    b.join(timeout=60)
    assert outcomes["a"] == [1, 1], outcomes
    assert outcomes["b"] == [None, 2], outcomes


def test_a_worker_stalled_inside_its_group_does_not_stall_the_others(cluster: PgCluster) -> None:
    """A worker that stops while holding the audit head (frozen, its host gone) loses its
    session after the busy timeout: its group is undone and answered ``503``, and the
    other workers' groups go on, rather than all writes waiting for hours."""
    url = cluster.create_database("stalled")
    migrate.upgrade(url)
    holds_head = threading.Event()
    outcomes: dict[str, object] = {}

    def stall(uow: Any) -> int:
        record = uow.audit.append(an_audit_entry(1))
        holds_head.set()
        time.sleep(4)  # idle in transaction, the head row locked
        return int(record.seq)

    def write(name: str, work: Any, busy_timeout_s: float | None) -> None:
        async def run() -> object:
            db = SqlDatabase(create_engine(url), busy_timeout_s=busy_timeout_s)
            try:
                return await db.write(work)
            except Exception as exc:
                return exc
            finally:
                await db.dispose()

        began = time.monotonic()
        outcomes[name] = asyncio.run(run())
        outcomes[f"{name}-took"] = time.monotonic() - began

    stalled = threading.Thread(target=write, args=("stalled", stall, 1.0))
    other = threading.Thread(
        target=write, args=("other", lambda uow: int(uow.audit.append(an_audit_entry(2)).seq), None)
    )
    stalled.start()
    assert holds_head.wait(timeout=30)
    other.start()
    other.join(timeout=60)
    stalled.join(timeout=60)
    assert isinstance(outcomes["stalled"], ServiceUnavailableError), outcomes
    assert outcomes["other"] == 1, outcomes  # the stalled group's record was undone
    assert outcomes["other-took"] < 3.5, outcomes  # it did not wait out the stall
