"""A log written before record tags existed (migration 0003) after the upgrade to the
head, on the run's backend (SQLite or PostgreSQL: tests/conftest.py).

Migration 0005 records the untagged prefix; the verifier excuses those records' missing
tag and nothing else (``hub.domain.checkpoints.tag_fault``), and the hub closes that
window with a checkpoint once a verification passed. Each attack is done with plain
SQL, as someone with access to the database but not to the hub's keys could.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy import select, update

from hub.auth.keys import FileKeyRing
from hub.clock import FixedClock
from hub.db import migrate, tables
from hub.db.audit_rows import audit_row
from hub.db.database import SqlDatabase, create_engine
from hub.domain.audit import GENESIS, ChainReport, link
from hub.domain.checkpoints import Checkpoint
from hub.services.audit import AuditService, AuditTrail, record_tag, verify_log
from tests.builders import NOW, an_audit_entry

KEYS = FileKeyRing.ephemeral()
LEGACY = 3
"""Records 1 to 3 were written by a release before 0003: no tag."""


def _forge(url: str, count: int = 1, *, tagged: bool = False) -> int:
    """Append ``count`` well-made records (a valid chain, head moved) without the hub:
    untagged, or tagged with the hub's key (an earlier release's own records); the seq
    of the last one."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            head = connection.execute(select(tables.audit_head.c.seq, tables.audit_head.c.hash))
            seq, prev = head.one()
            for _ in range(count):
                seq += 1
                record = link(seq, an_audit_entry(seq), prev)
                row = audit_row(record)
                if tagged:
                    row["tag"] = record_tag(KEYS, record.hash)
                connection.execute(tables.audit_events.insert().values(**row))
                prev = record.hash
            connection.execute(update(tables.audit_head).values(seq=seq, hash=prev))
        return int(seq)
    finally:
        engine.dispose()


def _set_marker(url: str, seq: int) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(update(tables.audit_legacy).values(untagged_through=seq))
    finally:
        engine.dispose()


def _marker(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(tables.audit_legacy.c.untagged_through)).one()[0])
    finally:
        engine.dispose()


def _checkpoints(url: str) -> list[int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                select(tables.audit_checkpoints.c.seq).order_by(tables.audit_checkpoints.c.seq)
            )
            return [int(seq) for (seq,) in found]
    finally:
        engine.dispose()


def _hub(url: str) -> tuple[SqlDatabase, AuditTrail, AuditService]:
    db = SqlDatabase(create_engine(url))
    trail = AuditTrail(keys=KEYS, clock=FixedClock(NOW))
    return db, trail, AuditService(db=db, keys=KEYS, trail=trail)


def _verify(url: str, anchors: Sequence[Checkpoint] = ()) -> ChainReport:
    async def run() -> ChainReport:
        db = SqlDatabase(create_engine(url))
        try:
            return await verify_log(db, KEYS, anchors)
        finally:
            await db.dispose()

    return asyncio.run(run())


def _hub_verifies(url: str) -> ChainReport:
    """What ``GET /v1/audit/verify`` runs: it may sign a checkpoint over the prefix."""

    async def run() -> ChainReport:
        db, _trail, service = _hub(url)
        try:
            return await service.verify()
        finally:
            await db.dispose()

    return asyncio.run(run())


def _hub_appends(url: str) -> None:
    async def run() -> None:
        db, trail, _service = _hub(url)
        try:
            seq = _head(url) + 1
            await db.write(lambda uow: trail.append(uow, an_audit_entry(seq)))
        finally:
            await db.dispose()

    asyncio.run(run())


def _hub_stops(url: str) -> Checkpoint | None:
    async def run() -> Checkpoint | None:
        db, _trail, service = _hub(url)
        try:
            return await service.checkpoint()
        finally:
            await db.dispose()

    return asyncio.run(run())


def _head(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(tables.audit_head.c.seq)).one()[0])
    finally:
        engine.dispose()


@pytest.fixture
def upgraded(empty_database_url: str) -> str:
    """A log of three records a release at 0002 wrote, upgraded to the head."""
    url = empty_database_url
    migrate.upgrade(url, "0002")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            prev = GENESIS
            for seq in range(1, LEGACY + 1):
                record = link(seq, an_audit_entry(seq), prev)
                # 0002's table has no tag column: only the columns it knows.
                connection.execute(
                    tables.audit_events.insert().values(
                        **{k: v for k, v in audit_row(record).items() if k != "tag"}
                    )
                )
                prev = record.hash
            connection.execute(update(tables.audit_head).values(seq=LEGACY, hash=prev))
    finally:
        engine.dispose()
    migrate.upgrade(url)
    return url


