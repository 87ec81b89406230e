"""Invariant 4 of issue #3: any edit, deletion, insertion, reordering or truncation of the
stored audit rows is detected, by the chain, the signed checkpoints or the record tags.

The log is written by the hub's own ``AuditTrail`` into a real database (the run's
backend, SQLite or PostgreSQL: tests/conftest.py); each example damages a copy of it
with plain SQL, as someone with access to the database could, and checks it with
``verify_log``, what ``GET /v1/audit/verify`` and ``ketenhub audit verify`` run.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.auth.keys import FileKeyRing
from hub.clock import FixedClock
from hub.db.audit_rows import audit_row
from hub.db.database import SqlDatabase, create_engine
from hub.domain.audit import GENESIS, STORED_MEMBERS, AuditRecord, ChainReport, link
from hub.domain.checkpoints import CHECKPOINT_TYP, Checkpoint, checkpoint_claims
from hub.services.audit import AuditTrail, verify_log
from tests.builders import NOW, an_audit_entry
from tests.conftest import Backend, connect, placeholder

RECORDS = 250
"""Checkpoints at 100 and 200, and (the hub stopped) at 250."""
KEYS = FileKeyRing.ephemeral()
OTHER_KEYS = FileKeyRing.ephemeral()


async def _write_log(url: str, *, stopped: bool) -> None:
    db = SqlDatabase(create_engine(url))
    trail = AuditTrail(keys=KEYS, clock=FixedClock(NOW))
    try:
        for n in range(1, RECORDS + 1):
            await db.write(lambda uow, n=n: trail.append(uow, an_audit_entry(n)))
        if stopped:
            await db.write(trail.checkpoint_head)
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> dict[bool, str]:
    """The log of a hub that stopped (a checkpoint at its head), and of one that crashed."""
    made = {}
    for stopped in (True, False):
        url = backend.fresh(tmp_path_factory.mktemp("log"), lasting=True)
        asyncio.run(_write_log(url, stopped=stopped))
        made[stopped] = url
    return made


def _verify(url: str, anchors: Sequence[Checkpoint] = ()) -> ChainReport:
    async def run() -> ChainReport:
        db = SqlDatabase(create_engine(url))
        try:
            return await verify_log(db, KEYS, anchors)
        finally:
            await db.dispose()

    return asyncio.run(run())


@pytest.fixture
def copy_of(
    tmp_path: Path, logs: dict[bool, str], fresh_databases: Backend
) -> Iterator[Callable[[bool], str]]:
    """A fresh copy of a log for each example; removed after the test (``fresh_databases``
    drops PostgreSQL's, SQLite's files are removed here: hundreds of examples)."""
    made: list[str] = []

    def copy(stopped: bool) -> str:
        made.append(fresh_databases.copy(logs[stopped], tmp_path))
        return made[-1]

    yield copy
    for url in made:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)


def _marks(url: str, statement: str) -> str:
    """``?`` parameter markers as ``url``'s driver wants them (no ``?`` in the SQL text)."""
    return statement.replace("?", placeholder(url))


def _sql(url: str, *statements: tuple[str, tuple[object, ...]]) -> None:
    with connect(url) as raw:
        for statement, params in statements:
            raw.execute(_marks(url, statement), params)


# SQLite refuses a NULL in a NOT NULL column; PostgreSQL also a value longer than its column.
_REFUSED: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    psycopg.IntegrityError,
    psycopg.DataError,
)


def _renumber(url: str, shift_from: int, by: int) -> None:
    """Move every record from ``shift_from`` on by ``by`` seqs (through negatives: the key)."""
    _sql(
        url,
        ("UPDATE audit_events SET seq = -seq WHERE seq >= ?", (shift_from,)),
        ("UPDATE audit_events SET seq = -seq + ? WHERE seq < 0", (by,)),
    )


def test_the_hubs_own_logs_verify_and_name_their_newest_checkpoint(
    logs: dict[bool, str],
) -> None:
    stopped, crashed = _verify(logs[True]), _verify(logs[False])
    assert stopped.ok
    assert stopped.entries == RECORDS
    assert stopped.checkpoint is not None
    assert stopped.checkpoint.seq == RECORDS
    assert crashed.ok
    assert crashed.checkpoint is not None
    assert crashed.checkpoint.seq == 200  # the 50 after it are covered by their tags


