"""The fast chain check on stored rows reports exactly what the record-by-record one does.

``ChainVerifier.feed_stored`` hashes the stored text without decoding it, and a large
log is checked in stretches (``join_segments``, ``SqlAudit.verify``): every damage the
slow path reports must come out the same, member for member, and the hash format
must not change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from hub.db import audit_log, audit_stretches
from hub.db.audit_log import SqlAudit
from hub.db.audit_rows import audit_row, record_of
from hub.db.audit_stretches import check_stretch, segment_from
from hub.db.migrate import upgrade
from hub.db.sql import Sql
from hub.domain import audit
from hub.domain.audit import (
    GENESIS,
    STORED_MEMBERS,
    AuditEntry,
    ChainReport,
    ChainVerifier,
    canonical,
    chain_hash,
    join_segments,
    link,
    stored_chain_hash,
    verify_chain,
)
from tests.conftest import connect, placeholder
from tests.unit.test_audit_chain import an_entry

texts = st.text(max_size=12)
names = st.sampled_from(["trajectory.status", "icf.assessment", 'quo"te', "ünï", "a\\b", "\x7f"])


@st.composite
def entries(draw: st.DrawFn) -> AuditEntry:
    return AuditEntry(
        at=draw(texts),
        kind=draw(st.sampled_from(["exchange", "replay"])),
        requester=draw(texts),
        source=draw(texts),
        participant=draw(texts),
        purpose=draw(texts),
        actor={"role": draw(texts), "id": draw(texts)},
        decision=draw(st.sampled_from(["disclosed", "denied", "failed", "ñ"])),
        reason=draw(st.none() | texts),
        fields_requested=draw(st.lists(names, max_size=3)),
        fields_disclosed=draw(st.lists(names, max_size=3)),
        withheld=draw(
            st.lists(st.fixed_dictionaries({"field": names, "reason": texts}), max_size=2)
        ),
        agreement=draw(st.none() | texts),
        agreements=draw(st.lists(texts, max_size=2)),
        consents=draw(st.lists(texts, max_size=2)),
        disclosure_id=draw(st.none() | texts),
        replay_of=draw(st.none() | st.integers(min_value=0, max_value=2**63 - 1)),
    )


def stored(record: Any) -> tuple[Any, ...]:
    row = audit_row(record)
    return tuple(row[name] for name in STORED_MEMBERS)


def stored_chain(entries_: list[AuditEntry]) -> list[tuple[Any, ...]]:
    rows, prev = [], GENESIS
    for seq, entry in enumerate(entries_, start=1):
        record = link(seq, entry, prev)
        rows.append(stored(record))
        prev = record.hash
    return rows


def one_by_one(rows: list[tuple[Any, ...]]) -> ChainReport | type[BaseException]:
    try:
        return verify_chain(record_of(row) for row in rows)
    except Exception as exc:  # the slow path's crash is the expectation
        return type(exc)


def fast(rows: list[tuple[Any, ...]]) -> ChainReport | type[BaseException]:
    verifier = ChainVerifier()
    try:
        verifier.feed_stored(iter(rows), record_of)
    except Exception as exc:
        return type(exc)
    return verifier.report()


@given(entry=entries(), seq=st.integers(min_value=1, max_value=10**12), prev=st.text())
def test_the_stored_hash_is_the_chain_hash_whenever_it_is_made(
    entry: AuditEntry, seq: int, prev: str
) -> None:
    row = stored(link(seq, entry, prev))
    try:
        fast_hash = stored_chain_hash(row)
    except (TypeError, ValueError):
        return  # not made: the slow path decides
    assert fast_hash == chain_hash(seq, record_of(row).entry, prev)


def test_the_hash_format_has_not_changed() -> None:
    # Hashes made by the code before the stored-form check (json.dumps, sort_keys,
    # compact, ASCII only): logs written then still verify.
    entry = an_entry(7)
    assert chain_hash(1, entry, GENESIS) == (
        "e263daa82e5c499238b68448564ef05dcb2cc7e4cf150eadeff52ddbd6e9ffff"
    )
    assert stored_chain_hash(stored(link(1, entry, GENESIS))) == chain_hash(1, entry, GENESIS)
    odd = dataclasses.replace(
        entry,
        actor={"role": 'ñ"', "id": "u-7"},
        fields_requested=["é"],
        withheld=[{"reason": "x", "field": "ü"}],
    )
    assert chain_hash(2, odd, "ab") == (
        "0aa1c35a68ddf9a163a8d4c612aca5f2ac890fb5635fa367ebc232da45885841"
    )
    assert canonical(2, odd, "ab").startswith(b'{"actor":{"id":"u-7","role":"\\u00f1\\""}')


class _Recorder:
    """Stands in for the verifier's SHA-256: keeps the bytes the fast path hashes."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def copy(self) -> _Recorder:
        return self

    def update(self, data: bytes) -> None:
        self.bodies.append(data)

    def hexdigest(self) -> str:
        return hashlib.sha256(self.bodies[-1]).hexdigest()