def test_the_upgrade_records_the_untagged_prefix_and_the_log_verifies(upgraded: str) -> None:
    """Upgrade from before 0003 -> no false tamper alarm (the brief's bug)."""
    assert _marker(upgraded) == LEGACY
    report = _verify(upgraded)
    assert report.ok, report.problem
    assert report.entries == LEGACY
    assert report.checkpoint is None


def test_a_passing_verification_closes_the_window_with_a_checkpoint(upgraded: str) -> None:
    assert _hub_verifies(upgraded).ok
    assert _checkpoints(upgraded) == [LEGACY]
    report = _verify(upgraded)
    assert report.ok, report.problem
    assert report.checkpoint is not None
    assert report.checkpoint.seq == LEGACY
    assert _hub_verifies(upgraded).ok
    assert _checkpoints(upgraded) == [LEGACY], "signed once"


def test_an_untagged_record_after_the_hubs_own_is_detected_whatever_the_marker(
    upgraded: str,
) -> None:
    """Record appended without the key after the upgrade (the hub wrote one since) ->
    detected, even with the marker raised over it: it is not in the untagged prefix."""
    _hub_appends(upgraded)
    forged = _forge(upgraded)
    for marker in (LEGACY, forged):
        _set_marker(upgraded, marker)
        report = _verify(upgraded)
        assert not report.ok
        assert report.first_bad_seq == forged
        assert report.problem == (
            f"record {forged} does not carry the hub's tag: the hub did not write it"
        )


def test_raising_the_marker_is_detected_once_a_checkpoint_covers_the_prefix(
    upgraded: str,
) -> None:
    """Attacker appends right after the legacy prefix and raises the marker over the
    new record -> detected once the hub signed its checkpoint over the prefix."""
    assert _hub_verifies(upgraded).ok
    forged = _forge(upgraded, 2)
    _set_marker(upgraded, forged)
    report = _verify(upgraded)
    assert not report.ok
    assert report.first_bad_seq == LEGACY + 1
    after = _hub_verifies(upgraded)
    assert not after.ok
    assert _checkpoints(upgraded) == [LEGACY], "a failing verification signs nothing"


def test_the_stopping_hub_signs_no_checkpoint_over_a_foreign_record(upgraded: str) -> None:
    """The stop checkpoint would end the prefix's excuse and vouch for everything below
    it: with a record someone else appended since the newest checkpoint, it is not
    signed, and verify still names that record."""
    forged = _forge(upgraded)
    assert _hub_stops(upgraded) is None
    assert _checkpoints(upgraded) == []
    report = _verify(upgraded)
    assert not report.ok
    assert report.first_bad_seq == forged


def test_the_stopping_hub_signs_its_head_over_a_legacy_prefix_and_its_own_records(
    upgraded: str,
) -> None:
    _hub_appends(upgraded)
    signed = _hub_stops(upgraded)
    assert signed is not None
    assert signed.seq == LEGACY + 1
    report = _verify(upgraded)
    assert report.ok, report.problem
    assert report.checkpoint == signed


def test_an_untagged_record_after_tagged_ones_before_the_upgrade_is_not_legacy(
    empty_database_url: str,
) -> None:
    """A log at 0003 (tags exist): two untagged records from before it, the 0003 hub's
    tagged one, then one appended without the key. 0005 records the prefix as 2, and
    the foreign record is named."""
    url = empty_database_url
    migrate.upgrade(url, "0003")
    _forge(url, 2)
    _forge(url, tagged=True)
    forged = _forge(url)
    migrate.upgrade(url)
    assert _marker(url) == 2
    report = _verify(url)
    assert not report.ok
    assert report.first_bad_seq == forged


@pytest.mark.parametrize("tagged", [0, 2])
def test_a_log_without_untagged_records_has_no_prefix(empty_database_url: str, tagged: int) -> None:
    url = empty_database_url
    migrate.upgrade(url, "0004")
    if tagged:
        _forge(url, tagged, tagged=True)
    migrate.upgrade(url)
    assert _marker(url) == 0
    assert _verify(url).ok