def examples(count: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Reproducible in CI; the fixture only hands out fresh copies, so it may be shared."""
    return settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


_TEXT_MEMBERS = [m for m in STORED_MEMBERS if m not in {"seq", "replay_of"}]


@examples(60)
@given(
    stopped=st.booleans(),
    seq=st.integers(1, RECORDS),
    member=st.sampled_from(_TEXT_MEMBERS),
    value=st.sampled_from(["other", "0" * 64, '["x"]', "", "[]", None]),
)
def test_any_edit_of_any_member_is_detected(
    copy_of: Callable[[bool], str], stopped: bool, seq: int, member: str, value: str | None
) -> None:
    path = copy_of(stopped)
    with connect(path) as raw:
        (before,) = raw.execute(
            _marks(path, f"SELECT {member} FROM audit_events WHERE seq = ?"), (seq,)
        ).fetchone()
    if before == value:
        return
    try:
        _sql(path, (f"UPDATE audit_events SET {member} = ? WHERE seq = ?", (value, seq)))
    except _REFUSED:
        return  # the schema refuses it already
    report = _verify(path)
    assert not report.ok
    assert report.first_bad_seq in {seq, seq + 1}  # a changed hash shows at the next link


@examples(30)
@given(stopped=st.booleans(), seq=st.integers(1, RECORDS))
def test_a_deleted_record_is_detected(
    copy_of: Callable[[bool], str], stopped: bool, seq: int
) -> None:
    path = copy_of(stopped)
    _sql(path, ("DELETE FROM audit_events WHERE seq = ?", (seq,)))
    report = _verify(path)
    assert not report.ok
    assert report.first_bad_seq == (min(RECORDS, seq))


@examples(30)
@given(stopped=st.booleans(), at=st.integers(1, RECORDS), copied=st.integers(1, RECORDS))
def test_an_inserted_record_is_detected(
    copy_of: Callable[[bool], str], stopped: bool, at: int, copied: int
) -> None:
    path = copy_of(stopped)
    _renumber(path, at, 1)
    source = copied if copied < at else copied + 1
    columns = ", ".join(m for m in STORED_MEMBERS if m != "seq")
    copy = f"INSERT INTO audit_events (seq, {columns}, tag) SELECT ?, {columns}, tag"
    _sql(path, (f"{copy} FROM audit_events WHERE seq = ?", (at, source)))
    report = _verify(path)
    assert not report.ok
    assert report.first_bad_seq in {at, at + 1}


@examples(30)
@given(
    stopped=st.booleans(),
    pair=st.lists(st.integers(1, RECORDS), min_size=2, max_size=2, unique=True),
)
def test_two_reordered_records_are_detected(
    copy_of: Callable[[bool], str], stopped: bool, pair: list[int]
) -> None:
    a, b = sorted(pair)
    path = copy_of(stopped)
    _sql(
        path,
        ("UPDATE audit_events SET seq = -1 WHERE seq = ?", (a,)),
        ("UPDATE audit_events SET seq = ? WHERE seq = ?", (a, b)),
        ("UPDATE audit_events SET seq = ? WHERE seq = -1", (b,)),
    )
    report = _verify(path)
    assert not report.ok
    assert report.first_bad_seq == a


@examples(30)
@given(stopped=st.booleans(), keep=st.integers(0, RECORDS - 1))
def test_records_cut_off_the_end_are_detected_against_the_newest_checkpoint(
    copy_of: Callable[[bool], str], stopped: bool, keep: int
) -> None:
    newest = RECORDS if stopped else 200
    path = copy_of(stopped)
    _sql(path, ("DELETE FROM audit_events WHERE seq > ?", (keep,)))
    report = _verify(path)
    if keep < newest:
        assert not report.ok
        assert report.first_bad_seq == keep + 1
    else:
        # A crashed hub's last records after its newest checkpoint: what the contract's
        # "latest signed checkpoint" can prove; an officer's kept checkpoint proves more.
        assert report.ok


def _kept_by_an_officer(path: str) -> Checkpoint:
    report = _verify(path)
    assert report.checkpoint is not None
    return report.checkpoint


@examples(20)
@given(keep=st.integers(0, RECORDS - 1))
def test_a_log_cut_short_with_its_checkpoints_is_caught_by_a_checkpoint_kept_elsewhere(
    copy_of: Callable[[bool], str], keep: int
) -> None:
    path = copy_of(True)
    kept = _kept_by_an_officer(path)
    _sql(
        path,
        ("DELETE FROM audit_events WHERE seq > ?", (keep,)),
        ("DELETE FROM audit_checkpoints WHERE seq > ?", (keep,)),
        ("UPDATE audit_head SET seq = ?", (keep,)),
    )
    report = _verify(path, [kept])
    assert not report.ok
    assert report.first_bad_seq == keep + 1


def _stored_log(path: str) -> list[AuditRecord]:
    async def records() -> list[AuditRecord]:
        db = SqlDatabase(create_engine(path))
        try:
            return await db.scan(lambda uow: list(uow.audit.stream()))
        finally:
            await db.dispose()

    return asyncio.run(records())


def _rewrite_from(path: str, seq: int) -> None:
    """Change record ``seq`` and make every later hash anew: a chain that holds again."""
    log = _stored_log(path)
    prev = log[seq - 2].hash if seq > 1 else GENESIS
    with connect(path) as raw:
        for record in log[seq - 1 :]:
            entry = record.entry
            if record.seq == seq:
                entry = replace(entry, purpose="something-else")
            again = link(record.seq, entry, prev)
            raw.execute(
                _marks(
                    path,
                    "UPDATE audit_events SET purpose = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                ),
                (entry.purpose, again.prev_hash, again.hash, again.seq),
            )
            prev = again.hash
        raw.execute(_marks(path, "UPDATE audit_head SET hash = ?"), (prev,))


@examples(20)
@given(stopped=st.booleans(), seq=st.integers(1, RECORDS))
def test_a_rewritten_chain_is_detected_by_its_checkpoint_or_tags(
    copy_of: Callable[[bool], str], stopped: bool, seq: int
) -> None:
    path = copy_of(stopped)
    _rewrite_from(path, seq)
    report = _verify(path)
    assert not report.ok
    assert report.first_bad_seq is not None
    assert report.first_bad_seq >= seq


def _forged_append(path: str, tag: str | None) -> None:
    """A record after the last one, its chain hash made right, as the hub would write it."""
    last = _stored_log(path)[-1]
    forged = link(last.seq + 1, an_audit_entry(999), last.hash)
    row = {**audit_row(forged), "tag": tag}
    columns = ", ".join(row)
    marks = ", ".join("?" * len(row))
    _sql(path, (f"INSERT INTO audit_events ({columns}) VALUES ({marks})", tuple(row.values())))


@pytest.mark.parametrize("stopped", [True, False])
@pytest.mark.parametrize("tag", [None, "0" * 64])
def test_a_record_appended_by_someone_without_the_hubs_key_is_detected(
    copy_of: Callable[[bool], str], stopped: bool, tag: str | None
) -> None:
    path = copy_of(stopped)
    _forged_append(path, tag)
    report = _verify(path)
    assert not report.ok
    assert report.first_bad_seq == RECORDS + 1
    assert report.problem is not None
    assert "tag" in report.problem


def _signed(keys: FileKeyRing, seq: int, head: str) -> str:
    return keys.sign(checkpoint_claims(seq, head, "2026-06-15T10:00:00Z"), typ=CHECKPOINT_TYP)


@pytest.mark.parametrize(
    "forge",
    [
        "UPDATE audit_checkpoints SET jws = 'x.y.z' WHERE seq = 250",
        "UPDATE audit_checkpoints SET seq = 240 WHERE seq = 250",
        "another key",
        "another kind of token",
    ],
)
def test_a_checkpoint_not_signed_by_the_hub_is_detected(
    copy_of: Callable[[bool], str], forge: str
) -> None:
    path = copy_of(True)
    with connect(path) as raw:
        (head,) = raw.execute("SELECT hash FROM audit_events WHERE seq = 250").fetchone()
        if forge.startswith("UPDATE"):
            raw.execute(forge)
        else:
            jws = (
                _signed(OTHER_KEYS, 250, head)
                if forge == "another key"
                else KEYS.sign(checkpoint_claims(250, head, "x"), typ="at+jwt")
            )
            raw.execute(
                _marks(path, "UPDATE audit_checkpoints SET jws = ? WHERE seq = 250"), (jws,)
            )
    report = _verify(path)
    assert not report.ok
    assert report.problem is not None
    assert "not signed by the hub" in report.problem
