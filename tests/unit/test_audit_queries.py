"""A privacy officer's questions of a period: the newest page and the counts (CONTRACT.md 4).

The page is chosen from an index before its records are read (migration 0002's
``ix_audit_time``); whatever way the database takes, the answer is the records that
match, newest first, even when ``at`` does not rise with ``seq`` (writers that read
the clock before they queue).
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from hub.db import migrate
from hub.db.audit_log import SqlAudit
from hub.db.audit_rows import audit_row
from hub.db.database import create_engine
from hub.db.sql import Sql
from hub.domain.audit import GENESIS, STORED_MEMBERS, AuditEntry, AuditRecord, link
from hub.ports import AuditQuery
from tests.conftest import Backend, connect

REQUESTERS = ["gtb", "cgg-vagga", "ocmw-gent"]
SOURCES = ["vdab", "ocmw-gent", "in-gent"]
DECISIONS = ["disclosed", "denied", "failed"]


def _entry(rng: random.Random, n: int) -> AuditEntry:
    # Times mostly rise with seq, but not always: a day's worth of jitter.
    minute = n * 7 + rng.randrange(-1440, 1440)
    day, rest = divmod(max(minute, 0), 1440)
    return AuditEntry(
        at=f"2026-03-{1 + day % 28:02d}T{rest // 60:02d}:{rest % 60:02d}:00.000000Z",
        kind="exchange",
        requester=rng.choice(REQUESTERS),
        source=rng.choice(SOURCES),
        participant=f"{rng.randrange(6):064x}",
        purpose="trajectory-coordination",
        actor={"role": "casemanager-work", "id": "u-1"},
        decision=rng.choice(DECISIONS),
        reason=None,
        fields_requested=["trajectory.status"],
        fields_disclosed=[],
        withheld=[],
        agreement=None,
        agreements=[],
        consents=[],
        disclosure_id=None,
    )


@pytest.fixture(scope="module")
def log(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> tuple[str, list[AuditRecord]]:
    url = backend.fresh(tmp_path_factory.mktemp("queries"), lasting=True)
    rng = random.Random(4)
    records, prev = [], GENESIS
    for seq in range(1, 1201):
        record = link(seq, _entry(rng, seq), prev)
        records.append(record)
        prev = record.hash
    _insert(url, records)
    return url, records


def _insert(url: str, records: list[AuditRecord]) -> None:
    marks = ", ".join(f":{name}" for name in STORED_MEMBERS)
    with connect(url) as raw:
        sql = Sql(raw, make_url(url).get_backend_name())
        for record in records:
            sql.run(
                f"INSERT INTO audit_events ({', '.join(STORED_MEMBERS)}) VALUES ({marks})",
                audit_row(record),
            )


@contextlib.contextmanager
def _audit(url: str) -> Iterator[SqlAudit]:
    """The repository over a connection of its own, each statement its own transaction."""
    with connect(url) as raw:
        dialect = make_url(url).get_backend_name()
        if dialect == "sqlite":
            raw.isolation_level = None
        else:
            raw.autocommit = True
        yield SqlAudit(Sql(raw, dialect))


def _matches(record: AuditRecord, query: AuditQuery) -> bool:
    e = record.entry
    return (
        (query.participant is None or e.participant == query.participant)
        and (query.partner is None or query.partner in {e.requester, e.source})
        and (query.visible_to is None or query.visible_to in {e.requester, e.source})
        and (query.decision is None or e.decision == query.decision)
        and (query.since is None or e.at >= query.since)
        and (query.until is None or e.at < query.until)
        and (query.before_seq is None or record.seq < query.before_seq)
    )


QUERIES: list[dict[str, Any]] = [
    {},
    {"since": "2026-03-05T00:00:00.000000Z", "until": "2026-03-06T00:00:00.000000Z"},
    {"until": "2026-03-03T12:00:00.000000Z"},
    {"since": "2026-03-20T00:00:00.000000Z"},
    {
        "since": "2026-03-04T00:00:00.000000Z",
        "until": "2026-03-09T00:00:00.000000Z",
        "visible_to": "ocmw-gent",
    },
    {
        "since": "2026-03-04T00:00:00.000000Z",
        "until": "2026-03-09T00:00:00.000000Z",
        "before_seq": 300,
    },
    {"participant": f"{3:064x}"},
    {"participant": f"{3:064x}", "until": "2026-03-10T00:00:00.000000Z"},
    {"partner": "in-gent", "until": "2026-03-25T00:00:00.000000Z"},
    {"since": "2026-04-01T00:00:00.000000Z", "until": "2026-04-02T00:00:00.000000Z"},
    {"until": "2027-01-01T00:00:00.000000Z"},
    {"since": "2027-01-01T00:00:00.000000Z"},
    {
        "since": "2026-03-02T00:00:00.000000Z",
        "until": "2027-01-01T00:00:00.000000Z",
        "before_seq": 900,
    },
    {"since": "2026-03-02T00:00:00.000000Z", "before_seq": 40},
    {"until": "2026-03-28T00:00:00.000000Z", "before_seq": 1},
]


@pytest.mark.parametrize("fields", QUERIES)
@pytest.mark.parametrize("limit", [1, 7, 51])
def test_a_page_is_the_newest_matching_records(
    log: tuple[str, list[AuditRecord]], fields: dict[str, Any], limit: int
) -> None:
    url, records = log
    query = AuditQuery(**fields)
    expected = [r.seq for r in reversed(records) if _matches(r, query)][:limit]
    with _audit(url) as audit:
        found = audit.page(query, limit)
    assert [r.seq for r in found] == expected
    assert all(r == records[r.seq - 1] for r in found)


@pytest.mark.parametrize("visible_to", [None, "ocmw-gent", "gtb", "nobody"])
def test_counts_are_the_records_of_the_period_by_requester_and_decision(
    log: tuple[str, list[AuditRecord]], visible_to: str | None
) -> None:
    url, records = log
    since, until = "2026-03-03T00:00:00.000000Z", "2026-03-17T00:00:00.000000Z"
    expected = Counter(
        (r.entry.requester, r.entry.decision)
        for r in records
        if since <= r.entry.at < until
        and (visible_to is None or visible_to in {r.entry.requester, r.entry.source})
    )
    with _audit(url) as audit:
        found = audit.counts(since=since, until=until, visible_to=visible_to)  # type: ignore[arg-type]
    assert found == sorted((r, d, n) for (r, d), n in expected.items())


@pytest.mark.sqlite_only("SQLite's plan; PostgreSQL's planner chooses from statistics")
def test_the_period_queries_are_answered_from_the_time_index(
    log: tuple[str, list[AuditRecord]],
) -> None:
    url, _ = log
    with connect(url) as raw:
        plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT requester, decision, count(*) FROM audit_events "
            "WHERE at >= ? AND at < ? GROUP BY requester, decision",
            ("a", "b"),
        ).fetchall()
    assert any("COVERING INDEX ix_audit_time" in str(step) for step in plan)


def test_upgrading_from_0001_keeps_the_log_and_swaps_the_time_index(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    migrate.upgrade(url, "0001")
    record = link(1, _entry(random.Random(1), 1), GENESIS)
    _insert(url, [record])
    assert not migrate.is_current(url)
    migrate.upgrade(url)
    assert migrate.is_current(url)
    engine = create_engine(url)
    try:
        indexes = {i["name"] for i in inspect(engine).get_indexes("audit_events")}
    finally:
        engine.dispose()
    assert "ix_audit_time" in indexes
    assert "ix_audit_at" not in indexes
    with _audit(url) as audit:
        report = audit.verify().as_dict()
    assert report == {
        "ok": True,
        "entries": 1,
        "head": record.hash,
        "checkpoint": None,
    }
