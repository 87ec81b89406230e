"""Sections 4 and 5: verifying the audit log, and a privacy officer's queries on it.

**The logs.** Valid hash chains of the records the hub writes, over the demo network's
policies (``policies/``): its requesters, sources, purposes, roles, fields and
agreement versions, with the outcomes the exchange records (disclosed, a field not
available, denied for a policy reason, unknown participant, failed source, replays of
an ``Idempotency-Key`` answer). 50,000 participant pseudonyms; 90 days from
2026-03-02, weekdays busier than weekends, office hours, ``at`` as the hub formats it.
Every hash is a real chain hash (``StoredHasher``, checked against ``link`` on every
10,000th record while generating). A log is written to SQLite with the schema the
migrations make (indexes dropped during the load and made again after it, as
Alembic defines them) and kept under ``var/bench/`` keyed by ``VERSION`` and size;
PostgreSQL gets the same rows by ``COPY FREEZE`` into a throw-away cluster each run
(``tests/pgcluster.py``): all-visible, as a vacuumed table's are, then ``ANALYZE`` as
autovacuum would. Generation and loading are timed apart from the measurements
(``generate_s``, ``pg_generate_s``).

**verify**: ``ketenhub audit verify`` as a user runs it (a new process, the database
named by ``KETENHUB_DATABASE_URL``), timed from start to exit, and the same check in
this process (``verify_log``), on the 1,000,000-record log.

**officer_query**: the hub's own reads (``Database.read`` of ``SqlAudit``), as the
officer API makes them: a participant's history (``AuditQuery(participant=)``,
newest first, 51 rows: a page of 50 and the one that says there is more), one
day (``since``/``until``), and a 30-day aggregate (events per requester and decision,
``SqlAudit.counts``). Each on random participants, days and windows, p50 and p99.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import combinations
from pathlib import Path
from typing import Any

from bench.common import Figures, percentile, rounded
from hub.auth.keys import FileKeyRing
from hub.clock import SystemClock
from hub.db import migrate
from hub.db.audit_rows import record_of
from hub.db.database import SqlDatabase, create_engine
from hub.domain.agreements import Agreement
from hub.domain.audit import GENESIS, STORED_MEMBERS, StoredHasher, chain_hash
from hub.domain.moments import format_timestamp
from hub.policy.loader import load_policy_dir
from hub.ports import AuditQuery
from hub.services.audit import AuditTrail, verify_log
from tests.pgcluster import pg_cluster

VERSION = "auditlog-2"
"""Part of every cached log's name: change it when what is generated changes."""
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench"
SEED = 2026
PG_SETTINGS = {
    # A server sized for this 2-core, 24 GiB machine rather than PostgreSQL's defaults.
    "shared_buffers": "2GB",
    "effective_cache_size": "12GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "8GB",
    "fsync": "on",
    # No replicas: a table emptied and filled in one transaction (the bench's COPY)
    # is then written without WAL, and made durable by syncing its files at commit.
    "wal_level": "minimal",
    "max_wal_senders": "0",
}
PARTICIPANTS = 50_000
DAYS = 90
START = date(2026, 3, 2)
ACTORS_PER_PARTNER = 40
SAMPLE_CHECK = 10_000
"""Every this many records, the generated hash is checked against ``link``."""

_COLUMNS = ", ".join(STORED_MEMBERS)
_HASH = STORED_MEMBERS.index("hash")
_PREV = STORED_MEMBERS.index("prev_hash")


def _json(value: object) -> str:
    # What the hub stores (hub.db.sql.json_text).
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# -- what the records say ---------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """Everything in a record but who, when, by whom and the ids of this exchange."""

    weight: float
    kind: str
    requester: str
    source: str
    purpose: str
    role: str
    decision: str
    reason: str | None
    fields_requested: str
    fields_disclosed: str
    withheld: str
    agreement: str | None
    agreements: str
    consent_of: str | None
    """The agreement whose consent the record names, when it names one."""
    valid: tuple[date, date | None]


