"""The Database port (SQLite and PostgreSQL): group commit, savepoints, and what a failure
keeps."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from hub.db.database import SqlDatabase, create_engine
from hub.domain.audit import AuditRecord, verify_chain
from hub.domain.errors import ServiceUnavailableError
from hub.ports import SilentTelemetry, UnitOfWork
from tests.builders import an_audit_entry

_entry = an_audit_entry


def _append(n: int) -> object:
    return lambda uow: uow.audit.append(_entry(n))


async def _log(db: SqlDatabase) -> list[AuditRecord]:
    return await db.scan(lambda uow: list(uow.audit.stream()))


async def test_concurrent_writes_share_commits_and_keep_submission_order(
    db: SqlDatabase,
) -> None:
    records = await asyncio.gather(*(db.write(_append(n)) for n in range(200)))
    assert [r.seq for r in records] == list(range(1, 201))
    stored = await _log(db)
    assert [r.entry.actor["id"] for r in stored] == [f"actor-{n}" for n in range(200)]
    assert verify_chain(stored).ok


async def test_a_failing_transaction_is_undone_alone(db: SqlDatabase) -> None:
    def fails(uow: UnitOfWork) -> None:
        uow.audit.append(_entry(99))
        raise ValueError("the use case refused")

    first, failed, last = await asyncio.gather(
        db.write(_append(1)), db.write(fails), db.write(_append(2)), return_exceptions=True
    )
    assert isinstance(failed, ValueError)
    assert isinstance(first, AuditRecord)
    assert isinstance(last, AuditRecord)
    assert (first.seq, last.seq) == (1, 2)
    stored = await _log(db)
    assert [r.entry.actor["id"] for r in stored] == ["actor-1", "actor-2"]
    assert verify_chain(stored).ok


async def test_a_database_error_loses_the_whole_group_and_nothing_answers(
    db: SqlDatabase,
) -> None:
    def broken(uow: UnitOfWork) -> None:
        uow.audit.append(_entry(3))
        raise sqlite3.OperationalError("disk I/O error")

    outcomes = await asyncio.gather(
        db.write(_append(1)), db.write(broken), db.write(_append(2)), return_exceptions=True
    )
    assert all(isinstance(o, ServiceUnavailableError) for o in outcomes)
    assert await _log(db) == []
    # It recovers by itself: the next write starts on a fresh connection.
    record = await db.write(_append(4))
    assert record.seq == 1
    assert verify_chain(await _log(db)).ok


async def test_a_read_sees_every_write_that_returned(db: SqlDatabase) -> None:
    for n in range(5):
        record = await db.write(_append(n))
        seen = await db.read(lambda uow, seq=record.seq: uow.audit.get(seq))
        assert seen == record


async def test_a_cancelled_caller_whose_work_had_not_begun_changes_nothing(
    db: SqlDatabase,
) -> None:
    kept = asyncio.ensure_future(db.write(_append(1)))
    dropped = asyncio.ensure_future(db.write(_append(2)))
    await asyncio.sleep(0)  # both are queued; the committer has not run yet
    dropped.cancel()
    assert (await kept).seq == 1
    assert [r.entry.actor["id"] for r in await _log(db)] == ["actor-1"]


async def test_after_dispose_every_call_is_unavailable(database_url: str) -> None:
    database = SqlDatabase(create_engine(database_url))
    await database.write(_append(1))
    await database.dispose()
    with pytest.raises(ServiceUnavailableError):
        await database.write(_append(2))
    with pytest.raises(ServiceUnavailableError):
        await database.read(lambda uow: uow.audit.get(1))


class _GroupLog(SilentTelemetry):
    def __init__(self) -> None:
        self.groups: list[tuple[int, float, float]] = []

    def write_group_committed(
        self, transactions: int, turn_seconds: float, commit_seconds: float
    ) -> None:
        self.groups.append((transactions, turn_seconds, commit_seconds))


def _refuses(uow: UnitOfWork) -> None:
    raise ValueError("the use case refused")


async def test_each_durable_group_is_reported_with_its_transactions_and_waits(
    database_url: str,
) -> None:
    groups = _GroupLog()
    database = SqlDatabase(create_engine(database_url), telemetry=groups)
    try:
        gone = asyncio.ensure_future(database.write(_append(0)))
        kept = [asyncio.ensure_future(database.write(_append(n))) for n in range(1, 200)]
        await asyncio.sleep(0)  # all queued; the committer has not run yet
        gone.cancel()
        await asyncio.gather(*kept)
        # A transaction that refused is still one the group held and committed.
        with pytest.raises(ValueError, match="refused"):
            await database.write(_refuses)
    finally:
        await database.dispose()
    assert sum(n for n, _, _ in groups.groups) == 199 + 1  # not the one whose caller left
    assert len(groups.groups) < 199  # they shared commits
    assert all(turn >= 0 and commit > 0 for _, turn, commit in groups.groups)


async def test_a_group_lost_to_a_database_error_is_not_reported(database_url: str) -> None:
    groups = _GroupLog()
    database = SqlDatabase(create_engine(database_url), telemetry=groups)

    def broken(uow: UnitOfWork) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    try:
        with pytest.raises(ServiceUnavailableError):
            await database.write(broken)
        await database.write(_append(1))
    finally:
        await database.dispose()
    assert [n for n, _, _ in groups.groups] == [1]


class _BrokenGroupLog(SilentTelemetry):
    def write_group_committed(
        self, transactions: int, turn_seconds: float, commit_seconds: float
    ) -> None:
        raise RuntimeError("the metrics are broken")


async def test_a_failing_metric_costs_no_answer_and_stops_no_commit(database_url: str) -> None:
    database = SqlDatabase(create_engine(database_url), telemetry=_BrokenGroupLog())
    try:
        first = await asyncio.gather(*(database.write(_append(n)) for n in range(20)))
        second = await asyncio.gather(*(database.write(_append(n)) for n in range(20, 40)))
        stored = await _log(database)
    finally:
        await database.dispose()
    assert [r.seq for r in [*first, *second]] == list(range(1, 41))
    assert len(stored) == 40
    assert verify_chain(stored).ok
