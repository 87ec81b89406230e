"""Invariant 4 of issue #3: any edit, deletion, insertion, reordering or truncation of the
stored audit rows is detected, by the chain, the signed checkpoints or the record tags.

The log is written by the hub's own ``AuditTrail`` into a real SQLite database; each
example damages a copy of it with plain SQL, as someone with access to the database
file could, and checks it with ``verify_log``, what ``GET /v1/audit/verify`` and
``ketenhub audit verify`` run.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.auth.keys import FileKeyRing
from hub.clock import FixedClock
from hub.db import migrate
from hub.db.audit_rows import audit_row
from hub.db.database import SqlDatabase, create_engine
from hub.domain.audit import GENESIS, STORED_MEMBERS, AuditRecord, ChainReport, link
from hub.domain.checkpoints import CHECKPOINT_TYP, Checkpoint, checkpoint_claims
from hub.services.audit import AuditTrail, verify_log
from tests.builders import NOW, an_audit_entry

RECORDS = 250
"""Checkpoints at 100 and 200, and (the hub stopped) at 250."""
KEYS = FileKeyRing.ephemeral()
OTHER_KEYS = FileKeyRing.ephemeral()


async def _write_log(path: Path, *, stopped: bool) -> None:
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
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
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    """The log of a hub that stopped (a checkpoint at its head), and of one that crashed."""
    made = {}
    for stopped in (True, False):
        path = tmp_path_factory.mktemp("log") / "hub.db"
        asyncio.run(_write_log(path, stopped=stopped))
        made[stopped] = path
    return made


def _verify(path: Path, anchors: Sequence[Checkpoint] = ()) -> ChainReport:
    async def run() -> ChainReport:
        db = SqlDatabase(create_engine(f"sqlite:///{path}"))
        try:
            return await verify_log(db, KEYS, anchors)
        finally:
            await db.dispose()

    return asyncio.run(run())


@pytest.fixture
def copy_of(tmp_path: Path, logs: dict[bool, Path]) -> Iterator[Callable[[bool], Path]]:
    made: list[Path] = []

    def copy(stopped: bool) -> Path:
        target = tmp_path / f"copy-{len(made)}.db"
        shutil.copy(logs[stopped], target)
        made.append(target)
        return target

    yield copy
    for path in made:
        path.unlink(missing_ok=True)


def _sql(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    with sqlite3.connect(path) as raw:
        for statement, params in statements:
            raw.execute(statement, params)


def _renumber(path: Path, shift_from: int, by: int) -> None:
    """Move every record from ``shift_from`` on by ``by`` seqs (through negatives: the key)."""
    _sql(
        path,
        ("UPDATE audit_events SET seq = -seq WHERE seq >= ?", (shift_from,)),
        ("UPDATE audit_events SET seq = -seq + ? WHERE seq < 0", (by,)),
    )


def test_the_hubs_own_logs_verify_and_name_their_newest_checkpoint(
    logs: dict[bool, Path],
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
    copy_of: Callable[[bool], Path], stopped: bool, seq: int, member: str, value: str | None
) -> None:
    path = copy_of(stopped)
    with sqlite3.connect(path) as raw:
        (before,) = raw.execute(
            f"SELECT {member} FROM audit_events WHERE seq = ?", (seq,)
        ).fetchone()
    if before == value:
        return
    try:
        _sql(path, (f"UPDATE audit_events SET {member} = ? WHERE seq = ?", (value, seq)))
    except sqlite3.IntegrityError:
        return  # the schema refuses it already
    report = _verify(path)
    assert not report.ok
    assert report.first_bad_seq in {seq, seq + 1}  # a changed hash shows at the next link


@examples(30)
@given(stopped=st.booleans(), seq=st.integers(1, RECORDS))
def test_a_deleted_record_is_detected(
    copy_of: Callable[[bool], Path], stopped: bool, seq: int
) -> None:
    path = copy_of(stopped)
    _sql(path, ("DELETE FROM audit_events WHERE seq = ?", (seq,)))
    report = _verify(path)
    assert not report.ok
    assert report.first_bad_seq == (min(RECORDS, seq))


@examples(30)
@given(stopped=st.booleans(), at=st.integers(1, RECORDS), copied=st.integers(1, RECORDS))
def test_an_inserted_record_is_detected(
    copy_of: Callable[[bool], Path], stopped: bool, at: int, copied: int
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
    copy_of: Callable[[bool], Path], stopped: bool, pair: list[int]
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
    copy_of: Callable[[bool], Path], stopped: bool, keep: int
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


def _kept_by_an_officer(path: Path) -> Checkpoint:
    report = _verify(path)
    assert report.checkpoint is not None
    return report.checkpoint


@examples(20)
@given(keep=st.integers(0, RECORDS - 1))
def test_a_log_cut_short_with_its_checkpoints_is_caught_by_a_checkpoint_kept_elsewhere(
    copy_of: Callable[[bool], Path], keep: int
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


def _stored_log(path: Path) -> list[AuditRecord]:
    async def records() -> list[AuditRecord]:
        db = SqlDatabase(create_engine(f"sqlite:///{path}"))
        try:
            return await db.scan(lambda uow: list(uow.audit.stream()))
        finally:
            await db.dispose()

    return asyncio.run(records())


def _rewrite_from(path: Path, seq: int) -> None:
    """Change record ``seq`` and make every later hash anew: a chain that holds again."""
    log = _stored_log(path)
    prev = log[seq - 2].hash if seq > 1 else GENESIS
    with sqlite3.connect(path) as raw:
        for record in log[seq - 1 :]:
            entry = record.entry
            if record.seq == seq:
                entry = replace(entry, purpose="something-else")
            again = link(record.seq, entry, prev)
            raw.execute(
                "UPDATE audit_events SET purpose = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (entry.purpose, again.prev_hash, again.hash, again.seq),
            )
            prev = again.hash
        raw.execute("UPDATE audit_head SET hash = ?", (prev,))


@examples(20)
@given(stopped=st.booleans(), seq=st.integers(1, RECORDS))
def test_a_rewritten_chain_is_detected_by_its_checkpoint_or_tags(
    copy_of: Callable[[bool], Path], stopped: bool, seq: int
) -> None:
    path = copy_of(stopped)
    _rewrite_from(path, seq)
    report = _verify(path)
    assert not report.ok
    assert report.first_bad_seq is not None
    assert report.first_bad_seq >= seq


def _forged_append(path: Path, tag: str | None) -> None:
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
    copy_of: Callable[[bool], Path], stopped: bool, tag: str | None
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
    copy_of: Callable[[bool], Path], forge: str
) -> None:
    path = copy_of(True)
    with sqlite3.connect(path) as raw:
        (head,) = raw.execute("SELECT hash FROM audit_events WHERE seq = 250").fetchone()
        if forge.startswith("UPDATE"):
            raw.execute(forge)
        else:
            jws = (
                _signed(OTHER_KEYS, 250, head)
                if forge == "another key"
                else KEYS.sign(checkpoint_claims(250, head, "x"), typ="at+jwt")
            )
            raw.execute("UPDATE audit_checkpoints SET jws = ? WHERE seq = 250", (jws,))
    report = _verify(path)
    assert not report.ok
    assert report.problem is not None
    assert "not signed by the hub" in report.problem