def _subsets(fields: list[str]) -> list[list[str]]:
    picked = [[f] for f in fields]
    picked += [list(pair) for pair in combinations(fields, 2)][:3]
    if len(fields) > 2:
        picked.append(fields[:3])
    return picked


@cache
def _kinds() -> list[_Kind]:
    policy = load_policy_dir(ROOT / "policies")
    kinds: list[_Kind] = []
    all_roles = sorted({r for a in policy.agreements for r in a.roles})
    for agreement in policy.agreements:
        kinds += _kinds_of(agreement, policy.agreements, all_roles)
    return kinds


def _in_force(agreement: Agreement, others: tuple[Agreement, ...]) -> tuple[date, date | None]:
    """The days this version is the one in force: a higher valid version replaces it."""
    until = agreement.valid_until
    for other in others:
        if other.id == agreement.id and other.version > agreement.version:
            replaced = other.valid_from - timedelta(days=1)
            until = replaced if until is None else min(until, replaced)
    return agreement.valid_from, until


def _kinds_of(agreement: Agreement, others: tuple[Agreement, ...], roles: list[str]) -> list[_Kind]:
    valid = _in_force(agreement, others)
    fields = sorted(agreement.fields)
    subsets = _subsets(fields)
    out: list[_Kind] = []

    def add(weight: float, requester: str, role: str, decision: str, **rest: Any) -> None:
        out.append(
            _Kind(
                weight=weight,
                kind="exchange",
                requester=requester,
                source=agreement.provider,
                purpose=agreement.purpose,
                role=role,
                decision=decision,
                valid=valid,
                **rest,
            )
        )

    for requester in sorted(agreement.recipients):
        allowed = sorted(agreement.roles)
        other_roles = [r for r in roles if r not in agreement.roles]
        for asked in subsets:
            share = 1 / (len(subsets) * len(allowed))
            for role in allowed:
                consent = agreement.id if agreement.consent_required else None
                add(  # disclosed
                    70 * share,
                    requester,
                    role,
                    "disclosed",
                    reason=None,
                    fields_requested=_json(asked),
                    fields_disclosed=_json(asked),
                    withheld="[]",
                    agreement=agreement.ref,
                    agreements=_json([agreement.ref]),
                    consent_of=consent,
                )
                if len(asked) > 1:  # one field the source had no value for
                    add(
                        5 * share,
                        requester,
                        role,
                        "disclosed",
                        reason=None,
                        fields_requested=_json(asked),
                        fields_disclosed=_json(asked[:-1]),
                        withheld=_json([{"field": asked[-1], "reason": "not-available"}]),
                        agreement=agreement.ref,
                        agreements=_json([agreement.ref]),
                        consent_of=consent,
                    )
                nobody = {"agreement": None, "agreements": "[]", "consent_of": None}
                if agreement.consent_required:
                    add(
                        8 * share,
                        requester,
                        role,
                        "denied",
                        reason="nothing-disclosed",
                        fields_requested=_json(asked),
                        fields_disclosed="[]",
                        withheld=_json([{"field": f, "reason": "no-consent"} for f in asked]),
                        **nobody,
                    )
                for decision, reason in (
                    ("denied", "unknown-participant"),
                    ("failed", "source-unavailable"),
                ):
                    add(
                        4 * share,
                        requester,
                        role,
                        decision,
                        reason=reason,
                        fields_requested=_json(asked),
                        fields_disclosed="[]",
                        withheld="[]",
                        **nobody,
                    )
            for role in other_roles[:2]:
                add(
                    5 / (len(subsets) * 2),
                    requester,
                    role,
                    "denied",
                    reason="nothing-disclosed",
                    fields_requested=_json(asked),
                    fields_disclosed="[]",
                    withheld=_json([{"field": f, "reason": "role-not-allowed"} for f in asked]),
                    agreement=None,
                    agreements="[]",
                    consent_of=None,
                )
    return out