@given(entry=entries(), seq=st.integers(min_value=1, max_value=10**12))
def test_the_fast_path_hashes_the_canonical_bytes_exactly(entry: AuditEntry, seq: int) -> None:
    # Not only "the same hash in the end": a row whose stored hash was made over other
    # bytes (a forger's) must not pass where the slow path would fail it.
    row = stored(link(seq, entry, GENESIS))
    recorder = _Recorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(audit, "_SHA256", recorder)
        ChainVerifier(expected_seq=seq).feed_stored([row], record_of)
    decoded = record_of(row)
    for body in recorder.bodies:
        assert body == canonical(seq, decoded.entry, GENESIS)


def test_what_the_hub_writes_takes_the_fast_path() -> None:
    rows = stored_chain([an_entry(n) for n in range(1, 40)])

    def never(_row: tuple[Any, ...]) -> Any:
        raise AssertionError("decoded a row the hub wrote")

    verifier = ChainVerifier()
    assert verifier.feed_stored(rows, never)
    assert verifier.report() == verify_chain(record_of(row) for row in rows)


ODD_VALUES = (
    st.none()
    | st.integers(min_value=-3, max_value=50)
    | st.floats(allow_nan=False)
    | texts
    | st.sampled_from(
        [
            "[]",
            '[ "trajectory.status"]',
            '["trajectory.status" ]',
            '[{"reason":"no-consent","field":"icf.assessment"}]',
            '[{"field":"icf.assessment","reason":"no-consent"}]',
            '["\\u0061"]',
            '"abc"',
            '{"a":1}',
            "null",
            "5",
            "[1.0]",
            "[1e2]",
            "not json",
            "[[[[[[[[[[]]]]]]]]]]",
            GENESIS,
            "F" * 64,
        ]
    )
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.lists(entries(), min_size=1, max_size=6),
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=5), st.sampled_from(STORED_MEMBERS)),
        max_size=3,
    ),
    data=st.data(),
)
def test_any_damage_is_reported_as_the_slow_path_reports_it(
    base: list[AuditEntry], edits: list[tuple[int, str]], data: st.DataObject
) -> None:
    rows = [list(row) for row in stored_chain(base)]
    for index, member in edits:
        if index < len(rows):
            rows[index][STORED_MEMBERS.index(member)] = data.draw(ODD_VALUES)
    damaged = [tuple(row) for row in rows]
    assert fast(damaged) == one_by_one(damaged)


def test_a_start_that_is_not_a_hash_links_to_nothing() -> None:
    rows = stored_chain([an_entry(n) for n in range(1, 4)])
    verifier = ChainVerifier(expected_seq=1, prev='x"y')
    assert not verifier.feed_stored(rows, record_of)
    assert verifier.report().first_bad_seq == 1


# -- stretches -------------------------------------------------------------------


def _database(tmp: Path) -> Path:
    path = tmp / "audit.db"
    upgrade(f"sqlite:///{path}")
    return path


def _fill(url: str, length: int) -> None:
    """A valid chain of ``length`` records in the (SQLite or PostgreSQL) database."""
    rows = stored_chain([an_entry(n) for n in range(1, length + 1)])
    with connect(url) as raw:
        marks = ", ".join([placeholder(url)] * len(STORED_MEMBERS))
        columns = ", ".join(STORED_MEMBERS)
        raw.cursor().executemany(f"INSERT INTO audit_events ({columns}) VALUES ({marks})", rows)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = _database(tmp_path_factory.mktemp("audit"))
    _fill(f"sqlite:///{path}", 30)
    return path


