"""The exchange's database work made small (issue #4) keeps what the Database port
promises, on SQLite and PostgreSQL: the audit head a write group keeps in memory is the
chain's, whatever its jobs do and whoever else appends between groups; reads leave
connections as writes need them; a consent read again is the consent as stored now."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from consent.model import Consent, ConsentStatus
from hub.db.database import SqlDatabase, create_engine
from hub.domain.audit import AuditRecord, verify_chain
from hub.domain.ids import FieldName, PartnerId, Purpose
from hub.ports import UnitOfWork
from tests.builders import an_audit_entry

NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)


def _append(n: int) -> object:
    return lambda uow: uow.audit.append(an_audit_entry(n))


async def _log(db: SqlDatabase) -> list[AuditRecord]:
    return await db.scan(lambda uow: list(uow.audit.stream()))


async def _stored_head(db: SqlDatabase) -> tuple[int, str]:
    return await db.read(lambda uow: uow.audit.head())


async def test_the_head_row_is_the_newest_record_after_every_group(db: SqlDatabase) -> None:
    for size in (1, 7, 40):
        records = await asyncio.gather(*(db.write(_append(n)) for n in range(size)))
        newest = max(records, key=lambda r: r.seq)
        assert await _stored_head(db) == (newest.seq, newest.hash)
    stored = await _log(db)
    assert [r.seq for r in stored] == list(range(1, 49))
    assert verify_chain(stored).ok


async def test_jobs_that_fail_after_appending_give_the_head_back_wherever_they_stand(
    db: SqlDatabase,
) -> None:
    """Failing first, in the middle, twice in a row and last: each undoes its own records
    only, and the jobs after it chain on the last record that stayed."""

    def fails(n: int) -> object:
        def work(uow: UnitOfWork) -> None:
            uow.audit.append(an_audit_entry(n))
            uow.audit.append(an_audit_entry(n + 1000))
            raise ValueError("the use case refused")

        return work

    plan = ["fail", "ok", "fail", "fail", "ok", "ok", "fail"]
    outcomes = await asyncio.gather(
        *(db.write(fails(n) if kind == "fail" else _append(n)) for n, kind in enumerate(plan)),
        return_exceptions=True,
    )
    assert [isinstance(o, ValueError) for o in outcomes] == [k == "fail" for k in plan]
    kept = [o for o in outcomes if isinstance(o, AuditRecord)]
    assert [r.seq for r in kept] == [1, 2, 3]
    stored = await _log(db)
    assert [r.entry.actor["id"] for r in stored] == ["actor-1", "actor-4", "actor-5"]
    assert verify_chain(stored).ok
    assert await _stored_head(db) == (3, stored[-1].hash)


async def test_a_job_reads_the_head_its_group_has_reached(db: SqlDatabase) -> None:
    """``head()`` inside a group (a checkpoint signs it) is the newest record of the
    group so far, not the row as the group found it."""
    first = await db.write(_append(1))

    def appends_then_reads(uow: UnitOfWork) -> tuple[AuditRecord, tuple[int, str]]:
        record = uow.audit.append(an_audit_entry(2))
        return record, uow.audit.head()

    def refused(uow: UnitOfWork) -> None:
        uow.audit.append(an_audit_entry(3))
        raise ValueError("refused")

    (second, seen), failed, after = await asyncio.gather(
        db.write(appends_then_reads),
        db.write(refused),
        db.write(lambda uow: uow.audit.head()),
        return_exceptions=True,
    )
    assert isinstance(failed, ValueError)
    assert second.seq == first.seq + 1
    assert seen == (second.seq, second.hash)
    assert after == (second.seq, second.hash)  # the refused job's record is not the head


async def test_another_writer_appending_between_groups_is_chained_on(database_url: str) -> None:
    """Two hubs (two engines, as two processes have) on one database: each group reads
    the head again, so the records of both form one chain."""
    ours = SqlDatabase(create_engine(database_url))
    theirs = SqlDatabase(create_engine(database_url))
    try:
        for n in range(6):
            writer = ours if n % 2 == 0 else theirs
            await asyncio.gather(*(writer.write(_append(10 * n + k)) for k in range(3)))
        stored = await _log(ours)
    finally:
        await ours.dispose()
        await theirs.dispose()
    assert [r.seq for r in stored] == list(range(1, 19))
    assert verify_chain(stored).ok


def _consent(revoked: datetime | None = None) -> Consent:
    return Consent(
        id="6f1c1d2e-0000-4000-8000-000000000001",
        participant="ab" * 32,
        recipient=PartnerId("gtb"),
        purpose=Purpose("trajectory-coordination"),
        fields=frozenset({FieldName("icf.assessment")}),
        granted_at=NOW,
        valid_until=NOW + timedelta(days=30),
        revoked_at=revoked,
        recorded_by=PartnerId("gtb"),
    )


async def test_a_consent_read_again_after_its_revoke_is_revoked(db: SqlDatabase) -> None:
    consent = _consent()
    await db.write(lambda uow: uow.consents.add(consent, None))

    def mine(uow: UnitOfWork) -> list[Consent]:
        return list(
            uow.consents.of_participant(
                consent.participant, recipient=consent.recipient, purpose=consent.purpose
            )
        )

    before = await db.read(mine)
    assert before == [consent]
    assert before[0].status_at(NOW) is ConsentStatus.ACTIVE
    revoked_at = NOW + timedelta(minutes=1)
    await db.write(lambda uow: uow.consents.revoke(consent.id, revoked_at))
    after = await db.read(mine)
    assert after == [_consent(revoked_at)]
    assert after[0].status_at(NOW) is ConsentStatus.REVOKED
    assert (await db.read(mine))[0].revoked_at == revoked_at


async def test_reads_leave_connections_ready_for_write_groups(db: SqlDatabase) -> None:
    """PostgreSQL reads run without a transaction; the connection a read used must
    still give the next write group its transaction (a failing job undone alone)."""
    for _ in range(3):
        await asyncio.gather(*(db.read(lambda uow: uow.audit.head()) for _ in range(12)))

        def fails(uow: UnitOfWork) -> None:
            uow.audit.append(an_audit_entry(99))
            raise ValueError("refused")

        outcomes = await asyncio.gather(
            db.write(_append(1)), db.write(fails), db.write(_append(2)), return_exceptions=True
        )
        assert isinstance(outcomes[1], ValueError)
    stored = await _log(db)
    assert [r.entry.actor["id"] for r in stored] == ["actor-1", "actor-2"] * 3
    assert verify_chain(stored).ok


async def test_an_append_is_one_statement_and_the_head_two_a_group(database_url: str) -> None:
    """What the exchange's write costs the database (SQLite, where a statement can be
    traced in-process): per job a savepoint move and the INSERT, per group the head read
    and written once. A regression guard for the speed-up, not a contract."""
    if not database_url.startswith("sqlite"):
        pytest.skip("the statement trace is SQLite's")
    db = SqlDatabase(create_engine(database_url))
    try:
        await db.write(_append(0))  # the writer connection exists
        statements: list[str] = []
        writer = db._writer  # the connection whose statements are counted
        assert writer is not None
        driver: sqlite3.Connection = writer.dbapi_connection
        driver.set_trace_callback(statements.append)
        try:
            await asyncio.gather(*(db.write(_append(n)) for n in range(1, 11)))
        finally:
            driver.set_trace_callback(None)
    finally:
        await db.dispose()
    inserts = [s for s in statements if s.startswith("INSERT INTO audit_events")]
    head = [s for s in statements if "audit_head" in s]
    savepoints = [s for s in statements if "SAVEPOINT" in s]
    assert len(inserts) == 10
    assert len(head) == 2  # read once, written once
    assert len(savepoints) == 1 + 2 * 9  # set once, moved past each job but the last