def _day_counts(n: int) -> list[tuple[date, int]]:
    """How many of ``n`` records fall on each day: weekdays five times weekends."""
    days = [START + timedelta(days=d) for d in range(DAYS)]
    weights = [1.0 if d.weekday() < 5 else 0.2 for d in days]
    total = sum(weights)
    counts = [int(n * w / total) for w in weights]
    counts[-1] += n - sum(counts)
    return list(zip(days, counts, strict=True))


def _uuid(bits: int) -> str:
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


@cache
def _people() -> list[str]:
    return [
        hashlib.sha256(f"ketenhub-bench-participant-{i}".encode()).hexdigest()
        for i in range(PARTICIPANTS)
    ]


@cache
def _consent_id(who: int, agreement: str) -> str:
    """One consent per participant and agreement, whichever day it is used on."""
    digest = hashlib.blake2b(f"{who}/{agreement}".encode(), digest_size=16).digest()
    return _uuid(int.from_bytes(digest))


def _day_rows(day_index: int, day: date, count: int, first_seq: int) -> list[list[Any]]:
    """One day's records, all but their links (``prev_hash``, ``hash``): no chain yet."""
    rng = random.Random(SEED * 1000 + day_index)
    usable = [k for k in _kinds() if k.valid[0] <= day <= (k.valid[1] or day)]
    cumulative: list[float] = []
    running = 0.0
    for k in usable:
        running += k.weight
        cumulative.append(running)
    # Office hours, 06:00 to 18:00 UTC, evenly: written out, format_timestamp's form.
    step_us = 12 * 3600 * 1_000_000 // max(count, 1)
    prefix = day.isoformat()
    people = _people()
    draw, bits = rng.random, rng.getrandbits
    rows: list[list[Any]] = []
    for i, k in enumerate(rng.choices(usable, cum_weights=cumulative, k=count)):
        seq = first_seq + i
        who = int(draw() * PARTICIPANTS)
        seconds, micros = divmod(6 * 3600 * 1_000_000 + i * step_us, 1_000_000)
        minutes, second = divmod(seconds, 60)
        at = f"{prefix}T{minutes // 60:02d}:{minutes % 60:02d}:{second:02d}.{micros:06d}Z"
        if seq % SAMPLE_CHECK == 1:
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            moment += timedelta(microseconds=6 * 3600 * 1_000_000 + i * step_us)
            assert format_timestamp(moment) == at
        kind, replay_of = k.kind, None
        if k.decision == "disclosed" and draw() < 0.04 and seq > 10:
            kind, replay_of = "replay", seq - 1 - int(draw() * min(seq - 1, 5000))
        consent = "[]" if k.consent_of is None else f'["{_consent_id(who, k.consent_of)}"]'
        rows.append(
            [
                seq,
                at,
                kind,
                k.requester,
                k.source,
                people[who],
                k.purpose,
                k.role,
                f"{k.requester}-u{int(draw() * ACTORS_PER_PARTNER):02d}",
                k.decision,
                k.reason,
                k.fields_requested,
                k.fields_disclosed,
                k.withheld,
                k.agreement,
                k.agreements,
                consent,
                _uuid(bits(128)) if k.decision == "disclosed" else None,
                replay_of,
                None,
                None,
            ]
        )
    return rows


def generate(n: int) -> Iterator[list[list[Any]]]:
    """The ``n`` records of the log, a day at a time, in the stored form, chained."""
    hasher = StoredHasher()
    prev, first = GENESIS, 1
    for index, (day, count) in enumerate(_day_counts(n)):
        rows = _day_rows(index, day, count, first)
        first += count
        prev = _link(rows, prev, hasher)
        yield rows


def _link(rows: list[list[Any]], prev: str, hasher: StoredHasher) -> str:
    """Chain ``rows`` after a record whose hash is ``prev``; the last one's hash."""
    for row in rows:
        row[_PREV] = prev
        prev = row[_HASH] = hasher(row)
        if row[0] % SAMPLE_CHECK == 1:
            record = record_of(tuple(row))
            assert chain_hash(record.seq, record.entry, record.prev_hash) == prev
    return prev