@contextmanager
def _copy(template: Path, tmp: Path) -> Iterator[sqlite3.Connection]:
    target = tmp / f"copy-{id(tmp)}.db"
    with sqlite3.connect(template) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    connection = sqlite3.connect(target, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def _one_pass(sql: Sql) -> ChainReport:
    verifier = ChainVerifier()
    for rows in SqlAudit(sql)._batches():
        if not verifier.feed_stored(rows, record_of):
            break
    return verifier.report()


def _stretched(sql: Sql, bounds: list[int]) -> ChainReport | None:
    segments = [check_stretch(sql, a, b) for a, b in itertools.pairwise(bounds)]
    return join_segments(segments)


DAMAGE = [
    "UPDATE audit_events SET requester = 'in-gent' WHERE seq = {k}",
    "UPDATE audit_events SET fields_disclosed = '[]' WHERE seq = {k}",
    "UPDATE audit_events SET fields_disclosed = '[ ]' WHERE seq = {k}",
    "DELETE FROM audit_events WHERE seq = {k}",
    "UPDATE audit_events SET seq = seq + 100 WHERE seq = {k}",
    "UPDATE audit_events SET seq = -seq WHERE seq = {k}",
    "UPDATE audit_events SET seq = {k} + 0.5 WHERE seq = {k}",
    "UPDATE audit_events SET seq = 'x{k}' WHERE seq = {k}",
    "UPDATE audit_events SET hash = 'nothex' WHERE seq = {k}",
    "UPDATE audit_events SET prev_hash = (SELECT hash FROM audit_events WHERE seq=1) WHERE seq={k}",
    "UPDATE audit_events SET replay_of = 3.5 WHERE seq = {k}",
    "UPDATE audit_events SET decision = 5 WHERE seq = {k}",
    "UPDATE audit_events SET at = at || char(10) WHERE seq = {k}",
    "UPDATE audit_events SET seq = (SELECT max(seq) FROM audit_events) + 1 WHERE seq = {k}",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    damage=st.lists(
        st.tuples(st.sampled_from(DAMAGE), st.integers(min_value=1, max_value=30)), max_size=2
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=34), max_size=5),
)
def test_stretches_checked_apart_report_what_one_pass_does(
    template: Path, tmp_path_factory: pytest.TempPathFactory, damage: Any, cuts: list[int]
) -> None:
    with _copy(template, tmp_path_factory.mktemp("d")) as raw:
        for statement, k in damage:
            with suppress(sqlite3.IntegrityError):  # a seq taken twice: not a log
                raw.execute(statement.format(k=k))
        sql = Sql(raw, "sqlite")
        one = _one_pass(sql)
        top = raw.execute("SELECT max(seq) FROM audit_events").fetchone()[0]
        if type(top) is not int:
            return  # text seqs: verify() checks such a log in one pass
        bounds = sorted({0, top, *(c for c in cuts if c < top)})
        joined = _stretched(sql, bounds)
        if joined is not None:
            assert joined == one
        else:
            assert not one.ok
        assert SqlAudit(sql).verify() == one


_TYPING = pytest.mark.sqlite_only("SQLite's dynamic typing: PostgreSQL refuses such a seq")


@pytest.mark.parametrize(
    "statement",
    [
        None,
        "UPDATE audit_events SET purpose = 'other' WHERE seq = 17",
        "DELETE FROM audit_events WHERE seq = 9",
        pytest.param("UPDATE audit_events SET seq = 'x' WHERE seq = 30", marks=_TYPING),
        pytest.param("UPDATE audit_events SET seq = 12.5 WHERE seq = 12", marks=_TYPING),
    ],
)
def test_helper_processes_check_stretches_of_a_large_log(
    database_url: str, monkeypatch: pytest.MonkeyPatch, statement: str | None
) -> None:
    """On PostgreSQL too: the helper process reconnects from the connection's own dsn."""
    _fill(database_url, 60)
    if statement is not None:
        with connect(database_url) as raw:
            raw.execute(statement)
    dialect = make_url(database_url).get_backend_name()
    with connect(database_url) as raw:
        one = _one_pass(Sql(raw, dialect))
    monkeypatch.setattr(audit_stretches, "_STRETCH", 7)
    monkeypatch.setattr(audit_log, "helper_count", lambda top: 1 if type(top) is int else 0)
    with connect(database_url) as raw:
        assert SqlAudit(Sql(raw, dialect)).verify() == one


def test_records_are_json_after_the_round_trip() -> None:
    # The helper's answers cross a pipe as JSON and come back equal.
    rows = stored_chain([an_entry(n) for n in range(1, 5)])
    with sqlite3.connect(":memory:") as raw:
        raw.execute(f"CREATE TABLE audit_events ({', '.join(STORED_MEMBERS)})")
        raw.executemany(f"INSERT INTO audit_events VALUES ({', '.join('?' * 21)})", rows)
        segment = check_stretch(Sql(raw, "sqlite"), 1, 3)
    again = segment_from(json.loads(json.dumps(dataclasses.asdict(segment))))
    assert again == segment