# -- SQLite, cached ---------------------------------------------------------------


def sqlite_log(n: int) -> tuple[Path, float, bool]:
    """The cached SQLite log of ``n`` records, made first when missing.

    Returns its path, how long making it took (then or now), and whether it was cached.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{VERSION}-{n}.db"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        migrate.upgrade(f"sqlite:///{path}")  # a log kept from before a migration: now
        return path, float(json.loads(meta.read_text())["generate_s"]), True
    for stale in CACHE.glob(f"*-{n}.*"):
        stale.unlink()
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    began = time.perf_counter()
    migrate.upgrade(f"sqlite:///{building}")
    with sqlite3.connect(building, isolation_level=None) as db:
        indexes = _drop_indexes_sqlite(db)
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN")
        marks = ", ".join("?" * len(STORED_MEMBERS))
        last = GENESIS
        # The rows make no cycles; the collector's passes over the ones a day's batch
        # holds were a sixth of the time (500k records: 21.1 s with them, 17.7 without).
        gc.disable()
        try:
            for batch in generate(n):
                db.executemany(f"INSERT INTO audit_events ({_COLUMNS}) VALUES ({marks})", batch)
                last = batch[-1][_HASH]
        finally:
            gc.enable()
        db.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (n, last))
        db.execute("COMMIT")
        for ddl in indexes:
            db.execute(ddl)
        db.execute("PRAGMA journal_mode=WAL")  # as the hub leaves it
    elapsed = time.perf_counter() - began
    building.rename(path)
    meta.write_text(json.dumps({"version": VERSION, "records": n, "generate_s": elapsed}))
    return path, elapsed, False


def _drop_indexes_sqlite(db: sqlite3.Connection) -> list[str]:
    found = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
        "AND tbl_name = 'audit_events' AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in found:
        db.execute(f'DROP INDEX "{name}"')
    return [sql for _, sql in found]


# -- PostgreSQL, loaded each run ----------------------------------------------------


def load_postgres(url: str, conninfo: str, source: Path) -> float:
    """Copy the SQLite log at ``source`` into a database at the newest schema.

    ``COPY FREEZE`` into the table emptied in the same transaction writes the rows
    all-visible, as a vacuumed table's are (index-only scans rely on that) without
    a ``VACUUM`` pass over them (the one run after finds little to do, and leaves
    autovacuum nothing); ``ANALYZE`` gives the planner its statistics, and a
    ``CHECKPOINT`` writes out what the load left dirty before anything is timed.
    """
    import psycopg  # noqa: PLC0415 - the bench's PostgreSQL half only

    began = time.perf_counter()
    migrate.upgrade(url)
    with psycopg.connect(conninfo, autocommit=True) as pg:
        found = pg.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_events' "
            "AND indexname NOT LIKE '%pkey'"
        ).fetchall()
        for name, _ in found:
            pg.execute(f'DROP INDEX "{name}"')
        ddls = [ddl for _, ddl in found]
        with pg.transaction(), pg.cursor() as cursor:
            cursor.execute("TRUNCATE audit_events")
            with cursor.copy(f"COPY audit_events ({_COLUMNS}) FROM STDIN FREEZE") as copy:
                for chunk in _copy_text(source):
                    copy.write(chunk)
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as lite:
            seq, last = lite.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        pg.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", (seq, last))
    # Two builds at a time, one per core.
    with ThreadPoolExecutor(2) as builders:
        list(builders.map(lambda ddl: _run_pg(conninfo, ddl), ddls))
    # VACUUM as well: 10M inserted rows would otherwise start autovacuum's pass over
    # the table while the queries are timed. The load and the index builds also leave
    # gigabytes of dirty buffers: written out now, not by the checkpointer meanwhile.
    _run_pg(conninfo, "VACUUM (ANALYZE) audit_events")
    _run_pg(conninfo, "CHECKPOINT")
    return time.perf_counter() - began


def _run_pg(conninfo: str, statement: str) -> None:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(conninfo, autocommit=True) as pg:
        pg.execute(statement)


def _copy_text(source: Path) -> Iterator[bytes]:
    """The log as ``COPY`` text: by the ``sqlite3`` program where there is one (C, in a
    process of its own: three times Python's pace), else row by row here.

    The generated text has no tab, newline or backslash that would need escaping.
    """
    select = f"SELECT {_COLUMNS} FROM audit_events ORDER BY seq"
    program = shutil.which("sqlite3")
    if program is not None:
        command = [program, "-batch", "-list", "-separator", "\t", "-nullvalue", "\\N"]
        with subprocess.Popen(
            [*command, f"file:{source}?mode=ro", select], stdout=subprocess.PIPE
        ) as dump:
            assert dump.stdout is not None
            while chunk := dump.stdout.read(1 << 20):
                yield chunk
        if dump.returncode != 0:
            raise RuntimeError(f"sqlite3 could not read {source}")
        return
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as lite:
        rows = lite.execute(select)
        while batch := rows.fetchmany(10_000):
            lines = ["\t".join("\\N" if v is None else str(v) for v in row) + "\n" for row in batch]
            yield "".join(lines).encode()


# -- section 4: verification ----------------------------------------------------------


KEY_DIR = CACHE / "keys"


async def _sign_head(path: Path) -> None:
    """A checkpoint at the generated log's head, as a hub that stopped leaves one.

    The generator writes records apart from the hub, so without it the verifier would
    rightly find records the hub did not sign or tag.
    """
    keys = FileKeyRing.load_or_create(KEY_DIR)
    db = SqlDatabase(create_engine(f"sqlite:///{path}"))
    try:
        await db.write(AuditTrail(keys=keys, clock=SystemClock()).checkpoint_head)
    finally:
        await db.dispose()


def _cli_verify(path: Path) -> tuple[float, dict[str, Any]]:
    env = {
        **os.environ,
        "KETENHUB_DATABASE_URL": f"sqlite:///{path}",
        "KETENHUB_KEY_DIR": str(KEY_DIR),
    }
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "hub", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"ketenhub audit verify failed: {done.stdout}{done.stderr}")
    return elapsed, json.loads(done.stdout)


async def _in_process_verify(path: Path) -> tuple[float, dict[str, Any]]:
    db = SqlDatabase(create_engine(f"sqlite:///{path}"))
    try:
        began = time.perf_counter()
        report = await verify_log(db, FileKeyRing.load(KEY_DIR))
        return time.perf_counter() - began, report.as_dict()
    finally:
        await db.dispose()


def run_verify(*, quick: bool) -> Figures:
    n = 100_000 if quick else 1_000_000
    path, generate_s, cached = sqlite_log(n)
    asyncio.run(_sign_head(path))
    if not quick:
        _cli_verify(path)  # warm: the log in the page cache, bytecode compiled
    cli_s, cli_report = _cli_verify(path)
    in_s, in_report = asyncio.run(_in_process_verify(path))
    if not (cli_report["ok"] and in_report["ok"] and cli_report["entries"] == n):
        raise RuntimeError(f"the generated log did not verify: {cli_report} {in_report}")
    return {
        "entries": n,
        "entries_per_s": round(n / cli_s),
        "cli_s": rounded(cli_s),
        "in_process_entries_per_s": round(n / in_s),
        "in_process_s": rounded(in_s),
        "generate_s": rounded(generate_s, 1),
        "generate_cached": cached,
        "cpus": os.cpu_count(),
    }


# -- section 5: officer queries -------------------------------------------------------


def _participants_sample(count: int) -> list[str]:
    rng = random.Random(SEED + 1)
    return [
        hashlib.sha256(
            f"ketenhub-bench-participant-{rng.randrange(PARTICIPANTS)}".encode()
        ).hexdigest()
        for _ in range(count)
    ]


def _day_bounds(day: date) -> tuple[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return format_timestamp(start), format_timestamp(start + timedelta(days=1))


async def _timed(db: SqlDatabase, work: Callable[[Any], Any], times: list[float]) -> Any:
    began = time.perf_counter()
    result = await db.read(work)
    times.append((time.perf_counter() - began) * 1000)
    return result


async def _officer_queries(url: str, quick: bool) -> dict[str, float]:
    rng = random.Random(SEED + 2)
    db = SqlDatabase(create_engine(url))
    history: list[float] = []
    day: list[float] = []
    aggregate: list[float] = []
    try:
        people = _participants_sample(220 if quick else 520)
        for p in people[:20]:  # warm: connections, statements, the indexes' upper pages
            await _timed(db, lambda uow, p=p: uow.audit.page(AuditQuery(participant=p), 51), [])
        for p in people[20:]:
            found = await _timed(
                db, lambda uow, p=p: uow.audit.page(AuditQuery(participant=p), 51), history
            )
            if not found:
                raise RuntimeError("a sampled participant has no history")
        for _ in range(30 if quick else 60):
            since, until = _day_bounds(START + timedelta(days=rng.randrange(DAYS)))
            query = AuditQuery(since=since, until=until)
            await _timed(db, lambda uow, q=query: uow.audit.page(q, 51), day)
        for _ in range(5 if quick else 10):
            first = START + timedelta(days=rng.randrange(DAYS - 30))
            since, _ = _day_bounds(first)
            until, _ = _day_bounds(first + timedelta(days=30))
            await _timed(
                db, lambda uow, s=since, u=until: uow.audit.counts(since=s, until=u), aggregate
            )
    finally:
        await db.dispose()
    return {
        "participant_history_p50_ms": rounded(percentile(history, 50)),
        "participant_history_p99_ms": rounded(percentile(history, 99)),
        "day_p50_ms": rounded(percentile(day, 50)),
        "day_p99_ms": rounded(percentile(day, 99)),
        "aggregate_30d_p50_ms": rounded(percentile(aggregate, 50)),
        "aggregate_30d_p99_ms": rounded(percentile(aggregate, 99)),
    }


def _into_page_cache(path: Path) -> None:
    """Read the file once: a hub's log is in memory, not wherever the last run left it."""
    with path.open("rb") as file:
        while file.read(1 << 23):
            pass


def run_officer(*, quick: bool) -> Figures:
    n = 500_000 if quick else 10_000_000
    path, generate_s, cached = sqlite_log(n)
    _into_page_cache(path)
    figures: Figures = {"entries": n}
    figures.update(asyncio.run(_officer_queries(f"sqlite:///{path}", quick)))
    with pg_cluster(PG_SETTINGS) as cluster:
        pg_generate_s = load_postgres(cluster.url(), cluster.conninfo(), path)
        pg = asyncio.run(_officer_queries(cluster.url(), quick))
    figures.update({f"pg_{k}": v for k, v in pg.items()})
    figures["generate_s"] = rounded(generate_s, 1)
    figures["generate_cached"] = cached
    figures["pg_generate_s"] = rounded(pg_generate_s, 1)
    figures["notes"] = (
        f"{n:,} records, real chain hashes, over the demo policies: 50,000 participants, "
        "90 days. SQLite: the cached file; PostgreSQL 15: a throw-away cluster (fsync on, "
        "shared_buffers 2GB), loaded by COPY FREEZE, then ANALYZE. Through Database.read; "
        "history: 500 random participants' 51 newest; day: 60 random UTC days' 51 newest; "
        "aggregate: records per requester and decision over 10 random 30-day windows "
        "(quick: 200, 30, 5). Warm: the SQLite file read into the page cache first, "
        "PostgreSQL's just written."
    )
    return figures


if __name__ == "__main__":
    print(json.dumps({"verify": run_verify(quick=True), "officer_query": run_officer(quick=True)}))
